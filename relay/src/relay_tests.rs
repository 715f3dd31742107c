use super::*;
use crate::rooms::RoomName;
use crate::stats::Stats;
use proptest::prelude::*;
use std::collections::HashSet;

const T0: Timestamp = Timestamp::ZERO;

/// What the relay asked for, recorded in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    Send {
        to: i32,
        bytes: Bytes,
    },
    SendMany {
        to: Vec<i32>,
        bytes: Bytes,
    },
    Disconnect {
        peer: i32,
        code: u16,
        reason: &'static str,
    },
}

/// An [`Out`] that records; peers in `full` have full queues; member slots
/// are granted unless `room_full`; auth data must equal `token`.
#[derive(Debug, Default)]
struct Recorder {
    actions: Vec<Action>,
    full: HashSet<i32>,
    overflowed: Vec<i32>,
    room_full: bool,
    token: Vec<u8>,
}

impl Out for Recorder {
    fn send(&mut self, to: &[i32], bytes: &Bytes) {
        let ok: Vec<i32> = to
            .iter()
            .copied()
            .filter(|t| !self.full.contains(t))
            .collect();
        self.overflowed
            .extend(to.iter().copied().filter(|t| self.full.contains(t)));
        match ok.len() {
            0 => {}
            1 => self.actions.push(Action::Send {
                to: ok[0],
                bytes: bytes.clone(),
            }),
            _ => self.actions.push(Action::SendMany {
                to: ok,
                bytes: bytes.clone(),
            }),
        }
    }
    fn disconnect(&mut self, peer: i32, code: u16, reason: &'static str) {
        self.actions.push(Action::Disconnect { peer, code, reason });
    }
    fn take_overflowed(&mut self, into: &mut Vec<i32>) {
        into.append(&mut self.overflowed);
    }
    fn admit_member(&mut self, _peer: i32) -> bool {
        !self.room_full
    }
    fn check_auth(&mut self, _peer: i32, data: &[u8]) -> Result<(), &'static str> {
        if constant_time_eq(data, &self.token) {
            Ok(())
        } else {
            Err("wrong token")
        }
    }
}

/// Several rooms, each its own [`Relay`] (as the server runs them), and one
/// recorder; counters shared as in the server.
struct Harness {
    cfg: Arc<RelayConfig>,
    counters: Counters,
    rooms: HashMap<RoomName, Relay>,
    room_of: HashMap<i32, RoomName>,
    out: Recorder,
}

impl Harness {
    fn with(cfg: RelayConfig) -> Harness {
        Harness {
            cfg: Arc::new(cfg),
            counters: Counters::standalone(),
            rooms: HashMap::new(),
            room_of: HashMap::new(),
            out: Recorder::default(),
        }
    }

    fn relay_of(&mut self, id: i32) -> Option<&mut Relay> {
        let room = self.room_of.get(&id)?;
        self.rooms.get_mut(room)
    }

    fn peer_joined(&mut self, now: Timestamp, id: i32, room: RoomName) {
        let (cfg, counters) = (self.cfg.clone(), self.counters.clone());
        self.room_of.insert(id, room.clone());
        let relay = self
            .rooms
            .entry(room)
            .or_insert_with(|| Relay::new(cfg, counters));
        relay.peer_joined(now, id, false, &mut self.out);
    }

    fn packet(&mut self, now: Timestamp, from: i32, bytes: Bytes) {
        let mut out = std::mem::take(&mut self.out);
        match self.relay_of(from) {
            Some(r) => r.packet(now, from, bytes, &mut out),
            // Unknown to every room: the default room's relay counts it.
            None => {
                let (cfg, counters) = (self.cfg.clone(), self.counters.clone());
                Relay::new(cfg, counters).packet(now, from, bytes, &mut out)
            }
        }
        self.out = out;
    }

    fn peer_left(&mut self, now: Timestamp, id: i32) {
        let mut out = std::mem::take(&mut self.out);
        if let Some(r) = self.relay_of(id) {
            r.peer_left(now, id, &mut out);
        }
        self.out = out;
    }

    fn handle_timeout(&mut self, now: Timestamp) {
        let mut out = std::mem::take(&mut self.out);
        for r in self.rooms.values_mut() {
            r.handle_timeout(now, &mut out);
        }
        self.out = out;
    }

