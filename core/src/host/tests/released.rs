//! Packets of released peers (issue 10 review): they stay readable after
//! `release`, keep counting against a host-wide budget, and their peer's id
//! is not handed out again until they are read.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use bytes::Bytes;

use super::harness::*;
use crate::config::Config;
use crate::connection::{Admission, Connection, Event, State, TransmitBatch};
use crate::host::*;
use crate::time::Timestamp;

fn small_inbound() -> Config {
    Config {
        inbound_buffer_size: 1000,
        max_queued_packets: 8,
        ..Config::default()
    }
}

/// Client `id` sends `n` one-byte packets; everything is pumped.
fn flood(net: &mut Net, id: PeerId, n: u8) {
    let now = net.now;
    for i in 0..n {
        net.client(id)
            .send(now, Target::Broadcast, Bytes::from(vec![i]))
            .expect("queued");
    }
    net.pump();
}

/// The client's socket vanishes (reset): the adapter releases the peer.
fn vanish(net: &mut Net, id: PeerId) {
    let now = net.now;
    net.server.release(now, id);
    let link = net.link(id);
    link.server_open = false;
    link.to_server.clear();
    net.pump();
}

#[test]
fn reconnect_flood_cannot_grow_the_host_queue() {
    let mut net = Net::new(small_inbound());
    for _ in 0..20 {
        let a = net.join();
        flood(&mut net, a, 8);
        vanish(&mut net, a);
    }
    // Without a bound every new connection brought its own 8 unread packets
    // (160 here); released peers' packets now share one budget of 8.
    let held = net.server.available_packet_count();
    assert!(held <= 8, "{held} unread packets held for released peers");
    // They are still readable, in order (module docs).
    let first: Vec<u8> = core::iter::from_fn(|| net.server.get_packet())
        .map(|(_, d)| d[0])
        .collect();
    assert_eq!(first, (0..8).collect::<Vec<u8>>());
}

#[test]
fn peers_paused_by_released_packets_resume_when_they_are_read() {
    let mut net = Net::new(small_inbound());
    let a = net.join();
    let b = net.join();
    let _ = net.server_events();
    flood(&mut net, a, 8);
    vanish(&mut net, a);
    // The budget for released peers is used up: b's input waits.
    flood(&mut net, b, 3);
    assert_eq!(net.server.available_packet_count(), 8);
    assert!(
        !net.server.can_read(b),
        "paused while released packets fill the budget"
    );
    while net.server.poll_dirty().is_some() {}
    // Reading them wakes b through poll_dirty.
    for _ in 0..8 {
        assert_eq!(net.server.get_packet().map(|(p, _)| p), Some(a));
    }
    assert!(net.server.can_read(b));
    let mut woken = Vec::new();
    while let Some(id) = net.server.poll_dirty() {
        woken.push(id);
    }
    assert!(woken.contains(&b), "{woken:?}");
    net.pump();
    let from_b: Vec<(PeerId, u8)> = core::iter::from_fn(|| net.server.get_packet())
        .map(|(p, d)| (p, d[0]))
        .collect();
    assert_eq!(from_b, vec![(b, 0), (b, 1), (b, 2)]);
}

/// A server whose peer ids come from `script` (then pseudo-random ones).
fn scripted(config: Config, script: Vec<u32>) -> Net {
    let mut net = Net::new(config.clone());
    let rng: crate::connection::Rng = Box::new(Scripted(script, SplitMix64(3)));
    net.server = Host::server(config, Admission::Automatic, rng).expect("server");
    net
}

#[test]
fn accept_does_not_reuse_the_id_of_a_released_peer_with_unread_packets() {
    let mut net = scripted(small_inbound(), vec![1000, 1000, 2000]);
    let a = net.join();
    assert_eq!(a.get(), 1000);
    flood(&mut net, a, 2);
    vanish(&mut net, a);
    net.links.remove(&a);
    // The RNG offers 1000 again: its packets are unread, so it is skipped.
    let b = net.join();
    assert_eq!(b.get(), 2000);
    flood(&mut net, b, 1);
    let got: Vec<(PeerId, u8)> = core::iter::from_fn(|| net.server.get_packet())
        .map(|(p, d)| (p, d[0]))
        .collect();
    assert_eq!(got, vec![(a, 0), (a, 1), (b, 0)]);
    // Once they are read the id is free again.
    let mut net = scripted(small_inbound(), vec![1000, 1000]);
    let a = net.join();
    flood(&mut net, a, 1);
    vanish(&mut net, a);
    net.links.remove(&a);
    assert!(net.server.get_packet().is_some());
    assert_eq!(net.join().get(), 1000);
}

