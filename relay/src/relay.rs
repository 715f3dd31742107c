//! The relay state machine (sans-IO).
//!
//! The network glue owns the sockets and the WebSocket layer. It assigns peer
//! ids, sends the 4-byte id message, then tells the [`Relay`] what happened
//! (`peer_joined`, `packet`, `peer_left`, `receiver_overflow`,
//! `handle_timeout`) and carries out the [`Action`]s it hands back from
//! [`Relay::poll_action`], in order.
//!
//! Behaviour: spec/scene-multiplayer.md §6 (a standalone relay server) and
//! §4.2 (relay routing), within rooms (see [`crate::rooms`]).
//!
//! Close codes used in [`Action::Disconnect`]:
//! - 1000 (normal) when a peer did not authenticate within `auth_timeout`, as Godot does
//!   (spec/scene-multiplayer.md §3.4 step 9);
//! - 1008 (policy violation) for a wrong auth token and for a receiver whose outbound
//!   queue is full;
//! - 1013 (try again later) when a limit was reached between `admit` and `peer_joined`.
//!
//! When the relay decides to disconnect an admitted peer it sends DEL_PEER for
//! it at once and stops routing to and from it; `peer_left` for it later only
//! forgets it.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use wsmp_core::Timestamp;

use crate::protocol::{self, Command, Packet, ParseError, Target, SERVER_ID};
use crate::rooms::{Limits, Refusal, RoomName};
use crate::stats::{DropReason, Stats, StatsJson};

/// Close code: normal closure (RFC 6455 §7.4.1).
pub const CLOSE_NORMAL: u16 = 1000;
/// Close code: policy violation (RFC 6455 §7.4.1).
pub const CLOSE_POLICY: u16 = 1008;
/// Close code: try again later (IANA WebSocket close code registry).
pub const CLOSE_TRY_AGAIN_LATER: u16 = 1013;

/// Settings of a [`Relay`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    /// Most peers connected at once over all rooms (pending and admitted).
    pub max_peers: usize,
    /// Most peers in one room at once (pending and admitted).
    pub room_max_peers: usize,
    /// When set, clients must authenticate by sending exactly these bytes with
    /// `send_auth(1, token)` (spec/scene-multiplayer.md §3.4).
    pub auth_token: Option<Vec<u8>>,
    /// How long a peer may stay unauthenticated; zero means forever
    /// (spec/scene-multiplayer.md §5, `auth_timeout`).
    pub auth_timeout: Duration,
    /// Answer SIMPLIFY_PATH sent to the relay with `02 01 <cache id>`
    /// (spec/scene-multiplayer.md §6 item 5).
    pub answer_simplify_path: bool,
    /// The relay's start on the caller's clock, for `uptime_s`.
    pub started_at: Timestamp,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            max_peers: 4096,
            room_max_peers: 64,
            auth_token: None,
            // spec/scene-multiplayer.md §5: Godot's default auth_timeout is 3 s.
            auth_timeout: Duration::from_secs(3),
            answer_simplify_path: true,
            started_at: Timestamp::ZERO,
        }
    }
}

/// The answer to an upgrade request, from [`Relay::admit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Accept the upgrade; pass `room` to [`Relay::peer_joined`].
    Accept {
        /// The room the peer joins.
        room: RoomName,
    },
    /// Refuse the upgrade with this HTTP status (404 bad path, 503 full).
    Reject {
        /// HTTP status.
        status: u16,
        /// Short reason, for the response and logs.
        reason: &'static str,
    },
}

/// Work for the network glue, in the order it must be done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send one binary message to one peer.
    Send {
        /// Receiver.
        to: i32,
        /// Message payload.
        bytes: Bytes,
    },
    /// Send the same binary message to several peers (encode once, share).
    SendMany {
        /// Receivers (at least two, no duplicates).
        to: Vec<i32>,
        /// Message payload, identical for every receiver.
        bytes: Bytes,
    },
    /// Close this peer's connection with a close frame; report `peer_left` once it is gone.
    Disconnect {
        /// The peer.
        peer: i32,
        /// WebSocket close code.
        code: u16,
        /// Close reason.
        reason: &'static str,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PeerState {
    /// Authenticating (spec/scene-multiplayer.md §3.4).
    Pending {
        deadline: Option<Timestamp>,
        local_done: bool,
        remote_done: bool,
    },
    /// In its room's admitted set.
    Admitted,
    /// Disconnect requested by the relay; waiting for `peer_left`.
    Closing,
}

#[derive(Debug, Clone)]
struct Peer {
    room: RoomName,
    state: PeerState,
}

#[derive(Debug, Clone, Default)]
struct Room {
    /// Connected peers of the room (any state).
    members: usize,
    /// Admitted peers, in admission order.
    admitted: Vec<i32>,
}