    fn poll_timeout(&self) -> Option<Timestamp> {
        self.rooms.values().filter_map(Relay::poll_timeout).min()
    }

    fn is_admitted(&self, id: i32) -> bool {
        self.room_of
            .get(&id)
            .and_then(|room| self.rooms.get(room))
            .is_some_and(|r| r.is_admitted(id))
    }

    fn admitted_in(&self, room: &RoomName) -> &[i32] {
        self.rooms.get(room).map_or(&[], Relay::admitted)
    }

    fn stats(&self) -> Stats {
        self.counters.set().snapshot()
    }
}

fn room(path: &str) -> RoomName {
    RoomName::from_path(path).expect("room")
}

fn relay() -> Harness {
    Harness::with(RelayConfig::default())
}

fn auth_relay(token: &[u8]) -> Harness {
    let mut h = Harness::with(RelayConfig {
        auth_required: true,
        ..RelayConfig::default()
    });
    h.out.token = token.to_vec();
    h
}

fn drain(r: &mut Harness) -> Vec<Action> {
    std::mem::take(&mut r.out.actions)
}

/// Flattens actions into (receiver, bytes) deliveries in order; disconnects are skipped.
fn deliveries(actions: &[Action]) -> Vec<(i32, Vec<u8>)> {
    let mut out = Vec::new();
    for a in actions {
        match a {
            Action::Send { to, bytes } => out.push((*to, bytes.to_vec())),
            Action::SendMany { to, bytes } => {
                out.extend(to.iter().map(|t| (*t, bytes.to_vec())));
            }
            Action::Disconnect { .. } => {}
        }
    }
    out
}

fn join(r: &mut Harness, id: i32, path: &str) -> Vec<(i32, Vec<u8>)> {
    r.peer_joined(T0, id, room(path));
    deliveries(&drain(r))
}

fn send(r: &mut Harness, from: i32, bytes: &[u8]) -> Vec<(i32, Vec<u8>)> {
    r.packet(T0, from, Bytes::copy_from_slice(bytes));
    deliveries(&drain(r))
}

fn add(id: i32) -> Vec<u8> {
    protocol::add_peer(id).to_vec()
}

fn del(id: i32) -> Vec<u8> {
    protocol::del_peer(id).to_vec()
}

fn raw_relay(target: i32, text: &[u8]) -> Vec<u8> {
    let mut inner = vec![3u8];
    inner.extend_from_slice(text);
    protocol::relay(target, &inner).to_vec()
}

#[test]
fn lone_peer_receives_nothing() {
    let mut r = relay();
    assert_eq!(join(&mut r, 1000, "/"), vec![]);
    assert!(r.is_admitted(1000));
}

#[test]
fn spec_example_two_clients_join_and_one_leaves() {
    // spec/scene-multiplayer.md §3.5
    let mut r = relay();
    assert_eq!(join(&mut r, 1000, "/"), vec![]);
    assert_eq!(
        join(&mut r, 2000, "/"),
        vec![
            (1000, vec![0x07, 0x01, 0xD0, 0x07, 0x00, 0x00]),
            (2000, vec![0x07, 0x01, 0xE8, 0x03, 0x00, 0x00]),
        ]
    );
    r.peer_left(T0, 2000);
    assert_eq!(
        deliveries(&drain(&mut r)),
        vec![(1000, vec![0x07, 0x02, 0xD0, 0x07, 0x00, 0x00])]
    );
}

#[test]
fn three_peers_add_peer_fan_out() {
    let mut r = relay();
    join(&mut r, 2, "/");
    join(&mut r, 3, "/");
    let actions = {
        r.peer_joined(T0, 4, RoomName::default_room());
        drain(&mut r)
    };
    // ADD_PEER(4) once, shared, to both earlier peers; then ADD_PEER(2), ADD_PEER(3) to 4.
    assert_eq!(
        actions,
        vec![
            Action::SendMany {
                to: vec![2, 3],
                bytes: protocol::add_peer(4)
            },
            Action::Send {
                to: 4,
                bytes: protocol::add_peer(2)
            },
            Action::Send {
                to: 4,
                bytes: protocol::add_peer(3)
            },
        ]
    );
    assert_eq!(r.admitted_in(&RoomName::default_room()), &[2, 3, 4]);
}

