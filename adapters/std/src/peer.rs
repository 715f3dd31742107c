//! The poll-driven multiplayer peer (spec/websocket-peer.md §3).
//!
//! Every socket — a server's peers and a client's connection to its server — is driven by
//! the one I/O driver of the adapters ([`wsmp_io::Driver`]) with the peer's
//! [`HostPeer`] endpoint: reads, TLS, backpressure, writes and the bounded close are
//! written once there. This module waits on readiness (mio, edge-triggered), accepts,
//! connects, and decides which socket to step when:
//!
//! - a readiness event arrived for it;
//! - the driver asked to be called again without an event ([`Want::again`](wsmp_io::Want::again): its work
//!   bound was reached with more possibly ready);
//! - the host named it in `poll_dirty` (new output, to be closed, or readable again after
//!   backpressure);
//! - its close bound ([`Want::deadline`](wsmp_io::Want::deadline)) passed.
//!
//! A socket the driver is done with ([`Want::done`](wsmp_io::Want::done)) is deregistered, dropped and
//! released from the host. There are no locks: `poll()` runs on the caller's thread.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use wsmp_core::connection::{Admission, ClientError};
use wsmp_core::handshake::WsUrl;
use wsmp_core::host::{HostSendError, SendReport, UnknownPeer};
use wsmp_core::{Config, ConnectionStatus, Host, HostEvent, PeerId, Target, Timestamp};
use wsmp_io::{BindAddress, Driver, HostPeer, Socket};
use wsmp_tls::{TlsClientOptions, TlsServerOptions};

use crate::error::PeerError;
use crate::{os_rng, Clock};

const LISTENER: Token = Token(0);
/// Accepts per `poll()`.
const ACCEPTS_PER_POLL: usize = 128;
/// While a name is being resolved (no socket to wait on), `poll_wait` sleeps at most this long.
const RESOLVE_POLL: Duration = Duration::from_millis(5);

/// A received packet and its sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// The peer that sent it (1 for the server, on a client).
    pub from: PeerId,
    /// The bytes (one WebSocket message).
    pub data: Bytes,
}

/// One socket of a peer and its driver.
#[derive(Debug)]
struct Sock {
    stream: TcpStream,
    driver: Driver,
    /// The last step read until the socket would block: a readable event will come, so a
    /// visit for output only need not read.
    read_armed: bool,
    /// The driver's bound on closing, while one runs (also in `Inner::deadlines`).
    deadline: Option<Timestamp>,
    /// In the work list already.
    queued: bool,
}

/// How a socket is visited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Visit {
    /// Read, exchange with the host, write ([`Driver::step`]).
    Step,
    /// New output only: write without reading when a readable event is awaited anyway.
    Output,
}

/// Client connection set-up, before the socket becomes peer 1's.
#[derive(Debug)]
enum Connector {
    Resolving(mpsc::Receiver<io::Result<Vec<SocketAddr>>>),
    Connecting {
        stream: TcpStream,
        rest: std::vec::IntoIter<SocketAddr>,
    },
}

#[derive(Debug)]
struct ClientSetup {
    connector: Connector,
    tls: Option<(
        Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    )>,
    last_error: Option<io::Error>,
}

#[derive(Debug)]
struct Inner {
    host: Host,
    poll: Poll,
    events: Events,
    listener: Option<TcpListener>,
    local_addr: Option<SocketAddr>,
    accept_ready: bool,
    tls_server: Option<Arc<rustls::ServerConfig>>,
    client: Option<ClientSetup>,
    socks: HashMap<PeerId, Sock>,
    /// Sockets to step in the next pass without an event (`Want::again`).
    work: Vec<PeerId>,
    /// Close bounds of the sockets, earliest first (entries whose socket moved on are
    /// skipped when they come up).
    deadlines: BinaryHeap<Reverse<(Timestamp, PeerId)>>,
    /// Scratch list of the peers `poll_dirty` named.
    dirty: Vec<PeerId>,
    /// The driver's bound on closing (the core's `close_timeout`).
    linger: Duration,
    last_error: Option<String>,
}

