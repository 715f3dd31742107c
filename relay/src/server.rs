//! The network glue of the `wsmp-relay` program: a [`RoomServer`] (tokio
//! adapter) whose rooms run the sans-IO [`Relay`].
//!
//! - Every socket has its own task (the tokio adapter's engine): TLS, the
//!   HTTP request and the admission decision run there with no lock other
//!   connections share. [`RelayRooms::admit`] answers plain `GET`s (demo
//!   page, `/stats`), checks `--allowed-origin` (403), maps the path to a
//!   room (404) and reserves the peer's slots ([`Admission`]: 503 full, 429
//!   too many connections from one address) before the `101`.
//! - Each room is its own core `Host` behind its own lock, with one
//!   [`Relay`]: a packet read by a peer's task is forwarded by that task,
//!   inside its room's critical section (encoded once, queued by reference to
//!   every receiver), and the receivers' tasks are woken to write everything
//!   queued for them. Rooms are served by every worker thread at once;
//!   nothing on the data path takes a process-wide lock.
//! - Counters are striped atomics ([`crate::stats`]); logs go through a
//!   non-blocking writer, so no log line is written to stderr while a lock
//!   is held.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use wsmp_core::connection::{SendErrorKind, SharedFrame};
use wsmp_core::frame::OpCode;
use wsmp_tokio::{
    AcceptOptions, Admit, CloseCode, Config, ConnInfo, HandshakeOutcome, Host, HostEvent,
    HttpResponse, PeerId, Request, Room, RoomServer, RoomServerOptions, Rooms, Timestamp,
    TlsServerOptions,
};

use crate::admin::{AdminHandle, AdminListener, AdminState, Readiness};
use crate::admission::{Admission, IpKey, Refusal, Ticket};
use crate::cli::{Args, LogFormat};
use crate::cluster::stream::{Sources, StreamOut};
use crate::cluster::{Cluster, RoomPart};
use crate::jwt::JwtVerifier;
use crate::metrics::{self, Metrics, Snapshot};
use crate::proxy::{ProxyProtocol, TrustedProxies};
use crate::relay::{constant_time_eq, Out, Relay, RelayConfig};
use crate::rooms::{PathRules, RoomName};
use crate::stats::{CounterSet, Counters, DropReason};

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

/// What the relay exposes to `/stats` and `/metrics`: every figure is read
/// from lock-free counters or the admission registry, never from a room.
pub(crate) struct Observed {
    admission: Arc<Admission>,
    counters: Arc<CounterSet>,
    /// Handshake, token and per-address events the rooms do not see.
    events: metrics::Counters,
    /// Handshakes in progress (TCP accepted, upgrade not finished).
    in_progress: AtomicU64,
    ready: Readiness,
    started: Instant,
    /// The cluster node, with `--cluster`.
    cluster: Option<Arc<Cluster>>,
}

impl Observed {
    fn snapshot(&self) -> Snapshot {
        let mut snap = Snapshot::from_stats(&self.counters.snapshot(), &self.admission.load());
        self.events.fill(&mut snap);
        snap.pending_handshakes = self.in_progress.load(Relaxed);
        snap.draining = !self.ready.is_ready();
        snap.cluster = self.cluster.as_ref().map(|c| c.snapshot());
        snap
    }

    /// The stats JSON (room names included: the admin listener's).
    fn stats_json(&self) -> String {
        let load = self.admission.load();
        let stats = self.counters.snapshot();
        let snap = self.snapshot();
        let rooms: std::collections::BTreeMap<&str, usize> = load
            .rooms
            .iter()
            .map(|(k, r)| (k.as_str(), r.members + r.pending))
            .collect();
        let mut json = serde_json::json!({
            "uptime_s": self.started.elapsed().as_secs(),
            "peers": load.peers,
            "pending": load.pending,
            "rooms": rooms,
            "messages_in": stats.messages_in,
            "messages_out": stats.messages_out,
            "bytes_in": stats.bytes_in,
            "bytes_out": stats.bytes_out,
            "dropped": stats.dropped,
            "disconnects": stats.disconnects,
            "disconnected_slow": stats.disconnected_slow,
            "joined_total": stats.joined_total,
            "auth_ok": snap.auth.ok,
            "auth_failed": stats.auth_failed,
            "auth_timed_out": stats.auth_timed_out,
            "handshakes": {
                "accepted": snap.handshakes.accepted,
                "refused": snap.handshakes.refused_by_status,
                "timeout": snap.handshakes.timeout,
                "tls_failure": snap.handshakes.tls_failure,
                "proxy_refused": snap.handshakes.proxy_refused,
                "in_progress": snap.pending_handshakes,
            },
        });
        if let Some(c) = &self.cluster {
            json["cluster"] = crate::cluster::glue::stats_json(c);
        }
        json.to_string()
    }
}

