//! The engine under [`MultiplayerPeer`](crate::MultiplayerPeer) and
//! [`RoomServer`](crate::RoomServer): multiplayer hosts shared by one task
//! per socket.
//!
//! # Tasks and locks
//!
//! - Each socket has its own task. It owns the socket, its TLS session and
//!   its [`Driver`]; while the opening handshake runs (TLS, HTTP request,
//!   admission decision) it also owns the core [`Connection`], and no lock is
//!   held at all. Once the upgrade is accepted the connection is adopted by a
//!   host ([`Host::adopt`]) and the task keeps serving the socket.
//! - A host lives in a [`HostCell`]: the core [`Host`], the wake slots of its
//!   peers and the owner's [`Logic`] behind one mutex. A peer's task takes
//!   that lock only inside [`Endpoint::exchange`] — report what was written,
//!   feed what was read, lease the next output — and never across socket
//!   I/O, TLS work, admission hooks or logging.
//! - After anything happened on a host the [`Logic`] runs with the lock held
//!   (a relay room forwards the packets that arrived), then the peers that
//!   got output are woken after the lock is released: each of them writes
//!   everything queued for it in one step (one vectored write per wake), and
//!   a woken task yields once before writing, so frames that other tasks
//!   queue meanwhile go out in the same write (cork). With a coalescing
//!   window ([`RoomServerOptions::coalesce`](crate::RoomServerOptions::coalesce))
//!   it holds its output until the window's end instead, and is not woken
//!   again for more output until then ([`PeerSlot::holding`]).
//! - One timer task per host sleeps until the host's (and the logic's)
//!   earliest deadline.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::sync::Notify;
use wsmp_core::connection::{Connection, Event, Request};
use wsmp_core::host::{Host, PeerId};
use wsmp_core::Timestamp;
use wsmp_io::{Driver, Endpoint, Exchange, HostPeer, Status, Want};

/// The process's monotonic clock origin for every host of one server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock(pub(crate) Instant);

impl Clock {
    pub(crate) fn now(&self) -> Timestamp {
        Timestamp::from_duration(self.0.elapsed())
    }

    pub(crate) fn instant(&self, t: Timestamp) -> tokio::time::Instant {
        (self.0 + t.as_duration()).into()
    }
}

/// What the owner of a host does after host activity, with the lock held.
pub(crate) trait Logic: Send + 'static {
    /// Anything happened (input, timers, application calls): take events
    /// and act on them. Quick and I/O-free: the lock is held.
    fn settle(&mut self, host: &mut Host, now: Timestamp);
    /// The logic's own next deadline.
    fn poll_timeout(&self) -> Option<Timestamp> {
        None
    }
    /// The logic's timers due at `now`.
    fn handle_timeout(&mut self, _host: &mut Host, _now: Timestamp) {}
}

/// How a peer's task is woken when another task queued output for it.
#[derive(Debug, Default)]
pub(crate) struct PeerSlot {
    pub(crate) wake: Notify,
    /// The peer's task holds its output until its coalescing window ends
    /// ([`run_peer`]): more output for it needs no wake (it is written at
    /// the window's end). Set by the task, read under the host's lock.
    pub(crate) holding: AtomicBool,
}

/// A host and what goes with it, behind the cell's mutex.
pub(crate) struct HostState<L> {
    pub(crate) host: Host,
    pub(crate) slots: HashMap<PeerId, Arc<PeerSlot>>,
    pub(crate) logic: L,
    /// Deadline the timer task sleeps towards.
    armed: Option<Timestamp>,
}

/// A host shared by the tasks of its peers. See the [module docs](self).
pub(crate) struct HostCell<L> {
    state: Mutex<HostState<L>>,
    pub(crate) clock: Clock,
    timer: Notify,
    /// Set when the owner closed the host: tasks end at their next wake.
    closed: AtomicBool,
}

thread_local! {
    /// Slots to wake once the lock is released (reused: no allocation per
    /// operation).
    static WAKES: RefCell<Vec<Arc<PeerSlot>>> = const { RefCell::new(Vec::new()) };
}

impl<L: Logic> HostCell<L> {
    pub(crate) fn new(host: Host, logic: L, clock: Clock) -> Arc<HostCell<L>> {
        Arc::new(HostCell {
            state: Mutex::new(HostState {
                host,
                slots: HashMap::new(),
                logic,
                armed: None,
            }),
            clock,
            timer: Notify::new(),
            closed: AtomicBool::new(false),
        })
    }

    /// The raw lock, for reads that change nothing.
    pub(crate) fn lock(&self) -> MutexGuard<'_, HostState<L>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the state, then settles it: the logic runs, the timer is
    /// re-armed, and the peers that got output are woken (except `me`, the
    /// caller's own peer) once the lock is released.
    pub(crate) fn with<T>(
        &self,
        me: Option<PeerId>,
        f: impl FnOnce(&mut HostState<L>, Timestamp) -> T,
    ) -> T {
        let mut wakes = WAKES.with(|w| std::mem::take(&mut *w.borrow_mut()));
        let out = {
            let mut st = self.lock();
            let now = self.clock.now();
            let out = f(&mut st, now);
            st.settle(now, me, &mut wakes, &self.timer);
            out
        };
        for slot in wakes.drain(..) {
            slot.wake.notify_one();
        }
        WAKES.with(|w| {
            let mut w = w.borrow_mut();
            if w.capacity() < wakes.capacity() {
                *w = wakes;
            }
        });
        out
    }

