#![allow(clippy::unwrap_used)]
//! permessage-deflate on a connection (RFC 7692): negotiation through both
//! handshakes, RSV1 rules, the RFC's own byte examples, the inflate bound,
//! backpressure, memory held per connection, and round trips across
//! fragment splits (proptest).

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;

use bytes::Bytes;
use proptest::prelude::*;

use super::super::{Admission, CloseCause, Connection, Event, MessageKind, State};
use super::harness::*;
use crate::config::Config;
use crate::deflate::{Compressor, TAIL};
use crate::frame::CloseCode;
use crate::handshake::{DeflateConfig, DeflateParams};

fn deflate_cfg(d: DeflateConfig) -> Arc<Config> {
    Arc::new(Config {
        permessage_deflate: Some(d),
        ..Config::default()
    })
}

fn json(n: usize) -> Vec<u8> {
    let mut s = String::from("[");
    let mut i = 0;
    while s.len() < n {
        s.push_str(&alloc::format!(
            "{{\"id\":{i},\"name\":\"player{i}\",\"x\":{},\"y\":{},\"alive\":true}},",
            i * 37 % 1000,
            i * 91 % 1000
        ));
        i += 1;
    }
    let mut v = s.into_bytes();
    v.truncate(n);
    v
}

/// A server opened by a request carrying `extensions`; returns it with its
/// `101` head.
fn server_offered(config: Arc<Config>, extensions: &str) -> (Connection, String) {
    let mut s = Connection::server(config, ms(0), Admission::Automatic).expect("valid config");
    let line = alloc::format!("Sec-WebSocket-Extensions: {extensions}");
    let req = request_with(&[line.as_str()]);
    assert_eq!(s.handle_input(ms(0), &req), req.len());
    let out = drain(&mut s, ms(0));
    assert_eq!(events(&mut s), [Event::Open { protocol: None }]);
    (s, String::from_utf8(out).expect("ascii head"))
}

/// Masked client frame bytes of RFC 7692 §7.2.3's server examples.
fn masked(bytes: &[u8]) -> Vec<u8> {
    frame(bytes[0], &bytes[2..], Some(MASK))
}

#[test]
fn negotiated_both_ways_and_reported() {
    let c = deflate_cfg(DeflateConfig::default());
    let s = deflate_cfg(DeflateConfig {
        server_no_context_takeover: true,
        ..DeflateConfig::default()
    });
    let mut p = Pair::new(c, s, 3);
    let request = drain(&mut p.client.conn, p.now);
    let text = core::str::from_utf8(&request).unwrap_or("");
    assert!(
        text.contains(
            "\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
        ),
        "{text}"
    );
    p.server.inbox.extend_from_slice(&request);
    p.pump();
    let want = DeflateParams {
        server_no_context_takeover: true,
        client_no_context_takeover: false,
        server_max_window_bits: 15,
        client_max_window_bits: 15,
    };
    assert_eq!(p.client.conn.permessage_deflate(), Some(want));
    assert_eq!(p.server.conn.permessage_deflate(), Some(want));
}

#[test]
fn no_offer_no_header_and_rsv1_is_a_protocol_error() {
    // A Godot client never offers: the 101 is byte-identical to one from a
    // server without deflate, and RSV1 fails the connection (RFC 6455 §5.2).
    let config = deflate_cfg(DeflateConfig::default());
    let mut with = open_server(config);
    let mut plain = Connection::server(cfg(), ms(0), Admission::Automatic).expect("valid config");
    let req = upgrade_request();
    plain.handle_input(ms(0), &req);
    let a = drain(&mut plain, ms(0));
    let mut again = Connection::server(
        deflate_cfg(DeflateConfig::default()),
        ms(0),
        Admission::Automatic,
    )
    .expect("valid config");
    again.handle_input(ms(0), &req);
    assert_eq!(drain(&mut again, ms(0)), a);
    assert_eq!(with.permessage_deflate(), None);
    with.handle_input(ms(1), &cframe(0xC1, b"\xf2\x48\xcd\xc9\xc9\x07\x00"));
    let out = parse_frames(&drain(&mut with, ms(1)));
    assert_eq!(
        out.last().map(|f| f.payload.clone()),
        Some(vec![0x03, 0xEA])
    );
}

