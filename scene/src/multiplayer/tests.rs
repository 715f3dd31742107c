//! State-machine tests of peer 1 on a virtual clock. Client packets are
//! written out byte by byte here, not produced by this crate's encoders.
#![allow(clippy::unwrap_used)]

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::*;
use crate::variant::{Dictionary, VariantType, Vector2};

const A: i32 = 1000;
const B: i32 = 2000;
const C: i32 = 3000;

fn t(ms: u64) -> Timestamp {
    Timestamp::from_millis(ms)
}

fn le(id: i32) -> [u8; 4] {
    id.to_le_bytes()
}

fn cat(parts: &[&[u8]]) -> Bytes {
    Bytes::from(parts.concat())
}

/// Every queued action as (receiver, bytes), SendMany expanded in order.
fn sends(s: &mut SceneMultiplayer<Log>) -> Vec<(i32, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(a) = s.poll_action() {
        match a {
            Action::Send { to, bytes } => out.push((to, bytes.to_vec())),
            Action::SendMany { to, bytes } => {
                for p in to {
                    out.push((p, bytes.to_vec()));
                }
            }
            Action::Disconnect { peer, code, .. } => out.push((peer, code.to_le_bytes().to_vec())),
        }
    }
    out
}

fn events(s: &mut SceneMultiplayer<Log>) -> Vec<Event> {
    ::core::iter::from_fn(|| s.poll_event()).collect()
}

#[derive(Default)]
struct Log {
    calls: Vec<(i32, String, Vec<Variant>)>,
}

const NAMES: [&str; 4] = ["say", "hello", "echo", "tell"];
// Sorted: echo 0, hello 1, say 2, tell 3.

fn scene() -> (SceneMultiplayer<Log>, NodeId) {
    let mut s = SceneMultiplayer::new(Config::default(), Log::default());
    let node = s.register_node("/root/Main", &NAMES).unwrap();
    for (m, sig) in [
        ("say", Signature::typed(&[VariantType::String])),
        ("hello", Signature::none()),
        (
            "echo",
            Signature::new([Param::Optional(None, Variant::PackedByteArray(vec![]))]),
        ),
    ] {
        s.on_rpc(node, m, sig, move |log: &mut Log, _ctx, call| {
            log.calls.push((call.from, String::from(m), call.args));
        })
        .unwrap();
    }
    (s, node)
}

fn joined(ids: &[i32]) -> (SceneMultiplayer<Log>, NodeId) {
    let (mut s, node) = scene();
    for &id in ids {
        s.peer_connected(t(0), id);
    }
    sends(&mut s);
    events(&mut s);
    (s, node)
}

/// `01 <md5("echohellosaytell")> 00 <id> Main 00`, from a client.
fn offer(cache_id: u32, checksum: &[u8; 32]) -> Bytes {
    cat(&[&[1], checksum, &[0], &cache_id.to_le_bytes(), b"Main\0"])
}

fn main_checksum() -> [u8; 32] {
    crate::checksum::rpc_checksum(&["echo", "hello", "say", "tell"])
}

#[test]
fn admission_fan_out_matches_the_spec_example() {
    // spec/scene-multiplayer.md §3.5.
    let (mut s, _) = scene();
    s.peer_connected(t(0), A);
    assert_eq!(sends(&mut s), vec![]);
    s.peer_connected(t(0), B);
    assert_eq!(
        sends(&mut s),
        vec![
            (A, cat(&[&[7, 1], &le(B)]).to_vec()),
            (B, cat(&[&[7, 1], &le(A)]).to_vec())
        ]
    );
    s.peer_disconnected(t(1), B);
    assert_eq!(sends(&mut s), vec![(A, cat(&[&[7, 2], &le(B)]).to_vec())]);
    assert_eq!(
        events(&mut s),
        vec![
            Event::PeerConnected(A),
            Event::PeerConnected(B),
            Event::PeerDisconnected(B)
        ]
    );
}

