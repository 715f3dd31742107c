//! The cluster's room logic without NATS: several nodes, each one room
//! (a [`Relay`] with its [`StreamOut`] and [`Sources`]), and a test bus that
//! carries each node's outbox to the others in order — or loses messages,
//! or goes down, on purpose. What every client receives is checked against
//! the single-node guarantees: ADD_PEER(X) before any packet from X, every
//! packet exactly once and in order while nothing is lost, and a DEL_PEER
//! between the last packet before and the first after a possible loss.

use std::collections::HashMap;
use std::sync::Arc;

use async_nats::Subject;
use bytes::Bytes;
use tokio::sync::mpsc;
use wsmp_core::Timestamp;

use super::stream::{Reply, Sources, StreamOut};
use super::wire::{self, Body};
use super::{id_space, node_of, Link};
use crate::protocol;
use crate::relay::{Out, Relay, RelayConfig};
use crate::stats::Counters;

const T0: Timestamp = Timestamp::ZERO;

/// Everything a client received, in order.
type Inboxes = HashMap<i32, Vec<Vec<u8>>>;

struct SimOut<'a> {
    inboxes: &'a mut Inboxes,
    stream: &'a mut StreamOut,
    now: Timestamp,
}

impl Out for SimOut<'_> {
    fn send(&mut self, to: &[i32], bytes: &Bytes) {
        for t in to {
            self.inboxes.entry(*t).or_default().push(bytes.to_vec());
        }
    }
    fn disconnect(&mut self, _peer: i32, _code: u16, _reason: &'static str) {}
    fn take_overflowed(&mut self, _into: &mut Vec<i32>) {}
    fn admit_member(&mut self, _peer: i32) -> bool {
        true
    }
    fn check_auth(&mut self, _peer: i32, _data: &[u8]) -> Result<(), &'static str> {
        Ok(())
    }
    fn announce_joined(&mut self, peer: i32) {
        self.stream.publish(self.now, &Body::Add(peer));
    }
    fn announce_left(&mut self, peer: i32) {
        self.stream.publish(self.now, &Body::Del(peer));
    }
    fn forward(&mut self, from: i32, target: i32, packet: &Bytes) {
        let body = Body::Data {
            from,
            target,
            packet: packet.clone(),
        };
        self.stream.publish(self.now, &body);
    }
}

struct Node {
    link: Arc<Link>,
    rx: mpsc::Receiver<(Subject, Bytes)>,
    relay: Relay,
    stream: StreamOut,
    sources: Sources,
    next_local: i32,
    /// Receives from the bus (its room's subscription is active).
    subscribed: bool,
}

struct Sim {
    nodes: Vec<Node>,
    inboxes: Inboxes,
}

impl Sim {
    fn new(n: u16) -> Sim {
        let nodes = (1..=n)
            .map(|i| {
                let (link, rx) = Link::new(i, 1000 + u64::from(i));
                link.set_up(true);
                let mut stream = StreamOut::new(link.clone(), Subject::from(format!("t.r.=.{i}")));
                stream.set_ready();
                stream.open(T0, &[]);
                Node {
                    sources: Sources::new(link.clone()),
                    relay: Relay::new(Arc::new(RelayConfig::default()), Counters::standalone()),
                    stream,
                    rx,
                    link,
                    next_local: id_space(i).first(),
                    subscribed: true,
                }
            })
            .collect();
        Sim {
            nodes,
            inboxes: HashMap::new(),
        }
    }

    fn at(&mut self, node: usize) -> (&mut Relay, SimOut<'_>, &mut Sources) {
        let n = &mut self.nodes[node];
        let out = SimOut {
            inboxes: &mut self.inboxes,
            stream: &mut n.stream,
            now: T0,
        };
        (&mut n.relay, out, &mut n.sources)
    }

