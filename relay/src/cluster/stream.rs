//! One room's share of the cluster, run inside the room's critical section:
//! the ordered stream this node publishes for the room ([`StreamOut`]) and
//! the streams of the other nodes it follows ([`Sources`]).
//!
//! # Streams
//!
//! Each node publishes everything about one room — its members joining and
//! leaving, and the packets they relay to members elsewhere — on one
//! subject, `<prefix>.r.<room>.<node>`, from one NATS connection: NATS keeps
//! that order. Messages carry `(incarnation, epoch, seq)`; an epoch always
//! opens with a SNAPSHOT (the node's members of the room at that point,
//! seq 0) and numbers every later message without a hole. A receiver
//! applies a stream only from a snapshot on, in sequence order:
//!
//! - the next number: applied (ADD_PEER / DEL_PEER / packet to local members);
//! - a hole (a message lost: slow consumer, reconnect): every member of that
//!   stream is announced gone (DEL_PEER) and counted, and the receiver asks
//!   the source for a new snapshot, which announces them again;
//! - a new epoch or incarnation: the same (the old stream ended with a
//!   possible loss, or the node restarted), then the snapshot is adopted;
//! - an older epoch: left over from before a reconnect, ignored.
//!
//! Because ADD(X) precedes X's packets in X's node's stream and the stream
//! is applied in order, every local client gets ADD_PEER(X) before any packet
//! from X — the single-node guarantee.
//!
//! # Publishing
//!
//! [`StreamOut`] numbers and encodes messages under the room's lock and puts
//! them in the node's bounded outbox (no await, no lock). When the outbox
//! is full the stream is *broken*: nothing more is published for the room
//! until a new epoch opens with a snapshot (retried from the room's timer),
//! so receivers see the members of this node leave and come back — never a
//! silent hole in a sender's packets.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::Subject;
use wsmp_core::Timestamp;

use super::wire::{self, Body, StreamPos};
use super::Link;
use crate::relay::{Out, Relay};

/// How soon a broken stream is reopened (the outbox had no room).
const RETRY: Duration = Duration::from_millis(20);
/// How often a receiver asks an out-of-sync source for a snapshot.
const ASK_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutState {
    /// Nothing is published until a new epoch opens with a snapshot.
    Broken,
    /// Publishing epoch `epoch`; `next` is the next sequence number.
    Live { epoch: u64, next: u64 },
}

/// This node's stream for one room. See the [module docs](self).
#[derive(Debug)]
pub struct StreamOut {
    link: Arc<Link>,
    subject: Subject,
    state: OutState,
    /// The room's subscription is active (the first snapshot waits for it,
    /// so that the answers to it are not missed).
    ready: bool,
    retry_at: Option<Timestamp>,
}

impl StreamOut {
    pub(super) fn new(link: Arc<Link>, subject: Subject) -> StreamOut {
        StreamOut {
            link,
            subject,
            state: OutState::Broken,
            ready: false,
            retry_at: None,
        }
    }

    /// The subject this stream is published on.
    pub fn subject(&self) -> &Subject {
        &self.subject
    }

    /// Whether the node's bus is up.
    pub fn link_up(&self) -> bool {
        self.link.is_up()
    }

    /// Whether messages are being published.
    pub fn is_live(&self) -> bool {
        matches!(self.state, OutState::Live { .. })
    }

    fn push(&mut self, now: Timestamp, epoch: u64, seq: u64, body: &Body) -> bool {
        let pos = StreamPos {
            node: self.link.node,
            incarnation: self.link.incarnation,
            epoch,
            seq,
        };
        if self
            .link
            .outbox
            .push(&self.subject, wire::encode(pos, body))
        {
            return true;
        }
        // A message that cannot be queued would be a hole in the stream:
        // break it (receivers will see the members leave and come back).
        self.link.counters.outbox_full();
        tracing::warn!(subject = %self.subject, "cluster outbox full; room stream broken");
        self.break_for_retry(now);
        false
    }

    /// Publishes one message on the live stream (nothing when broken).
    pub fn publish(&mut self, now: Timestamp, body: &Body) {
        if let OutState::Live { epoch, next } = self.state {
            if self.push(now, epoch, next, body) {
                self.state = OutState::Live {
                    epoch,
                    next: next + 1,
                };
            }
        }
    }