fn now() -> Timestamp {
    Timestamp::from_millis(1)
}

/// A server connection whose handshake ran outside any host.
fn opened() -> Connection {
    let config = Arc::new(Config::default());
    let mut client = Connection::client(config.clone(), URL, now(), rng(7)).expect("client");
    let mut server = Connection::server(config, now(), Admission::Automatic).expect("valid config");
    let mut batch = TransmitBatch::new();
    client.lease_transmit(&mut batch, 64, usize::MAX);
    let req: Vec<u8> = batch.chunks().flat_map(|c| c.iter().copied()).collect();
    assert_eq!(server.handle_input(now(), &req), req.len());
    assert!(matches!(server.poll_event(), Some(Event::Open { .. })));
    assert_eq!(server.state(), State::Open);
    server
}

/// Server host with peer `id` (from the script) holding one unread packet
/// after its release.
fn host_with_released_packet(script: Vec<u32>) -> (Host, PeerId) {
    let rng: crate::connection::Rng = Box::new(Scripted(script, SplitMix64(5)));
    let mut host = Host::server(Config::default(), Admission::Automatic, rng).expect("server");
    let id = host.adopt(now(), opened(), None, None).expect("adopt");
    // One masked binary frame "x" from the client.
    let frame = [0x82, 0x81, 1, 2, 3, 4, b'x' ^ 1];
    assert_eq!(host.handle_input(now(), id, &frame), Ok(frame.len()));
    host.release(now(), id);
    assert_eq!(host.available_packet_count(), 1);
    (host, id)
}

#[test]
fn reserve_id_and_adopt_skip_released_ids_with_unread_packets() {
    let (mut host, id) = host_with_released_packet(vec![3000, 3000, 4000]);
    assert_eq!(id.get(), 3000);
    let reserved = host.reserve_id().expect("reserve");
    assert_eq!(reserved.get(), 4000);
    let (mut host, _) = host_with_released_packet(vec![3000, 3000, 4000]);
    let drawn = host.adopt(now(), opened(), None, None).expect("adopt");
    assert_eq!(drawn.get(), 4000);
    assert_eq!(host.get_packet().map(|(p, _)| p.get()), Some(3000));
}

#[test]
fn adopt_refuses_a_released_id_with_unread_packets() {
    let (mut host, id) = host_with_released_packet(vec![3000]);
    let refused = host.adopt(now(), opened(), None, Some(id));
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(host.connected_count(), 0);
    assert_eq!(host.get_packet().map(|(p, _)| p), Some(id));
    // Read: the id may be used again.
    assert_eq!(host.adopt(now(), opened(), None, Some(id)), Ok(id));
}

/// Found by the `host_ops` fuzz target: a pending peer's request stayed in
/// the request queue after the peer was released (handshake timeout), so
/// the adapter was shown a request for a peer that no longer exists, or —
/// once the id was drawn again — a stale request under a new peer's id.
#[test]
fn requests_of_released_peers_are_not_shown() {
    let mut net = Net::new(Config::default());
    net.server = Host::server(
        Config::default(),
        Admission::Manual,
        Box::new(Scripted(vec![1000, 1000], SplitMix64(3))),
    )
    .expect("server");
    let a = net.connect();
    net.pump();
    // The request waits for a decision; the peer misses handshake_timeout.
    net.advance(core::time::Duration::from_secs(4));
    assert!(
        net.server.connection(a).is_none(),
        "released after the timeout"
    );
    assert_eq!(
        net.server.poll_request(),
        None,
        "stale request of a released peer"
    );
    // A new peer drawn with the same id shows its own request, once.
    net.links.remove(&a);
    let b = net.connect();
    assert_eq!(b, a);
    net.pump();
    assert!(matches!(
        net.server.poll_request(),
        Some(HostEvent::Request { peer, .. }) if peer == b
    ));
    assert_eq!(net.server.poll_request(), None);
}

