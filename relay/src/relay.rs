//! The relay logic of one room (sans-IO).
//!
//! The network glue runs one [`Relay`] per room, inside the room's critical
//! section. It tells the relay what happened (`peer_joined`, `packet`,
//! `peer_left`, `handle_timeout`) and the relay acts at once through an
//! [`Out`]: it queues packets for the room's peers (encoded once for every
//! receiver) and disconnects peers. Nothing here allocates per delivery.
//!
//! Behaviour: spec/scene-multiplayer.md §6 (a standalone relay server) and
//! §4.2 (relay routing), within one room.
//!
//! Close codes used with [`Out::disconnect`] (all accepted by the engine,
//! spec/websocket-peer.md §2.7 — never 1012–1014):
//! - 1000 (normal) when a peer did not authenticate within `auth_timeout`, as
//!   Godot does (spec/scene-multiplayer.md §3.4 step 9), and when the room
//!   filled up while it was authenticating (reason `room full`);
//! - 1008 (policy violation) for a wrong auth token and for a receiver whose
//!   outbound queue is full.
//!
//! When the relay disconnects an admitted peer it sends DEL_PEER for it at
//! once and stops routing to and from it; `peer_left` for it later only
//! forgets it.
//!
//! In a cluster (`crate::cluster`) the room also has **remote members**:
//! peers admitted on other nodes, announced to this room by the cluster
//! ([`Relay::remote_joined`], [`Relay::remote_left`]). To the local clients
//! they look exactly like local ones: ADD_PEER/DEL_PEER fan-out, valid RELAY
//! targets. The relay tells the cluster what other nodes need through
//! [`Out`]'s cluster hooks (a local peer admitted or gone, a packet for
//! remote members: once per packet, whatever the number of remote members),
//! and delivers packets that arrive from other nodes to its local members
//! ([`Relay::remote_packet`]). Without a cluster the hooks do nothing and
//! the remote set stays empty: behaviour and bytes are unchanged.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use wsmp_core::Timestamp;

use crate::protocol::{self, Command, Packet, ParseError, SERVER_ID};
use crate::stats::{Counters, DropReason};

/// Close code: normal closure (RFC 6455 §7.4.1).
pub const CLOSE_NORMAL: u16 = 1000;
/// Close code: policy violation (RFC 6455 §7.4.1).
pub const CLOSE_POLICY: u16 = 1008;

/// Settings of a [`Relay`] (shared by every room).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    /// Clients must run the authentication exchange (spec/scene-multiplayer.md
    /// §3.4: `send_auth(1, token)`), unless the glue admits them as already
    /// authenticated; [`Out::check_auth`] judges the token.
    pub auth_required: bool,
    /// How long a peer may stay unauthenticated; zero means forever
    /// (spec/scene-multiplayer.md §5, `auth_timeout`).
    pub auth_timeout: Duration,
    /// Answer SIMPLIFY_PATH sent to the relay with `02 01 <cache id>`
    /// (spec/scene-multiplayer.md §6 item 5).
    pub answer_simplify_path: bool,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            auth_required: false,
            // spec/scene-multiplayer.md §5: Godot's default auth_timeout is 3 s.
            auth_timeout: Duration::from_secs(3),
            answer_simplify_path: true,
        }
    }
}

