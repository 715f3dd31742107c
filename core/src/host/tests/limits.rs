//! Outbound limits (QueueFull, TooLarge) and inbound backpressure.

use alloc::vec;
use alloc::vec::Vec;
use bytes::Bytes;

use super::harness::*;
use crate::config::Config;
use crate::connection::SendErrorKind;
use crate::host::*;

fn packets(h: &mut Host) -> Vec<(PeerId, Bytes)> {
    core::iter::from_fn(|| h.get_packet()).collect()
}

#[test]
fn too_large_is_refused_with_the_payload() {
    let config = Config {
        outbound_buffer_size: 1000,
        ..Config::default()
    };
    let mut net = Net::new(config);
    let a = net.join();
    let big = Bytes::from(vec![1u8; 1001]);
    for t in [Target::Peer(a), Target::Broadcast, Target::AllExcept(a)] {
        assert_eq!(
            net.server.send(net.now, t, big.clone()),
            Err(HostSendError::TooLarge(big.clone()))
        );
    }
    let now = net.now;
    assert_eq!(
        net.client(a).send(now, Target::Broadcast, big.clone()),
        Err(HostSendError::TooLarge(big.clone()))
    );
    // Exactly outbound_buffer_size is fine (max_packet_size is only reported).
    let ok = Bytes::from(vec![2u8; 1000]);
    net.server
        .send(now, Target::Peer(a), ok.clone())
        .expect("fits");
    net.pump();
    assert_eq!(packets(net.client(a)), vec![(PeerId::SERVER, ok)]);
}

#[test]
fn queue_full_hands_the_payload_back_and_spares_other_peers() {
    let config = Config {
        outbound_buffer_size: 1000,
        max_queued_packets: 4,
        ..Config::default()
    };
    let mut net = Net::new(config);
    let a = net.join();
    let b = net.join();
    let now = net.now;
    net.link(a).stall_server_write = true;
    // Bytes limit: 600 + 400 fit, one more byte does not.
    net.server
        .send(now, Target::Peer(a), Bytes::from(vec![1; 600]))
        .expect("fits");
    net.server
        .send(now, Target::Peer(a), Bytes::from(vec![2; 400]))
        .expect("fits");
    let extra = Bytes::from_static(b"!");
    assert_eq!(
        net.server.send(now, Target::Peer(a), extra.clone()),
        Err(HostSendError::QueueFull(a, extra.clone()))
    );
    assert_eq!(
        HostSendError::QueueFull(a, extra.clone()).into_payload(),
        extra
    );
    // A broadcast still reaches b; a is listed as failed.
    let r = net
        .server
        .send(now, Target::Broadcast, Bytes::from_static(b"bc"))
        .expect("broadcast never fails as a whole");
    assert_eq!(r.delivered, 1);
    assert_eq!(r.failed, vec![(a, SendErrorKind::QueueFull)]);
    net.pump();
    assert_eq!(
        packets(net.client(b)),
        vec![(PeerId::SERVER, Bytes::from_static(b"bc"))]
    );
    net.writable(a);
    let got = packets(net.client(a));
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].1.len(), 400);

    // Count limit: 4 messages, then QueueFull.
    net.link(b).stall_server_write = true;
    for i in 0..4u8 {
        net.server
            .send(now, Target::Peer(b), Bytes::from(vec![i]))
            .expect("fits");
    }
    assert!(matches!(
        net.server.send(now, Target::Peer(b), Bytes::from_static(b"5")),
        Err(HostSendError::QueueFull(p, _)) if p == b
    ));
    net.writable(b);
    assert_eq!(packets(net.client(b)).len(), 4);
}

#[test]
fn client_queue_full() {
    let config = Config {
        outbound_buffer_size: 100,
        ..Config::default()
    };
    let mut net = Net::new(config);
    let a = net.join();
    net.link(a).stall_client_write = true;
    let now = net.now;
    let c = net.client(a);
    c.send(now, Target::Broadcast, Bytes::from(vec![0; 100]))
        .expect("fits");
    assert!(matches!(
        c.send(now, Target::Broadcast, Bytes::from_static(b"x")),
        Err(HostSendError::QueueFull(p, _)) if p == PeerId::SERVER
    ));
    net.client_writable(a);
    assert_eq!(packets(&mut net.server).len(), 1);
}

/// Sends from `from` (a link id, or the server with `to`), pumping when the
/// sender's own queue is full (the harness writes every socket at once).
fn send_all(net: &mut Net, from: Option<PeerId>, to: PeerId, data: Vec<Bytes>) {
    for d in data {
        for attempt in 0.. {
            assert!(attempt < 10, "never fits");
            let now = net.now;
            let r = match from {
                Some(c) => net.client(c).send(now, Target::Broadcast, d.clone()),
                None => net.server.send(now, Target::Peer(to), d.clone()),
            };
            match r {
                Ok(_) => break,
                Err(HostSendError::QueueFull(..)) => net.pump(),
                Err(e) => panic!("{e}"),
            }
        }
    }
}

fn small_inbound() -> Config {
    Config {
        inbound_buffer_size: 1000,
        max_queued_packets: 8,
        ..Config::default()
    }
}