/// The SceneMultiplayer relay: plays peer 1 for every client, per room.
#[derive(Debug)]
pub struct Relay {
    cfg: RelayConfig,
    peers: HashMap<i32, Peer>,
    rooms: BTreeMap<RoomName, Room>,
    deadlines: BTreeSet<(Timestamp, i32)>,
    actions: VecDeque<Action>,
    stats: Stats,
}

impl Relay {
    /// A relay with no peers.
    pub fn new(cfg: RelayConfig) -> Self {
        Relay {
            cfg,
            peers: HashMap::new(),
            rooms: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            actions: VecDeque::new(),
            stats: Stats::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RelayConfig {
        &self.cfg
    }

    fn limits(&self) -> Limits {
        Limits {
            max_peers: self.cfg.max_peers,
            room_max_peers: self.cfg.room_max_peers,
        }
    }

    fn room_members(&self, room: &RoomName) -> usize {
        self.rooms.get(room).map_or(0, |r| r.members)
    }

    /// Decides on an upgrade request for `path` (the request target, query string allowed).
    pub fn admit(&self, path: &str) -> Admission {
        let refusal = match RoomName::from_path(path) {
            None => Refusal::NotFound,
            Some(room) => match self
                .limits()
                .check(self.peers.len(), self.room_members(&room))
            {
                Ok(()) => return Admission::Accept { room },
                Err(r) => r,
            },
        };
        Admission::Reject {
            status: refusal.status(),
            reason: refusal.reason(),
        }
    }

    /// A peer completed the upgrade and the transport has sent it its id message
    /// (spec/websocket-peer.md §3.7). Without auth it is admitted at once
    /// (spec/scene-multiplayer.md §6 item 2); with auth it becomes pending.
    pub fn peer_joined(&mut self, now: Timestamp, id: i32, room: RoomName) {
        // spec/websocket-peer.md §3.2: client ids are 2..=i32::MAX and unique.
        if id <= SERVER_ID || self.peers.contains_key(&id) {
            tracing::error!(
                peer = id,
                "peer_joined with an invalid or duplicate id; ignored"
            );
            return;
        }
        let over_limit = self
            .limits()
            .check(self.peers.len(), self.room_members(&room))
            .err();
        let state = if over_limit.is_some() {
            PeerState::Closing
        } else if self.cfg.auth_token.is_some() {
            // spec/scene-multiplayer.md §5: auth_timeout 0 = no timeout.
            let deadline = (!self.cfg.auth_timeout.is_zero())
                .then(|| now.saturating_add(self.cfg.auth_timeout));
            if let Some(d) = deadline {
                self.deadlines.insert((d, id));
            }
            PeerState::Pending {
                deadline,
                local_done: false,
                remote_done: false,
            }
        } else {
            PeerState::Admitted
        };
        self.stats.joined_total += 1;
        self.stats.peers += 1;
        *self.stats.rooms.entry(room.to_string()).or_insert(0) += 1;
        self.rooms.entry(room.clone()).or_default().members += 1;
        self.peers.insert(
            id,
            Peer {
                room: room.clone(),
                state,
            },
        );
        match state {
            PeerState::Closing => {
                let refusal = over_limit.unwrap_or(Refusal::RelayFull);
                tracing::info!(peer = id, %room, reason = refusal.reason(), "refusing peer");
                self.stats.refused_full += 1;
                self.actions.push_back(Action::Disconnect {
                    peer: id,
                    code: CLOSE_TRY_AGAIN_LATER,
                    reason: refusal.reason(),
                });
            }
            PeerState::Pending { .. } => {
                self.stats.pending += 1;
                tracing::debug!(peer = id, %room, "peer authenticating");
            }
            PeerState::Admitted => self.admit_peer(id, &room),
        }
    }

    /// Adds `id` to its room's admitted set with the ADD_PEER fan-out
    /// (spec/scene-multiplayer.md §3.2 step 3 and §6 item 2).
    fn admit_peer(&mut self, id: i32, room: &RoomName) {
        let existing = match self.rooms.get(room) {
            Some(r) => r.admitted.clone(),
            None => Vec::new(),
        };
        // spec/scene-multiplayer.md §3.5: ADD_PEER(new) to each admitted P, ADD_PEER(P) to new.
        self.send_to_many(existing.clone(), protocol::add_peer(id));
        for p in existing {
            self.send(id, protocol::add_peer(p));
        }
        self.rooms
            .entry(room.clone())
            .or_default()
            .admitted
            .push(id);
        tracing::info!(peer = id, %room, "peer admitted");
    }

    /// Removes `id` from its room's admitted set and tells the others
    /// (spec/scene-multiplayer.md §3.3 and §6 item 7).
    fn unadmit_peer(&mut self, id: i32, room: &RoomName) {
        let others = match self.rooms.get_mut(room) {
            Some(r) => {
                r.admitted.retain(|&p| p != id);
                r.admitted.clone()
            }
            None => Vec::new(),
        };
        self.send_to_many(others, protocol::del_peer(id));
    }

    /// The transport reports peer `id` gone (closed by either side).
    pub fn peer_left(&mut self, _now: Timestamp, id: i32) {
        let Some(peer) = self.peers.remove(&id) else {
            return;
        };
        match peer.state {
            // spec/scene-multiplayer.md §6 item 7: only admitted peers produce DEL_PEER.
            PeerState::Admitted => self.unadmit_peer(id, &peer.room),
            PeerState::Pending { deadline, .. } => {
                self.stats.pending = self.stats.pending.saturating_sub(1);
                if let Some(d) = deadline {
                    self.deadlines.remove(&(d, id));
                }
            }
            PeerState::Closing => {}
        }
        self.stats.peers = self.stats.peers.saturating_sub(1);
        let key = peer.room.to_string();
        if let Some(n) = self.stats.rooms.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.stats.rooms.remove(&key);
            }
        }
        if let Some(r) = self.rooms.get_mut(&peer.room) {
            r.members = r.members.saturating_sub(1);
            if r.members == 0 {
                self.rooms.remove(&peer.room);
            }
        }
        tracing::info!(peer = id, room = %peer.room, "peer left");
    }