    /// True once [`close`](Self::close) was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Ends every peer task at its next wake, and the timer task.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let slots: Vec<Arc<PeerSlot>> = self.lock().slots.values().cloned().collect();
        for slot in slots {
            slot.wake.notify_one();
        }
        self.timer.notify_one();
    }
}

impl<L: Logic> HostState<L> {
    fn settle(
        &mut self,
        now: Timestamp,
        me: Option<PeerId>,
        wakes: &mut Vec<Arc<PeerSlot>>,
        timer: &Notify,
    ) {
        self.logic.settle(&mut self.host, now);
        while let Some(id) = self.host.poll_dirty() {
            if Some(id) != me {
                if let Some(slot) = self.slots.get(&id) {
                    if !slot.holding.load(Ordering::Acquire) {
                        wakes.push(slot.clone());
                    }
                }
            }
        }
        let deadline = min_deadline(self.host.poll_timeout(), self.logic.poll_timeout());
        if deadline.is_some() && (self.armed.is_none() || deadline < self.armed) {
            self.armed = deadline;
            timer.notify_one();
        }
    }
}

fn min_deadline(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A future that never completes when `deadline` is `None` (lazy: nothing
/// is registered with the timer unless there is a deadline).
pub(crate) async fn sleep_until(clock: Clock, deadline: Option<Timestamp>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(clock.instant(t)).await,
        None => std::future::pending().await,
    }
}

/// The timer task of a host: runs the host's and the logic's timers. Ends
/// when the cell is closed ([`HostCell::close`]).
pub(crate) async fn timer_loop<L: Logic>(cell: Arc<HostCell<L>>) {
    let clock = cell.clock;
    loop {
        let notified = cell.timer.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if cell.is_closed() {
            return;
        }
        let deadline = {
            let mut st = cell.lock();
            let d = min_deadline(st.host.poll_timeout(), st.logic.poll_timeout());
            st.armed = d;
            d
        };
        tokio::select! {
            () = sleep_until(clock, deadline) => {
                cell.with(None, |st, now| {
                    st.host.handle_timeout(now);
                    let HostState { host, logic, .. } = st;
                    logic.handle_timeout(host, now);
                    st.armed = None;
                });
            }
            () = &mut notified => {}
        }
    }
}

/// A peer of a shared host, as the driver's endpoint: the lock is taken
/// for the exchange only.
struct Locked<'a, L> {
    cell: &'a HostCell<L>,
    id: PeerId,
}

impl<L: Logic> Endpoint for Locked<'_, L> {
    fn exchange(&mut self, _now: Timestamp, x: Exchange<'_>) -> Status {
        let id = self.id;
        self.cell.with(Some(id), |st, now| {
            HostPeer {
                host: &mut st.host,
                id,
            }
            .exchange(now, x)
        })
    }
}

/// Serves one socket of a host peer until it is finished, then releases
/// the peer. `slot` must be registered in the host's slots.
///
/// `coalesce` is the write coalescing window ([`RoomServerOptions::coalesce`](
/// crate::RoomServerOptions::coalesce)): when another task queues output for
/// this peer, the write waits until the end of the current window
/// ([`flush_time`]), or until the socket has input to read, whichever is
/// first, so that the frames queued meanwhile go out in the same write.
/// Zero: write after one yield (the cork of the module docs).
pub(crate) async fn run_peer<L: Logic>(
    cell: Arc<HostCell<L>>,
    id: PeerId,
    sock: TcpStream,
    mut driver: Driver,
    slot: Arc<PeerSlot>,
    coalesce: Duration,
) {
    let clock = cell.clock;
    loop {
        if cell.is_closed() {
            driver.abort(&sock);
            return;
        }
        // Cleared before the step's exchange takes the lock: output queued
        // from here on wakes the task again (the step may already write it).
        slot.holding.store(false, Ordering::Release);
        let mut want = driver.step(&sock, &mut Locked { cell: &cell, id }, clock.now());
        if want.done {
            if let Some(e) = driver.take_error() {
                tracing::debug!(peer = %id, error = %e, "socket error");
            }
            cell.with(None, |st, now| {
                st.host.release(now, id);
                st.slots.remove(&id);
            });
            return;
        }
        if want.again {
            tokio::task::yield_now().await;
            continue;
        }
        while wait(&sock, &slot, want, clock).await == Woke::Wake
            && !coalesce.is_zero()
            && !want.write
            && !cell.is_closed()
        {
            // Output was queued by another task: hold the write until the
            // window ends (a step for input, if any arrives, writes it too);
            // until then more output needs no wake.
            slot.holding.store(true, Ordering::Release);
            want.deadline = min_deadline(want.deadline, Some(flush_time(clock.now(), coalesce)));
        }
    }
}

