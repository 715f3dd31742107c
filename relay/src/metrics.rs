//! Prometheus metrics of the relay (`GET /metrics` on the admin listener).
//!
//! The relay hands a plain [`Snapshot`] of numbers to [`Metrics`] at scrape
//! time (through the `source` closure given to [`Metrics::new`]); a
//! prometheus-client [`Collector`] turns it into const metrics, encoded in the
//! OpenMetrics text format (which Prometheus scrapes; `# EOF` terminated).
//! Hot counters stay wherever the relay keeps them (per room, per thread)
//! and are only summed into the snapshot when scraped.
//!
//! No metric has a per-room or per-peer label (unbounded cardinality): every
//! label below takes values from a small fixed set. Close codes are bucketed
//! by [`close_code_label`]; HTTP statuses are the relay's own refusals.
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `wsmp_relay_peers` | gauge | — |
//! | `wsmp_relay_rooms` | gauge | — |
//! | `wsmp_relay_handshakes_total` | counter | `outcome` = accepted, refused, timeout, tls_failure, proxy_refused |
//! | `wsmp_relay_handshake_refusals_total` | counter | `status` (HTTP status, e.g. 404, 429, 503) |
//! | `wsmp_relay_messages_total` / `wsmp_relay_bytes_total` | counter | `direction` = in, out |
//! | `wsmp_relay_dropped_packets_total` | counter | `reason` ([`crate::DropReason::as_str`]) |
//! | `wsmp_relay_disconnects_total` | counter | `code` ([`close_code_label`]) |
//! | `wsmp_relay_auth_total` | counter | `outcome` (see [`AuthOutcomes`]) |
//! | `wsmp_relay_slow_receiver_kicks_total` | counter | — |
//! | `wsmp_relay_pending_handshakes` / `wsmp_relay_pending_auth` | gauge | — |
//! | `wsmp_relay_refused_per_ip_total` | counter | `limit` = pending, connections |
//! | `wsmp_relay_draining` | gauge (0/1) | — |
//! | `wsmp_relay_cluster_*` | see [`ClusterSnapshot`] | only with a cluster |
//! | `wsmp_relay_build_info` | gauge (1) | `version` |
//! | `wsmp_relay_start_time_seconds` | gauge | — |

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::admission::Load;
use crate::stats::Stats;

/// Content type of [`Metrics::render`]'s output (OpenMetrics 1.0 text).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Handshake outcomes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Handshakes {
    /// Upgrades accepted (101 sent).
    pub accepted: u64,
    /// Upgrades refused with an HTTP status, by status (404, 401, 403, 429, 503, …).
    pub refused_by_status: BTreeMap<u16, u64>,
    /// Connections that did not complete the handshake within `--handshake-timeout`.
    pub timeout: u64,
    /// TLS handshakes that failed.
    pub tls_failure: u64,
    /// Connections closed for their PROXY header (`--proxy-protocol`: from an
    /// untrusted address, missing from a trusted proxy, or malformed).
    pub proxy_refused: u64,
}

/// Authentication outcomes (the SceneMultiplayer auth exchange and signed tokens).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthOutcomes {
    /// Authenticated (shared token or signed token).
    pub ok: u64,
    /// Wrong shared token (`--auth-token`), closed with 1008.
    pub failed: u64,
    /// Did not authenticate within `--auth-timeout`.
    pub timeout: u64,
    /// Signed tokens rejected, by [`crate::jwt::TokenError::as_str`]
    /// (expired, bad_signature, wrong_room, malformed, …).
    pub token_rejected: BTreeMap<&'static str, u64>,
}

/// Figures of a relay cluster node (issue 15); `None` without a cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterSnapshot {
    /// Nodes this node currently sees (itself included).
    pub nodes_seen: u64,
    /// Peers connected to other nodes and known here.
    pub remote_peers: u64,
    /// Messages received from other nodes.
    pub messages_in: u64,
    /// Messages sent to other nodes (one per node, not per remote peer).
    pub messages_out: u64,
    /// Bytes received from other nodes.
    pub bytes_in: u64,
    /// Bytes sent to other nodes.
    pub bytes_out: u64,
    /// Reconnects to the message bus.
    pub bus_reconnects: u64,
    /// Remote peers announced gone because cross-node messages may have
    /// been lost (a node or the bus failed, a stream had a hole).
    pub peers_lost: u64,
    /// Times a room's stream broke because the outbox to the bus was full.
    pub outbox_full: u64,
    /// Messages the bus refused or could not take (each reopened its room's
    /// stream: its members left and came back on the other nodes).
    pub publish_errors: u64,
    /// Times a room stream from another node was resynchronised.
    pub resyncs: u64,
    /// Whether the bus is up now.
    pub bus_up: bool,
    /// This node's index (its peer-id range).
    pub node_index: u16,
}