    /// Starts disconnecting `id`: stops routing to and from it, and if it was
    /// admitted sends DEL_PEER for it at once.
    fn disconnect(&mut self, id: i32, code: u16, reason: &'static str) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let old = core::mem::replace(&mut peer.state, PeerState::Closing);
        let room = peer.room.clone();
        match old {
            PeerState::Closing => return,
            PeerState::Admitted => self.unadmit_peer(id, &room),
            PeerState::Pending { deadline, .. } => {
                self.stats.pending = self.stats.pending.saturating_sub(1);
                if let Some(d) = deadline {
                    self.deadlines.remove(&(d, id));
                }
            }
        }
        self.actions.push_back(Action::Disconnect {
            peer: id,
            code,
            reason,
        });
    }

    /// The glue could not queue a message for `peer` (its outbound queue is
    /// full): the peer is disconnected with 1008 and counted as slow.
    pub fn receiver_overflow(&mut self, _now: Timestamp, peer: i32) {
        let closable = self
            .peers
            .get(&peer)
            .is_some_and(|p| p.state != PeerState::Closing);
        if closable {
            self.stats.disconnected_slow += 1;
            tracing::warn!(peer, "receiver too slow; disconnecting");
            self.disconnect(peer, CLOSE_POLICY, "receiver too slow");
        }
    }

    /// Disconnects peers still authenticating after `auth_timeout`
    /// (spec/scene-multiplayer.md §3.4 step 9).
    pub fn handle_timeout(&mut self, now: Timestamp) {
        while let Some(&(deadline, id)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.remove(&(deadline, id));
            self.stats.auth_timed_out += 1;
            tracing::info!(peer = id, "authentication timed out");
            // spec/scene-multiplayer.md §3.4 step 9: Godot closes with 1000.
            self.disconnect(id, CLOSE_NORMAL, "authentication timeout");
        }
    }

