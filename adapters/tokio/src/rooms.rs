//! [`RoomServer`]: a multiplayer server whose peers are spread over many
//! independent hosts ("rooms"), each behind its own short critical section,
//! so rooms are served by every worker thread of the runtime at once.
//!
//! This is what `wsmp-relay` runs on. Every accepted socket gets its own task
//! (see the engine notes in the crate docs): TLS and the opening handshake
//! run in it with no shared lock; the [`Rooms::admit`] decision picks a room
//! (or answers plain HTTP); the connection then joins that room's core
//! [`Host`] and the room's [`Room`] logic sees its events. The room logic
//! runs inside the room's lock, right after the activity that caused it
//! (a packet read by a peer's task is forwarded by that same task), and the
//! receivers are woken afterwards to write everything queued for them.
//!
//! Locks, in the order they may be nested: the room registry (joins and
//! empty-room removal only) → one room. The data path takes one room lock
//! per exchange and nothing process-wide.
//!
//! Peer ids are unique across the whole server (rooms, logs and metrics
//! can name a peer by its id alone).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use wsmp_core::connection::{AcceptOptions, Admission, Connection, HttpResponse, Request};
use wsmp_core::host::{Host, PeerId};
use wsmp_core::{Config, Timestamp};

use crate::engine::{self, Acceptor, Decision, HostCell, Logic, PeerSlot, ServerCore};
pub use crate::engine::{ConnInfo, HandshakeOutcome, IdSpace, Preface, PrefaceDecision};
use crate::error::Error;
use crate::tls::TlsServerOptions;

/// What [`Rooms::admit`] decides for one HTTP request.
pub enum Admit<K, T> {
    /// Accept the upgrade; the peer joins room `room`, and `ticket` (e.g. a
    /// slot reservation released on drop) is handed to the room with it.
    Join {
        /// The room.
        room: K,
        /// Handed to [`Room::joined`]; dropped if the peer never joins.
        ticket: T,
        /// Sub-protocol and extra response headers.
        options: AcceptOptions,
    },
    /// Answer with this HTTP response and close (a refusal, or a plain HTTP
    /// answer to a request that is not an upgrade).
    Respond(HttpResponse),
    /// Decide when this future completes (e.g. a reservation that needs a
    /// network round trip). The connection's task awaits it with no lock
    /// held; the handshake timeout covers the wait (the future is dropped
    /// when it runs out, so it must release whatever it holds on drop). A
    /// future that answers `Later` again is answered with HTTP 500.
    Later(AdmitFuture<K, T>),
}

impl<K: fmt::Debug, T: fmt::Debug> fmt::Debug for Admit<K, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Admit::Join {
                room,
                ticket,
                options,
            } => f
                .debug_struct("Join")
                .field("room", room)
                .field("ticket", ticket)
                .field("options", options)
                .finish(),
            Admit::Respond(r) => f.debug_tuple("Respond").field(r).finish(),
            Admit::Later(_) => f.write_str("Later(..)"),
        }
    }
}

/// The future of [`Admit::Later`].
pub type AdmitFuture<K, T> = Pin<Box<dyn Future<Output = Admit<K, T>> + Send>>;

/// The logic of one room: runs with the room's lock held, so it must be
/// quick and must not do I/O (queue output on the host instead).
pub trait Room: Send + 'static {
    /// What admission hands over with each peer.
    type Ticket: Send + 'static;
    /// A peer joined (its `PeerConnected` event is queued on the host and
    /// comes through [`on_events`](Self::on_events) next).
    fn joined(&mut self, id: PeerId, ticket: Self::Ticket);
    /// Something happened on the room's host: take its events
    /// (`Host::poll_event`) and act (send, disconnect).
    fn on_events(&mut self, host: &mut Host, now: Timestamp);
    /// The room's own next deadline (e.g. an authentication timeout).
    fn poll_timeout(&self) -> Option<Timestamp> {
        None
    }
    /// The room's timers due at `now`.
    fn handle_timeout(&mut self, _host: &mut Host, _now: Timestamp) {}
}

