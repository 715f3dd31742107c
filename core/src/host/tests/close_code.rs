//! `Host::disconnect_peer_with`: a server closing one peer with a chosen code.

use super::harness::*;
use crate::config::Config;
use crate::frame::CloseCode;
use crate::host::*;

#[test]
fn disconnect_peer_with_sends_the_code_and_reason() {
    let mut net = Net::new(Config::default());
    let a = net.join();
    let b = net.join();
    let _ = net.server_events();
    let _ = net.client_events(a);
    net.server
        .disconnect_peer_with(net.now, a, CloseCode::POLICY_VIOLATION, "too slow")
        .expect("known");
    // Like disconnect_peer(id, false): signalled at once, gone from the set.
    let events = net.server_events();
    assert!(
        matches!(events.as_slice(), [HostEvent::PeerDisconnected { peer, .. }] if *peer == a),
        "{events:?}"
    );
    assert_eq!(
        net.server.connected_peers().collect::<alloc::vec::Vec<_>>(),
        [b]
    );
    assert_eq!(
        net.server
            .disconnect_peer_with(net.now, a, CloseCode::POLICY_VIOLATION, ""),
        Err(UnknownPeer(a))
    );
    net.pump();
    match net.client_events(a).as_slice() {
        [HostEvent::PeerDisconnected {
            info: Some(info), ..
        }] => {
            // RFC 6455 §7.4.1: the client sees our code and reason.
            assert_eq!(info.code, CloseCode::POLICY_VIOLATION);
            assert_eq!(info.reason, "too slow");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn disconnect_peer_with_unsendable_code_falls_back_to_1000() {
    let mut net = Net::new(Config::default());
    let a = net.join();
    let _ = net.server_events();
    let _ = net.client_events(a);
    // RFC 6455 §7.4.1: 1006 must never be sent.
    net.server
        .disconnect_peer_with(net.now, a, CloseCode::ABNORMAL, "x")
        .expect("known");
    net.pump();
    match net.client_events(a).as_slice() {
        [HostEvent::PeerDisconnected {
            info: Some(info), ..
        }] => assert_eq!(info.code, CloseCode::NORMAL),
        other => panic!("unexpected {other:?}"),
    }
}

/// The close frames in `wire` (after the HTTP head): (code, reason).
fn close_frames(wire: &[u8]) -> alloc::vec::Vec<(Option<CloseCode>, alloc::string::String)> {
    crate::connection::tests::harness::parse_frames(after_head(wire))
        .into_iter()
        .filter(|f| f.opcode() == 0x8)
        .map(|f| match crate::frame::parse_close_payload(&f.payload) {
            Ok(Some((code, reason))) => (Some(code), reason.into()),
            Ok(None) => (None, alloc::string::String::new()),
            Err(e) => panic!("invalid close payload on the wire: {e}"),
        })
        .collect()
}

/// spec/websocket-peer.md §2.7: the engine answers 1012–1014 with 1002.
const UNSAFE: [(u16, u16); 3] = [(1012, 1001), (1013, 1008), (1014, 1011)];

#[test]
fn disconnect_peer_with_never_sends_a_code_the_engine_rejects() {
    for (code, fallback) in UNSAFE {
        let mut net = Net::new(Config::default());
        let a = net.join();
        net.server
            .disconnect_peer_with(net.now, a, CloseCode(code), "room full")
            .expect("known");
        net.pump();
        let sent = close_frames(&net.link(a).server_log);
        assert_eq!(
            sent,
            [(Some(CloseCode(fallback)), "room full".into())],
            "{code}"
        );
        assert!(sent
            .iter()
            .all(|(c, _)| c.is_some_and(CloseCode::is_godot_safe)));
        // The engine-side peer sees a clean close, not a protocol error.
        match net.client_events(a).as_slice() {
            [_, HostEvent::PeerDisconnected {
                info: Some(info), ..
            }] => {
                assert_eq!(info.code, CloseCode(fallback));
                assert!(info.clean);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn host_echo_of_a_peer_close_is_godot_safe() {
    for (code, fallback) in UNSAFE {
        let mut net = Net::new(Config::default());
        let a = net.join();
        // A (non-engine) client closes with a code the engine would reject;
        // the host's echo toward it must still be one the engine accepts.
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(b"bye");
        let frame = crate::connection::tests::harness::cframe(0x88, &payload);
        net.link(a).to_server.extend_from_slice(&frame);
        net.pump();
        let sent = close_frames(&net.link(a).server_log);
        assert_eq!(sent, [(Some(CloseCode(fallback)), "bye".into())], "{code}");
    }
}

#[test]
fn client_host_never_sends_a_code_the_engine_rejects() {
    let mut net = Net::new(Config::default());
    let a = net.join();
    let now = net.now;
    net.client(a)
        .disconnect_peer_with(now, PeerId::SERVER, CloseCode::SERVICE_RESTART, "restart")
        .expect("server peer");
    net.pump();
    let sent = close_frames(&net.link(a).client_log);
    assert_eq!(sent, [(Some(CloseCode::GOING_AWAY), "restart".into())]);
}

#[test]
fn plain_connections_keep_every_rfc_code() {
    use crate::connection::tests::harness::{cfg, drain, ms, open_server, parse_frames};
    for code in [1012u16, 1013, 1014] {
        let mut s = open_server(cfg());
        s.close(ms(1), CloseCode(code), "x").expect("sendable");
        let frames = parse_frames(&drain(&mut s, ms(1)));
        assert_eq!(frames[0].payload[..2], code.to_be_bytes());
    }
}
