//! The multiplayer host: Redot/Godot 4's `WebSocketMultiplayerPeer` as a
//! sans-IO state machine (spec/websocket-peer.md §3).
//!
//! # Roles
//!
//! - **Server** ([`Host::server`]): the adapter reports each accepted socket
//!   at TCP accept time ([`Host::accept`]), so the handshake timer covers TCP,
//!   TLS and the HTTP upgrade. The peer is *pending* until the upgrade
//!   completes; then the 4-byte id message is queued before anything else,
//!   the peer joins the connected set and [`HostEvent::PeerConnected`] is
//!   emitted. Pending peers that miss `handshake_timeout` are dropped and
//!   counted.
//! - **Client** ([`Host::client`]): one connection to the server (peer 1).
//!   It is CONNECTING until a valid id message arrives (exactly 4 bytes,
//!   value ≥ 2); then CONNECTED and `PeerConnected(1)`. Unlike the engine,
//!   the wait for the id is covered by `handshake_timeout` too.
//!
//! # Driving it
//!
//! Like [`Connection`], with a peer id on every socket call:
//! [`handle_input`](Host::handle_input), [`handle_eof`](Host::handle_eof),
//! [`transmit`](Host::transmit) / [`advance_transmit`](Host::advance_transmit),
//! [`should_close_socket`](Host::should_close_socket) then
//! [`release`](Host::release) once the socket is closed, and one timer for the
//! whole host ([`poll_timeout`](Host::poll_timeout) /
//! [`handle_timeout`](Host::handle_timeout)). [`poll_dirty`](Host::poll_dirty)
//! names the peers that have new output or must be closed, so an adapter only
//! visits those.
//!
//! # Packets and events
//!
//! [`poll_event`](Host::poll_event) returns every event in order, packets
//! included; [`get_packet`](Host::get_packet) takes the oldest packet and
//! [`poll_signal`](Host::poll_signal) the oldest non-packet event, for
//! engine-style use. Packets received from a peer stay readable after its
//! `PeerDisconnected`, in order, until read or until [`close`](Host::close).
//! Per peer, unread packets are bounded by `inbound_buffer_size` bytes and
//! `max_queued_packets` packets; a full peer is simply not read until the
//! application catches up (backpressure, never a drop).
//!
//! # Released peers
//!
//! Packets stay readable after [`release`](Host::release) too. They keep
//! counting, under the released peer's id, against one host-wide budget for
//! released peers: `inbound_buffer_size` bytes and `max_queued_packets`
//! packets (one peer's worth). While that budget is used up, the input of
//! connected peers is paused: [`handle_input`](Host::handle_input) consumes
//! nothing and [`can_read`](Host::can_read) turns false; reading the
//! released peers' packets resumes them, and [`poll_dirty`](Host::poll_dirty)
//! names each paused peer. Messages a paused peer's connection holds
//! already (read behind the upgrade request before [`adopt`](Host::adopt))
//! stay there, counted against its own limits, until it resumes; released
//! before that, they go with it like bytes left in its socket (counted in
//! [`HostStats::dropped_paused`]). A released id is not given to a new peer
//! ([`accept`](Host::accept), [`reserve_id`](Host::reserve_id),
//! [`adopt`](Host::adopt)) until its packets are read.
//!
//! So a client that connects, fills its queue, disconnects and reconnects
//! gains nothing (nor one that sends frames right behind its upgrade
//! request: they wait too): packets enter the host only while the released
//! budget has room, into a peer with room, so everything the host holds
//! unread stays below one budget plus one peer's limits per peer connected
//! at once.
//!
//! # Close codes
//!
//! Every close frame a host sends carries a code a Redot/Godot peer accepts
//! ([`CloseCode::to_godot_safe`]: 1012 → 1001, 1013 → 1008, 1014 → 1011,
//! reason kept; spec/websocket-peer.md §2.7): the code chosen in
//! [`disconnect_peer_with`](Host::disconnect_peer_with) and the echo of a
//! peer's close alike. A plain [`Connection`] sends any RFC 6455 code.

mod ids;
mod timers;

#[cfg(test)]
mod tests;

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::sync::Arc;
use alloc::vec::Vec;
use bytes::Bytes;
use core::fmt;
use core::net::SocketAddr;

use crate::config::{Config, ConfigError};
use crate::connection::{
    AcceptOptions, Admission, Chunks, ClientError, CloseInfo, CommandError, Connection,
    DeflatePool, Event, HttpResponse, MessageKind, Request, Rng, SendErrorKind, SharedFrame, State,
    TransmitBatch,
};
use crate::frame::CloseCode;
use crate::time::{Clock, Timestamp};

pub use ids::{decode_id_message, encode_id_message, PeerId, Target, ID_MESSAGE_LEN};
use timers::Timers;

/// The engine's `ConnectionStatus` (spec/websocket-peer.md §3.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionStatus {
    /// Not connected (after `close()`, a failed or lost client connection).
    Disconnected,
    /// A client waiting for its connection and id.
    Connecting,
    /// A server (from creation) or a client that received its id.
    Connected,
}

/// Why a client never became connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectFailure {
    /// The WebSocket connection ended before the id arrived.
    Closed(CloseInfo),
    /// The first message was not a valid id message (spec §3.6).
    InvalidId,
    /// No id within `handshake_timeout` (the engine waits forever; we don't).
    Timeout,
}

/// Something that happened on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostEvent {
    /// A peer joined (server: a client got its id; client: the server, 1).
    PeerConnected(PeerId),
    /// A connected peer left.
    PeerDisconnected {
        /// Who.
        peer: PeerId,
        /// How its connection ended, when known.
        info: Option<CloseInfo>,
    },
    /// A packet (one complete message) from a connected peer.
    Packet {
        /// The sender.
        from: PeerId,
        /// The bytes.
        data: Bytes,
    },
    /// Server with an admission hook: a pending peer's HTTP request awaits
    /// [`Host::accept_request`] or [`Host::respond`]. Delivered by
    /// [`Host::poll_request`], not by `poll_event`: admission is the
    /// adapter's business, events are the application's.
    Request {
        /// The pending peer.
        peer: PeerId,
        /// What it asked for.
        request: Box<Request>,
    },
    /// Client: the connection failed before the id arrived (the engine goes
    /// back to DISCONNECTED without a signal; SceneMultiplayer reports
    /// `connection_failed`).
    ConnectFailed(ConnectFailure),
}