    /// A client joins node `node`; returns its id.
    fn join(&mut self, node: usize) -> i32 {
        let id = self.nodes[node].next_local;
        self.nodes[node].next_local += 1;
        let (relay, mut out, _) = self.at(node);
        relay.peer_joined(T0, id, true, &mut out);
        self.inboxes.entry(id).or_default();
        id
    }

    fn leave(&mut self, id: i32) {
        let node = self.node_index(id);
        let (relay, mut out, _) = self.at(node);
        relay.peer_left(T0, id, &mut out);
    }

    fn node_index(&self, id: i32) -> usize {
        usize::from(node_of(id)) - 1
    }

    /// Client `from` sends RAW `text` to `target` through the relay.
    fn send(&mut self, from: i32, target: i32, text: &[u8]) {
        let node = self.node_index(from);
        let mut inner = vec![3u8];
        inner.extend_from_slice(text);
        let packet = protocol::relay(target, &inner);
        let (relay, mut out, _) = self.at(node);
        relay.packet(T0, from, packet, &mut out);
    }

    /// Delivers every queued bus message, in order, until the bus is quiet.
    /// `lose(node, seq)` drops a message on its way to one receiver.
    fn deliver_with(&mut self, mut lose: impl FnMut(u16, &wire::StreamPos, &Body) -> bool) {
        loop {
            let mut any = false;
            for i in 0..self.nodes.len() {
                while let Ok((_, payload)) = self.nodes[i].rx.try_recv() {
                    any = true;
                    if !self.nodes[i].link.is_up() {
                        continue;
                    }
                    let (pos, body) = wire::decode(&payload).expect("well-formed");
                    for j in 0..self.nodes.len() {
                        if j == i || !self.nodes[j].link.is_up() || !self.nodes[j].subscribed {
                            continue;
                        }
                        if lose(self.nodes[j].link.node, &pos, &body) {
                            continue;
                        }
                        let (relay, mut out, sources) = self.at(j);
                        let reply = sources.apply(T0, pos, body.clone(), relay, &mut out);
                        let members = relay.admitted().to_vec();
                        match reply {
                            Reply::None => {}
                            Reply::Snapshot => out.stream.snapshot(T0, &members, None),
                            Reply::Ask(n) => out.stream.snapshot(T0, &members, Some(n)),
                        }
                    }
                }
            }
            if !any {
                return;
            }
        }
    }

    fn deliver(&mut self) {
        self.deliver_with(|_, _, _| false);
    }

    /// Takes what client `id` received so far.
    fn take(&mut self, id: i32) -> Vec<Vec<u8>> {
        std::mem::take(self.inboxes.entry(id).or_default())
    }
}

/// Two nodes with one member each (`a` on node 1, `b` on node 2), both
/// announced to each other; their inboxes emptied.
fn pair() -> (Sim, i32, i32) {
    let mut sim = Sim::new(2);
    sim.deliver();
    let a = sim.join(0);
    let b = sim.join(1);
    sim.deliver();
    sim.take(a);
    sim.take(b);
    (sim, a, b)
}

fn add(id: i32) -> Vec<u8> {
    protocol::add_peer(id).to_vec()
}

fn del(id: i32) -> Vec<u8> {
    protocol::del_peer(id).to_vec()
}

fn got(from: i32, text: &[u8]) -> Vec<u8> {
    let mut inner = vec![3u8];
    inner.extend_from_slice(text);
    protocol::relay(from, &inner).to_vec()
}

fn sorted(mut v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    v.sort();
    v
}

#[test]
fn id_ranges_of_nodes_are_disjoint_and_name_their_node() {
    for n in [1u16, 2, 512, 1023] {
        let s = id_space(n);
        assert!(s.first() >= 2);
        assert_eq!(node_of(s.first()), n);
        assert_eq!(node_of(s.last()), n);
        assert_eq!(s.len(), 1 << 21);
        if n > 1 {
            assert_eq!(id_space(n - 1).last() + 1, s.first());
        }
    }
    assert_eq!(id_space(1023).last(), i32::MAX);
}

