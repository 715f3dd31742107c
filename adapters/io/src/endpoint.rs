//! The core side: what the driver exchanges with a connection in one call.

use wsmp_core::connection::{Connection, TransmitBatch};
use wsmp_core::host::{Host, PeerId};
use wsmp_core::Timestamp;

/// Most frames leased for one write (each gives at most two slices).
pub(crate) const LEASE_FRAMES: usize = 64;
/// About this many bytes are leased for one write (at least one frame).
pub(crate) const LEASE_BYTES: usize = 256 * 1024;

/// One exchange between the driver and the core.
#[derive(Debug)]
pub struct Exchange<'a> {
    /// Bytes of the previous lease that were written since the last
    /// exchange (report with `advance_transmit` first).
    pub written: usize,
    /// Received plaintext to feed (may be empty).
    pub input: &'a [u8],
    /// The socket reached end of stream (or failed) after `input`: report it.
    pub eof: bool,
    /// Lease the next output into this batch (`None`: the socket cannot
    /// take output now, lease nothing).
    pub batch: Option<&'a mut TransmitBatch>,
}

/// What the core answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Status {
    /// Bytes of `input` taken; the rest waits (backpressure).
    pub consumed: usize,
    /// The core takes input now (false: stop reading until it does).
    pub can_read: bool,
    /// The core is done with the socket: close it once the output is out.
    pub close: bool,
    /// The endpoint's own next deadline, when the driver's caller should
    /// step again even without I/O (a lone connection's timers; `None` for
    /// host peers, whose timers the host runs).
    pub deadline: Option<Timestamp>,
}

/// A protocol endpoint bound to one socket. Implementations that share the
/// core between tasks take their lock inside `exchange` and nowhere else.
pub trait Endpoint {
    /// Reports `written`, feeds `input` (and `eof`), leases output into
    /// `batch`, in that order, and says what the core wants now.
    fn exchange(&mut self, now: Timestamp, x: Exchange<'_>) -> Status;
}

/// A lone connection (a WebSocket client or server). Its timers run here:
/// the driver's caller steps again at [`Status::deadline`].
impl Endpoint for Connection {
    fn exchange(&mut self, now: Timestamp, x: Exchange<'_>) -> Status {
        if x.written > 0 {
            self.advance_transmit(now, x.written);
        }
        let consumed = if x.input.is_empty() {
            0
        } else {
            self.handle_input(now, x.input)
        };
        if x.eof {
            self.handle_eof(now);
        }
        if self.poll_timeout().is_some_and(|t| t <= now) {
            self.handle_timeout(now);
        }
        if let Some(batch) = x.batch {
            self.lease_transmit(batch, LEASE_FRAMES, LEASE_BYTES);
        }
        Status {
            consumed,
            can_read: self.can_read(),
            close: self.should_close_socket(),
            deadline: self.poll_timeout(),
        }
    }
}

/// One peer of a multiplayer host.
#[derive(Debug)]
pub struct HostPeer<'h> {
    /// The host.
    pub host: &'h mut Host,
    /// The peer.
    pub id: PeerId,
}

impl Endpoint for HostPeer<'_> {
    fn exchange(&mut self, now: Timestamp, x: Exchange<'_>) -> Status {
        let (host, id) = (&mut *self.host, self.id);
        if x.written > 0 {
            host.advance_transmit(now, id, x.written);
        }
        // An unknown peer (released meanwhile) takes everything and is done.
        let consumed = if x.input.is_empty() {
            0
        } else {
            host.handle_input(now, id, x.input).unwrap_or(x.input.len())
        };
        if x.eof {
            let _ = host.handle_eof(now, id);
        }
        if let Some(batch) = x.batch {
            host.lease_transmit(id, batch, LEASE_FRAMES, LEASE_BYTES);
        }
        Status {
            consumed,
            can_read: host.can_read(id),
            close: host.should_close_socket(id),
            deadline: None,
        }
    }
}
