//! Target routing, packet reading, and packets outliving their peer.

use alloc::vec;
use alloc::vec::Vec;
use bytes::Bytes;

use super::harness::*;
use crate::config::Config;
use crate::connection::MessageKind;
use crate::host::*;

fn packets(h: &mut Host) -> Vec<(PeerId, Bytes)> {
    core::iter::from_fn(|| h.get_packet()).collect()
}

fn three() -> (Net, [PeerId; 3]) {
    let mut net = Net::new(Config::default());
    let ids = [net.join(), net.join(), net.join()];
    let _ = net.server_events();
    for id in ids {
        let _ = net.client_events(id);
    }
    (net, ids)
}

#[test]
fn server_routes_to_one_all_and_all_but_one() {
    let (mut net, [a, b, c]) = three();
    let now = net.now;
    let r = net
        .server
        .send(now, Target::Peer(b), Bytes::from_static(b"to-b"))
        .expect("sent");
    assert_eq!(
        r,
        SendReport {
            delivered: 1,
            failed: vec![]
        }
    );
    let r = net
        .server
        .send(now, Target::Broadcast, Bytes::from_static(b"all"))
        .expect("sent");
    assert_eq!(r.delivered, 3);
    net.server.set_target_peer(Target::AllExcept(a));
    assert_eq!(net.server.target_peer(), Target::AllExcept(a));
    let r = net
        .server
        .put_packet(now, Bytes::from_static(b"not-a"))
        .expect("sent");
    assert_eq!(r.delivered, 2);
    net.server
        .set_target_peer(Target::from_godot(c.get()).expect("target"));
    net.server
        .put_packet(now, Bytes::from_static(b"to-c"))
        .expect("sent");
    net.pump();
    let s = PeerId::SERVER;
    assert_eq!(
        packets(net.client(a)),
        vec![(s, Bytes::from_static(b"all"))]
    );
    assert_eq!(
        packets(net.client(b)),
        vec![
            (s, Bytes::from_static(b"to-b")),
            (s, Bytes::from_static(b"all")),
            (s, Bytes::from_static(b"not-a"))
        ]
    );
    assert_eq!(
        packets(net.client(c)),
        vec![
            (s, Bytes::from_static(b"all")),
            (s, Bytes::from_static(b"not-a")),
            (s, Bytes::from_static(b"to-c"))
        ]
    );
}

#[test]
fn server_errors_unknown_peer_and_not_connected() {
    let (mut net, [a, ..]) = three();
    let now = net.now;
    let nobody = PeerId::new(42).expect("id");
    assert_eq!(
        net.server
            .send(now, Target::Peer(nobody), Bytes::from_static(b"x")),
        Err(HostSendError::UnknownPeer(nobody, Bytes::from_static(b"x")))
    );
    // The server itself is not a peer of the server.
    assert!(matches!(
        net.server
            .send(now, Target::Peer(PeerId::SERVER), Bytes::from_static(b"x")),
        Err(HostSendError::UnknownPeer(..))
    ));
    // A pending peer is not a target either.
    let p = net.connect();
    assert!(matches!(
        net.server
            .send(now, Target::Peer(p), Bytes::from_static(b"x")),
        Err(HostSendError::UnknownPeer(..))
    ));
    let r = net
        .server
        .send(now, Target::Broadcast, Bytes::from_static(b"y"))
        .expect("ok");
    assert_eq!(r.delivered, 3, "pending peers get no broadcast");
    // Excluding an unknown id excludes nobody.
    let r = net
        .server
        .send(now, Target::AllExcept(nobody), Bytes::from_static(b"y"))
        .expect("ok");
    assert_eq!(r.delivered, 3);
    // A connecting client cannot send.
    let c = net.client(p);
    assert_eq!(
        c.send(now, Target::Broadcast, Bytes::from_static(b"z")),
        Err(HostSendError::NotConnected(Bytes::from_static(b"z")))
    );
    net.pump();
    let _ = net.client(a);
}

#[test]
fn client_always_sends_to_the_server() {
    let (mut net, [a, b, _]) = three();
    let now = net.now;
    let c = net.client(a);
    for (i, t) in [
        Target::Peer(b),
        Target::Broadcast,
        Target::AllExcept(PeerId::SERVER),
    ]
    .into_iter()
    .enumerate()
    {
        let r = c.send(now, t, Bytes::from(vec![i as u8; 3])).expect("sent");
        assert_eq!(r.delivered, 1);
    }
    c.send_message(
        now,
        Target::Broadcast,
        MessageKind::Text,
        Bytes::from_static(b"txt"),
    )
    .expect("sent");
    net.pump();
    assert_eq!(net.server.available_packet_count(), 4);
    assert_eq!(net.server.packet_peer(), Some(a));
    let got = packets(&mut net.server);
    assert_eq!(
        got,
        vec![
            (a, Bytes::from(vec![0u8; 3])),
            (a, Bytes::from(vec![1u8; 3])),
            (a, Bytes::from(vec![2u8; 3])),
            (a, Bytes::from_static(b"txt")),
        ]
    );
    assert!(
        packets(net.client(b)).is_empty(),
        "no cross-client routing here"
    );
    assert_eq!(net.server.packet_peer(), None);
    assert_eq!(net.server.available_packet_count(), 0);
}

#[test]
fn events_interleave_packets_and_signals_in_order() {
    let mut net = Net::new(Config::default());
    let a = net.join();
    let now = net.now;
    net.client(a)
        .send(now, Target::Broadcast, Bytes::from_static(b"1"))
        .expect("sent");
    net.pump();
    let b = net.join();
    let events = net.server_events();
    assert_eq!(
        events,
        vec![
            HostEvent::PeerConnected(a),
            HostEvent::Packet {
                from: a,
                data: Bytes::from_static(b"1")
            },
            HostEvent::PeerConnected(b),
        ]
    );
}