/// The end of the coalescing window that `now` falls in: windows are laid
/// on one grid from the clock's origin, so the writes of every peer woken
/// within one window are due at the same instant and one thread wake-up
/// serves them all (a write waits `window / 2` on average, at most
/// `window`).
fn flush_time(now: Timestamp, window: Duration) -> Timestamp {
    let w = u64::try_from(window.as_micros()).unwrap_or(u64::MAX).max(1);
    let end = (now.as_micros() / w).saturating_add(1).saturating_mul(w);
    Timestamp::from_micros(end)
}

/// What ended a [`wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Woke {
    /// Another task queued output for the peer (or closed the host).
    Wake,
    /// The socket is ready for what was asked.
    Io,
    /// The deadline passed.
    Timer,
}

/// Waits for what `want` asks, a wake from another task, or the deadline.
///
/// Kept small, as it lives in every peer's task for the peer's whole life
/// (issue 11: bytes per idle connection): one readiness future for both
/// directions, and the timer boxed only when there is a deadline (rare for
/// a host peer, whose timers run in the host).
async fn wait(sock: &TcpStream, slot: &PeerSlot, want: Want, clock: Clock) -> Woke {
    let interest = match (want.read, want.write) {
        (true, true) => Some(tokio::io::Interest::READABLE | tokio::io::Interest::WRITABLE),
        (true, false) => Some(tokio::io::Interest::READABLE),
        (false, true) => Some(tokio::io::Interest::WRITABLE),
        (false, false) => None,
    };
    let io = async {
        match interest {
            Some(interest) => {
                let _ = sock.ready(interest).await;
            }
            None => std::future::pending().await,
        }
    };
    let timer = async {
        match want.deadline {
            Some(t) => Box::pin(tokio::time::sleep_until(clock.instant(t))).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        biased;
        () = slot.wake.notified() => {
            // Cork: others may be queueing more for this peer right now;
            // let them, then write it all in one go.
            tokio::task::yield_now().await;
            Woke::Wake
        }
        () = io => Woke::Io,
        () = timer => Woke::Timer,
    }
}

/// One step of an opening handshake. While a TLS handshake is in progress
/// the step may do its expensive public-key work (the server's signature,
/// about a millisecond of CPU for RSA-2048): on a multi-thread runtime it
/// runs in `block_in_place`, so the worker hands its other tasks — the
/// established connections — to another thread and a flood of handshakes
/// competes with them for CPU as a separate process would, instead of
/// delaying them behind its queue (issue 10: TLS handshake flood).
fn step_handshake(
    sock: &TcpStream,
    driver: &mut Driver,
    conn: &mut Connection,
    clock: Clock,
) -> Want {
    let tls_handshaking = driver.tls().is_some_and(|t| t.is_handshaking());
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if tls_handshaking && multi_thread {
        tokio::task::block_in_place(|| driver.step(sock, conn, clock.now()))
    } else {
        driver.step(sock, conn, clock.now())
    }
}

/// How a step of an opening handshake ended.
pub(crate) enum HandshakeStep {
    /// A request arrived: the caller decides on it (accept or respond on
    /// the connection), then calls [`handshake`] again.
    Request(Box<Request>),
    /// The connection opened (it may have closed again at once).
    Opened,
    /// It ended without opening (output such as an HTTP refusal is written
    /// first).
    Ended,
}

/// Drives a lone connection (no host) through its opening handshake, with
/// no lock held: TLS and the HTTP request, until a request needs a decision
/// or the connection opened or ended. Events are taken up to and including
/// `Open`, so messages that arrived with the handshake stay queued.
pub(crate) async fn handshake(
    sock: &TcpStream,
    driver: &mut Driver,
    conn: &mut Connection,
    clock: Clock,
) -> HandshakeStep {
    loop {
        let want = step_handshake(sock, driver, conn, clock);
        while let Some(event) = conn.poll_event() {
            match event {
                Event::Request(request) => return HandshakeStep::Request(request),
                Event::Open { .. } => return HandshakeStep::Opened,
                _ => {}
            }
        }
        if want.done {
            return HandshakeStep::Ended;
        }
        if want.again {
            // More input waits: step again now.
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            r = sock.readable(), if want.read => { let _ = r; }
            r = sock.writable(), if want.write => { let _ = r; }
            () = sleep_until(clock, want.deadline) => {}
        }
    }
}

/// The range peer ids are drawn from: every id of a server is unique within
/// it. The default is the engine's whole client range 2..=2³¹−1
/// (spec/websocket-peer.md §3.2); a cluster gives each node a disjoint part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdSpace {
    first: i32,
    last: i32,
}

impl Default for IdSpace {
    fn default() -> Self {
        IdSpace {
            first: 2,
            last: i32::MAX,
        }
    }
}