    /// Opens a new epoch with a snapshot of `members` that asks every other
    /// node for theirs. Only once the subscription is active and the bus is
    /// up; on failure the stream stays broken and is retried.
    pub fn open(&mut self, now: Timestamp, members: &[i32]) {
        if !self.ready || !self.link.is_up() {
            self.state = OutState::Broken;
            return;
        }
        let epoch = self.link.next_epoch();
        let body = Body::Snapshot {
            want_replies: true,
            reply_from: 0,
            members: members.to_vec(),
        };
        if self.push(now, epoch, 0, &body) {
            self.state = OutState::Live { epoch, next: 1 };
            self.retry_at = None;
        }
    }

    /// Publishes a snapshot mid-stream (an answer, or a question to one node).
    pub fn snapshot(&mut self, now: Timestamp, members: &[i32], ask: Option<u16>) {
        self.publish(
            now,
            &Body::Snapshot {
                want_replies: ask.is_some(),
                reply_from: ask.unwrap_or(0),
                members: members.to_vec(),
            },
        );
    }

    /// Breaks the stream as a full outbox does (tests).
    #[cfg(test)]
    pub(crate) fn break_for_test(&mut self) {
        self.state = OutState::Broken;
    }

    /// The subscription became active.
    pub fn set_ready(&mut self) {
        self.ready = true;
    }

    /// A message of this stream failed to publish: a hole the receivers
    /// would notice only at the next message. Broken as by a full outbox.
    pub fn publish_failed(&mut self, now: Timestamp) {
        self.break_for_retry(now);
    }

    /// Breaks the stream and reopens it with a new epoch after [`RETRY`]
    /// (not at once: a bus that refuses everything must not make the room
    /// spin).
    fn break_for_retry(&mut self, now: Timestamp) {
        self.state = OutState::Broken;
        self.retry_at = Some(now.saturating_add(RETRY));
    }

    /// The bus is down: stop publishing until [`open`](Self::open).
    pub fn break_stream(&mut self) {
        self.state = OutState::Broken;
        self.retry_at = None;
    }

    /// When the broken stream should be reopened.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.retry_at
    }

    /// Reopens a stream broken by a full outbox, when due.
    pub fn handle_timeout(&mut self, now: Timestamp, members: &[i32]) {
        if self.retry_at.is_some_and(|t| t <= now) {
            self.retry_at = None;
            if !self.is_live() && self.ready && self.link.is_up() {
                self.open(now, members);
                if !self.is_live() && self.retry_at.is_none() {
                    self.retry_at = Some(now.saturating_add(RETRY));
                }
            }
        }
    }
}

/// What the room should publish after applying an inbound message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// Nothing.
    None,
    /// A snapshot of its members (a node asked for it).
    Snapshot,
    /// A snapshot asking node `0` for its own (its stream is out of sync).
    Ask(u16),
}

#[derive(Debug)]
struct Source {
    incarnation: u64,
    epoch: u64,
    next: u64,
    synced: bool,
    members: Vec<i32>,
    asked_at: Option<Timestamp>,
}

/// The streams of other nodes this room follows. See the [module docs](self).
#[derive(Debug)]
pub struct Sources {
    link: Arc<Link>,
    map: HashMap<u16, Source>,
}

impl Sources {
    pub(super) fn new(link: Arc<Link>) -> Sources {
        Sources {
            link,
            map: HashMap::new(),
        }
    }

    /// Remote members known to this room.
    pub fn remote_count(&self) -> usize {
        self.map.values().map(|s| s.members.len()).sum()
    }

    /// Announces every member of `node`'s stream gone (a possible loss:
    /// counted) and forgets the stream, if it is of `incarnation` (any when
    /// `None`).
    pub fn forget_node(
        &mut self,
        now: Timestamp,
        node: u16,
        incarnation: Option<u64>,
        relay: &mut Relay,
        out: &mut dyn Out,
    ) {
        let matches = self
            .map
            .get(&node)
            .is_some_and(|s| incarnation.is_none_or(|i| i == s.incarnation));
        if matches {
            if let Some(mut s) = self.map.remove(&node) {
                self.drop_members(now, &mut s, relay, out);
            }
        }
    }

    /// [`forget_node`](Self::forget_node) for every node (the bus is down).
    pub fn forget_all(&mut self, now: Timestamp, relay: &mut Relay, out: &mut dyn Out) {
        let nodes: Vec<u16> = self.map.keys().copied().collect();
        for node in nodes {
            self.forget_node(now, node, None, relay, out);
        }
    }

    /// Every stream may have lost messages (a slow consumer): its members
    /// are announced gone and counted, and it waits for a new snapshot.
    pub fn desync_all(&mut self, now: Timestamp, relay: &mut Relay, out: &mut dyn Out) -> bool {
        let mut any = false;
        let mut map = std::mem::take(&mut self.map);
        for s in map.values_mut() {
            if s.synced {
                self.drop_members(now, s, relay, out);
                s.synced = false;
                any = true;
            }
        }
        self.map = map;
        any
    }

