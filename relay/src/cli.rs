//! Command-line flags of the `wsmp-relay` program (design/CLI.md, "Common to
//! every server program" and "wsmp-relay").
//!
//! [`parse_or_exit`] is what `main` calls: `--help`/`--version` print to
//! stdout and exit 0; any bad argument prints one line `error: …` to stderr
//! and exits 2. Every flag can also come from the environment and a TOML
//! file; [`crate::config`] merges the layers (flags > env > file > defaults).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::admission::Limits;
use crate::relay::RelayConfig;
use crate::rooms::{AnyPathRoom, PathRules};
use clap::{ArgAction, Parser, ValueEnum};
use ipnet::IpNet;

/// Admin listener default without `--listen` (design/CLI.md).
pub const DEFAULT_ADMIN_ADDR: &str = "127.0.0.1:9081";
/// Admin listener default when `--listen` is given by any layer (design/CLI.md).
pub const DEFAULT_ADMIN_ADDR_WITH_LISTEN: &str = "127.0.0.1:0";

/// The `--admin-listen` value: an address, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminListen {
    /// No admin listener.
    Off,
    /// Listen on this address (port 0 = any free port).
    Addr(SocketAddr),
}

impl FromStr for AdminListen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "off" {
            return Ok(AdminListen::Off);
        }
        s.parse::<SocketAddr>()
            .map(AdminListen::Addr)
            .map_err(|_| format!("`{s}` is neither HOST:PORT (e.g. 127.0.0.1:9081) nor `off`"))
    }
}

impl fmt::Display for AdminListen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminListen::Off => f.write_str("off"),
            AdminListen::Addr(a) => write!(f, "{a}"),
        }
    }
}

/// Log output format on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// permessage-deflate for browser clients (RFC 7692). Godot/Redot clients
/// never offer it: for them nothing changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Compression {
    /// Never negotiated.
    Off,
    /// `server_no_context_takeover`: every message is compressed from an
    /// empty window, so a broadcast is compressed once and shared by all its
    /// receivers, and no compressor is kept per connection.
    #[default]
    Shared,
    /// Context takeover: better ratios on similar messages, but each
    /// connection compresses for itself and keeps a compressor (~380 KB).
    PerConnection,
}

impl Compression {
    /// The core setting for this mode.
    pub fn deflate_config(self) -> Option<wsmp_core::DeflateConfig> {
        match self {
            Compression::Off => None,
            Compression::Shared => Some(wsmp_core::DeflateConfig {
                server_no_context_takeover: true,
                ..wsmp_core::DeflateConfig::default()
            }),
            Compression::PerConnection => Some(wsmp_core::DeflateConfig::default()),
        }
    }
}

/// Flags of `wsmp-relay`.
#[derive(Debug, Clone, PartialEq, Eq, Parser)]
#[command(
    name = "wsmp-relay",
    version,
    about = "SceneMultiplayer relay server for unmodified Redot/Godot 4 WebSocket clients",
    long_about = "SceneMultiplayer relay server for unmodified Redot/Godot 4 clients.\n\
                  Clients connect with WebSocketMultiplayerPeer.create_client(\"ws://HOST:PORT/\") \
                  (or /room/NAME for a separate room); the relay is their server, peer 1.\n\
                  GET / in a browser serves a demo chat page.",
    after_help = "Every flag --NAME can also be set by the environment variable WSMP_RELAY_<NAME> \
                  (upper case, '-' -> '_', e.g. WSMP_RELAY_ROOM_MAX_PEERS=8; repeatable flags take \
                  a comma-separated list; on/off flags take true/false, 1/0, yes/no, on/off) or by \
                  the key NAME in the TOML file of --config (e.g. room-max-peers = 8, \
                  listen = [\"0.0.0.0:9080\"]). Precedence: flags > environment > file > defaults; \
                  a repeatable flag given by a layer replaces the lower layers' values. \
                  --print-config shows the result."
)]
pub struct Args {
    /// Address to listen on (IPv4 `127.0.0.1:9080`, IPv6 `[::1]:9080`, port 0 = any free
    /// port). Repeatable; given at least once, it replaces the default.
    #[arg(long = "listen", value_name = "HOST:PORT", default_value = "127.0.0.1:9080", action = ArgAction::Append)]
    pub listen: Vec<SocketAddr>,