#[test]
fn members_of_other_nodes_look_like_local_ones() {
    let mut sim = Sim::new(3);
    sim.deliver();
    let a = sim.join(0);
    sim.deliver();
    let b = sim.join(1);
    sim.deliver();
    let c = sim.join(2);
    sim.deliver();
    assert_eq!(sim.take(a), vec![add(b), add(c)]);
    assert_eq!(sim.take(b), vec![add(a), add(c)]);
    assert_eq!(sorted(sim.take(c)), sorted(vec![add(a), add(b)]));
    // RELAY to one, to all, to all but one: each copy exactly once.
    sim.send(a, c, b"one");
    sim.send(b, 0, b"all");
    sim.send(c, -a, b"but-a");
    sim.send(a, a, b"echo");
    sim.deliver();
    assert_eq!(
        sorted(sim.take(a)),
        sorted(vec![got(b, b"all"), got(a, b"echo")])
    );
    assert_eq!(sim.take(b), vec![got(c, b"but-a")]);
    assert_eq!(sim.take(c), vec![got(a, b"one"), got(b, b"all")]);
    // A packet crosses the bus once per packet, not once per remote member.
    sim.send(a, 0, b"x");
    assert_eq!(sim.nodes[0].rx.len(), 1);
    sim.deliver();
    // Leave: DEL_PEER everywhere.
    sim.leave(b);
    sim.deliver();
    assert_eq!(sim.take(a), vec![del(b)]);
    assert_eq!(sim.take(c), vec![got(a, b"x"), del(b)]);
    // To a remote member that left meanwhile: dropped at its node, nothing else.
    sim.send(a, b, b"late");
    sim.deliver();
    assert!(sim.take(c).is_empty());
}

#[test]
fn add_peer_precedes_packets_of_a_newcomer_on_another_node() {
    let mut sim = Sim::new(2);
    sim.deliver();
    let a = sim.join(0);
    sim.deliver();
    sim.take(a);
    // b joins and sends at once, before the bus carried anything.
    let b = sim.join(1);
    sim.send(b, 0, b"first");
    sim.send(b, a, b"second");
    sim.deliver();
    assert_eq!(
        sim.take(a),
        vec![add(b), got(b, b"first"), got(b, b"second")]
    );
}

#[test]
fn a_node_joining_late_gets_a_snapshot_and_gives_its_own() {
    let mut sim = Sim::new(2);
    // Node 2's room is not subscribed yet and its stream not open.
    while sim.nodes[1].rx.try_recv().is_ok() {}
    sim.nodes[1].stream.break_stream();
    sim.nodes[1].subscribed = false;
    let a = sim.join(0);
    let a2 = sim.join(0);
    sim.deliver();
    assert_eq!(sim.take(a2), vec![add(a)]);
    let b = sim.join(1);
    sim.deliver();
    assert!(sim.take(b).is_empty(), "nothing before the snapshot");
    // Now node 2 subscribes and opens: snapshot, answers, both sides announced.
    sim.nodes[1].subscribed = true;
    let members = sim.nodes[1].relay.admitted().to_vec();
    sim.nodes[1].stream.open(T0, &members);
    sim.deliver();
    assert_eq!(sim.take(b), vec![add(a), add(a2)]);
    assert_eq!(sim.take(a), vec![add(a2), add(b)]);
    sim.send(b, 0, b"hi");
    sim.deliver();
    assert_eq!(sim.take(a2), vec![add(b), got(b, b"hi")]);
}

