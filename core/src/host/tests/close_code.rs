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