    /// TLS certificate chain (PEM); enables wss:// together with `--tls-key`.
    #[arg(long, value_name = "PEM")]
    pub tls_cert: Option<PathBuf>,

    /// TLS private key (PEM), for `--tls-cert`.
    #[arg(long, value_name = "PEM")]
    pub tls_key: Option<PathBuf>,

    /// Seconds a connection may take from TCP accept to a completed WebSocket upgrade
    /// (decimals allowed; must be > 0).
    #[arg(long, value_name = "SECONDS", default_value = "3", value_parser = parse_seconds, allow_negative_numbers = true)]
    pub handshake_timeout: Duration,

    /// Largest incoming message in bytes (as Godot's `inbound_buffer_size`).
    #[arg(long, value_name = "BYTES", default_value_t = 65535, value_parser = parse_positive, allow_negative_numbers = true)]
    pub inbound_buffer_size: usize,

    /// Largest outgoing message in bytes (as Godot's `outbound_buffer_size`).
    #[arg(long, value_name = "BYTES", default_value_t = 65535, value_parser = parse_positive, allow_negative_numbers = true)]
    pub outbound_buffer_size: usize,

    /// Most packets queued per peer in each direction (as Godot's `max_queued_packets`);
    /// a receiver whose queue is full is disconnected.
    #[arg(long, value_name = "N", default_value_t = 4096, value_parser = parse_positive, allow_negative_numbers = true)]
    pub max_queued_packets: usize,

    /// Most peers connected at once over all rooms; more get HTTP 503.
    #[arg(long, value_name = "N", default_value_t = 4096, value_parser = parse_positive, allow_negative_numbers = true)]
    pub max_peers: usize,

    /// Most peers in one room at once; more get HTTP 503.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = parse_positive, allow_negative_numbers = true)]
    pub room_max_peers: usize,

    /// WebSocket subprotocol the relay accepts (Sec-WebSocket-Protocol). Repeatable.
    #[arg(long = "supported-protocol", value_name = "NAME", action = ArgAction::Append, value_parser = parse_token)]
    pub supported_protocols: Vec<String>,