/// Redot/Godot's `WebSocketMultiplayerPeer`, driven by [`poll`](Self::poll) from a game loop.
///
/// `poll()` never blocks: it accepts waiting connections, runs TLS and WebSocket handshakes,
/// reads what the sockets have, writes what they take, and runs the timers. Packets and events
/// are then read with [`get_packet`](Self::get_packet) and [`poll_signal`](Self::poll_signal).
/// Readiness comes from one `epoll`/`kqueue` call, so an idle `poll()` costs one system call
/// however many peers are connected.
///
/// Limits (per peer, from [`Config`], the seed's properties): unread received packets are
/// bounded by `inbound_buffer_size` bytes and `max_queued_packets` (a peer whose packets are
/// not read is simply not read from: backpressure); queued outbound data by
/// `outbound_buffer_size` and `max_queued_packets` — a full queue makes
/// [`put_packet`](Self::put_packet) fail with the payload handed back.
#[derive(Debug)]
pub struct MultiplayerPeer {
    config: Config,
    clock: Clock,
    inner: Option<Inner>,
}

impl Default for MultiplayerPeer {
    fn default() -> Self {
        MultiplayerPeer::new()
    }
}

impl MultiplayerPeer {
    /// A disconnected peer with the seed's defaults.
    pub fn new() -> MultiplayerPeer {
        MultiplayerPeer::with_config(Config::default())
    }

    /// A disconnected peer with these properties (used by the next `create_*`).
    pub fn with_config(config: Config) -> MultiplayerPeer {
        MultiplayerPeer {
            config,
            clock: Clock::new(),
            inner: None,
        }
    }