#[test]
fn add_peer_precedes_relayed_packets_from_the_newcomer() {
    let mut r = relay();
    join(&mut r, 2, "/");
    join(&mut r, 3, "/");
    r.peer_joined(T0, 4, RoomName::default_room());
    r.packet(T0, 4, Bytes::from(raw_relay(0, b"hi")));
    let d = deliveries(&drain(&mut r));
    for receiver in [2, 3] {
        let mine: Vec<&Vec<u8>> = d
            .iter()
            .filter(|(to, _)| *to == receiver)
            .map(|(_, b)| b)
            .collect();
        assert_eq!(mine, vec![&add(4), &protocol::relay(4, b"\x03hi").to_vec()]);
    }
}

#[test]
fn del_peer_on_leave_goes_to_the_others_only() {
    let mut r = relay();
    join(&mut r, 2, "/");
    join(&mut r, 3, "/");
    join(&mut r, 4, "/");
    r.peer_left(T0, 3);
    assert_eq!(
        drain(&mut r),
        vec![Action::SendMany {
            to: vec![2, 4],
            bytes: protocol::del_peer(3)
        }]
    );
    assert!(!r.is_admitted(3));
    // Leaving twice, or an unknown peer leaving, does nothing.
    r.peer_left(T0, 3);
    r.peer_left(T0, 99);
    assert_eq!(drain(&mut r), vec![]);
    assert_eq!(r.admitted_in(&RoomName::default_room()), &[2, 4]);
}

#[test]
fn relay_to_one_peer_rewrites_destination_to_source() {
    // spec/scene-multiplayer.md §7: `07 03 2A 00 00 00 03 68 69` from 1234567 to 42.
    let mut r = relay();
    join(&mut r, 42, "/");
    join(&mut r, 1_234_567, "/");
    join(&mut r, 7, "/");
    let d = send(
        &mut r,
        1_234_567,
        &[0x07, 0x03, 0x2A, 0x00, 0x00, 0x00, 0x03, 0x68, 0x69],
    );
    assert_eq!(
        d,
        vec![(
            42,
            vec![0x07, 0x03, 0x87, 0xD6, 0x12, 0x00, 0x03, 0x68, 0x69]
        )]
    );
}

#[test]
fn relay_to_self_is_echoed() {
    let mut r = relay();
    join(&mut r, 5, "/");
    assert_eq!(
        send(&mut r, 5, &raw_relay(5, b"x")),
        vec![(5, raw_relay(5, b"x"))]
    );
}

#[test]
fn relay_to_everyone_excludes_the_sender() {
    let mut r = relay();
    for id in [2, 3, 4] {
        join(&mut r, id, "/");
    }
    r.packet(T0, 3, Bytes::from(raw_relay(0, b"hi")));
    assert_eq!(
        drain(&mut r),
        vec![Action::SendMany {
            to: vec![2, 4],
            bytes: Bytes::from(raw_relay(3, b"hi"))
        }]
    );
}

#[test]
fn relay_to_all_but_one() {
    let mut r = relay();
    for id in [2, 3, 4, 1_234_567] {
        join(&mut r, id, "/");
    }
    // spec/scene-multiplayer.md §7: target −1234567.
    let d = send(
        &mut r,
        2,
        &[0x07, 0x03, 0x79, 0x29, 0xED, 0xFF, 0x03, 0x68, 0x69],
    );
    assert_eq!(d, vec![(3, raw_relay(2, b"hi")), (4, raw_relay(2, b"hi"))]);
    // −1: everyone except the sender (1 is the relay itself).
    let d = send(&mut r, 2, &raw_relay(-1, b"hi"));
    let to: Vec<i32> = d.iter().map(|(t, _)| *t).collect();
    assert_eq!(to, vec![3, 4, 1_234_567]);
    // −sender: the same.
    let d = send(&mut r, 2, &raw_relay(-2, b"hi"));
    assert_eq!(d.len(), 3);
    // i32::MIN: nobody extra excluded.
    let d = send(&mut r, 2, &raw_relay(i32::MIN, b"hi"));
    assert_eq!(d.len(), 3);
}

#[test]
fn relay_to_unknown_server_or_other_room_is_dropped() {
    let mut r = relay();
    join(&mut r, 2, "/");
    join(&mut r, 3, "/room/other");
    assert_eq!(send(&mut r, 2, &raw_relay(3, b"hi")), vec![]);
    assert_eq!(send(&mut r, 2, &raw_relay(1, b"hi")), vec![]);
    assert_eq!(send(&mut r, 2, &raw_relay(77, b"hi")), vec![]);
    assert_eq!(r.stats().dropped(DropReason::UnknownTarget), 3);
}