/// How the authentication data of the SceneMultiplayer exchange is judged:
/// the shared `--auth-token`, or a token signed with `--jwt-key-file`.
#[derive(Default)]
struct AuthCheck {
    token: Option<Vec<u8>>,
    jwt: Option<Arc<JwtVerifier>>,
}

/// The relay's rooms: admission and room creation (see the module docs).
pub struct RelayRooms {
    cfg: Arc<RelayConfig>,
    auth: Arc<AuthCheck>,
    observed: Arc<Observed>,
    allowed_origins: Vec<String>,
    paths: PathRules,
    /// `--trusted-proxy`: whose `X-Forwarded-For` names the client.
    trusted: TrustedProxies,
    /// `GET /stats` on the game port (without room names).
    public_stats: bool,
    /// The cluster node, with `--cluster`.
    cluster: Option<Arc<Cluster>>,
}

impl std::fmt::Debug for RelayRooms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayRooms").finish_non_exhaustive()
    }
}

impl RelayRooms {
    fn refuse(
        &self,
        info: &ConnInfo,
        client: IpAddr,
        req: &Request,
        refusal: Refusal,
    ) -> Admit<RoomName, Ticket> {
        Admit::Respond(refusal_response(
            &self.observed,
            info,
            client,
            req.path_only(),
            refusal,
        ))
    }

    /// A signed token in the upgrade request (`Authorization: Bearer`,
    /// `?token=`): `Ok(true)` admits without the authentication exchange,
    /// `Ok(false)` means there is none, `Err` is HTTP 401.
    fn handshake_token(
        &self,
        info: &ConnInfo,
        client: IpAddr,
        req: &Request,
        room: &RoomName,
    ) -> Result<bool, HttpResponse> {
        let Some(verifier) = &self.auth.jwt else {
            return Ok(false);
        };
        let Some(token) = crate::jwt::token_from_request(req) else {
            return Ok(false);
        };
        let events = &self.observed.events;
        match verifier.verify(token, SystemTime::now(), room) {
            Ok(claims) => {
                events.token_ok();
                tracing::info!(peer = %info.id, %client, player = claims.sub.as_deref().unwrap_or(""), %room, "token accepted");
                Ok(true)
            }
            Err(e) => {
                events.token_rejected(e.as_str());
                tracing::info!(peer = %info.id, %client, %room, reason = %e, "token refused");
                // RFC 6750 §3: `WWW-Authenticate: Bearer`.
                let mut r = HttpResponse::text(401, &format!("{e}\n"));
                r.headers.push(("WWW-Authenticate".into(), "Bearer".into()));
                Err(r)
            }
        }
    }
}