    /// The properties used by the next `create_server` / `create_client`.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Changes the properties for the next `create_server` / `create_client` (spec §3.1: they
    /// are copied into each new connection).
    pub fn config_mut(&mut self) -> &mut Config {
        &mut self.config
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// `create_server(port, bind_address, tls_server_options)` (spec §3.3). `bind_address` is
    /// an IP address or `*` (every address, IPv6 and IPv4 on one dual-stack socket where
    /// possible); an IPv6 address such as `::` is bound IPv6-only, so `::` and `0.0.0.0` can
    /// listen on the same port side by side ([`wsmp_io::BindAddress`]). Port 0 picks a free
    /// port (see [`local_addr`](Self::local_addr)).
    pub fn create_server(
        &mut self,
        port: u16,
        bind_address: &str,
        tls: Option<TlsServerOptions>,
    ) -> Result<(), PeerError> {
        if self.get_connection_status() != ConnectionStatus::Disconnected {
            return Err(PeerError::AlreadyInUse);
        }
        self.inner = None;
        let address = BindAddress::parse(bind_address)
            .ok_or_else(|| PeerError::InvalidBindAddress(bind_address.to_string()))?;
        let listener = address.bind(port).map_err(PeerError::Bind)?;
        let mut listener = TcpListener::from_std(listener);
        let local_addr = listener.local_addr().ok();
        let host = Host::server(self.config.clone(), Admission::Automatic, os_rng())
            .map_err(PeerError::Config)?;
        let poll = Poll::new().map_err(PeerError::Io)?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(PeerError::Io)?;
        self.inner = Some(Inner {
            host,
            poll,
            events: Events::with_capacity(1024),
            listener: Some(listener),
            local_addr,
            accept_ready: true,
            tls_server: tls.map(|t| t.config()),
            client: None,
            socks: HashMap::new(),
            work: Vec::new(),
            deadlines: BinaryHeap::new(),
            dirty: Vec::new(),
            linger: self.config.close_timeout,
            last_error: None,
        });
        Ok(())
    }

    /// `create_client(url, tls_client_options)` (spec §3.4): CONNECTING until the server's id
    /// message arrives. `tls` is used for `wss://` (default: [`TlsClientOptions::client`]).
    ///
    /// Host names are resolved on a helper thread, so `poll()` never waits for DNS; the
    /// connecting socket is non-blocking. `handshake_timeout` covers resolution, TCP, TLS, the
    /// upgrade and the id message.
    pub fn create_client(
        &mut self,
        url: &str,
        tls: Option<TlsClientOptions>,
    ) -> Result<(), PeerError> {
        if self.get_connection_status() != ConnectionStatus::Disconnected {
            return Err(PeerError::AlreadyInUse);
        }
        self.inner = None;
        let parsed = WsUrl::parse(url).map_err(|e| PeerError::Client(ClientError::Url(e)))?;
        let (host_name, port) = (parsed.host.to_string(), parsed.port);
        let tls = if parsed.secure {
            Some(
                tls.unwrap_or_default()
                    .build(&host_name)
                    .map_err(PeerError::Tls)?,
            )
        } else {
            None
        };
        let now = self.now();
        let host = Host::client(self.config.clone(), url, now, os_rng()).map_err(|e| match e {
            ClientError::Config(c) => PeerError::Config(c),
            other => PeerError::Client(other),
        })?;
        let poll = Poll::new().map_err(PeerError::Io)?;
        let (tx, rx) = mpsc::channel();
        if let Ok(ip) = host_name.parse::<IpAddr>() {
            let _ = tx.send(Ok(vec![SocketAddr::new(ip, port)]));
        } else {
            let name = host_name.clone();
            std::thread::Builder::new()
                .name("wsmp-resolve".into())
                .spawn(move || {
                    let result = (name.as_str(), port)
                        .to_socket_addrs()
                        .map(|addrs| addrs.collect::<Vec<_>>());
                    let _ = tx.send(result);
                })
                .map_err(PeerError::Io)?;
        }
        let mut inner = Inner {
            host,
            poll,
            events: Events::with_capacity(64),
            listener: None,
            local_addr: None,
            accept_ready: false,
            tls_server: None,
            client: Some(ClientSetup {
                connector: Connector::Resolving(rx),
                tls,
                last_error: None,
            }),
            socks: HashMap::new(),
            work: Vec::new(),
            deadlines: BinaryHeap::new(),
            dirty: Vec::new(),
            linger: self.config.close_timeout,
            last_error: None,
        };
        inner.advance_client(now, false);
        self.inner = Some(inner);
        Ok(())
    }

    /// Does all the I/O that is ready, without blocking (see the type docs).
    pub fn poll(&mut self) {
        self.service(Duration::ZERO);
    }

    /// Like [`poll`](Self::poll), but first waits up to `max` for a socket to become ready or a
    /// timer to fall due — for programs whose loop has nothing else to do (no busy loop).
    /// Output queued since the last call (e.g. by [`put_packet`](Self::put_packet)) is
    /// written before the wait, not after it; input held back by backpressure that the
    /// application's reads made room for is taken then too, and if that gave new packets or
    /// events there is no wait.
    pub fn poll_wait(&mut self, max: Duration) {
        let now = self.now();
        let Some(inner) = &mut self.inner else {
            std::thread::sleep(max);
            return;
        };
        let before = (inner.host.available_packet_count(), inner.host.has_events());
        inner.visit_dirty(now);
        let mut wait = max;
        if inner.host.available_packet_count() > before.0 || inner.host.has_events() && !before.1 {
            wait = Duration::ZERO;
        }
        if let Some(t) = inner.next_deadline() {
            wait = wait.min(t.saturating_duration_since(self.clock.now()));
        }
        if !inner.work.is_empty() || inner.accept_ready && !inner.host.refuse_new_connections() {
            wait = Duration::ZERO;
        }
        if matches!(
            inner.client,
            Some(ClientSetup {
                connector: Connector::Resolving(_),
                ..
            })
        ) {
            wait = wait.min(RESOLVE_POLL);
        }
        self.service(wait);
    }

    fn service(&mut self, wait: Duration) {
        let clock = self.clock;
        let Some(inner) = &mut self.inner else {
            return;
        };
        if let Err(e) = inner.poll.poll(&mut inner.events, Some(wait)) {
            if e.kind() != io::ErrorKind::Interrupted {
                inner.last_error = Some(format!("poll: {e}"));
            }
        }
        let now = clock.now();
        let mut client_event = false;
        for event in inner.events.iter() {
            let token = event.token();
            if token == LISTENER {
                inner.accept_ready = true;
                continue;
            }
            let Some(id) = i32::try_from(token.0).ok().and_then(PeerId::new) else {
                continue;
            };
            // Edge-triggered readiness: the driver reads and writes until the socket would
            // block, so any event is a reason for one step.
            if let Some(sock) = inner.socks.get_mut(&id) {
                if !sock.queued {
                    sock.queued = true;
                    inner.work.push(id);
                }
            } else if id == PeerId::SERVER {
                client_event = true;
            }
        }
        if inner.client.is_some() {
            inner.advance_client(now, client_event);
        }
        inner.accept(now);
        inner.run_work(now);
        if inner.host.poll_timeout().is_some_and(|t| t <= now) {
            inner.host.handle_timeout(now);
        }
        inner.visit_deadlines(now);
        inner.visit_dirty(now);
    }

    /// Writes queued output now instead of at the next [`poll`](Self::poll) (lower latency
    /// after [`put_packet`](Self::put_packet); never blocks).
    pub fn flush(&mut self) {
        let now = self.now();
        if let Some(inner) = &mut self.inner {
            inner.visit_dirty(now);
        }
    }

    /// `get_packet()`: the oldest received packet and its sender.
    pub fn get_packet(&mut self) -> Option<Packet> {
        let inner = self.inner.as_mut()?;
        let (from, data) = inner.host.get_packet()?;
        Some(Packet { from, data })
    }

    /// `get_packet_peer()`: the sender of the next packet (the engine answers 1 when there is
    /// none).
    pub fn get_packet_peer(&self) -> PeerId {
        self.inner
            .as_ref()
            .and_then(|i| i.host.packet_peer())
            .unwrap_or(PeerId::SERVER)
    }

    /// `get_available_packet_count()`.
    pub fn get_available_packet_count(&self) -> usize {
        self.inner
            .as_ref()
            .map_or(0, |i| i.host.available_packet_count())
    }

    /// `put_packet(data)`: sends to the target set by
    /// [`set_target_peer`](Self::set_target_peer) (spec §3.8). Written by the next `poll()`
    /// (or [`flush`](Self::flush)). A full queue is an error with the payload handed back.
    pub fn put_packet(&mut self, data: impl Into<Bytes>) -> Result<SendReport, HostSendError> {
        let now = self.now();
        let data = data.into();
        match &mut self.inner {
            Some(inner) => inner.host.put_packet(now, data),
            None => Err(HostSendError::NotConnected(data)),
        }
    }

    /// `set_target_peer(id)`: the target of the next [`put_packet`](Self::put_packet).
    pub fn set_target_peer(&mut self, target: Target) {
        if let Some(inner) = &mut self.inner {
            inner.host.set_target_peer(target);
        }
    }

    /// The next `peer_connected` / `peer_disconnected` (or client connection failure) event.
    pub fn poll_signal(&mut self) -> Option<HostEvent> {
        self.inner.as_mut()?.host.poll_signal()
    }

    /// `get_peer_address(id)` of a connected peer.
    pub fn get_peer_address(&self, id: PeerId) -> Option<IpAddr> {
        self.peer_socket_addr(id).map(|a| a.ip())
    }

    /// `get_peer_port(id)` of a connected peer.
    pub fn get_peer_port(&self, id: PeerId) -> Option<u16> {
        self.peer_socket_addr(id).map(|a| a.port())
    }

    fn peer_socket_addr(&self, id: PeerId) -> Option<SocketAddr> {
        let inner = self.inner.as_ref()?;
        inner.host.peer(id)?;
        inner
            .host
            .peer_address(id)
            .or_else(|| inner.socks.get(&id)?.stream.peer_addr().ok())
    }

    /// `disconnect_peer(id, force)` (spec §3.9).
    pub fn disconnect_peer(&mut self, id: PeerId, force: bool) -> Result<(), UnknownPeer> {
        let now = self.now();
        let inner = self.inner.as_mut().ok_or(UnknownPeer(id))?;
        inner.host.disconnect_peer(now, id, force)?;
        if inner.host.connection_status() == ConnectionStatus::Disconnected
            && !inner.host.is_server()
        {
            // A forced client disconnect resets everything (spec §3.9).
            self.inner = None;
        }
        Ok(())
    }

    /// `close()`: every socket closed at once without close frames, the listener stopped,
    /// queues freed, DISCONNECTED, no signals (spec §3.9).
    pub fn close(&mut self) {
        if let Some(inner) = &mut self.inner {
            inner.host.close();
        }
        self.inner = None;
    }

    /// Graceful stop (not in the engine): a 1001 close frame to every peer, new connections
    /// refused. Keep calling `poll()` until [`socket_count`](Self::socket_count) is 0 (each
    /// close is bounded by `close_timeout`), then [`close`](Self::close).
    pub fn shutdown(&mut self) {
        let now = self.now();
        if let Some(inner) = &mut self.inner {
            inner.host.shutdown(now);
            if let Some(mut l) = inner.listener.take() {
                let _ = inner.poll.registry().deregister(&mut l);
            }
        }
    }

    /// Open sockets (connected, pending or closing).
    pub fn socket_count(&self) -> usize {
        self.inner
            .as_ref()
            .map_or(0, |i| i.socks.len() + usize::from(i.client.is_some()))
    }

    /// `get_connection_status()` (spec §3.10).
    pub fn get_connection_status(&self) -> ConnectionStatus {
        self.inner
            .as_ref()
            .map_or(ConnectionStatus::Disconnected, |i| {
                i.host.connection_status()
            })
    }

    /// `get_unique_id()`: 1 for a server, the received id for a connected client, else 0.
    pub fn get_unique_id(&self) -> i32 {
        self.inner.as_ref().map_or(0, |i| i.host.unique_id())
    }

    /// `is_server()`.
    pub fn is_server(&self) -> bool {
        self.inner.as_ref().is_some_and(|i| i.host.is_server())
    }

    /// `get_max_packet_size()` (`outbound_buffer_size − 9`, spec §3.9).
    pub fn get_max_packet_size(&self) -> usize {
        self.config.outbound_buffer_size.saturating_sub(9)
    }

    /// `refuse_new_connections = refuse` (spec §3.5: waiting connections stay in the OS
    /// backlog; handshakes completing meanwhile are dropped).
    pub fn set_refuse_new_connections(&mut self, refuse: bool) {
        if let Some(inner) = &mut self.inner {
            inner.host.set_refuse_new_connections(refuse);
        }
    }

    /// `refuse_new_connections`.
    pub fn is_refusing_new_connections(&self) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|i| i.host.refuse_new_connections())
    }

    /// Ids of the connected peers.
    pub fn connected_peers(&self) -> Vec<PeerId> {
        self.inner
            .as_ref()
            .map_or_else(Vec::new, |i| i.host.connected_peers().collect())
    }

    /// The address the server listens on (with the real port when 0 was asked).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.inner.as_ref()?.local_addr
    }

    /// The last socket-level error seen (resolution, connect, TLS), for diagnostics.
    pub fn last_error(&self) -> Option<&str> {
        self.inner.as_ref()?.last_error.as_deref()
    }

    /// The core host (statistics, configuration, per-peer connections).
    pub fn host(&self) -> Option<&Host> {
        self.inner.as_ref().map(|i| &i.host)
    }
}