/// The rooms of a [`RoomServer`]: admission and room creation. Shared by
/// every connection task.
pub trait Rooms: Send + Sync + 'static {
    /// Names a room.
    type Key: Clone + Eq + Hash + fmt::Debug + Send + Sync + 'static;
    /// The room logic.
    type Room: Room;
    /// Decides on an HTTP request, in the connection's own task with no lock
    /// of the server held.
    fn admit(
        &self,
        info: &ConnInfo,
        request: &Request,
    ) -> Admit<Self::Key, <Self::Room as Room>::Ticket>;
    /// The logic of a room that is being created (its first peer joins).
    fn open_room(&self, key: &Self::Key) -> Self::Room;
    /// A handshake started: TCP accepted (for metrics; every start is
    /// followed by exactly one [`handshake_ended`](Self::handshake_ended)).
    fn handshake_started(&self, _info: &ConnInfo) {}
    /// A handshake ended (for metrics); `info.id` is the id the peer has if
    /// it was accepted.
    fn handshake_ended(&self, _info: &ConnInfo, _outcome: HandshakeOutcome) {}
    /// A connection was closed at TCP accept because its address already
    /// has `max_pending_per_ip` unfinished handshakes.
    fn pending_limit_refused(&self, _remote: SocketAddr) {}
    /// A room was created (its first peer is joining): `room` reaches it
    /// from other tasks (e.g. messages from a cluster). Called with the room
    /// registry locked: quick, no I/O (spawn a task or send to a channel).
    fn room_opened(&self, _key: &Self::Key, _room: RoomRef<Self>)
    where
        Self: Sized,
    {
    }
}

/// A handle on one room for tasks other than its peers' (e.g. a cluster's
/// inbound messages): runs code under the room's lock, with no registry
/// lock. It does not keep the room alive: once the room is retired (its
/// last socket finished) [`with`](Self::with) answers `None`.
pub struct RoomRef<R: Rooms> {
    cell: Weak<HostCell<RoomLogic<R::Key, R::Room>>>,
}

impl<R: Rooms> Clone for RoomRef<R> {
    fn clone(&self) -> Self {
        RoomRef {
            cell: self.cell.clone(),
        }
    }
}

impl<R: Rooms> fmt::Debug for RoomRef<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoomRef")
            .field("live", &self.is_live())
            .finish()
    }
}

impl<R: Rooms> RoomRef<R> {
    /// Runs `f` on the room's host and logic under the room's lock, then
    /// lets the room act on what changed and wakes the peers that got
    /// output. `None` when the room is gone.
    pub fn with<T>(&self, f: impl FnOnce(&mut Host, &mut R::Room, Timestamp) -> T) -> Option<T> {
        let cell = self.cell.upgrade()?;
        if cell.is_closed() {
            return None;
        }
        Some(cell.with(None, |st, now| f(&mut st.host, &mut st.logic.room, now)))
    }

    /// Whether the room still exists.
    pub fn is_live(&self) -> bool {
        self.cell.upgrade().is_some_and(|c| !c.is_closed())
    }
}

/// Options of a [`RoomServer`].
#[derive(Clone, Default)]
pub struct RoomServerOptions {
    /// Limits, timers, sub-protocols and extra headers of every connection.
    pub config: Config,
    /// TLS for `wss://`.
    pub tls: Option<TlsServerOptions>,
    /// Most unfinished handshakes (TLS included) from one IP address; a
    /// connection over the limit is closed at once, without an answer.
    /// With a [`preface`](Self::preface), see [`Preface`] for which address
    /// a connection counts against.
    pub max_pending_per_ip: Option<usize>,
    /// Read on every accepted socket before TLS and HTTP, in the
    /// connection's own task (e.g. a PROXY protocol header); it may name
    /// another client address ([`ConnInfo::remote`]).
    pub preface: Option<Arc<dyn Preface>>,
    /// The range peer ids are drawn from (default: all of 2..=2³¹−1).
    pub id_space: IdSpace,
    /// Write coalescing window (default zero: off). Time is cut into
    /// windows of this length (one grid for every peer of the server); when
    /// a room queues output for a peer, its write waits until the end of the
    /// current window (or until the peer's socket has input, whose step
    /// writes it too), and everything queued for the peer meanwhile goes out
    /// in that one write. A trade of latency for CPU: each delivery waits up
    /// to one window (half of it on average), a peer that receives `r`
    /// packets per second gets about `max(1, r × window)` of them per write
    /// instead of one, and the writes of all peers due at one window's end
    /// are made in one wake-up of the runtime (loopback figures in the
    /// README, "Performance"). At most [`MAX_COALESCE`].
    pub coalesce: Duration,
}

