//! One WebSocket connection, client or server, as a pure state machine.
//!
//! # Contract
//!
//! A `Connection` performs no I/O and reads no clock. The adapter owns the
//! socket and drives it with four groups of methods:
//!
//! - **Input** — [`handle_input`](Connection::handle_input)`(now, bytes) -> consumed`,
//!   [`handle_eof`](Connection::handle_eof), [`handle_timeout`](Connection::handle_timeout).
//!   Partial input is remembered, never an error. When fewer bytes than
//!   offered are consumed, the connection cannot take more yet (a received
//!   message limit is reached, or a server awaits its admission decision):
//!   keep the rest, stop reading the socket, and offer it again after the
//!   application has read events or decided ([`can_read`](Connection::can_read)
//!   says when).
//! - **Commands** — [`send`](Connection::send), [`send_frame`](Connection::send_frame),
//!   [`ping`](Connection::ping), [`pong`](Connection::pong), [`close`](Connection::close),
//!   [`abort`](Connection::abort), and for servers [`accept`](Connection::accept) /
//!   [`respond`](Connection::respond). `Err` means misuse or a full queue (the
//!   payload is handed back); a misbehaving peer never causes an `Err`.
//! - **Output** — [`transmit`](Connection::transmit) gives the unwritten bytes
//!   as slices ready for one vectored write; after writing `n` bytes call
//!   [`advance_transmit`](Connection::advance_transmit). (Or
//!   [`poll_transmit_into`](Connection::poll_transmit_into) copies and advances.)
//!   When [`should_close_socket`](Connection::should_close_socket) is true and
//!   nothing is left to write, close the socket.
//! - **Events and timers** — [`poll_event`](Connection::poll_event) until `None`,
//!   then arm one timer at [`poll_timeout`](Connection::poll_timeout) and call
//!   [`handle_timeout`](Connection::handle_timeout) when it fires.
//!
//! After any input or command, drain output, then events, then re-arm the
//! timer. Every `poll_*` is cheap and idempotent when there is nothing to do.
//!
//! # Limits
//!
//! - A received message larger than `inbound_buffer_size` fails the connection
//!   with 1009, decided from the frame header before its payload is buffered.
//! - Received, unread messages are bounded by `inbound_buffer_size` bytes
//!   (together with the message being reassembled) and `max_queued_packets`
//!   messages (unread pong events count as messages too); when full, input
//!   is not consumed (backpressure, never a drop).
//! - Queued outbound data is bounded by `outbound_buffer_size` payload bytes
//!   and `max_queued_packets` messages; control frames use at most four
//!   fixed slots (automatic pong, ping, pong, close).
//!
//! # permessage-deflate (RFC 7692), feature `deflate`
//!
//! Negotiated when `Config::permessage_deflate` is set and (server) the
//! client offered it. A compressed message is inflated as it arrives, its
//! inflated size checked against `inbound_buffer_size` while inflating (1009
//! as soon as it passes), so a small frame that would inflate to gigabytes
//! costs the limit, not the inflated size. Messages at or above
//! `compression_threshold` bytes are sent compressed when that makes them
//! smaller. Memory per connection on top of the buffers above: a
//! decompressor (about 47.5 KB) while the peer uses context takeover, a
//! compressor (about 250–380 KB with a 9–15 bit window) while we do; with
//! `no_context_takeover` in a direction, nothing is held between messages
//! for it (see [`buffered_memory`](Connection::buffered_memory)).
//!
//! # Closing
//!
//! RFC 6455 §7.1.1: the server closes the TCP connection first. A server
//! asks for the socket to be closed as soon as its close frame is written
//! after a completed handshake or a failure; a client waits for the server
//! to close (or for `close_timeout`).

#[cfg(feature = "deflate")]
mod compression;
mod inbound;
mod outbound;
mod slack;
mod types;

#[cfg(test)]
pub(crate) mod tests;

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use bytes::Bytes;
use rand_core::RngCore;

use crate::config::Config;
use crate::frame::{parse_close_payload, CloseCode, OpCode, MAX_CLOSE_REASON, MAX_CONTROL_PAYLOAD};
use crate::handshake::{self, HandshakeError, HeadScanner};
use crate::time::{Clock, Timestamp};

pub use inbound::MessageKind;
pub use outbound::{Chunks, SharedFrame, TransmitBatch};
pub use types::{
    AcceptOptions, CloseCause, CloseInfo, CommandError, Event, HttpResponse, Message, Request,
    Role, SendError, SendErrorKind, State,
};

use inbound::{Budget, Complete, Reader, Step};
use outbound::{close_frame, control_frame, Class, Outbound};

#[cfg(feature = "deflate")]
pub(crate) use crate::deflate::DeflatePool;

/// Without the `deflate` feature there is nothing to pool.
#[cfg(not(feature = "deflate"))]
#[derive(Debug, Default)]
pub(crate) struct DeflatePool;

/// Compressors and decompressors a host lends to its connections for one
/// message (no context takeover), or `None`: make and free them.
pub(crate) type PoolRef<'a> = Option<&'a mut DeflatePool>;

/// Whether a server shows each request to the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Accept every valid upgrade (sub-protocol chosen from
    /// `supported_protocols`) and answer anything else with 400.
    Automatic,
    /// Emit [`Event::Request`] and wait for [`Connection::accept`] or
    /// [`Connection::respond`].
    Manual,
}

/// The randomness a client needs for keys and masks.
pub type Rng = Box<dyn RngCore + Send>;

/// A client URL that cannot be used.
pub type UrlError = handshake::UrlError;

/// Opening-handshake state; dropped once the connection is open.
#[derive(Debug)]
struct Opening {
    buf: Vec<u8>,
    scanner: HeadScanner,
    /// Client: the accept value we expect.
    accept: handshake::Accept,
    /// Server: the validated upgrade awaiting a decision.
    pending: Option<PendingUpgrade>,
    admission: Admission,
}

#[derive(Debug)]
struct PendingUpgrade {
    accept: handshake::Accept,
    offered: Vec<String>,
    is_upgrade: bool,
    /// Our answer to the client's permessage-deflate offers, if any.
    deflate: Option<handshake::DeflateAnswer>,
}

