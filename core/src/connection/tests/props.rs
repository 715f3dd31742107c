//! Property tests: round trips, chunking invariance, random operation
//! sequences on a client ↔ server pair.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;

use super::super::{Admission, CloseCause, Connection, Event, MessageKind, State};
use super::harness::*;
use crate::config::Config;
use crate::frame::CloseCode;
use crate::time::Timestamp;

fn kind_strategy() -> impl Strategy<Value = MessageKind> {
    prop_oneof![Just(MessageKind::Text), Just(MessageKind::Binary)]
}

/// A payload for `kind`: any bytes for binary, valid UTF-8 for text.
fn payload(kind: MessageKind, bytes: Vec<u8>) -> Bytes {
    match kind {
        MessageKind::Binary => Bytes::from(bytes),
        MessageKind::Text => Bytes::from(String::from_utf8_lossy(&bytes).into_owned().into_bytes()),
    }
}

fn message_strategy(max: usize) -> impl Strategy<Value = (MessageKind, Bytes)> {
    (
        kind_strategy(),
        prop_oneof![
            3 => proptest::collection::vec(any::<u8>(), 0..200),
            1 => proptest::collection::vec(any::<u8>(), 0..max),
        ],
    )
        .prop_map(|(k, b)| (k, payload(k, b)))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// (a) Messages sent either way arrive unchanged, in order.
    #[test]
    fn round_trip_through_two_connections(
        msgs in proptest::collection::vec(message_strategy(70_000), 1..5),
        chunk in prop_oneof![Just(usize::MAX), 1usize..4096],
        seed in any::<u64>(),
    ) {
        let config = Arc::new(Config {
            inbound_buffer_size: 1 << 17,
            outbound_buffer_size: 1 << 19,
            ..Config::default()
        });
        let mut p = Pair::new(config.clone(), config, seed);
        p.chunk = chunk;
        p.pump();
        prop_assert_eq!(p.client.conn.state(), State::Open);
        for (kind, data) in &msgs {
            p.client.conn.send(p.now, *kind, data.clone()).expect("client send");
            p.server.conn.send(p.now, *kind, data.clone()).expect("server send");
        }
        p.pump();
        for end in [&p.client, &p.server] {
            let got: Vec<(MessageKind, Bytes)> =
                end.messages().into_iter().map(|m| (m.kind, m.data)).collect();
            prop_assert_eq!(&got, &msgs);
        }
    }
}

/// One unit of a valid client byte stream.
#[derive(Debug, Clone)]
enum Unit {
    /// A message in `pieces` fragments with a ping after each fragment but the last.
    Message(MessageKind, Vec<u8>, usize, bool),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
}

fn unit_strategy() -> impl Strategy<Value = Unit> {
    prop_oneof![
        4 => (kind_strategy(), proptest::collection::vec(any::<u8>(), 0..300), 1usize..5, any::<bool>())
            .prop_map(|(k, b, n, pings)| Unit::Message(k, payload(k, b).to_vec(), n, pings)),
        1 => proptest::collection::vec(any::<u8>(), 0..126).prop_map(Unit::Ping),
        1 => proptest::collection::vec(any::<u8>(), 0..126).prop_map(Unit::Pong),
    ]
}

/// Encodes units as masked client frames with per-frame keys from `seed`.
fn encode_units(units: &[Unit], seed: u64) -> Vec<u8> {
    let mut rng = SplitMix64(seed);
    let mut key = || (rng.next() as u32).to_ne_bytes();
    let mut out = Vec::new();
    for u in units {
        match u {
            Unit::Message(kind, data, pieces, pings) => {
                let opcode = match kind {
                    MessageKind::Text => 0x1,
                    MessageKind::Binary => 0x2,
                };
                let size = data.len().div_ceil(*pieces).max(1);
                let parts: Vec<&[u8]> = if data.is_empty() {
                    vec![&data[..]]
                } else {
                    data.chunks(size).collect()
                };
                for (i, part) in parts.iter().enumerate() {
                    let last = i + 1 == parts.len();
                    let op = if i == 0 { opcode } else { 0 };
                    let fin = if last { 0x80 } else { 0 };
                    out.extend(frame(fin | op, part, Some(key())));
                    if !last && *pings {
                        out.extend(frame(0x89, &[i as u8], Some(key())));
                    }
                }
            }
            Unit::Ping(p) => out.extend(frame(0x89, p, Some(key()))),
            Unit::Pong(p) => out.extend(frame(0x8A, p, Some(key()))),
        }
    }
    out
}

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        rand_core::RngCore::next_u64(self)
    }
}