impl IdSpace {
    /// Ids `first..=last`; `None` unless `2 <= first <= last`
    /// (spec/websocket-peer.md §3.2: 0 and 1 are never client ids).
    pub fn new(first: i32, last: i32) -> Option<IdSpace> {
        (2 <= first && first <= last).then_some(IdSpace { first, last })
    }

    /// The first id of the range.
    pub fn first(&self) -> i32 {
        self.first
    }

    /// The last id of the range.
    pub fn last(&self) -> i32 {
        self.last
    }

    /// How many ids the range holds.
    pub fn len(&self) -> u64 {
        (self.last as i64 - self.first as i64 + 1) as u64
    }

    /// Never empty (see [`new`](Self::new)); for clippy's `len` rule.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether `id` is in the range.
    pub fn contains(&self, id: i32) -> bool {
        (self.first..=self.last).contains(&id)
    }
}

/// Peer ids unique across every host of a server (so logs, stats and a
/// cluster can name a peer by its id alone), drawn from the server's
/// [`IdSpace`]. Ids stay taken until the peer's socket is finished.
#[derive(Debug)]
pub(crate) struct IdRegistry {
    used: HashSet<PeerId>,
    space: IdSpace,
    rng: rand_core::UnwrapErr<rand_core::OsRng>,
}

impl IdRegistry {
    pub(crate) fn new(space: IdSpace) -> Mutex<IdRegistry> {
        Mutex::new(IdRegistry {
            used: HashSet::new(),
            space,
            rng: rand_core::UnwrapErr(rand_core::OsRng),
        })
    }

    /// A fresh id (spec/websocket-peer.md §3.2: 2..=2³¹−1, never in use),
    /// uniformly from the id space; `None` when every id of it is in use.
    pub(crate) fn draw(&mut self) -> Option<PeerId> {
        let space = self.space;
        if self.used.len() as u64 >= space.len() {
            return None;
        }
        let used = &self.used;
        let id = if space == IdSpace::default() {
            PeerId::random(&mut self.rng, |id| used.contains(&id))
        } else {
            use rand_core::RngCore;
            loop {
                let offset = self.rng.next_u64() % space.len();
                let candidate = PeerId::new((space.first as i64 + offset as i64) as i32);
                match candidate {
                    Some(id) if !used.contains(&id) => break id,
                    _ => {}
                }
            }
        };
        self.used.insert(id);
        Some(id)
    }

    pub(crate) fn free(&mut self, id: PeerId) {
        self.used.remove(&id);
    }
}

/// Unfinished handshakes per remote IP address (TCP accepted, upgrade not
/// complete, TLS included).
#[derive(Debug, Default)]
pub(crate) struct PendingPerIp {
    counts: Mutex<HashMap<IpAddr, usize>>,
}

impl PendingPerIp {
    /// Counts a new handshake from `addr` unless it already has `limit`.
    pub(crate) fn try_add(
        self: &Arc<Self>,
        addr: SocketAddr,
        limit: Option<usize>,
    ) -> Option<PendingGuard> {
        let Some(limit) = limit else {
            return Some(PendingGuard(None));
        };
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(addr.ip()).or_insert(0);
        if *n >= limit {
            if *n == 0 {
                counts.remove(&addr.ip());
            }
            return None;
        }
        *n += 1;
        Some(PendingGuard(Some((self.clone(), addr.ip()))))
    }
}

/// One counted handshake; dropped when it ends.
#[derive(Debug)]
pub(crate) struct PendingGuard(pub(crate) Option<(Arc<PendingPerIp>, IpAddr)>);

impl Drop for PendingGuard {
    fn drop(&mut self) {
        if let Some((set, ip)) = self.0.take() {
            let mut counts = set.counts.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = counts.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(&ip);
                }
            }
        }
    }
}

/// How the opening handshake of an accepted socket ended (for metrics and
/// logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HandshakeOutcome {
    /// The upgrade was accepted and the peer joined its host.
    Accepted,
    /// Answered with a plain HTTP response of this status: a refusal by the
    /// admission decision (404, 503, …), a malformed request (400, 405,
    /// 426, 431), or a plain HTTP request answered (200).
    Responded(u16),
    /// `handshake_timeout` ran out (TCP, TLS and the upgrade together).
    Timeout,
    /// The TLS handshake failed.
    Tls,
    /// The peer closed or the socket failed before the upgrade completed.
    Closed,
    /// Accepted, but the host refused the peer (the server is stopping).
    Refused,
    /// The [`Preface`] refused the connection (e.g. a PROXY header from an
    /// untrusted address, or a malformed one); closed without an answer.
    PrefaceRefused,
}

/// What a server shares with every connection task.
pub(crate) struct ServerCore {
    pub(crate) clock: Clock,
    pub(crate) config: Arc<wsmp_core::Config>,
    pub(crate) tls: Option<wsmp_tls::TlsServerOptions>,
    pub(crate) ids: Mutex<IdRegistry>,
    pending: Arc<PendingPerIp>,
    pub(crate) max_pending_per_ip: Option<usize>,
    /// Read before TLS and HTTP on every accepted socket ([`Preface`]).
    pub(crate) preface: Option<Arc<dyn Preface>>,
    /// Write coalescing window of every peer ([`run_peer`]).
    pub(crate) coalesce: Duration,
    /// Set by shutdown/close: handshakes in progress end, accept loops stop.
    stopping: AtomicBool,
    stop: Notify,
    /// `refuse_new_connections`: accept loops hold still.
    refusing: AtomicBool,
    resume: Notify,
}