/// Why a packet was not sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostSendError {
    /// The host is not CONNECTED (the engine's ERR_UNCONFIGURED).
    NotConnected(Bytes),
    /// No connected peer has that id, or its connection is already closing
    /// (ERR_INVALID_PARAMETER).
    UnknownPeer(PeerId, Bytes),
    /// That peer's outbound queue is full (ERR_OUT_OF_MEMORY); the payload
    /// is handed back.
    QueueFull(PeerId, Bytes),
    /// The packet is larger than `outbound_buffer_size`: it can never be sent.
    TooLarge(Bytes),
}

impl HostSendError {
    /// The payload that was not sent.
    pub fn into_payload(self) -> Bytes {
        match self {
            HostSendError::NotConnected(b)
            | HostSendError::UnknownPeer(_, b)
            | HostSendError::QueueFull(_, b)
            | HostSendError::TooLarge(b) => b,
        }
    }
}

impl fmt::Display for HostSendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostSendError::NotConnected(_) => f.write_str("not connected"),
            HostSendError::UnknownPeer(p, _) => write!(f, "unknown peer {p}"),
            HostSendError::QueueFull(p, _) => write!(f, "outbound queue of peer {p} is full"),
            HostSendError::TooLarge(b) => {
                write!(
                    f,
                    "{} byte packet is larger than outbound_buffer_size",
                    b.len()
                )
            }
        }
    }
}

impl core::error::Error for HostSendError {}

/// Result of a send to several peers: a failing peer never makes the others
/// miss the packet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendReport {
    /// Peers the packet was queued for.
    pub delivered: usize,
    /// Peers that did not get it, and why.
    pub failed: Vec<(PeerId, SendErrorKind)>,
}

/// The id is not a known peer (or pending peer) of this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownPeer(pub PeerId);

impl fmt::Display for UnknownPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown peer {}", self.0)
    }
}

impl core::error::Error for UnknownPeer {}

/// Why `accept` refused a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptError {
    /// `refuse_new_connections` is set (the adapter should not accept at all).
    Refusing,
    /// This host is a client, or it is closed.
    NotServer,
}

impl fmt::Display for AcceptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AcceptError::Refusing => "refusing new connections",
            AcceptError::NotServer => "not an active server",
        })
    }
}

impl core::error::Error for AcceptError {}

/// Why [`Host::adopt`] refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdoptError {
    /// This host is a client, or it is closed.
    NotServer,
    /// The connection is not an open server connection.
    NotOpen,
    /// `refuse_new_connections` is set (spec §3.5): drop the connection.
    Refusing,
    /// The requested id is the server's or already used by a peer.
    IdInUse(PeerId),
    /// The requested id belonged to a released peer whose packets are still
    /// queued (module docs, "Released peers"): it is free once they are read.
    UnreadPackets(PeerId),
}

impl fmt::Display for AdoptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdoptError::NotServer => f.write_str("not an active server"),
            AdoptError::NotOpen => f.write_str("connection is not an open server connection"),
            AdoptError::Refusing => f.write_str("refusing new connections"),
            AdoptError::IdInUse(id) => write!(f, "peer id {id} is in use"),
            AdoptError::UnreadPackets(id) => {
                write!(
                    f,
                    "peer id {id} still has unread packets of a released peer"
                )
            }
        }
    }
}

impl core::error::Error for AdoptError {}

/// Counters kept by a host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostStats {
    /// Sockets accepted.
    pub accepted: u64,
    /// Pending peers dropped for missing `handshake_timeout`.
    pub handshake_timeouts: u64,
    /// Pending peers whose handshake failed or was refused.
    pub handshake_failures: u64,
    /// Pending peers dropped because `refuse_new_connections` was set when
    /// they finished.
    pub refused: u64,
    /// Zero-length messages discarded (spec §3.5: the engine discards them).
    pub empty_discarded: u64,
    /// Messages a peer's connection had read while the peer was paused for
    /// the released peers' budget, dropped with it when it was released
    /// before resuming (module docs, "Released peers").
    pub dropped_paused: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Server: handshake running. Client: waiting for the id.
    Pending,
    /// In the connected set.
    Connected,
    /// Left the connected set (announced or silently); the socket is still
    /// being closed.
    Gone,
}

#[derive(Debug)]
struct Peer {
    conn: Connection,
    addr: Option<SocketAddr>,
    phase: Phase,
    unread_bytes: usize,
    unread_packets: usize,
    dirty: bool,
    /// Input refused while the released peers' budget is used up; listed in
    /// `Shared::paused`.
    paused: bool,
    /// Its [`HostEvent::Request`] waits in `Shared::requests`.
    request_queued: bool,
    /// Emit `PeerDisconnected` when the connection closes.
    announce: bool,
    /// The deadline this peer is filed under in the timer heap.
    deadline: Option<Timestamp>,
}

/// Unread packets of released peers, per id and in total.
#[derive(Debug, Default)]
struct Released {
    /// Per id: (bytes, packets) still in the packet queue.
    by_id: BTreeMap<PeerId, (usize, usize)>,
    bytes: usize,
    packets: usize,
}

impl Released {
    /// The budget (one peer's limits) is used up.
    fn full(&self, config: &Config) -> bool {
        self.bytes >= config.inbound_buffer_size || self.packets >= config.max_queued_packets
    }

    fn add(&mut self, id: PeerId, bytes: usize, packets: usize) {
        let e = self.by_id.entry(id).or_insert((0, 0));
        e.0 += bytes;
        e.1 += packets;
        self.bytes += bytes;
        self.packets += packets;
    }

    /// One packet of `len` bytes from released peer `id` was read.
    fn take(&mut self, id: PeerId, len: usize) {
        if let Some(e) = self.by_id.get_mut(&id) {
            e.0 -= len;
            e.1 -= 1;
            if e.1 == 0 {
                self.by_id.remove(&id);
            }
            self.bytes -= len;
            self.packets -= 1;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Server,
    Client,
}

/// A multiplayer host, server or client. See the [module docs](self).
pub struct Host {
    /// Boxed: a B-tree node holds 11 entries, so inline peers (~630 bytes
    /// each) would cost a whole 7 KB node for a small room, and node splits
    /// would move them (issue 11: ~250 bytes per idle relay client).
    peers: BTreeMap<PeerId, Box<Peer>>,
    /// Server: ids handed out by [`Host::reserve_id`] and not yet adopted.
    reserved: BTreeSet<PeerId>,
    /// Server: draws peer ids.
    rng: Option<Rng>,
    admission: Admission,
    target: Target,
    /// Compressors and decompressors lent to peers for one message
    /// (permessage-deflate without context takeover, shared broadcasts).
    pool: DeflatePool,
    s: Shared,
}

/// Host state other than the peer table (so a peer and the rest can be
/// borrowed at once).
#[derive(Debug)]
struct Shared {
    role: Role,
    config: Arc<Config>,
    clock: Clock,
    status: ConnectionStatus,
    unique_id: i32,
    connected: usize,
    refuse_new_connections: bool,
    seq: u64,
    signals: VecDeque<(u64, HostEvent)>,
    packets: VecDeque<(u64, PeerId, Bytes)>,
    requests: VecDeque<HostEvent>,
    dirty: VecDeque<PeerId>,
    /// Unread packets of released peers (module docs, "Released peers").
    released: Released,
    /// Peers whose input was refused for the released budget.
    paused: Vec<PeerId>,
    timers: Timers,
    /// Client: the id must arrive by then.
    id_deadline: Timestamp,
    stats: HostStats,
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Host")
            .field("role", &self.s.role)
            .field("status", &self.s.status)
            .field("unique_id", &self.s.unique_id)
            .field("peers", &self.peers.len())
            .finish_non_exhaustive()
    }
}

impl Host {
    // ----- construction -------------------------------------------------

