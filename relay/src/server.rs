//! The network glue of the `wsmp-relay` program: a [`MultiplayerPeer`]
//! (tokio adapter) driving the sans-IO [`Relay`].
//!
//! - The adapter accepts sockets, runs the WebSocket handshake, hands out
//!   peer ids and sends the 4-byte id message (spec/websocket-peer.md §3.7).
//! - The admission hook (synchronous, inside the adapter) answers every
//!   HTTP request: upgrades go through [`Relay::admit`] (404 bad path, 503
//!   full) and the `--allowed-origin` check (403); plain `GET`s get the demo
//!   page ([`crate::web::asset`]) or `/stats`.
//! - [`Server::run_until`] feeds adapter events and the auth timer into the
//!   relay and carries out its [`Action`]s.
//!
//! `--max-pending-per-ip` is enforced by the adapter at TCP accept
//! ([`MultiplayerPeer::set_max_pending_per_ip`]): an address that already has
//! that many unfinished handshakes gets its new connection closed at once.
//!
//! Locking: the hook runs with the adapter's lock held and then takes the
//! relay's lock, so the relay loop never calls into the adapter while it holds
//! the relay's lock (it drains the actions first).
//!
//! Operations (issue 12), each a separate module with a thin call site here:
//! [`crate::admin`] (admin listener, started by [`Server::start_admin`]),
//! [`crate::metrics`] ([`Server::metrics_snapshot`]), [`crate::jwt`]
//! (handshake carriers in the hook), [`crate::rooms::PathRules`] (in the
//! hook), [`crate::tls_reload`] (in [`Server::bind`]),
//! [`crate::startup`] (in [`run`]).

use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use wsmp_core::Timestamp;
use wsmp_tokio::{
    AcceptOptions, CloseCode, Config, Decision, HostEvent, HostSendError, HttpResponse,
    MultiplayerPeer, PeerId, Request, Target, TlsServerOptions,
};

use crate::admin::{AdminHandle, AdminListener, AdminState, Readiness};
use crate::cli::{Args, LogFormat};
use crate::jwt::JwtVerifier;
use crate::metrics::{Counters, Metrics, Snapshot};
use crate::relay::{Action, Admission, Relay};
use crate::rooms::{PathRules, RoomName};

/// How long a graceful shutdown waits for closing handshakes.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);

/// How often the stats are logged (unless `--no-stats`).
pub const STATS_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// The server could not start (bad TLS files, address in use, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

/// State shared by the admission hook and the relay loop.
struct Inner {
    relay: Relay,
    /// Room chosen at admission, until the peer's `PeerConnected` (keyed by
    /// the id the adapter gives the pending peer), with the admission time.
    pending_rooms: HashMap<PeerId, (RoomName, Instant)>,
}

struct Shared {
    inner: Mutex<Inner>,
    /// Events the relay does not see (handshake outcomes, close codes, tokens).
    counters: Counters,
    epoch: Instant,
    /// Entries of `pending_rooms` older than this are dropped (their
    /// connection failed between admission and `PeerConnected`).
    pending_ttl: Duration,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now(&self) -> Timestamp {
        Timestamp::from_duration(self.epoch.elapsed())
    }
}

/// A bound, not yet running relay server.
pub struct Server {
    peer: MultiplayerPeer,
    shared: Arc<Shared>,
    no_stats: bool,
    /// Off once shutting down (`/readyz`).
    ready: Readiness,
    admin: Option<AdminHandle>,
    _tls_reload: Option<AbortOnDrop>,
}

/// Aborts a background task when dropped (it ends with the server).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addrs", &self.peer.local_addrs())
            .finish_non_exhaustive()
    }
}

/// The adapter configuration the flags ask for (the seed's limits).
pub fn peer_config(args: &Args) -> Config {
    Config {
        inbound_buffer_size: args.inbound_buffer_size,
        outbound_buffer_size: args.outbound_buffer_size,
        max_queued_packets: args.max_queued_packets,
        handshake_timeout: args.handshake_timeout,
        // 0 = off.
        heartbeat_interval: (!args.heartbeat_interval.is_zero()).then_some(args.heartbeat_interval),
        supported_protocols: args.supported_protocols.clone(),
        ..Config::default()
    }
}