#[test]
fn relay_rules_of_section_4_2() {
    let (mut s, _) = joined(&[A, B, C]);
    let raw_hi = [3u8, b'h', b'i'];
    // T > 0: rewritten destination → source, to T only.
    s.packet(t(1), A, cat(&[&[7, 3], &le(B), &raw_hi]));
    assert_eq!(
        sends(&mut s),
        vec![(B, cat(&[&[7, 3], &le(A), &raw_hi]).to_vec())]
    );
    assert_eq!(events(&mut s), vec![], "not for the server");
    // T == 0: everyone but the sender, and the server processes it.
    s.packet(t(1), A, cat(&[&[7, 3], &le(0), &raw_hi]));
    let out = cat(&[&[7, 3], &le(A), &raw_hi]).to_vec();
    assert_eq!(sends(&mut s), vec![(B, out.clone()), (C, out.clone())]);
    assert_eq!(
        events(&mut s),
        vec![Event::Raw {
            from: A,
            data: Bytes::from_static(b"hi"),
            broadcast: true
        }]
    );
    // T == -C: all but A and C; processed by the server.
    s.packet(t(1), A, cat(&[&[7, 3], &le(-C), &raw_hi]));
    assert_eq!(sends(&mut s), vec![(B, out.clone())]);
    assert_eq!(events(&mut s).len(), 1);
    // T == -1: all but A, not processed by the server.
    s.packet(t(1), A, cat(&[&[7, 3], &le(-1), &raw_hi]));
    assert_eq!(sends(&mut s), vec![(B, out.clone()), (C, out)]);
    assert_eq!(events(&mut s), vec![]);
    // Unknown target, target 1, nested SYS, short relay, ADD/DEL from a client.
    s.packet(t(1), A, cat(&[&[7, 3], &le(4242), &raw_hi]));
    s.packet(t(1), A, cat(&[&[7, 3], &le(1), &raw_hi]));
    s.packet(t(1), A, cat(&[&[7, 3], &le(B), &[7, 1, 0, 0, 0, 0]]));
    s.packet(t(1), A, cat(&[&[7, 3], &le(B)]));
    s.packet(t(1), A, cat(&[&[7, 1], &le(B)]));
    s.packet(t(1), A, cat(&[&[7, 9]]));
    s.packet(t(1), A, Bytes::new());
    assert_eq!(sends(&mut s), vec![]);
    let st = s.stats();
    assert_eq!(st.dropped(DropReason::UnknownTarget), 2);
    assert_eq!(st.dropped(DropReason::NestedSys), 1);
    assert_eq!(st.dropped(DropReason::ShortRelay), 1);
    assert_eq!(st.dropped(DropReason::SysFromClient), 1);
    assert_eq!(st.dropped(DropReason::UnknownSys), 1);
    assert_eq!(st.dropped(DropReason::Empty), 1);
}

#[test]
fn path_offer_is_confirmed_and_calls_reach_handlers() {
    let (mut s, _) = joined(&[A]);
    s.packet(t(1), A, offer(7, &main_checksum()));
    assert_eq!(sends(&mut s), vec![(A, vec![2, 1, 7, 0, 0, 0])]);
    // say("hi") by cache id 7: 00 07 02 01 <String "hi">.
    s.packet(
        t(2),
        A,
        cat(&[&[0, 7, 2, 1], &[4, 0, 0, 0, 2, 0, 0, 0, b'h', b'i', 0, 0]]),
    );
    // hello() by inline path: a0 <0x80000006> 01 "Main\0".
    s.packet(t(3), A, cat(&[&[0xa0, 6, 0, 0, 0x80, 1], b"Main\0"]));
    // echo() with no args (byte-only flag): the default is filled in.
    s.packet(t(4), A, cat(&[&[0x80, 7, 0]]));
    // echo(PackedByteArray([1, 2])) byte-only.
    s.packet(t(5), A, cat(&[&[0x80, 7, 0, 1, 2]]));
    // say(&"name") with a StringName: converted to String.
    s.packet(
        t(6),
        A,
        cat(&[&[0, 7, 2, 1], &[21, 0, 0, 0, 1, 0, 0, 0, b'n', 0, 0, 0]]),
    );
    let calls = &s.state().calls;
    assert_eq!(
        calls,
        &vec![
            (A, "say".into(), vec!["hi".into()]),
            (A, "hello".into(), vec![]),
            (A, "echo".into(), vec![Variant::PackedByteArray(vec![])]),
            (A, "echo".into(), vec![Variant::PackedByteArray(vec![1, 2])]),
            (A, "say".into(), vec!["n".into()]),
        ]
    );
    assert_eq!(s.stats().rpcs_handled, 5);
    assert_eq!(s.stats().dropped_total(), 0);
}