    /// A server: CONNECTED at once with unique id 1 (spec §3.3). With
    /// `admission` [`Admission::Manual`], every request is shown as
    /// [`HostEvent::Request`] first (the relay's rooms, 503s and `/stats`).
    pub fn server(config: Config, admission: Admission, rng: Rng) -> Result<Host, ConfigError> {
        config.validate()?;
        Ok(Host::new(
            Role::Server,
            Arc::new(config),
            admission,
            Some(rng),
            ConnectionStatus::Connected,
            1,
        ))
    }

    /// A client joining the server at `url` (spec §3.4): CONNECTING, unique
    /// id 0 until the id message arrives. The adapter connects the socket for
    /// peer 1 ([`PeerId::SERVER`]) and drives it like any peer.
    pub fn client(
        config: Config,
        url: &str,
        now: Timestamp,
        rng: Rng,
    ) -> Result<Host, ClientError> {
        let config = Arc::new(config);
        // The client's only randomness is its key and masks: the connection owns the RNG.
        let mut conn = Connection::client(config.clone(), url, now, rng)?;
        conn.set_godot_safe_close(true);
        let mut host = Host::new(
            Role::Client,
            config.clone(),
            Admission::Automatic,
            None,
            ConnectionStatus::Connecting,
            0,
        );
        let now = host.s.clock.observe(now);
        host.s.id_deadline = now.saturating_add(config.handshake_timeout);
        host.peers
            .insert(PeerId::SERVER, Box::new(Peer::new(conn, None)));
        host.after(PeerId::SERVER);
        Ok(host)
    }

    fn new(
        role: Role,
        config: Arc<Config>,
        admission: Admission,
        rng: Option<Rng>,
        status: ConnectionStatus,
        unique_id: i32,
    ) -> Host {
        Host {
            peers: BTreeMap::new(),
            reserved: BTreeSet::new(),
            rng,
            admission,
            target: Target::Broadcast,
            #[allow(clippy::default_constructed_unit_structs)]
            pool: DeflatePool::default(),
            s: Shared {
                role,
                config,
                clock: Clock::default(),
                status,
                unique_id,
                connected: 0,
                refuse_new_connections: false,
                seq: 0,
                signals: VecDeque::new(),
                packets: VecDeque::new(),
                requests: VecDeque::new(),
                dirty: VecDeque::new(),
                released: Released::default(),
                paused: Vec::new(),
                timers: Timers::default(),
                id_deadline: Timestamp::MAX,
                stats: HostStats::default(),
            },
        }
    }

    // ----- getters (the engine's API) -----------------------------------

    /// The configuration applied to every peer.
    pub fn config(&self) -> &Config {
        &self.s.config
    }

    /// `is_server()`.
    pub fn is_server(&self) -> bool {
        self.s.role == Role::Server
    }

    /// `get_connection_status()` (spec §3.10).
    pub fn connection_status(&self) -> ConnectionStatus {
        self.s.status
    }

    /// `get_unique_id()`: 1 for a server, the received id for a connected
    /// client, 0 otherwise.
    pub fn unique_id(&self) -> i32 {
        self.s.unique_id
    }

    /// `get_max_packet_size()`: `outbound_buffer_size − 9`, as the engine
    /// reports it (a Godot 3 leftover, spec §3.9; nothing enforces it); 0
    /// when `outbound_buffer_size` is below 9 (the engine reports a negative
    /// number, e.g. −9 for "no byte limit").
    pub fn max_packet_size(&self) -> usize {
        self.s.config.outbound_buffer_size.saturating_sub(9)
    }

    /// `refuse_new_connections`.
    pub fn refuse_new_connections(&self) -> bool {
        self.s.refuse_new_connections
    }

    /// Sets `refuse_new_connections`: the adapter must stop accepting, and
    /// pending peers that finish their handshake are dropped (spec §3.5).
    pub fn set_refuse_new_connections(&mut self, refuse: bool) {
        self.s.refuse_new_connections = refuse;
    }

    /// `set_target_peer`: the target of [`put_packet`](Self::put_packet).
    pub fn set_target_peer(&mut self, target: Target) {
        self.target = target;
    }

    /// The current target of [`put_packet`](Self::put_packet).
    pub fn target_peer(&self) -> Target {
        self.target
    }

    /// `get_peer(id)`: the connection of a connected peer.
    pub fn peer(&self, id: PeerId) -> Option<&Connection> {
        self.peers
            .get(&id)
            .filter(|p| p.phase == Phase::Connected)
            .map(|p| &p.conn)
    }

    /// The connection of any known peer, pending or leaving too.
    pub fn connection(&self, id: PeerId) -> Option<&Connection> {
        self.peers.get(&id).map(|p| &p.conn)
    }

    /// `get_peer_address(id)` / `get_peer_port(id)`: what the adapter
    /// reported at accept time (connected peers only, as in the engine).
    pub fn peer_address(&self, id: PeerId) -> Option<SocketAddr> {
        self.peers
            .get(&id)
            .filter(|p| p.phase == Phase::Connected)
            .and_then(|p| p.addr)
    }

    /// Ids of the connected peers, ascending.
    pub fn connected_peers(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.peers
            .iter()
            .filter(|(_, p)| p.phase == Phase::Connected)
            .map(|(id, _)| *id)
    }

    /// Number of connected peers.
    pub fn connected_count(&self) -> usize {
        self.s.connected
    }

    /// Number of peers with a socket (pending, connected or closing).
    pub fn socket_count(&self) -> usize {
        self.peers.len()
    }

    /// Number of pending (handshaking) peers.
    pub fn pending_count(&self) -> usize {
        self.peers
            .values()
            .filter(|p| p.phase == Phase::Pending)
            .count()
    }