    /// Seconds between pings to each peer (decimals allowed); 0 = off.
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = parse_seconds, allow_negative_numbers = true)]
    pub heartbeat_interval: Duration,

    /// Accept browser upgrades only from this Origin (e.g. `https://example.com`).
    /// Repeatable; when absent every Origin is accepted. Requests without Origin
    /// (game clients) are always accepted.
    #[arg(long = "allowed-origin", value_name = "ORIGIN", action = ArgAction::Append, value_parser = parse_non_empty)]
    pub allowed_origins: Vec<String>,

    /// Most unfinished handshakes from one IP address at once.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = parse_positive, allow_negative_numbers = true)]
    pub max_pending_per_ip: usize,

    /// Most connections (of any kind) from one address at once: IPv4
    /// address, or IPv6 /64 prefix. More get HTTP 429.
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = parse_positive, allow_negative_numbers = true)]
    pub max_conns_per_ip: usize,

    /// Most clients authenticating at once in one room (with `--auth-token`);
    /// they are not room members until they authenticated. One address may
    /// hold at most half of them. More get HTTP 503.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = parse_positive, allow_negative_numbers = true)]
    pub max_pending_auth: usize,

    /// Most clients authenticating at once over the whole relay; one address
    /// may hold at most half of them.
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = parse_positive, allow_negative_numbers = true)]
    pub max_pending_auth_total: usize,

    /// Require clients to authenticate with this token: they set
    /// `multiplayer.auth_callback` and call `send_auth(1, token.to_utf8_buffer())`.
    #[arg(long, value_name = "TOKEN", value_parser = parse_non_empty)]
    pub auth_token: Option<String>,

    /// Seconds a client may take to authenticate (decimals allowed; 0 = no limit).
    #[arg(long, value_name = "SECONDS", default_value = "3", value_parser = parse_seconds, allow_negative_numbers = true)]
    pub auth_timeout: Duration,

    /// Log format on stderr.
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,

    /// permessage-deflate for browsers (Godot clients never offer it): `off`,
    /// `shared` (a broadcast compressed once for all), `per-connection`.
    #[arg(long, value_name = "MODE", value_enum, default_value_t = Compression::Shared)]
    pub compression: Compression,

    /// Turn the stats off: no `GET /stats` JSON counters and no periodic stats log line.
    #[arg(long)]
    pub no_stats: bool,

    /// Read settings from this TOML file (keys = flag names without `--`, e.g.
    /// `room-max-peers = 8`); flags and environment variables override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Print the effective configuration as TOML (secrets redacted) and exit.
    #[arg(long)]
    pub print_config: bool,

    /// Read the `--auth-token` from this file (as written, one trailing newline
    /// stripped), so that it never appears on a command line.
    #[arg(long, value_name = "FILE")]
    pub auth_token_file: Option<PathBuf>,

    /// Admin listener (`/metrics`, `/healthz`, `/readyz`, `/stats`): HOST:PORT or `off`.
    /// Default 127.0.0.1:9081, or 127.0.0.1:0 (any free port) when `--listen` is given.
    /// Keep it private: it lists room names.
    #[arg(long, value_name = "HOST:PORT|off")]
    pub admin_listen: Option<AdminListen>,

    /// Also serve `GET /stats` on the game port (without room names); by default it
    /// is only on the admin listener.
    #[arg(long)]
    pub public_stats: bool,

    /// Verify per-player signed tokens (JWT) with this key: an HS256 shared secret
    /// (at least 32 bytes), or an RS256 / EdDSA public key (PEM); read as written,
    /// one trailing newline stripped. Tokens come as `Authorization: Bearer` or
    /// `?token=` on the upgrade request; `exp` is required, `room` restricts to one room.
    #[arg(long, value_name = "FILE")]
    pub jwt_key_file: Option<PathBuf>,

    /// A reverse proxy (CIDR block or address, e.g. 10.0.0.0/8 or 127.0.0.1) allowed to
    /// name the client: for its connections the client address is the rightmost
    /// `X-Forwarded-For` hop that is not a trusted proxy (or the PROXY header's, with
    /// `--proxy-protocol`), used in logs, metrics and the per-IP limits. Headers from
    /// other addresses are ignored. Repeatable.
    #[arg(long = "trusted-proxy", value_name = "CIDR", action = ArgAction::Append, value_parser = crate::proxy::parse_cidr)]
    pub trusted_proxies: Vec<IpNet>,

    /// Read a PROXY protocol v1/v2 header first on every connection from a
    /// `--trusted-proxy` address (required from them; refused from anyone else), before
    /// TLS and HTTP; its client address also feeds `--max-pending-per-ip`.
    #[arg(long)]
    pub proxy_protocol: bool,

    /// Seconds SIGTERM lets running rooms go on (decimals allowed): `/readyz` turns 503
    /// and new upgrades get 503 at once; then every peer gets close 1001. 0 = close at
    /// once. The drain ends early when the last peer left, or at a second SIGTERM or a
    /// SIGINT (SIGINT alone closes at once).
    #[arg(long, value_name = "SECONDS", default_value = "30", value_parser = parse_seconds, allow_negative_numbers = true)]
    pub drain_timeout: Duration,

    /// Seconds a peer's output may wait so that more joins it in one write (decimals
    /// allowed, e.g. 0.004; at most 1; 0 = write at once, the default). Trades latency
    /// for CPU: every delivery waits up to this long, and a peer receiving R packets/s
    /// gets about 1 + R × window of them per system call instead of one (README,
    /// "Performance").
    #[arg(long, value_name = "SECONDS", default_value = "0", value_parser = parse_coalesce_window, allow_negative_numbers = true)]
    pub coalesce_window: Duration,

    /// Serve the rooms under this path: `/game` → `/game`, `/game/` and
    /// `/game/room/NAME`.
    #[arg(long, value_name = "PATH", value_parser = crate::rooms::parse_path_prefix)]
    pub path_prefix: Option<String>,

    /// Where upgrades to other paths go: `default` (the default room) or `path` (the
    /// room named after the path: `/ws` → room `ws`). Without it they get 404.
    #[arg(long, value_name = "default|path")]
    pub any_path_room: Option<AnyPathRoom>,

    /// Seconds between re-reads of `--tls-cert`/`--tls-key` (decimals allowed; 0 = off).
    /// SIGHUP reloads them at any time; a bad pair is refused and the current one stays.
    #[arg(long, value_name = "SECONDS", default_value = "0", value_parser = parse_seconds, allow_negative_numbers = true)]
    pub tls_reload_interval: Duration,

    /// Join a relay cluster through this NATS server (`nats://HOST:PORT`; repeatable for
    /// several servers of one NATS cluster). Every node accepts any client for any room and
    /// rooms span nodes (docs/cluster.md). The server needs JetStream (`nats-server -js`).
    #[arg(long = "cluster", value_name = "URL", action = ArgAction::Append, value_parser = crate::cluster::parse_cluster_url)]
    pub cluster: Vec<String>,

    /// This node's name in the cluster (logs, `/stats`); default: host name and game port.
    #[arg(long, value_name = "NAME", value_parser = parse_non_empty)]
    pub node_name: Option<String>,

    /// Seconds of silence after which a cluster node (or NATS itself) counts as gone and its
    /// peers are announced gone (decimals allowed; at least 0.1).
    #[arg(long, value_name = "SECONDS", default_value = "5", value_parser = parse_seconds, allow_negative_numbers = true)]
    pub cluster_peer_timeout: Duration,

    /// Name of the cluster (several clusters can share one NATS server): 1-32 of [A-Za-z0-9_-].
    #[arg(long, value_name = "NAME", default_value = "wsmp", value_parser = crate::cluster::parse_cluster_name)]
    pub cluster_name: String,
}