    /// The earliest time [`Relay::handle_timeout`] has work to do.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.deadlines.first().map(|&(d, _)| d)
    }

    /// The next action for the glue, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The counters as one JSON object, with `uptime_s` since `started_at`.
    pub fn stats_json(&self, now: Timestamp) -> String {
        let json = StatsJson {
            uptime_s: now.saturating_duration_since(self.cfg.started_at).as_secs(),
            stats: &self.stats,
        };
        serde_json::to_string(&json).unwrap_or_else(|_| String::from("{}"))
    }

    /// The room of a connected peer.
    pub fn room_of(&self, id: i32) -> Option<&RoomName> {
        self.peers.get(&id).map(|p| &p.room)
    }

    /// Whether `id` is admitted (receives and sends game traffic).
    pub fn is_admitted(&self, id: i32) -> bool {
        self.peers
            .get(&id)
            .is_some_and(|p| p.state == PeerState::Admitted)
    }

    /// The admitted peers of `room`, in admission order.
    pub fn admitted_in(&self, room: &RoomName) -> &[i32] {
        self.rooms.get(room).map_or(&[], |r| &r.admitted)
    }

    fn send(&mut self, to: i32, bytes: Bytes) {
        self.stats.messages_out += 1;
        self.stats.bytes_out += bytes.len() as u64;
        self.actions.push_back(Action::Send { to, bytes });
    }

    fn send_to_many(&mut self, mut to: Vec<i32>, bytes: Bytes) {
        match to.len() {
            0 => {}
            1 => {
                if let Some(one) = to.pop() {
                    self.send(one, bytes);
                }
            }
            n => {
                self.stats.messages_out += n as u64;
                self.stats.bytes_out += (bytes.len() as u64).saturating_mul(n as u64);
                self.actions.push_back(Action::SendMany { to, bytes });
            }
        }
    }

    fn drop_packet(&mut self, from: i32, reason: DropReason) {
        tracing::debug!(peer = from, reason = reason.as_str(), "dropped packet");
        self.stats.count_drop(reason);
    }

    /// A packet (one WebSocket message) from peer `from`.
    pub fn packet(&mut self, _now: Timestamp, from: i32, bytes: Bytes) {
        self.stats.messages_in += 1;
        self.stats.bytes_in += bytes.len() as u64;
        let Some(peer) = self.peers.get(&from) else {
            return self.drop_packet(from, DropReason::UnknownSender);
        };
        let state = peer.state;
        let room = peer.room.clone();
        let parsed = protocol::parse(&bytes);
        match state {
            PeerState::Closing => self.drop_packet(from, DropReason::SenderClosing),
            PeerState::Pending {
                deadline,
                local_done,
                remote_done,
            } => self.pending_packet(from, parsed, deadline, local_done, remote_done),
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
                    self.relay_packet(from, &room, target, bytes);
                }
                Ok(Packet::Direct(Command::SimplifyPath)) if self.cfg.answer_simplify_path => {
                    // spec/scene-multiplayer.md §6 item 5: confirm so the client caches the path.
                    match protocol::simplify_path_cache_id(&bytes) {
                        Some(cache_id) => self.send(from, protocol::confirm_path(cache_id)),
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
                let token = self.cfg.auth_token.as_deref().unwrap_or_default();
                if !constant_time_eq(data, token) {
                    self.stats.auth_failed += 1;
                    tracing::info!(peer = from, "wrong auth token; disconnecting");
                    return self.disconnect(from, CLOSE_POLICY, "authentication failed");
                }
                // spec/scene-multiplayer.md §6 item 3: send our completion once the
                // data is accepted, without waiting for the client's.
                local_done = true;
                self.send(from, protocol::auth_complete());
            }
            // spec/scene-multiplayer.md §3.4 step 2: only AUTH while pending.
            Ok(_) | Err(ParseError::ShortRelay | ParseError::UnknownSys(_)) => {
                return self.drop_packet(from, DropReason::NotAuthenticated);
            }
            Err(e) => return self.drop_packet(from, parse_drop_reason(e)),
        }
        if local_done && remote_done {
            // spec/scene-multiplayer.md §3.4 step 7: admit after our `07 00` is queued.
            if let Some(d) = deadline {
                self.deadlines.remove(&(d, from));
            }
            self.stats.pending = self.stats.pending.saturating_sub(1);
            let Some(peer) = self.peers.get_mut(&from) else {
                return;
            };
            peer.state = PeerState::Admitted;
            let room = peer.room.clone();
            self.admit_peer(from, &room);
        } else if let Some(peer) = self.peers.get_mut(&from) {
            peer.state = PeerState::Pending {
                deadline,
                local_done,
                remote_done,
            };
        }
    }

    /// Forwards a RELAY from admitted peer `from` (spec/scene-multiplayer.md §4.2).
    fn relay_packet(&mut self, from: i32, room: &RoomName, target: i32, bytes: Bytes) {
        let admitted = self.admitted_in(room);
        let receivers: Vec<i32> = match Target::from_id(target) {
            // T > 0: that peer only, if admitted in this room (T == 1 never is); T == S echoes.
            Target::Peer(t) => {
                if admitted.contains(&t) {
                    vec![t]
                } else {
                    return self.drop_packet(from, DropReason::UnknownTarget);
                }
            }
            // T == 0: every admitted peer except the sender.
            Target::Broadcast => admitted.iter().copied().filter(|&p| p != from).collect(),
            // T == -X: every admitted peer except the sender and X.
            Target::AllExcept(x) => admitted
                .iter()
                .copied()
                .filter(|&p| p != from && Some(p) != x)
                .collect(),
        };
        if receivers.is_empty() {
            return;
        }
        // spec/scene-multiplayer.md §4.2: only the id changes, destination → source.
        match protocol::rewrite_relay_source(bytes, from) {
            Some(out) => self.send_to_many(receivers, out),
            None => self.drop_packet(from, DropReason::ShortRelay),
        }
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

/// Compares without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
#[path = "relay_tests.rs"]
mod tests;