/// Feeds `stream` to a fresh server in the given pieces; returns its output
/// and events (reading events after every piece).
fn run_server(stream: &[u8], splits: &[usize]) -> (Vec<u8>, Vec<Event>) {
    let mut s =
        Connection::server(cfg(), Timestamp::ZERO, Admission::Automatic).expect("valid config");
    let mut out = Vec::new();
    let mut ev = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < stream.len() {
        let n = splits
            .get(i % splits.len().max(1))
            .copied()
            .unwrap_or(usize::MAX);
        i += 1;
        let end = pos.saturating_add(n.max(1)).min(stream.len());
        let used = s.handle_input(ms(1), &stream[pos..end]);
        assert_eq!(used, end - pos, "default limits never push back here");
        pos = end;
        out.extend(drain(&mut s, ms(1)));
        ev.extend(events(&mut s));
    }
    (out, ev)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// (b) Any split of a valid stream gives the same events and output as one chunk.
    #[test]
    fn any_split_gives_the_same_events(
        units in proptest::collection::vec(unit_strategy(), 0..12),
        close in any::<bool>(),
        splits in proptest::collection::vec(1usize..40, 1..20),
        seed in any::<u64>(),
    ) {
        let mut stream = upgrade_request();
        stream.extend(encode_units(&units, seed));
        if close {
            stream.extend(cframe(0x88, &[0x03, 0xE8, b'o', b'k']));
        }
        let (out1, ev1) = run_server(&stream, &[usize::MAX]);
        let (out2, ev2) = run_server(&stream, &splits);
        // Pongs answer only the newest pending ping, so the number of pongs
        // on the wire can depend on how input was split; compare the events
        // and the non-pong output.
        prop_assert_eq!(&ev1, &ev2);
        let strip = |b: &[u8]| -> Vec<Parsed> {
            let head = b.windows(4).position(|w| w == b"\r\n\r\n").map_or(0, |i| i + 4);
            parse_frames(&b[head..]).into_iter().filter(|f| f.opcode() != 0xA).collect()
        };
        prop_assert_eq!(strip(&out1), strip(&out2));
        prop_assert_eq!(&out1[..out1.len().min(129)], &out2[..out2.len().min(129)]);
        let n_msgs = units.iter().filter(|u| matches!(u, Unit::Message(..))).count();
        prop_assert_eq!(ev1.iter().filter(|e| matches!(e, Event::Message(_))).count(), n_msgs);
        prop_assert_eq!(ev1.iter().any(|e| matches!(e, Event::Closed(_))), close);
    }
}

/// An operation on the pair.
#[derive(Debug, Clone)]
enum Op {
    Send(Side, MessageKind, usize),
    Ping(Side, usize),
    Pong(Side),
    Close(Side, u16),
    Write(Side, usize),
    Deliver(Side, usize),
    Advance(u64),
    Read(Side),
    Eof(Side),
}

fn side_strategy() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Client), Just(Side::Server)]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (side_strategy(), kind_strategy(), 0usize..700).prop_map(|(s, k, n)| Op::Send(s, k, n)),
        1 => (side_strategy(), 0usize..130).prop_map(|(s, n)| Op::Ping(s, n)),
        1 => side_strategy().prop_map(Op::Pong),
        1 => (side_strategy(), prop_oneof![Just(1000u16), Just(1001), Just(1011), Just(3000), Just(4999), Just(1005)])
            .prop_map(|(s, c)| Op::Close(s, c)),
        6 => (side_strategy(), 1usize..2000).prop_map(|(s, n)| Op::Write(s, n)),
        6 => (side_strategy(), 1usize..2000).prop_map(|(s, n)| Op::Deliver(s, n)),
        2 => (0u64..1500).prop_map(Op::Advance),
        3 => side_strategy().prop_map(Op::Read),
    ]
}

/// Memory and queue bounds that must hold at every step.
fn check_bounds(conn: &Connection) -> Result<(), TestCaseError> {
    let c = conn.config();
    prop_assert!(conn.unread_bytes() <= c.inbound_buffer_size);
    prop_assert!(conn.unread_messages() <= c.max_queued_packets);
    prop_assert!(conn.buffered_amount() <= c.outbound_buffer_size);
    prop_assert!(conn.queued_messages() <= c.max_queued_packets);
    // Reassembly capacity ≤ 2 × limit, unread ≤ limit, queued data + its
    // headers, four control frames, and the handshake heads.
    let bound = 3 * c.inbound_buffer_size
        + c.outbound_buffer_size
        + 14 * c.max_queued_packets
        + 4 * 131
        + 4096
        + 2 * (c.max_handshake_size + 1)
        + 1024;
    prop_assert!(
        conn.buffered_memory() <= bound,
        "buffered_memory {} > {}",
        conn.buffered_memory(),
        bound
    );
    Ok(())
}

