//! Fuzz driver for the relay's per-room logic (`wsmp_relay::Relay`, issue 10
//! item 7): random peers join, leave, authenticate and send random packets,
//! time advances, receivers' queues fill up, the room fills up — all through
//! a recording [`Out`] that checks, at every call and after every operation,
//! what a Godot client would rely on:
//!
//! - no panic;
//! - deliveries only to peers that are in the room and not being
//!   disconnected, never twice to one peer in one send;
//! - game traffic (ADD_PEER, DEL_PEER, RELAY) only to peers the relay
//!   admitted; a peer gets ADD_PEER(S) before any packet from S, DEL_PEER(S)
//!   only after ADD_PEER(S), no second ADD_PEER(S) (spec/scene-multiplayer.md
//!   §3.2, §3.3, §4.2, §6 items 2 and 7);
//! - after every operation each admitted peer knows exactly the other
//!   admitted peers (ADD_PEER minus DEL_PEER);
//! - a receiver whose queue overflowed is disconnected within the operation;
//!   disconnect codes are ones the engine accepts (never 1012–1014,
//!   spec/websocket-peer.md §2.7), each peer disconnected at most once;
//! - counters consistent with what was fed and sent.
//!
//! Shared by the libFuzzer target (`fuzz_targets/relay_packets.rs`) and by
//! `relay/tests/fuzz_corpus.rs`, which replays the committed corpus on
//! stable (this file is included there with `#[path]`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use wsmp_core::Timestamp;
use wsmp_relay::relay::Out;
use wsmp_relay::stats::Counters;
use wsmp_relay::{Relay, RelayConfig};

/// Target names, as used for `fuzz/corpus/<name>/`.
pub const TARGETS: &[&str] = &["relay_packets"];

/// Runs the driver called `name` on `data`.
pub fn run(name: &str, data: &[u8]) {
    match name {
        "relay_packets" => relay_packets(data),
        other => panic!("unknown fuzz target {other}"),
    }
}

/// The token the recorder accepts.
const TOKEN: &[u8] = b"tok";
/// Peer ids drawn from a small range so that joins, leaves and packets meet.
const IDS: i32 = 12;
/// Most operations per input (bounds the work of one execution).
const MAX_OPS: usize = 4096;

/// Reads the input a byte at a time; zeros once it is exhausted.
struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Input<'_> {
    fn done(&self) -> bool {
        self.pos >= self.data.len()
    }
    fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    fn i32(&mut self) -> i32 {
        i32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn bytes(&mut self, n: usize) -> &[u8] {
        let start = self.pos.min(self.data.len());
        let end = (self.pos + n).min(self.data.len());
        self.pos += n;
        &self.data[start..end]
    }
}

/// What the recorder knows about one peer in the room.
#[derive(Debug, Default)]
struct PeerModel {
    /// Peers this one got ADD_PEER for (and no DEL_PEER since).
    knows: BTreeSet<i32>,
    /// The relay asked to disconnect it.
    closing: bool,
}

/// The recording [`Out`]: checks every call against the model.
#[derive(Debug, Default)]
struct Recorder {
    peers: BTreeMap<i32, PeerModel>,
    /// Receivers whose queue is full: sends to them fail.
    full: BTreeSet<i32>,
    overflowed: Vec<i32>,
    /// Overflowed during the current operation (must be disconnected by its end).
    overflowed_this_op: BTreeSet<i32>,
    /// Receivers of game traffic during the current operation (must be
    /// admitted by its end, or disconnected).
    game_receivers: BTreeSet<i32>,
    room_full: bool,
    /// Deliveries asked for (every receiver of every send) and their bytes.
    deliveries: u64,
    delivered_bytes: u64,
}

fn sys_id(bytes: &[u8]) -> i32 {
    i32::from_le_bytes([bytes[2], bytes[3], bytes[4], bytes[5]])
}

impl Out for Recorder {
    fn send(&mut self, to: &[i32], bytes: &Bytes) {
        assert!(!to.is_empty(), "empty receiver list");
        let unique: BTreeSet<i32> = to.iter().copied().collect();
        assert_eq!(
            unique.len(),
            to.len(),
            "a receiver twice in one send: {to:?}"
        );
        self.deliveries += to.len() as u64;
        self.delivered_bytes += (to.len() * bytes.len()) as u64;
        let game = bytes.len() >= 6 && bytes[0] == 0x07 && (1..=3).contains(&bytes[1]);
        for &t in to {
            let Some(model) = self.peers.get(&t) else {
                panic!("send to {t}, which is not in the room");
            };
            assert!(!model.closing, "send to {t}, which is being disconnected");
            if game {
                self.game_receivers.insert(t);
            }
            if self.full.contains(&t) {
                // The host could not queue it: the relay must disconnect `t`.
                self.overflowed.push(t);
                self.overflowed_this_op.insert(t);
                continue;
            }
            if !game {
                continue;
            }
            let s = sys_id(bytes);
            let sub = bytes[1];
            let model = self.peers.get_mut(&t).expect("checked above");
            match sub {
                // spec/scene-multiplayer.md §3.2: ADD_PEER of another admitted peer, once.
                1 => {
                    assert_eq!(bytes.len(), 6, "ADD_PEER of {} bytes", bytes.len());
                    assert_ne!(s, t, "ADD_PEER of the receiver itself");
                    assert!(model.knows.insert(s), "second ADD_PEER({s}) to {t}");
                }
                // spec/scene-multiplayer.md §3.3: DEL_PEER only after ADD_PEER.
                2 => {
                    assert_eq!(bytes.len(), 6, "DEL_PEER of {} bytes", bytes.len());
                    assert!(
                        model.knows.remove(&s),
                        "DEL_PEER({s}) to {t} without ADD_PEER({s})"
                    );
                }
                // spec/scene-multiplayer.md §4.2: a relayed packet from a known peer (or itself).
                _ => {
                    assert!(bytes.len() > 6, "relayed packet without payload");
                    assert!(
                        s == t || model.knows.contains(&s),
                        "packet from {s} to {t} before ADD_PEER({s})"
                    );
                }
            }
        }
    }