#[test]
fn server_backpressure_per_peer() {
    let mut net = Net::new(small_inbound());
    let a = net.join();
    let b = net.join();
    let _ = net.server_events();
    let now = net.now;
    // a sends 30 × 100 bytes: only ~1000 bytes / 8 packets fit unread.
    send_all(
        &mut net,
        Some(a),
        PeerId::SERVER,
        (0..30u8).map(|i| Bytes::from(vec![i; 100])).collect(),
    );
    net.pump();
    let held = net.server.available_packet_count();
    assert!((1..=8).contains(&held), "{held}");
    assert!(!net.server.can_read(a), "a full peer is not read");
    assert!(
        !net.link(a).to_server.is_empty(),
        "the rest waits in the socket"
    );
    // b is not affected by a being full.
    assert!(net.server.can_read(b));
    net.client(b)
        .send(now, Target::Broadcast, Bytes::from_static(b"from-b"))
        .expect("sent");
    net.pump();
    assert_eq!(net.server.available_packet_count(), held + 1);
    // Reading drains a in order, nothing dropped.
    let mut from_a = Vec::new();
    for _ in 0..200 {
        match net.server.get_packet() {
            Some((p, d)) if p == a => from_a.push(d[0]),
            Some((p, _)) => assert_eq!(p, b),
            None => {
                net.pump();
                if net.server.available_packet_count() == 0 {
                    break;
                }
            }
        }
    }
    assert_eq!(from_a, (0..30u8).collect::<Vec<_>>());
    assert!(net.server.can_read(a));
    assert_eq!(net.server.connected_count(), 2);
}

#[test]
fn client_backpressure() {
    let mut net = Net::new(small_inbound());
    let a = net.join();
    let _ = net.client_events(a);
    send_all(
        &mut net,
        None,
        a,
        (0..30u8).map(|i| Bytes::from(vec![i; 100])).collect(),
    );
    net.pump();
    let c = net.client(a);
    let held = c.available_packet_count();
    assert!((1..=8).contains(&held), "{held}");
    assert!(!c.can_read(PeerId::SERVER));
    let mut got = Vec::new();
    for _ in 0..200 {
        match net.client(a).get_packet() {
            Some((_, d)) => got.push(d[0]),
            None => {
                net.pump();
                if net.client(a).available_packet_count() == 0 {
                    break;
                }
            }
        }
    }
    assert_eq!(got, (0..30u8).collect::<Vec<_>>());
}

#[test]
fn backpressure_by_packet_count() {
    let mut net = Net::new(small_inbound());
    let a = net.join();
    send_all(
        &mut net,
        Some(a),
        PeerId::SERVER,
        (0..20u8).map(|i| Bytes::from(vec![i])).collect(),
    );
    net.pump();
    assert_eq!(net.server.available_packet_count(), 8);
    assert!(!net.server.can_read(a));
    let _ = net.server.get_packet();
    assert!(net.server.can_read(a));
    net.pump();
    assert_eq!(net.server.available_packet_count(), 8);
}

#[test]
fn can_read_is_false_right_after_the_input_that_filled_the_peer() {
    let mut net = Net::new(small_inbound());
    let a = net.join();
    let _ = net.server_events();
    // 20 one-byte packets written by the client, fed to the server in one call.
    let now = net.now;
    let link = net.link(a);
    link.stall_client_write = true;
    for i in 0..8u8 {
        link.client
            .send(now, Target::Broadcast, Bytes::from(vec![i]))
            .expect("sent");
    }
    let bytes: Vec<u8> = link
        .client
        .transmit(PeerId::SERVER)
        .expect("peer")
        .flat_map(|c| c.iter().copied())
        .collect();
    let mut input = bytes.clone();
    // The same eight frames again (masks repeat; the server does not care).
    input.extend_from_slice(&bytes);
    let n = net.server.handle_input(now, a, &input).expect("known");
    assert_eq!(n, bytes.len(), "stops after 8 packets");
    assert_eq!(net.server.available_packet_count(), 8);
    assert!(!net.server.can_read(a), "full after one call");
    let _ = net.server.get_packet();
    assert!(net.server.can_read(a));
}

/// Found by the `host_ops` fuzz target: unsolicited pongs and empty
/// messages count against a connection's `max_queued_packets` until the
/// host takes them out of its event queue — and the host keeps neither. The
/// connection stopped at the limit, the host drained it at once, and
/// `handle_input` returned fewer bytes than offered while `can_read` was
/// true: an adapter following the contract waited for a `poll_dirty` that
/// never came. The host now feeds the rest in the same call.
#[test]
fn input_is_not_refused_for_events_the_host_drops() {
    use crate::connection::tests::harness::cframe;
    let mut net = Net::new(small_inbound());
    let a = net.join();
    let _ = net.server_events();
    let mut input = Vec::new();
    for _ in 0..20 {
        input.extend(cframe(0x8A, b"")); // unsolicited pong (RFC 6455 §5.5.3)
        input.extend(cframe(0x82, b"")); // empty message (discarded, spec §3.5)
    }
    input.extend(cframe(0x82, b"data"));
    let now = net.now;
    let n = net.server.handle_input(now, a, &input).expect("known");
    assert!(
        n == input.len() || !net.server.can_read(a),
        "refused {} of {} bytes while can_read()",
        input.len() - n,
        input.len()
    );
    assert_eq!(n, input.len());
    assert_eq!(
        net.server.get_packet(),
        Some((a, Bytes::from_static(b"data")))
    );
}