#[test]
fn a_lost_message_removes_the_senders_node_members_then_recovers() {
    let (mut sim, a, b) = pair();
    sim.send(a, b, b"1");
    sim.send(a, b, b"2");
    sim.send(a, b, b"3");
    // Lose "2" on its way to node 2.
    let mut lost = false;
    sim.deliver_with(|_, _, body| {
        let hit = !lost && matches!(body, Body::Data { packet, .. } if packet.ends_with(b"2"));
        lost |= hit;
        hit
    });
    assert!(lost);
    // b saw "1", then a left (the hole), then a again (resynchronised):
    // never "3" without a DEL_PEER before it.
    assert_eq!(sim.take(b), vec![got(a, b"1"), del(a), add(a)]);
    assert_eq!(
        sim.nodes[1]
            .link
            .counters
            .peers_lost
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    sim.send(a, b, b"4");
    sim.deliver();
    assert_eq!(sim.take(b), vec![got(a, b"4")]);
}

#[test]
fn a_full_outbox_breaks_the_stream_and_a_new_epoch_repairs_it() {
    let (mut sim, a, b) = pair();
    sim.send(a, b, b"1");
    // The outbox refuses the next one: the stream breaks.
    sim.nodes[0].stream.break_for_test();
    sim.send(a, b, b"2");
    assert!(!sim.nodes[0].stream.is_live());
    sim.deliver();
    let members = sim.nodes[0].relay.admitted().to_vec();
    sim.nodes[0].stream.open(T0, &members);
    sim.send(a, b, b"3");
    sim.deliver();
    assert_eq!(
        sim.take(b),
        vec![got(a, b"1"), del(a), add(a), got(a, b"3")]
    );
}

#[test]
fn bus_down_removes_remote_members_and_bus_up_brings_them_back() {
    let mut sim = Sim::new(3);
    sim.deliver();
    let a = sim.join(0);
    let b = sim.join(1);
    let c = sim.join(2);
    sim.deliver();
    for id in [a, b, c] {
        sim.take(id);
    }
    // Node 1 loses the bus.
    sim.nodes[0].link.set_up(false);
    {
        let (relay, mut out, sources) = sim.at(0);
        sources.forget_all(T0, relay, &mut out);
        out.stream.break_stream();
    }
    assert_eq!(sorted(sim.take(a)), sorted(vec![del(b), del(c)]));
    // The others notice node 1's silence (its heartbeats stop).
    for j in [1, 2] {
        let (relay, mut out, sources) = sim.at(j);
        sources.forget_node(T0, 1, None, relay, &mut out);
    }
    assert_eq!(sim.take(b), vec![del(a)]);
    assert_eq!(sim.take(c), vec![del(a)]);
    // Back up: a new epoch, snapshots both ways.
    sim.nodes[0].link.set_up(true);
    let members = sim.nodes[0].relay.admitted().to_vec();
    sim.nodes[0].stream.open(T0, &members);
    sim.deliver();
    assert_eq!(sorted(sim.take(a)), sorted(vec![add(b), add(c)]));
    assert_eq!(sim.take(b), vec![add(a)]);
    assert_eq!(sim.take(c), vec![add(a)]);
    sim.send(b, 0, b"again");
    sim.deliver();
    assert_eq!(sim.take(a), vec![got(b, b"again")]);
}

#[test]
fn random_traffic_is_exactly_once_in_order_with_add_before_data() {
    // A small deterministic pseudo-random schedule over 3 nodes.
    let mut sim = Sim::new(3);
    sim.deliver();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut live: Vec<i32> = Vec::new();
    // Payloads grow, so "in order, never twice" is "strictly increasing".
    let mut counter = 0u32;
    for _ in 0..600 {
        match rnd(10) {
            0 | 1 if live.len() < 12 => {
                let id = sim.join(rnd(3) as usize);
                live.push(id);
            }
            2 if live.len() > 2 => {
                let id = live.remove(rnd(live.len() as u64) as usize);
                sim.leave(id);
            }
            _ if !live.is_empty() => {
                let from = live[rnd(live.len() as u64) as usize];
                let target = match rnd(3) {
                    0 => live[rnd(live.len() as u64) as usize],
                    1 => 0,
                    _ => -live[rnd(live.len() as u64) as usize],
                };
                counter += 1;
                sim.send(from, target, &counter.to_le_bytes());
            }
            _ => {}
        }
        if rnd(4) == 0 {
            sim.deliver();
        }
    }
    sim.deliver();
    // Every client's stream: ADD before data, data in increasing order per
    // sender, no duplicate, DEL only after ADD.
    let mut packets = 0;
    for (client, msgs) in &sim.inboxes {
        let mut known: HashMap<i32, bool> = HashMap::new();
        let mut last: HashMap<i32, u32> = HashMap::new();
        for m in msgs {
            let id = i32::from_le_bytes([m[2], m[3], m[4], m[5]]);
            match m[1] {
                1 => assert!(
                    !known.insert(id, true).unwrap_or(false),
                    "{client}: ADD {id} twice"
                ),
                2 => assert!(
                    known.insert(id, false).unwrap_or(false),
                    "{client}: DEL {id} before ADD"
                ),
                3 => {
                    assert!(
                        known.get(&id).copied().unwrap_or(false) || id == *client,
                        "{client}: packet from {id} before its ADD"
                    );
                    let n = u32::from_le_bytes([m[7], m[8], m[9], m[10]]);
                    let prev = last.insert(id, n).unwrap_or(0);
                    packets += 1;
                    assert!(n > prev, "{client}: {n} after {prev} from {id}");
                }
                _ => panic!("unexpected packet {m:?}"),
            }
        }
    }
    assert!(packets > 300, "{packets} packets delivered");
    // And nothing was lost: no resynchronisation happened.
    for n in &sim.nodes {
        assert_eq!(
            n.link
                .counters
                .peers_lost
                .load(std::sync::atomic::Ordering::Relaxed),
            0
        );
    }
}

#[test]
fn a_failed_publish_of_the_last_message_is_told_without_waiting_for_the_next() {
    let (mut sim, a, b) = pair();
    sim.send(a, b, b"1");
    sim.send(a, b, b"2");
    // "2" fails to publish (lost on the way to every receiver) and `a` says
    // nothing more: without the report, `b` would never learn of the loss.
    sim.deliver_with(
        |_, _, body| matches!(body, Body::Data { packet, .. } if packet.ends_with(b"2")),
    );
    sim.nodes[0].stream.publish_failed(T0);
    assert!(!sim.nodes[0].stream.is_live());
    let due = sim.nodes[0]
        .stream
        .poll_timeout()
        .expect("a retry is armed");
    let members = sim.nodes[0].relay.admitted().to_vec();
    sim.nodes[0].stream.handle_timeout(due, &members);
    assert!(sim.nodes[0].stream.is_live());
    sim.deliver();
    assert_eq!(sim.take(b), vec![got(a, b"1"), del(a), add(a)]);
    sim.send(a, b, b"3");
    sim.deliver();
    assert_eq!(sim.take(b), vec![got(a, b"3")]);
}

#[test]
fn a_nats_server_with_a_small_max_payload_is_refused() {
    let cfg = super::ClusterConfig {
        servers: vec!["nats://127.0.0.1:4222".into()],
        node_name: "n".into(),
        peer_timeout: std::time::Duration::from_secs(5),
        name: "c".into(),
        room_max_peers: 64,
        max_packet: 65_535,
    };
    let need = wire::max_encoded_len(65_535, 64);
    assert_eq!(need, wire::HEADER_LEN + 8 + 65_535);
    assert!(super::check_max_payload(need, &cfg).is_ok());
    let Err(err) = super::check_max_payload(need - 1, &cfg) else {
        panic!("a max_payload one byte short is accepted");
    };
    assert!(err.contains("max_payload is 65570 bytes"), "{err}");
    assert!(err.contains("--inbound-buffer-size 65535"), "{err}");
    // A huge room: the snapshot is the largest message.
    let big = super::ClusterConfig {
        room_max_peers: 100_000,
        max_packet: 100,
        ..cfg
    };
    assert_eq!(
        wire::max_encoded_len(100, 100_000),
        wire::HEADER_LEN + 7 + 400_000
    );
    assert!(super::check_max_payload(1 << 20, &big).is_ok());
}