/// A peer whose upgrade request and first frames arrive in one read must
/// not bring packets in while the released peers' budget is used up (else
/// connect + pipelined frames + disconnect, repeated, grows the queue).
#[test]
fn frames_pipelined_after_the_handshake_wait_for_the_released_budget() {
    use crate::connection::tests::harness::cframe;
    let mut net = Net::new(small_inbound());
    let a = net.join();
    flood(&mut net, a, 8);
    vanish(&mut net, a);
    assert_eq!(net.server.available_packet_count(), 8);
    // A raw client: its request and three frames in one read.
    let now = net.now;
    let b = net.server.accept(now, None).expect("accept");
    let mut client = Host::client(small_inbound(), URL, now, rng(77)).expect("client");
    let mut input: Vec<u8> = client
        .transmit(PeerId::SERVER)
        .expect("peer 1")
        .flat_map(|c| c.iter().copied())
        .collect();
    let head = input.len();
    client.advance_transmit(now, PeerId::SERVER, head);
    for i in 0..3u8 {
        input.extend(cframe(0x82, &[i]));
    }
    let n = net.server.handle_input(now, b, &input).expect("known");
    assert_eq!(n, head, "the handshake is read, the frames wait");
    assert_eq!(net.server.available_packet_count(), 8);
    assert!(!net.server.can_read(b));
    // Reading the released packets resumes b.
    while net.server.poll_dirty().is_some() {}
    for _ in 0..8 {
        assert_eq!(net.server.get_packet().map(|(p, _)| p), Some(a));
    }
    let mut woken = Vec::new();
    while let Some(id) = net.server.poll_dirty() {
        woken.push(id);
    }
    assert!(woken.contains(&b), "{woken:?}");
    assert!(net.server.can_read(b));
    let rest = &input[n..];
    assert_eq!(net.server.handle_input(now, b, rest), Ok(rest.len()));
    let got: Vec<(PeerId, u8)> = core::iter::from_fn(|| net.server.get_packet())
        .map(|(p, d)| (p, d[0]))
        .collect();
    assert_eq!(got, vec![(b, 0), (b, 1), (b, 2)]);
}

/// Found by `host_ops`: while the released budget held a pending peer's
/// frames back, a handshake refused on completion (refuse_new_connections)
/// left input unconsumed with `can_read` true — the contract says fewer
/// bytes than offered only while `can_read` is false.
#[test]
fn refused_handshake_with_pipelined_frames_keeps_the_input_contract() {
    use crate::connection::tests::harness::cframe;
    let mut net = Net::new(small_inbound());
    let a = net.join();
    flood(&mut net, a, 8);
    vanish(&mut net, a);
    let now = net.now;
    let b = net.server.accept(now, None).expect("accept");
    net.server.set_refuse_new_connections(true);
    let client = Host::client(small_inbound(), URL, now, rng(78)).expect("client");
    let mut input: Vec<u8> = client
        .transmit(PeerId::SERVER)
        .expect("peer 1")
        .flat_map(|c| c.iter().copied())
        .collect();
    for i in 0..3u8 {
        input.extend(cframe(0x82, &[i]));
    }
    let n = net.server.handle_input(now, b, &input).expect("known");
    assert!(
        n == input.len() || !net.server.can_read(b),
        "refused {} of {} bytes while can_read()",
        input.len() - n,
        input.len()
    );
    assert_eq!(net.server.stats().refused, 1);
    assert_eq!(net.server.available_packet_count(), 8);
}

/// An open server connection (handshake run outside the host) that read
/// `n` one-byte messages right behind the request.
fn opened_with_pipelined(config: &Config, n: u8) -> Connection {
    use crate::connection::tests::harness::cframe;
    let config = Arc::new(config.clone());
    let mut client = Connection::client(config.clone(), URL, now(), rng(8)).expect("client");
    let mut server = Connection::server(config, now(), Admission::Automatic).expect("valid");
    let mut batch = TransmitBatch::new();
    client.lease_transmit(&mut batch, 64, usize::MAX);
    let mut input: Vec<u8> = batch.chunks().flat_map(|c| c.iter().copied()).collect();
    for i in 0..n {
        input.extend(cframe(0x82, &[i]));
    }
    assert_eq!(server.handle_input(now(), &input), input.len());
    assert!(matches!(server.poll_event(), Some(Event::Open { .. })));
    server
}