/// One WebSocket connection. See the [module docs](self) for the contract.
pub struct Connection {
    config: Arc<Config>,
    role: Role,
    state: State,
    clock: Clock,
    opening: Option<Box<Opening>>,
    reader: Reader,
    /// After a close frame arrived or the connection failed, input is discarded.
    input_closed: bool,
    events: VecDeque<Event>,
    /// When the drained event queue gives its buffer back ([`slack`]).
    events_slack: slack::Slack,
    unread_bytes: usize,
    unread_messages: usize,
    elsewhere_bytes: usize,
    elsewhere_messages: usize,
    blocked: bool,
    out: Outbound,
    close_queued: bool,
    close_written: bool,
    close_received: bool,
    failed: bool,
    eof: bool,
    socket_done: bool,
    /// The outcome, decided when the closing starts; emitted on Closed.
    close_info: Option<CloseInfo>,
    closed_emitted: bool,
    rng: Option<Rng>,
    protocol: Option<String>,
    /// The permessage-deflate parameters in force, once open.
    permessage_deflate: Option<handshake::DeflateParams>,
    /// Messages sent compressed.
    compressed_sent: u64,
    #[cfg(feature = "deflate")]
    deflater: Option<Box<compression::Deflater>>,
    handshake_deadline: Timestamp,
    close_deadline: Timestamp,
    next_ping: Timestamp,
    awaiting_pong: bool,
    /// Close frames carry only codes a Godot peer accepts
    /// ([`set_godot_safe_close`](Connection::set_godot_safe_close)).
    godot_safe_close: bool,
}

impl core::fmt::Debug for Connection {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Connection")
            .field("role", &self.role)
            .field("state", &self.state)
            .field("unread_messages", &self.unread_messages)
            .field("queued_bytes", &self.out.pending_bytes())
            .finish_non_exhaustive()
    }
}

impl Connection {
    // ----- construction -------------------------------------------------

    /// A client connection for `url` (`ws://` or `wss://`): the upgrade
    /// request of spec/websocket-peer.md §2.5 is queued at once, and the
    /// handshake timer starts at `now`. The adapter connects to the URL's
    /// host and port (and runs TLS for `wss://`), then writes
    /// [`transmit`](Self::transmit).
    pub fn client(
        config: Arc<Config>,
        url: &str,
        now: Timestamp,
        mut rng: Rng,
    ) -> Result<Connection, ClientError> {
        config.validate().map_err(ClientError::Config)?;
        let parsed = handshake::WsUrl::parse(url).map_err(ClientError::Url)?;
        let key = handshake::generate_key(&mut *rng);
        let protocols: Vec<&str> = config
            .supported_protocols
            .iter()
            .map(String::as_str)
            .collect();
        let headers: Vec<&str> = config
            .handshake_headers
            .iter()
            .map(String::as_str)
            .collect();
        let mut request = alloc::vec![0u8; config.max_handshake_size.max(4096)];
        let len = handshake::write_request_with(
            &parsed,
            &key,
            &protocols,
            config.permessage_deflate.as_ref(),
            &headers,
            &mut request,
        )
        .map_err(|_| ClientError::RequestTooLarge)?;
        request.truncate(len);
        let mut conn = Connection::new(config, Role::Client, now, Admission::Automatic);
        conn.rng = Some(rng);
        if let Some(opening) = conn.opening.as_mut() {
            opening.accept = handshake::accept_key(&key);
        }
        conn.out
            .push_back(SharedFrame::raw(Bytes::from(request)), Class::Http);
        Ok(conn)
    }

    /// A server connection for a socket accepted at `now` (start the timer at
    /// TCP accept, before any TLS, as the engine does: spec §3.5). Fails when
    /// `config` does not pass [`Config::validate`].
    pub fn server(
        config: Arc<Config>,
        now: Timestamp,
        admission: Admission,
    ) -> Result<Connection, crate::config::ConfigError> {
        config.validate()?;
        Ok(Connection::new(config, Role::Server, now, admission))
    }

    /// [`server`](Self::server) for a configuration its owner (a
    /// [`Host`](crate::Host)) validated already.
    pub(crate) fn server_validated(
        config: Arc<Config>,
        now: Timestamp,
        admission: Admission,
    ) -> Connection {
        Connection::new(config, Role::Server, now, admission)
    }

    fn new(config: Arc<Config>, role: Role, now: Timestamp, admission: Admission) -> Connection {
        let mut clock = Clock::default();
        let now = clock.observe(now);
        let handshake_deadline = now.saturating_add(config.handshake_timeout);
        Connection {
            config,
            role,
            state: State::Connecting,
            clock,
            opening: Some(Box::new(Opening {
                buf: Vec::new(),
                scanner: HeadScanner::new(),
                accept: [0; 28],
                pending: None,
                admission,
            })),
            reader: Reader::default(),
            input_closed: false,
            events: VecDeque::new(),
            events_slack: slack::Slack::default(),
            unread_bytes: 0,
            unread_messages: 0,
            elsewhere_bytes: 0,
            elsewhere_messages: 0,
            blocked: false,
            out: Outbound::default(),
            close_queued: false,
            close_written: false,
            close_received: false,
            failed: false,
            eof: false,
            socket_done: false,
            close_info: None,
            closed_emitted: false,
            rng: None,
            protocol: None,
            permessage_deflate: None,
            compressed_sent: 0,
            #[cfg(feature = "deflate")]
            deflater: None,
            handshake_deadline,
            close_deadline: Timestamp::MAX,
            next_ping: Timestamp::MAX,
            awaiting_pong: false,
            godot_safe_close: false,
        }
    }

    // ----- getters ------------------------------------------------------

    /// Client or server.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The ready state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The configuration in force.
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// The negotiated sub-protocol, once open.
    pub fn selected_protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The permessage-deflate parameters in force, once open, if it was
    /// negotiated (RFC 7692 §7.1).
    pub fn permessage_deflate(&self) -> Option<handshake::DeflateParams> {
        self.permessage_deflate
    }