    /// `get_available_packet_count()`.
    pub fn available_packet_count(&self) -> usize {
        self.s.packets.len()
    }

    /// `get_packet_peer()`: the sender of the next packet.
    pub fn packet_peer(&self) -> Option<PeerId> {
        self.s.packets.front().map(|(_, p, _)| *p)
    }

    /// Counters.
    pub fn stats(&self) -> HostStats {
        self.s.stats
    }

    // ----- sockets (adapter side) --------------------------------------

    /// Server: a TCP connection was accepted at `now` (before any TLS).
    /// Returns the pending peer's id; the handshake timer starts now.
    pub fn accept(
        &mut self,
        now: Timestamp,
        remote: Option<SocketAddr>,
    ) -> Result<PeerId, AcceptError> {
        let now = self.s.clock.observe(now);
        if self.rng.is_none() || self.s.status != ConnectionStatus::Connected {
            return Err(AcceptError::NotServer);
        }
        if self.s.refuse_new_connections {
            return Err(AcceptError::Refusing);
        }
        let id = self.draw_id().ok_or(AcceptError::NotServer)?;
        let mut conn = Connection::server_validated(self.s.config.clone(), now, self.admission);
        conn.set_godot_safe_close(true);
        self.peers.insert(id, Box::new(Peer::new(conn, remote)));
        self.s.stats.accepted += 1;
        self.after(id);
        Ok(id)
    }

    /// Server: reserves a fresh peer id for a connection whose opening
    /// handshake the adapter runs itself (see [`adopt`](Self::adopt)), so an
    /// admission decision can know the id the peer will get. Release it with
    /// [`cancel_reservation`](Self::cancel_reservation) if the peer never
    /// arrives.
    pub fn reserve_id(&mut self) -> Result<PeerId, AcceptError> {
        if self.s.status != ConnectionStatus::Connected {
            return Err(AcceptError::NotServer);
        }
        let id = self.draw_id().ok_or(AcceptError::NotServer)?;
        self.reserved.insert(id);
        Ok(id)
    }

    /// Server: a fresh peer id, not used by a peer, a reservation or a
    /// released peer with unread packets (module docs). `None` on a client.
    fn draw_id(&mut self) -> Option<PeerId> {
        let rng = self.rng.as_mut()?;
        let (peers, reserved, released) = (&self.peers, &self.reserved, &self.s.released);
        Some(PeerId::random(&mut **rng, |id| {
            peers.contains_key(&id) || reserved.contains(&id) || released.by_id.contains_key(&id)
        }))
    }

    /// Forgets a reservation made by [`reserve_id`](Self::reserve_id).
    pub fn cancel_reservation(&mut self, id: PeerId) {
        self.reserved.remove(&id);
    }

    /// Server: takes a connection whose opening handshake ran outside the
    /// host (the adapter's own task ran TLS, read the request and decided
    /// on it, so none of that happens under a lock other peers share) and
    /// makes it a connected peer: the id message is queued first (spec
    /// §3.7) and [`HostEvent::PeerConnected`] is emitted, exactly as for a
    /// peer that completed its handshake inside the host.
    ///
    /// `id`: a reserved id, an id chosen by the caller (e.g. unique across
    /// several hosts; it must not be in use here, nor be a released peer's
    /// with unread packets: [`AdoptError::UnreadPackets`]), or `None` to draw
    /// one. Close frames toward the peer are Godot-safe from now on (module
    /// docs).
    /// The connection must be an open server connection; its `Open` event
    /// may or may not have been taken by the caller. While
    /// `refuse_new_connections` is set the connection is refused, as a
    /// handshake that completes while refusing is (spec §3.5).
    pub fn adopt(
        &mut self,
        now: Timestamp,
        mut conn: Connection,
        remote: Option<SocketAddr>,
        id: Option<PeerId>,
    ) -> Result<PeerId, AdoptError> {
        let _ = self.s.clock.observe(now);
        if self.s.role != Role::Server || self.s.status != ConnectionStatus::Connected {
            return Err(AdoptError::NotServer);
        }
        if conn.role() != crate::connection::Role::Server || conn.state() != State::Open {
            return Err(AdoptError::NotOpen);
        }
        let id = match id {
            Some(id) if id == PeerId::SERVER || self.peers.contains_key(&id) => {
                return Err(AdoptError::IdInUse(id));
            }
            Some(id) if self.s.released.by_id.contains_key(&id) => {
                return Err(AdoptError::UnreadPackets(id));
            }
            Some(id) => {
                self.reserved.remove(&id);
                id
            }
            None => self.draw_id().ok_or(AdoptError::NotServer)?,
        };
        if self.s.refuse_new_connections {
            // spec §3.5: a handshake that completes while refusing is dropped.
            self.s.stats.refused += 1;
            return Err(AdoptError::Refusing);
        }
        self.s.stats.accepted += 1;
        conn.set_godot_safe_close(true);
        let mut peer = Box::new(Peer::new(conn, remote));
        if self.s.released.full(&self.s.config) {
            // Messages it read already wait in it (module docs).
            self.s.pause(id, &mut peer);
        }
        // It joins first (id message, `PeerConnected`), then any message it
        // already read is delivered (spec §3.7); a queued `Open` event, if
        // the caller left it, is then skipped.
        self.s.server_opened(id, &mut peer);
        self.s.after(id, &mut peer);
        self.peers.insert(id, peer);
        Ok(id)
    }

    /// Bytes read from a peer's socket; returns how many were consumed (see
    /// [`Connection::handle_input`]).
    pub fn handle_input(
        &mut self,
        now: Timestamp,
        id: PeerId,
        input: &[u8],
    ) -> Result<usize, UnknownPeer> {
        let now = self.s.clock.observe(now);
        let peer = self.peers.get_mut(&id).ok_or(UnknownPeer(id))?;
        let full = self.s.released.full(&self.s.config);
        if full && peer.phase == Phase::Connected {
            // Module docs, "Released peers": no new packets until the
            // application reads the released peers' ones.
            if !input.is_empty() {
                self.s.pause(id, peer);
            }
            return Ok(0);
        }
        if !(full && peer.phase == Phase::Pending) {
            return Ok(self.feed(now, id, input));
        }
        // A handshake may complete in this input: its frames wait too, as
        // if the peer's own queue were full.
        let limits = &self.s.config;
        peer.conn
            .set_unread_elsewhere(limits.inbound_buffer_size, limits.max_queued_packets);
        let mut pos = self.feed(now, id, input);
        if let Some(peer) = self.peers.get_mut(&id) {
            peer.conn
                .set_unread_elsewhere(peer.unread_bytes, peer.unread_packets);
            if pos < input.len() {
                if peer.phase == Phase::Connected {
                    self.s.pause(id, peer);
                } else {
                    // Refused or failed when the handshake completed: none of
                    // its input is delivered; the connection takes (discards)
                    // the rest.
                    pos += self.feed(now, id, &input[pos..]);
                }
            }
        }
        Ok(pos)
    }

