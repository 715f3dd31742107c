//! Counters of a [`SceneMultiplayer`](super::SceneMultiplayer).

use alloc::collections::BTreeMap;

/// Why a packet from a client was dropped. The names of the relay's reasons
/// are the same as wsmp-relay's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DropReason {
    /// Zero-length packet.
    Empty,
    /// The sender is not a connected peer.
    UnknownSender,
    /// The sender is being disconnected.
    SenderClosing,
    /// Anything but AUTH from a peer still authenticating
    /// (spec/scene-multiplayer.md §3.4 step 2).
    NotAuthenticated,
    /// AUTH from an admitted peer (§3.4 step 8), or a second completion.
    AuthUnexpected,
    /// ADD_PEER / DEL_PEER from a client (§6 item 6).
    SysFromClient,
    /// SYS sub-command other than 0–3.
    UnknownSys,
    /// SYS packet too short for its sub-command.
    ShortSys,
    /// RELAY shorter than 7 bytes.
    ShortRelay,
    /// A SYS packet nested in a RELAY (§2).
    NestedSys,
    /// RELAY to a positive id that is not an admitted peer, or to 1.
    UnknownTarget,
    /// RELAY while `server_relay` is off (§4.4).
    RelayDisabled,
    /// A command 0–6 packet that does not parse.
    Malformed,
    /// An RPC or path offer for a node that is not registered.
    UnknownNode,
    /// An RPC naming a cache id the sender never offered (or offered for an
    /// unknown node).
    UnknownCacheId,
    /// A path offer reusing a cache id (scene_cache_interface.cpp: "Duplicate remote cache ID").
    DuplicateCacheId,
    /// An RPC method id the node does not have.
    UnknownMethod,
    /// An RPC of a method without a handler (e.g. one the clients declare
    /// `@rpc("authority")`: only peer 1 may call it).
    NotCallable,
    /// RPC arguments that do not decode.
    BadArgs,
    /// RPC arguments whose count the handler does not accept.
    WrongArgCount,
    /// RPC arguments whose types the handler does not accept.
    WrongArgType,
    /// CONFIRM_PATH for a path this server never offered to the sender.
    UnexpectedConfirm,
    /// SPAWN / DESPAWN / SYNC sent to the server itself: server-side
    /// replication is not implemented (they are relayed between clients).
    Replication,
}

impl DropReason {
    /// A stable snake_case name, for logs and stats.
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
            DropReason::RelayDisabled => "relay_disabled",
            DropReason::Malformed => "malformed",
            DropReason::UnknownNode => "unknown_node",
            DropReason::UnknownCacheId => "unknown_cache_id",
            DropReason::DuplicateCacheId => "duplicate_cache_id",
            DropReason::UnknownMethod => "unknown_method",
            DropReason::NotCallable => "not_callable",
            DropReason::BadArgs => "bad_args",
            DropReason::WrongArgCount => "wrong_arg_count",
            DropReason::WrongArgType => "wrong_arg_type",
            DropReason::UnexpectedConfirm => "unexpected_confirm",
            DropReason::Replication => "replication",
        }
    }
}

/// Counters since start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Packets received from clients.
    pub packets_in: u64,
    /// Packets queued to clients (each delivered copy counts).
    pub packets_out: u64,
    /// RPCs delivered to a handler.
    pub rpcs_handled: u64,
    /// RELAY packets forwarded (each delivered copy counts).
    pub relayed: u64,
    /// Path offers answered "invalid" because the RPC checksums differ.
    pub checksum_mismatches: u64,
    /// Dropped packets by reason.
    pub dropped: BTreeMap<DropReason, u64>,
}

impl Stats {
    /// How many packets were dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped.get(&reason).copied().unwrap_or(0)
    }

    /// Dropped packets, all reasons.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.values().sum()
    }
}