#[test]
fn broadcast_with_nobody_else_is_not_a_drop() {
    let mut r = relay();
    join(&mut r, 2, "/");
    assert_eq!(send(&mut r, 2, &raw_relay(0, b"hi")), vec![]);
    assert_eq!(r.stats().dropped_total(), 0);
}

#[test]
fn rooms_are_isolated() {
    let mut r = relay();
    assert_eq!(join(&mut r, 2, "/room/a"), vec![]);
    assert_eq!(join(&mut r, 3, "/room/b"), vec![]);
    assert_eq!(join(&mut r, 4, "/"), vec![]);
    assert_eq!(
        join(&mut r, 5, "/room/a?x=1"),
        vec![(2, add(5)), (5, add(2))]
    );
    assert_eq!(
        send(&mut r, 5, &raw_relay(0, b"hi")),
        vec![(2, raw_relay(5, b"hi"))]
    );
    assert_eq!(send(&mut r, 3, &raw_relay(-5, b"hi")), vec![]);
    r.peer_left(T0, 4);
    assert_eq!(drain(&mut r), vec![]);
    r.peer_left(T0, 2);
    assert_eq!(deliveries(&drain(&mut r)), vec![(5, del(2))]);
    assert_eq!(r.admitted_in(&room("/room/a")), &[5]);
    assert_eq!(r.admitted_in(&room("/room/b")), &[3]);
}

#[test]
fn invalid_and_duplicate_ids_are_ignored() {
    let mut r = relay();
    r.peer_joined(T0, 1, RoomName::default_room());
    r.peer_joined(T0, 0, RoomName::default_room());
    r.peer_joined(T0, -5, RoomName::default_room());
    join(&mut r, 2, "/");
    join(&mut r, 2, "/");
    assert_eq!(drain(&mut r), vec![]);
    assert_eq!(r.admitted_in(&RoomName::default_room()), &[2]);
    assert_eq!(r.stats().joined_total, 1);
}

#[test]
fn drop_counters() {
    let mut r = relay();
    join(&mut r, 2, "/");
    join(&mut r, 3, "/");
    let cases: [(&[u8], DropReason); 12] = [
        (&[], DropReason::Empty),
        (&[0x07], DropReason::ShortSys),
        (&[0x07, 0x01, 3, 0, 0, 0], DropReason::SysFromClient),
        (&[0x07, 0x02, 3, 0, 0, 0], DropReason::SysFromClient),
        (&[0x07, 0x02, 3], DropReason::ShortSys),
        (&[0x07, 0x09], DropReason::UnknownSys),
        (&[0x07, 0x03, 3, 0, 0, 0], DropReason::ShortRelay),
        (
            &[0x07, 0x03, 3, 0, 0, 0, 0x07, 0x01, 2, 0, 0, 0],
            DropReason::NestedSys,
        ),
        (&[0x07, 0x03, 0, 0, 0, 0, 0x17], DropReason::NestedSys),
        (&[0x03, b'h', b'i'], DropReason::ToServer),
        (&[0x07, 0x00], DropReason::AuthUnexpected),
        (&[0x07, 0x00, b'x'], DropReason::AuthUnexpected),
    ];
    for (bytes, reason) in cases {
        let before = r.stats().dropped(reason);
        assert_eq!(send(&mut r, 2, bytes), vec![], "{bytes:02x?}");
        assert_eq!(r.stats().dropped(reason), before + 1, "{bytes:02x?}");
    }
    // Commands 0–6 direct to the server are all dropped.
    for cmd in [0u8, 2, 4, 5, 6, 0x80, 0x16] {
        assert_eq!(send(&mut r, 2, &[cmd, 1, 2, 3, 4, 5]), vec![]);
    }
    assert_eq!(send(&mut r, 99, &raw_relay(2, b"hi")), vec![]);
    assert_eq!(r.stats().dropped(DropReason::UnknownSender), 1);
    assert_eq!(r.stats().dropped(DropReason::ToServer), 8);
    assert_eq!(r.stats().dropped_total(), 12 + 7 + 1);
    assert_eq!(r.stats().messages_in, 12 + 7 + 1);
}