    /// Feeds `input` to the peer's connection, again after the host took
    /// its events while it can read: it may have stopped for events the
    /// host does not keep (pongs, empty messages). Fewer bytes than offered
    /// are consumed only while `can_read` is false (contract).
    fn feed(&mut self, now: Timestamp, id: PeerId, input: &[u8]) -> usize {
        let mut pos = 0;
        while let Some(peer) = self.peers.get_mut(&id) {
            let n = peer
                .conn
                .handle_input_with(now, &input[pos..], Some(&mut self.pool));
            pos += n;
            self.after(id);
            if n == 0 || pos == input.len() || !self.can_read(id) {
                break;
            }
        }
        pos
    }

    /// True when the peer's connection takes input now (see
    /// [`Connection::can_read`]); false for unknown peers, peers full of
    /// unread packets, and peers paused for the released peers' budget
    /// (module docs).
    pub fn can_read(&self, id: PeerId) -> bool {
        let limits = &self.s.config;
        self.peers.get(&id).is_some_and(|p| {
            // The connection un-blocks when its events are taken; the packets
            // moved into the host's queue still count (module docs: a full
            // peer is not read until the application reads).
            !p.paused
                && p.conn.can_read()
                && p.unread_bytes + p.conn.unread_bytes() < limits.inbound_buffer_size
                && p.unread_packets + p.conn.unread_messages() < limits.max_queued_packets
        })
    }

    /// The peer's socket reached end of stream (or failed).
    pub fn handle_eof(&mut self, now: Timestamp, id: PeerId) -> Result<(), UnknownPeer> {
        let now = self.s.clock.observe(now);
        let peer = self.peers.get_mut(&id).ok_or(UnknownPeer(id))?;
        peer.conn.handle_eof(now);
        self.after(id);
        Ok(())
    }

    /// The peer's unwritten output (see [`Connection::transmit`]).
    pub fn transmit(&self, id: PeerId) -> Option<Chunks<'_>> {
        self.peers.get(&id).map(|p| p.conn.transmit())
    }

    /// Leases the peer's output for a write outside the host's lock (see
    /// [`Connection::lease_transmit`]); false for an unknown peer.
    pub fn lease_transmit(
        &mut self,
        id: PeerId,
        batch: &mut TransmitBatch,
        max_frames: usize,
        max_bytes: usize,
    ) -> bool {
        match self.peers.get_mut(&id) {
            Some(p) => {
                p.conn.lease_transmit(batch, max_frames, max_bytes);
                true
            }
            None => {
                batch.clear();
                false
            }
        }
    }

    /// Total unwritten output bytes of a peer.
    pub fn transmit_len(&self, id: PeerId) -> usize {
        self.peers.get(&id).map_or(0, |p| p.conn.transmit_len())
    }

    /// `n` bytes of the peer's output were written.
    pub fn advance_transmit(&mut self, now: Timestamp, id: PeerId, n: usize) {
        let now = self.s.clock.observe(now);
        if let Some(peer) = self.peers.get_mut(&id) {
            peer.conn.advance_transmit(now, n);
            self.after(id);
        }
    }

    /// True when the peer's socket should be closed once its output is
    /// written; then close it and call [`release`](Self::release).
    pub fn should_close_socket(&self, id: PeerId) -> bool {
        self.peers
            .get(&id)
            .is_none_or(|p| p.conn.should_close_socket())
    }

    /// The adapter closed the peer's socket: forget the connection. A
    /// connected peer that had not closed yet is reported gone. Its unread
    /// packets stay readable and counted (module docs, "Released peers").
    pub fn release(&mut self, now: Timestamp, id: PeerId) {
        let now = self.s.clock.observe(now);
        if let Some(peer) = self.peers.get_mut(&id) {
            if peer.conn.state() != State::Closed {
                peer.conn.handle_eof(now);
            }
            if peer.paused {
                self.s.drop_held(id, peer);
            }
            self.after(id);
        }
        if let Some(peer) = self.peers.remove(&id) {
            if peer.phase == Phase::Connected {
                // Still connected (e.g. closing, its close reply not yet
                // written): it leaves now. Without the signal the
                // application would never see it go, and its id, drawn again,
                // would be announced twice (found by the `host_ops` fuzzer).
                self.s.connected -= 1;
                if peer.announce {
                    let info = peer.conn.close_info().cloned();
                    self.s
                        .signal(HostEvent::PeerDisconnected { peer: id, info });
                }
            }
            if peer.request_queued {
                // Never show a request of a peer that is gone (its id may be
                // drawn again for a new peer).
                self.s
                    .requests
                    .retain(|e| !matches!(e, HostEvent::Request { peer, .. } if *peer == id));
            }
            if peer.unread_packets > 0 {
                // Module docs, "Released peers": still readable, still counted.
                self.s
                    .released
                    .add(id, peer.unread_bytes, peer.unread_packets);
            }
        }
    }

    /// The next peer whose output grew, whose socket must be closed, or that
    /// may be read again after backpressure.
    pub fn poll_dirty(&mut self) -> Option<PeerId> {
        while let Some(id) = self.s.dirty.pop_front() {
            if let Some(peer) = self.peers.get_mut(&id) {
                peer.dirty = false;
                return Some(id);
            }
        }
        None
    }

    // ----- timers -------------------------------------------------------

    /// The earliest deadline of any peer (handshake, heartbeat, close, id).
    pub fn poll_timeout(&mut self) -> Option<Timestamp> {
        let peers = &self.peers;
        self.s
            .timers
            .peek(|id, at| peers.get(&id).is_some_and(|p| p.deadline == Some(at)))
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let now = self.s.clock.observe(now);
        while let Some((id, at)) = self.s.timers.pop_due(now) {
            let Some(peer) = self.peers.get_mut(&id) else {
                continue;
            };
            if peer.deadline != Some(at) {
                continue;
            }
            peer.deadline = None;
            if self.s.role == Role::Client
                && peer.phase == Phase::Pending
                && now >= self.s.id_deadline
            {
                // Deviation from the engine (spec §3.6): the id wait is bounded too.
                peer.conn.abort(now);
                self.s.client_failed(ConnectFailure::Timeout);
            } else {
                peer.conn.handle_timeout(now);
            }
            self.after(id);
        }
    }

    // ----- admission ------------------------------------------------------