/// A command line that cannot run: the text to print and the exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    /// What to print: the full help/version text (exit code 0, to stdout) or
    /// one line starting with `error: ` (exit code 2, to stderr).
    pub message: String,
    /// 0 for `--help` / `--version`, 2 for bad arguments.
    pub exit_code: i32,
}

impl Args {
    /// Checks the combinations the parser cannot see.
    pub fn validate(&self) -> Result<(), String> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => return Err("--tls-cert requires --tls-key".into()),
            (None, Some(_)) => return Err("--tls-key requires --tls-cert".into()),
            _ => {}
        }
        if self.handshake_timeout.is_zero() {
            // spec/websocket-peer.md §3.1: handshake_timeout ≤ 0 is rejected.
            return Err("--handshake-timeout must be greater than 0".into());
        }
        if self.room_max_peers > self.max_peers {
            return Err(format!(
                "--room-max-peers ({}) must not exceed --max-peers ({})",
                self.room_max_peers, self.max_peers
            ));
        }
        // spec/scene-multiplayer.md §2: a relayed packet has a 6-byte header and ≥ 1 inner byte.
        if self.inbound_buffer_size < 7 || self.outbound_buffer_size < 7 {
            return Err(
                "--inbound-buffer-size and --outbound-buffer-size must be at least 7".into(),
            );
        }
        if self.proxy_protocol && self.trusted_proxies.is_empty() {
            return Err("--proxy-protocol requires --trusted-proxy".into());
        }
        if !self.tls_reload_interval.is_zero() && self.tls().is_none() {
            return Err("--tls-reload-interval requires --tls-cert and --tls-key".into());
        }
        if self.cluster_peer_timeout < Duration::from_millis(100) {
            return Err("--cluster-peer-timeout must be at least 0.1 seconds".into());
        }
        Ok(())
    }

    /// The admin listener's address (`None` = off), once [`crate::config`] has
    /// resolved the default.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        match self.admin_listen {
            Some(AdminListen::Addr(a)) => Some(a),
            Some(AdminListen::Off) | None => None,
        }
    }

    /// How request paths map to rooms (`--path-prefix`, `--any-path-room`).
    pub fn path_rules(&self) -> PathRules {
        PathRules::new(self.path_prefix.as_deref(), self.any_path_room)
    }

    /// Whether TLS (wss://) is configured.
    pub fn tls(&self) -> Option<(&PathBuf, &PathBuf)> {
        self.tls_cert.as_ref().zip(self.tls_key.as_ref())
    }

    /// The relay settings these flags ask for: the authentication exchange
    /// is required with `--auth-token` or `--jwt-key-file` (a valid signed
    /// token in the handshake skips it).
    pub fn relay_config(&self) -> RelayConfig {
        RelayConfig {
            auth_required: self.auth_token.is_some() || self.jwt_key_file.is_some(),
            auth_timeout: self.auth_timeout,
            answer_simplify_path: true,
        }
    }

    /// The `--trusted-proxy` blocks.
    pub fn trusted_proxies(&self) -> crate::proxy::TrustedProxies {
        crate::proxy::TrustedProxies::new(self.trusted_proxies.clone())
    }

    /// The cluster settings (`--cluster` …); `port` is the game port, for
    /// the default node name.
    pub fn cluster_config(&self, port: u16) -> crate::cluster::ClusterConfig {
        crate::cluster::ClusterConfig {
            servers: self.cluster.clone(),
            node_name: self
                .node_name
                .clone()
                .unwrap_or_else(|| format!("{}:{port}", host_name())),
            peer_timeout: self.cluster_peer_timeout,
            name: self.cluster_name.clone(),
            room_max_peers: self.room_max_peers,
            max_packet: self.inbound_buffer_size,
        }
    }

    /// The admission limits these flags ask for.
    pub fn limits(&self) -> Limits {
        Limits {
            max_peers: self.max_peers,
            room_max_peers: self.room_max_peers,
            max_pending_auth: self.max_pending_auth,
            max_pending_auth_total: self.max_pending_auth_total,
            max_conns_per_ip: self.max_conns_per_ip,
        }
    }
}