/// Largest [`RoomServerOptions::coalesce`]: a second is already far beyond
/// what a game would accept as added latency.
pub const MAX_COALESCE: Duration = Duration::from_secs(1);

impl fmt::Debug for RoomServerOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoomServerOptions")
            .field("config", &self.config)
            .field("tls", &self.tls.is_some())
            .field("max_pending_per_ip", &self.max_pending_per_ip)
            .field("preface", &self.preface.is_some())
            .field("id_space", &self.id_space)
            .field("coalesce", &self.coalesce)
            .finish()
    }
}

/// Adapts a [`Room`] to the engine.
struct RoomLogic<K, R> {
    key: K,
    room: R,
}

impl<K: Send + 'static, R: Room> Logic for RoomLogic<K, R> {
    fn settle(&mut self, host: &mut Host, now: Timestamp) {
        self.room.on_events(host, now);
    }
    fn poll_timeout(&self) -> Option<Timestamp> {
        self.room.poll_timeout()
    }
    fn handle_timeout(&mut self, host: &mut Host, now: Timestamp) {
        self.room.handle_timeout(host, now);
    }
}

type Cell<R> = Arc<HostCell<RoomLogic<<R as Rooms>::Key, <R as Rooms>::Room>>>;

struct Shared<R: Rooms> {
    rooms: R,
    core: ServerCore,
    registry: Mutex<HashMap<R::Key, Cell<R>>>,
}

impl<R: Rooms> Shared<R> {
    fn registry(&self) -> MutexGuard<'_, HashMap<R::Key, Cell<R>>> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cells(&self) -> Vec<(R::Key, Cell<R>)> {
        self.registry()
            .iter()
            .map(|(k, c)| (k.clone(), c.clone()))
            .collect()
    }
}

/// What an accepted request carries to the join.
struct Joining<K, T> {
    room: K,
    ticket: T,
}

/// What the engine does with a decided [`Admit`].
fn verdict<K, T>(admit: Admit<K, T>) -> engine::Verdict<Joining<K, T>> {
    match admit {
        Admit::Join {
            room,
            ticket,
            options,
        } => Ok((Joining { room, ticket }, options)),
        Admit::Respond(response) => Err(response),
        Admit::Later(_) => Err(HttpResponse::text(500, "internal error\n")),
    }
}

impl<R: Rooms> Acceptor for Shared<R> {
    type Logic = RoomLogic<R::Key, R::Room>;
    type Join = Joining<R::Key, <R::Room as Room>::Ticket>;

    fn core(&self) -> &ServerCore {
        &self.core
    }

    fn admit(&self, info: &ConnInfo, request: &Request) -> Decision<Self::Join> {
        match self.rooms.admit(info, request) {
            Admit::Later(decision) => Decision::Later(Box::pin(async move {
                let admit = decision.await;
                if matches!(admit, Admit::Later(_)) {
                    tracing::error!("an admission future answered Later; answering 500");
                    return Err(HttpResponse::text(500, "internal error\n"));
                }
                verdict(admit)
            })),
            admit => Decision::Now(verdict(admit)),
        }
    }

