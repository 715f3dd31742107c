//! The Godot-style multiplayer peer on tokio: [`MultiplayerPeer`].
//!
//! One [`Host`] (the sans-IO core) behind a mutex, one task per socket that
//! pumps bytes between its socket and the host, and one timer task armed
//! from [`Host::poll_timeout`]. Nothing polls on a fixed tick. The handshake
//! timer of a server peer starts at TCP accept, so it covers TLS too.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use wsmp_core::connection::Request;
use wsmp_core::connection::{Admission, CloseInfo, HttpResponse, State};
use wsmp_core::host::{
    ConnectionStatus, Host, HostEvent, HostSendError, PeerId, SendReport, Target,
};
use wsmp_core::{CloseCode, Config, Timestamp};

use crate::error::Error;
use crate::pump::{HostPeer, Io};
use crate::tls::{
    client_tls, server_tls, AdmissionHook, Decision, TlsClientOptions, TlsServerOptions,
};
use crate::transport::Tls;

/// What `get_peer(id)` reports about one connected peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// WebSocket ready state.
    pub state: State,
    /// How it ended, once closing.
    pub close_info: Option<CloseInfo>,
    /// Payload bytes queued and not yet written.
    pub buffered_amount: usize,
    /// Remote address.
    pub address: Option<SocketAddr>,
}

struct PeerHandle {
    wake: Notify,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// An admission hook that also learns the pending peer's id (the id the peer
/// gets in `PeerConnected` if accepted), so an application can remember what
/// it decided for that peer: see [`MultiplayerPeer::set_peer_admission_hook`].
pub type PeerAdmissionHook = Arc<dyn Fn(PeerId, &Request) -> Decision + Send + Sync>;

struct MpState {
    host: Host,
    peers: HashMap<PeerId, Arc<PeerHandle>>,
    /// Remote IP of peers accepted while `max_pending_per_ip` is set; pruned
    /// of finished handshakes at each accept.
    pending_ips: HashMap<PeerId, IpAddr>,
    /// Deadline the timer task is sleeping towards.
    armed: Option<Timestamp>,
}

struct Shared {
    state: Mutex<MpState>,
    epoch: Instant,
    events: Notify,
    timer: Notify,
    accept_resume: Notify,
    admission: Option<PeerAdmissionHook>,
    tls_server: Option<TlsServerOptions>,
    max_pending_per_ip: Option<usize>,
}

impl Shared {
    fn now(&self) -> Timestamp {
        Timestamp::from_duration(self.epoch.elapsed())
    }

    fn lock(&self) -> MutexGuard<'_, MpState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// After any host operation: answer admission requests, wake the tasks
    /// of peers with new output, the application, and the timer.
    fn dispatch(&self, st: &mut MpState, except: Option<PeerId>) {
        let now = self.now();
        // A peer whose request is answered here has new output even when it
        // is `except` (its own task computed what to wait for before this
        // answer existed): it is always woken.
        let mut answered = None;
        while let Some(HostEvent::Request { peer, request }) = st.host.poll_request() {
            if Some(peer) == except {
                answered = except;
            }
            let decision = match &self.admission {
                Some(hook) => hook(peer, &request),
                None => Decision::Accept(Default::default()),
            };
            let result = match decision {
                Decision::Accept(opts) => st.host.accept_request(now, peer, opts),
                Decision::Respond(resp) => st.host.respond(now, peer, resp),
            };
            if let Err(e) = result {
                tracing::warn!(%peer, error = %e, "admission decision failed; answering 500");
                let _ = st
                    .host
                    .respond(now, peer, HttpResponse::text(500, "internal error\n"));
            }
        }
        while let Some(id) = st.host.poll_dirty() {
            if Some(id) != except || answered == Some(id) {
                if let Some(h) = st.peers.get(&id) {
                    h.wake.notify_one();
                }
            }
        }
        if st.host.has_events() {
            self.events.notify_one();
        }
        let deadline = st.host.poll_timeout();
        if deadline.is_some() && (st.armed.is_none() || deadline < st.armed) {
            st.armed = deadline;
            self.timer.notify_one();
        }
    }
}

/// A WebSocket multiplayer peer with the engine's API and defaults
/// (spec/websocket-peer.md §3): a server that hands out peer ids, or a
/// client joining one.
///
/// ```no_run
/// # async fn demo() -> Result<(), wsmp_tokio::Error> {
/// use wsmp_tokio::{MultiplayerPeer, HostEvent, Target};
/// let mut peer = MultiplayerPeer::new();
/// peer.create_server(9080, "127.0.0.1", None).await?;
/// while let Some(event) = peer.next_event().await {
///     if let HostEvent::Packet { from, data } = event {
///         let _ = peer.send(Target::Peer(from), data); // echo back
///     }
/// }
/// # Ok(()) }
/// ```
pub struct MultiplayerPeer {
    /// Configuration applied to every peer (the seed's properties).
    pub config: Config,
    admission: Option<PeerAdmissionHook>,
    max_pending_per_ip: Option<usize>,
    shared: Option<Arc<Shared>>,
    tasks: Vec<JoinHandle<()>>,
    local_addrs: Vec<SocketAddr>,
}

impl Default for MultiplayerPeer {
    fn default() -> Self {
        MultiplayerPeer::new()
    }
}

impl std::fmt::Debug for MultiplayerPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MultiplayerPeer")
            .field("local_addrs", &self.local_addrs)
            .finish_non_exhaustive()
    }
}