fn simplify_path(cache_id: u32) -> Vec<u8> {
    let mut p = vec![0x01u8];
    p.extend_from_slice(&[b'0'; 32]);
    p.push(0);
    p.extend_from_slice(&cache_id.to_le_bytes());
    p.extend_from_slice(b"Main/Player\0");
    p
}

#[test]
fn simplify_path_is_confirmed_when_enabled() {
    let mut r = relay();
    join(&mut r, 2, "/");
    assert_eq!(
        send(&mut r, 2, &simplify_path(1)),
        vec![(2, vec![0x02, 0x01, 0x01, 0x00, 0x00, 0x00])]
    );
    // Too short: dropped.
    assert_eq!(send(&mut r, 2, &simplify_path(1)[..37]), vec![]);
    assert_eq!(r.stats().dropped(DropReason::ToServer), 1);

    let mut r = Harness::with(RelayConfig {
        answer_simplify_path: false,
        ..RelayConfig::default()
    });
    join(&mut r, 2, "/");
    assert_eq!(send(&mut r, 2, &simplify_path(1)), vec![]);
    assert_eq!(r.stats().dropped(DropReason::ToServer), 1);
}

#[test]
fn auth_accepted_client_completes_after_relay() {
    let mut r = auth_relay(b"secret");
    join(&mut r, 2, "/");
    assert!(!r.is_admitted(2));
    // A pending peer gets nothing; a second one neither (no ADD_PEER between pending peers).
    assert_eq!(join(&mut r, 3, "/"), vec![]);
    // Client 2 sends its token: the relay completes at once, without waiting.
    assert_eq!(
        send(&mut r, 2, b"\x07\x00secret"),
        vec![(2, vec![0x07, 0x00])]
    );
    assert!(!r.is_admitted(2));
    // Then the client's completion admits it (alone in the room: no ADD_PEER).
    assert_eq!(send(&mut r, 2, &[0x07, 0x00]), vec![]);
    assert!(r.is_admitted(2));
    assert!(!r.is_admitted(3));
    // Client 3 completes first, then sends its token: completion goes out before ADD_PEERs.
    assert_eq!(send(&mut r, 3, &[0x07, 0x00]), vec![]);
    assert_eq!(
        send(&mut r, 3, b"\x07\x00secret"),
        vec![(3, vec![0x07, 0x00]), (2, add(3)), (3, add(2))]
    );
    assert!(r.is_admitted(3));
    assert_eq!(r.stats().auth_ok, 2);
    assert_eq!(r.poll_timeout(), None);
    // Now relaying works, and stray completions are ignored.
    assert_eq!(
        send(&mut r, 2, &raw_relay(3, b"hi")),
        vec![(3, raw_relay(2, b"hi"))]
    );
    assert_eq!(send(&mut r, 2, &[0x07, 0x00]), vec![]);
    assert_eq!(r.stats().dropped(DropReason::AuthUnexpected), 1);
}

#[test]
fn pending_peer_may_only_send_auth() {
    let mut r = auth_relay(b"t");
    join(&mut r, 2, "/");
    assert_eq!(send(&mut r, 2, &raw_relay(0, b"hi")), vec![]);
    assert_eq!(send(&mut r, 2, &[0x03, b'x']), vec![]);
    assert_eq!(send(&mut r, 2, &[0x07, 0x09]), vec![]);
    assert_eq!(r.stats().dropped(DropReason::NotAuthenticated), 3);
    // A pending peer leaving produces no DEL_PEER and clears its timer.
    r.peer_left(T0, 2);
    assert_eq!(drain(&mut r), vec![]);
    assert_eq!(r.poll_timeout(), None);
}

#[test]
fn auth_rejected_wrong_token() {
    let mut r = auth_relay(b"secret");
    join(&mut r, 2, "/");
    r.packet(T0, 2, Bytes::from_static(b"\x07\x00wrong!"));
    assert_eq!(
        drain(&mut r),
        vec![Action::Disconnect {
            peer: 2,
            code: CLOSE_POLICY,
            reason: "authentication failed"
        }]
    );
    assert_eq!(r.stats().auth_failed, 1);
    assert_eq!(r.poll_timeout(), None);
    assert_eq!(send(&mut r, 2, b"\x07\x00secret"), vec![]);
    assert_eq!(r.stats().dropped(DropReason::SenderClosing), 1);
    r.peer_left(T0, 2);
    assert_eq!(drain(&mut r), vec![]);
    // A prefix of the token is wrong too.
    join(&mut r, 3, "/");
    r.packet(T0, 3, Bytes::from_static(b"\x07\x00secre"));
    assert!(matches!(
        drain(&mut r)[..],
        [Action::Disconnect { peer: 3, .. }]
    ));
}

