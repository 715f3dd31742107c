//! The state of peer 1 without the application's handlers: peers, auth,
//! relaying, path caches, sending. [`super::SceneMultiplayer`] owns it next to
//! the handlers and lends it to them as a [`super::Context`].

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;

use bytes::Bytes;
use wsmp_core::Timestamp;

use super::signature::{Mismatch, Signature};
use super::stats::{DropReason, Stats};
use super::{Action, AuthError, Config, Event, NodeId, RpcError, SendError};
use crate::checksum::rpc_checksum;
use crate::packet::{
    self, relay_receivers, ConfirmPath, Message, NodeRef, Packet, ParseError, RemoteCall,
    SimplifyPath, SERVER_ID,
};
use crate::variant::Variant;

/// Close code for a peer that did not authenticate in time (Godot closes
/// with 1000: spec/scene-multiplayer.md §3.4 step 9).
pub(crate) const CLOSE_NORMAL: u16 = 1000;
/// Close code for a receiver whose queue is full (as wsmp-relay).
pub(crate) const CLOSE_POLICY: u16 = 1008;

/// A registered node.
pub(crate) struct NodeMeta {
    /// Path relative to the multiplayer root, normalized (`Lobby`).
    pub(crate) path: String,
    /// RPC method names in id order (sorted).
    pub(crate) methods: Vec<String>,
    /// `Some` for methods that have a handler (callable by clients).
    pub(crate) signatures: Vec<Option<Signature>>,
    /// `get_rpc_md5`.
    pub(crate) checksum: [u8; 32],
    /// Our cache id for it, assigned on first send (scene_cache_interface.cpp
    /// `send_object_cache`: ids from 1).
    cache_id: Option<u32>,
    /// Peers we offered the path to, and whether they confirmed it.
    offered: BTreeMap<i32, bool>,
}