/// The answer to a refused upgrade (logged and counted).
pub(crate) fn refusal_response(
    observed: &Observed,
    info: &ConnInfo,
    client: IpAddr,
    path: &str,
    refusal: Refusal,
) -> HttpResponse {
    tracing::info!(peer = %info.id, %client, path, status = refusal.status(), reason = refusal.reason(), "upgrade refused");
    if refusal == Refusal::TooManyFromAddress {
        observed.events.refused_per_ip_connections();
    }
    let mut response = HttpResponse::text(refusal.status(), &format!("{}\n", refusal.reason()));
    if matches!(refusal.status(), 429 | 503) {
        // RFC 9110 §10.2.3: when to try again.
        response.headers.push(("Retry-After".into(), "5".into()));
    }
    response
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

fn respond(status: u16, content_type: &str, body: Bytes) -> HttpResponse {
    HttpResponse {
        status,
        headers: vec![
            ("Content-Type".into(), content_type.into()),
            ("Cache-Control".into(), "no-store".into()),
        ],
        body,
    }
}

impl Rooms for RelayRooms {
    type Key = RoomName;
    type Room = RelayRoom;

    fn admit(&self, info: &ConnInfo, req: &Request) -> Admit<RoomName, Ticket> {
        if req.is_upgrade {
            // The client's address: from X-Forwarded-For when the connection
            // comes from a --trusted-proxy (ignored from anyone else); a PROXY
            // header already replaced `info.remote` (--proxy-protocol).
            let client = self.trusted.client_from_forwarded(
                info.remote.ip(),
                req.headers
                    .iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case("X-Forwarded-For"))
                    .map(|(_, v)| v.as_str()),
            );
            if !origin_allowed(&self.allowed_origins, req.header("Origin")) {
                tracing::info!(peer = %info.id, %client, origin = ?req.header("Origin"), "origin not allowed");
                return Admit::Respond(HttpResponse::text(403, "origin not allowed\n"));
            }
            // --path-prefix / --any-path-room: the room's canonical name.
            let Some(room) = self.paths.room_for(&req.path) else {
                return self.refuse(info, client, req, Refusal::NotFound);
            };
            if !self.observed.ready.is_ready() {
                return self.refuse(info, client, req, Refusal::Draining);
            }
            let authenticated = match self.handshake_token(info, client, req, &room) {
                Ok(valid) => valid,
                Err(response) => return Admit::Respond(response),
            };
            let pending_auth = self.cfg.auth_required && !authenticated;
            // --max-conns-per-ip and the pending-auth shares count by the client.
            return match self
                .observed
                .admission
                .reserve(&room, IpKey::of(client), pending_auth)
            {
                // In a cluster the room slot is reserved cluster-wide first.
                Ok(ticket) => match &self.cluster {
                    Some(cluster) => crate::cluster::glue::admit_later(
                        cluster,
                        &self.observed,
                        info,
                        req.path_only(),
                        room,
                        ticket,
                    ),
                    None => {
                        let via = info.via.map(|v| v.ip()).unwrap_or(info.remote.ip());
                        tracing::debug!(peer = %info.id, %client, %via, %room, "upgrade admitted");
                        Admit::Join {
                            room,
                            ticket,
                            options: AcceptOptions::default(),
                        }
                    }
                },
                Err(refusal) => self.refuse(info, client, req, refusal),
            };
        }
        if req.method != "GET" {
            let mut r = HttpResponse::text(405, "method not allowed\n");
            r.headers.push(("Allow".into(), "GET".into()));
            return Admit::Respond(r);
        }
        // Room names only on the admin listener (issue 12).
        if req.path_only() == "/stats" && self.public_stats {
            let json = crate::stats::without_room_names(&self.observed.stats_json());
            return Admit::Respond(respond(200, "application/json", Bytes::from(json)));
        }
        Admit::Respond(match crate::web::asset(&req.path) {
            Some((content_type, body)) => respond(200, content_type, Bytes::from_static(body)),
            None => HttpResponse::text(404, "Not Found\n"),
        })
    }

    fn open_room(&self, key: &RoomName) -> RelayRoom {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        let counters = self.observed.counters.handle(h.finish());
        RelayRoom {
            relay: Relay::new(self.cfg.clone(), counters.clone()),
            room: key.clone(),
            auth: self.auth.clone(),
            observed: self.observed.clone(),
            tickets: HashMap::new(),
            counters,
            overflowed: Vec::new(),
            cluster: self.cluster.as_ref().map(|c| RoomPart::new(c, key)),
        }
    }

    fn room_opened(&self, key: &RoomName, room: wsmp_tokio::RoomRef<Self>) {
        if let Some(cluster) = &self.cluster {
            cluster.room_opened(key, room);
        }
    }

    fn handshake_started(&self, _info: &ConnInfo) {
        self.observed.in_progress.fetch_add(1, Relaxed);
    }

    fn pending_limit_refused(&self, remote: SocketAddr) {
        self.observed.events.refused_per_ip_pending();
        tracing::debug!(%remote, "too many unfinished handshakes from this address");
    }

    fn handshake_ended(&self, info: &ConnInfo, outcome: HandshakeOutcome) {
        let o = &self.observed;
        o.in_progress.fetch_sub(1, Relaxed);
        match outcome {
            HandshakeOutcome::Accepted => o.events.handshake_accepted(),
            HandshakeOutcome::Timeout => o.events.handshake_timeout(),
            HandshakeOutcome::Tls => o.events.tls_failure(),
            // Plain HTTP answers (the demo page) are not refused upgrades.
            HandshakeOutcome::Responded(status) if status >= 400 => {
                o.events.handshake_refused(status)
            }
            HandshakeOutcome::Refused => o.events.handshake_refused(503),
            // A PROXY header from an untrusted address, or a malformed one.
            HandshakeOutcome::PrefaceRefused => o.events.proxy_header_refused(),
            HandshakeOutcome::Responded(_) | HandshakeOutcome::Closed => {}
        }
        if outcome != HandshakeOutcome::Accepted {
            tracing::debug!(peer = %info.id, remote = %info.remote, ?outcome, "handshake ended");
        }
    }
}