/// Parses and validates a command line (the first item is the program name),
/// with `--config FILE` if given but without the environment; see
/// [`crate::config::load`] for every layer.
pub fn try_parse_from<I, T>(args: I) -> Result<Args, CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    crate::config::load(args, &[])
}

/// Parses the process's arguments, environment (`WSMP_RELAY_*`) and config
/// file; on help/version/`--print-config` prints to stdout and exits 0, on
/// error prints one line to stderr and exits 2 (design/CLI.md).
pub fn parse_or_exit() -> Args {
    let env: Vec<_> = std::env::vars_os().collect();
    match crate::config::load(std::env::args_os(), &env) {
        Ok(args) => args,
        Err(e) if e.exit_code == 0 => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(e.message.as_bytes());
            let _ = out.flush();
            std::process::exit(0)
        }
        Err(e) => {
            eprintln!("{}", e.message);
            std::process::exit(e.exit_code)
        }
    }
}

/// This machine's host name (Linux), or `localhost`.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

pub(crate) fn parse_seconds(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !v.is_finite() || v < 0.0 {
        return Err("must be a non-negative number of seconds".into());
    }
    Duration::try_from_secs_f64(v).map_err(|_| "too large".into())
}

fn parse_coalesce_window(s: &str) -> Result<Duration, String> {
    let d = parse_seconds(s)?;
    if d > wsmp_tokio::MAX_COALESCE {
        return Err(format!(
            "must be at most {} s (it adds that much latency to every delivery)",
            wsmp_tokio::MAX_COALESCE.as_secs()
        ));
    }
    Ok(d)
}