impl Server {
    /// Binds every `--listen` address, loads TLS and starts accepting.
    /// Must be called inside a tokio runtime. Nothing is printed.
    pub fn bind(args: &Args) -> Result<Server, StartError> {
        if args.proxy_protocol {
            // Phase 2 of issue 12: the PROXY header must be read before the
            // handshake, in the connection's own task (crate::proxy has the parser).
            return Err(StartError(
                "--proxy-protocol is not supported by this server yet".into(),
            ));
        }
        let jwt = match &args.jwt_key_file {
            Some(path) => Some(Arc::new(
                JwtVerifier::from_file(path)
                    .map_err(|e| StartError(format!("--jwt-key-file {e}")))?,
            )),
            None => None,
        };
        let (tls, reloader) = match args.tls() {
            Some((cert, key)) => {
                let (tls, reloader) = TlsServerOptions::reloadable_from_pem_files(cert, key)
                    .map_err(|e| {
                        StartError(format!(
                            "TLS certificate/key ({}, {}): {e}",
                            cert.display(),
                            key.display()
                        ))
                    })?;
                (Some(tls), Some(reloader))
            }
            None => (None, None),
        };
        let listeners = args
            .listen
            .iter()
            .map(|a| {
                wsmp_tokio::bind(a.port(), &a.ip().to_string())
                    .map_err(|e| StartError(format!("cannot listen on {a}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let epoch = Instant::now();
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                relay: Relay::new(args.relay_config(Timestamp::ZERO)),
                pending_rooms: HashMap::new(),
            }),
            counters: Counters::default(),
            epoch,
            pending_ttl: args.handshake_timeout + Duration::from_secs(30),
        });
        let mut peer = MultiplayerPeer::new();
        peer.config = peer_config(args);
        peer.set_max_pending_per_ip(Some(args.max_pending_per_ip));
        peer.set_peer_admission_hook(admission_hook(
            shared.clone(),
            HookOptions {
                allowed_origins: args.allowed_origins.clone(),
                public_stats: args.public_stats && !args.no_stats,
                paths: args.path_rules(),
                jwt,
            },
        ));
        peer.create_server_on(listeners, tls)
            .map_err(|e| StartError(format!("cannot start the server: {e}")))?;
        let tls_reload =
            reloader.map(|r| AbortOnDrop(crate::tls_reload::spawn(r, args.tls_reload_interval)));
        Ok(Server {
            peer,
            shared,
            no_stats: args.no_stats,
            ready: Readiness::default(),
            admin: None,
            _tls_reload: tls_reload,
        })
    }

    /// The figures of `/metrics` now.
    pub fn metrics_snapshot(&self) -> Snapshot {
        snapshot(&self.shared, &self.ready)
    }

    /// The readiness flag of `/readyz` (turned off when shutting down).
    pub fn readiness(&self) -> Readiness {
        self.ready.clone()
    }

    /// Binds the admin listener on `addr` and serves it until the server
    /// stops; returns the bound address (real port).
    pub fn start_admin(&mut self, addr: SocketAddr) -> Result<SocketAddr, StartError> {
        let listener = AdminListener::bind(addr)
            .map_err(|e| StartError(format!("cannot listen on {addr} (--admin-listen): {e}")))?;
        let (shared, ready) = (self.shared.clone(), self.ready.clone());
        let metrics = Arc::new(Metrics::new(Arc::new(move || snapshot(&shared, &ready))));
        let stats = (!self.no_stats).then(|| {
            let shared = self.shared.clone();
            let source: crate::admin::StatsSource = Arc::new(move || {
                let now = shared.now();
                shared.lock().relay.stats_json(now)
            });
            source
        });
        let handle = listener.spawn(AdminState {
            ready: self.ready.clone(),
            metrics,
            stats,
        });
        let bound = handle.local_addr();
        self.admin = Some(handle);
        Ok(bound)
    }

    /// The bound addresses (real ports), in `--listen` order.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        self.peer.local_addrs()
    }

    /// The current counters as JSON (what `GET /stats` answers).
    pub fn stats_json(&self) -> String {
        let now = self.shared.now();
        self.shared.lock().relay.stats_json(now)
    }

