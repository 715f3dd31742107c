//! The Godot-style multiplayer peer on tokio: [`MultiplayerPeer`].
//!
//! One core [`Host`] shared by one task per socket (the engine in
//! `engine.rs`): TLS, the opening handshake and the admission hook run in the
//! socket's own task with no lock held; the host's lock is taken only for
//! the short exchange of plaintext, and one timer task runs the host's
//! deadlines. Nothing polls on a fixed tick. The handshake timer of a server
//! peer starts at TCP accept, so it covers TLS too.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use wsmp_core::connection::{
    AcceptOptions, Admission, CloseInfo, Connection, HttpResponse, Request, State,
};
use wsmp_core::host::{
    ConnectionStatus, Host, HostEvent, HostSendError, PeerId, SendReport, Target,
};
use wsmp_core::{CloseCode, Config, Timestamp};
use wsmp_io::Driver;

use crate::engine::{self, Acceptor, Clock, ConnInfo, HostCell, Logic, PeerSlot, ServerCore};
use crate::error::Error;
use crate::tls::{client_tls, AdmissionHook, Decision, TlsClientOptions, TlsServerOptions};

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

/// An admission hook that also learns the pending peer's id (the id the peer
/// gets in `PeerConnected` if accepted), so an application can remember what
/// it decided for that peer: see [`MultiplayerPeer::set_peer_admission_hook`].
pub type PeerAdmissionHook = Arc<dyn Fn(PeerId, &Request) -> Decision + Send + Sync>;

/// The peer's logic on its host: wake the application when events wait.
struct AppLogic {
    events: Arc<Notify>,
}

impl Logic for AppLogic {
    fn settle(&mut self, host: &mut Host, _now: Timestamp) {
        if host.has_events() {
            self.events.notify_one();
        }
    }
}

type Cell = Arc<HostCell<AppLogic>>;

/// The server side: admission and joining the one host.
struct Server {
    core: ServerCore,
    cell: Cell,
    admission: Option<PeerAdmissionHook>,
}

impl Acceptor for Server {
    type Logic = AppLogic;
    type Join = ();

    fn core(&self) -> &ServerCore {
        &self.core
    }

    fn admit(&self, info: &ConnInfo, request: &Request) -> engine::Decision<()> {
        engine::Decision::Now(match &self.admission {
            Some(hook) => match hook(info.id, request) {
                Decision::Accept(options) => Ok(((), options)),
                Decision::Respond(response) => Err(response),
            },
            // As the core's automatic admission: upgrades in, anything else 400.
            None if request.is_upgrade => Ok(((), AcceptOptions::default())),
            None => Err(HttpResponse::text(400, "WebSocket upgrade expected\n")),
        })
    }

    fn join(&self, _: (), conn: Connection, info: &ConnInfo, slot: &Arc<PeerSlot>) -> Option<Cell> {
        let joined = self.cell.with(None, |st, now| {
            match st.host.adopt(now, conn, Some(info.remote), Some(info.id)) {
                Ok(id) => {
                    st.slots.insert(id, slot.clone());
                    true
                }
                Err(e) => {
                    tracing::debug!(peer = %info.id, error = %e, "connection not adopted");
                    false
                }
            }
        });
        joined.then(|| self.cell.clone())
    }
}

/// A running server or client.
struct Running {
    cell: Cell,
    events: Arc<Notify>,
    server: Option<Arc<Server>>,
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
    running: Option<Running>,
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

/// Binds a listener: `"*"` means every address (one IPv6 dual-stack socket
/// where possible, else IPv4), otherwise a literal IPv4 or IPv6 address
/// (spec/websocket-peer.md §3.3), bound with the one rule of every wsmp
/// server ([`wsmp_io::BindAddress`]): `SO_REUSEADDR`, and an IPv6 address
/// IPv6-only, so `::` and `0.0.0.0` can listen on the same port side by side.
pub fn bind(port: u16, bind_address: &str) -> Result<TcpListener, Error> {
    let address = wsmp_io::BindAddress::parse(bind_address).ok_or_else(|| {
        Error::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("invalid bind address {bind_address:?}"),
        ))
    })?;
    Ok(TcpListener::from_std(address.bind(port)?)?)
}