    fn join(
        &self,
        join: Self::Join,
        conn: Connection,
        info: &ConnInfo,
        slot: &Arc<PeerSlot>,
    ) -> Option<Cell<R>> {
        let mut registry = self.registry();
        let cell = match registry.get(&join.room) {
            Some(cell) => cell.clone(),
            None => {
                let host = Host::server(
                    (*self.core.config).clone(),
                    Admission::Automatic,
                    Box::new(rand_core::UnwrapErr(rand_core::OsRng)),
                )
                .ok()?;
                let logic = RoomLogic {
                    key: join.room.clone(),
                    room: self.rooms.open_room(&join.room),
                };
                let cell = HostCell::new(host, logic, self.core.clock);
                tokio::spawn(engine::timer_loop(cell.clone()));
                registry.insert(join.room.clone(), cell.clone());
                self.rooms.room_opened(
                    &join.room,
                    RoomRef {
                        cell: Arc::downgrade(&cell),
                    },
                );
                cell
            }
        };
        let Joining { room, ticket } = join;
        let joined = cell.with(None, |st, now| {
            match st.host.adopt(now, conn, Some(info.remote), Some(info.id)) {
                Ok(id) => {
                    st.slots.insert(id, slot.clone());
                    st.logic.room.joined(id, ticket);
                    true
                }
                Err(e) => {
                    tracing::debug!(peer = %info.id, ?room, error = %e, "join refused");
                    false
                }
            }
        });
        if !joined {
            retire_if_empty(&mut registry, &room, &cell);
            return None;
        }
        Some(cell)
    }

    fn left(&self, cell: &Cell<R>) {
        let key = cell.lock().logic.key.clone();
        retire_if_empty(&mut self.registry(), &key, cell);
    }

    fn handshake_started(&self, info: &ConnInfo) {
        self.rooms.handshake_started(info);
    }

    fn handshake_ended(&self, info: &ConnInfo, outcome: HandshakeOutcome) {
        self.rooms.handshake_ended(info, outcome);
    }

    fn pending_limit_refused(&self, remote: SocketAddr) {
        self.rooms.pending_limit_refused(remote);
    }
}

/// Removes a room that has no socket left (registry lock held, then the
/// room's: the one nesting order).
fn retire_if_empty<K: Eq + Hash, L: Logic>(
    registry: &mut HashMap<K, Arc<HostCell<L>>>,
    key: &K,
    cell: &Arc<HostCell<L>>,
) {
    let same = registry.get(key).is_some_and(|c| Arc::ptr_eq(c, cell));
    if same && cell.lock().host.socket_count() == 0 {
        registry.remove(key);
        cell.close();
    }
}

/// A multiplayer server with independent rooms. See the [module docs](self).
pub struct RoomServer<R: Rooms> {
    shared: Arc<Shared<R>>,
    tasks: Vec<JoinHandle<()>>,
    local_addrs: Vec<SocketAddr>,
}

impl<R: Rooms> fmt::Debug for RoomServer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoomServer")
            .field("local_addrs", &self.local_addrs)
            .finish_non_exhaustive()
    }
}

