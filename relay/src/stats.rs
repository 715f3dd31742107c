//! Relay counters, served as JSON.

use std::collections::BTreeMap;

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
}

impl DropReason {
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
        }
    }
}

/// Counters of a [`crate::Relay`]. Gauges (`peers`, `pending`, `rooms`) are
/// current values; the rest count since start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Connected peers (pending and admitted).
    pub peers: usize,
    /// Peers still authenticating.
    pub pending: usize,
    /// Connected peers per room, keyed by the room's path (`/`, `/room/NAME`).
    pub rooms: BTreeMap<String, usize>,
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
    /// Peers disconnected because their outbound queue was full.
    pub disconnected_slow: u64,
    /// Peers disconnected because they sent a wrong auth token.
    pub auth_failed: u64,
    /// Peers disconnected because they did not authenticate in time.
    pub auth_timed_out: u64,
    /// Peers that joined since start.
    pub joined_total: u64,
    /// Peers refused at join time because a limit was reached (after `admit`).
    pub refused_full: u64,
}

impl Stats {
    pub(crate) fn count_drop(&mut self, reason: DropReason) {
        *self.dropped.entry(reason.as_str()).or_insert(0) += 1;
    }

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

#[derive(Serialize)]
pub(crate) struct StatsJson<'a> {
    pub(crate) uptime_s: u64,
    #[serde(flatten)]
    pub(crate) stats: &'a Stats,
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