impl ServerCore {
    pub(crate) fn new(
        config: wsmp_core::Config,
        tls: Option<wsmp_tls::TlsServerOptions>,
        max_pending_per_ip: Option<usize>,
        ids: IdSpace,
    ) -> ServerCore {
        ServerCore {
            clock: Clock(Instant::now()),
            config: Arc::new(config),
            tls,
            ids: IdRegistry::new(ids),
            pending: Arc::new(PendingPerIp::default()),
            max_pending_per_ip,
            preface: None,
            coalesce: Duration::ZERO,
            stopping: AtomicBool::new(false),
            stop: Notify::new(),
            refusing: AtomicBool::new(false),
            resume: Notify::new(),
        }
    }

    /// Reads `preface` first on every accepted socket.
    pub(crate) fn with_preface(mut self, preface: Option<Arc<dyn Preface>>) -> ServerCore {
        self.preface = preface;
        self
    }

    /// Holds each peer's writes for up to `window` ([`run_peer`]).
    pub(crate) fn with_coalesce(mut self, window: Duration) -> ServerCore {
        self.coalesce = window;
        self
    }

    /// Stops accepting and ends every handshake in progress.
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        self.stop.notify_waiters();
        self.resume.notify_waiters();
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// `refuse_new_connections` (spec §3.5: while set, connections are not
    /// accepted at all; they wait in the backlog).
    pub(crate) fn set_refusing(&self, refuse: bool) {
        self.refusing.store(refuse, Ordering::Release);
        if !refuse {
            self.resume.notify_waiters();
        }
    }

    pub(crate) fn is_refusing(&self) -> bool {
        self.refusing.load(Ordering::Acquire)
    }

    fn lock_ids(&self) -> MutexGuard<'_, IdRegistry> {
        self.ids.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Who the connection is, for the admission decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnInfo {
    /// The id the peer gets if it joins (unique across the server).
    pub id: PeerId,
    /// The client's address: the remote address of the TCP connection, or
    /// the address a [`Preface`] named (e.g. a PROXY protocol header).
    pub remote: SocketAddr,
    /// The remote address of the TCP connection when a [`Preface`] named
    /// another client address (the proxy's), else `None`.
    pub via: Option<SocketAddr>,
    /// The local address it arrived on.
    pub local: Option<SocketAddr>,
    /// True for `wss://`.
    pub tls: bool,
}

/// What a [`Preface`] decides on the first bytes of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrefaceDecision {
    /// The bytes so far are not enough: wait for more and ask again.
    NeedMore,
    /// Serve the connection: `consumed` bytes are the preface (they are
    /// read and dropped; TLS or HTTP starts after them), and `remote` is
    /// the client's address from now on ([`ConnInfo::remote`]).
    Proceed {
        /// Length of the preface (0 when there is none).
        consumed: usize,
        /// The client's address.
        remote: SocketAddr,
    },
    /// Close the connection at once, without an answer.
    Refuse(String),
}

/// Something a connection sends before TLS and HTTP, read in the
/// connection's own task right after accept — e.g. a PROXY protocol header
/// naming the real client behind a load balancer.
///
/// The engine peeks at the socket (nothing is consumed) and hands the
/// bytes so far to [`read`](Self::read) until it decides; then it reads
/// exactly the `consumed` bytes, so TLS and the HTTP request start right
/// after the preface. The wait is bounded by the handshake timeout, which
/// runs from TCP accept (preface, TLS and upgrade together).
///
/// Unfinished handshakes are counted per address for
/// `max_pending_per_ip`: by the TCP peer at accept, unless
/// [`defers_pending_count`](Self::defers_pending_count) says that peer
/// speaks for others (a trusted proxy); then the connection is counted by
/// the address the preface names, once it is read. When the preface names
/// another address than the one counted at accept, the count moves to it.
pub trait Preface: Send + Sync + 'static {
    /// Most bytes a preface may take: a connection whose first
    /// `max_len` bytes are still [`PrefaceDecision::NeedMore`] is refused.
    fn max_len(&self) -> usize;
    /// Whether a connection from `remote` is counted against
    /// `max_pending_per_ip` only once its preface named the client.
    fn defers_pending_count(&self, _remote: SocketAddr) -> bool {
        false
    }
    /// Decides on the first bytes `head` of a connection from `remote`
    /// (the TCP peer); called again with more bytes after `NeedMore`.
    fn read(&self, remote: SocketAddr, head: &[u8]) -> PrefaceDecision;
}