/// One room: the relay logic and the slot reservations of its peers.
pub struct RelayRoom {
    relay: Relay,
    room: RoomName,
    auth: Arc<AuthCheck>,
    observed: Arc<Observed>,
    tickets: HashMap<i32, Ticket>,
    counters: Counters,
    overflowed: Vec<i32>,
    /// The room's share of the cluster, with `--cluster`.
    pub(crate) cluster: Option<RoomPart>,
}

impl std::fmt::Debug for RelayRoom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayRoom")
            .field("peers", &self.relay.peer_count())
            .finish_non_exhaustive()
    }
}

/// The relay's output on the room's host.
pub(crate) struct HostOut<'a> {
    host: &'a mut Host,
    now: Timestamp,
    room: &'a RoomName,
    auth: &'a AuthCheck,
    observed: &'a Observed,
    tickets: &'a mut HashMap<i32, Ticket>,
    overflowed: &'a mut Vec<i32>,
    counters: &'a Counters,
    /// This node's stream of the room, in a cluster.
    stream: Option<&'a mut StreamOut>,
}

impl Out for HostOut<'_> {
    fn send(&mut self, to: &[i32], bytes: &Bytes) {
        // Encoded once; every receiver's queue holds the same frame.
        let frame = SharedFrame::unmasked(OpCode::Binary, bytes.clone());
        let report = self
            .host
            .send_shared_to(&frame, to.iter().filter_map(|&id| PeerId::new(id)));
        for (id, kind) in report.failed {
            match kind {
                SendErrorKind::QueueFull => self.overflowed.push(id.get()),
                // Larger than the receiver may be sent: never deliverable.
                SendErrorKind::TooLarge => self.counters.dropped(DropReason::TooLarge),
                // Leaving already: its PeerDisconnected is on the way.
                _ => {}
            }
        }
    }

    fn disconnect(&mut self, peer: i32, code: u16, reason: &'static str) {
        if let Some(id) = PeerId::new(peer) {
            let _ = self
                .host
                .disconnect_peer_with(self.now, id, CloseCode(code), reason);
        }
    }

    fn take_overflowed(&mut self, into: &mut Vec<i32>) {
        into.append(self.overflowed);
    }

    fn admit_member(&mut self, peer: i32) -> bool {
        self.tickets
            .get_mut(&peer)
            .is_some_and(|t| t.promote().is_ok())
    }

    fn check_auth(&mut self, peer: i32, data: &[u8]) -> Result<(), &'static str> {
        if let Some(token) = &self.auth.token {
            if constant_time_eq(data, token) {
                return Ok(());
            }
        }
        let Some(verifier) = &self.auth.jwt else {
            return Err("wrong token");
        };
        let events = &self.observed.events;
        let Ok(token) = std::str::from_utf8(data) else {
            events.token_rejected("token_malformed");
            return Err("token is not UTF-8");
        };
        match verifier.verify(token, SystemTime::now(), self.room) {
            // Counted as `ok` when the exchange completes (the relay's auth_ok).
            Ok(claims) => {
                tracing::info!(peer, player = claims.sub.as_deref().unwrap_or(""), room = %self.room, "token accepted");
                Ok(())
            }
            Err(e) => {
                events.token_rejected(e.as_str());
                Err(e.as_str())
            }
        }
    }

    fn announce_joined(&mut self, peer: i32) {
        if let Some(s) = self.stream.as_deref_mut() {
            s.publish(self.now, &crate::cluster::wire::Body::Add(peer));
        }
    }

    fn announce_left(&mut self, peer: i32) {
        if let Some(s) = self.stream.as_deref_mut() {
            s.publish(self.now, &crate::cluster::wire::Body::Del(peer));
        }
    }

    fn forward(&mut self, from: i32, target: i32, packet: &Bytes) {
        if let Some(s) = self.stream.as_deref_mut() {
            let body = crate::cluster::wire::Body::Data {
                from,
                target,
                packet: packet.clone(),
            };
            s.publish(self.now, &body);
        }
    }
}

