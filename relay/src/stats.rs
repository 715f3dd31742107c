//! Relay counters: updated by every room from every worker thread without a
//! shared lock, summed when they are read (`/stats`, `/metrics`).
//!
//! Counters live in [`STRIPES`] cache-line-aligned stripes of atomics; each
//! room counts into the stripe its key hashes to, so rooms served by
//! different threads rarely touch the same cache line, and a reader sums the
//! stripes. Counters only grow: a room that goes away leaves its counts in
//! its stripe.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use serde::Serialize;

/// Why a packet from a client was dropped; the string is the key in
/// [`Stats::dropped`] and in the stats JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DropReason {
    /// Zero-length packet.
    Empty,
    /// The sender is not a connected peer (never joined, or already left).
    UnknownSender,
    /// The sender is being disconnected by the relay.
    SenderClosing,
    /// Anything but AUTH from a peer that has not authenticated yet
    /// (spec/scene-multiplayer.md §3.4 step 2).
    NotAuthenticated,
    /// AUTH from an admitted peer, when auth is off, or after the relay completed.
    AuthUnexpected,
    /// ADD_PEER / DEL_PEER from a client (spec/scene-multiplayer.md §6 item 6).
    SysFromClient,
    /// SYS sub-command other than 0–3.
    UnknownSys,
    /// SYS packet too short for its sub-command.
    ShortSys,
    /// RELAY shorter than 7 bytes.
    ShortRelay,
    /// A SYS packet nested in a RELAY (spec/scene-multiplayer.md §2).
    NestedSys,
    /// RELAY to a positive id that is not an admitted peer of the sender's room, or to 1.
    UnknownTarget,
    /// Commands 0–6 sent to the relay itself (spec/scene-multiplayer.md §6 item 5).
    ToServer,
    /// A forwarded copy larger than a receiver's `outbound_buffer_size`.
    TooLarge,
}

impl DropReason {
    /// Every reason, in a fixed order.
    pub const ALL: [DropReason; 13] = [
        DropReason::Empty,
        DropReason::UnknownSender,
        DropReason::SenderClosing,
        DropReason::NotAuthenticated,
        DropReason::AuthUnexpected,
        DropReason::SysFromClient,
        DropReason::UnknownSys,
        DropReason::ShortSys,
        DropReason::ShortRelay,
        DropReason::NestedSys,
        DropReason::UnknownTarget,
        DropReason::ToServer,
        DropReason::TooLarge,
    ];

    /// The stable name used in stats.
    pub const fn as_str(self) -> &'static str {
        match self {
            DropReason::Empty => "empty",
            DropReason::UnknownSender => "unknown_sender",
            DropReason::SenderClosing => "sender_closing",
            DropReason::NotAuthenticated => "not_authenticated",
            DropReason::AuthUnexpected => "auth_unexpected",
            DropReason::SysFromClient => "sys_from_client",
            DropReason::UnknownSys => "unknown_sys",
            DropReason::ShortSys => "short_sys",
            DropReason::ShortRelay => "short_relay",
            DropReason::NestedSys => "nested_sys",
            DropReason::UnknownTarget => "unknown_target",
            DropReason::ToServer => "to_server",
            DropReason::TooLarge => "too_large",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The labels of [`crate::metrics::close_code_label`], in a fixed order:
/// the slots of [`Stats::disconnects`].
const CLOSE_LABELS: [&str; 18] = [
    "1000", "1001", "1002", "1003", "1005", "1006", "1007", "1008", "1009", "1010", "1011", "1012",
    "1013", "1014", "1015", "3xxx", "4xxx", "other",
];

/// Number of stripes.
pub const STRIPES: usize = 16;

/// One stripe of counters (own cache lines).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Stripe {
    messages_in: AtomicU64,
    bytes_in: AtomicU64,
    messages_out: AtomicU64,
    bytes_out: AtomicU64,
    dropped: [AtomicU64; DropReason::ALL.len()],
    /// By [`CLOSE_LABELS`] index.
    disconnects: [AtomicU64; CLOSE_LABELS.len()],
    joined: AtomicU64,
    slow_receivers: AtomicU64,
    auth_ok: AtomicU64,
    auth_failed: AtomicU64,
    auth_timed_out: AtomicU64,
}

/// The relay's counters (see the [module docs](self)).
#[derive(Debug, Default)]
pub struct CounterSet {
    stripes: [Stripe; STRIPES],
}

/// A handle that counts into one stripe of a [`CounterSet`].
#[derive(Debug, Clone)]
pub struct Counters {
    set: Arc<CounterSet>,
    stripe: usize,
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Relaxed);
}

impl CounterSet {
    /// A handle counting into the stripe chosen by `seed` (e.g. a hash of
    /// the room's name).
    pub fn handle(self: &Arc<Self>, seed: u64) -> Counters {
        Counters {
            set: self.clone(),
            stripe: (seed % STRIPES as u64) as usize,
        }
    }