/// Why a preface did not let the connection through.
#[derive(Debug)]
enum PrefaceFailure {
    /// The handshake timeout ran out first.
    Timeout,
    /// The peer closed or the socket failed first (or the server stopped).
    Closed,
    /// [`PrefaceDecision::Refuse`], or longer than `max_len`.
    Refused(String),
}

/// Reads the preface of a fresh socket (see [`Preface`]): peeks until the
/// preface decides, then consumes exactly its bytes. Returns the client's
/// address.
async fn read_preface(
    sock: &TcpStream,
    preface: &dyn Preface,
    remote: SocketAddr,
    deadline: tokio::time::Instant,
) -> Result<SocketAddr, PrefaceFailure> {
    use std::time::Duration;
    let max = preface.max_len().max(1);
    let mut buf = vec![0u8; max];
    let mut seen = 0;
    let mut backoff = Duration::from_millis(1);
    let (consumed, client) = loop {
        let n = match tokio::time::timeout_at(deadline, sock.peek(&mut buf)).await {
            Err(_) => return Err(PrefaceFailure::Timeout),
            Ok(Err(_) | Ok(0)) => return Err(PrefaceFailure::Closed),
            Ok(Ok(n)) => n,
        };
        match preface.read(remote, &buf[..n]) {
            PrefaceDecision::Proceed { consumed, remote } if consumed <= n => {
                break (consumed, remote)
            }
            PrefaceDecision::Proceed { .. } => {
                return Err(PrefaceFailure::Refused(
                    "preface longer than the bytes it was given".into(),
                ))
            }
            PrefaceDecision::Refuse(reason) => return Err(PrefaceFailure::Refused(reason)),
            PrefaceDecision::NeedMore if n >= max => {
                return Err(PrefaceFailure::Refused(format!(
                    "no complete preface in {max} bytes"
                )))
            }
            PrefaceDecision::NeedMore => {
                // A peek returns at once while unread bytes wait, so it
                // cannot wait for *more* bytes: back off (1 ms doubling to
                // 50 ms) while nothing new arrived. Prefaces come in one
                // segment in practice (nginx, HAProxy write them whole).
                if n == seen {
                    if tokio::time::Instant::now() + backoff >= deadline {
                        tokio::time::sleep_until(deadline).await;
                        return Err(PrefaceFailure::Timeout);
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(50));
                } else {
                    backoff = Duration::from_millis(1);
                }
                seen = n;
            }
        }
    };
    // The preface's bytes are in the socket's receive buffer: read exactly them.
    let mut left = consumed;
    while left > 0 {
        let ready = tokio::time::timeout_at(deadline, sock.readable()).await;
        match ready {
            Err(_) => return Err(PrefaceFailure::Timeout),
            Ok(Err(_)) => return Err(PrefaceFailure::Closed),
            Ok(Ok(())) => {}
        }
        match sock.try_read(&mut buf[..left]) {
            Ok(0) => return Err(PrefaceFailure::Closed),
            Ok(n) => left -= n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return Err(PrefaceFailure::Closed),
        }
    }
    Ok(client)
}

/// An admission verdict: join with these options, or answer this response.
pub(crate) type Verdict<J> =
    Result<(J, wsmp_core::connection::AcceptOptions), wsmp_core::connection::HttpResponse>;

/// An admission decision: taken at once, or by a future the connection's
/// task awaits (e.g. a reservation that needs a network round trip).
pub(crate) enum Decision<J> {
    /// Decided.
    Now(Verdict<J>),
    /// Decided when the future completes.
    Later(Pin<Box<dyn Future<Output = Verdict<J>> + Send>>),
}

/// Where accepted sockets go: the admission decision and the host a peer
/// joins (implemented by `RoomServer` and `MultiplayerPeer`).
pub(crate) trait Acceptor: Send + Sync + 'static {
    type Logic: Logic;
    /// What an accepted request carries to `join`.
    type Join: Send + 'static;
    fn core(&self) -> &ServerCore;
    /// Decides on a request, in the connection's own task (no lock held):
    /// at once, or later (the handshake timeout covers the wait).
    fn admit(&self, info: &ConnInfo, request: &Request) -> Decision<Self::Join>;
    /// Adopts the open connection into its host (registering `slot`) and
    /// returns the host, or `None` when it was refused.
    fn join(
        &self,
        join: Self::Join,
        conn: Connection,
        info: &ConnInfo,
        slot: &Arc<PeerSlot>,
    ) -> Option<Arc<HostCell<Self::Logic>>>;
    /// The peer's socket is finished and released from `cell`.
    fn left(&self, _cell: &Arc<HostCell<Self::Logic>>) {}
    /// A handshake started (for metrics; every start has one end).
    fn handshake_started(&self, _info: &ConnInfo) {}
    /// A handshake ended (for metrics).
    fn handshake_ended(&self, _info: &ConnInfo, _outcome: HandshakeOutcome) {}
    /// A connection was closed at accept: its address has
    /// `max_pending_per_ip` unfinished handshakes.
    fn pending_limit_refused(&self, _remote: SocketAddr) {}
}