    /// Runs the relay until `shutdown` resolves, then closes every
    /// connection gracefully (close frame 1001, bounded wait).
    pub async fn run_until(mut self, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut stats_tick = tokio::time::interval_at(
            tokio::time::Instant::now() + STATS_LOG_INTERVAL,
            STATS_LOG_INTERVAL,
        );
        loop {
            let deadline = self.shared.lock().relay.poll_timeout();
            let epoch = self.shared.epoch;
            let timer = async move {
                match deadline {
                    Some(t) => tokio::time::sleep_until((epoch + t.as_duration()).into()).await,
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                event = self.peer.next_event() => match event {
                    Some(event) => self.on_event(event),
                    None => break,
                },
                () = timer => {
                    let now = self.shared.now();
                    self.shared.lock().relay.handle_timeout(now);
                }
                _ = stats_tick.tick(), if !self.no_stats => {
                    tracing::info!(stats = %self.stats_json(), "stats");
                }
            }
            self.run_actions();
        }
        self.ready.set(false);
        tracing::info!("shutting down");
        self.peer.shutdown(SHUTDOWN_TIMEOUT).await;
    }

    fn on_event(&mut self, event: HostEvent) {
        let now = self.shared.now();
        let mut inner = self.shared.lock();
        match event {
            HostEvent::PeerConnected(id) => match inner.pending_rooms.remove(&id) {
                Some((room, _)) => inner.relay.peer_joined(now, id.get(), room),
                None => {
                    // Not admitted by our hook: cannot happen with a hook installed.
                    drop(inner);
                    tracing::warn!(peer = %id, "connected without an admission; closing");
                    let _ = self
                        .peer
                        .disconnect_peer_with(id, CloseCode(1011), "internal error");
                }
            },
            HostEvent::PeerDisconnected { peer, info } => {
                tracing::debug!(%peer, ?info, "peer disconnected");
                if let Some(info) = &info {
                    self.shared.counters.disconnect(info.code.0);
                }
                inner.pending_rooms.remove(&peer);
                inner.relay.peer_left(now, peer.get());
            }
            HostEvent::Packet { from, data } => inner.relay.packet(now, from.get(), data),
            HostEvent::Request { .. } | HostEvent::ConnectFailed(_) => {}
        }
    }

    /// Carries out the relay's actions, feeding full queues back as
    /// `receiver_overflow` until nothing is left.
    fn run_actions(&mut self) {
        loop {
            let actions: Vec<Action> = {
                let mut inner = self.shared.lock();
                std::iter::from_fn(|| inner.relay.poll_action()).collect()
            };
            if actions.is_empty() {
                return;
            }
            let mut overflowed = Vec::new();
            for action in actions {
                match action {
                    Action::Send { to, bytes } => self.send(to, bytes, &mut overflowed),
                    Action::SendMany { to, bytes } => {
                        for t in to {
                            // A shared `Bytes` clone: no copy of the payload.
                            self.send(t, bytes.clone(), &mut overflowed);
                        }
                    }
                    Action::Disconnect { peer, code, reason } => {
                        let Some(id) = PeerId::new(peer) else {
                            continue;
                        };
                        if let Err(e) = self.peer.disconnect_peer_with(id, CloseCode(code), reason)
                        {
                            tracing::debug!(peer, error = %e, "disconnect of a peer already gone");
                        }
                    }
                }
            }
            if !overflowed.is_empty() {
                let now = self.shared.now();
                let mut inner = self.shared.lock();
                for id in overflowed {
                    inner.relay.receiver_overflow(now, id);
                }
            }
        }
    }

    fn send(&mut self, to: i32, bytes: Bytes, overflowed: &mut Vec<i32>) {
        let Some(id) = PeerId::new(to) else { return };
        match self.peer.send(Target::Peer(id), bytes) {
            Ok(_) => {}
            Err(HostSendError::QueueFull(..)) => overflowed.push(to),
            // Leaving: its PeerDisconnected is on the way.
            Err(HostSendError::UnknownPeer(..)) => {}
            Err(e) => tracing::debug!(peer = to, error = %e, "send failed"),
        }
    }
}

/// Whether an upgrade's `Origin` is acceptable: no list, no header (game
/// clients send none), or listed (ASCII case-insensitive, RFC 6454 §6.2
/// serializes scheme and host in lower case).
fn origin_allowed(allowed: &[String], origin: Option<&str>) -> bool {
    match origin {
        _ if allowed.is_empty() => true,
        None => true,
        Some(o) => allowed.iter().any(|a| a.eq_ignore_ascii_case(o.trim())),
    }
}

fn respond(status: u16, content_type: &str, body: Bytes) -> Decision {
    Decision::Respond(HttpResponse {
        status,
        headers: vec![
            ("Content-Type".into(), content_type.into()),
            ("Cache-Control".into(), "no-store".into()),
        ],
        body,
    })
}

/// The relay's figures for `/metrics`: the relay's stats, the hook's
/// counters and readiness. The relay's lock is held only to copy the stats.
fn snapshot(shared: &Shared, ready: &Readiness) -> Snapshot {
    let stats = shared.lock().relay.stats().clone();
    let mut snap = Snapshot::from_stats(&stats);
    shared.counters.fill(&mut snap);
    snap.draining = !ready.is_ready();
    snap
}

/// What the admission hook needs from the flags.
struct HookOptions {
    allowed_origins: Vec<String>,
    /// `GET /stats` on the game port (without room names).
    public_stats: bool,
    paths: PathRules,
    jwt: Option<Arc<JwtVerifier>>,
}

/// HTTP 401 for a missing or rejected token (RFC 6750 §3: `WWW-Authenticate: Bearer`).
fn unauthorized(reason: &str) -> Decision {
    let mut r = HttpResponse::text(401, &format!("{reason}\n"));
    r.headers.push(("WWW-Authenticate".into(), "Bearer".into()));
    Decision::Respond(r)
}

/// `--jwt-key-file`: the upgrade must carry a valid token (Authorization:
/// Bearer or ?token=) for `room`. The auth-message carrier is not wired yet.
fn check_handshake_token(
    verifier: &JwtVerifier,
    counters: &Counters,
    id: PeerId,
    req: &Request,
    room: &RoomName,
) -> Result<(), Decision> {
    let Some(token) = crate::jwt::token_from_request(req) else {
        counters.token_rejected("token_missing");
        tracing::info!(peer = %id, "upgrade without a token refused");
        return Err(unauthorized("token required"));
    };
    match verifier.verify(token, std::time::SystemTime::now(), room) {
        Ok(claims) => {
            counters.token_ok();
            tracing::info!(peer = %id, player = claims.sub.as_deref().unwrap_or(""), %room, "token accepted");
            Ok(())
        }
        Err(e) => {
            counters.token_rejected(e.as_str());
            tracing::info!(peer = %id, %room, reason = %e, "token refused");
            Err(unauthorized(&e.to_string()))
        }
    }
}

fn admission_hook(shared: Arc<Shared>, opts: HookOptions) -> wsmp_tokio::PeerAdmissionHook {
    Arc::new(move |id: PeerId, req: &Request| -> Decision {
        let decision = decide(&shared, &opts, id, req);
        if req.is_upgrade {
            match &decision {
                Decision::Accept(_) => shared.counters.handshake_accepted(),
                Decision::Respond(r) => shared.counters.handshake_refused(r.status),
                #[allow(unreachable_patterns)]
                _ => {}
            }
        }
        decision
    })
}

fn decide(shared: &Shared, opts: &HookOptions, id: PeerId, req: &Request) -> Decision {
    if req.is_upgrade {
        if !origin_allowed(&opts.allowed_origins, req.header("Origin")) {
            tracing::info!(peer = %id, origin = ?req.header("Origin"), "origin not allowed");
            return Decision::Respond(HttpResponse::text(403, "origin not allowed\n"));
        }
        // --path-prefix / --any-path-room: the relay sees the room's canonical path.
        let Some(room) = opts.paths.room_for(&req.path) else {
            tracing::info!(peer = %id, path = %req.path, status = 404, "upgrade refused");
            return Decision::Respond(HttpResponse::text(404, "Not Found\n"));
        };
        if let Some(verifier) = &opts.jwt {
            if let Err(refusal) = check_handshake_token(verifier, &shared.counters, id, req, &room)
            {
                return refusal;
            }
        }
        let mut inner = shared.lock();
        return match inner.relay.admit(&room.to_string()) {
            Admission::Accept { room } => {
                let now = Instant::now();
                if inner.pending_rooms.len() >= 1024 {
                    let ttl = shared.pending_ttl;
                    inner
                        .pending_rooms
                        .retain(|_, (_, at)| now.duration_since(*at) < ttl);
                }
                inner.pending_rooms.insert(id, (room, now));
                Decision::Accept(AcceptOptions::default())
            }
            Admission::Reject { status, reason } => {
                tracing::info!(peer = %id, path = %req.path, status, reason, "upgrade refused");
                Decision::Respond(HttpResponse::text(status, &format!("{reason}\n")))
            }
        };
    }
    if req.method != "GET" {
        let mut r = HttpResponse::text(405, "method not allowed\n");
        r.headers.push(("Allow".into(), "GET".into()));
        return Decision::Respond(r);
    }
    // Room names only on the admin listener (issue 12).
    if req.path_only() == "/stats" && opts.public_stats {
        let now = shared.now();
        let json = shared.lock().relay.stats_json(now);
        let json = crate::stats::without_room_names(&json);
        return respond(200, "application/json", Bytes::from(json));
    }
    match crate::web::asset(&req.path) {
        Some((content_type, body)) => respond(200, content_type, Bytes::from_static(body)),
        None => Decision::Respond(HttpResponse::text(404, "Not Found\n")),
    }
}

/// Sets up logging to stderr: `RUST_LOG` filters (default `info`), human
/// lines or one JSON object per line.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let result = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    if let Err(e) = result {
        eprintln!("logging already initialised: {e}");
    }
}