    fn drop_members(&self, now: Timestamp, s: &mut Source, relay: &mut Relay, out: &mut dyn Out) {
        for p in std::mem::take(&mut s.members) {
            self.link.counters.peer_lost();
            relay.remote_left(now, p, out);
        }
    }

    fn adopt(
        &self,
        now: Timestamp,
        s: &mut Source,
        members: Vec<i32>,
        relay: &mut Relay,
        out: &mut dyn Out,
    ) {
        // A snapshot is the whole truth about its node's members.
        for &p in &s.members {
            if !members.contains(&p) {
                self.link.counters.peer_lost();
                relay.remote_left(now, p, out);
            }
        }
        for &p in &members {
            if !s.members.contains(&p) {
                relay.remote_joined(now, p, out);
            }
        }
        s.members = members;
    }

    /// Applies one message of another node's stream (in arrival order).
    pub fn apply(
        &mut self,
        now: Timestamp,
        pos: StreamPos,
        body: Body,
        relay: &mut Relay,
        out: &mut dyn Out,
    ) -> Reply {
        if pos.node == self.link.node {
            return Reply::None;
        }
        let mut s = self.map.remove(&pos.node).unwrap_or(Source {
            incarnation: pos.incarnation,
            epoch: pos.epoch,
            next: 0,
            synced: false,
            members: Vec::new(),
            asked_at: None,
        });
        let reply = self.step(now, &mut s, pos, body, relay, out);
        self.map.insert(pos.node, s);
        reply
    }

    fn step(
        &mut self,
        now: Timestamp,
        s: &mut Source,
        pos: StreamPos,
        body: Body,
        relay: &mut Relay,
        out: &mut dyn Out,
    ) -> Reply {
        let same = s.incarnation == pos.incarnation;
        if same && pos.epoch < s.epoch {
            // Left over from an epoch already replaced.
            return Reply::None;
        }
        if !same || pos.epoch > s.epoch {
            // A new stream: the old one ended without a clean goodbye.
            if s.synced || !s.members.is_empty() {
                self.link.counters.resync();
            }
            self.drop_members(now, s, relay, out);
            *s = Source {
                incarnation: pos.incarnation,
                epoch: pos.epoch,
                next: 0,
                synced: false,
                members: Vec::new(),
                asked_at: s.asked_at,
            };
        } else if s.synced {
            if pos.seq < s.next {
                return Reply::None;
            }
            if pos.seq > s.next {
                // A hole: messages of this stream were lost.
                tracing::warn!(
                    node = pos.node,
                    expected = s.next,
                    got = pos.seq,
                    "cluster stream gap; its peers are removed until resynchronised"
                );
                self.link.counters.resync();
                self.drop_members(now, s, relay, out);
                s.synced = false;
            }
        }
        let wants_reply = |want: bool, from: u16| want && (from == 0 || from == self.link.node);
        if !s.synced {
            return match body {
                Body::Snapshot {
                    want_replies,
                    reply_from,
                    members,
                } => {
                    self.adopt(now, s, members, relay, out);
                    s.synced = true;
                    s.next = pos.seq + 1;
                    s.asked_at = None;
                    if wants_reply(want_replies, reply_from) {
                        Reply::Snapshot
                    } else {
                        Reply::None
                    }
                }
                _ => {
                    let due = s
                        .asked_at
                        .is_none_or(|t| now >= t.saturating_add(ASK_INTERVAL));
                    if due {
                        s.asked_at = Some(now);
                        Reply::Ask(pos.node)
                    } else {
                        Reply::None
                    }
                }
            };
        }
        s.next = pos.seq + 1;
        match body {
            Body::Add(p) => {
                if !s.members.contains(&p) {
                    s.members.push(p);
                    relay.remote_joined(now, p, out);
                }
                Reply::None
            }
            Body::Del(p) => {
                if let Some(i) = s.members.iter().position(|&m| m == p) {
                    s.members.remove(i);
                    relay.remote_left(now, p, out);
                }
                Reply::None
            }
            Body::Data {
                from,
                target,
                packet,
            } => {
                if s.members.contains(&from) {
                    relay.remote_packet(now, from, target, packet, out);
                }
                Reply::None
            }
            Body::Snapshot {
                want_replies,
                reply_from,
                members,
            } => {
                if members != s.members {
                    self.adopt(now, s, members, relay, out);
                }
                if wants_reply(want_replies, reply_from) {
                    Reply::Snapshot
                } else {
                    Reply::None
                }
            }
        }
    }
}