/// Accepts sockets until the server stops; each gets its own task.
pub(crate) async fn accept_loop<A: Acceptor>(acceptor: Arc<A>, listener: tokio::net::TcpListener) {
    let core = acceptor.core();
    loop {
        wait_while_refusing(core).await;
        if core.is_stopping() {
            return;
        }
        let (sock, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = core.stop.notified() => return,
        };
        // Refusal may have started while we waited in accept(): hold the
        // socket untouched, as if it were still in the backlog (spec §3.5).
        wait_while_refusing(core).await;
        // A trusted proxy's connections are counted by the client its
        // preface names, once read (see `Preface`).
        let deferred = core
            .preface
            .as_ref()
            .is_some_and(|p| p.defers_pending_count(remote));
        let guard = if deferred {
            PendingGuard(None)
        } else {
            let Some(guard) = core.pending.try_add(remote, core.max_pending_per_ip) else {
                tracing::debug!(%remote, "too many unfinished handshakes from this address; closing");
                acceptor.pending_limit_refused(remote);
                continue;
            };
            guard
        };
        tokio::spawn(serve(acceptor.clone(), sock, remote, guard, deferred));
    }
}

async fn wait_while_refusing(core: &ServerCore) {
    loop {
        let resume = core.resume.notified();
        tokio::pin!(resume);
        resume.as_mut().enable();
        if !core.is_refusing() || core.is_stopping() {
            return;
        }
        resume.await;
    }
}

/// Frees a peer id when the connection task ends.
struct IdGuard<'a>(&'a ServerCore, PeerId);

impl Drop for IdGuard<'_> {
    fn drop(&mut self) {
        self.0.lock_ids().free(self.1);
    }
}

/// One accepted socket: TLS and the opening handshake in this task with no
/// shared lock, then the peer's life in its host.
///
/// The handshake runs as a boxed future of its own ([`open_peer`]): its
/// state (request, TLS setup, admission, timers — about 2 KiB) is freed when
/// it ends, so the task of a peer that stays connected for hours holds only
/// what [`run_peer`] needs (issue 11: bytes per idle connection).
pub(crate) async fn serve<A: Acceptor>(
    acceptor: Arc<A>,
    sock: TcpStream,
    remote: SocketAddr,
    pending: PendingGuard,
    deferred: bool,
) {
    let core = acceptor.core();
    let Some(id) = core.lock_ids().draw() else {
        tracing::warn!(%remote, "every peer id of the id space is in use; closing");
        return;
    };
    let _id = IdGuard(core, id);
    let Some(Opened {
        sock,
        driver,
        cell,
        slot,
    }) = Box::pin(open_peer(&*acceptor, id, sock, remote, pending, deferred)).await
    else {
        return;
    };
    run_peer(cell.clone(), id, sock, driver, slot, core.coalesce).await;
    acceptor.left(&cell);
}

/// A peer whose opening handshake succeeded and that joined its host.
struct Opened<L: Logic> {
    sock: TcpStream,
    driver: Driver,
    cell: Arc<HostCell<L>>,
    slot: Arc<PeerSlot>,
}