#[test]
fn a_client_without_deflate_rejects_an_extension_answer() {
    let mut c = client(cfg());
    let req = drain(&mut c, ms(0));
    let resp = response_with(
        &accept_for(&req),
        &["Sec-WebSocket-Extensions: permessage-deflate"],
    );
    c.handle_input(ms(0), &resp);
    let info = closed_info(&events(&mut c));
    assert!(matches!(info.cause, CloseCause::Handshake(_)), "{info:?}");
}

#[test]
fn client_fails_on_a_bad_answer() {
    for bad in [
        "permessage-deflate; client_max_window_bits",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; x=1",
        "permessage-deflate, permessage-deflate",
        "x-webkit-deflate-frame",
    ] {
        let mut c = client(deflate_cfg(DeflateConfig::default()));
        let req = drain(&mut c, ms(0));
        let line = alloc::format!("Sec-WebSocket-Extensions: {bad}");
        let resp = response_with(&accept_for(&req), &[line.as_str()]);
        c.handle_input(ms(0), &resp);
        let info = closed_info(&events(&mut c));
        assert!(
            matches!(info.cause, CloseCause::Handshake(_)),
            "{bad}: {info:?}"
        );
        assert_eq!(c.state(), State::Closed);
    }
    // An answer without the extension: plain WebSocket.
    let mut c = client(deflate_cfg(DeflateConfig::default()));
    let req = drain(&mut c, ms(0));
    c.handle_input(ms(0), &response_with(&accept_for(&req), &[]));
    assert_eq!(c.state(), State::Open);
    assert_eq!(c.permessage_deflate(), None);
}