    /// Messages (received, sent) compressed with permessage-deflate so far.
    pub fn compressed_messages(&self) -> (u64, u64) {
        (self.reader.compressed_messages(), self.compressed_sent)
    }

    /// Makes every close frame this connection sends carry a code a
    /// Redot/Godot peer accepts: a code the engine would answer with 1002
    /// (1012–1014, spec/websocket-peer.md §2.7) is replaced by
    /// [`CloseCode::to_godot_safe`], the reason kept. This applies to
    /// [`close`](Self::close) and to the echo of a peer's close frame.
    /// A multiplayer [`Host`](crate::Host) turns it on for all its peers;
    /// off by default (browsers and other RFC 6455 peers get any code).
    pub fn set_godot_safe_close(&mut self, enabled: bool) {
        self.godot_safe_close = enabled;
    }

    /// True when close codes are restricted to those a Godot peer accepts.
    pub fn godot_safe_close(&self) -> bool {
        self.godot_safe_close
    }

    /// How the connection ended (or is ending), once known.
    pub fn close_info(&self) -> Option<&CloseInfo> {
        self.close_info.as_ref()
    }

    /// Payload bytes of queued data messages not yet written
    /// (the engine's `get_current_outbound_buffered_amount`).
    pub fn buffered_amount(&self) -> usize {
        self.out.data_bytes()
    }

    /// Data messages queued and not yet completely written.
    pub fn queued_messages(&self) -> usize {
        self.out.data_messages()
    }

    /// Bytes of received messages waiting in this connection's event queue.
    pub fn unread_bytes(&self) -> usize {
        self.unread_bytes
    }

    /// Received messages waiting in this connection's event queue; unread
    /// [`Event::Pong`]s count too, so that they are bounded by
    /// `max_queued_packets` as well.
    pub fn unread_messages(&self) -> usize {
        self.unread_messages
    }

    /// Tells the connection how many of its messages its owner took out of
    /// the event queue but the application has not read yet: they keep
    /// counting against the inbound limits (a multiplayer host keeps its
    /// received packets in its own queue).
    pub fn set_unread_elsewhere(&mut self, bytes: usize, messages: usize) {
        self.elsewhere_bytes = bytes;
        self.elsewhere_messages = messages;
        if self.has_room() {
            self.blocked = false;
        }
    }

    /// True unless input is being refused until the application reads
    /// (backpressure) or decides on a request.
    pub fn can_read(&self) -> bool {
        if self.opening.as_ref().is_some_and(|o| o.pending.is_some()) {
            return false;
        }
        !self.blocked
    }

    /// Memory held by this connection's buffers, in bytes (approximate: the
    /// capacity of its queues and reassembly buffer, and its permessage-deflate
    /// compressor and decompressor while it holds them; not the struct itself).
    pub fn buffered_memory(&self) -> usize {
        self.reader.partial_capacity()
            + self.unread_bytes
            + self.out.pending_bytes()
            + self.opening.as_ref().map_or(0, |o| o.buf.capacity())
            + self.deflate_memory()
    }

    fn deflate_memory(&self) -> usize {
        #[cfg(feature = "deflate")]
        {
            self.deflater.as_ref().map_or(0, |d| d.memory())
                + if self.reader.holds_decompressor() {
                    compression::DECOMPRESSOR_BYTES
                } else {
                    0
                }
        }
        #[cfg(not(feature = "deflate"))]
        0
    }

    // ----- input --------------------------------------------------------

    /// Feeds bytes read from the socket; returns how many were consumed
    /// (see the [contract](self)).
    pub fn handle_input(&mut self, now: Timestamp, input: &[u8]) -> usize {
        self.handle_input_with(now, input, None)
    }

    /// [`handle_input`](Self::handle_input) with a pool that lends a
    /// decompressor to each compressed message (a host's).
    pub(crate) fn handle_input_with(
        &mut self,
        now: Timestamp,
        input: &[u8],
        mut pool: PoolRef<'_>,
    ) -> usize {
        let now = self.clock.observe(now);
        let mut pos = 0;
        while pos < input.len() {
            match self.state {
                State::Connecting => {
                    let n = self.read_opening(now, &input[pos..]);
                    if n == 0 {
                        break;
                    }
                    pos += n;
                }
                State::Open | State::Closing if !self.input_closed => {
                    let (n, more) = self.read_frames(now, &input[pos..], pool.as_deref_mut());
                    pos += n;
                    if !more {
                        break;
                    }
                }
                // RFC 6455 §1.4 / §7.1.7: after a close or a failure, input is discarded.
                _ => return input.len(),
            }
        }
        pos
    }

    /// The transport reached end of stream (or a read error).
    pub fn handle_eof(&mut self, now: Timestamp) {
        let _ = self.clock.observe(now);
        self.eof = true;
        match self.state {
            State::Closed => {
                self.socket_done = true;
            }
            State::Connecting => {
                let cause = if self.opening.as_ref().is_some_and(|o| !o.buf.is_empty()) {
                    CloseCause::Handshake(HandshakeError::Malformed)
                } else {
                    CloseCause::Eof
                };
                self.terminate(cause);
            }
            State::Open | State::Closing => {
                if self.close_received && self.close_written {
                    self.finish();
                } else if self.close_received {
                    // RFC 6455 §5.5.1: the peer's close is echoed; a peer that
                    // half-closed after its close frame still reads, so the
                    // queued echo is written first (`close_timeout` bounds it).
                } else if self.failed {
                    // We already failed it; the peer closing now is the expected end.
                    self.out.clear();
                    self.finish();
                } else {
                    self.terminate(CloseCause::Eof);
                }
            }
        }
    }