#[test]
fn auth_timed_out() {
    let mut r = auth_relay(b"secret");
    r.peer_joined(Timestamp::from_millis(100), 2, RoomName::default_room());
    r.peer_joined(Timestamp::from_millis(200), 3, RoomName::default_room());
    assert_eq!(r.poll_timeout(), Some(Timestamp::from_millis(3100)));
    r.handle_timeout(Timestamp::from_millis(3099));
    assert_eq!(drain(&mut r), vec![]);
    // 3 sends its token in time but never completes.
    assert_eq!(
        send(&mut r, 3, b"\x07\x00secret"),
        vec![(3, vec![0x07, 0x00])]
    );
    r.handle_timeout(Timestamp::from_millis(3100));
    assert_eq!(
        drain(&mut r),
        vec![Action::Disconnect {
            peer: 2,
            code: CLOSE_NORMAL,
            reason: "authentication timeout"
        }]
    );
    assert_eq!(r.poll_timeout(), Some(Timestamp::from_millis(3200)));
    r.handle_timeout(Timestamp::from_millis(10_000));
    assert!(matches!(
        drain(&mut r)[..],
        [Action::Disconnect { peer: 3, .. }]
    ));
    assert_eq!(r.stats().auth_timed_out, 2);
    assert_eq!(r.poll_timeout(), None);
}

#[test]
fn auth_timeout_zero_means_no_timeout() {
    let mut r = Harness::with(RelayConfig {
        auth_required: true,
        auth_timeout: Duration::ZERO,
        ..RelayConfig::default()
    });
    join(&mut r, 2, "/");
    assert_eq!(r.poll_timeout(), None);
    r.handle_timeout(Timestamp::MAX);
    assert_eq!(drain(&mut r), vec![]);
}

#[test]
fn receiver_overflow_disconnects_and_sends_del_peer() {
    let mut r = relay();
    for id in [2, 3, 4] {
        join(&mut r, id, "/");
    }
    r.out.full.insert(3);
    r.packet(T0, 2, Bytes::from(raw_relay(0, b"hi")));
    assert_eq!(
        drain(&mut r),
        vec![
            Action::Send {
                to: 4,
                bytes: Bytes::from(raw_relay(2, b"hi"))
            },
            Action::SendMany {
                to: vec![2, 4],
                bytes: protocol::del_peer(3)
            },
            Action::Disconnect {
                peer: 3,
                code: CLOSE_POLICY,
                reason: "receiver too slow"
            },
        ]
    );
    // Counted once; no more traffic to or from it; no second DEL when it leaves.
    assert_eq!(r.stats().disconnected_slow, 1);
    assert_eq!(send(&mut r, 2, &raw_relay(3, b"hi")), vec![]);
    assert_eq!(send(&mut r, 3, &raw_relay(0, b"hi")), vec![]);
    assert_eq!(
        send(&mut r, 2, &raw_relay(0, b"hi")),
        vec![(4, raw_relay(2, b"hi"))]
    );
    assert_eq!(r.stats().disconnected_slow, 1);
    r.peer_left(T0, 3);
    assert_eq!(drain(&mut r), vec![]);
}

#[test]
fn a_full_room_after_authentication_closes_with_1000_never_1013() {
    let mut r = auth_relay(b"k");
    join(&mut r, 2, "/");
    r.out.room_full = true;
    send(&mut r, 2, b"\x07\x00k");
    r.packet(T0, 2, Bytes::from_static(&[0x07, 0x00]));
    assert_eq!(
        drain(&mut r),
        vec![Action::Disconnect {
            peer: 2,
            code: CLOSE_NORMAL,
            reason: "room full"
        }]
    );
    assert!(!r.is_admitted(2));
}