impl MultiplayerPeer {
    /// A disconnected peer with the seed's defaults.
    pub fn new() -> MultiplayerPeer {
        MultiplayerPeer {
            config: Config::default(),
            admission: None,
            max_pending_per_ip: None,
            running: None,
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
    /// if the hook accepts. It runs in the connection's own task with no lock
    /// held (it may take its own locks; it must not block for long).
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

    fn in_use(&self) -> bool {
        self.running.as_ref().is_some_and(|r| {
            r.cell.lock().host.connection_status() != ConnectionStatus::Disconnected
        })
    }

    /// Like [`create_server`](Self::create_server) on listeners bound by the caller.
    pub fn create_server_on(
        &mut self,
        listeners: Vec<TcpListener>,
        tls: Option<TlsServerOptions>,
    ) -> Result<(), Error> {
        if self.in_use() {
            return Err(Error::Command(
                wsmp_core::connection::CommandError::InvalidState,
            ));
        }
        self.close();
        let host = Host::server(self.config.clone(), Admission::Automatic, os_rng())
            .map_err(|e| Error::Client(wsmp_core::connection::ClientError::Config(e)))?;
        let core = ServerCore::new(
            self.config.clone(),
            tls,
            self.max_pending_per_ip,
            engine::IdSpace::default(),
        );
        let events = Arc::new(Notify::new());
        let cell = HostCell::new(
            host,
            AppLogic {
                events: events.clone(),
            },
            core.clock,
        );
        let server = Arc::new(Server {
            core,
            cell: cell.clone(),
            admission: self.admission.clone(),
        });
        self.local_addrs = listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect();
        for listener in listeners {
            self.tasks
                .push(tokio::spawn(engine::accept_loop(server.clone(), listener)));
        }
        self.tasks
            .push(tokio::spawn(engine::timer_loop(cell.clone())));
        tracing::info!(addrs = ?self.local_addrs, "multiplayer server listening");
        self.running = Some(Running {
            cell,
            events,
            server: Some(server),
        });
        Ok(())
    }

    /// `create_client(url, tls)`: CONNECTING until the id message arrives
    /// (then `PeerConnected(1)`), or `ConnectFailed`.
    pub async fn create_client(
        &mut self,
        url: &str,
        tls: Option<TlsClientOptions>,
    ) -> Result<(), Error> {
        if self.in_use() {
            return Err(Error::Command(
                wsmp_core::connection::CommandError::InvalidState,
            ));
        }
        self.close();
        let parsed = wsmp_core::handshake::WsUrl::parse(url)
            .map_err(|e| Error::Client(wsmp_core::connection::ClientError::Url(e)))?;
        let clock = Clock(std::time::Instant::now());
        let host = Host::client(self.config.clone(), url, Timestamp::ZERO, os_rng())
            .map_err(Error::Client)?;
        let tls = if parsed.secure {
            Some(client_tls(tls.as_ref(), parsed.host)?)
        } else {
            None
        };
        let events = Arc::new(Notify::new());
        let cell = HostCell::new(
            host,
            AppLogic {
                events: events.clone(),
            },
            clock,
        );
        let slot = Arc::new(PeerSlot::default());
        cell.lock().slots.insert(PeerId::SERVER, slot.clone());
        let (host_name, port) = (parsed.host.to_owned(), parsed.port);
        let linger = self.config.close_timeout;
        let task_cell = cell.clone();
        self.tasks.push(tokio::spawn(async move {
            match crate::websocket::tcp_connect(&host_name, port).await {
                Ok(sock) => {
                    let driver = Driver::new(tls, linger);
                    engine::run_peer(
                        task_cell,
                        PeerId::SERVER,
                        sock,
                        driver,
                        slot,
                        std::time::Duration::ZERO,
                    )
                    .await;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "connect failed");
                    task_cell.with(None, |st, now| {
                        let _ = st.host.handle_eof(now, PeerId::SERVER);
                        st.host.release(now, PeerId::SERVER);
                        st.slots.remove(&PeerId::SERVER);
                    });
                }
            }
        }));
        self.tasks
            .push(tokio::spawn(engine::timer_loop(cell.clone())));
        self.running = Some(Running {
            cell,
            events,
            server: None,
        });
        Ok(())
    }

    fn with_host<T>(&self, f: impl FnOnce(&mut Host, Timestamp) -> T) -> Option<T> {
        let running = self.running.as_ref()?;
        Some(running.cell.with(None, |st, now| f(&mut st.host, now)))
    }

    /// The next event (connects, disconnects, packets), waiting for one.
    /// `None` when the peer is disconnected and nothing is left to read.
    pub async fn next_event(&mut self) -> Option<HostEvent> {
        let running = self.running.as_ref()?;
        let (cell, events) = (running.cell.clone(), running.events.clone());
        loop {
            let notified = events.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (event, finished) = cell.with(None, |st, _| {
                let event = st.host.poll_event();
                let finished = event.is_none()
                    && st.host.connection_status() == ConnectionStatus::Disconnected
                    && st.slots.is_empty();
                (event, finished)
            });
            if event.is_some() {
                return event;
            }
            if finished || cell.is_closed() {
                return None;
            }
            notified.await;
        }
    }

    /// The next event if one is waiting (never waits).
    pub fn try_event(&mut self) -> Option<HostEvent> {
        self.with_host(|h, _| h.poll_event()).flatten()
    }

    /// The next connect/disconnect event, leaving packets for `get_packet`.
    pub fn poll_signal(&mut self) -> Option<HostEvent> {
        self.with_host(|h, _| h.poll_signal()).flatten()
    }

    /// Sends one binary packet to `target` (spec §3.8); full queues return
    /// the payload.
    pub fn send(&self, target: Target, data: Bytes) -> Result<SendReport, HostSendError> {
        let running = match &self.running {
            Some(r) => r,
            None => return Err(HostSendError::NotConnected(data)),
        };
        running
            .cell
            .with(None, |st, now| st.host.send(now, target, data))
    }

    /// `set_target_peer(id)`.
    pub fn set_target_peer(&mut self, target: Target) {
        self.with_host(|h, _| h.set_target_peer(target));
    }

    /// `put_packet(bytes)` to the current target.
    pub fn put_packet(&self, data: Bytes) -> Result<SendReport, HostSendError> {
        let running = match &self.running {
            Some(r) => r,
            None => return Err(HostSendError::NotConnected(data)),
        };
        running
            .cell
            .with(None, |st, now| st.host.put_packet(now, data))
    }

    /// `get_packet()`.
    pub fn get_packet(&mut self) -> Option<(PeerId, Bytes)> {
        self.with_host(|h, _| h.get_packet()).flatten()
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

    /// `disconnect_peer(id, force)` (spec §3.9). With `force` the socket is
    /// dropped at once (no close frame).
    pub fn disconnect_peer(&mut self, id: PeerId, force: bool) -> Result<(), Error> {
        self.with_host(|h, now| h.disconnect_peer(now, id, force))
            .ok_or(Error::Closed)?
            .map_err(|_| Error::Command(wsmp_core::connection::CommandError::InvalidState))
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
        self.with_host(|h, now| h.disconnect_peer_with(now, id, code, reason))
            .ok_or(Error::Closed)?
            .map_err(|_| Error::Command(wsmp_core::connection::CommandError::InvalidState))
    }

    /// `refuse_new_connections` (get).
    pub fn refuse_new_connections(&self) -> bool {
        self.with_host(|h, _| h.refuse_new_connections())
            .unwrap_or(false)
    }

    /// `refuse_new_connections` (set): stop accepting TCP connections (they
    /// wait in the backlog, spec §3.5); a handshake completing meanwhile is
    /// dropped.
    pub fn set_refuse_new_connections(&mut self, refuse: bool) {
        if let Some(running) = &self.running {
            running
                .cell
                .with(None, |st, _| st.host.set_refuse_new_connections(refuse));
            if let Some(server) = &running.server {
                server.core.set_refusing(refuse);
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
        if let Some(running) = self.running.take() {
            if let Some(server) = &running.server {
                server.core.stop();
            }
            running.cell.with(None, |st, _| st.host.close());
            running.cell.close();
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
        if let Some(running) = &self.running {
            if let Some(server) = &running.server {
                server.core.stop();
            }
            running.cell.with(None, |st, now| st.host.shutdown(now));
            let deadline = tokio::time::Instant::now() + timeout;
            while !running.cell.lock().slots.is_empty() && tokio::time::Instant::now() < deadline {
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