impl HostOut<'_> {
    /// This node's stream of the room, in a cluster.
    pub(crate) fn stream_mut(&mut self) -> Option<&mut StreamOut> {
        self.stream.as_deref_mut()
    }

    /// This node's stream of the room, in a cluster.
    pub(crate) fn stream_ref(&self) -> Option<&StreamOut> {
        self.stream.as_deref()
    }
}

impl RelayRoom {
    /// The relay, its output on `host`, and the streams it follows.
    pub(crate) fn split<'a>(
        &'a mut self,
        host: &'a mut Host,
        now: Timestamp,
    ) -> (&'a mut Relay, HostOut<'a>, Option<&'a mut Sources>) {
        let (stream, sources) = match &mut self.cluster {
            Some(c) => (Some(&mut c.stream), Some(&mut c.sources)),
            None => (None, None),
        };
        let out = HostOut {
            host,
            now,
            room: &self.room,
            auth: &self.auth,
            observed: &self.observed,
            tickets: &mut self.tickets,
            overflowed: &mut self.overflowed,
            counters: &self.counters,
            stream,
        };
        (&mut self.relay, out, sources)
    }
}

impl Room for RelayRoom {
    type Ticket = Ticket;

    fn joined(&mut self, id: PeerId, ticket: Ticket) {
        self.tickets.insert(id.get(), ticket);
    }

    fn on_events(&mut self, host: &mut Host, now: Timestamp) {
        while let Some(event) = host.poll_event() {
            let (relay, mut out, _) = self.split(host, now);
            match event {
                HostEvent::PeerConnected(id) => {
                    let member = out.tickets.get(&id.get()).is_some_and(Ticket::is_member);
                    relay.peer_joined(now, id.get(), member, &mut out);
                }
                HostEvent::PeerDisconnected { peer, info } => {
                    let code = info.map_or(CloseCode::ABNORMAL.0, |i| i.code.0);
                    out.counters.disconnected(code);
                    relay.peer_left(now, peer.get(), &mut out);
                    // Dropping the ticket releases the peer's slots.
                    out.tickets.remove(&peer.get());
                }
                HostEvent::Packet { from, data } => {
                    relay.packet(now, from.get(), data, &mut out);
                }
                HostEvent::Request { .. } | HostEvent::ConnectFailed(_) => {}
            }
        }
    }

    fn poll_timeout(&self) -> Option<Timestamp> {
        let stream = self.cluster.as_ref().and_then(|c| c.stream.poll_timeout());
        match (self.relay.poll_timeout(), stream) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn handle_timeout(&mut self, host: &mut Host, now: Timestamp) {
        let (relay, mut out, _) = self.split(host, now);
        relay.handle_timeout(now, &mut out);
        if let Some(c) = &mut self.cluster {
            c.stream.handle_timeout(now, self.relay.admitted());
        }
    }
}

/// A bound, running relay server.
pub struct Server {
    rooms: RoomServer<RelayRooms>,
    observed: Arc<Observed>,
    no_stats: bool,
    /// `--drain-timeout`.
    drain_timeout: Duration,
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
            .field("local_addrs", &self.rooms.local_addrs())
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
    /// Must be called inside a tokio runtime. Nothing is printed. With
    /// `--cluster` use [`start`](Self::start).
    pub fn bind(args: &Args) -> Result<Server, StartError> {
        if !args.cluster.is_empty() {
            return Err(StartError(
                "--cluster needs Server::start (it connects to NATS)".into(),
            ));
        }
        Self::bind_with(args, bind_listeners(args)?, None)
    }