    fn disconnect(&mut self, peer: i32, code: u16, _reason: &'static str) {
        // spec/websocket-peer.md §2.7: the engine answers 1012–1014 with 1002.
        assert!(
            code == 1000 || code == 1008,
            "close code {code} for {peer} (relay uses 1000 / 1008 only)"
        );
        let Some(model) = self.peers.get_mut(&peer) else {
            panic!("disconnect of {peer}, which is not in the room");
        };
        assert!(!model.closing, "{peer} disconnected twice");
        model.closing = true;
    }

    fn take_overflowed(&mut self, into: &mut Vec<i32>) {
        into.append(&mut self.overflowed);
    }

    fn admit_member(&mut self, _peer: i32) -> bool {
        !self.room_full
    }

    fn check_auth(&mut self, peer: i32, data: &[u8]) -> Result<(), &'static str> {
        assert!(self.peers.contains_key(&peer), "auth check for a stranger");
        if data == TOKEN {
            Ok(())
        } else {
            Err("wrong token")
        }
    }
}

/// The packet bytes a client might send, chosen by the input.
fn packet(inp: &mut Input<'_>, present: &[i32]) -> Vec<u8> {
    let pick = |inp: &mut Input<'_>| -> i32 {
        let b = inp.u8();
        match (b % 8, present.is_empty()) {
            (0, _) => 0,
            (1, _) => -1,
            (2, _) => 1,
            (3, false) => -present[usize::from(b / 8) % present.len()],
            (4, _) => 2 + i32::from(b / 8) % IDS,
            (5, _) => inp.i32(),
            (_, false) => present[usize::from(b / 8) % present.len()],
            (_, true) => 2,
        }
    };
    let kind = inp.u8();
    match kind % 10 {
        0 => [&[0x07, 0x00][..], TOKEN].concat(),
        1 => {
            let n = usize::from(inp.u8() % 8);
            [&[0x07, 0x00][..], inp.bytes(n)].concat()
        }
        2 => vec![0x07, 0x00],
        3..=5 => {
            let target = pick(inp);
            let mut p = vec![0x07, 0x03];
            p.extend_from_slice(&target.to_le_bytes());
            match inp.u8() % 4 {
                0 => {}
                1 => p.extend_from_slice(&[0x07, 0x01, 2, 0, 0, 0]),
                _ => {
                    let n = usize::from(inp.u8() % 16);
                    p.push(0x03);
                    p.extend_from_slice(inp.bytes(n));
                }
            }
            p
        }
        6 => {
            let mut p = vec![0x07, 1 + inp.u8() % 2];
            p.extend_from_slice(&pick(inp).to_le_bytes());
            p
        }
        7 => {
            // SIMPLIFY_PATH (command 1) and other commands for peer 1.
            let cmd = inp.u8() % 7;
            let n = usize::from(inp.u8() % 12);
            [&[cmd][..], inp.bytes(n)].concat()
        }
        _ => {
            let n = usize::from(inp.u8() % 24);
            inp.bytes(n).to_vec()
        }
    }
}