/// The opening of one accepted socket (preface, TLS, upgrade, admission,
/// join); `None` when it ended otherwise (already reported to `acceptor`).
async fn open_peer<A: Acceptor>(
    acceptor: &A,
    id: PeerId,
    sock: TcpStream,
    remote: SocketAddr,
    mut pending: PendingGuard,
    deferred: bool,
) -> Option<Opened<A::Logic>> {
    let core = acceptor.core();
    if let Err(e) = wsmp_io::tune_stream(socket2::SockRef::from(&sock)) {
        tracing::debug!(%remote, error = %e, "socket options");
    }
    let clock = core.clock;
    // The handshake timeout runs from TCP accept: preface, TLS and upgrade.
    let accepted_at = clock.now();
    let mut info = ConnInfo {
        id,
        remote,
        via: None,
        local: sock.local_addr().ok(),
        tls: core.tls.is_some(),
    };
    acceptor.handshake_started(&info);
    if let Some(preface) = &core.preface {
        let deadline = clock.instant(accepted_at.saturating_add(core.config.handshake_timeout));
        let read = tokio::select! {
            r = read_preface(&sock, preface.as_ref(), remote, deadline) => r,
            () = core.stop.notified() => Err(PrefaceFailure::Closed),
        };
        let client = match read {
            Ok(client) => client,
            Err(failure) => {
                let outcome = match failure {
                    PrefaceFailure::Timeout => HandshakeOutcome::Timeout,
                    PrefaceFailure::Closed => HandshakeOutcome::Closed,
                    PrefaceFailure::Refused(reason) => {
                        tracing::info!(%remote, %reason, "connection refused by its preface");
                        HandshakeOutcome::PrefaceRefused
                    }
                };
                acceptor.handshake_ended(&info, outcome);
                return None;
            }
        };
        if deferred || client.ip() != remote.ip() {
            drop(pending);
            let Some(guard) = core.pending.try_add(client, core.max_pending_per_ip) else {
                tracing::debug!(%client, via = %remote, "too many unfinished handshakes from this address; closing");
                acceptor.pending_limit_refused(client);
                info.remote = client;
                acceptor.handshake_ended(&info, HandshakeOutcome::Closed);
                return None;
            };
            pending = guard;
        }
        if client != remote {
            info.remote = client;
            info.via = Some(remote);
        }
    }
    let tls = match &core.tls {
        Some(opts) => match rustls::ServerConnection::new(opts.config()) {
            Ok(c) => Some(Box::new(rustls::Connection::Server(c))),
            Err(e) => {
                tracing::warn!(error = %e, "TLS session setup failed");
                acceptor.handshake_ended(&info, HandshakeOutcome::Tls);
                return None;
            }
        },
        None => None,
    };
    let mut driver = Driver::new(tls, core.config.close_timeout);
    let mut conn = match Connection::server(
        core.config.clone(),
        accepted_at,
        wsmp_core::connection::Admission::Manual,
    ) {
        Ok(conn) => conn,
        Err(e) => {
            tracing::error!(error = %e, "invalid connection configuration; refusing the connection");
            acceptor.handshake_ended(&info, HandshakeOutcome::Refused);
            return None;
        }
    };
    let mut join = None;
    let opened = {
        let run = async {
            loop {
                match handshake(&sock, &mut driver, &mut conn, clock).await {
                    HandshakeStep::Opened => return true,
                    HandshakeStep::Ended => return false,
                    HandshakeStep::Request(request) => {
                        let verdict = match acceptor.admit(&info, &request) {
                            Decision::Now(verdict) => Some(verdict),
                            // The handshake timeout covers the wait: at the
                            // deadline the connection's timer ends it.
                            Decision::Later(decision) => tokio::select! {
                                verdict = decision => Some(verdict),
                                () = sleep_until(clock, conn.poll_timeout()) => {
                                    conn.handle_timeout(clock.now());
                                    None
                                }
                            },
                        };
                        let now = clock.now();
                        match verdict {
                            Some(Ok((j, options))) => match conn.accept(now, options) {
                                Ok(()) => join = Some(j),
                                Err(e) => {
                                    tracing::warn!(peer = %id, error = %e, "accepting the upgrade failed; answering 500");
                                    let _ = conn.respond(
                                        now,
                                        wsmp_core::connection::HttpResponse::text(
                                            500,
                                            "internal error\n",
                                        ),
                                    );
                                }
                            },
                            Some(Err(response)) => {
                                let _ = conn.respond(now, response);
                            }
                            None => {}
                        }
                    }
                }
            }
        };
        tokio::select! {
            opened = run => opened,
            () = core.stop.notified() => false,
        }
    };
    drop(pending);
    let outcome = if opened && !core.is_stopping() {
        HandshakeOutcome::Accepted
    } else {
        failed_outcome(&conn, &mut driver)
    };
    let Some(j) = join.filter(|_| outcome == HandshakeOutcome::Accepted) else {
        acceptor.handshake_ended(&info, outcome);
        driver.abort(&sock);
        return None;
    };
    let slot = Arc::new(PeerSlot::default());
    let Some(cell) = acceptor.join(j, conn, &info, &slot) else {
        acceptor.handshake_ended(&info, HandshakeOutcome::Refused);
        driver.abort(&sock);
        return None;
    };
    acceptor.handshake_ended(&info, HandshakeOutcome::Accepted);
    Some(Opened {
        sock,
        driver,
        cell,
        slot,
    })
}

/// Why a handshake ended without an open connection.
fn failed_outcome(conn: &Connection, driver: &mut Driver) -> HandshakeOutcome {
    use wsmp_core::connection::CloseCause;
    let tls_failed = driver
        .take_error()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::InvalidData)
        || driver.tls().is_some_and(|t| t.is_handshaking());
    match conn.close_info().map(|i| &i.cause) {
        Some(CloseCause::HandshakeTimeout) => HandshakeOutcome::Timeout,
        Some(CloseCause::HttpResponse(status)) => HandshakeOutcome::Responded(*status),
        Some(CloseCause::Handshake(e)) => HandshakeOutcome::Responded(e.http_status()),
        _ if tls_failed => HandshakeOutcome::Tls,
        _ => HandshakeOutcome::Closed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flush_times_lie_on_one_grid() {
        let w = Duration::from_millis(4);
        let at = |us: u64| flush_time(Timestamp::from_micros(us), w).as_micros();
        // Anywhere in [0, 4 ms) ends at 4 ms; exactly on a boundary, the next one.
        assert_eq!(at(0), 4_000);
        assert_eq!(at(3_999), 4_000);
        assert_eq!(at(4_000), 8_000);
        assert_eq!(at(10_001), 12_000);
        // A window below a microsecond counts as one microsecond.
        assert_eq!(
            flush_time(Timestamp::from_micros(7), Duration::from_nanos(10)).as_micros(),
            8
        );
        // Far in the future: saturates instead of overflowing.
        let late = flush_time(Timestamp::MAX, w);
        assert!(late.as_micros() >= u64::MAX - 4_000);
    }
}