    /// The sum of every stripe.
    pub fn snapshot(&self) -> Stats {
        let sum = |f: &dyn Fn(&Stripe) -> &AtomicU64| -> u64 {
            self.stripes.iter().map(|s| f(s).load(Relaxed)).sum()
        };
        let mut dropped = BTreeMap::new();
        for reason in DropReason::ALL {
            let n = sum(&|s: &Stripe| &s.dropped[reason.index()]);
            if n > 0 {
                dropped.insert(reason.as_str(), n);
            }
        }
        let mut disconnects = BTreeMap::new();
        for (i, label) in CLOSE_LABELS.iter().enumerate() {
            let n = sum(&|s: &Stripe| &s.disconnects[i]);
            if n > 0 {
                disconnects.insert(*label, n);
            }
        }
        Stats {
            messages_in: sum(&|s| &s.messages_in),
            bytes_in: sum(&|s| &s.bytes_in),
            messages_out: sum(&|s| &s.messages_out),
            bytes_out: sum(&|s| &s.bytes_out),
            dropped,
            disconnects,
            joined_total: sum(&|s| &s.joined),
            disconnected_slow: sum(&|s| &s.slow_receivers),
            auth_ok: sum(&|s| &s.auth_ok),
            auth_failed: sum(&|s| &s.auth_failed),
            auth_timed_out: sum(&|s| &s.auth_timed_out),
        }
    }
}

impl Counters {
    /// A fresh set with one handle (tests, single rooms).
    pub fn standalone() -> Counters {
        Arc::new(CounterSet::default()).handle(0)
    }

    fn s(&self) -> &Stripe {
        &self.set.stripes[self.stripe]
    }

    /// The set this handle counts into.
    pub fn set(&self) -> &Arc<CounterSet> {
        &self.set
    }

    pub(crate) fn received(&self, bytes: usize) {
        add(&self.s().messages_in, 1);
        add(&self.s().bytes_in, bytes as u64);
    }

    pub(crate) fn sent(&self, receivers: usize, bytes: usize) {
        add(&self.s().messages_out, receivers as u64);
        add(&self.s().bytes_out, (receivers * bytes) as u64);
    }

    /// A packet (or one forwarded copy) was dropped.
    pub fn dropped(&self, reason: DropReason) {
        add(&self.s().dropped[reason.index()], 1);
    }

    /// A peer's connection ended with this close code (sent or received).
    pub fn disconnected(&self, code: u16) {
        let label = crate::metrics::close_code_label(code);
        let i = CLOSE_LABELS
            .iter()
            .position(|&l| l == label)
            .unwrap_or(CLOSE_LABELS.len() - 1);
        add(&self.s().disconnects[i], 1);
    }

    pub(crate) fn joined(&self) {
        add(&self.s().joined, 1);
    }

    pub(crate) fn slow_receiver(&self) {
        add(&self.s().slow_receivers, 1);
    }

    pub(crate) fn auth_ok(&self) {
        add(&self.s().auth_ok, 1);
    }

    pub(crate) fn auth_failed(&self) {
        add(&self.s().auth_failed, 1);
    }

    pub(crate) fn auth_timed_out(&self) {
        add(&self.s().auth_timed_out, 1);
    }
}

/// The counters at one moment (sums since start).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Packets received from clients.
    pub messages_in: u64,
    /// Packets sent to clients (each delivered copy counts).
    pub messages_out: u64,
    /// Bytes received from clients (packet payloads).
    pub bytes_in: u64,
    /// Bytes sent to clients (each delivered copy counts).
    pub bytes_out: u64,
    /// Dropped client packets by reason ([`DropReason::as_str`]).
    pub dropped: BTreeMap<&'static str, u64>,
    /// Ended peer connections by close code label
    /// ([`crate::metrics::close_code_label`]).
    pub disconnects: BTreeMap<&'static str, u64>,
    /// Peers that joined a room since start.
    pub joined_total: u64,
    /// Peers disconnected because their outbound queue was full.
    pub disconnected_slow: u64,
    /// Peers that completed the authentication exchange.
    pub auth_ok: u64,
    /// Peers disconnected because they sent a wrong auth token.
    pub auth_failed: u64,
    /// Peers disconnected because they did not authenticate in time.
    pub auth_timed_out: u64,
}

impl Stats {
    /// Total dropped packets over all reasons.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.values().sum()
    }

    /// The number of packets dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped.get(reason.as_str()).copied().unwrap_or(0)
    }
}

/// The stats JSON without room names, for `GET /stats` on the game port
/// (`--public-stats`): the `rooms` map is replaced by its size, so lobbies
/// cannot be enumerated there. Anything that is not a JSON object is
/// returned as `{}`.
pub fn without_room_names(json: &str) -> String {
    let Ok(serde_json::Value::Object(mut map)) = serde_json::from_str::<serde_json::Value>(json)
    else {
        return "{}".into();
    };
    let rooms = match map.remove("rooms") {
        Some(serde_json::Value::Object(r)) => r.len(),
        _ => 0,
    };
    map.insert("rooms".into(), rooms.into());
    serde_json::Value::Object(map).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_stats_hide_room_names() {
        let json = r#"{"peers":3,"rooms":{"/":1,"/room/secret-lobby":2},"messages_in":5}"#;
        let out = without_room_names(json);
        assert!(!out.contains("secret-lobby"), "{out}");
        let v: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert_eq!(v["rooms"], 2);
        assert_eq!(v["peers"], 3);
        assert_eq!(v["messages_in"], 5);
        assert_eq!(without_room_names("nonsense"), "{}");
    }
}
