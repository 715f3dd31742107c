//! `Host::adopt` / `Host::reserve_id`: connections whose opening handshake
//! ran outside the host (the adapter's own task) join it as if they had
//! completed their handshake inside.

use alloc::sync::Arc;
use alloc::vec::Vec;
use bytes::Bytes;

use super::harness::{rng, URL};
use crate::config::Config;
use crate::connection::{Admission, Connection, Event, MessageKind, State, TransmitBatch};
use crate::host::{decode_id_message, AdoptError, Host, HostEvent, PeerId, Target};
use crate::time::Timestamp;

fn now() -> Timestamp {
    Timestamp::from_millis(1)
}

/// Moves every queued byte from `from` to `to` (through a lease, as the
/// adapters write), returning what was written.
fn pump(from: &mut Connection, to: &mut Connection) -> Vec<u8> {
    let mut batch = TransmitBatch::new();
    let mut wire = Vec::new();
    loop {
        from.lease_transmit(&mut batch, 64, usize::MAX);
        if batch.is_empty() {
            return wire;
        }
        let bytes: Vec<u8> = batch.chunks().flat_map(|c| c.iter().copied()).collect();
        from.advance_transmit(now(), bytes.len());
        assert_eq!(to.handle_input(now(), &bytes), bytes.len());
        wire.extend_from_slice(&bytes);
    }
}

/// A client and a server connection with the server's handshake done
/// outside any host (manual admission, accepted).
fn opened_pair(take_open: bool) -> (Connection, Connection) {
    let config = Arc::new(Config::default());
    let mut client = Connection::client(config.clone(), URL, now(), rng(7)).expect("client");
    let mut server = Connection::server(config, now(), Admission::Manual).expect("valid config");
    pump(&mut client, &mut server);
    match server.poll_event() {
        Some(Event::Request(r)) => assert!(r.is_upgrade),
        other => panic!("expected the request, got {other:?}"),
    }
    server.accept(now(), Default::default()).expect("accept");
    assert_eq!(server.state(), State::Open);
    if take_open {
        assert!(matches!(server.poll_event(), Some(Event::Open { .. })));
    }
    (client, server)
}

fn server_host() -> Host {
    Host::server(Config::default(), Admission::Automatic, rng(1)).expect("server")
}

#[test]
fn adopted_peer_gets_the_id_message_first_and_is_announced() {
    for take_open in [false, true] {
        let (mut client, server) = opened_pair(take_open);
        let mut host = server_host();
        let id = host.adopt(now(), server, None, None).expect("adopt");
        assert_eq!(host.poll_event(), Some(HostEvent::PeerConnected(id)));
        assert_eq!(host.poll_event(), None);
        assert_eq!(host.poll_dirty(), Some(id));
        // The 101 response, then the id message as the first frame (spec §3.7).
        let mut batch = TransmitBatch::new();
        host.lease_transmit(id, &mut batch, 64, usize::MAX);
        let wire: Vec<u8> = batch.chunks().flat_map(|c| c.iter().copied()).collect();
        host.advance_transmit(now(), id, wire.len());
        assert_eq!(client.handle_input(now(), &wire), wire.len());
        assert!(matches!(client.poll_event(), Some(Event::Open { .. })));
        match client.poll_event() {
            Some(Event::Message(m)) => {
                assert_eq!(m.kind, MessageKind::Binary);
                assert_eq!(decode_id_message(&m.data), Some(id));
            }
            other => panic!("expected the id message, got {other:?}"),
        }
        // Packets flow both ways.
        client
            .send(now(), MessageKind::Binary, Bytes::from_static(b"hi"))
            .expect("send");
        let mut out = Vec::new();
        client.lease_transmit(&mut batch, 64, usize::MAX);
        out.extend(batch.chunks().flat_map(|c| c.iter().copied()));
        client.advance_transmit(now(), out.len());
        assert_eq!(host.handle_input(now(), id, &out), Ok(out.len()));
        assert_eq!(
            host.poll_event(),
            Some(HostEvent::Packet {
                from: id,
                data: Bytes::from_static(b"hi")
            })
        );
        host.send(now(), Target::Peer(id), Bytes::from_static(b"yo"))
            .expect("send to adopted peer");
        assert_eq!(host.connected_count(), 1);
        assert_eq!(host.stats().accepted, 1);
    }
}

#[test]
fn reserved_ids_are_not_drawn_again_and_can_be_used_once() {
    let mut host = server_host();
    let reserved = host.reserve_id().expect("reserve");
    let (_c, server) = opened_pair(false);
    let id = host
        .adopt(now(), server, None, Some(reserved))
        .expect("adopt with the reserved id");
    assert_eq!(id, reserved);
    // The same id again is refused (the caller drops that connection).
    let (_c2, server2) = opened_pair(false);
    assert_eq!(
        host.adopt(now(), server2, None, Some(reserved)),
        Err(AdoptError::IdInUse(reserved))
    );
    let (_c3, server3) = opened_pair(false);
    assert_eq!(
        host.adopt(now(), server3, None, Some(PeerId::SERVER)),
        Err(AdoptError::IdInUse(PeerId::SERVER))
    );
    let other = host.reserve_id().expect("reserve");
    assert_ne!(other, reserved);
    host.cancel_reservation(other);
}

#[test]
fn adopt_refuses_while_refusing_and_unopened_connections() {
    let mut host = server_host();
    host.set_refuse_new_connections(true);
    let (_c, server) = opened_pair(false);
    assert_eq!(
        host.adopt(now(), server, None, None),
        Err(AdoptError::Refusing)
    );
    assert_eq!(host.stats().refused, 1);
    host.set_refuse_new_connections(false);
    let pending = Connection::server(Arc::new(Config::default()), now(), Admission::Manual)
        .expect("valid config");
    assert_eq!(
        host.adopt(now(), pending, None, None),
        Err(AdoptError::NotOpen)
    );
    let mut client_host = Host::client(Config::default(), URL, now(), rng(3)).expect("client host");
    let (_c, server) = opened_pair(false);
    assert_eq!(
        client_host.adopt(now(), server, None, None),
        Err(AdoptError::NotServer)
    );
    assert_eq!(host.connected_count(), 0);
}

/// A connection adopted with messages already in its event queue (frames
/// that came right behind the upgrade request, read by the adapter's task):
/// the application sees `PeerConnected` before the peer's first packet,
/// whether or not the caller took the `Open` event.
#[test]
fn packets_read_before_adoption_follow_peer_connected() {
    for take_open in [false, true] {
        let config = Arc::new(Config::default());
        let mut client = Connection::client(config.clone(), URL, now(), rng(9)).expect("client");
        let mut server =
            Connection::server(config, now(), Admission::Automatic).expect("valid config");
        let mut batch = TransmitBatch::new();
        client.lease_transmit(&mut batch, 64, usize::MAX);
        let mut input: Vec<u8> = batch.chunks().flat_map(|c| c.iter().copied()).collect();
        input.extend(crate::connection::tests::harness::cframe(0x82, b"early"));
        assert_eq!(server.handle_input(now(), &input), input.len());
        if take_open {
            assert!(matches!(server.poll_event(), Some(Event::Open { .. })));
        }
        let mut host = server_host();
        let id = host.adopt(now(), server, None, None).expect("adopt");
        assert_eq!(
            host.poll_event(),
            Some(HostEvent::PeerConnected(id)),
            "{take_open}"
        );
        assert_eq!(
            host.poll_event(),
            Some(HostEvent::Packet {
                from: id,
                data: Bytes::from_static(b"early")
            })
        );
    }
}