/// Found by `host_ops`: messages an adopted connection had already read
/// (pipelined behind the request, read in the adapter's task) entered the
/// host queue whatever the released budget, so adopt + disconnect, repeated,
/// grew the queue. While the budget is used up they now stay in the
/// connection (counted against its own limits) until the peer is resumed;
/// released before that, they go with it (`HostStats::dropped_paused`).
#[test]
fn adopted_connections_cannot_grow_the_released_packets() {
    let config = small_inbound();
    let mut host = Host::server(config.clone(), Admission::Automatic, rng(4)).expect("server");
    let a = host
        .adopt(now(), opened_with_pipelined(&config, 8), None, None)
        .expect("adopt");
    host.release(now(), a);
    assert_eq!(host.available_packet_count(), 8);
    for _ in 0..5 {
        let b = host
            .adopt(now(), opened_with_pipelined(&config, 3), None, None)
            .expect("adopt");
        host.release(now(), b);
    }
    assert_eq!(host.available_packet_count(), 8, "bounded by the budget");
    assert_eq!(host.stats().dropped_paused, 15);
}

#[test]
fn adopted_peer_packets_held_for_the_released_budget_follow_once_resumed() {
    let config = small_inbound();
    let mut host = Host::server(config.clone(), Admission::Automatic, rng(4)).expect("server");
    let a = host
        .adopt(now(), opened_with_pipelined(&config, 8), None, None)
        .expect("adopt");
    host.release(now(), a);
    let b = host
        .adopt(now(), opened_with_pipelined(&config, 3), None, None)
        .expect("adopt");
    assert!(!host.can_read(b));
    let mut seen = Vec::new();
    while let Some(e) = host.poll_event() {
        match e {
            HostEvent::Packet { from, data } => seen.push((from, data[0])),
            HostEvent::PeerConnected(p) => seen.push((p, 0xFF)),
            HostEvent::PeerDisconnected { peer, .. } => seen.push((peer, 0xEE)),
            other => panic!("{other:?}"),
        }
    }
    let mut want: Vec<(PeerId, u8)> = vec![(a, 0xFF)];
    want.extend((0..8).map(|i| (a, i)));
    want.push((a, 0xEE));
    want.push((b, 0xFF));
    want.extend((0..3).map(|i| (b, i)));
    assert_eq!(seen, want);
    assert!(host.can_read(b));
}

#[test]
fn a_peer_released_while_closing_is_reported_gone_before_its_id_returns() {
    // Found by the `host_ops` fuzzer: the client's close frame arrived, the
    // host's reply was not written yet (Closing), and the socket ended: the
    // peer was forgotten without `PeerDisconnected`, and its id, drawn again
    // for the next peer, was announced twice.
    let rng: crate::connection::Rng = Box::new(Scripted(vec![3000, 3000], SplitMix64(5)));
    let mut host = Host::server(Config::default(), Admission::Automatic, rng).expect("server");
    let id = host.adopt(now(), opened(), None, None).expect("adopt");
    // A masked close frame, code 3000.
    let close = [0x88, 0x82, 1, 2, 3, 4, 0x0B ^ 1, 0xB8 ^ 2];
    assert_eq!(host.handle_input(now(), id, &close), Ok(close.len()));
    assert_eq!(
        host.connection(id).map(Connection::state),
        Some(State::Closing)
    );
    host.release(now(), id);
    assert_eq!(host.connected_count(), 0);
    let again = host.adopt(now(), opened(), None, None).expect("adopt");
    assert_eq!(again, id, "the script draws the same id");
    let signals: Vec<HostEvent> = core::iter::from_fn(|| host.poll_signal()).collect();
    assert!(
        matches!(
            &signals[..],
            [
                HostEvent::PeerConnected(a),
                HostEvent::PeerDisconnected { peer: b, info: Some(info) },
                HostEvent::PeerConnected(c),
            ] if *a == id && *b == id && *c == id && info.code == crate::frame::CloseCode(3000)
        ),
        "{signals:?}"
    );
}