/// Every figure the metrics show, taken at scrape time. Gauges are current
/// values; the rest count since start (monotonic).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Connected peers (admitted and authenticating).
    pub peers: u64,
    /// Rooms with at least one peer.
    pub rooms: u64,
    /// Handshake outcomes.
    pub handshakes: Handshakes,
    /// Packets received from clients.
    pub messages_in: u64,
    /// Packets sent to clients (each delivered copy).
    pub messages_out: u64,
    /// Payload bytes received from clients.
    pub bytes_in: u64,
    /// Payload bytes sent to clients (each delivered copy).
    pub bytes_out: u64,
    /// Dropped client packets by reason ([`crate::DropReason::as_str`]).
    pub drops: BTreeMap<&'static str, u64>,
    /// Finished connections by close code, bucketed with [`close_code_label`].
    pub disconnects: BTreeMap<&'static str, u64>,
    /// Authentication outcomes.
    pub auth: AuthOutcomes,
    /// Peers disconnected because their outbound queue was full.
    pub slow_receiver_kicks: u64,
    /// Connections accepted whose WebSocket handshake is not finished.
    pub pending_handshakes: u64,
    /// Peers admitted but still authenticating.
    pub pending_auth: u64,
    /// Connections refused by a per-IP limit: unfinished handshakes (`--max-pending-per-ip`).
    pub refused_per_ip_pending: u64,
    /// Connections refused by a per-IP limit: all connections (`--max-conns-per-ip`).
    pub refused_per_ip_connections: u64,
    /// Draining or shutting down (readiness is off).
    pub draining: bool,
    /// Cluster figures, with a cluster.
    pub cluster: Option<ClusterSnapshot>,
}

impl Snapshot {
    /// The figures the relay's counters ([`Stats`]) and its admission
    /// registry ([`Load`]) hold; handshake and token figures are added by
    /// [`Counters::fill`].
    pub fn from_stats(stats: &Stats, load: &Load) -> Snapshot {
        Snapshot {
            peers: load.peers as u64,
            rooms: load.rooms.len() as u64,
            messages_in: stats.messages_in,
            messages_out: stats.messages_out,
            bytes_in: stats.bytes_in,
            bytes_out: stats.bytes_out,
            drops: stats.dropped.clone(),
            disconnects: stats.disconnects.clone(),
            slow_receiver_kicks: stats.disconnected_slow,
            pending_auth: load.pending as u64,
            auth: AuthOutcomes {
                ok: stats.auth_ok,
                failed: stats.auth_failed,
                timeout: stats.auth_timed_out,
                token_rejected: BTreeMap::new(),
            },
            ..Snapshot::default()
        }
    }
}

/// The label of a close code in `wsmp_relay_disconnects_total`: the registered
/// codes 1000–1015 as themselves (RFC 6455 §7.4.1, IANA registry), 3000–3999
/// as `3xxx`, 4000–4999 as `4xxx`, anything else as `other` — a peer chooses
/// its close code, so the label set must not follow it.
pub fn close_code_label(code: u16) -> &'static str {
    match code {
        1000 => "1000",
        1001 => "1001",
        1002 => "1002",
        1003 => "1003",
        1005 => "1005",
        1006 => "1006",
        1007 => "1007",
        1008 => "1008",
        1009 => "1009",
        1010 => "1010",
        1011 => "1011",
        1012 => "1012",
        1013 => "1013",
        1014 => "1014",
        1015 => "1015",
        3000..=3999 => "3xxx",
        4000..=4999 => "4xxx",
        _ => "other",
    }
}