/// Found by the relay fuzz target (fuzz/src/relay_drivers.rs): a peer
/// refused after authenticating (room full) was marked admitted before it
/// was disconnected, so every admitted peer got a DEL_PEER for a peer it
/// never got an ADD_PEER for.
#[test]
fn a_peer_refused_after_authentication_is_no_del_peer_for_the_others() {
    let mut r = auth_relay(b"k");
    join(&mut r, 3, "/");
    send(&mut r, 3, b"\x07\x00k");
    send(&mut r, 3, &[0x07, 0x00]);
    assert!(r.is_admitted(3));
    join(&mut r, 2, "/");
    r.out.room_full = true;
    send(&mut r, 2, b"\x07\x00k");
    r.packet(T0, 2, Bytes::from_static(&[0x07, 0x00]));
    assert_eq!(
        drain(&mut r),
        vec![Action::Disconnect {
            peer: 2,
            code: CLOSE_NORMAL,
            reason: "room full"
        }]
    );
    assert_eq!(r.admitted_in(&RoomName::default_room()), &[3]);
    r.peer_left(T0, 2);
    assert_eq!(drain(&mut r), vec![]);
}

#[test]
fn counters_follow_traffic() {
    let mut r = relay();
    join(&mut r, 2, "/");
    join(&mut r, 3, "/room/x");
    join(&mut r, 4, "/room/x");
    send(&mut r, 3, &raw_relay(0, b"hi"));
    send(&mut r, 3, &[]);
    let s = r.stats();
    assert_eq!(s.messages_in, 2);
    // ADD_PEER(4) to 3, ADD_PEER(3) to 4, the relayed copy to 4.
    assert_eq!(s.messages_out, 3);
    assert_eq!(s.bytes_in, 9);
    assert_eq!(s.bytes_out, 6 + 6 + 9);
    assert_eq!(s.dropped(DropReason::Empty), 1);
    assert_eq!(s.joined_total, 3);
}

#[test]
fn forwarded_copy_reuses_an_unshared_buffer_and_keeps_length() {
    let mut r = relay();
    join(&mut r, 2, "/");
    join(&mut r, 3, "/");
    let big = raw_relay(3, &vec![b'z'; 60_000]);
    let len = big.len();
    r.packet(T0, 2, Bytes::from(big));
    match &drain(&mut r)[..] {
        [Action::Send { to: 3, bytes }] => {
            assert_eq!(bytes.len(), len);
            assert_eq!(&bytes[2..6], &2i32.to_le_bytes());
        }
        other => panic!("{other:?}"),
    }
}

// ---- proptest: random join / leave / relay sequences ----

#[derive(Debug, Clone)]
enum Op {
    Join {
        room: u8,
    },
    Leave {
        who: u8,
    },
    Relay {
        from: u8,
        target: TargetPick,
        len: u8,
    },
}

#[derive(Debug, Clone)]
enum TargetPick {
    Peer(u8),
    Broadcast,
    AllExcept(u8),
    Server,
    Unknown,
}

fn op() -> impl Strategy<Value = Op> {
    let target = prop_oneof![
        any::<u8>().prop_map(TargetPick::Peer),
        Just(TargetPick::Broadcast),
        any::<u8>().prop_map(TargetPick::AllExcept),
        Just(TargetPick::Server),
        Just(TargetPick::Unknown),
    ];
    prop_oneof![
        2 => (0u8..3).prop_map(|room| Op::Join { room }),
        1 => any::<u8>().prop_map(|who| Op::Leave { who }),
        4 => (any::<u8>(), target, 1u8..20).prop_map(|(from, target, len)| Op::Relay { from, target, len }),
    ]
}