#[test]
fn empty_messages_are_discarded() {
    let (mut net, [a, ..]) = three();
    let now = net.now;
    net.client(a)
        .send(now, Target::Broadcast, Bytes::new())
        .expect("sent");
    let now = net.now;
    net.client(a)
        .send(now, Target::Broadcast, Bytes::from_static(b"after"))
        .expect("sent");
    net.pump();
    assert_eq!(
        packets(&mut net.server),
        vec![(a, Bytes::from_static(b"after"))]
    );
    assert_eq!(net.server.stats().empty_discarded, 1);
}

#[test]
fn broadcast_shares_one_encoded_body() {
    let (mut net, ids) = three();
    for id in ids {
        net.link(id).stall_server_write = true;
    }
    let payload = Bytes::from(vec![0x5A; 4096]);
    let ptr = payload.as_ptr();
    let r = net
        .server
        .send(net.now, Target::Broadcast, payload)
        .expect("sent");
    assert_eq!(r.delivered, 3);
    for id in ids {
        let chunks: Vec<&[u8]> = net.server.transmit(id).expect("peer").collect();
        // Header `82 7E 10 00`, then the shared body.
        assert_eq!(chunks.len(), 2, "{id}");
        assert_eq!(chunks[0], &[0x82, 0x7E, 0x10, 0x00]);
        assert_eq!(chunks[1].len(), 4096);
        assert_eq!(chunks[1].as_ptr(), ptr, "not copied for {id}");
    }
    for id in ids {
        net.writable(id);
    }
    for id in ids {
        assert_eq!(
            packets(net.client(id)),
            vec![(PeerId::SERVER, Bytes::from(vec![0x5A; 4096]))]
        );
    }
}

#[test]
fn packets_stay_readable_after_the_server_sees_a_disconnect() {
    let (mut net, [a, b, _]) = three();
    for i in 0..3u8 {
        let now = net.now;
        net.client(a)
            .send(now, Target::Broadcast, Bytes::from(vec![i; 2]))
            .expect("sent");
    }
    let now = net.now;
    net.client(a)
        .disconnect_peer(now, PeerId::SERVER, false)
        .expect("ok");
    let now = net.now;
    net.client(b)
        .send(now, Target::Broadcast, Bytes::from_static(b"b"))
        .expect("sent");
    net.pump();
    assert!(!net.link(a).server_open);
    let events = net.server_events();
    let n = events.len();
    assert!(
        matches!(&events[n - 1], HostEvent::PeerDisconnected { peer, .. } if *peer == a)
            || matches!(&events[n - 2], HostEvent::PeerDisconnected { peer, .. } if *peer == a),
        "{events:?}"
    );
    // Same thing, but reading packets only after the disconnect was seen.
    let (mut net, [a, ..]) = three();
    for i in 0..3u8 {
        let now = net.now;
        net.client(a)
            .send(now, Target::Broadcast, Bytes::from(vec![i; 2]))
            .expect("sent");
    }
    let now = net.now;
    net.client(a)
        .disconnect_peer(now, PeerId::SERVER, false)
        .expect("ok");
    net.pump();
    assert_eq!(net.server.socket_count(), 2, "a is released");
    assert!(matches!(
        net.server.poll_signal(),
        Some(HostEvent::PeerDisconnected { peer, .. }) if peer == a
    ));
    assert_eq!(net.server.available_packet_count(), 3);
    assert_eq!(
        packets(&mut net.server),
        (0..3u8)
            .map(|i| (a, Bytes::from(vec![i; 2])))
            .collect::<Vec<_>>()
    );
}

#[test]
fn packets_stay_readable_after_the_client_loses_the_server() {
    let (mut net, [a, ..]) = three();
    for i in 0..3u8 {
        net.server
            .send(net.now, Target::Peer(a), Bytes::from(vec![i; 5]))
            .expect("sent");
    }
    net.server.disconnect_peer(net.now, a, false).expect("ok");
    net.pump();
    let c = net.client(a);
    assert_eq!(c.connection_status(), ConnectionStatus::Disconnected);
    assert!(matches!(
        c.poll_signal(),
        Some(HostEvent::PeerDisconnected { peer, .. }) if peer == PeerId::SERVER
    ));
    assert_eq!(c.available_packet_count(), 3);
    assert_eq!(c.packet_peer(), Some(PeerId::SERVER));
    assert_eq!(
        packets(c),
        (0..3u8)
            .map(|i| (PeerId::SERVER, Bytes::from(vec![i; 5])))
            .collect::<Vec<_>>()
    );
    // poll_event gives the same order: packets before the disconnect.
    let (mut net, [a, ..]) = three();
    net.server
        .send(net.now, Target::Peer(a), Bytes::from_static(b"p"))
        .expect("sent");
    net.server.disconnect_peer(net.now, a, true).expect("ok");
    net.pump();
    let events = net.client_events(a);
    assert!(
        matches!(events.as_slice(), [HostEvent::PeerDisconnected { .. }]),
        "force drops queued output: {events:?}"
    );
}

#[test]
fn sending_on_a_closing_connection_is_not_reported_as_queue_full() {
    let (mut net, [a, ..]) = three();
    let now = net.now;
    let c = net.client(a);
    c.disconnect_peer(now, PeerId::SERVER, false).expect("ok");
    assert_eq!(c.connection_status(), ConnectionStatus::Connected);
    assert_eq!(
        c.send(now, Target::Broadcast, Bytes::from_static(b"late")),
        Err(HostSendError::UnknownPeer(
            PeerId::SERVER,
            Bytes::from_static(b"late")
        ))
    );
}