fn token(id: PeerId) -> Token {
    Token(usize::try_from(id.get()).unwrap_or(0))
}

/// A socket error for `last_error` (TLS failures say so).
fn describe(e: &io::Error) -> String {
    match e.get_ref().and_then(|r| r.downcast_ref::<rustls::Error>()) {
        Some(tls) => format!("TLS: {tls}"),
        None => e.to_string(),
    }
}

impl Inner {
    /// The earliest time something must happen without an event: a host timer or a close
    /// bound.
    fn next_deadline(&mut self) -> Option<Timestamp> {
        let close = self.deadlines.peek().map(|Reverse((at, _))| *at);
        match (self.host.poll_timeout(), close) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn accept(&mut self, now: Timestamp) {
        let Some(listener) = &self.listener else {
            return;
        };
        for _ in 0..ACCEPTS_PER_POLL {
            // spec/websocket-peer.md §3.5: while refusing, connections wait in the backlog.
            if !self.accept_ready || self.host.refuse_new_connections() {
                return;
            }
            match listener.accept() {
                Ok((mut stream, addr)) => {
                    let _ = wsmp_io::tune_stream(stream.sock_ref());
                    let Ok(id) = self.host.accept(now, Some(addr)) else {
                        continue;
                    };
                    let tls = match &self.tls_server {
                        Some(config) => match rustls::ServerConnection::new(config.clone()) {
                            Ok(c) => Some(Box::new(rustls::Connection::Server(c))),
                            Err(e) => {
                                self.last_error = Some(format!("TLS: {e}"));
                                self.host.release(now, id);
                                continue;
                            }
                        },
                        None => None,
                    };
                    if let Err(e) = self.poll.registry().register(
                        &mut stream,
                        token(id),
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        self.last_error = Some(format!("register: {e}"));
                        self.host.release(now, id);
                        continue;
                    }
                    let mut sock = Sock::new(stream, Driver::new(tls, self.linger));
                    sock.queued = true;
                    self.socks.insert(id, sock);
                    self.work.push(id);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.accept_ready = false;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // e.g. out of file descriptors: try again next poll.
                    self.last_error = Some(format!("accept: {e}"));
                    return;
                }
            }
        }
    }

    /// Client set-up: resolution result, connect progress.
    fn advance_client(&mut self, now: Timestamp, event: bool) {
        let Some(setup) = &mut self.client else {
            return;
        };
        if self.host.should_close_socket(PeerId::SERVER) {
            // Timed out or closed meanwhile.
            self.client = None;
            self.host.release(now, PeerId::SERVER);
            return;
        }
        loop {
            match &mut setup.connector {
                Connector::Resolving(rx) => match rx.try_recv() {
                    Ok(Ok(addrs)) => {
                        let mut rest = addrs.into_iter();
                        match start_connect(&mut rest, &self.poll, &mut setup.last_error) {
                            Some(stream) => {
                                setup.connector = Connector::Connecting { stream, rest }
                            }
                            None => return self.client_failed(now),
                        }
                    }
                    Ok(Err(e)) => {
                        setup.last_error = Some(e);
                        return self.client_failed(now);
                    }
                    Err(mpsc::TryRecvError::Empty) => return,
                    Err(mpsc::TryRecvError::Disconnected) => return self.client_failed(now),
                },
                Connector::Connecting { stream, rest } => {
                    if !event {
                        return;
                    }
                    let failed = match stream.take_error() {
                        Ok(Some(e)) | Err(e) => Some(e),
                        Ok(None) => match stream.peer_addr() {
                            Ok(_) => None,
                            Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                            Err(e) => Some(e),
                        },
                    };
                    if let Some(e) = failed {
                        let _ = self.poll.registry().deregister(stream);
                        setup.last_error = Some(e);
                        match start_connect(rest, &self.poll, &mut setup.last_error) {
                            Some(next) => {
                                *stream = next;
                                continue;
                            }
                            None => return self.client_failed(now),
                        }
                    }
                    // Connected.
                    let Some(setup) = self.client.take() else {
                        return;
                    };
                    let Connector::Connecting { stream, .. } = setup.connector else {
                        return;
                    };
                    let _ = wsmp_io::tune_stream(stream.sock_ref());
                    let tls = match setup.tls {
                        Some((config, name)) => match rustls::ClientConnection::new(config, name) {
                            Ok(c) => Some(Box::new(rustls::Connection::Client(c))),
                            Err(e) => {
                                self.last_error = Some(format!("TLS: {e}"));
                                let _ = self.host.handle_eof(now, PeerId::SERVER);
                                return;
                            }
                        },
                        None => None,
                    };
                    let sock = Sock::new(stream, Driver::new(tls, self.linger));
                    self.socks.insert(PeerId::SERVER, sock);
                    // The upgrade request (and the TLS ClientHello) are waiting: write them.
                    self.visit(now, PeerId::SERVER, Visit::Step);
                    return;
                }
            }
        }
    }

    fn client_failed(&mut self, now: Timestamp) {
        if let Some(setup) = self.client.take() {
            self.last_error = Some(match setup.last_error {
                Some(e) => format!("cannot connect: {e}"),
                None => "cannot connect".to_string(),
            });
        }
        let _ = self.host.handle_eof(now, PeerId::SERVER);
        self.host.release(now, PeerId::SERVER);
    }

    /// Steps every socket in the work list (ready, or asked to be called again); those that
    /// ask again go into the next pass.
    fn run_work(&mut self, now: Timestamp) {
        let mut work = std::mem::take(&mut self.work);
        for &id in &work {
            if let Some(sock) = self.socks.get_mut(&id) {
                sock.queued = false;
            }
            self.visit(now, id, Visit::Step);
        }
        // Keep the allocation for the next pass.
        work.clear();
        if self.work.is_empty() {
            self.work = work;
        }
    }

    /// Visits every peer the host names in `poll_dirty`: new output, to be closed, or
    /// readable again after backpressure. Each is visited once per pass.
    fn visit_dirty(&mut self, now: Timestamp) {
        let mut dirty = std::mem::take(&mut self.dirty);
        while let Some(id) = self.host.poll_dirty() {
            dirty.push(id);
        }
        for &id in &dirty {
            self.visit(now, id, Visit::Output);
        }
        dirty.clear();
        self.dirty = dirty;
    }

    /// Steps the sockets whose close bound passed (the driver then resets them).
    fn visit_deadlines(&mut self, now: Timestamp) {
        while let Some(&Reverse((at, id))) = self.deadlines.peek() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            if self.socks.get(&id).is_some_and(|s| s.deadline == Some(at)) {
                self.visit(now, id, Visit::Step);
            }
        }
    }

