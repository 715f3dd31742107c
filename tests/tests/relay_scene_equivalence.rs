//! wsmp-scene relays client-to-client traffic exactly like wsmp-relay (issue
//! 13): the same packets in, the same bytes out to the same peers in the same
//! order, the same drops. Random sequences of RELAY / SYS packets and peers
//! leaving are fed to both state machines (no auth, one room).
#![allow(missing_docs, clippy::unwrap_used)]

use bytes::Bytes;
use proptest::prelude::*;
use std::sync::Arc;
use wsmp_core::Timestamp;
use wsmp_relay::relay::Out;
use wsmp_relay::stats::Counters;
use wsmp_relay::{Relay, RelayConfig};
use wsmp_scene::multiplayer::{Action as SceneAction, Config, SceneMultiplayer};

const PEERS: [i32; 4] = [2, 3, 4, 5];

#[derive(Debug, Clone)]
enum Step {
    Packet(i32, Vec<u8>),
    Leave(i32),
}

fn target() -> impl Strategy<Value = i32> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(-1),
        Just(i32::MIN),
        Just(99),
        prop::sample::select(PEERS.to_vec()),
        prop::sample::select(PEERS.to_vec()).prop_map(|p| -p),
    ]
}

/// Inner packets the server itself has nothing to answer for: RAW and
/// replication commands (plus SYS, which both drop).
fn inner() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 1..6).prop_map(|d| [&[3u8][..], &d].concat()),
        Just(vec![5, 5, 0, 0, 0]),
        Just(vec![0x16, 1, 0, 0, 0]),
        Just(vec![4; 18]),
        Just(vec![7, 1, 2, 0, 0, 0]),
        Just(vec![]),
    ]
}

fn packet() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => (target(), inner()).prop_map(|(t, i)| [&[7u8, 3][..], &t.to_le_bytes(), &i].concat()),
        1 => Just(vec![7]),
        1 => Just(vec![7, 0]),
        1 => Just(vec![7, 0, 1]),
        1 => Just(vec![7, 1, 2, 0, 0, 0]),
        1 => Just(vec![7, 2, 2, 0, 0]),
        1 => Just(vec![7, 9]),
        1 => Just(vec![7, 3, 2, 0, 0, 0]),
        1 => Just(vec![]),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        12 => (prop::sample::select(vec![2, 3, 4, 5, 77]), packet()).prop_map(|(f, p)| Step::Packet(f, p)),
        1 => prop::sample::select(PEERS.to_vec()).prop_map(Step::Leave),
    ]
}

/// The relay's output as (receiver, bytes), in order (a disconnect as its
/// close code's bytes).
#[derive(Default)]
struct Recorder(Vec<(i32, Vec<u8>)>);

impl Out for Recorder {
    fn send(&mut self, to: &[i32], bytes: &Bytes) {
        self.0.extend(to.iter().map(|&p| (p, bytes.to_vec())));
    }
    fn disconnect(&mut self, peer: i32, code: u16, _reason: &'static str) {
        self.0.push((peer, code.to_le_bytes().to_vec()));
    }
    fn take_overflowed(&mut self, _into: &mut Vec<i32>) {}
    fn admit_member(&mut self, _peer: i32) -> bool {
        true
    }
    fn check_auth(&mut self, _peer: i32, _data: &[u8]) -> Result<(), &'static str> {
        Err("no auth in this test")
    }
}

fn relay_out(r: &mut Recorder) -> Vec<(i32, Vec<u8>)> {
    std::mem::take(&mut r.0)
}

fn scene_out(s: &mut SceneMultiplayer<()>) -> Vec<(i32, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(a) = s.poll_action() {
        match a {
            SceneAction::Send { to, bytes } => out.push((to, bytes.to_vec())),
            SceneAction::SendMany { to, bytes } => {
                out.extend(to.into_iter().map(|p| (p, bytes.to_vec())))
            }
            SceneAction::Disconnect { peer, code, .. } => {
                out.push((peer, code.to_le_bytes().to_vec()))
            }
        }
    }
    while s.poll_event().is_some() {}
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn same_bytes_same_receivers_same_drops(steps in prop::collection::vec(step(), 1..40)) {
        let now = Timestamp::ZERO;
        let counters = Counters::standalone();
        let mut relay = Relay::new(Arc::new(RelayConfig::default()), counters.clone());
        let mut rec = Recorder::default();
        let mut scene = SceneMultiplayer::new(Config::default(), ());
        for p in PEERS {
            relay.peer_joined(now, p, false, &mut rec);
            scene.peer_connected(now, p);
            prop_assert_eq!(relay_out(&mut rec), scene_out(&mut scene));
        }
        let mut left = Vec::new();
        for s in steps {
            match s {
                Step::Packet(from, bytes) => {
                    let from = if left.contains(&from) { 77 } else { from };
                    relay.packet(now, from, Bytes::from(bytes.clone()), &mut rec);
                    scene.packet(now, from, Bytes::from(bytes));
                }
                Step::Leave(p) => {
                    relay.peer_left(now, p, &mut rec);
                    scene.peer_disconnected(now, p);
                    left.push(p);
                }
            }
            prop_assert_eq!(relay_out(&mut rec), scene_out(&mut scene));
        }
        // Every drop the relay counted, the scene counted under the same name.
        for (name, n) in &counters.set().snapshot().dropped {
            let ours: u64 = scene
                .stats()
                .dropped
                .iter()
                .filter(|(r, _)| r.as_str() == *name)
                .map(|(_, n)| *n)
                .sum();
            prop_assert_eq!(ours, *n, "drop reason {}", name);
        }
    }
}