fn pair_config() -> impl Strategy<Value = Arc<Config>> {
    (
        64usize..2048,
        64usize..2048,
        1usize..6,
        prop_oneof![Just(None), Just(Some(Duration::from_millis(700)))],
    )
        .prop_map(|(inb, outb, q, hb)| {
            Arc::new(Config {
                inbound_buffer_size: inb,
                outbound_buffer_size: outb,
                max_queued_packets: q,
                heartbeat_interval: hb,
                ..Config::default()
            })
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// (c) Random operations never panic, never exceed the bounds, and a
    /// final close always ends with both sides CLOSED.
    #[test]
    fn random_operations_respect_bounds_and_close(
        ccfg in pair_config(),
        scfg in pair_config(),
        ops in proptest::collection::vec(op_strategy(), 0..80),
        handshake_first in proptest::bool::weighted(0.8),
        eof in proptest::option::weighted(0.15, (0usize..80, side_strategy())),
        closer in side_strategy(),
        seed in any::<u64>(),
    ) {
        let mut p = Pair::new(ccfg, scfg, seed);
        p.client.auto_read = false;
        p.server.auto_read = false;
        if handshake_first {
            p.pump();
            p.client.read_events();
            p.server.read_events();
        }
        let mut ops = ops.clone();
        if let Some((at, side)) = eof {
            ops.insert(at.min(ops.len()), Op::Eof(side));
        }
        for op in &ops {
            let now = p.now;
            match *op {
                Op::Send(side, kind, len) => {
                    let end = p.end(side);
                    let before = (end.conn.buffered_amount(), end.conn.queued_messages(), end.conn.transmit_len());
                    let data = payload(kind, vec![b'a'; len]);
                    if let Err(e) = end.conn.send(now, kind, data.clone()) {
                        prop_assert_eq!(&e.payload, &data);
                        let after = (end.conn.buffered_amount(), end.conn.queued_messages(), end.conn.transmit_len());
                        prop_assert_eq!(before, after);
                    }
                }
                Op::Ping(side, len) => {
                    let _ = p.end(side).conn.ping(now, &vec![1; len]);
                }
                Op::Pong(side) => {
                    let _ = p.end(side).conn.pong(now, b"u");
                }
                Op::Close(side, code) => {
                    let r = p.end(side).conn.close(now, CloseCode(code), "r");
                    prop_assert_eq!(r.is_err(), code == 1005);
                }
                Op::Write(side, n) => {
                    p.write(side, n);
                }
                Op::Deliver(side, n) => {
                    p.deliver(side, n);
                }
                Op::Advance(d) => {
                    p.now = p.now.saturating_add(Duration::from_millis(d));
                    let now = p.now;
                    for side in [Side::Client, Side::Server] {
                        let end = p.end(side);
                        if end.conn.poll_timeout().is_some_and(|t| t <= now) {
                            end.conn.handle_timeout(now);
                        }
                    }
                }
                Op::Read(side) => p.end(side).read_events(),
                Op::Eof(side) => {
                    let end = p.end(side);
                    if !end.eof_delivered {
                        end.eof_delivered = true;
                        end.conn.handle_eof(now);
                    }
                }
            }
            check_bounds(&p.client.conn)?;
            check_bounds(&p.server.conn)?;
            // poll_timeout is idempotent and never in the past of a fired timer.
            for end in [&p.client, &p.server] {
                prop_assert_eq!(end.conn.poll_timeout(), end.conn.poll_timeout());
            }
        }

        // Final close, then let everything settle.
        p.client.auto_read = true;
        p.server.auto_read = true;
        p.pump();
        let now = p.now;
        let _ = p.end(closer).conn.close(now, CloseCode(4321), "end");
        p.run_timers(64);
        p.pump();
        for end in [&p.client, &p.server] {
            prop_assert_eq!(end.conn.state(), State::Closed);
            prop_assert!(end.socket_closed || end.conn.should_close_socket(),
                "socket not released: {:?}", end.conn);
            prop_assert_eq!(end.conn.poll_timeout(), None);
            let closed = end.events.iter().filter(|e| matches!(e, Event::Closed(_))).count();
            prop_assert_eq!(closed, 1, "Closed exactly once");
            // RFC 6455 §7.4.1: 1006 only without a closing handshake.
            let info = end.closed().expect("closed");
            prop_assert!(info.code != CloseCode::ABNORMAL || !info.clean);
        }
        let (ci, si) = (
            p.client.closed().cloned().expect("client closed"),
            p.server.closed().cloned().expect("server closed"),
        );
        // Exactly one side initiated a clean close: both report its code.
        let one_sided = matches!(
            (&ci.cause, &si.cause),
            (CloseCause::LocalClose, CloseCause::RemoteClose)
                | (CloseCause::RemoteClose, CloseCause::LocalClose)
        );
        if one_sided && ci.clean && si.clean {
            prop_assert_eq!(ci.code, si.code);
            prop_assert_eq!(&ci.reason, &si.reason);
        }
    }
}