#[test]
fn rfc7692_examples_decode() {
    let (mut s, head) = server_offered(
        deflate_cfg(DeflateConfig::default()),
        "permessage-deflate; client_max_window_bits",
    );
    assert!(
        head.contains("\r\nSec-WebSocket-Extensions: permessage-deflate\r\n"),
        "{head}"
    );
    // §7.2.3.1 one compressed block; §7.2.3.2 the same with the shared window.
    let one = [0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    let shared = [0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00];
    // §7.2.3.3 a stored block; §7.2.3.4 BFINAL set; §7.2.3.5 two blocks.
    let stored = [
        0xc1, 0x0b, 0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
    ];
    let bfinal = [0xc1, 0x08, 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
    let two = [
        0xc1, 0x0d, 0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
    ];
    // §7.2.3.1 fragmented: RSV1 on the first frame only.
    let frag1 = [0x41, 0x03, 0xf2, 0x48, 0xcd];
    let frag2 = [0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00];
    let mut input = Vec::new();
    for f in [
        &one[..],
        &shared,
        &stored,
        &bfinal,
        &two,
        &frag1,
        &frag2,
        &one,
    ] {
        input.extend_from_slice(&masked(f));
    }
    // Byte by byte, to cross every step boundary.
    for b in &input {
        assert_eq!(s.handle_input(ms(1), core::slice::from_ref(b)), 1);
    }
    let got = events(&mut s);
    // Eight frames, seven messages (the last two frames are one).
    assert_eq!(got.len(), 7, "{got:?}");
    for e in got {
        assert_eq!(e, msg(MessageKind::Text, b"Hello"));
    }
}

#[test]
fn rsv1_only_on_first_data_frames() {
    let config = deflate_cfg(DeflateConfig::default());
    // On a continuation frame.
    let (mut s, _) = server_offered(config.clone(), "permessage-deflate");
    s.handle_input(ms(1), &cframe(0x41, b"\xf2\x48\xcd"));
    s.handle_input(ms(1), &cframe(0xC0, b"\xc9\xc9\x07\x00"));
    let out = parse_frames(&drain(&mut s, ms(1)));
    assert_eq!(
        out.last().map(|f| f.payload.clone()),
        Some(vec![0x03, 0xEA])
    );
    // On a control frame.
    let (mut s, _) = server_offered(config.clone(), "permessage-deflate");
    s.handle_input(ms(1), &cframe(0xC9, b""));
    let out = parse_frames(&drain(&mut s, ms(1)));
    assert_eq!(
        out.last().map(|f| f.payload.clone()),
        Some(vec![0x03, 0xEA])
    );
    // RSV2/RSV3 stay reserved.
    let (mut s, _) = server_offered(config, "permessage-deflate");
    s.handle_input(ms(1), &cframe(0xA1, b"x"));
    let out = parse_frames(&drain(&mut s, ms(1)));
    assert_eq!(
        out.last().map(|f| f.payload.clone()),
        Some(vec![0x03, 0xEA])
    );
}

#[test]
fn invalid_deflate_data_fails_with_1007() {
    let (mut s, _) = server_offered(deflate_cfg(DeflateConfig::default()), "permessage-deflate");
    // BTYPE 11 is reserved (RFC 1951 §3.2.3).
    s.handle_input(ms(1), &cframe(0xC2, &[0xff, 0xff, 0xff]));
    let out = parse_frames(&drain(&mut s, ms(1)));
    assert_eq!(
        out.last().map(|f| f.payload.clone()),
        Some(vec![0x03, 0xEF])
    );
}

#[test]
fn sent_messages_carry_rsv1_when_compressed_only() {
    let config = deflate_cfg(DeflateConfig::default());
    let (mut s, _) = server_offered(config, "permessage-deflate");
    let big = Bytes::from(json(2048));
    s.send(ms(1), MessageKind::Text, big.clone()).unwrap();
    // Below the threshold (128): plain.
    s.send(ms(1), MessageKind::Text, Bytes::from_static(b"{\"a\":1}"))
        .unwrap();
    // Incompressible: plain.
    let mut x = 7u32;
    let noise: Vec<u8> = (0..1000)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect();
    s.send(ms(1), MessageKind::Binary, Bytes::from(noise.clone()))
        .unwrap();
    let frames = parse_frames(&drain(&mut s, ms(1)));
    assert_eq!(frames[0].b0, 0xC1);
    assert!(
        frames[0].payload.len() < big.len() / 3,
        "{}",
        frames[0].payload.len()
    );
    assert_eq!(frames[1].b0, 0x81);
    assert_eq!(frames[2].b0, 0x82);
    assert_eq!(frames[2].payload, noise);
    // The RFC's decompression recovers the message.
    let mut d = crate::deflate::Decompressor::new();
    let mut out = Vec::new();
    let mut z = frames[0].payload.clone();
    z.extend_from_slice(&TAIL);
    d.inflate(&z, &mut out, 1 << 20).unwrap();
    assert_eq!(out, big);
}

#[test]
fn round_trip_with_each_parameter_set() {
    for (snct, cnct, sb, cb) in [
        (false, false, 15, 15),
        (true, false, 15, 15),
        (false, true, 15, 15),
        (true, true, 9, 9),
        (false, false, 10, 12),
    ] {
        let d = DeflateConfig {
            server_no_context_takeover: snct,
            client_no_context_takeover: cnct,
            server_max_window_bits: sb,
            client_max_window_bits: cb,
            ..DeflateConfig::default()
        };
        let mut p = Pair::new(deflate_cfg(d), deflate_cfg(d), 5);
        p.pump();
        assert!(p.client.conn.permessage_deflate().is_some());
        let msgs: Vec<Bytes> = (0..6).map(|i| Bytes::from(json(200 + i * 700))).collect();
        for m in &msgs {
            p.client
                .conn
                .send(p.now, MessageKind::Text, m.clone())
                .unwrap();
            p.server
                .conn
                .send(p.now, MessageKind::Binary, m.clone())
                .unwrap();
        }
        p.pump();
        let got: Vec<Bytes> = p.server.messages().into_iter().map(|m| m.data).collect();
        assert_eq!(got, msgs);
        let got: Vec<Bytes> = p.client.messages().into_iter().map(|m| m.data).collect();
        assert_eq!(got, msgs);
    }
}

#[test]
fn memory_held_between_messages_follows_context_takeover() {
    let measure = |d: DeflateConfig| {
        let mut p = Pair::new(deflate_cfg(d), deflate_cfg(d), 9);
        p.pump();
        let idle = p.server.conn.buffered_memory();
        for _ in 0..3 {
            p.client
                .conn
                .send(p.now, MessageKind::Text, Bytes::from(json(3000)))
                .unwrap();
            p.server
                .conn
                .send(p.now, MessageKind::Text, Bytes::from(json(3000)))
                .unwrap();
        }
        p.pump();
        assert_eq!(p.server.messages().len(), 3);
        (
            idle,
            p.server.conn.buffered_memory(),
            p.client.conn.buffered_memory(),
        )
    };
    let none = DeflateConfig {
        server_no_context_takeover: true,
        client_no_context_takeover: true,
        ..DeflateConfig::default()
    };
    let (idle, server, client) = measure(none);
    assert_eq!((idle, server, client), (0, 0, 0));
    let (_, server, client) = measure(DeflateConfig::default());
    // A decompressor and a 15-bit compressor each.
    assert!(server > 400_000 && client > 400_000, "{server} {client}");
    let shared = DeflateConfig {
        server_no_context_takeover: true,
        ..DeflateConfig::default()
    };
    let (_, server, client) = measure(shared);
    // The server keeps the client's history only; the client keeps its own
    // compressor but frees its decompressor after each message.
    assert_eq!(server, super::super::compression::DECOMPRESSOR_BYTES);
    assert_eq!(client, super::super::compression::compressor_bytes(15));
}

/// A compressed frame (masked) holding `zeros` zero bytes.
fn bomb(zeros: usize) -> (Vec<u8>, usize) {
    let z = Compressor::new(9, 15).compress(&vec![0u8; zeros]).unwrap();
    let len = z.len();
    (cframe(0xC2, &z), len)
}

#[test]
fn bomb_fails_with_1009_at_the_limit_not_the_inflated_size() {
    // 100 MiB of zeros in a ~100 KiB frame.
    let (frame, compressed) = bomb(100 << 20);
    assert!(compressed < 120_000, "{compressed}");
    for limit in [65_535usize, 4 << 20] {
        let config = Arc::new(Config {
            inbound_buffer_size: limit,
            permessage_deflate: Some(DeflateConfig::default()),
            ..Config::default()
        });
        let (mut s, _) = server_offered(config, "permessage-deflate");
        let mut peak = 0;
        let mut used = 0;
        for piece in frame.chunks(1400) {
            used += s.handle_input(ms(1), piece);
            peak = peak.max(s.buffered_memory());
            if s.state() != State::Open {
                break;
            }
        }
        assert!(used < frame.len(), "stopped before the end of the frame");
        // The message buffer never grew past the limit (+1 byte that shows it).
        let budget = limit + 1 + super::super::compression::DECOMPRESSOR_BYTES;
        assert!(peak <= budget, "limit {limit}: peak {peak}");
        let out = parse_frames(&drain(&mut s, ms(1)));
        assert_eq!(
            out.last().map(|f| f.payload.clone()),
            Some(vec![0x03, 0xF1])
        );
        assert_eq!(
            closed_info(&events(&mut s)).code,
            CloseCode::MESSAGE_TOO_BIG
        );
    }
}

#[test]
fn bomb_in_fragments_fails_with_1009() {
    let z = Compressor::new(9, 15)
        .compress(&vec![0u8; 8 << 20])
        .unwrap();
    let limit = 1 << 20;
    let config = Arc::new(Config {
        inbound_buffer_size: limit,
        permessage_deflate: Some(DeflateConfig::default()),
        ..Config::default()
    });
    let (mut s, _) = server_offered(config, "permessage-deflate");
    let pieces: Vec<&[u8]> = z.chunks(100).collect();
    let mut peak = 0;
    for (i, piece) in pieces.iter().enumerate() {
        let b0 = match (i, i + 1 == pieces.len()) {
            (0, _) => 0x42,
            (_, true) => 0x80,
            _ => 0x00,
        };
        s.handle_input(ms(1), &cframe(b0, piece));
        peak = peak.max(s.buffered_memory());
        if s.state() != State::Open {
            break;
        }
    }
    assert!(
        peak <= limit + 1 + super::super::compression::DECOMPRESSOR_BYTES,
        "{peak}"
    );
    let out = parse_frames(&drain(&mut s, ms(1)));
    assert_eq!(
        out.last().map(|f| f.payload.clone()),
        Some(vec![0x03, 0xF1])
    );
    assert_eq!(
        closed_info(&events(&mut s)).code,
        CloseCode::MESSAGE_TOO_BIG
    );
}

#[test]
fn exactly_at_the_limit_is_accepted() {
    let limit = 100_000;
    let config = Arc::new(Config {
        inbound_buffer_size: limit,
        permessage_deflate: Some(DeflateConfig::default()),
        ..Config::default()
    });
    let (mut s, _) = server_offered(config, "permessage-deflate");
    let data = json(limit);
    let z = Compressor::new(6, 15).compress(&data).unwrap();
    let f = cframe(0xC1, &z);
    assert_eq!(s.handle_input(ms(1), &f), f.len());
    assert_eq!(events(&mut s), [msg(MessageKind::Text, &data)]);
}

#[test]
fn backpressure_while_inflating_resumes_intact() {
    let limit = 50_000;
    let config = Arc::new(Config {
        inbound_buffer_size: limit,
        permessage_deflate: Some(DeflateConfig::default()),
        ..Config::default()
    });
    let (mut s, _) = server_offered(config, "permessage-deflate");
    let mut c = Compressor::new(6, 15);
    let msgs: Vec<Vec<u8>> = (0..4).map(|i| json(30_000 + i * 1000)).collect();
    let mut input = Vec::new();
    for m in &msgs {
        input.extend_from_slice(&cframe(0xC1, &c.compress(m).unwrap()));
    }
    let mut got = Vec::new();
    let mut pos = 0;
    let mut rounds = 0;
    let mut refused = false;
    while got.len() < msgs.len() {
        rounds += 1;
        assert!(rounds < 100, "stuck at {pos} of {}", input.len());
        let n = s.handle_input(ms(1), &input[pos..]);
        refused |= pos + n < input.len();
        pos += n;
        // Unread + partial never exceed the limit (+1 detection byte).
        assert!(
            s.buffered_memory() <= limit + 1 + 47_552 + 4_000,
            "{}",
            s.buffered_memory()
        );
        // Read one message, then offer the rest again.
        if let Some(Event::Message(m)) = s.poll_event() {
            got.push(m.data.to_vec());
        }
    }
    assert_eq!(got, msgs);
    assert!(
        refused,
        "input was refused while the application did not read"
    );
}

// ----- round trips across fragment and input splits (proptest) ------------

fn split_points(len: usize, cuts: &[usize]) -> Vec<usize> {
    let mut v: Vec<usize> = cuts.iter().map(|c| c % (len + 1)).collect();
    v.push(0);
    v.push(len);
    v.sort_unstable();
    v.dedup();
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// A compressed message split into any fragments (with pings between
    /// them), fed in any input chunks, with or without the peer's context
    /// takeover, arrives intact.
    #[test]
    fn compressed_fragments_round_trip(
        sizes in proptest::collection::vec(0usize..20_000, 1..4),
        cuts in proptest::collection::vec(any::<usize>(), 0..6),
        chunk in 1usize..3000,
        takeover in any::<bool>(),
        binary in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let offer = if takeover { "permessage-deflate" } else { "permessage-deflate; client_no_context_takeover" };
        let (mut s, _) = server_offered(deflate_cfg(DeflateConfig::default()), offer);
        let mut c = Compressor::new(1 + (seed % 9) as u8, 15);
        let mut input = Vec::new();
        let mut want = Vec::new();
        for (i, &n) in sizes.iter().enumerate() {
            let data = json(n.max(1) + i);
            if !takeover {
                c.reset();
            }
            let z = c.compress(&data).unwrap_or_else(|| {
                // Not smaller: a stored block still works as compressed data.
                let mut s = vec![0x00, (data.len() & 0xff) as u8, (data.len() >> 8) as u8];
                s.push(!(data.len() as u8));
                s.push(!((data.len() >> 8) as u8));
                s.extend_from_slice(&data);
                // The empty stored block's header bits (its LEN/NLEN are
                // the removed tail, RFC 7692 §7.2.3.3).
                s.push(0x00);
                s
            });
            let points = split_points(z.len(), &cuts);
            let frames = points.len() - 1;
            for (k, w) in points.windows(2).enumerate() {
                let fin = if k + 1 == frames { 0x80 } else { 0 };
                let op = if k == 0 { 0x40 | if binary { 2 } else { 1 } } else { 0 };
                input.extend_from_slice(&cframe(fin | op, &z[w[0]..w[1]]));
                if fin == 0 {
                    input.extend_from_slice(&cframe(0x89, b"p"));
                }
            }
            want.push(data);
        }
        let mut pos = 0;
        while pos < input.len() {
            let end = (pos + chunk).min(input.len());
            let n = s.handle_input(ms(1), &input[pos..end]);
            prop_assert_eq!(n, end - pos);
            pos = end;
        }
        let got: Vec<Vec<u8>> = events(&mut s)
            .into_iter()
            .filter_map(|e| match e {
                Event::Message(m) => Some(m.data.to_vec()),
                _ => None,
            })
            .collect();
        prop_assert_eq!(got, want);
        prop_assert_eq!(s.state(), State::Open);
    }

    /// Two connections with random parameters exchange random messages in
    /// random chunks: everything arrives unchanged.
    #[test]
    fn pair_round_trip_random_parameters(
        snct in any::<bool>(), cnct in any::<bool>(),
        sb in 9u8..=15, cb in 8u8..=15, level in 1u8..=9, threshold in 0usize..300,
        msgs in proptest::collection::vec((any::<bool>(), 0usize..5000, any::<u8>()), 1..6),
        chunk in prop_oneof![Just(usize::MAX), 1usize..2000],
        seed in any::<u64>(),
    ) {
        let d = DeflateConfig {
            server_no_context_takeover: snct,
            client_no_context_takeover: cnct,
            server_max_window_bits: sb,
            client_max_window_bits: cb,
            compression_threshold: threshold,
            compression_level: level,
        };
        let config = Arc::new(Config {
            inbound_buffer_size: 1 << 16,
            outbound_buffer_size: 1 << 18,
            permessage_deflate: Some(d),
            ..Config::default()
        });
        let mut p = Pair::new(config.clone(), config, seed);
        p.chunk = chunk;
        p.pump();
        prop_assert!(p.server.conn.permessage_deflate().is_some());
        let mut want = Vec::new();
        for (text, n, fill) in &msgs {
            let data: Vec<u8> = if *text { json(*n) } else { (0..*n).map(|i| fill.wrapping_add((i / 7) as u8)).collect() };
            let kind = if *text { MessageKind::Text } else { MessageKind::Binary };
            p.client.conn.send(p.now, kind, Bytes::from(data.clone())).unwrap();
            p.server.conn.send(p.now, kind, Bytes::from(data.clone())).unwrap();
            want.push((kind, data));
        }
        p.pump();
        for end in [&p.client, &p.server] {
            let got: Vec<(MessageKind, Vec<u8>)> =
                end.messages().into_iter().map(|m| (m.kind, m.data.to_vec())).collect();
            prop_assert_eq!(&got, &want);
        }
    }
}
