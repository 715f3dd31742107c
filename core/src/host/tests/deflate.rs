//! permessage-deflate through the host: a broadcast is compressed once and
//! the compressed frame shared by every peer with the same parameters, peers
//! without compression get the plain frame, and packets arrive intact.

use alloc::string::String;
use alloc::vec::Vec;
use bytes::Bytes;

use super::harness::*;
use crate::config::Config;
use crate::connection::SharedFrame;
use crate::frame::{FrameHeader, OpCode};
use crate::handshake::DeflateConfig;
use crate::host::*;

fn state(n: usize) -> Bytes {
    let mut s = String::from("{\"players\":[");
    let mut i = 0;
    while s.len() < n {
        s.push_str(&alloc::format!(
            "{{\"id\":{i},\"x\":{},\"y\":{},\"hp\":100}},",
            i * 13 % 640,
            i * 29 % 480
        ));
        i += 1;
    }
    let mut v = s.into_bytes();
    v.truncate(n);
    Bytes::from(v)
}

fn config(d: Option<DeflateConfig>) -> Config {
    Config {
        permessage_deflate: d,
        ..Config::default()
    }
}

/// The first frame the server queued for `id`: (first byte, body pointer
/// when the payload is not inline, payload length).
fn queued(net: &Net, id: PeerId) -> (u8, Option<usize>, usize) {
    let chunks: Vec<&[u8]> = net.server.transmit(id).expect("peer").collect();
    let head = chunks[0];
    let (h, n) = FrameHeader::decode(head).expect("valid").expect("complete");
    let body = (head.len() == n).then(|| chunks[1].as_ptr() as usize);
    (head[0], body, h.payload_len as usize)
}

#[test]
fn broadcast_is_compressed_once_and_shared() {
    let shared = Some(DeflateConfig {
        server_no_context_takeover: true,
        ..DeflateConfig::default()
    });
    let mut net = Net::new(config(shared));
    let a = net.join();
    let b = net.join();
    let c = net.join();
    // A peer that does not offer the extension (a Godot engine).
    net.config = config(None);
    let plain = net.join();
    let _ = net.server_events();
    let data = state(2048);
    let now = net.now;
    let r = net
        .server
        .send(now, Target::Broadcast, data.clone())
        .expect("sent");
    assert_eq!(r.delivered, 4);
    let fa = queued(&net, a);
    let fb = queued(&net, b);
    let fc = queued(&net, c);
    // RSV1 + binary; one compressed body shared by the three (same pointer).
    assert_eq!(fa.0, 0xC2);
    assert!(
        fa.1.is_some() && fa.1 == fb.1 && fb.1 == fc.1,
        "{fa:?} {fb:?} {fc:?}"
    );
    assert!(fa.2 < data.len() / 3, "compressed to {}", fa.2);
    // The engine peer gets the plain frame.
    assert_eq!(
        queued(&net, plain),
        (0x82, Some(data.as_ptr() as usize), data.len())
    );
    net.pump();
    for id in [a, b, c, plain] {
        let got: Vec<Bytes> = core::iter::from_fn(|| net.client(id).get_packet())
            .map(|(_, d)| d)
            .collect();
        assert_eq!(got, core::slice::from_ref(&data), "peer {id}");
    }
}

#[test]
fn one_shared_frame_through_two_hosts() {
    let shared = Some(DeflateConfig {
        server_no_context_takeover: true,
        ..DeflateConfig::default()
    });
    let mut one = Net::new(config(shared));
    let mut two = Net::new(config(shared));
    let x = one.join();
    let y = two.join();
    let frame = SharedFrame::unmasked(OpCode::Binary, state(3000));
    assert_eq!(one.server.send_shared(&frame, |_| true).delivered, 1);
    assert_eq!(two.server.send_shared(&frame, |_| true).delivered, 1);
    // Made by the first host, reused by the second.
    assert_eq!(queued(&one, x).1, queued(&two, y).1);
    one.pump();
    two.pump();
    assert_eq!(one.client(x).get_packet().map(|p| p.1), Some(state(3000)));
    assert_eq!(two.client(y).get_packet().map(|p| p.1), Some(state(3000)));
}

#[test]
fn per_connection_compression_with_context_takeover() {
    let mut net = Net::new(config(Some(DeflateConfig::default())));
    let a = net.join();
    let b = net.join();
    let _ = net.server_events();
    let now = net.now;
    for round in 0..3 {
        net.server
            .send(now, Target::Broadcast, state(2048))
            .expect("sent");
        let (fa, fb) = (queued(&net, a), queued(&net, b));
        assert_eq!((fa.0, fb.0), (0xC2, 0xC2));
        // Each peer compresses with its own history: separate bodies.
        assert!(fa.1.is_none() || fa.1 != fb.1);
        if round > 0 {
            // The repeat is found in the kept window: tiny.
            assert!(fa.2 < 40, "round {round}: {}", fa.2);
        }
        net.pump();
    }
    for id in [a, b] {
        let got: Vec<Bytes> = core::iter::from_fn(|| net.client(id).get_packet())
            .map(|(_, d)| d)
            .collect();
        assert_eq!(got, [state(2048), state(2048), state(2048)]);
    }
    // Clients' packets are compressed too and arrive intact.
    net.client(a)
        .send(now, Target::Peer(PeerId::SERVER), state(5000))
        .expect("sent");
    net.pump();
    assert_eq!(net.server.get_packet(), Some((a, state(5000))));
}

#[test]
fn shared_frame_is_send_sync_and_cheap_to_clone() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<SharedFrame>();
    // Hosts move between threads (one per core in the relay).
    send::<Host>();
    // Inline header + payload, a shared body and one pointer to the variants.
    assert!(
        core::mem::size_of::<SharedFrame>() <= 96,
        "{}",
        core::mem::size_of::<SharedFrame>()
    );
}