fn parse_positive(s: &str) -> Result<usize, String> {
    let v: usize = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a whole number"))?;
    if v == 0 {
        return Err("must be at least 1".into());
    }
    Ok(v)
}

fn parse_non_empty(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    Ok(s.to_string())
}

/// RFC 6455 §4.1: a subprotocol is an HTTP token (RFC 7230 §3.2.6 tchar).
fn parse_token(s: &str) -> Result<String, String> {
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if s.is_empty() || !s.bytes().all(tchar) {
        return Err("must be a non-empty HTTP token (no spaces, commas or separators)".into());
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, CliError> {
        try_parse_from(std::iter::once("wsmp-relay").chain(args.iter().copied()))
    }

    fn err(args: &[&str]) -> String {
        let e = parse(args).expect_err("should fail");
        assert_eq!(e.exit_code, 2);
        assert!(!e.message.contains('\n'), "one line: {:?}", e.message);
        assert!(e.message.starts_with("error: "), "{:?}", e.message);
        e.message
    }

    #[test]
    fn defaults() {
        let a = parse(&[]).expect("defaults parse");
        assert_eq!(
            a.listen,
            vec!["127.0.0.1:9080".parse::<SocketAddr>().expect("addr")]
        );
        assert_eq!(a.tls(), None);
        assert_eq!(a.handshake_timeout, Duration::from_secs(3));
        assert_eq!(a.inbound_buffer_size, 65535);
        assert_eq!(a.outbound_buffer_size, 65535);
        assert_eq!(a.max_queued_packets, 4096);
        assert_eq!(a.max_peers, 4096);
        assert_eq!(a.room_max_peers, 64);
        assert!(a.supported_protocols.is_empty());
        assert_eq!(a.heartbeat_interval, Duration::from_secs(10));
        assert_eq!(a.compression, Compression::Shared);
        assert!(a.allowed_origins.is_empty());
        assert_eq!(a.max_pending_per_ip, 64);
        assert_eq!(a.auth_token, None);
        assert_eq!(a.auth_timeout, Duration::from_secs(3));
        assert_eq!(a.log_format, LogFormat::Human);
        assert!(!a.no_stats);
        let cfg = a.relay_config();
        assert!(!cfg.auth_required);
        let l = a.limits();
        assert_eq!((l.max_peers, l.room_max_peers), (4096, 64));
        assert_eq!(
            (
                l.max_conns_per_ip,
                l.max_pending_auth,
                l.max_pending_auth_total
            ),
            (256, 16, 1024)
        );
    }

    #[test]
    fn every_flag() {
        let a = parse(&[
            "--listen",
            "127.0.0.1:0",
            "--listen",
            "[::1]:9081",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "--handshake-timeout",
            "1.5",
            "--inbound-buffer-size",
            "1024",
            "--outbound-buffer-size",
            "2048",
            "--max-queued-packets",
            "16",
            "--max-peers",
            "100",
            "--room-max-peers",
            "10",
            "--supported-protocol",
            "chat",
            "--supported-protocol",
            "v2.game",
            "--heartbeat-interval",
            "0",
            "--allowed-origin",
            "https://example.com",
            "--max-pending-per-ip",
            "8",
            "--auth-token",
            "s3cret",
            "--auth-timeout",
            "0.25",
            "--log-format",
            "json",
            "--compression",
            "per-connection",
            "--coalesce-window",
            "0.004",
            "--no-stats",
        ])
        .expect("parses");
        assert_eq!(a.listen.len(), 2, "given listens replace the default");
        assert_eq!(a.listen[0].port(), 0);
        assert!(a.listen[1].is_ipv6());
        assert!(a.tls().is_some());
        assert_eq!(a.handshake_timeout, Duration::from_millis(1500));
        assert_eq!(
            (a.inbound_buffer_size, a.outbound_buffer_size),
            (1024, 2048)
        );
        assert_eq!(a.max_queued_packets, 16);
        assert_eq!((a.max_peers, a.room_max_peers), (100, 10));
        assert_eq!(a.supported_protocols, vec!["chat", "v2.game"]);
        assert!(a.heartbeat_interval.is_zero());
        assert_eq!(a.allowed_origins, vec!["https://example.com"]);
        assert_eq!(a.max_pending_per_ip, 8);
        assert_eq!(a.auth_timeout, Duration::from_millis(250));
        assert_eq!(a.log_format, LogFormat::Json);
        assert_eq!(a.compression, Compression::PerConnection);
        assert_eq!(
            a.compression.deflate_config(),
            Some(wsmp_core::DeflateConfig::default())
        );
        assert!(a.no_stats);
        assert_eq!(a.coalesce_window, Duration::from_millis(4));
        let cfg = a.relay_config();
        assert!(cfg.auth_required);
        assert_eq!(a.auth_token.as_deref(), Some("s3cret"));
        assert_eq!(a.limits().room_max_peers, 10);
    }

    #[test]
    fn bad_arguments_give_one_line_errors() {
        assert!(err(&["--tls-cert", "c.pem"]).contains("--tls-cert requires --tls-key"));
        assert!(err(&["--tls-key", "k.pem"]).contains("--tls-key requires --tls-cert"));
        assert!(err(&["--max-peers", "0"]).contains("at least 1"));
        assert!(err(&["--room-max-peers", "0"]).contains("at least 1"));
        assert!(err(&["--inbound-buffer-size", "0"]).contains("at least 1"));
        assert!(err(&["--outbound-buffer-size", "3"]).contains("at least 7"));
        assert!(err(&["--max-queued-packets", "0"]).contains("--max-queued-packets"));
        assert!(err(&["--max-pending-per-ip", "-1"]).contains("--max-pending-per-ip"));
        assert!(err(&["--handshake-timeout", "0"]).contains("greater than 0"));
        assert!(err(&["--handshake-timeout", "-1"]).contains("non-negative"));
        assert!(err(&["--heartbeat-interval", "soon"]).contains("not a number"));
        assert!(err(&["--auth-timeout", "inf"]).contains("non-negative"));
        assert!(err(&["--coalesce-window", "1.5"]).contains("at most 1 s"));
        assert!(err(&["--coalesce-window", "-0.001"]).contains("non-negative"));
        assert!(err(&["--listen", "localhost"]).contains("--listen"));
        assert!(err(&["--listen", "1.2.3.4"]).contains("--listen"));
        assert!(err(&["--supported-protocol", "a b"]).contains("token"));
        assert!(err(&["--auth-token", ""]).contains("empty"));
        assert!(err(&["--log-format", "xml"]).contains("--log-format"));
        assert!(err(&["--compression", "gzip"]).contains("--compression"));
        assert!(err(&["--max-peers", "10", "--room-max-peers", "11"]).contains("must not exceed"));
        err(&["--bogus"]);
        err(&["positional"]);
    }

    #[test]
    fn help_and_version_exit_zero() {
        let h = parse(&["--help"]).expect_err("help");
        assert_eq!(h.exit_code, 0);
        assert!(h.message.contains("--room-max-peers"));
        assert!(h.message.contains("--auth-token"));
        let v = parse(&["--version"]).expect_err("version");
        assert_eq!(v.exit_code, 0);
        assert!(v.message.contains("wsmp-relay"));
    }
}