#[test]
fn bad_calls_are_dropped_and_counted() {
    let (mut s, _) = joined(&[A]);
    s.packet(t(1), A, offer(7, &main_checksum()));
    sends(&mut s);
    let cases: Vec<(Bytes, DropReason)> = vec![
        // Method 9 does not exist.
        (cat(&[&[0x80, 7, 9]]), DropReason::UnknownMethod),
        // tell (3) has no handler.
        (cat(&[&[0x80, 7, 3]]), DropReason::NotCallable),
        // Cache id 8 was never offered.
        (cat(&[&[0x80, 8, 1]]), DropReason::UnknownCacheId),
        // Inline path of an unregistered node.
        (
            cat(&[&[0xa0, 6, 0, 0, 0x80, 1], b"Nope\0"]),
            DropReason::UnknownNode,
        ),
        // say() with no argument, and with two.
        (cat(&[&[0x80, 7, 2]]), DropReason::WrongArgCount),
        (cat(&[&[0, 7, 2, 2, 1, 2, 1]]), DropReason::WrongArgCount),
        // say(5): wrong type.
        (cat(&[&[0, 7, 2, 1, 2, 5]]), DropReason::WrongArgType),
        // say with an undecodable argument (string length beyond the packet).
        (
            cat(&[&[0, 7, 2, 1], &[4, 0, 0, 0, 99, 0, 0, 0]]),
            DropReason::BadArgs,
        ),
        // Trailing byte after the argument.
        (cat(&[&[0, 7, 2, 1, 2, 5, 0]]), DropReason::BadArgs),
        // Count byte missing, node-id mode 3, path offset out of range.
        (cat(&[&[0, 7, 2]]), DropReason::Malformed),
        (cat(&[&[0x30, 7, 2]]), DropReason::Malformed),
        (
            cat(&[&[0xa0, 60, 0, 0, 0x80, 1], b"Main\0"]),
            DropReason::Malformed,
        ),
        // Path without its NUL.
        (
            cat(&[&[0xa0, 6, 0, 0, 0x80, 1], b"Main"]),
            DropReason::Malformed,
        ),
        // Replication sent to the server itself.
        (cat(&[&[5, 5, 0, 0, 0]]), DropReason::Replication),
        // CONFIRM_PATH for nothing we offered; wrong length.
        (cat(&[&[2, 1, 1, 0, 0, 0]]), DropReason::UnexpectedConfirm),
        (cat(&[&[2, 1, 1, 0, 0]]), DropReason::Malformed),
        // Duplicate cache id offer; RAW without data.
        (offer(7, &main_checksum()), DropReason::DuplicateCacheId),
        (cat(&[&[3]]), DropReason::Malformed),
    ];
    for (bytes, reason) in cases {
        let before = s.stats().dropped(reason);
        s.packet(t(2), A, bytes.clone());
        assert_eq!(
            s.stats().dropped(reason),
            before + 1,
            "{bytes:02x?} → {reason:?}"
        );
    }
    assert!(s.state().calls.is_empty());
    assert_eq!(sends(&mut s), vec![]);
    // The peer still works.
    s.packet(t(3), A, cat(&[&[0x80, 7, 1]]));
    assert_eq!(s.state().calls.len(), 1);
}