/// Counters for events that the rooms do not see (handshake outcomes,
/// signed tokens, per-IP refusals), cheap to bump from
/// any task; [`Counters::fill`] adds them into a [`Snapshot`].
#[derive(Debug, Default)]
pub struct Counters {
    accepted: AtomicU64,
    timeout: AtomicU64,
    tls_failure: AtomicU64,
    proxy_refused: AtomicU64,
    refused_per_ip_pending: AtomicU64,
    refused_per_ip_connections: AtomicU64,
    token_ok: AtomicU64,
    token_rejected: std::sync::Mutex<BTreeMap<&'static str, u64>>,
    /// Refusals by status; the relay answers only a handful of statuses, so a
    /// small locked map is enough (this is not a per-packet path).
    refused: std::sync::Mutex<BTreeMap<u16, u64>>,
}

impl Counters {
    /// An accepted upgrade.
    pub fn handshake_accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// An upgrade refused with `status`.
    pub fn handshake_refused(&self, status: u16) {
        let mut m = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry(status).or_insert(0) += 1;
    }

    /// A handshake that timed out.
    pub fn handshake_timeout(&self) {
        self.timeout.fetch_add(1, Ordering::Relaxed);
    }

    /// A failed TLS handshake.
    pub fn tls_failure(&self) {
        self.tls_failure.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection closed for its PROXY header (`--proxy-protocol`).
    pub fn proxy_header_refused(&self) {
        self.proxy_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection refused by `--max-pending-per-ip`.
    pub fn refused_per_ip_pending(&self) {
        self.refused_per_ip_pending.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection refused by `--max-conns-per-ip`.
    pub fn refused_per_ip_connections(&self) {
        self.refused_per_ip_connections
            .fetch_add(1, Ordering::Relaxed);
    }

    /// A signed token accepted.
    pub fn token_ok(&self) {
        self.token_ok.fetch_add(1, Ordering::Relaxed);
    }

    /// A signed token rejected, by [`crate::jwt::TokenError::as_str`]
    /// (or `token_missing` when none was sent).
    pub fn token_rejected(&self, outcome: &'static str) {
        let mut m = self
            .token_rejected
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *m.entry(outcome).or_insert(0) += 1;
    }

    /// Adds these counters into `snap`.
    pub fn fill(&self, snap: &mut Snapshot) {
        let h = &mut snap.handshakes;
        h.accepted += self.accepted.load(Ordering::Relaxed);
        h.timeout += self.timeout.load(Ordering::Relaxed);
        h.tls_failure += self.tls_failure.load(Ordering::Relaxed);
        h.proxy_refused += self.proxy_refused.load(Ordering::Relaxed);
        for (status, n) in self
            .refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            *h.refused_by_status.entry(*status).or_insert(0) += n;
        }
        snap.auth.ok += self.token_ok.load(Ordering::Relaxed);
        for (k, n) in self
            .token_rejected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            *snap.auth.token_rejected.entry(k).or_insert(0) += n;
        }
        snap.refused_per_ip_pending += self.refused_per_ip_pending.load(Ordering::Relaxed);
        snap.refused_per_ip_connections += self.refused_per_ip_connections.load(Ordering::Relaxed);
    }
}

/// Where a scrape gets its figures.
pub type SnapshotSource = Arc<dyn Fn() -> Snapshot + Send + Sync>;

/// The relay's metrics: a prometheus-client [`Registry`] with one collector
/// that asks `source` for a [`Snapshot`] on each scrape.
pub struct Metrics {
    registry: Registry,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Metrics whose figures come from `source` (called once per scrape, on
    /// the scraping task: keep it short, no I/O).
    pub fn new(source: SnapshotSource) -> Metrics {
        let start_time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let mut registry = Registry::default();
        registry.register_collector(Box::new(SnapshotCollector { source, start_time }));
        Metrics { registry }
    }

    /// The current metrics in the OpenMetrics text format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail; an Err would come from a
        // collector, and ours returns only the writer's errors.
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
            out.push_str("# EOF\n");
        }
        out
    }
}

struct SnapshotCollector {
    source: SnapshotSource,
    start_time: f64,
}

impl fmt::Debug for SnapshotCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotCollector").finish_non_exhaustive()
    }
}