    /// Accepts the upgrade request of a pending peer (after
    /// [`HostEvent::Request`]).
    pub fn accept_request(
        &mut self,
        now: Timestamp,
        id: PeerId,
        options: AcceptOptions,
    ) -> Result<(), CommandError> {
        self.with_pending(now, id, |conn, now| conn.accept(now, options))
    }

    /// Answers a pending peer's request with an HTTP response (a refusal or a
    /// plain HTTP answer); its socket is then closed.
    pub fn respond(
        &mut self,
        now: Timestamp,
        id: PeerId,
        response: HttpResponse,
    ) -> Result<(), CommandError> {
        self.with_pending(now, id, |conn, now| conn.respond(now, response))
    }

    /// Applies an admission decision to a pending peer's connection.
    fn with_pending(
        &mut self,
        now: Timestamp,
        id: PeerId,
        decide: impl FnOnce(&mut Connection, Timestamp) -> Result<(), CommandError>,
    ) -> Result<(), CommandError> {
        let now = self.s.clock.observe(now);
        let peer = self.peers.get_mut(&id).ok_or(CommandError::InvalidState)?;
        decide(&mut peer.conn, now)?;
        self.after(id);
        Ok(())
    }

    // ----- sending --------------------------------------------------------

    /// `put_packet`: sends `data` to the target set by
    /// [`set_target_peer`](Self::set_target_peer).
    pub fn put_packet(&mut self, now: Timestamp, data: Bytes) -> Result<SendReport, HostSendError> {
        self.send(now, self.target, data)
    }

    /// Sends one binary packet (spec §3.8). Server: to one peer, to every
    /// connected peer, or to all but one; a broadcast is encoded once and the
    /// same bytes are queued to every peer. Client: always to the server.
    pub fn send(
        &mut self,
        now: Timestamp,
        target: Target,
        data: Bytes,
    ) -> Result<SendReport, HostSendError> {
        self.send_message(now, target, MessageKind::Binary, data)
    }

    /// [`send`](Self::send) with a chosen message kind.
    pub fn send_message(
        &mut self,
        now: Timestamp,
        target: Target,
        kind: MessageKind,
        data: Bytes,
    ) -> Result<SendReport, HostSendError> {
        let now = self.s.clock.observe(now);
        if self.s.status != ConnectionStatus::Connected {
            return Err(HostSendError::NotConnected(data));
        }
        // spec/websocket-peer.md §2.2: a byte limit of 0 disables the check.
        let max = self.s.config.outbound_buffer_size;
        if max > 0 && data.len() > max {
            return Err(HostSendError::TooLarge(data));
        }
        let single = match (self.s.role, target) {
            // spec §3.8: a client always sends to the server; the target is ignored.
            (Role::Client, _) => Some(PeerId::SERVER),
            (Role::Server, Target::Peer(id)) => Some(id),
            _ => None,
        };
        if let Some(id) = single {
            let Some(peer) = self
                .peers
                .get_mut(&id)
                .filter(|p| p.phase == Phase::Connected)
            else {
                return Err(HostSendError::UnknownPeer(id, data));
            };
            return match peer.conn.send_with(now, kind, data, Some(&mut self.pool)) {
                Ok(()) => {
                    self.after(id);
                    Ok(SendReport {
                        delivered: 1,
                        failed: Vec::new(),
                    })
                }
                Err(e) => Err(match e.kind {
                    SendErrorKind::TooLarge => HostSendError::TooLarge(e.payload),
                    SendErrorKind::QueueFull => HostSendError::QueueFull(id, e.payload),
                    // Closing (a close frame sent or received): no longer a
                    // peer to send to; retrying would never help.
                    SendErrorKind::NotOpen | SendErrorKind::WrongRole => {
                        HostSendError::UnknownPeer(id, e.payload)
                    }
                }),
            };
        }
        let except = match target {
            Target::AllExcept(id) => Some(id),
            _ => None,
        };
        let opcode = match kind {
            MessageKind::Text => crate::frame::OpCode::Text,
            MessageKind::Binary => crate::frame::OpCode::Binary,
        };
        let frame = SharedFrame::unmasked(opcode, data);
        Ok(self.send_shared(&frame, |id| Some(id) != except))
    }

    /// Queues one pre-encoded server frame to every connected peer for
    /// which `to` is true; one failing peer never stops the others.
    ///
    /// The broadcast entry point: a frame made once with
    /// [`SharedFrame::unmasked`] may be sent through several hosts, on
    /// several threads. Peers that negotiated permessage-deflate get it
    /// compressed when that pays (see [`Connection::send_frame`]): with
    /// `server_no_context_takeover`, every peer with the same window shares
    /// one compressed frame, made once.
    pub fn send_shared(
        &mut self,
        frame: &SharedFrame,
        mut to: impl FnMut(PeerId) -> bool,
    ) -> SendReport {
        let mut report = SendReport::default();
        for (id, peer) in self.peers.iter_mut() {
            if peer.phase != Phase::Connected || !to(*id) {
                continue;
            }
            match peer.conn.send_frame_with(frame, Some(&mut self.pool)) {
                Ok(()) => {
                    report.delivered += 1;
                    if !peer.dirty {
                        peer.dirty = true;
                        self.s.dirty.push_back(*id);
                    }
                }
                Err(kind) => report.failed.push((*id, kind)),
            }
        }
        report
    }

    /// Queues one pre-encoded server frame to each listed peer (connected
    /// peers only; others are reported as `NotOpen`); one failing peer never
    /// stops the others. Costs a lookup per listed peer, whatever the number
    /// of peers of the host.
    pub fn send_shared_to(
        &mut self,
        frame: &SharedFrame,
        to: impl IntoIterator<Item = PeerId>,
    ) -> SendReport {
        let mut report = SendReport::default();
        for id in to {
            let Some(peer) = self
                .peers
                .get_mut(&id)
                .filter(|p| p.phase == Phase::Connected)
            else {
                report.failed.push((id, SendErrorKind::NotOpen));
                continue;
            };
            match peer.conn.send_frame(frame) {
                Ok(()) => {
                    report.delivered += 1;
                    self.s.mark_dirty(id, peer);
                }
                Err(kind) => report.failed.push((id, kind)),
            }
        }
        report
    }

    // ----- receiving ------------------------------------------------------

    /// The next event of any kind, in the order they happened.
    pub fn poll_event(&mut self) -> Option<HostEvent> {
        let take_packet = match (self.s.signals.front(), self.s.packets.front()) {
            (Some((s, _)), Some((p, _, _))) => p < s,
            (None, Some(_)) => true,
            _ => false,
        };
        if take_packet {
            self.get_packet()
                .map(|(from, data)| HostEvent::Packet { from, data })
        } else {
            self.poll_signal()
        }
    }