impl NodeMeta {
    pub(crate) fn new(path: String, methods: Vec<String>) -> Self {
        let checksum = rpc_checksum(&methods);
        NodeMeta {
            path,
            signatures: methods.iter().map(|_| None).collect(),
            methods,
            checksum,
            cache_id: None,
            offered: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PeerState {
    /// Authenticating (spec/scene-multiplayer.md §3.4).
    Pending {
        deadline: Option<Timestamp>,
        local_done: bool,
        remote_done: bool,
    },
    Admitted,
    /// Disconnect requested by us; waiting for `peer_disconnected`.
    Closing,
}

struct Peer {
    state: PeerState,
    /// Path cache ids this peer offered us → registered node.
    recv: BTreeMap<u32, usize>,
}

/// An RPC ready for its handler.
pub(crate) struct Dispatch {
    pub(crate) from: i32,
    pub(crate) node: usize,
    pub(crate) method: usize,
    pub(crate) args: Vec<Variant>,
    pub(crate) via_relay: bool,
}

/// What a packet asks of the application's code.
pub(crate) enum Work<'a> {
    Rpc(Dispatch),
    AuthData(i32, &'a [u8]),
}

pub(crate) struct Core {
    pub(crate) cfg: Config,
    pub(crate) nodes: Vec<NodeMeta>,
    peers: BTreeMap<i32, Peer>,
    /// Admitted peers in admission order.
    admitted: Vec<i32>,
    next_cache_id: u32,
    deadlines: BTreeSet<(Timestamp, i32)>,
    actions: VecDeque<Action>,
    events: VecDeque<Event>,
    pub(crate) stats: Stats,
    pub(crate) auth_enabled: bool,
    now: Timestamp,
}

impl Core {
    pub(crate) fn new(cfg: Config) -> Self {
        Core {
            cfg,
            nodes: Vec::new(),
            peers: BTreeMap::new(),
            admitted: Vec::new(),
            next_cache_id: 1,
            deadlines: BTreeSet::new(),
            actions: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            auth_enabled: false,
            now: Timestamp::ZERO,
        }
    }

    pub(crate) fn now(&self) -> Timestamp {
        self.now
    }

    fn tick(&mut self, now: Timestamp) {
        if now > self.now {
            self.now = now;
        }
    }

    pub(crate) fn admitted(&self) -> &[i32] {
        &self.admitted
    }

    pub(crate) fn is_admitted(&self, id: i32) -> bool {
        self.peers
            .get(&id)
            .is_some_and(|p| p.state == PeerState::Admitted)
    }

    pub(crate) fn is_pending(&self, id: i32) -> bool {
        self.peers
            .get(&id)
            .is_some_and(|p| matches!(p.state, PeerState::Pending { .. }))
    }

    pub(crate) fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    pub(crate) fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    pub(crate) fn poll_timeout(&self) -> Option<Timestamp> {
        self.deadlines.first().map(|&(d, _)| d)
    }

    pub(crate) fn drop_packet(&mut self, from: i32, reason: DropReason) {
        tracing::debug!(peer = from, reason = reason.as_str(), "dropped packet");
        *self.stats.dropped.entry(reason).or_insert(0) += 1;
    }

    fn send(&mut self, to: i32, bytes: Bytes) {
        self.stats.packets_out += 1;
        self.actions.push_back(Action::Send { to, bytes });
    }

    fn send_many(&mut self, mut to: Vec<i32>, bytes: Bytes) {
        match to.len() {
            0 => {}
            1 => {
                if let Some(one) = to.pop() {
                    self.send(one, bytes);
                }
            }
            n => {
                self.stats.packets_out += n as u64;
                self.actions.push_back(Action::SendMany { to, bytes });
            }
        }
    }

    // --- peers and auth (spec/scene-multiplayer.md §3) ---

    /// The transport connected `id` and sent it its id message.
    pub(crate) fn peer_connected(&mut self, now: Timestamp, id: i32) {
        self.tick(now);
        // spec/websocket-peer.md §3.2: client ids are 2..=i32::MAX and unique.
        if id <= SERVER_ID || self.peers.contains_key(&id) {
            tracing::error!(
                peer = id,
                "peer_connected with an invalid or duplicate id; ignored"
            );
            return;
        }
        let state = if self.auth_enabled {
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
        self.peers.insert(
            id,
            Peer {
                state,
                recv: BTreeMap::new(),
            },
        );
        if state == PeerState::Admitted {
            self.admit(id);
        } else {
            tracing::debug!(peer = id, "peer authenticating");
            self.events.push_back(Event::PeerAuthenticating(id));
        }
    }

    /// ADD_PEER fan-out, then the peer joins the admitted set
    /// (spec/scene-multiplayer.md §3.2 step 3).
    fn admit(&mut self, id: i32) {
        if self.cfg.server_relay {
            let existing = self.admitted.clone();
            self.send_many(existing.clone(), packet::add_peer(id));
            for p in existing {
                self.send(id, packet::add_peer(p));
            }
        }
        self.admitted.push(id);
        tracing::info!(peer = id, "peer admitted");
        self.events.push_back(Event::PeerConnected(id));
    }

    /// Leaves the admitted set with the DEL_PEER fan-out (§3.3), and forgets
    /// the path caches of the peer.
    fn unadmit(&mut self, id: i32) {
        self.admitted.retain(|&p| p != id);
        if self.cfg.server_relay {
            self.send_many(self.admitted.clone(), packet::del_peer(id));
        }
        for n in &mut self.nodes {
            n.offered.remove(&id);
        }
        self.events.push_back(Event::PeerDisconnected(id));
    }

    /// The transport reports `id` gone.
    pub(crate) fn peer_disconnected(&mut self, now: Timestamp, id: i32) {
        self.tick(now);
        let Some(peer) = self.peers.remove(&id) else {
            return;
        };
        match peer.state {
            PeerState::Admitted => self.unadmit(id),
            PeerState::Pending { deadline, .. } => {
                if let Some(d) = deadline {
                    self.deadlines.remove(&(d, id));
                }
                // §3.4 step 9: a pending peer leaving is an authentication failure.
                self.events.push_back(Event::AuthFailed(id));
            }
            PeerState::Closing => {}
        }
        tracing::info!(peer = id, "peer left");
    }

    /// Starts disconnecting `id` (stops routing to and from it at once).
    pub(crate) fn disconnect(&mut self, id: i32, code: u16, reason: &'static str) -> bool {
        let Some(peer) = self.peers.get_mut(&id) else {
            return false;
        };
        let old = core::mem::replace(&mut peer.state, PeerState::Closing);
        match old {
            PeerState::Closing => return false,
            PeerState::Admitted => self.unadmit(id),
            PeerState::Pending { deadline, .. } => {
                if let Some(d) = deadline {
                    self.deadlines.remove(&(d, id));
                }
                self.events.push_back(Event::AuthFailed(id));
            }
        }
        self.actions.push_back(Action::Disconnect {
            peer: id,
            code,
            reason,
        });
        true
    }

    /// A receiver's queue is full: disconnect it with 1008, as wsmp-relay does.
    pub(crate) fn receiver_overflow(&mut self, peer: i32) {
        if self.disconnect(peer, CLOSE_POLICY, "receiver too slow") {
            tracing::warn!(peer, "receiver too slow; disconnecting");
        }
    }

    /// Disconnects peers still authenticating after `auth_timeout` (§3.4 step 9).
    pub(crate) fn handle_timeout(&mut self, now: Timestamp) {
        self.tick(now);
        while let Some(&(deadline, id)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.remove(&(deadline, id));
            tracing::info!(peer = id, "authentication timed out");
            self.disconnect(id, CLOSE_NORMAL, "authentication timeout");
        }
    }

    fn pending_flags(&self, id: i32) -> Option<(Option<Timestamp>, bool, bool)> {
        match self.peers.get(&id)?.state {
            PeerState::Pending {
                deadline,
                local_done,
                remote_done,
            } => Some((deadline, local_done, remote_done)),
            _ => None,
        }
    }

    fn set_pending(&mut self, id: i32, deadline: Option<Timestamp>, local: bool, remote: bool) {
        if local && remote {
            // §3.4 step 7: admitted once both sides completed, after our `07 00`.
            if let Some(d) = deadline {
                self.deadlines.remove(&(d, id));
            }
            if let Some(p) = self.peers.get_mut(&id) {
                p.state = PeerState::Admitted;
            }
            self.admit(id);
        } else if let Some(p) = self.peers.get_mut(&id) {
            p.state = PeerState::Pending {
                deadline,
                local_done: local,
                remote_done: remote,
            };
        }
    }

    /// `send_auth(id, data)` (§3.4 step 3).
    pub(crate) fn send_auth(&mut self, id: i32, data: &[u8]) -> Result<(), AuthError> {
        let (_, local, remote) = self.pending_flags(id).ok_or(AuthError::NotPending)?;
        if data.is_empty() {
            return Err(AuthError::EmptyData);
        }
        if local || remote {
            // SceneMultiplayer::send_auth: ERR_FILE_CANT_WRITE once either side completed.
            return Err(AuthError::AlreadyCompleted);
        }
        self.send(id, packet::auth_data(data));
        Ok(())
    }

    /// `complete_auth(id)` (§3.4 step 5).
    pub(crate) fn complete_auth(&mut self, id: i32) -> Result<(), AuthError> {
        let (deadline, local, remote) = self.pending_flags(id).ok_or(AuthError::NotPending)?;
        if local {
            return Err(AuthError::AlreadyCompleted);
        }
        self.send(id, packet::auth_complete());
        self.set_pending(id, deadline, true, remote);
        Ok(())
    }

    // --- incoming packets ---

    /// A packet from `from`; returns the work for the application's code.
    pub(crate) fn packet<'a>(
        &mut self,
        now: Timestamp,
        from: i32,
        bytes: &'a Bytes,
    ) -> Option<Work<'a>> {
        self.tick(now);
        self.stats.packets_in += 1;
        let Some(peer) = self.peers.get(&from) else {
            self.drop_packet(from, DropReason::UnknownSender);
            return None;
        };
        let parsed = packet::parse(bytes);
        match peer.state {
            PeerState::Closing => {
                self.drop_packet(from, DropReason::SenderClosing);
                None
            }
            PeerState::Pending {
                deadline,
                local_done,
                remote_done,
            } => match parsed {
                // §3.4 step 6: `07 00` = the client completed.
                Ok(Packet::AuthComplete) => {
                    if remote_done {
                        self.drop_packet(from, DropReason::AuthUnexpected);
                    } else {
                        self.set_pending(from, deadline, local_done, true);
                    }
                    None
                }
                // §3.4 step 4: auth data for the callback.
                Ok(Packet::AuthData(data)) => Some(Work::AuthData(from, data)),
                // §3.4 step 2: only AUTH while pending.
                Ok(_) | Err(ParseError::ShortRelay | ParseError::UnknownSys(_)) => {
                    self.drop_packet(from, DropReason::NotAuthenticated);
                    None
                }
                Err(e) => {
                    self.drop_packet(from, parse_drop_reason(e));
                    None
                }
            },
            PeerState::Admitted => match parsed {
                Err(e) => {
                    self.drop_packet(from, parse_drop_reason(e));
                    None
                }
                // §3.4 step 8: AUTH after admission is ignored / rejected.
                Ok(Packet::AuthComplete | Packet::AuthData(_)) => {
                    self.drop_packet(from, DropReason::AuthUnexpected);
                    None
                }
                // §6 item 6: ADD/DEL from a client are invalid.
                Ok(Packet::AddPeer(_) | Packet::DelPeer(_)) => {
                    self.drop_packet(from, DropReason::SysFromClient);
                    None
                }
                Ok(Packet::Relay { target, inner }) => self.relay(from, target, inner, bytes),
                Ok(Packet::Direct(_)) => self.command(from, bytes, false),
            },
        }
    }

    /// A RELAY from admitted `from` (spec/scene-multiplayer.md §4.2).
    fn relay<'a>(
        &mut self,
        from: i32,
        target: i32,
        inner: &'a [u8],
        bytes: &Bytes,
    ) -> Option<Work<'a>> {
        if !self.cfg.server_relay {
            self.drop_packet(from, DropReason::RelayDisabled);
            return None;
        }
        if inner
            .first()
            .is_some_and(|&b| packet::Command::from_byte(b) == packet::Command::Sys)
        {
            // §2: sys packets nested in a RELAY are invalid.
            self.drop_packet(from, DropReason::NestedSys);
            return None;
        }
        let mut receivers = Vec::new();
        let Some(process) = relay_receivers(from, target, &self.admitted, &mut receivers) else {
            self.drop_packet(from, DropReason::UnknownTarget);
            return None;
        };
        if !receivers.is_empty() {
            // §4.2: only the id changes, destination → source.
            match packet::rewrite_relay_source(bytes.clone(), from) {
                Some(out) => {
                    self.stats.relayed += receivers.len() as u64;
                    self.send_many(receivers, out);
                }
                None => self.drop_packet(from, DropReason::ShortRelay),
            }
        }
        if process {
            // §4.2: for T == 0 and T == -X the server processes it as from S.
            self.command(from, inner, true)
        } else {
            None
        }
    }