impl<R: Rooms> RoomServer<R> {
    /// Starts accepting on `listeners` (bound by the caller, e.g. with
    /// [`bind`](crate::bind)). Must be called inside a tokio runtime.
    pub fn start(
        rooms: R,
        listeners: Vec<TcpListener>,
        options: RoomServerOptions,
    ) -> Result<RoomServer<R>, Error> {
        options
            .config
            .validate()
            .map_err(|e| Error::Client(wsmp_core::connection::ClientError::Config(e)))?;
        if options.coalesce > MAX_COALESCE {
            return Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "coalesce window {:?} is above the maximum {MAX_COALESCE:?}",
                    options.coalesce
                ),
            )));
        }
        let shared = Arc::new(Shared {
            rooms,
            core: ServerCore::new(
                options.config,
                options.tls,
                options.max_pending_per_ip,
                options.id_space,
            )
            .with_preface(options.preface)
            .with_coalesce(options.coalesce),
            registry: Mutex::new(HashMap::new()),
        });
        let local_addrs = listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect();
        let tasks = listeners
            .into_iter()
            .map(|l| tokio::spawn(engine::accept_loop(shared.clone(), l)))
            .collect();
        Ok(RoomServer {
            shared,
            tasks,
            local_addrs,
        })
    }

    /// The addresses listened on (real ports), in the order given.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// The admission and room factory given to [`start`](Self::start).
    pub fn rooms(&self) -> &R {
        &self.shared.rooms
    }

    /// The server's clock (timestamps given to the room logic).
    pub fn now(&self) -> Timestamp {
        self.shared.core.clock.now()
    }

    /// Number of rooms with at least one socket.
    pub fn room_count(&self) -> usize {
        self.shared.registry().len()
    }

    /// Runs `f` on one room (its host and logic) under the room's lock, then
    /// lets the room act on what changed. `None` when there is no such room.
    pub fn with_room<T>(
        &self,
        key: &R::Key,
        f: impl FnOnce(&mut Host, &mut R::Room, Timestamp) -> T,
    ) -> Option<T> {
        let cell = self.shared.registry().get(key).cloned()?;
        Some(cell.with(None, |st, now| f(&mut st.host, &mut st.logic.room, now)))
    }

    /// Runs `f` on every room in turn (each under its own lock only).
    pub fn for_each_room(&self, mut f: impl FnMut(&R::Key, &mut Host, &mut R::Room, Timestamp)) {
        for (key, cell) in self.shared.cells() {
            cell.with(None, |st, now| {
                f(&key, &mut st.host, &mut st.logic.room, now)
            });
        }
    }

    /// `refuse_new_connections`: while set, no connection is accepted (they
    /// wait in the listen backlog, spec/websocket-peer.md §3.5).
    pub fn set_refuse_new_connections(&self, refuse: bool) {
        self.shared.core.set_refusing(refuse);
    }

    /// Graceful stop: stop accepting, end handshakes in progress, close
    /// frame 1001 to every peer of every room, wait until every socket is
    /// finished or `timeout` passed, then [`close`](Self::close).
    pub async fn shutdown(mut self, timeout: Duration) {
        self.shared.core.stop();
        for (_, cell) in self.shared.cells() {
            cell.with(None, |st, now| st.host.shutdown(now));
        }
        let deadline = tokio::time::Instant::now() + timeout;
        while self.room_count() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.close_now();
    }

    /// Drops every connection at once (no close frames) and stops.
    pub fn close(mut self) {
        self.close_now();
    }

    fn close_now(&mut self) {
        self.shared.core.stop();
        for t in self.tasks.drain(..) {
            t.abort();
        }
        let cells = std::mem::take(&mut *self.shared.registry());
        for cell in cells.into_values() {
            cell.with(None, |st, _| st.host.close());
            cell.close();
        }
    }
}

impl<R: Rooms> Drop for RoomServer<R> {
    fn drop(&mut self) {
        self.close_now();
    }
}

/// The task of every connection lives as long as the peer: its size is part
/// of the bytes per idle connection (issue 11; README "Performance").
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod task_size {
    use super::*;

    struct NoRooms;
    struct NoRoom;
    impl Room for NoRoom {
        type Ticket = ();
        fn joined(&mut self, _id: PeerId, _ticket: ()) {}
        fn on_events(&mut self, _host: &mut Host, _now: Timestamp) {}
    }
    impl Rooms for NoRooms {
        type Key = u32;
        type Room = NoRoom;
        fn admit(&self, _info: &ConnInfo, _request: &Request) -> Admit<u32, ()> {
            Admit::Respond(HttpResponse::text(404, "no\n"))
        }
        fn open_room(&self, _key: &u32) -> NoRoom {
            NoRoom
        }
    }

    /// The handshake's state is boxed and freed when it ends: the future a
    /// connection's task holds stays under 1 KiB (it was 2,064 bytes with
    /// the handshake inline).
    #[tokio::test]
    async fn a_connection_task_stays_under_1_kib() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _c = tokio::net::TcpStream::connect(l.local_addr().unwrap())
            .await
            .unwrap();
        let (s, remote) = l.accept().await.unwrap();
        let shared = Arc::new(Shared {
            rooms: NoRooms,
            core: ServerCore::new(Config::default(), None, None, IdSpace::default()),
            registry: Mutex::new(HashMap::new()),
        });
        let fut = engine::serve(shared, s, remote, engine::PendingGuard(None), false);
        let size = std::mem::size_of_val(&fut);
        assert!(size <= 1024, "the connection task's future is {size} bytes");
    }
}