    /// The next event that is not a packet (connects, disconnects, requests),
    /// leaving packets for [`get_packet`](Self::get_packet).
    pub fn poll_signal(&mut self) -> Option<HostEvent> {
        self.s.signals.pop_front().map(|(_, e)| e)
    }

    /// The next pending peer's request awaiting an admission decision
    /// (always a [`HostEvent::Request`]); see [`Host::accept_request`] and
    /// [`Host::respond`]. The request of a peer released before it was
    /// polled is dropped.
    pub fn poll_request(&mut self) -> Option<HostEvent> {
        let event = self.s.requests.pop_front()?;
        if let HostEvent::Request { peer, .. } = &event {
            if let Some(p) = self.peers.get_mut(peer) {
                p.request_queued = false;
            }
        }
        Some(event)
    }

    /// True when an event or packet is waiting.
    pub fn has_events(&self) -> bool {
        !self.s.signals.is_empty() || !self.s.packets.is_empty()
    }

    /// `get_packet()`: the oldest unread packet and its sender.
    pub fn get_packet(&mut self) -> Option<(PeerId, Bytes)> {
        let (_, from, data) = self.s.packets.pop_front()?;
        let was_blocked = !self.can_read(from);
        if let Some(peer) = self.peers.get_mut(&from) {
            peer.unread_bytes -= data.len();
            peer.unread_packets -= 1;
            peer.conn
                .set_unread_elsewhere(peer.unread_bytes, peer.unread_packets);
            // Reading may unblock the peer's input and let it complete a
            // pending close; collect what that produced.
            self.after(from);
        } else {
            let was_full = self.s.released.full(&self.s.config);
            self.s.released.take(from, data.len());
            if was_full && !self.s.released.full(&self.s.config) {
                self.resume_paused();
            }
        }
        // A peer that was not read for backpressure may be read again: name
        // it in `poll_dirty` so the adapter resumes its socket.
        if was_blocked && self.can_read(from) {
            if let Some(peer) = self.peers.get_mut(&from) {
                self.s.mark_dirty(from, peer);
            }
        }
        Some((from, data))
    }

    // ----- closing --------------------------------------------------------

    /// `disconnect_peer(id, force)` (spec §3.9). Starts a normal close
    /// (1000). `force = false`: `PeerDisconnected` is emitted now (the
    /// engine emits it on the next poll) and the close handshake finishes in
    /// the background. `force = true`: removed at once without a signal, the
    /// socket dropped; on a client this resets the whole host.
    pub fn disconnect_peer(
        &mut self,
        now: Timestamp,
        id: PeerId,
        force: bool,
    ) -> Result<(), UnknownPeer> {
        let now = self.s.clock.observe(now);
        let peer = self
            .peers
            .get_mut(&id)
            .filter(|p| p.phase == Phase::Connected)
            .ok_or(UnknownPeer(id))?;
        if force {
            peer.conn.abort(now);
            peer.phase = Phase::Gone;
            peer.announce = false;
            self.s.connected -= 1;
            if self.s.role == Role::Client {
                self.reset();
                return Ok(());
            }
        } else {
            return self.disconnect_peer_with(now, id, CloseCode::NORMAL, "");
        }
        self.after(id);
        Ok(())
    }

    /// Like `disconnect_peer(id, false)` but with the close frame's `code`
    /// and `reason` chosen by the caller (e.g. 1008 policy violation, RFC
    /// 6455 §7.4.1). A code that may not be sent (1005, 1006, 1015) or a
    /// reason over 123 bytes falls back to 1000 with an empty reason. A code
    /// a Godot peer would answer with 1002 (1012–1014) is replaced by
    /// [`CloseCode::to_godot_safe`] (1001, 1008, 1011), the reason kept
    /// (module docs, "Close codes").
    /// On a server `PeerDisconnected` is emitted now, as for
    /// [`disconnect_peer`](Self::disconnect_peer).
    pub fn disconnect_peer_with(
        &mut self,
        now: Timestamp,
        id: PeerId,
        code: CloseCode,
        reason: &str,
    ) -> Result<(), UnknownPeer> {
        let now = self.s.clock.observe(now);
        let peer = self
            .peers
            .get_mut(&id)
            .filter(|p| p.phase == Phase::Connected)
            .ok_or(UnknownPeer(id))?;
        // RFC 6455 §7.4.1: codes that may not be sent fall back to 1000.
        if peer.conn.close(now, code, reason).is_err() {
            let _ = peer.conn.close(now, CloseCode::NORMAL, "");
        }
        if self.s.role == Role::Server {
            peer.phase = Phase::Gone;
            peer.announce = false;
            self.s.connected -= 1;
            let info = peer.conn.close_info().cloned();
            self.s
                .signal(HostEvent::PeerDisconnected { peer: id, info });
        }
        self.after(id);
        Ok(())
    }

    /// `close()` with the engine's meaning: every connection dropped at once
    /// (no close frames), queues freed, status DISCONNECTED, no events. The
    /// adapter closes every socket it holds.
    pub fn close(&mut self) {
        self.reset();
    }

    /// Graceful stop: a close frame (1001 "going away") to every peer;
    /// pending peers are dropped. Each connection is released when its close
    /// completes or `close_timeout` passes. New connections are refused.
    pub fn shutdown(&mut self, now: Timestamp) {
        let now = self.s.clock.observe(now);
        self.s.refuse_new_connections = true;
        let ids: Vec<PeerId> = self.peers.keys().copied().collect();
        for id in ids {
            if let Some(peer) = self.peers.get_mut(&id) {
                match peer.conn.state() {
                    State::Connecting => peer.conn.abort(now),
                    _ => {
                        let _ = peer.conn.close(now, CloseCode::GOING_AWAY, "");
                    }
                }
            }
            self.after(id);
        }
    }

    // ----- internals ------------------------------------------------------

    /// The released peers' budget has room again: every peer whose input
    /// was refused for it is named by `poll_dirty` (module docs).
    fn resume_paused(&mut self) {
        for id in core::mem::take(&mut self.s.paused) {
            if let Some(peer) = self.peers.get_mut(&id) {
                peer.paused = false;
                // Messages it held are taken now, in order.
                self.s.after(id, peer);
                self.s.mark_dirty(id, peer);
            }
        }
    }

    fn reset(&mut self) {
        self.peers.clear();
        let s = &mut self.s;
        s.connected = 0;
        s.released = Released::default();
        s.paused.clear();
        s.signals.clear();
        s.packets.clear();
        s.requests.clear();
        s.dirty.clear();
        s.timers = Timers::default();
        s.status = ConnectionStatus::Disconnected;
        s.unique_id = 0;
    }