    /// [`bind`](Self::bind), and with `--cluster` first joins the cluster
    /// (connects to NATS, leases this node's peer-id range).
    pub async fn start(args: &Args) -> Result<Server, StartError> {
        if args.cluster.is_empty() {
            return Self::bind(args);
        }
        let listeners = bind_listeners(args)?;
        let port = listeners
            .first()
            .and_then(|l| l.local_addr().ok())
            .map_or(0, |a| a.port());
        let cluster = Cluster::connect(args.cluster_config(port))
            .await
            .map_err(StartError)?;
        Self::bind_with(args, listeners, Some(cluster))
    }

    fn bind_with(
        args: &Args,
        listeners: Vec<tokio::net::TcpListener>,
        cluster: Option<Arc<Cluster>>,
    ) -> Result<Server, StartError> {
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
        let observed = Arc::new(Observed {
            admission: Admission::new(args.limits()),
            counters: Arc::new(CounterSet::default()),
            events: metrics::Counters::default(),
            in_progress: AtomicU64::new(0),
            ready: Readiness::default(),
            started: Instant::now(),
            cluster: cluster.clone(),
        });
        let rooms = RelayRooms {
            cfg: Arc::new(args.relay_config()),
            auth: Arc::new(AuthCheck {
                token: args.auth_token.as_ref().map(|t| t.as_bytes().to_vec()),
                jwt,
            }),
            observed: observed.clone(),
            allowed_origins: args.allowed_origins.clone(),
            paths: args.path_rules(),
            trusted: args.trusted_proxies(),
            public_stats: args.public_stats && !args.no_stats,
            cluster: cluster.clone(),
        };
        // --proxy-protocol: the PROXY header is read first in each
        // connection's own task, before TLS and HTTP (the adapter's preface).
        let preface = args.proxy_protocol.then(|| {
            let p: Arc<dyn wsmp_tokio::Preface> = Arc::new(ProxyProtocol(args.trusted_proxies()));
            p
        });
        let options = RoomServerOptions {
            config: peer_config(args),
            tls,
            max_pending_per_ip: Some(args.max_pending_per_ip),
            preface,
            // In a cluster: this node's range (unique cluster-wide).
            id_space: cluster.as_ref().map(|c| c.id_space()).unwrap_or_default(),
            coalesce: args.coalesce_window,
        };
        let rooms = RoomServer::start(rooms, listeners, options)
            .map_err(|e| StartError(format!("cannot start the server: {e}")))?;
        let tls_reload =
            reloader.map(|r| AbortOnDrop(crate::tls_reload::spawn(r, args.tls_reload_interval)));
        Ok(Server {
            rooms,
            observed,
            no_stats: args.no_stats,
            drain_timeout: args.drain_timeout,
            admin: None,
            _tls_reload: tls_reload,
        })
    }

    /// The bound addresses (real ports), in `--listen` order.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        self.rooms.local_addrs()
    }

    /// The counters as JSON (what `GET /stats` answers on the admin listener).
    pub fn stats_json(&self) -> String {
        self.observed.stats_json()
    }

    /// The figures of `/metrics` now.
    pub fn metrics_snapshot(&self) -> Snapshot {
        self.observed.snapshot()
    }

    /// The readiness flag of `/readyz` (turned off when shutting down).
    pub fn readiness(&self) -> Readiness {
        self.observed.ready.clone()
    }

    /// Binds the admin listener on `addr` and serves it until the server
    /// stops; returns the bound address (real port).
    pub fn start_admin(&mut self, addr: SocketAddr) -> Result<SocketAddr, StartError> {
        let listener = AdminListener::bind(addr)
            .map_err(|e| StartError(format!("cannot listen on {addr} (--admin-listen): {e}")))?;
        let observed = self.observed.clone();
        let metrics = Arc::new(Metrics::new(Arc::new(move || observed.snapshot())));
        let stats = (!self.no_stats).then(|| {
            let observed = self.observed.clone();
            let source: crate::admin::StatsSource = Arc::new(move || observed.stats_json());
            source
        });
        let handle = listener.spawn(AdminState {
            ready: self.observed.ready.clone(),
            metrics,
            stats,
        });
        let bound = handle.local_addr();
        self.admin = Some(handle);
        Ok(bound)
    }