fn os_rng() -> wsmp_core::connection::Rng {
    Box::new(rand_core::UnwrapErr(rand_core::OsRng))
}

/// Binds a listener: `"*"` means every address (IPv6 dual-stack where
/// possible, else IPv4), otherwise a literal IPv4 or IPv6 address
/// (spec/websocket-peer.md §3.3). `SO_REUSEADDR` is set, as in the engine.
pub fn bind(port: u16, bind_address: &str) -> Result<TcpListener, Error> {
    let invalid = || {
        Error::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("invalid bind address {bind_address:?}"),
        ))
    };
    let (ip, dual) = match bind_address {
        "*" => (IpAddr::V6(Ipv6Addr::UNSPECIFIED), true),
        other => (
            other
                .trim_matches(['[', ']'])
                .parse::<IpAddr>()
                .map_err(|_| invalid())?,
            false,
        ),
    };
    let addr = SocketAddr::new(ip, port);
    let make = |addr: SocketAddr, dual: bool| -> std::io::Result<TcpListener> {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            None,
        )?;
        if dual {
            socket.set_only_v6(false)?;
        }
        socket.set_reuse_address(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(1024)?;
        TcpListener::from_std(socket.into())
    };
    match make(addr, dual) {
        Ok(l) => Ok(l),
        // No IPv6 on this machine: all IPv4 addresses instead.
        Err(_) if dual => Ok(make(SocketAddr::from(([0, 0, 0, 0], port)), false)?),
        Err(e) => Err(Error::Io(e)),
    }
}

impl MultiplayerPeer {
    /// A disconnected peer with the seed's defaults.
    pub fn new() -> MultiplayerPeer {
        MultiplayerPeer {
            config: Config::default(),
            admission: None,
            max_pending_per_ip: None,
            shared: None,
            tasks: Vec::new(),
            local_addrs: Vec::new(),
        }
    }

    /// Sets the admission hook used by [`create_server`](Self::create_server):
    /// it sees every HTTP request (path, headers, offered sub-protocols) and
    /// accepts it, refuses it with an HTTP status, or answers plain HTTP.
    pub fn set_admission_hook(&mut self, hook: AdmissionHook) {
        self.admission = Some(Arc::new(move |_id, request| hook(request)));
    }

    /// Like [`set_admission_hook`](Self::set_admission_hook), but the hook
    /// also gets the pending peer's id: the id of its `PeerConnected` event
    /// if the hook accepts. It runs synchronously inside the adapter, with the
    /// host locked: keep it fast and never call back into this peer from it.
    pub fn set_peer_admission_hook(&mut self, hook: PeerAdmissionHook) {
        self.admission = Some(hook);
    }