/// Where the relay's output goes: the room's host (or a recorder in tests).
pub trait Out {
    /// Queues `bytes` as one binary message to each peer of `to`, encoded
    /// once. Peers whose queue is full are remembered for
    /// [`take_overflowed`](Self::take_overflowed).
    fn send(&mut self, to: &[i32], bytes: &Bytes);
    /// Closes `peer` with a close frame; `peer_left` follows once it is gone.
    fn disconnect(&mut self, peer: i32, code: u16, reason: &'static str);
    /// Moves the peers whose queue was full since the last call into `into`.
    fn take_overflowed(&mut self, into: &mut Vec<i32>);
    /// An authenticated peer is about to become a room member: true when the
    /// room has a member slot for it (the glue converts its reservation).
    fn admit_member(&mut self, peer: i32) -> bool;
    /// Judges the authentication data `peer` sent (the bytes after `07 00`):
    /// `Err` with a short reason refuses it.
    fn check_auth(&mut self, peer: i32, data: &[u8]) -> Result<(), &'static str>;
    /// Cluster: local `peer` joined the room's admitted set (other nodes
    /// announce it to their members). Default: no cluster, nothing to do.
    fn announce_joined(&mut self, _peer: i32) {}
    /// Cluster: local `peer` left the admitted set.
    fn announce_left(&mut self, _peer: i32) {}
    /// Cluster: `packet` (a RELAY already rewritten to carry its source
    /// `from`, spec/scene-multiplayer.md §4.2) is for the remote members that
    /// `target` designates; sent once, whatever their number.
    fn forward(&mut self, _from: i32, _target: i32, _packet: &Bytes) {}
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PeerState {
    /// Authenticating (spec/scene-multiplayer.md §3.4).
    Pending {
        deadline: Option<Timestamp>,
        local_done: bool,
        remote_done: bool,
    },
    /// In the room's admitted set.
    Admitted,
    /// Disconnect requested by the relay; waiting for `peer_left`.
    Closing,
}

/// The SceneMultiplayer relay of one room: plays peer 1 for every client.
#[derive(Debug)]
pub struct Relay {
    cfg: Arc<RelayConfig>,
    peers: HashMap<i32, PeerState>,
    /// Admitted peers, in admission order.
    admitted: Vec<i32>,
    /// Members admitted on other nodes of a cluster, in announcement order.
    remote: Vec<i32>,
    deadlines: BTreeSet<(Timestamp, i32)>,
    counters: Counters,
    /// Receivers of the packet being forwarded (reused).
    scratch: Vec<i32>,
    overflowed: Vec<i32>,
}

impl Relay {
    /// A room with no peers, counting into `counters`.
    pub fn new(cfg: Arc<RelayConfig>, counters: Counters) -> Self {
        Relay {
            cfg,
            peers: HashMap::new(),
            admitted: Vec::new(),
            remote: Vec::new(),
            deadlines: BTreeSet::new(),
            counters,
            scratch: Vec::new(),
            overflowed: Vec::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RelayConfig {
        &self.cfg
    }

    /// Peers of the room (pending, admitted and closing).
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Whether `id` is admitted (receives and sends game traffic).
    pub fn is_admitted(&self, id: i32) -> bool {
        self.peers.get(&id) == Some(&PeerState::Admitted)
    }

    /// The admitted peers, in admission order.
    pub fn admitted(&self) -> &[i32] {
        &self.admitted
    }

    /// The remote members (admitted on other nodes of a cluster).
    pub fn remote(&self) -> &[i32] {
        &self.remote
    }

    /// A peer completed the upgrade and its id message is queued
    /// (spec/websocket-peer.md §3.7). Without auth (or when the glue already
    /// authenticated it, e.g. with a signed token in the handshake) it is
    /// admitted at once (spec/scene-multiplayer.md §6 item 2); otherwise it
    /// becomes pending.
    pub fn peer_joined(&mut self, now: Timestamp, id: i32, authenticated: bool, out: &mut dyn Out) {
        // spec/websocket-peer.md §3.2: client ids are 2..=i32::MAX and unique.
        if id <= SERVER_ID || self.peers.contains_key(&id) {
            tracing::error!(
                peer = id,
                "peer_joined with an invalid or duplicate id; ignored"
            );
            return;
        }
        self.counters.joined();
        if self.cfg.auth_required && !authenticated {
            // spec/scene-multiplayer.md §5: auth_timeout 0 = no timeout.
            let deadline = (!self.cfg.auth_timeout.is_zero())
                .then(|| now.saturating_add(self.cfg.auth_timeout));
            if let Some(d) = deadline {
                self.deadlines.insert((d, id));
            }
            self.peers.insert(
                id,
                PeerState::Pending {
                    deadline,
                    local_done: false,
                    remote_done: false,
                },
            );
            tracing::debug!(peer = id, "peer authenticating");
        } else {
            self.peers.insert(id, PeerState::Admitted);
            self.admit_peer(id, out);
        }
    }

    /// Adds `id` to the admitted set with the ADD_PEER fan-out
    /// (spec/scene-multiplayer.md §3.2 step 3 and §6 item 2).
    fn admit_peer(&mut self, id: i32, out: &mut dyn Out) {
        // spec/scene-multiplayer.md §3.5: ADD_PEER(new) to each admitted P, ADD_PEER(P) to new.
        self.send(&self.admitted.clone(), protocol::add_peer(id), out);
        for i in 0..self.admitted.len() {
            let p = self.admitted[i];
            self.send(&[id], protocol::add_peer(p), out);
        }
        // Cluster: the members of other nodes are admitted peers too.
        for i in 0..self.remote.len() {
            let p = self.remote[i];
            self.send(&[id], protocol::add_peer(p), out);
        }
        self.admitted.push(id);
        out.announce_joined(id);
        tracing::debug!(peer = id, "peer admitted");
        self.after_sends(out);
    }

    /// Removes `id` from the admitted set and tells the others
    /// (spec/scene-multiplayer.md §3.3 and §6 item 7).
    fn unadmit_peer(&mut self, id: i32, out: &mut dyn Out) {
        self.admitted.retain(|&p| p != id);
        let others = std::mem::take(&mut self.scratch);
        let mut others = others;
        others.clear();
        others.extend_from_slice(&self.admitted);
        self.send(&others, protocol::del_peer(id), out);
        self.scratch = others;
        out.announce_left(id);
    }

    /// Cluster: `id` was admitted on another node. Announced to every local
    /// member (spec/scene-multiplayer.md §3.2 step 3, as for a local peer);
    /// local peers admitted later get it in their own fan-out.
    pub fn remote_joined(&mut self, _now: Timestamp, id: i32, out: &mut dyn Out) {
        if id <= SERVER_ID || self.peers.contains_key(&id) || self.remote.contains(&id) {
            tracing::error!(
                peer = id,
                "remote peer with an invalid or duplicate id; ignored"
            );
            return;
        }
        self.send(&self.admitted.clone(), protocol::add_peer(id), out);
        self.remote.push(id);
        tracing::debug!(peer = id, "remote peer admitted");
        self.after_sends(out);
    }

    /// Cluster: remote member `id` is gone (it left, or its node or the link
    /// to it failed): DEL_PEER to every local member (spec/scene-multiplayer.md §3.3).
    pub fn remote_left(&mut self, _now: Timestamp, id: i32, out: &mut dyn Out) {
        let Some(i) = self.remote.iter().position(|&p| p == id) else {
            return;
        };
        self.remote.remove(i);
        let mut others = std::mem::take(&mut self.scratch);
        others.clear();
        others.extend_from_slice(&self.admitted);
        self.send(&others, protocol::del_peer(id), out);
        self.scratch = others;
        tracing::debug!(peer = id, "remote peer left");
        self.after_sends(out);
    }

    /// Cluster: a packet relayed by remote member `from` with `target`
    /// (`packet` already carries the source, spec/scene-multiplayer.md
    /// §4.2): delivered to the local members `target` designates. A
    /// positive target that is not a local member belongs to another node
    /// (or left meanwhile): nothing to do here.
    pub fn remote_packet(
        &mut self,
        _now: Timestamp,
        from: i32,
        target: i32,
        packet: Bytes,
        out: &mut dyn Out,
    ) {
        if !self.remote.contains(&from) {
            tracing::trace!(peer = from, "packet from an unknown remote peer; ignored");
            return;
        }
        let mut receivers = std::mem::take(&mut self.scratch);
        if protocol::relay_receivers(from, target, &self.admitted, &mut receivers).is_some()
            && !receivers.is_empty()
        {
            self.send(&receivers, packet, out);
        }
        self.scratch = receivers;
        self.after_sends(out);
    }

    /// The transport reports peer `id` gone (closed by either side).
    pub fn peer_left(&mut self, _now: Timestamp, id: i32, out: &mut dyn Out) {
        let Some(state) = self.peers.remove(&id) else {
            return;
        };
        match state {
            // spec/scene-multiplayer.md §6 item 7: only admitted peers produce DEL_PEER.
            PeerState::Admitted => self.unadmit_peer(id, out),
            PeerState::Pending { deadline, .. } => {
                if let Some(d) = deadline {
                    self.deadlines.remove(&(d, id));
                }
            }
            PeerState::Closing => {}
        }
        tracing::debug!(peer = id, "peer left");
        self.after_sends(out);
    }

    /// Starts disconnecting `id`: stops routing to and from it, and if it was
    /// admitted sends DEL_PEER for it at once.
    fn disconnect(&mut self, id: i32, code: u16, reason: &'static str, out: &mut dyn Out) {
        let Some(state) = self.peers.get_mut(&id) else {
            return;
        };
        let old = std::mem::replace(state, PeerState::Closing);
        match old {
            PeerState::Closing => return,
            PeerState::Admitted => self.unadmit_peer(id, out),
            PeerState::Pending { deadline, .. } => {
                if let Some(d) = deadline {
                    self.deadlines.remove(&(d, id));
                }
            }
        }
        out.disconnect(id, code, reason);
    }

    /// After sends: receivers whose queue was full are disconnected with
    /// 1008 and counted as slow (which sends DEL_PEER, which may overflow
    /// more receivers: repeated until none is left).
    fn after_sends(&mut self, out: &mut dyn Out) {
        loop {
            let mut slow = std::mem::take(&mut self.overflowed);
            out.take_overflowed(&mut slow);
            if slow.is_empty() {
                self.overflowed = slow;
                return;
            }
            for &peer in &slow {
                let closable = self
                    .peers
                    .get(&peer)
                    .is_some_and(|s| *s != PeerState::Closing);
                if closable {
                    self.counters.slow_receiver();
                    tracing::warn!(peer, "receiver too slow; disconnecting");
                    self.disconnect(peer, CLOSE_POLICY, "receiver too slow", out);
                }
            }
            slow.clear();
            self.overflowed = slow;
        }
    }

    /// Disconnects peers still authenticating after `auth_timeout`
    /// (spec/scene-multiplayer.md §3.4 step 9).
    pub fn handle_timeout(&mut self, now: Timestamp, out: &mut dyn Out) {
        while let Some(&(deadline, id)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.remove(&(deadline, id));
            self.counters.auth_timed_out();
            tracing::info!(peer = id, "authentication timed out");
            // spec/scene-multiplayer.md §3.4 step 9: Godot closes with 1000.
            self.disconnect(id, CLOSE_NORMAL, "authentication timeout", out);
        }
        self.after_sends(out);
    }

    /// The earliest time [`Relay::handle_timeout`] has work to do.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.deadlines.first().map(|&(d, _)| d)
    }

    fn send(&mut self, to: &[i32], bytes: Bytes, out: &mut dyn Out) {
        if to.is_empty() {
            return;
        }
        self.counters.sent(to.len(), bytes.len());
        out.send(to, &bytes);
    }

    fn drop_packet(&mut self, from: i32, reason: DropReason) {
        tracing::trace!(peer = from, reason = reason.as_str(), "dropped packet");
        self.counters.dropped(reason);
    }

    /// A packet (one WebSocket message) from peer `from`.
    pub fn packet(&mut self, _now: Timestamp, from: i32, bytes: Bytes, out: &mut dyn Out) {
        self.counters.received(bytes.len());
        let Some(&state) = self.peers.get(&from) else {
            return self.drop_packet(from, DropReason::UnknownSender);
        };
        let parsed = protocol::parse(&bytes);
        match state {
            PeerState::Closing => self.drop_packet(from, DropReason::SenderClosing),
            PeerState::Pending {
                deadline,
                local_done,
                remote_done,
            } => self.pending_packet(from, parsed, deadline, local_done, remote_done, out),
            PeerState::Admitted => match parsed {
                Err(e) => self.drop_packet(from, parse_drop_reason(e)),
                // spec/scene-multiplayer.md §3.4 step 8: AUTH after admission is ignored/rejected.
                Ok(Packet::AuthComplete | Packet::AuthData(_)) => {
                    self.drop_packet(from, DropReason::AuthUnexpected)
                }
                // spec/scene-multiplayer.md §6 item 6: ADD/DEL from a client are invalid.
                Ok(Packet::AddPeer(_) | Packet::DelPeer(_)) => {
                    self.drop_packet(from, DropReason::SysFromClient)
                }
                Ok(Packet::Relay { target, inner }) => {
                    let nested = inner
                        .first()
                        .is_some_and(|&b| Command::from_byte(b) == Command::Sys);
                    if nested {
                        // spec/scene-multiplayer.md §2: sys packets nested in a RELAY are invalid.
                        return self.drop_packet(from, DropReason::NestedSys);
                    }
                    self.relay_packet(from, target, bytes, out);
                }
                Ok(Packet::Direct(Command::SimplifyPath)) if self.cfg.answer_simplify_path => {
                    // spec/scene-multiplayer.md §6 item 5: confirm so the client caches the path.
                    match protocol::simplify_path_cache_id(&bytes) {
                        Some(cache_id) => {
                            self.send(&[from], protocol::confirm_path(cache_id), out);
                            self.after_sends(out);
                        }
                        None => self.drop_packet(from, DropReason::ToServer),
                    }
                }
                // spec/scene-multiplayer.md §6 item 5: a relay has no game logic for peer 1.
                Ok(Packet::Direct(_)) => self.drop_packet(from, DropReason::ToServer),
            },
        }
    }

    /// A packet from a peer still authenticating (spec/scene-multiplayer.md §3.4).
    fn pending_packet(
        &mut self,
        from: i32,
        parsed: Result<Packet<'_>, ParseError>,
        deadline: Option<Timestamp>,
        mut local_done: bool,
        mut remote_done: bool,
        out: &mut dyn Out,
    ) {
        match parsed {
            // spec/scene-multiplayer.md §3.4 step 6: `07 00` = the client completed.
            Ok(Packet::AuthComplete) => {
                if remote_done {
                    return self.drop_packet(from, DropReason::AuthUnexpected);
                }
                remote_done = true;
            }
            // spec/scene-multiplayer.md §3.4 step 4: auth data for our callback.
            Ok(Packet::AuthData(data)) => {
                if local_done {
                    return self.drop_packet(from, DropReason::AuthUnexpected);
                }
                if let Err(why) = out.check_auth(from, data) {
                    self.counters.auth_failed();
                    tracing::info!(
                        peer = from,
                        reason = why,
                        "authentication refused; disconnecting"
                    );
                    self.disconnect(from, CLOSE_POLICY, "authentication failed", out);
                    return self.after_sends(out);
                }
                // spec/scene-multiplayer.md §6 item 3: send our completion once the
                // data is accepted, without waiting for the client's.
                local_done = true;
                self.send(&[from], protocol::auth_complete(), out);
            }
            // spec/scene-multiplayer.md §3.4 step 2: only AUTH while pending.
            Ok(_) | Err(ParseError::ShortRelay | ParseError::UnknownSys(_)) => {
                return self.drop_packet(from, DropReason::NotAuthenticated);
            }
            Err(e) => return self.drop_packet(from, parse_drop_reason(e)),
        }
        if local_done && remote_done {
            if let Some(d) = deadline {
                self.deadlines.remove(&(d, from));
            }
            self.counters.auth_ok();
            if !out.admit_member(from) {
                // The room filled up while this peer authenticated: a clean
                // close the engine accepts (never 1013: it answers that 1002).
                tracing::info!(peer = from, "room full after authentication; disconnecting");
                // Still pending here: it was never admitted, so nobody was
                // told about it and nobody gets a DEL_PEER for it
                // (spec/scene-multiplayer.md §6 item 7).
                self.disconnect(from, CLOSE_NORMAL, "room full", out);
                return self.after_sends(out);
            }
            // spec/scene-multiplayer.md §3.4 step 7: admit after our `07 00` is queued.
            self.peers.insert(from, PeerState::Admitted);
            self.admit_peer(from, out);
        } else {
            self.peers.insert(
                from,
                PeerState::Pending {
                    deadline,
                    local_done,
                    remote_done,
                },
            );
            self.after_sends(out);
        }
    }

    /// Forwards a RELAY from admitted peer `from` (spec/scene-multiplayer.md §4.2).
    fn relay_packet(&mut self, from: i32, target: i32, bytes: Bytes, out: &mut dyn Out) {
        let mut receivers = std::mem::take(&mut self.scratch);
        // A relay has no game logic: what the engine's server would also
        // process itself (T <= 0) is only forwarded.
        let local = protocol::relay_receivers(from, target, &self.admitted, &mut receivers);
        // Cluster: whether a remote member is among the receivers (checked
        // on the remote set; once per packet, not per remote member).
        let remote = match protocol::Target::from_id(target) {
            protocol::Target::Peer(t) => local.is_none() && self.remote.contains(&t),
            protocol::Target::Broadcast => !self.remote.is_empty(),
            protocol::Target::AllExcept(x) => self.remote.iter().any(|&p| Some(p) != x),
        };
        if local.is_none() && !remote {
            self.scratch = receivers;
            return self.drop_packet(from, DropReason::UnknownTarget);
        }
        if !receivers.is_empty() || remote {
            // spec/scene-multiplayer.md §4.2: only the id changes, destination → source.
            match protocol::rewrite_relay_source(bytes, from) {
                Some(forward) => {
                    if remote {
                        out.forward(from, target, &forward);
                    }
                    self.send(&receivers, forward, out);
                }
                None => self.drop_packet(from, DropReason::ShortRelay),
            }
        }
        self.scratch = receivers;
        self.after_sends(out);
    }
}

fn parse_drop_reason(e: ParseError) -> DropReason {
    match e {
        ParseError::Empty => DropReason::Empty,
        ParseError::ShortSys => DropReason::ShortSys,
        ParseError::ShortRelay => DropReason::ShortRelay,
        ParseError::UnknownSys(_) => DropReason::UnknownSys,
    }
}

/// Compares without an early exit on the first differing byte (shared
/// tokens are secrets).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
#[path = "relay_tests.rs"]
mod tests;