#[test]
fn checksum_mismatch_is_answered_invalid_and_cached() {
    let (mut s, _) = joined(&[A]);
    s.packet(t(1), A, offer(3, &[b'0'; 32]));
    assert_eq!(sends(&mut s), vec![(A, vec![2, 0, 3, 0, 0, 0])]);
    assert_eq!(s.stats().checksum_mismatches, 1);
    // Cached: calls by id 3 are dispatched.
    s.packet(t(2), A, cat(&[&[0x80, 3, 1]]));
    assert_eq!(s.state().calls.len(), 1);
    // An offer for an unknown node gets no answer (as the engine).
    s.packet(t(3), A, cat(&[&[1], &[b'0'; 32], &[0], &le(4), b"Other\0"]));
    assert_eq!(sends(&mut s), vec![]);
    assert_eq!(s.stats().dropped(DropReason::UnknownNode), 1);
}

#[test]
fn server_rpcs_offer_the_path_then_use_the_cache_id() {
    let (mut s, node) = joined(&[A, B]);
    s.context()
        .rpc(A, node, "tell", &[Variant::Int(5), "x".into()])
        .unwrap();
    let out = sends(&mut s);
    // SIMPLIFY_PATH with our cache id 1, then the call with the inline path:
    // meta 0x20 (32-bit node id, 8-bit method id), 0x80000000 | 9, method 3,
    // count 2, int 5 (02 05), String "x", then "Main\0".
    assert_eq!(
        out,
        vec![
            (
                A,
                [&[1u8][..], &main_checksum(), &[0, 1, 0, 0, 0], b"Main\0"].concat()
            ),
            (
                A,
                [
                    &[0x20u8, 9 + 12, 0, 0, 0x80, 3, 2, 2, 5][..],
                    &[4, 0, 0, 0, 1, 0, 0, 0, b'x', 0, 0, 0],
                    b"Main\0"
                ]
                .concat()
            )
        ]
    );
    // A confirms: the next call uses the 8-bit cache id.
    s.packet(t(1), A, cat(&[&[2, 1], &le(1)]));
    s.context().rpc(0, node, "tell", &[]).unwrap();
    assert_eq!(
        sends(&mut s),
        vec![
            (
                B,
                [&[1u8][..], &main_checksum(), &[0, 1, 0, 0, 0], b"Main\0"].concat()
            ),
            (B, [&[0xa0u8, 6, 0, 0, 0x80, 3][..], b"Main\0"].concat()),
            (A, vec![0x80, 1, 3]),
        ]
    );
    // Errors: unknown method, unknown peer.
    assert_eq!(
        s.context().rpc(A, node, "nope", &[]),
        Err(RpcError::UnknownMethod)
    );
    assert_eq!(
        s.context().rpc(77, node, "tell", &[]),
        Err(RpcError::Send(SendError::UnknownPeer(77)))
    );
    // All but A.
    s.context()
        .rpc(-A, node, "tell", &[Variant::PackedByteArray(vec![9])])
        .unwrap();
    assert_eq!(
        sends(&mut s),
        vec![(B, [&[0xa0u8, 7, 0, 0, 0x80, 3, 9][..], b"Main\0"].concat())]
    );
}

#[test]
fn send_bytes_and_direct_raw() {
    let (mut s, _) = joined(&[A, B]);
    s.packet(t(1), A, cat(&[&[3, 1, 2]]));
    assert_eq!(
        events(&mut s),
        vec![Event::Raw {
            from: A,
            data: Bytes::from_static(&[1, 2]),
            broadcast: false
        }]
    );
    s.context().send_bytes(0, &[5]).unwrap();
    assert_eq!(sends(&mut s), vec![(A, vec![3, 5]), (B, vec![3, 5])]);
    assert_eq!(s.context().send_bytes(A, &[]), Err(SendError::Empty));
}