    /// Limits unfinished handshakes (TCP accepted, WebSocket upgrade not yet
    /// complete, TLS included) from one IP address: a connection accepted
    /// while its address already has `limit` of them is closed at once,
    /// without any HTTP answer. `None` (the default) means no limit. Takes
    /// effect at the next [`create_server`](Self::create_server).
    pub fn set_max_pending_per_ip(&mut self, limit: Option<usize>) {
        self.max_pending_per_ip = limit;
    }

    /// Addresses the server listens on.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// `create_server(port, bind_address, tls)`: listens and becomes
    /// CONNECTED with unique id 1.
    pub async fn create_server(
        &mut self,
        port: u16,
        bind_address: &str,
        tls: Option<TlsServerOptions>,
    ) -> Result<(), Error> {
        let listener = bind(port, bind_address)?;
        self.create_server_on(vec![listener], tls)
    }

    /// Like [`create_server`](Self::create_server) on listeners bound by the caller.
    pub fn create_server_on(
        &mut self,
        listeners: Vec<TcpListener>,
        tls: Option<TlsServerOptions>,
    ) -> Result<(), Error> {
        if self
            .shared
            .as_ref()
            .is_some_and(|s| s.lock().host.connection_status() != ConnectionStatus::Disconnected)
        {
            return Err(Error::Command(
                wsmp_core::connection::CommandError::InvalidState,
            ));
        }
        let admission = if self.admission.is_some() {
            Admission::Manual
        } else {
            Admission::Automatic
        };
        let host = Host::server(self.config.clone(), admission, os_rng())
            .map_err(|e| Error::Client(wsmp_core::connection::ClientError::Config(e)))?;
        let shared = Arc::new(Shared {
            state: Mutex::new(MpState {
                host,
                peers: HashMap::new(),
                pending_ips: HashMap::new(),
                armed: None,
            }),
            epoch: Instant::now(),
            events: Notify::new(),
            timer: Notify::new(),
            accept_resume: Notify::new(),
            admission: self.admission.clone(),
            tls_server: tls,
            max_pending_per_ip: self.max_pending_per_ip,
        });
        self.local_addrs = listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect();
        for listener in listeners {
            self.tasks
                .push(tokio::spawn(accept_loop(shared.clone(), listener)));
        }
        self.tasks.push(tokio::spawn(timer_loop(shared.clone())));
        tracing::info!(addrs = ?self.local_addrs, "multiplayer server listening");
        self.shared = Some(shared);
        Ok(())
    }