    /// Connected peers now (admitted and authenticating).
    pub fn peers(&self) -> usize {
        self.observed.admission.load().peers
    }

    /// Serves until `shutdown` resolves, then closes every connection at
    /// once, gracefully (close frame 1001, bounded wait): no drain.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) {
        self.serve_until(async {
            shutdown.await;
            Stop::Now
        })
        .await;
        self.stop(Stop::Now, &mut StopRequests::none()).await;
    }

    /// Serves until the first stop request, then stops as it asks:
    /// [`Stop::Drain`] drains for up to `--drain-timeout` (ended early by
    /// the next request or when the last peer left), [`Stop::Now`] closes
    /// at once. Either way every remaining peer gets close 1001.
    pub async fn run(self, mut stops: StopRequests) {
        let first = self.serve_until(stops.next()).await;
        self.stop(first, &mut stops).await;
    }

    /// Serves (and logs the stats every minute) until `until` resolves.
    async fn serve_until(&self, until: impl Future<Output = Stop>) -> Stop {
        let mut until = std::pin::pin!(until);
        let mut stats_tick = tokio::time::interval_at(
            tokio::time::Instant::now() + STATS_LOG_INTERVAL,
            STATS_LOG_INTERVAL,
        );
        loop {
            tokio::select! {
                stop = &mut until => return stop,
                _ = stats_tick.tick(), if !self.no_stats => {
                    tracing::info!(stats = %self.stats_json(), "stats");
                }
            }
        }
    }

    /// The drain (issue 12): `/readyz` turns 503 and new upgrades get 503
    /// with `Retry-After` at once; rooms keep running until the drain
    /// timeout, the next stop request, or the last peer left; then every
    /// peer gets close 1001 ([`RoomServer::shutdown`]).
    async fn stop(self, first: Stop, stops: &mut StopRequests) {
        self.observed.ready.set(false);
        let drain = match first {
            Stop::Drain => self.drain_timeout,
            Stop::Now => Duration::ZERO,
        };
        let peers = self.peers();
        if drain.is_zero() || peers == 0 {
            tracing::info!(
                peers,
                reason = first.as_str(),
                "shutting down: closing every connection (1001)"
            );
        } else {
            tracing::info!(
                peers,
                drain_timeout_s = drain.as_secs_f64(),
                "draining: /readyz is 503 and new upgrades get 503; running rooms go on until \
                 the drain timeout or the last peer left (a second SIGTERM or a SIGINT stops at once)"
            );
            let deadline = tokio::time::Instant::now() + drain;
            let mut check = tokio::time::interval(DRAIN_CHECK_INTERVAL);
            let ended = loop {
                tokio::select! {
                    () = tokio::time::sleep_until(deadline) => break "drain timeout reached",
                    stop = stops.next() => break match stop {
                        Stop::Drain => "second SIGTERM: drain ended early",
                        Stop::Now => "SIGINT: drain ended early",
                    },
                    _ = check.tick() => if self.peers() == 0 {
                        break "every peer left";
                    },
                }
            };
            tracing::info!(
                peers = self.peers(),
                "drain over ({ended}); closing the remaining connections (1001)"
            );
        }
        let Server { rooms, admin, .. } = self;
        rooms.shutdown(SHUTDOWN_TIMEOUT).await;
        tracing::info!("stopped");
        drop(admin);
    }
}

/// How often a drain checks whether the last peer left.
pub const DRAIN_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// A stop request (design/CLI.md: SIGTERM drains, a second signal stops at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Drain first (SIGTERM): for up to `--drain-timeout`.
    Drain,
    /// Close every connection now (SIGINT, or a signal during a drain).
    Now,
}

impl Stop {
    /// What was asked, for logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Stop::Drain => "drain requested (SIGTERM)",
            Stop::Now => "stop requested (SIGINT)",
        }
    }
}