    /// Runs the timers that are due at `now`.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let now = self.clock.observe(now);
        match self.state {
            State::Connecting if now >= self.handshake_deadline => {
                // spec/websocket-peer.md §3.5: a late handshake is dropped silently.
                self.terminate(CloseCause::HandshakeTimeout);
            }
            State::Open if now >= self.next_ping => {
                if self.awaiting_pong {
                    // spec/websocket-peer.md §2.9: unanswered for a whole interval → drop.
                    self.terminate(CloseCause::HeartbeatTimeout);
                } else {
                    let interval = self.config.heartbeat_interval.unwrap_or_default();
                    // A ping still waiting (the application's, or ours when
                    // the socket is stalled) serves: any pong answers the
                    // heartbeat (spec §2.9). Replacing it would drop the
                    // application's payload.
                    if !self.out.has_unstarted(Class::Ping) {
                        let mask = self.mask_key();
                        self.out.push_control(
                            control_frame(OpCode::Ping, &[], mask),
                            Class::Ping,
                            false,
                        );
                    }
                    self.awaiting_pong = true;
                    self.next_ping = now.saturating_add(interval);
                }
            }
            State::Closing | State::Closed if now >= self.close_deadline => {
                self.close_deadline = Timestamp::MAX;
                if self.state == State::Closed {
                    // A client waited for the server to close the TCP connection.
                    self.socket_done = true;
                    self.out.clear();
                } else {
                    self.terminate(CloseCause::CloseTimeout);
                }
            }
            _ => {}
        }
    }

    // ----- commands -----------------------------------------------------

    /// Queues one message as a single unfragmented frame (spec §2.4: the
    /// engine never fragments, and some engine builds mishandle fragments).
    /// Server frames share `payload` without copying; client frames are
    /// masked into a new buffer.
    pub fn send(
        &mut self,
        now: Timestamp,
        kind: MessageKind,
        payload: Bytes,
    ) -> Result<(), SendError> {
        self.send_with(now, kind, payload, None)
    }

    /// [`send`](Self::send) with a pool that lends a compressor when this
    /// connection keeps none (a host's).
    pub(crate) fn send_with(
        &mut self,
        now: Timestamp,
        kind: MessageKind,
        payload: Bytes,
        pool: PoolRef<'_>,
    ) -> Result<(), SendError> {
        let _ = self.clock.observe(now);
        if let Err(kind) = self.check_send(payload.len()) {
            return Err(SendError { kind, payload });
        }
        let opcode = match kind {
            MessageKind::Text => OpCode::Text,
            MessageKind::Binary => OpCode::Binary,
        };
        let key = self.mask_key();
        // RFC 7692 §6.1: a compressed message has RSV1 on its (only) frame.
        if let Some(frame) = self.compressed_frame(opcode, &payload, key, pool) {
            self.compressed_sent += 1;
            self.out.push_back(frame, Class::Data);
            return Ok(());
        }
        let frame = match key {
            Some(key) => SharedFrame::masked(opcode, &payload, key),
            None => SharedFrame::plain(opcode, payload),
        };
        self.out.push_back(frame, Class::Data);
        Ok(())
    }

    /// The message compressed into one frame, when permessage-deflate is in
    /// force, the message reaches the threshold and it gets smaller.
    #[allow(unused_variables)]
    fn compressed_frame(
        &mut self,
        opcode: OpCode,
        payload: &[u8],
        key: Option<[u8; 4]>,
        pool: PoolRef<'_>,
    ) -> Option<SharedFrame> {
        #[cfg(feature = "deflate")]
        {
            let deflater = self.deflater.as_mut().filter(|d| d.wants(payload.len()))?;
            let z = deflater.compress(payload, pool)?;
            Some(match key {
                Some(key) => SharedFrame::masked_rsv(opcode, inbound::RSV1, &z, key),
                None => SharedFrame::compressed(opcode, z),
            })
        }
        #[cfg(not(feature = "deflate"))]
        None
    }

    /// Queues a frame encoded once for many server connections (a
    /// broadcast): the bytes are shared, not copied. With permessage-deflate
    /// in force, a frame made by [`SharedFrame::unmasked`] goes out
    /// compressed when that pays: with `server_no_context_takeover` as the
    /// frame's shared variant for our window (compressed once for every
    /// such receiver), otherwise compressed by this connection.
    pub fn send_frame(&mut self, frame: &SharedFrame) -> Result<(), SendErrorKind> {
        self.send_frame_with(frame, None)
    }

    /// [`send_frame`](Self::send_frame) with a pool that lends a compressor
    /// (a host's).
    #[allow(unused_mut, unused_variables)]
    pub(crate) fn send_frame_with(
        &mut self,
        frame: &SharedFrame,
        pool: PoolRef<'_>,
    ) -> Result<(), SendErrorKind> {
        if self.role == Role::Client {
            return Err(SendErrorKind::WrongRole);
        }
        self.check_send(frame.payload_len())?;
        let mut out = None;
        #[cfg(feature = "deflate")]
        if let (Some(deflater), Some((opcode, payload))) = (self.deflater.as_mut(), frame.message())
        {
            if deflater.wants(payload.len()) {
                out = if deflater.takeover() {
                    deflater
                        .compress(payload, pool)
                        .map(|z| SharedFrame::compressed(opcode, z))
                } else {
                    let d = &**deflater;
                    frame.compressed_variant(d.window_bits(), |p| d.compress_fresh(p, pool))
                };
            }
        }
        let frame = match out {
            Some(compressed) => {
                self.compressed_sent += 1;
                compressed
            }
            None => frame.clone(),
        };
        self.out.push_back(frame, Class::Data);
        Ok(())
    }

    /// Would a message of `len` bytes be accepted now?
    pub fn check_send(&self, len: usize) -> Result<(), SendErrorKind> {
        if self.state != State::Open || self.close_queued {
            return Err(SendErrorKind::NotOpen);
        }
        // spec/websocket-peer.md §2.4a: count first, then bytes; a byte limit
        // of 0 disables the byte check (spec §2.2).
        let max_bytes = self.config.outbound_buffer_size;
        if max_bytes > 0 && len > max_bytes {
            return Err(SendErrorKind::TooLarge);
        }
        if self.out.data_messages() >= self.config.max_queued_packets
            || (max_bytes > 0 && self.out.data_bytes().saturating_add(len) > max_bytes)
        {
            return Err(SendErrorKind::QueueFull);
        }
        Ok(())
    }

    /// Queues a ping (payload ≤ 125 bytes, RFC 6455 §5.5.2). One
    /// application ping may wait at a time.
    pub fn ping(&mut self, now: Timestamp, payload: &[u8]) -> Result<(), CommandError> {
        self.control(now, OpCode::Ping, Class::Ping, payload)
    }

    /// Queues an unsolicited pong (RFC 6455 §5.5.3). It never replaces a
    /// pending automatic pong.
    pub fn pong(&mut self, now: Timestamp, payload: &[u8]) -> Result<(), CommandError> {
        self.control(now, OpCode::Pong, Class::UserPong, payload)
    }

    fn control(
        &mut self,
        now: Timestamp,
        opcode: OpCode,
        class: Class,
        payload: &[u8],
    ) -> Result<(), CommandError> {
        let _ = self.clock.observe(now);
        if self.state != State::Open || self.close_queued {
            return Err(CommandError::InvalidState);
        }
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(CommandError::PayloadTooLong);
        }
        if self.out.has_unstarted(class) {
            return Err(CommandError::QueueFull);
        }
        let mask = self.mask_key();
        self.out
            .push_control(control_frame(opcode, payload, mask), class, false);
        Ok(())
    }

    /// Starts the closing handshake with `code` and `reason` (≤ 123 bytes).
    /// While connecting, the connection is dropped at once (spec §2.10).
    /// Already closing or closed: nothing happens.
    pub fn close(
        &mut self,
        now: Timestamp,
        code: CloseCode,
        reason: &str,
    ) -> Result<(), CommandError> {
        let now = self.clock.observe(now);
        // RFC 6455 §7.4.1: 1005, 1006 and 1015 must not be sent.
        if !code.is_sendable() {
            return Err(CommandError::InvalidCloseCode);
        }
        // RFC 6455 §5.5: control payload ≤ 125 bytes, so the reason ≤ 123.
        if reason.len() > MAX_CLOSE_REASON {
            return Err(CommandError::PayloadTooLong);
        }
        match self.state {
            State::Connecting => {
                self.terminate(CloseCause::Aborted);
                Ok(())
            }
            State::Open if !self.close_queued => {
                let sent = self.queue_close(now, Some(code), reason);
                self.close_info = Some(CloseInfo {
                    code: sent.unwrap_or(code),
                    reason: reason.to_string(),
                    clean: false,
                    cause: CloseCause::LocalClose,
                });
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Drops the connection at once: no close frame, nothing more written
    /// (the engine's `close(-1)`).
    pub fn abort(&mut self, now: Timestamp) {
        let _ = self.clock.observe(now);
        if self.state != State::Closed {
            self.terminate(CloseCause::Aborted);
        }
        self.socket_done = true;
        self.out.clear();
    }

    /// Server, manual admission: accepts the request shown in
    /// [`Event::Request`]. The 101 response is queued and the connection is
    /// open at once (frames queued now follow the response).
    pub fn accept(&mut self, now: Timestamp, options: AcceptOptions) -> Result<(), CommandError> {
        let now = self.clock.observe(now);
        let Some(pending) = self.opening.as_ref().and_then(|o| o.pending.as_ref()) else {
            return Err(CommandError::InvalidState);
        };
        if !pending.is_upgrade {
            return Err(CommandError::NotAnUpgrade);
        }
        let protocol = match options.protocol {
            // RFC 6455 §4.2.2 /subprotocol/: one of the client's values.
            Some(p) if pending.offered.contains(&p) => Some(p),
            Some(_) => return Err(CommandError::ProtocolNotOffered),
            None => {
                let supported: Vec<&str> = self
                    .config
                    .supported_protocols
                    .iter()
                    .map(String::as_str)
                    .collect();
                pending
                    .offered
                    .iter()
                    .find(|o| supported.contains(&o.as_str()))
                    .cloned()
            }
        };
        let mut headers: Vec<&str> = self
            .config
            .handshake_headers
            .iter()
            .map(String::as_str)
            .collect();
        headers.extend(options.headers.iter().map(String::as_str));
        let mut response = alloc::vec![0u8; 4096];
        let deflate = pending.deflate;
        let len = handshake::write_accept_response_with(
            &pending.accept,
            protocol.as_deref(),
            deflate.as_ref(),
            &headers,
            &mut response,
        )
        .map_err(|_| CommandError::ResponseTooLarge)?;
        response.truncate(len);
        self.out
            .push_back(SharedFrame::raw(Bytes::from(response)), Class::Http);
        self.open(now, protocol, deflate.map(|a| a.params));
        Ok(())
    }

    /// Server: answers the pending request with a plain HTTP response (a
    /// refusal, or the answer to a non-WebSocket request); the socket is
    /// closed once it is written.
    pub fn respond(&mut self, now: Timestamp, response: HttpResponse) -> Result<(), CommandError> {
        let _ = self.clock.observe(now);
        if self.opening.as_ref().is_none_or(|o| o.pending.is_none()) {
            return Err(CommandError::InvalidState);
        }
        self.write_http(&response)?;
        self.terminate_after_write(CloseCause::HttpResponse(response.status));
        Ok(())
    }

    // ----- output -------------------------------------------------------

    /// The unwritten output, as slices in order (for one vectored write).
    pub fn transmit(&self) -> Chunks<'_> {
        self.out.chunks()
    }

    /// Hands out the front of the unwritten output for a write done outside
    /// whatever lock guards this connection: up to `max_frames` frames and
    /// about `max_bytes` bytes (at least one frame) are cloned into `batch`
    /// (a shared body is not copied). Those frames count as started: control
    /// frames queued meanwhile go behind them, and a failure never drops
    /// them. Report what was written with
    /// [`advance_transmit`](Self::advance_transmit); the next lease starts
    /// again at the first unwritten byte.
    pub fn lease_transmit(
        &mut self,
        batch: &mut TransmitBatch,
        max_frames: usize,
        max_bytes: usize,
    ) {
        self.out.lease(batch, max_frames, max_bytes);
    }

    /// Total unwritten output bytes.
    pub fn transmit_len(&self) -> usize {
        self.out.pending_bytes()
    }

    /// Marks `n` bytes of [`transmit`](Self::transmit) as written.
    pub fn advance_transmit(&mut self, now: Timestamp, n: usize) {
        let _ = self.clock.observe(now);
        let mut wrote_close = false;
        self.out
            .advance(n, |class| wrote_close |= class == Class::Close);
        if wrote_close {
            self.close_written = true;
            self.after_close_progress();
        }
    }

    /// Copies as much output as fits into `buf`, marks it written, and
    /// returns the number of bytes copied.
    pub fn poll_transmit_into(&mut self, now: Timestamp, buf: &mut [u8]) -> usize {
        let mut n = 0;
        for chunk in self.out.chunks() {
            let take = chunk.len().min(buf.len() - n);
            buf[n..n + take].copy_from_slice(&chunk[..take]);
            n += take;
            if n == buf.len() {
                break;
            }
        }
        self.advance_transmit(now, n);
        n
    }

    /// True when the socket should be closed now (after writing whatever
    /// [`transmit`](Self::transmit) still holds).
    pub fn should_close_socket(&self) -> bool {
        self.socket_done
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events_slack.note(self.events.len());
        let event = self.events.pop_front()?;
        if self.events.is_empty() && self.events_slack.drained(self.events.capacity()) {
            self.events = VecDeque::new();
        }
        let bytes = match &event {
            Event::Message(m) => Some(m.data.len()),
            // Counted in `unread_messages` only (see `on_unit`).
            Event::Pong(_) => Some(0),
            _ => None,
        };
        if let Some(bytes) = bytes {
            self.unread_bytes -= bytes;
            self.unread_messages -= 1;
            if self.has_room() {
                self.blocked = false;
            }
        }
        Some(event)
    }

    /// True when the next event is a received message (lets a
    /// [`Host`](crate::Host) leave messages in this queue while it holds a
    /// peer back, taking the other events).
    pub(crate) fn next_event_is_message(&self) -> bool {
        matches!(self.events.front(), Some(Event::Message(_)))
    }

    /// The earliest deadline at which [`handle_timeout`](Self::handle_timeout)
    /// has work, if any.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let t = match self.state {
            State::Connecting => self.handshake_deadline,
            State::Open => self.next_ping.min(self.close_deadline),
            State::Closing | State::Closed => self.close_deadline,
        };
        (t != Timestamp::MAX && !self.socket_done).then_some(t)
    }

    // ----- internals ----------------------------------------------------

    fn mask_key(&mut self) -> Option<[u8; 4]> {
        // RFC 6455 §5.3: a fresh, unpredictable key per client frame.
        self.rng.as_mut().map(|r| r.next_u32().to_ne_bytes())
    }

    fn has_room(&self) -> bool {
        self.unread_bytes + self.elsewhere_bytes + self.reader.partial_len()
            < self.config.inbound_buffer_size
            && self.unread_messages + self.elsewhere_messages < self.config.max_queued_packets
    }

    fn budget(&self) -> Budget {
        let held = self.unread_bytes + self.elsewhere_bytes + self.reader.partial_len();
        Budget {
            max_message: self.config.inbound_buffer_size,
            bytes: self.config.inbound_buffer_size.saturating_sub(held),
            may_start: self.unread_messages + self.elsewhere_messages
                < self.config.max_queued_packets,
            expect_masked: self.role == Role::Server,
        }
    }

    /// Reads frames; returns (consumed, keep going).
    fn read_frames(
        &mut self,
        now: Timestamp,
        input: &[u8],
        mut pool: PoolRef<'_>,
    ) -> (usize, bool) {
        let mut pos = 0;
        while pos < input.len() && !self.input_closed {
            let budget = self.budget();
            match self.reader.step(&input[pos..], budget, pool.as_deref_mut()) {
                Step::Progress(n) => pos += n,
                Step::NeedMore(n) => return (pos + n, false),
                Step::Blocked(n) => {
                    self.blocked = true;
                    return (pos + n, false);
                }
                Step::Complete(n, unit) => {
                    pos += n;
                    self.on_unit(now, unit);
                }
                Step::Fail(code, reason) => {
                    self.fail(now, code, reason);
                    return (input.len(), false);
                }
            }
        }
        if self.input_closed {
            (input.len(), false)
        } else {
            (pos, true)
        }
    }

    fn on_unit(&mut self, now: Timestamp, unit: Complete) {
        match unit {
            Complete::Message(kind, data) => {
                self.unread_bytes += data.len();
                self.unread_messages += 1;
                self.events.push_back(Event::Message(Message {
                    kind,
                    data: Bytes::from(data),
                }));
            }
            Complete::Ping(payload) => {
                // RFC 6455 §5.5.2: answer with a pong carrying the same data,
                // unless a close frame is already queued (§5.5.1).
                if self.config.auto_pong && !self.close_queued {
                    let mask = self.mask_key();
                    let frame = control_frame(OpCode::Pong, payload.as_slice(), mask);
                    let full =
                        self.out.unstarted_count(Class::AutoPong) >= outbound::MAX_PENDING_PONGS;
                    self.out.push_control(frame, Class::AutoPong, full);
                }
            }
            Complete::Pong(payload) => {
                self.awaiting_pong = false;
                // Pong events count against `max_queued_packets` like
                // messages (not against the byte limit: ≤ 125 bytes each):
                // otherwise a peer flooding unsolicited pongs (RFC 6455
                // §5.5.3 allows them) grows the event queue without bound
                // while the application is not reading.
                self.unread_messages += 1;
                self.events
                    .push_back(Event::Pong(Bytes::copy_from_slice(payload.as_slice())));
            }
            Complete::Close(payload) => match parse_close_payload(payload.as_slice()) {
                Err(e) => {
                    let code = e.close_code();
                    self.fail(now, code, "invalid close frame");
                }
                Ok(parsed) => {
                    self.close_received = true;
                    self.input_closed = true;
                    self.reader.reset();
                    let (code, reason) = match parsed {
                        Some((code, reason)) => (Some(code), reason),
                        None => (None, ""),
                    };
                    if self.close_queued {
                        // We started it; this is the answer (RFC 6455 §7.1.2).
                        if let Some(info) = self.close_info.as_mut() {
                            if info.cause == CloseCause::LocalClose {
                                info.code = code.unwrap_or(CloseCode::NO_STATUS);
                                info.reason = reason.to_string();
                                info.clean = true;
                            }
                        }
                    } else {
                        // RFC 6455 §5.5.1: echo the peer's code (and, like the
                        // engine, its reason); an empty close is echoed empty.
                        self.close_info = Some(CloseInfo {
                            code: code.unwrap_or(CloseCode::NO_STATUS),
                            reason: reason.to_string(),
                            clean: true,
                            cause: CloseCause::RemoteClose,
                        });
                        // Queued data is still sent before the echo.
                        let _ = self.queue_close(now, code, reason);
                    }
                    self.after_close_progress();
                }
            },
        }
    }

    /// Queues our close frame and starts the close timer; returns the code
    /// put in the frame (see [`set_godot_safe_close`](Self::set_godot_safe_close)).
    fn queue_close(
        &mut self,
        now: Timestamp,
        code: Option<CloseCode>,
        reason: &str,
    ) -> Option<CloseCode> {
        let code = match code {
            Some(c) if self.godot_safe_close => Some(c.to_godot_safe()),
            other => other,
        };
        let mask = self.mask_key();
        self.out
            .push_back(close_frame(code, reason, mask), Class::Close);
        self.close_queued = true;
        self.state = State::Closing;
        self.close_deadline = now.saturating_add(self.config.close_timeout);
        self.next_ping = Timestamp::MAX;
        code
    }

    /// Fails the connection (RFC 6455 §7.1.7): close frame with `code`, no
    /// more input, and (server) the socket closed once it is written.
    fn fail(&mut self, now: Timestamp, code: CloseCode, reason: &'static str) {
        self.input_closed = true;
        self.reader.reset();
        self.failed = true;
        self.close_info = Some(CloseInfo {
            code,
            reason: reason.to_string(),
            clean: false,
            cause: CloseCause::ProtocolError,
        });
        if !self.close_queued {
            self.out.drop_unstarted_data();
            // spec/websocket-peer.md §6: the failure close frame carries the
            // code only (`88 02 03 EA` / `03 EF` / `03 F1`); the reason text
            // is for the local `CloseInfo`, never put on the wire.
            let _ = self.queue_close(now, Some(code), "");
        }
        self.after_close_progress();
    }

    /// After our close frame was written or the peer's close arrived.
    fn after_close_progress(&mut self) {
        if !self.close_written {
            return;
        }
        if self.close_received || self.failed {
            self.finish();
            // RFC 6455 §7.1.1: the server closes the TCP connection first;
            // the client waits for it (close_timeout bounds the wait).
            if self.role == Role::Server || self.eof {
                self.socket_done = true;
            }
        }
    }

    /// Moves to CLOSED and reports it once.
    fn finish(&mut self) {
        self.state = State::Closed;
        self.opening = None;
        self.reader.reset();
        self.input_closed = true;
        if self.eof {
            self.socket_done = true;
        }
        if !self.closed_emitted {
            self.closed_emitted = true;
            let info = self.close_info.clone().unwrap_or(CloseInfo {
                code: CloseCode::ABNORMAL,
                reason: String::new(),
                clean: false,
                cause: CloseCause::Eof,
            });
            self.events.push_back(Event::Closed(info));
        }
    }

    /// Ends the connection without a closing handshake.
    fn terminate(&mut self, cause: CloseCause) {
        self.out.clear();
        self.terminate_after_write(cause);
    }

    /// Ends the connection without a closing handshake, once the queued
    /// output (an HTTP response) is written.
    fn terminate_after_write(&mut self, cause: CloseCause) {
        let keep_local = matches!(&self.close_info, Some(i) if i.clean);
        if !keep_local {
            self.close_info = Some(CloseInfo {
                code: CloseCode::ABNORMAL,
                reason: String::new(),
                clean: false,
                cause,
            });
        }
        self.socket_done = true;
        self.close_deadline = Timestamp::MAX;
        self.finish();
    }

    fn open(
        &mut self,
        now: Timestamp,
        protocol: Option<String>,
        deflate: Option<handshake::DeflateParams>,
    ) {
        self.opening = None;
        self.state = State::Open;
        self.protocol.clone_from(&protocol);
        if let (Some(params), Some(config)) = (deflate, self.config.permessage_deflate) {
            self.permessage_deflate = Some(params);
            // RFC 7692 §7.1.1: the peer keeps its history unless told not to.
            let peer_takeover = match self.role {
                Role::Server => !params.client_no_context_takeover,
                Role::Client => !params.server_no_context_takeover,
            };
            self.reader.enable_inflate(peer_takeover);
            #[cfg(feature = "deflate")]
            {
                self.deflater = Some(Box::new(compression::Deflater::new(
                    self.role, &params, &config,
                )));
            }
            #[cfg(not(feature = "deflate"))]
            let _ = config;
        }
        if let Some(interval) = self.config.heartbeat_interval {
            if !interval.is_zero() {
                self.next_ping = now.saturating_add(interval);
            }
        }
        self.events.push_back(Event::Open { protocol });
    }

    fn write_http(&mut self, response: &HttpResponse) -> Result<(), CommandError> {
        let headers: Vec<(&str, &str)> = response
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let mut buf = alloc::vec![0u8; 1024 + response.body.len() + 64 * headers.len()
            + headers.iter().map(|(n, v)| n.len() + v.len()).sum::<usize>()];
        let len =
            handshake::write_http_response(response.status, &headers, &response.body, &mut buf)
                .map_err(|_| CommandError::ResponseTooLarge)?;
        buf.truncate(len);
        self.out
            .push_back(SharedFrame::raw(Bytes::from(buf)), Class::Http);
        Ok(())
    }

    /// Reads the HTTP head; returns bytes consumed (0: cannot take more now).
    fn read_opening(&mut self, now: Timestamp, input: &[u8]) -> usize {
        let max = self.config.max_handshake_size;
        let Some(opening) = self.opening.as_mut() else {
            return 0;
        };
        if opening.pending.is_some() {
            return 0;
        }
        let old = opening.buf.len();
        let take = input.len().min(max.saturating_sub(old) + 1);
        opening.buf.extend_from_slice(&input[..take]);
        let Some(end) = opening.scanner.find_end(&opening.buf) else {
            if opening.buf.len() > max {
                self.opening_failed(now, HandshakeError::TooLarge);
                return input.len();
            }
            return take;
        };
        // The head ends at its first CRLFCRLF, as the engine reads it (spec
        // §2.5, §2.6 step 1); what follows is frames, left in `input`. The
        // parse must end the head at the same byte (`exact_head`).
        opening.buf.truncate(end);
        let consumed = end - old;
        match self.role {
            Role::Client => self.finish_client_opening(now),
            Role::Server => self.finish_server_opening(now),
        }
        consumed
    }

    fn finish_client_opening(&mut self, now: Timestamp) {
        let Some(opening) = self.opening.take() else {
            return;
        };
        let offered: Vec<&str> = self
            .config
            .supported_protocols
            .iter()
            .map(String::as_str)
            .collect();
        match handshake::parse_response_with(
            &opening.buf,
            &opening.accept,
            &offered,
            self.config.permessage_deflate.as_ref(),
            self.config.max_handshake_size,
        ) {
            Ok(Some(response)) => match exact_head(response.header_len, opening.buf.len()) {
                Ok(()) => {
                    let protocol = response.protocol.map(ToString::to_string);
                    self.open(now, protocol, response.permessage_deflate);
                }
                Err(e) => self.opening_failed(now, e),
            },
            Ok(None) => self.opening_failed(now, HandshakeError::Malformed),
            Err(e) => self.opening_failed(now, e),
        }
    }

    fn finish_server_opening(&mut self, now: Timestamp) {
        let Some(mut opening) = self.opening.take() else {
            return;
        };
        let result = read_request(&opening.buf, &self.config);
        opening.buf = Vec::new();
        let admission = opening.admission;
        let (request, pending) = match result {
            Ok(r) => r,
            Err(e) => {
                self.opening = Some(opening);
                return self.opening_failed(now, e);
            }
        };
        opening.pending = Some(pending);
        self.opening = Some(opening);
        match admission {
            Admission::Manual => self.events.push_back(Event::Request(Box::new(request))),
            Admission::Automatic if request.is_upgrade => {
                if self.accept(now, AcceptOptions::default()).is_err() {
                    let _ = self.respond(now, HttpResponse::text(500, "response too large\n"));
                }
            }
            // Not an upgrade: the plain default answers 400.
            Admission::Automatic => {
                let _ = self.respond(now, HttpResponse::text(400, "WebSocket upgrade expected\n"));
            }
        }
    }

    /// A broken opening handshake: a server answers with an HTTP error
    /// (RFC 6455 §4.2.1: 400, or 426 with the supported version), a client
    /// just drops the connection.
    fn opening_failed(&mut self, _now: Timestamp, error: HandshakeError) {
        if self.role == Role::Server {
            let mut response = HttpResponse::text(error.http_status(), "bad WebSocket request\n");
            // RFC 6455 §4.4 (426: `Sec-WebSocket-Version: 13`) and RFC 9110
            // §15.5.6 (405: `Allow: GET`): the headers the error answer needs.
            for (name, value) in error.response_headers() {
                response
                    .headers
                    .push(((*name).to_string(), (*value).to_string()));
            }
            if self.write_http(&response).is_err() {
                self.out.clear();
            }
            self.terminate_after_write(CloseCause::Handshake(error));
        } else {
            self.terminate(CloseCause::Handshake(error));
        }
    }
}