    /// Commands 0–6 for peer 1 (scene_multiplayer.cpp `_process_packet`).
    fn command<'a>(&mut self, from: i32, bytes: &'a [u8], via_relay: bool) -> Option<Work<'a>> {
        let msg = match packet::parse_command(bytes) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(peer = from, error = %e, "malformed packet");
                self.drop_packet(from, DropReason::Malformed);
                return None;
            }
        };
        match msg {
            Message::RemoteCall(call) => self.remote_call(from, &call, via_relay).map(Work::Rpc),
            Message::SimplifyPath(sp) => {
                self.simplify_path(from, &sp);
                None
            }
            Message::ConfirmPath(cp) => {
                self.confirm_path(from, cp);
                None
            }
            Message::Raw(data) => {
                self.events.push_back(Event::Raw {
                    from,
                    data: Bytes::copy_from_slice(data),
                    broadcast: via_relay,
                });
                None
            }
            Message::Replication(..) => {
                self.drop_packet(from, DropReason::Replication);
                None
            }
        }
    }

    fn node_by_path(&self, path: &str) -> Option<usize> {
        let normal = self.cfg.relative_path(path);
        self.nodes.iter().position(|n| n.path == normal)
    }

    /// A path offer (scene_cache_interface.cpp `process_simplify_path`).
    fn simplify_path(&mut self, from: i32, sp: &SimplifyPath<'_>) {
        let Some(node) = self.node_by_path(sp.path) else {
            // The engine fails without an answer when the node is not found.
            tracing::debug!(
                peer = from,
                path = sp.path,
                "path offer for an unknown node"
            );
            self.drop_packet(from, DropReason::UnknownNode);
            return;
        };
        let valid = sp.checksum == self.nodes[node].checksum;
        let Some(peer) = self.peers.get_mut(&from) else {
            return;
        };
        if peer.recv.contains_key(&sp.cache_id) {
            self.drop_packet(from, DropReason::DuplicateCacheId);
            return;
        }
        // Cached even when the checksum differs, as the engine does.
        peer.recv.insert(sp.cache_id, node);
        if !valid {
            self.stats.checksum_mismatches += 1;
            tracing::warn!(
                peer = from,
                path = sp.path,
                "RPC checksum mismatch: the client's RPC names for this node differ from the registered ones"
            );
        }
        let answer = ConfirmPath {
            valid,
            cache_id: sp.cache_id,
        };
        self.send(from, Bytes::copy_from_slice(&answer.encode()));
    }

    /// A client's answer to our offer (scene_cache_interface.cpp
    /// `process_confirm_path`): the path counts as confirmed even when the
    /// checksum differed, as in the engine (which logs it).
    fn confirm_path(&mut self, from: i32, cp: ConfirmPath) {
        let node = self
            .nodes
            .iter()
            .position(|n| n.cache_id == Some(cp.cache_id));
        let Some(confirmed) = node.and_then(|n| self.nodes[n].offered.get_mut(&from)) else {
            self.drop_packet(from, DropReason::UnexpectedConfirm);
            return;
        };
        *confirmed = true;
        if !cp.valid {
            self.stats.checksum_mismatches += 1;
            tracing::warn!(peer = from, "client reports an RPC checksum mismatch");
        }
    }

    /// Resolves and checks an RPC for peer 1 (scene_rpc_interface.cpp
    /// `process_rpc`), stricter than the engine: undecodable arguments,
    /// trailing bytes and calls the handler's signature rejects are dropped.
    fn remote_call(
        &mut self,
        from: i32,
        call: &RemoteCall<'_>,
        via_relay: bool,
    ) -> Option<Dispatch> {
        let node = match call.node {
            NodeRef::Cached(id) => self.peers.get(&from).and_then(|p| p.recv.get(&id)).copied(),
            NodeRef::Path(p) => self.node_by_path(p),
        };
        let Some(node) = node else {
            let reason = match call.node {
                NodeRef::Cached(_) => DropReason::UnknownCacheId,
                NodeRef::Path(_) => DropReason::UnknownNode,
            };
            self.drop_packet(from, reason);
            return None;
        };
        let method = usize::from(call.method);
        let Some(slot) = self.nodes[node].signatures.get(method) else {
            self.drop_packet(from, DropReason::UnknownMethod);
            return None;
        };
        let Some(signature) = slot else {
            self.drop_packet(from, DropReason::NotCallable);
            return None;
        };
        let mut args = match self.cfg.codec.decode_args(call.raw, call.count, call.args) {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(peer = from, error = %e, "undecodable RPC arguments");
                self.drop_packet(from, DropReason::BadArgs);
                return None;
            }
        };
        if let Err(m) = signature.apply(&mut args) {
            let reason = match m {
                Mismatch::Count => DropReason::WrongArgCount,
                Mismatch::Type => DropReason::WrongArgType,
            };
            self.drop_packet(from, reason);
            return None;
        }
        Some(Dispatch {
            from,
            node,
            method,
            args,
            via_relay,
        })
    }

    // --- sending ---

    /// The admitted peers a Godot-style target names: `id > 0` that peer,
    /// `0` everyone, `-id` everyone but `id`.
    pub(crate) fn resolve(&self, target: i32) -> Result<Vec<i32>, SendError> {
        match packet::Target::from_id(target) {
            packet::Target::Peer(id) => {
                if self.is_admitted(id) {
                    Ok(alloc::vec![id])
                } else {
                    Err(SendError::UnknownPeer(id))
                }
            }
            packet::Target::Broadcast => Ok(self.admitted.clone()),
            packet::Target::AllExcept(x) => Ok(self
                .admitted
                .iter()
                .copied()
                .filter(|&p| Some(p) != x)
                .collect()),
        }
    }

    /// `send_bytes(data, target)`: a RAW packet.
    pub(crate) fn send_bytes(&mut self, target: i32, data: &[u8]) -> Result<(), SendError> {
        if data.is_empty() {
            // SceneMultiplayer::send_bytes: "Trying to send an empty raw packet."
            return Err(SendError::Empty);
        }
        let to = self.resolve(target)?;
        self.send_many(to, Bytes::from(packet::raw(data)));
        Ok(())
    }

    /// Calls `method` of `node` on each of `peers` (admitted ones only): the
    /// path is offered to peers that have not seen it, and sent inline until
    /// they confirm (scene_rpc_interface.cpp `_send_rpc`, one packet per peer).
    pub(crate) fn rpc_peers(
        &mut self,
        peers: &[i32],
        node: NodeId,
        method: &str,
        args: &[Variant],
    ) -> Result<(), RpcError> {
        let meta = self.nodes.get(node.0).ok_or(RpcError::UnknownNode)?;
        let method_id = meta
            .methods
            .iter()
            .position(|m| m == method)
            .ok_or(RpcError::UnknownMethod)?;
        let method_id = u16::try_from(method_id).map_err(|_| RpcError::UnknownMethod)?;
        if let Some(&p) = peers.iter().find(|&&p| !self.is_admitted(p)) {
            return Err(RpcError::Send(SendError::UnknownPeer(p)));
        }
        if peers.is_empty() {
            return Ok(());
        }
        let encoded = self.cfg.codec.encode_args(args).map_err(RpcError::Encode)?;
        let cache_id = match self.nodes[node.0].cache_id {
            Some(id) => id,
            None => {
                let id = self.next_cache_id;
                self.next_cache_id = self.next_cache_id.wrapping_add(1).max(1);
                self.nodes[node.0].cache_id = Some(id);
                id
            }
        };
        let meta = &mut self.nodes[node.0];
        let (mut new, mut unconfirmed, mut confirmed) = (Vec::new(), Vec::new(), Vec::new());
        for &p in peers {
            match meta.offered.get(&p) {
                None => {
                    meta.offered.insert(p, false);
                    new.push(p);
                    unconfirmed.push(p);
                }
                Some(false) => unconfirmed.push(p),
                Some(true) => confirmed.push(p),
            }
        }
        let path = meta.path.clone();
        if !new.is_empty() {
            let offer = SimplifyPath {
                checksum: &meta.checksum,
                cache_id,
                path: &path,
            }
            .encode();
            self.send_many(new, Bytes::from(offer));
        }
        if !unconfirmed.is_empty() {
            let call = RemoteCall::new(NodeRef::Path(&path), method_id, &encoded).encode();
            self.send_many(unconfirmed, Bytes::from(call));
        }
        if !confirmed.is_empty() {
            let call = RemoteCall::new(NodeRef::Cached(cache_id), method_id, &encoded).encode();
            self.send_many(confirmed, Bytes::from(call));
        }
        Ok(())
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