/// A future that resolves at the first SIGINT or SIGTERM. The handlers are
/// installed when this is called (inside a tokio runtime), not when the
/// future is first polled, so no signal is missed in between.
pub fn shutdown_signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        async move {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(term) => {}
                () = wait(int) => {}
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// The whole program after argument parsing: binds, prints one
/// `listening on HOST:PORT` line per listener to stdout (flushed), serves
/// until SIGINT/SIGTERM, then shuts down gracefully.
pub async fn run(args: Args) -> Result<(), StartError> {
    // Signal handlers first, so a signal right after the listening lines is not lost.
    let signal = shutdown_signal();
    crate::startup::check_nofile_limit(args.max_peers);
    let mut server = Server::bind(&args)?;
    {
        let mut out = std::io::stdout().lock();
        for addr in server.local_addrs() {
            // design/CLI.md: exactly one line per listener, flushed.
            let _ = writeln!(out, "listening on {addr}");
        }
        let _ = out.flush();
    }
    if let Some(addr) = args.admin_addr() {
        let bound = server.start_admin(addr)?;
        let mut out = std::io::stdout().lock();
        // design/CLI.md: after the game listeners' lines; not starting with `listening on`.
        let _ = writeln!(out, "admin listening on {bound}");
        let _ = out.flush();
        tracing::info!("admin: http://{bound}/metrics, /healthz, /readyz, /stats");
    }
    let scheme = if args.tls().is_some() { "wss" } else { "ws" };
    for addr in server.local_addrs() {
        tracing::info!("relay ready: {scheme}://{addr}/ (demo page: GET / on the same port)");
    }
    server.run_until(signal).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let list = vec!["https://example.com".to_string()];
        assert!(origin_allowed(&[], Some("https://evil.example")));
        assert!(origin_allowed(&list, None));
        assert!(origin_allowed(&list, Some("https://example.com")));
        assert!(origin_allowed(&list, Some("HTTPS://EXAMPLE.COM")));
        assert!(!origin_allowed(&list, Some("https://evil.example")));
        assert!(!origin_allowed(&list, Some("null")));
    }

    #[test]
    fn config_mapping() {
        let args = crate::cli::try_parse_from([
            "wsmp-relay",
            "--heartbeat-interval",
            "0",
            "--max-queued-packets",
            "7",
            "--inbound-buffer-size",
            "100",
            "--outbound-buffer-size",
            "200",
            "--handshake-timeout",
            "1.5",
            "--supported-protocol",
            "chat",
        ])
        .expect("parses");
        let c = peer_config(&args);
        assert_eq!(c.heartbeat_interval, None);
        assert_eq!(c.max_queued_packets, 7);
        assert_eq!((c.inbound_buffer_size, c.outbound_buffer_size), (100, 200));
        assert_eq!(c.handshake_timeout, Duration::from_millis(1500));
        assert_eq!(c.supported_protocols, vec!["chat"]);
        let d = peer_config(&crate::cli::try_parse_from(["wsmp-relay"]).expect("parses"));
        assert_eq!(d.heartbeat_interval, Some(Duration::from_secs(10)));
    }
}