    /// `create_client(url, tls)`: CONNECTING until the id message arrives
    /// (then `PeerConnected(1)`), or `ConnectFailed`.
    pub async fn create_client(
        &mut self,
        url: &str,
        tls: Option<TlsClientOptions>,
    ) -> Result<(), Error> {
        let parsed = wsmp_core::handshake::WsUrl::parse(url)
            .map_err(|e| Error::Client(wsmp_core::connection::ClientError::Url(e)))?;
        let epoch = Instant::now();
        let host = Host::client(self.config.clone(), url, Timestamp::ZERO, os_rng())
            .map_err(Error::Client)?;
        let tls = if parsed.secure {
            client_tls(tls.as_ref(), parsed.host)?
        } else {
            Tls::None
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(MpState {
                host,
                peers: HashMap::new(),
                pending_ips: HashMap::new(),
                armed: None,
            }),
            epoch,
            events: Notify::new(),
            timer: Notify::new(),
            accept_resume: Notify::new(),
            admission: None,
            tls_server: None,
            max_pending_per_ip: None,
        });
        let handle = Arc::new(PeerHandle {
            wake: Notify::new(),
            task: Mutex::new(None),
        });
        shared.lock().peers.insert(PeerId::SERVER, handle.clone());
        let (host_name, port) = (parsed.host.to_owned(), parsed.port);
        let s2 = shared.clone();
        let task = tokio::spawn(async move {
            match crate::websocket::tcp_connect(&host_name, port).await {
                Ok(sock) => peer_loop(s2, PeerId::SERVER, sock, tls, handle).await,
                Err(e) => {
                    tracing::debug!(error = %e, "connect failed");
                    let mut st = s2.lock();
                    let now = s2.now();
                    let _ = st.host.handle_eof(now, PeerId::SERVER);
                    st.host.release(now, PeerId::SERVER);
                    st.peers.remove(&PeerId::SERVER);
                    s2.dispatch(&mut st, None);
                }
            }
        });
        self.tasks.push(task);
        self.tasks.push(tokio::spawn(timer_loop(shared.clone())));
        self.shared = Some(shared);
        Ok(())
    }

    fn with_host<T>(&self, f: impl FnOnce(&mut Host, Timestamp) -> T) -> Option<T> {
        let shared = self.shared.as_ref()?;
        let mut st = shared.lock();
        let now = shared.now();
        let r = f(&mut st.host, now);
        shared.dispatch(&mut st, None);
        Some(r)
    }

    /// The next event (connects, disconnects, packets), waiting for one.
    /// `None` when the peer is disconnected and nothing is left to read.
    pub async fn next_event(&mut self) -> Option<HostEvent> {
        let shared = self.shared.clone()?;
        loop {
            {
                let mut st = shared.lock();
                if let Some(e) = st.host.poll_event() {
                    // Taking a packet may let its sender be read again: the
                    // host names it in `poll_dirty`, dispatch wakes its task.
                    shared.dispatch(&mut st, None);
                    return Some(e);
                }
                if st.host.connection_status() == ConnectionStatus::Disconnected
                    && st.peers.is_empty()
                {
                    return None;
                }
            }
            shared.events.notified().await;
        }
    }

    /// The next event if one is waiting (never waits).
    pub fn try_event(&mut self) -> Option<HostEvent> {
        let shared = self.shared.as_ref()?;
        let mut st = shared.lock();
        let event = st.host.poll_event();
        shared.dispatch(&mut st, None);
        event
    }

    /// The next connect/disconnect event, leaving packets for `get_packet`.
    pub fn poll_signal(&mut self) -> Option<HostEvent> {
        self.with_host(|h, _| h.poll_signal()).flatten()
    }

    /// Sends one binary packet to `target` (spec §3.8); full queues return
    /// the payload.
    pub fn send(&self, target: Target, data: Bytes) -> Result<SendReport, HostSendError> {
        match self.with_host(|h, now| h.send(now, target, data.clone())) {
            Some(r) => r,
            None => Err(HostSendError::NotConnected(data)),
        }
    }

    /// `set_target_peer(id)`.
    pub fn set_target_peer(&mut self, target: Target) {
        self.with_host(|h, _| h.set_target_peer(target));
    }

    /// `put_packet(bytes)` to the current target.
    pub fn put_packet(&self, data: Bytes) -> Result<SendReport, HostSendError> {
        match self.with_host(|h, now| h.put_packet(now, data.clone())) {
            Some(r) => r,
            None => Err(HostSendError::NotConnected(data)),
        }
    }

    /// `get_packet()`.
    pub fn get_packet(&mut self) -> Option<(PeerId, Bytes)> {
        let shared = self.shared.as_ref()?;
        let mut st = shared.lock();
        let packet = st.host.get_packet();
        shared.dispatch(&mut st, None);
        packet
    }

    /// `get_packet_peer()`.
    pub fn get_packet_peer(&self) -> Option<PeerId> {
        self.with_host(|h, _| h.packet_peer()).flatten()
    }

    /// `get_available_packet_count()`.
    pub fn get_available_packet_count(&self) -> usize {
        self.with_host(|h, _| h.available_packet_count())
            .unwrap_or(0)
    }

    /// `get_unique_id()`.
    pub fn get_unique_id(&self) -> i32 {
        self.with_host(|h, _| h.unique_id()).unwrap_or(0)
    }

    /// `get_connection_status()`.
    pub fn get_connection_status(&self) -> ConnectionStatus {
        self.with_host(|h, _| h.connection_status())
            .unwrap_or(ConnectionStatus::Disconnected)
    }

    /// `disconnect_peer(id, force)` (spec §3.9).
    pub fn disconnect_peer(&mut self, id: PeerId, force: bool) -> Result<(), Error> {
        let shared = self.shared.clone().ok_or(Error::Closed)?;
        let mut st = shared.lock();
        let now = shared.now();
        st.host
            .disconnect_peer(now, id, force)
            .map_err(|_| Error::Command(wsmp_core::connection::CommandError::InvalidState))?;
        if force {
            // The engine closes the socket at once: end the peer's task.
            if let Some(h) = st.peers.remove(&id) {
                abort_task(&h);
            }
            st.host.release(now, id);
        }
        shared.dispatch(&mut st, None);
        Ok(())
    }

    /// Closes a connected peer with a close frame carrying `code` and
    /// `reason` (≤ 123 bytes; otherwise, or for a code that may not be sent,
    /// 1000 is used). Like `disconnect_peer(id, false)`: `PeerDisconnected`
    /// is emitted now and the closing handshake finishes in the background.
    pub fn disconnect_peer_with(
        &mut self,
        id: PeerId,
        code: CloseCode,
        reason: &str,
    ) -> Result<(), Error> {
        let shared = self.shared.clone().ok_or(Error::Closed)?;
        let mut st = shared.lock();
        let now = shared.now();
        st.host
            .disconnect_peer_with(now, id, code, reason)
            .map_err(|_| Error::Command(wsmp_core::connection::CommandError::InvalidState))?;
        shared.dispatch(&mut st, None);
        Ok(())
    }

    /// `refuse_new_connections` (get).
    pub fn refuse_new_connections(&self) -> bool {
        self.with_host(|h, _| h.refuse_new_connections())
            .unwrap_or(false)
    }

    /// `refuse_new_connections` (set): stop accepting TCP connections.
    pub fn set_refuse_new_connections(&mut self, refuse: bool) {
        if let Some(shared) = &self.shared {
            shared.lock().host.set_refuse_new_connections(refuse);
            if !refuse {
                shared.accept_resume.notify_waiters();
            }
        }
    }

    /// `get_peer(id)`: the state of a connected peer.
    pub fn get_peer(&self, id: PeerId) -> Option<PeerInfo> {
        self.with_host(|h, _| {
            h.peer(id).map(|c| PeerInfo {
                state: c.state(),
                close_info: c.close_info().cloned(),
                buffered_amount: c.buffered_amount(),
                address: h.peer_address(id),
            })
        })
        .flatten()
    }

    /// `get_peer_address(id)`.
    pub fn get_peer_address(&self, id: PeerId) -> Option<IpAddr> {
        self.with_host(|h, _| h.peer_address(id).map(|a| a.ip()))
            .flatten()
    }

    /// `get_peer_port(id)`.
    pub fn get_peer_port(&self, id: PeerId) -> Option<u16> {
        self.with_host(|h, _| h.peer_address(id).map(|a| a.port()))
            .flatten()
    }

    /// Ids of the connected peers.
    pub fn connected_peers(&self) -> Vec<PeerId> {
        self.with_host(|h, _| h.connected_peers().collect())
            .unwrap_or_default()
    }

    /// `close()` with the engine's meaning: every socket dropped at once
    /// (no close frames), listeners stopped, queues freed, no events.
    pub fn close(&mut self) {
        if let Some(shared) = self.shared.take() {
            let mut st = shared.lock();
            st.host.close();
            for (_, h) in st.peers.drain() {
                abort_task(&h);
            }
        }
        for t in self.tasks.drain(..) {
            t.abort();
        }
        self.local_addrs.clear();
    }

    /// Graceful stop: stop accepting, close frames (1001) to every peer,
    /// wait until every connection finished its closing handshake or
    /// `timeout` passed, then [`close`](Self::close).
    pub async fn shutdown(&mut self, timeout: Duration) {
        if let Some(shared) = self.shared.clone() {
            {
                let mut st = shared.lock();
                let now = shared.now();
                st.host.shutdown(now);
                shared.dispatch(&mut st, None);
            }
            for t in &self.tasks {
                // Listeners stop accepting; peer tasks keep running.
                let _ = t;
            }
            let deadline = tokio::time::Instant::now() + timeout;
            loop {
                if shared.lock().peers.is_empty() || tokio::time::Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        self.close();
    }
}

impl Drop for MultiplayerPeer {
    fn drop(&mut self) {
        self.close();
    }
}

fn abort_task(h: &PeerHandle) {
    if let Some(t) = h.task.lock().unwrap_or_else(|p| p.into_inner()).take() {
        t.abort();
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        // spec §3.5: while refusing, connections are not accepted at all.
        wait_while_refusing(&shared).await;
        let (sock, addr) = match listener.accept().await {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Refusal may have started while we were waiting in accept(): the
        // socket is ours now, so hold it untouched (no handshake clock, no
        // answer) as if it were still in the backlog, instead of dropping a
        // connection the engine would have left waiting (spec §3.5).
        wait_while_refusing(&shared).await;
        let _ = sock.set_nodelay(true);
        let tls = match &shared.tls_server {
            Some(opts) => match server_tls(opts) {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(error = %e, "TLS session setup failed");
                    continue;
                }
            },
            None => Tls::None,
        };
        let handle = Arc::new(PeerHandle {
            wake: Notify::new(),
            task: Mutex::new(None),
        });
        let id = {
            let mut st = shared.lock();
            let now = shared.now();
            if let Some(limit) = shared.max_pending_per_ip {
                let MpState {
                    host, pending_ips, ..
                } = &mut *st;
                pending_ips.retain(|id, _| {
                    host.connection(*id)
                        .is_some_and(|c| c.state() == State::Connecting)
                });
                let pending = pending_ips.values().filter(|ip| **ip == addr.ip()).count();
                if pending >= limit {
                    tracing::debug!(%addr, pending, "too many unfinished handshakes from this address; closing");
                    continue;
                }
            }
            match st.host.accept(now, Some(addr)) {
                Ok(id) => {
                    if shared.max_pending_per_ip.is_some() {
                        st.pending_ips.insert(id, addr.ip());
                    }
                    st.peers.insert(id, handle.clone());
                    shared.dispatch(&mut st, None);
                    id
                }
                Err(_) => continue,
            }
        };
        tracing::debug!(peer = %id, %addr, "accepted");
        let task = tokio::spawn(peer_loop(shared.clone(), id, sock, tls, handle.clone()));
        *handle.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
    }
}

/// Returns once `refuse_new_connections` is off.
async fn wait_while_refusing(shared: &Shared) {
    loop {
        let resume = shared.accept_resume.notified();
        if !shared.lock().host.refuse_new_connections() {
            return;
        }
        resume.await;
    }
}

async fn peer_loop(
    shared: Arc<Shared>,
    id: PeerId,
    sock: TcpStream,
    tls: Tls,
    handle: Arc<PeerHandle>,
) {
    let mut io = Io::new(tls);
    loop {
        let want = {
            let mut st = shared.lock();
            let now = shared.now();
            let result = io.pump(
                &sock,
                &mut HostPeer {
                    host: &mut st.host,
                    id,
                },
                now,
            );
            let want = match result {
                Ok(w) => w,
                Err(e) => {
                    tracing::debug!(peer = %id, error = %e, "peer i/o error");
                    crate::pump::Want::DONE
                }
            };
            if want.done {
                st.host.release(now, id);
                st.peers.remove(&id);
            } else if !want.read && !io.is_eof() && st.host.can_read(id) {
                // Reading stopped at a limit that moving events to the host
                // already lifted: pump again at once. (A peer stopped at the
                // host's unread limit is named by `Host::poll_dirty` once the
                // application takes one of its packets; dispatch wakes it.)
                handle.wake.notify_one();
            }
            shared.dispatch(&mut st, Some(id));
            want
        };
        if want.done {
            tracing::debug!(peer = %id, "socket closed");
            return;
        }
        tokio::select! {
            r = sock.readable(), if want.read => { let _ = r; }
            r = sock.writable(), if want.write => { let _ = r; }
            () = handle.wake.notified() => {}
        }
    }
}

async fn timer_loop(shared: Arc<Shared>) {
    loop {
        let deadline = {
            let mut st = shared.lock();
            let d = st.host.poll_timeout();
            st.armed = d;
            d
        };
        let sleep = async {
            match deadline {
                Some(t) => tokio::time::sleep_until((shared.epoch + t.as_duration()).into()).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = sleep => {
                let mut st = shared.lock();
                let now = shared.now();
                st.host.handle_timeout(now);
                st.armed = None;
                shared.dispatch(&mut st, None);
            }
            () = shared.timer.notified() => {}
        }
    }
}