    /// One driver step of a peer's socket, then what its [`Want`](wsmp_io::Want) says: wait for events
    /// (edge-triggered: the driver stopped where the socket would block), step again next
    /// pass, keep its close bound, or finish it (deregister, drop, release).
    fn visit(&mut self, now: Timestamp, id: PeerId, visit: Visit) {
        let Some(sock) = self.socks.get_mut(&id) else {
            // No socket: a client still connecting (its request waits), or one gone already.
            if self.host.should_close_socket(id) && !(id == PeerId::SERVER && self.client.is_some())
            {
                self.host.release(now, id);
            }
            return;
        };
        let mut endpoint = HostPeer {
            host: &mut self.host,
            id,
        };
        // A socket waiting for a readable event has nothing to read: output is written
        // without a read that would only say so.
        let read = visit == Visit::Step || !sock.read_armed || sock.driver.held_len() > 0;
        let want = if read {
            sock.driver.step(&sock.stream, &mut endpoint, now)
        } else {
            sock.driver.flush(&sock.stream, &mut endpoint, now)
        };
        if want.done {
            let error = sock.driver.take_error();
            if let Some(mut sock) = self.socks.remove(&id) {
                let _ = self.poll.registry().deregister(&mut sock.stream);
            }
            if let Some(e) = error {
                self.last_error = Some(describe(&e));
            }
            self.host.release(now, id);
            return;
        }
        if read {
            sock.read_armed = want.read;
        } else {
            sock.read_armed |= want.read;
        }
        if want.again && !sock.queued {
            sock.queued = true;
            self.work.push(id);
        }
        if want.deadline != sock.deadline {
            sock.deadline = want.deadline;
            if let Some(at) = want.deadline {
                self.deadlines.push(Reverse((at, id)));
            }
        }
    }
}

/// Starts a non-blocking connect to the next address that can be tried.
fn start_connect(
    rest: &mut std::vec::IntoIter<SocketAddr>,
    poll: &Poll,
    last_error: &mut Option<io::Error>,
) -> Option<TcpStream> {
    for addr in rest.by_ref() {
        match TcpStream::connect(addr) {
            Ok(mut stream) => {
                match poll.registry().register(
                    &mut stream,
                    token(PeerId::SERVER),
                    Interest::READABLE | Interest::WRITABLE,
                ) {
                    Ok(()) => return Some(stream),
                    Err(e) => *last_error = Some(e),
                }
            }
            Err(e) => *last_error = Some(e),
        }
    }
    if last_error.is_none() {
        *last_error = Some(io::Error::new(
            io::ErrorKind::NotFound,
            "the host has no address",
        ));
    }
    None
}

impl Sock {
    fn new(stream: TcpStream, driver: Driver) -> Sock {
        Sock {
            stream,
            driver,
            read_armed: false,
            deadline: None,
            queued: false,
        }
    }
}