    /// After anything touched peer `id`: move its events up, re-file its
    /// timer, and mark it dirty when it has output or must be closed.
    fn after(&mut self, id: PeerId) {
        if let Some(peer) = self.peers.get_mut(&id) {
            self.s.after(id, peer);
        }
    }
}

impl Shared {
    fn signal(&mut self, event: HostEvent) {
        self.seq += 1;
        self.signals.push_back((self.seq, event));
    }

    fn client_failed(&mut self, why: ConnectFailure) {
        if self.status == ConnectionStatus::Connecting {
            self.status = ConnectionStatus::Disconnected;
            self.signal(HostEvent::ConnectFailed(why));
        }
    }

    /// A paused peer is released: the messages its connection held go with
    /// it (counted); its other events are taken (module docs).
    fn drop_held(&mut self, id: PeerId, peer: &mut Peer) {
        while let Some(event) = peer.conn.poll_event() {
            match event {
                Event::Message(_) => self.stats.dropped_paused += 1,
                other => self.on_event(id, peer, other),
            }
        }
    }

    /// Refuses the peer's input until the released peers' budget has room
    /// (module docs, "Released peers").
    fn pause(&mut self, id: PeerId, peer: &mut Peer) {
        if !peer.paused {
            peer.paused = true;
            self.paused.push(id);
        }
    }

    fn mark_dirty(&mut self, id: PeerId, peer: &mut Peer) {
        if !peer.dirty {
            peer.dirty = true;
            self.dirty.push_back(id);
        }
    }

    fn after(&mut self, id: PeerId, peer: &mut Peer) {
        // A paused peer's messages stay in its connection (module docs,
        // "Released peers"); events before them are taken.
        while !(peer.paused && peer.conn.next_event_is_message()) {
            let Some(event) = peer.conn.poll_event() else {
                break;
            };
            self.on_event(id, peer, event);
        }
        let mut deadline = peer.conn.poll_timeout();
        if self.role == Role::Client
            && peer.phase == Phase::Pending
            && !peer.conn.should_close_socket()
        {
            deadline = Some(deadline.map_or(self.id_deadline, |d| d.min(self.id_deadline)));
        }
        if deadline != peer.deadline {
            peer.deadline = deadline;
            if let Some(at) = deadline {
                self.timers.push(id, at);
            }
        }
        if peer.conn.transmit_len() > 0 || peer.conn.should_close_socket() {
            self.mark_dirty(id, peer);
        }
    }

    fn on_event(&mut self, id: PeerId, peer: &mut Peer, event: Event) {
        match event {
            Event::Request(request) => {
                peer.request_queued = true;
                self.requests
                    .push_back(HostEvent::Request { peer: id, request });
            }
            Event::Open { .. } => match self.role {
                Role::Server if peer.phase == Phase::Pending => self.server_opened(id, peer),
                // Adopted: opened already. Client: it waits for the id message
                // (spec §3.6).
                Role::Server | Role::Client => {}
            },
            Event::Message(message) => {
                if peer.phase == Phase::Pending && self.role == Role::Client {
                    // spec/websocket-peer.md §3.6: the first message must be the id
                    // (text or binary alike).
                    match decode_id_message(&message.data) {
                        Some(uid) => {
                            self.unique_id = uid.get();
                            self.status = ConnectionStatus::Connected;
                            peer.phase = Phase::Connected;
                            peer.announce = true;
                            self.connected += 1;
                            self.signal(HostEvent::PeerConnected(PeerId::SERVER));
                        }
                        None => {
                            let now = self.clock.now();
                            // Nothing after a bad id is delivered (nor taken as an id):
                            // the peer is leaving without ever having joined.
                            peer.phase = Phase::Gone;
                            peer.announce = false;
                            let _ = peer.conn.close(now, CloseCode::NORMAL, "invalid id");
                            self.client_failed(ConnectFailure::InvalidId);
                        }
                    }
                    return;
                }
                if peer.phase == Phase::Gone && !peer.announce {
                    // Disconnected by us: nothing more is delivered (spec §2.10).
                    return;
                }
                if message.data.is_empty() {
                    // spec §3.5: zero-length messages are discarded.
                    self.stats.empty_discarded += 1;
                    return;
                }
                peer.unread_bytes += message.data.len();
                peer.unread_packets += 1;
                peer.conn
                    .set_unread_elsewhere(peer.unread_bytes, peer.unread_packets);
                self.seq += 1;
                self.packets.push_back((self.seq, id, message.data));
            }
            Event::Pong(_) => {}
            Event::Closed(info) => match peer.phase {
                Phase::Pending => {
                    match info.cause {
                        crate::connection::CloseCause::HandshakeTimeout => {
                            self.stats.handshake_timeouts += 1
                        }
                        _ => self.stats.handshake_failures += 1,
                    }
                    peer.phase = Phase::Gone;
                    if self.role == Role::Client {
                        self.client_failed(ConnectFailure::Closed(info));
                    }
                }
                Phase::Connected => {
                    peer.phase = Phase::Gone;
                    self.connected -= 1;
                    if peer.announce {
                        self.signal(HostEvent::PeerDisconnected {
                            peer: id,
                            info: Some(info),
                        });
                    }
                    if self.role == Role::Client {
                        // spec §3.10: a client that loses the server is DISCONNECTED.
                        self.status = ConnectionStatus::Disconnected;
                        self.unique_id = 0;
                    }
                }
                Phase::Gone => {}
            },
        }
    }

    fn server_opened(&mut self, id: PeerId, peer: &mut Peer) {
        let now = self.clock.now();
        if self.refuse_new_connections {
            // spec §3.5: a handshake that completes while refusing is dropped.
            self.stats.refused += 1;
            peer.conn.abort(now);
            peer.phase = Phase::Gone;
            return;
        }
        // spec §3.7: the id message goes first, as one binary frame.
        let payload = Bytes::copy_from_slice(&encode_id_message(id));
        match peer.conn.send(now, MessageKind::Binary, payload) {
            Ok(()) => {
                peer.phase = Phase::Connected;
                peer.announce = true;
                self.connected += 1;
                self.signal(HostEvent::PeerConnected(id));
            }
            Err(_) => {
                self.stats.handshake_failures += 1;
                peer.conn.abort(now);
                peer.phase = Phase::Gone;
            }
        }
    }
}

impl Peer {
    fn new(conn: Connection, addr: Option<SocketAddr>) -> Peer {
        Peer {
            conn,
            addr,
            phase: Phase::Pending,
            unread_bytes: 0,
            unread_packets: 0,
            dirty: false,
            paused: false,
            request_queued: false,
            announce: false,
            deadline: None,
        }
    }
}