#[test]
fn auth_exchange_and_timeout() {
    let mut s = SceneMultiplayer::new(Config::default(), Log::default());
    s.set_auth_callback(|log: &mut Log, ctx, peer, data| {
        log.calls.push((
            peer,
            "auth".into(),
            vec![Variant::PackedByteArray(data.to_vec())],
        ));
        if data == b"ok" {
            ctx.send_auth(peer, b"welcome").unwrap();
            ctx.complete_auth(peer).unwrap();
            assert_eq!(
                ctx.send_auth(peer, b"more"),
                Err(AuthError::AlreadyCompleted)
            );
        } else {
            ctx.disconnect(peer, 1008, "bad token");
        }
    });
    s.peer_connected(t(0), A);
    s.peer_connected(t(0), B);
    s.peer_connected(t(100), C);
    assert_eq!(
        events(&mut s),
        vec![
            Event::PeerAuthenticating(A),
            Event::PeerAuthenticating(B),
            Event::PeerAuthenticating(C)
        ]
    );
    assert_eq!(
        sends(&mut s),
        vec![],
        "nothing but AUTH goes to pending peers"
    );
    // A: game traffic before auth is dropped; then data, then completion.
    s.packet(t(1), A, cat(&[&[3, 1]]));
    assert_eq!(s.stats().dropped(DropReason::NotAuthenticated), 1);
    s.packet(t(1), A, cat(&[&[7, 0], b"ok"]));
    assert_eq!(
        sends(&mut s),
        vec![(A, [&[7u8, 0][..], b"welcome"].concat()), (A, vec![7, 0])]
    );
    assert!(s.context().is_authenticating(A));
    s.packet(t(2), A, cat(&[&[7, 0]]));
    assert!(s.context().is_admitted(A));
    assert_eq!(events(&mut s), vec![Event::PeerConnected(A)]);
    // B: wrong data → disconnected by the callback.
    s.packet(t(2), B, cat(&[&[7, 0], b"no"]));
    assert_eq!(sends(&mut s), vec![(B, 1008u16.to_le_bytes().to_vec())]);
    assert_eq!(events(&mut s), vec![Event::AuthFailed(B)]);
    // C: silent; timed out 3 s after it connected, with 1000.
    assert_eq!(s.poll_timeout(), Some(t(3100)));
    s.handle_timeout(t(3099));
    assert_eq!(sends(&mut s), vec![]);
    s.handle_timeout(t(3100));
    assert_eq!(sends(&mut s), vec![(C, 1000u16.to_le_bytes().to_vec())]);
    assert_eq!(events(&mut s), vec![Event::AuthFailed(C)]);
    assert_eq!(s.poll_timeout(), None);
    // A stray completion after admission is dropped.
    s.packet(t(4), A, cat(&[&[7, 0]]));
    assert_eq!(s.stats().dropped(DropReason::AuthUnexpected), 1);
    // The client completing first, then the server: admitted with fan-out.
    s.peer_connected(t(5), B + 1);
    s.packet(t(5), B + 1, cat(&[&[7, 0]]));
    s.context().complete_auth(B + 1).unwrap();
    assert_eq!(
        sends(&mut s),
        vec![
            (B + 1, vec![7, 0]),
            (A, cat(&[&[7, 1], &le(B + 1)]).to_vec()),
            (B + 1, cat(&[&[7, 1], &le(A)]).to_vec())
        ]
    );
}

#[test]
fn players_dictionary_welcome_bytes() {
    // What the lobby sends: welcome(id, {id: name}) as a server RPC.
    let (mut s, node) = joined(&[A]);
    let players = Dictionary::from_entries(vec![(Variant::Int(A.into()), "ann".into())]);
    s.context()
        .rpc(A, node, "tell", &[Variant::Int(A.into()), players.into()])
        .unwrap();
    let out = sends(&mut s);
    let call = &out[1].1;
    let parsed = crate::packet::RemoteCall::parse(call).unwrap();
    let args = Codec::default()
        .decode_args(parsed.raw, parsed.count, parsed.args)
        .unwrap();
    assert_eq!(args[0], Variant::Int(A.into()));
    // int 1000 compressed: 16-bit mode, 0x42 e8 03.
    assert_eq!(&parsed.args[..3], &[0x42, 0xe8, 0x03]);
    let _ = Vector2::default();
}