/// One input = a configuration byte, then operations until the input ends.
pub fn relay_packets(data: &[u8]) {
    let mut inp = Input { data, pos: 0 };
    let c = inp.u8();
    let cfg = RelayConfig {
        auth_required: c & 1 != 0,
        auth_timeout: if c & 2 != 0 {
            Duration::ZERO
        } else {
            Duration::from_millis(u64::from(c >> 2) * 20 + 1)
        },
        answer_simplify_path: c & 0x80 == 0,
    };
    let auth_required = cfg.auth_required;
    let counters = Counters::standalone();
    let mut relay = Relay::new(Arc::new(cfg), counters.clone());
    let mut out = Recorder::default();
    let mut now = Timestamp::ZERO;
    let (mut packets_in, mut bytes_in, mut joins) = (0u64, 0u64, 0u64);
    let mut ops = 0;
    while !inp.done() && ops < MAX_OPS {
        ops += 1;
        let present: Vec<i32> = out.peers.keys().copied().collect();
        let op = inp.u8();
        let id = 2 + i32::from(inp.u8()) % IDS;
        match op % 8 {
            // A peer completes the upgrade (pre-authenticated one time in four).
            0 | 1 => {
                // Not the entry API: `relay` borrows `out` mutably in both arms.
                #[allow(clippy::map_entry)]
                if out.peers.contains_key(&id) {
                    // Ids are unique while a peer is in the room: the relay ignores it.
                    relay.peer_joined(now, id, false, &mut out);
                } else {
                    let authenticated = !auth_required || op & 0x30 == 0;
                    out.peers.insert(id, PeerModel::default());
                    joins += 1;
                    relay.peer_joined(now, id, authenticated, &mut out);
                }
            }
            // The transport reports it gone (closed by either side).
            2 => {
                let known = out.peers.remove(&id).is_some();
                out.full.remove(&id);
                relay.peer_left(now, id, &mut out);
                if !known {
                    continue;
                }
            }
            // A packet from a peer (or from a stranger, one time in 16).
            3..=5 => {
                let from = if op & 0xF0 == 0xF0 { inp.i32() } else { id };
                let bytes = Bytes::from(packet(&mut inp, &present));
                packets_in += 1;
                bytes_in += bytes.len() as u64;
                relay.packet(now, from, bytes, &mut out);
            }
            // Time passes; the relay's timers run when due.
            6 => {
                now = now.saturating_add(Duration::from_millis(u64::from(inp.u8()) * 10));
                if relay.poll_timeout().is_some_and(|t| t <= now) || op & 0x10 != 0 {
                    relay.handle_timeout(now, &mut out);
                }
                assert!(
                    relay.poll_timeout().is_none_or(|t| t > now),
                    "a timer due after handle_timeout"
                );
            }
            // A receiver's queue fills up or drains; the room fills up or frees a slot.
            _ => {
                if op & 0x10 != 0 {
                    out.room_full = !out.room_full;
                } else if !out.full.remove(&id) {
                    out.full.insert(id);
                }
                continue;
            }
        }
        check(&relay, &mut out);
        // The counters are sums over 16 stripes, costly to read after every
        // operation: checked every 16th and at the end (they only grow, so a
        // miscount still shows unless a later one cancels it exactly).
        if ops % 16 == 0 {
            check_counters(&counters, &out, packets_in, bytes_in, joins);
        }
    }
    check_counters(&counters, &out, packets_in, bytes_in, joins);
    // Everyone leaves: the room ends empty and nobody is told about a ghost.
    for id in out.peers.keys().copied().collect::<Vec<_>>() {
        out.peers.remove(&id);
        relay.peer_left(now, id, &mut out);
        check(&relay, &mut out);
    }
    check_counters(&counters, &out, packets_in, bytes_in, joins);
    assert_eq!(relay.peer_count(), 0);
    assert!(relay.admitted().is_empty());
    assert_eq!(relay.poll_timeout(), None, "a timer for nobody");
}

/// The invariants that hold between operations.
fn check(relay: &Relay, out: &mut Recorder) {
    assert!(out.overflowed.is_empty(), "overflow not taken by the relay");
    for peer in std::mem::take(&mut out.overflowed_this_op) {
        if let Some(model) = out.peers.get(&peer) {
            assert!(model.closing, "{peer} overflowed but was not disconnected");
        }
    }
    let admitted: BTreeSet<i32> = relay.admitted().iter().copied().collect();
    assert_eq!(admitted.len(), relay.admitted().len(), "admitted twice");
    for peer in std::mem::take(&mut out.game_receivers) {
        if let Some(model) = out.peers.get(&peer) {
            assert!(
                admitted.contains(&peer) || model.closing,
                "game traffic to {peer}, which is not admitted"
            );
        }
    }
    assert_eq!(relay.peer_count(), out.peers.len(), "peer count");
    for &a in &admitted {
        let model = out
            .peers
            .get(&a)
            .unwrap_or_else(|| panic!("admitted {a} is not in the room"));
        assert!(!model.closing, "{a} admitted while being disconnected");
        assert!(relay.is_admitted(a));
        let mut expected = admitted.clone();
        expected.remove(&a);
        assert_eq!(model.knows, expected, "what {a} was told about the room");
    }
}

/// The relay's counters agree with what was fed and what the recorder saw.
fn check_counters(counters: &Counters, out: &Recorder, packets_in: u64, bytes_in: u64, joins: u64) {
    let stats = counters.set().snapshot();
    assert_eq!(stats.messages_in, packets_in, "messages_in");
    assert_eq!(stats.bytes_in, bytes_in, "bytes_in");
    assert_eq!(stats.messages_out, out.deliveries, "messages_out");
    assert_eq!(stats.bytes_out, out.delivered_bytes, "bytes_out");
    assert_eq!(stats.joined_total, joins, "joined_total");
    assert!(
        stats.dropped_total() <= packets_in,
        "more drops than packets"
    );
}