/// Where stop requests come from: SIGTERM ([`Stop::Drain`]) and SIGINT
/// ([`Stop::Now`]), or a channel (tests, embedding programs).
#[derive(Debug)]
pub struct StopRequests {
    #[cfg(unix)]
    signals: Option<(
        Option<tokio::signal::unix::Signal>,
        Option<tokio::signal::unix::Signal>,
    )>,
    channel: Option<tokio::sync::mpsc::UnboundedReceiver<Stop>>,
}

/// Sends stop requests to a [`StopRequests::channel`].
#[derive(Debug, Clone)]
pub struct StopSender(tokio::sync::mpsc::UnboundedSender<Stop>);

impl StopSender {
    /// Requests a stop (ignored once the server is gone).
    pub fn send(&self, stop: Stop) {
        let _ = self.0.send(stop);
    }
}

impl StopRequests {
    /// SIGTERM and SIGINT. The handlers are installed now (inside a tokio
    /// runtime), so no signal is missed before the first [`next`](Self::next).
    pub fn signals() -> StopRequests {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            StopRequests {
                signals: Some((
                    signal(SignalKind::terminate()).ok(),
                    signal(SignalKind::interrupt()).ok(),
                )),
                channel: None,
            }
        }
        #[cfg(not(unix))]
        {
            // Ctrl-C only: a channel fed by a task.
            let (tx, rx) = StopRequests::channel();
            tokio::spawn(async move {
                while tokio::signal::ctrl_c().await.is_ok() {
                    tx.send(Stop::Now);
                }
            });
            rx
        }
    }

    /// Requests sent through the returned [`StopSender`].
    pub fn channel() -> (StopSender, StopRequests) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (
            StopSender(tx),
            StopRequests {
                #[cfg(unix)]
                signals: None,
                channel: Some(rx),
            },
        )
    }

    /// No request ever comes.
    pub fn none() -> StopRequests {
        StopRequests {
            #[cfg(unix)]
            signals: None,
            channel: None,
        }
    }

    /// The next request (never resolves when none can come).
    pub async fn next(&mut self) -> Stop {
        #[cfg(unix)]
        if let Some((term, int)) = &mut self.signals {
            async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
                if let Some(s) = s {
                    if s.recv().await.is_some() {
                        return;
                    }
                }
                std::future::pending::<()>().await
            }
            return tokio::select! {
                () = recv(term) => Stop::Drain,
                () = recv(int) => Stop::Now,
            };
        }
        if let Some(rx) = &mut self.channel {
            if let Some(stop) = rx.recv().await {
                return stop;
            }
        }
        std::future::pending().await
    }
}

/// Binds every `--listen` address.
fn bind_listeners(args: &Args) -> Result<Vec<tokio::net::TcpListener>, StartError> {
    args.listen
        .iter()
        .map(|a| {
            wsmp_tokio::bind(a.port(), &a.ip().to_string())
                .map_err(|e| StartError(format!("cannot listen on {a}: {e}")))
        })
        .collect()
}

/// Sets up logging to stderr: `RUST_LOG` filters (default `info`), human
/// lines or one JSON object per line. Lines go through a non-blocking
/// writer (a background thread writes them), so no thread ever waits for
/// stderr while it holds a lock; keep the returned guard alive until exit
/// (it flushes what is left).
pub fn init_logging(format: LogFormat) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let result = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    match result {
        Ok(()) => Some(guard),
        Err(e) => {
            eprintln!("logging already initialised: {e}");
            None
        }
    }
}

/// A future that resolves at the first SIGINT or SIGTERM. The handlers are
/// installed when this is called (inside a tokio runtime), not when the
/// future is first polled, so no signal is missed in between.
pub fn shutdown_signal() -> impl Future<Output = ()> {
    let mut stops = StopRequests::signals();
    async move {
        stops.next().await;
    }
}

/// The whole program after argument parsing: binds, prints one
/// `listening on HOST:PORT` line per listener to stdout (flushed), serves
/// until SIGTERM (drain, `--drain-timeout`) or SIGINT (at once), then
/// closes every connection with 1001 and returns (exit 0).
pub async fn run(args: Args) -> Result<(), StartError> {
    // Signal handlers first, so a signal right after the listening lines is not lost.
    let stops = StopRequests::signals();
    crate::startup::check_nofile_limit(args.max_peers);
    let mut server = Server::start(&args).await?;
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
    server.run(stops).await;
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