/// Parses a complete request head into the owned form shown to the
/// application and what `accept` needs (RFC 6455 §4.2.1).
fn read_request(buf: &[u8], config: &Config) -> Result<(Request, PendingUpgrade), HandshakeError> {
    let max = config.max_handshake_size;
    let request = handshake::parse_request(buf, max)?.ok_or(HandshakeError::Malformed)?;
    exact_head(request.header_len, buf.len())?;
    let upgrade = if request.is_upgrade() {
        Some(handshake::validate_upgrade(&request)?)
    } else {
        None
    };
    let offered: Vec<String> = upgrade
        .and_then(|u| u.protocols)
        .map(|raw| {
            handshake::server::protocol_entries(raw)
                .filter_map(|p| core::str::from_utf8(p).ok())
                .map(ToString::to_string)
                .collect()
        })
        .unwrap_or_default();
    let owned = Request {
        method: request.method.to_string(),
        path: request.path.to_string(),
        headers: request
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v).into_owned()))
            .collect(),
        protocols: offered.clone(),
        is_upgrade: upgrade.is_some(),
    };
    let accept = upgrade.map_or([0; 28], |u| handshake::accept_key(u.key));
    // RFC 7692 §5: answer the client's permessage-deflate offers, if we may.
    let deflate = match (&upgrade, &config.permessage_deflate) {
        (Some(_), Some(ours)) => {
            handshake::deflate::negotiate(request.headers_named("sec-websocket-extensions"), ours)
        }
        _ => None,
    };
    Ok((
        owned,
        PendingUpgrade {
            accept,
            offered,
            is_upgrade: upgrade.is_some(),
            deflate,
        },
    ))
}

/// The head httparse parsed must be exactly the bytes consumed as the head
/// (up to the first CRLFCRLF). httparse also ends a head at a bare-LF empty
/// line; one before the CRLFCRLF would leave the bytes between the two ends
/// neither head nor frames, so such a head is malformed.
fn exact_head(header_len: usize, consumed: usize) -> Result<(), HandshakeError> {
    if header_len == consumed {
        Ok(())
    } else {
        Err(HandshakeError::Malformed)
    }
}

/// A client connection that could not be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientError {
    /// The configuration is invalid.
    Config(crate::config::ConfigError),
    /// The URL is not a usable `ws://` or `wss://` URL.
    Url(UrlError),
    /// The request would exceed `max_handshake_size` (too many or too long
    /// `handshake_headers`).
    RequestTooLarge,
}

impl core::fmt::Display for ClientError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ClientError::Config(e) => write!(f, "invalid configuration: {e}"),
            ClientError::Url(e) => write!(f, "invalid URL: {e}"),
            ClientError::RequestTooLarge => f.write_str("upgrade request too large"),
        }
    }
}

impl core::error::Error for ClientError {}