/// What a Godot client knows: the peers it was told about, in its own view.
#[derive(Default)]
struct ClientView {
    known: BTreeSet<i32>,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn relayed_packets_reach_exactly_the_intended_receivers(ops in proptest::collection::vec(op(), 1..80)) {
        let rooms = [room("/"), room("/room/a"), room("/room/b")];
        let mut r = relay();
        // Model: connected peers with their room, in join order.
        let mut model: Vec<(i32, usize)> = Vec::new();
        let mut views: HashMap<i32, ClientView> = HashMap::new();
        let mut next_id = 2i32;
        let mut serial = 0u32;

        // Applies deliveries to client views, checking the protocol invariants a client relies on.
        let apply = |views: &mut HashMap<i32, ClientView>, actions: &[Action]| -> Result<Vec<(i32, Vec<u8>)>, TestCaseError> {
            let d = deliveries(actions);
            for (to, bytes) in &d {
                let view = views.get_mut(to).ok_or_else(|| TestCaseError::fail(format!("delivery to non-member {to}")))?;
                match protocol::parse(bytes) {
                    Ok(Packet::AddPeer(p)) => {
                        prop_assert!(p != *to, "ADD_PEER of itself");
                        prop_assert!(view.known.insert(p), "duplicate ADD_PEER {p} to {to}");
                    }
                    Ok(Packet::DelPeer(p)) => {
                        prop_assert!(view.known.remove(&p), "DEL_PEER {p} to {to} without ADD_PEER");
                    }
                    Ok(Packet::Relay { target: src, .. }) => {
                        prop_assert!(src == *to || view.known.contains(&src), "relay from unknown {src} to {to}");
                    }
                    other => prop_assert!(false, "unexpected delivery {other:?}"),
                }
            }
            Ok(d)
        };

        for op in ops {
            match op {
                Op::Join { room: ri } => {
                    let id = next_id;
                    next_id += 1;
                    views.insert(id, ClientView::default());
                    r.peer_joined(T0, id, rooms[usize::from(ri)].clone());
                    let actions = drain(&mut r);
                    apply(&mut views, &actions)?;
                    model.push((id, usize::from(ri)));
                }
                Op::Leave { who } => {
                    if model.is_empty() { continue; }
                    let (id, _) = model.remove(usize::from(who) % model.len());
                    r.peer_left(T0, id);
                    views.remove(&id);
                    let actions = drain(&mut r);
                    apply(&mut views, &actions)?;
                }
                Op::Relay { from, target, len } => {
                    if model.is_empty() { continue; }
                    let (src, src_room) = model[usize::from(from) % model.len()];
                    let pick = |i: u8| model[usize::from(i) % model.len()].0;
                    let t = match target {
                        TargetPick::Peer(i) => pick(i),
                        TargetPick::Broadcast => 0,
                        TargetPick::AllExcept(i) => -pick(i),
                        TargetPick::Server => 1,
                        TargetPick::Unknown => next_id + 1000,
                    };
                    let expected: BTreeSet<i32> = model
                        .iter()
                        .filter(|(p, room)| *room == src_room && match t {
                            1.. => *p == t,
                            0 => *p != src,
                            _ => *p != src && *p != -t,
                        })
                        .map(|(p, _)| *p)
                        .collect();
                    serial += 1;
                    let mut inner = vec![3u8];
                    inner.extend_from_slice(&serial.to_le_bytes());
                    inner.resize(usize::from(len).max(5), b'.');
                    r.packet(T0, src, protocol::relay(t, &inner));
                    let actions = drain(&mut r);
                    let d = apply(&mut views, &actions)?;
                    let got: Vec<i32> = d.iter().map(|(to, _)| *to).collect();
                    let got_set: BTreeSet<i32> = got.iter().copied().collect();
                    prop_assert_eq!(got.len(), got_set.len(), "duplicate receivers");
                    prop_assert_eq!(&got_set, &expected);
                    let want = protocol::relay(src, &inner).to_vec();
                    for (_, bytes) in &d {
                        prop_assert_eq!(bytes, &want);
                    }
                }
            }
        }
        // Every client's view equals the other members of its room.
        for (id, ri) in &model {
            let others: BTreeSet<i32> = model.iter().filter(|(p, rj)| rj == ri && p != id).map(|(p, _)| *p).collect();
            prop_assert_eq!(&views[id].known, &others);
        }
    }
}

#[test]
fn pending_peers_are_invisible_to_admitted_ones() {
    let mut r = auth_relay(b"k");
    for id in [2, 3] {
        join(&mut r, id, "/");
        send(&mut r, id, b"\x07\x00k");
        send(&mut r, id, &[0x07, 0x00]);
    }
    join(&mut r, 4, "/");
    assert_eq!(
        send(&mut r, 2, &raw_relay(0, b"hi")),
        vec![(3, raw_relay(2, b"hi"))]
    );
    assert_eq!(send(&mut r, 2, &raw_relay(-3, b"hi")), vec![]);
    assert_eq!(send(&mut r, 2, &raw_relay(4, b"hi")), vec![]);
    assert_eq!(r.stats().dropped(DropReason::UnknownTarget), 1);
    r.peer_left(T0, 4);
    assert_eq!(drain(&mut r), vec![]);
    assert_eq!(r.admitted_in(&RoomName::default_room()), &[2, 3]);
}
