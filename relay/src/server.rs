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

use crate::cli::{Args, LogFormat};
use crate::relay::{Action, Admission, Relay};
use crate::rooms::RoomName;

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
        permessage_deflate: args.compression.deflate_config(),
        ..Config::default()
    }
}

impl Server {
    /// Binds every `--listen` address, loads TLS and starts accepting.
    /// Must be called inside a tokio runtime. Nothing is printed.
    pub fn bind(args: &Args) -> Result<Server, StartError> {
        let tls = match args.tls() {
            Some((cert, key)) => {
                Some(TlsServerOptions::from_pem_files(cert, key).map_err(|e| {
                    StartError(format!(
                        "TLS certificate/key ({}, {}): {e}",
                        cert.display(),
                        key.display()
                    ))
                })?)
            }
            None => None,
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
            epoch,
            pending_ttl: args.handshake_timeout + Duration::from_secs(30),
        });
        let mut peer = MultiplayerPeer::new();
        peer.config = peer_config(args);
        peer.set_max_pending_per_ip(Some(args.max_pending_per_ip));
        peer.set_peer_admission_hook(admission_hook(
            shared.clone(),
            args.allowed_origins.clone(),
            args.no_stats,
        ));
        peer.create_server_on(listeners, tls)
            .map_err(|e| StartError(format!("cannot start the server: {e}")))?;
        Ok(Server {
            peer,
            shared,
            no_stats: args.no_stats,
        })
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

fn admission_hook(
    shared: Arc<Shared>,
    allowed_origins: Vec<String>,
    no_stats: bool,
) -> wsmp_tokio::PeerAdmissionHook {
    Arc::new(move |id: PeerId, req: &Request| -> Decision {
        if req.is_upgrade {
            if !origin_allowed(&allowed_origins, req.header("Origin")) {
                tracing::info!(peer = %id, origin = ?req.header("Origin"), "origin not allowed");
                return Decision::Respond(HttpResponse::text(403, "origin not allowed\n"));
            }
            let mut inner = shared.lock();
            return match inner.relay.admit(&req.path) {
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
        if req.path_only() == "/stats" && !no_stats {
            let now = shared.now();
            let json = shared.lock().relay.stats_json(now);
            return respond(200, "application/json", Bytes::from(json));
        }
        match crate::web::asset(&req.path) {
            Some((content_type, body)) => respond(200, content_type, Bytes::from_static(body)),
            None => Decision::Respond(HttpResponse::text(404, "Not Found\n")),
        }
    })
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
    let server = Server::bind(&args)?;
    {
        let mut out = std::io::stdout().lock();
        for addr in server.local_addrs() {
            // design/CLI.md: exactly one line per listener, flushed.
            let _ = writeln!(out, "listening on {addr}");
        }
        let _ = out.flush();
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