fn gauge(enc: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: u64) -> fmt::Result {
    let g = ConstGauge::new(v);
    g.encode(enc.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

fn counter(enc: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: u64) -> fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(enc.encode_descriptor(name, help, None, MetricType::Counter)?)
}

/// One counter family with a single label.
fn counter_family<'a>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    label: &str,
    values: impl IntoIterator<Item = (&'a str, u64)>,
) -> fmt::Result {
    let mut family = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (value, n) in values {
        ConstCounter::new(n).encode(family.encode_family(&[(label, value)])?)?;
    }
    Ok(())
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let s = (self.source)();
        let e = &mut enc;
        gauge(
            e,
            "wsmp_relay_peers",
            "Connected peers (admitted and authenticating).",
            s.peers,
        )?;
        gauge(
            e,
            "wsmp_relay_rooms",
            "Rooms with at least one peer.",
            s.rooms,
        )?;
        let h = &s.handshakes;
        let refused: u64 = h.refused_by_status.values().sum();
        counter_family(
            e,
            "wsmp_relay_handshakes",
            "WebSocket handshakes by outcome.",
            "outcome",
            [
                ("accepted", h.accepted),
                ("refused", refused),
                ("timeout", h.timeout),
                ("tls_failure", h.tls_failure),
                ("proxy_refused", h.proxy_refused),
            ],
        )?;
        let statuses: Vec<(String, u64)> = h
            .refused_by_status
            .iter()
            .map(|(s, n)| (s.to_string(), *n))
            .collect();
        counter_family(
            e,
            "wsmp_relay_handshake_refusals",
            "Upgrades refused with an HTTP status, by status.",
            "status",
            statuses.iter().map(|(s, n)| (s.as_str(), *n)),
        )?;
        counter_family(
            e,
            "wsmp_relay_messages",
            "Packets received from (in) and sent to (out) clients.",
            "direction",
            [("in", s.messages_in), ("out", s.messages_out)],
        )?;
        counter_family(
            e,
            "wsmp_relay_bytes",
            "Payload bytes received from (in) and sent to (out) clients.",
            "direction",
            [("in", s.bytes_in), ("out", s.bytes_out)],
        )?;
        counter_family(
            e,
            "wsmp_relay_dropped_packets",
            "Client packets dropped, by reason.",
            "reason",
            s.drops.iter().map(|(r, n)| (*r, *n)),
        )?;
        counter_family(
            e,
            "wsmp_relay_disconnects",
            "Finished connections by close code (1000-1015; 3xxx, 4xxx, other).",
            "code",
            s.disconnects.iter().map(|(c, n)| (*c, *n)),
        )?;
        let a = &s.auth;
        let auth = [("ok", a.ok), ("failed", a.failed), ("timeout", a.timeout)]
            .into_iter()
            .chain(
                a.token_rejected
                    .iter()
                    .map(|(k, n)| (*k, *n))
                    .filter(|(k, _)| !matches!(*k, "ok" | "failed" | "timeout")),
            );
        counter_family(
            e,
            "wsmp_relay_auth",
            "Authentication outcomes (shared token and signed tokens).",
            "outcome",
            auth,
        )?;
        counter(
            e,
            "wsmp_relay_slow_receiver_kicks",
            "Peers disconnected because their outbound queue was full.",
            s.slow_receiver_kicks,
        )?;
        gauge(
            e,
            "wsmp_relay_pending_handshakes",
            "Connections whose WebSocket handshake is not finished.",
            s.pending_handshakes,
        )?;
        gauge(
            e,
            "wsmp_relay_pending_auth",
            "Peers admitted but still authenticating.",
            s.pending_auth,
        )?;
        counter_family(
            e,
            "wsmp_relay_refused_per_ip",
            "Connections refused by a per-IP limit.",
            "limit",
            [
                ("pending", s.refused_per_ip_pending),
                ("connections", s.refused_per_ip_connections),
            ],
        )?;
        gauge(
            e,
            "wsmp_relay_draining",
            "1 while draining or shutting down (readiness off), else 0.",
            u64::from(s.draining),
        )?;
        if let Some(c) = &s.cluster {
            gauge(
                e,
                "wsmp_relay_cluster_nodes",
                "Cluster nodes seen (this one included).",
                c.nodes_seen,
            )?;
            gauge(
                e,
                "wsmp_relay_cluster_remote_peers",
                "Peers connected to other nodes.",
                c.remote_peers,
            )?;
            counter_family(
                e,
                "wsmp_relay_cluster_messages",
                "Messages exchanged with other nodes.",
                "direction",
                [("in", c.messages_in), ("out", c.messages_out)],
            )?;
            counter_family(
                e,
                "wsmp_relay_cluster_bytes",
                "Bytes exchanged with other nodes.",
                "direction",
                [("in", c.bytes_in), ("out", c.bytes_out)],
            )?;
            counter(
                e,
                "wsmp_relay_cluster_bus_reconnects",
                "Reconnects to the cluster's message bus.",
                c.bus_reconnects,
            )?;
            counter(
                e,
                "wsmp_relay_cluster_peers_lost",
                "Remote peers announced gone after a possible cross-node loss.",
                c.peers_lost,
            )?;
            counter(
                e,
                "wsmp_relay_cluster_outbox_full",
                "Room streams broken because the outbox to the bus was full.",
                c.outbox_full,
            )?;
            counter(
                e,
                "wsmp_relay_cluster_publish_errors",
                "Messages that failed to publish to the bus (their room's stream was reopened).",
                c.publish_errors,
            )?;
            counter(
                e,
                "wsmp_relay_cluster_resyncs",
                "Room streams from other nodes resynchronised.",
                c.resyncs,
            )?;
            gauge(
                e,
                "wsmp_relay_cluster_bus_up",
                "1 while the cluster's message bus is up, else 0.",
                u64::from(c.bus_up),
            )?;
        }
        let mut info = e.encode_descriptor(
            "wsmp_relay_build_info",
            "Build information (always 1).",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(1u64)
            .encode(info.encode_family(&[("version", env!("CARGO_PKG_VERSION"))])?)?;
        let g = ConstGauge::new(self.start_time);
        g.encode(e.encode_descriptor(
            "wsmp_relay_start_time_seconds",
            "Start time of the process since the Unix epoch, in seconds.",
            None,
            MetricType::Gauge,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn parse(text: &str) -> prometheus_parse::Scrape {
        assert!(text.ends_with("# EOF\n"), "OpenMetrics end marker");
        prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
            .expect("parses as Prometheus text")
    }

    fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
        let s = scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .unwrap_or_else(|| panic!("no sample {name} {labels:?}"));
        match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            ref other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn renders_parseable_text_and_values_move() {
        let snap = Arc::new(Mutex::new(Snapshot::default()));
        let src = snap.clone();
        let metrics = Metrics::new(Arc::new(move || {
            src.lock().unwrap_or_else(|p| p.into_inner()).clone()
        }));
        let first = parse(&metrics.render());
        assert_eq!(value(&first, "wsmp_relay_peers", &[]), 0.0);
        assert_eq!(
            value(&first, "wsmp_relay_messages_total", &[("direction", "in")]),
            0.0
        );
        assert_eq!(value(&first, "wsmp_relay_draining", &[]), 0.0);
        assert_eq!(
            value(
                &first,
                "wsmp_relay_build_info",
                &[("version", env!("CARGO_PKG_VERSION"))]
            ),
            1.0
        );
        assert!(value(&first, "wsmp_relay_start_time_seconds", &[]) > 1.6e9);

        {
            let mut s = snap.lock().unwrap_or_else(|p| p.into_inner());
            s.peers = 3;
            s.rooms = 2;
            s.messages_in = 10;
            s.messages_out = 25;
            s.bytes_in = 100;
            s.bytes_out = 250;
            s.handshakes.accepted = 4;
            s.handshakes.refused_by_status.insert(503, 2);
            s.handshakes.refused_by_status.insert(404, 1);
            s.drops.insert("unknown_target", 5);
            s.disconnects.insert(close_code_label(1001), 7);
            s.auth.token_rejected.insert("expired", 1);
            s.draining = true;
            s.cluster = Some(ClusterSnapshot {
                nodes_seen: 3,
                ..ClusterSnapshot::default()
            });
        }
        let text = metrics.render();
        let second = parse(&text);
        assert_eq!(value(&second, "wsmp_relay_peers", &[]), 3.0);
        assert_eq!(value(&second, "wsmp_relay_rooms", &[]), 2.0);
        assert_eq!(
            value(
                &second,
                "wsmp_relay_messages_total",
                &[("direction", "out")]
            ),
            25.0
        );
        assert_eq!(
            value(&second, "wsmp_relay_bytes_total", &[("direction", "in")]),
            100.0
        );
        assert_eq!(
            value(
                &second,
                "wsmp_relay_handshakes_total",
                &[("outcome", "refused")]
            ),
            3.0
        );
        assert_eq!(
            value(
                &second,
                "wsmp_relay_handshake_refusals_total",
                &[("status", "503")]
            ),
            2.0
        );
        assert_eq!(
            value(
                &second,
                "wsmp_relay_dropped_packets_total",
                &[("reason", "unknown_target")]
            ),
            5.0
        );
        assert_eq!(
            value(&second, "wsmp_relay_disconnects_total", &[("code", "1001")]),
            7.0
        );
        assert_eq!(
            value(&second, "wsmp_relay_auth_total", &[("outcome", "expired")]),
            1.0
        );
        assert_eq!(value(&second, "wsmp_relay_draining", &[]), 1.0);
        assert_eq!(value(&second, "wsmp_relay_cluster_nodes", &[]), 3.0);
        // Type lines for the families.
        assert!(
            text.contains("# TYPE wsmp_relay_messages counter"),
            "{text}"
        );
        assert!(text.contains("# TYPE wsmp_relay_peers gauge"), "{text}");
        assert!(!first_has_cluster(&first));
    }

    fn first_has_cluster(s: &prometheus_parse::Scrape) -> bool {
        s.samples
            .iter()
            .any(|x| x.metric.starts_with("wsmp_relay_cluster"))
    }

    #[test]
    fn close_codes_are_bucketed() {
        assert_eq!(close_code_label(1000), "1000");
        assert_eq!(close_code_label(1015), "1015");
        assert_eq!(close_code_label(1004), "other");
        assert_eq!(close_code_label(3001), "3xxx");
        assert_eq!(close_code_label(4999), "4xxx");
        assert_eq!(close_code_label(5000), "other");
        assert_eq!(close_code_label(0), "other");
        // Every possible code maps into a small set.
        let labels: std::collections::BTreeSet<_> = (0..=u16::MAX).map(close_code_label).collect();
        assert!(labels.len() <= 20, "{labels:?}");
    }

    #[test]
    fn counters_fill_a_snapshot() {
        let c = Counters::default();
        c.handshake_accepted();
        c.handshake_accepted();
        c.handshake_refused(503);
        c.handshake_refused(404);
        c.handshake_refused(503);
        c.handshake_timeout();
        c.tls_failure();
        c.proxy_header_refused();
        c.refused_per_ip_pending();
        c.refused_per_ip_connections();
        c.token_ok();
        c.token_rejected("token_expired");
        c.token_rejected("token_expired");
        let mut s = Snapshot::default();
        c.fill(&mut s);
        assert_eq!(s.auth.ok, 1);
        assert_eq!(s.auth.token_rejected.get("token_expired"), Some(&2));
        assert_eq!(s.handshakes.accepted, 2);
        assert_eq!(s.handshakes.refused_by_status.get(&503), Some(&2));
        assert_eq!(s.handshakes.refused_by_status.get(&404), Some(&1));
        assert_eq!((s.handshakes.timeout, s.handshakes.tls_failure), (1, 1));
        assert_eq!(s.handshakes.proxy_refused, 1);
        assert_eq!(
            (s.refused_per_ip_pending, s.refused_per_ip_connections),
            (1, 1)
        );
    }

    #[test]
    fn snapshot_from_stats() {
        let c = crate::stats::Counters::standalone();
        c.received(10);
        c.sent(3, 4);
        c.dropped(crate::stats::DropReason::Empty);
        c.disconnected(1000);
        c.disconnected(4001);
        c.disconnected(4002);
        let st = c.set().snapshot();
        let mut load = Load {
            peers: 5,
            pending: 1,
            ..Load::default()
        };
        load.rooms.insert("/".into(), Default::default());
        load.rooms.insert("/room/a".into(), Default::default());
        let s = Snapshot::from_stats(&st, &load);
        assert_eq!((s.peers, s.rooms, s.pending_auth), (5, 2, 1));
        assert_eq!(
            (s.messages_in, s.bytes_in, s.messages_out, s.bytes_out),
            (1, 10, 3, 12)
        );
        assert_eq!(s.drops.get("empty"), Some(&1));
        assert_eq!(s.disconnects.get("1000"), Some(&1));
        assert_eq!(s.disconnects.get("4xxx"), Some(&2));
    }
}
