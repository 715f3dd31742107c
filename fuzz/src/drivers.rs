//! Fuzz drivers: each takes arbitrary bytes, must never panic, and checks
//! the invariants it can. Shared by the libFuzzer targets (`fuzz_targets/`)
//! and by `core/tests/fuzz_corpus.rs`, which replays the committed corpora
//! on stable (this file is included there with `#[path]`).

extern crate alloc;

use alloc::boxed::Box;
#[cfg(feature = "deflate")]
use alloc::format;
use alloc::sync::Arc;
#[cfg(feature = "deflate")]
use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;

use bytes::Bytes;
use wsmp_core::connection::{Admission, Event, Role};
use wsmp_core::frame::{apply_mask, parse_close_payload, CloseCode, FrameHeader, OpCode};
use wsmp_core::handshake::{self, HeadScanner};
use wsmp_core::{Config, Connection, MessageKind, Timestamp};

/// Target names, as used for `fuzz/corpus/<name>/`.
pub const TARGETS: &[&str] = &[
    "frame_header",
    "server_request",
    "client_response",
    "server_connection",
    "client_connection",
    "inflate",
    "host_ops",
];

/// Runs the driver called `name` on `data`.
pub fn run(name: &str, data: &[u8]) {
    match name {
        "frame_header" => frame_header(data),
        "server_request" => server_request(data),
        "client_response" => client_response(data),
        "server_connection" => server_connection(data),
        "client_connection" => client_connection(data),
        "inflate" => inflate(data),
        "host_ops" => crate::host_ops::host_ops(data),
        other => panic!("unknown fuzz target {other}"),
    }
}

/// Header decoder: a decoded header re-encodes to the same bytes, and
/// `needed_len` agrees with the decoded length.
pub fn frame_header(data: &[u8]) {
    let _ = FrameHeader::needed_len(data);
    match FrameHeader::decode(data) {
        Ok(Some((h, n))) => {
            assert!((2..=14).contains(&n) && n <= data.len());
            assert_eq!(FrameHeader::needed_len(&data[..n]), n);
            assert_eq!(h.encoded_len(), n, "decode accepts minimal lengths only");
            let (bytes, m) = h.to_bytes();
            assert_eq!(&bytes[..m], &data[..n], "re-encoding differs");
            assert_eq!(h.validate(), Ok(()));
            // Every prefix is incomplete, never an error.
            for k in 0..n {
                assert_eq!(FrameHeader::decode(&data[..k]), Ok(None));
            }
        }
        Ok(None) => assert!(data.len() < 14),
        Err(_) => {
            // Adding bytes never turns an error into a header.
            let mut longer = data.to_vec();
            longer.extend_from_slice(&[0; 14]);
            assert!(FrameHeader::decode(&longer).is_err());
        }
    }
}

/// Server request parser + upgrade validation.
pub fn server_request(data: &[u8]) {
    let max = 8192;
    let mut scanner = HeadScanner::new();
    let end = scanner.find_end(data);
    if let Ok(Some(req)) = handshake::parse_request(data, max) {
        assert!(req.header_len <= data.len());
        assert_eq!(req.head, &data[..req.header_len]);
        if let Some(end) = end {
            // httparse may end a head earlier (bare LF), never later.
            assert!(req.header_len <= end);
        }
        let _ = req.is_upgrade();
        if let Ok(up) = handshake::validate_upgrade(&req) {
            let _ = handshake::accept_key(up.key);
            let offered: Vec<&[u8]> = up
                .protocols
                .map(|p| handshake::server::protocol_entries(p).collect())
                .unwrap_or_default();
            let chosen = handshake::server::select_protocol(up.protocols, &["chat", "godot"]);
            if let Some(c) = chosen {
                assert!(offered.contains(&c.as_bytes()));
            }
        }
    }
}

/// Client response parser, with a fixed expected accept value.
pub fn client_response(data: &[u8]) {
    let accept = handshake::accept_key(b"dGhlIHNhbXBsZSBub25jZQ==");
    for offered in [&[][..], &["chat", "superchat"][..]] {
        if let Ok(Some(r)) = handshake::parse_response(data, &accept, offered, 8192) {
            assert_eq!(r.status, 101);
            assert!(r.header_len <= data.len());
            if let Some(p) = r.protocol {
                assert!(offered.contains(&p));
            }
        }
    }
}

/// A server `Connection` after a valid handshake, fed `data` (see [`drive`]).
pub fn server_connection(data: &[u8]) {
    let config = fuzz_config();
    let mut conn =
        Connection::server(config, Timestamp::ZERO, Admission::Automatic).expect("valid config");
    let req = b"GET /fuzz HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    assert_eq!(conn.handle_input(Timestamp::ZERO, req), req.len());
    let head = take_output(&mut conn);
    assert!(head.starts_with(b"HTTP/1.1 101 "));
    drive(conn, data);
}

/// A client `Connection` after a valid handshake, fed `data` (see [`drive`]).
pub fn client_connection(data: &[u8]) {
    let config = fuzz_config();
    let mut conn = Connection::client(
        config,
        "ws://h/fuzz",
        Timestamp::ZERO,
        Box::new(FixedRng(0x3D21_FA37)),
    )
    .expect("valid client");
    let req = take_output(&mut conn);
    let text = core::str::from_utf8(&req).expect("ASCII request");
    let key = text
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
        .expect("key line");
    let accept = handshake::accept_key(key.as_bytes());
    let mut resp = Vec::new();
    resp.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Accept: ",
    );
    resp.extend_from_slice(&accept);
    resp.extend_from_slice(b"\r\n\r\n");
    assert_eq!(conn.handle_input(Timestamp::ZERO, &resp), resp.len());
    drive(conn, data);
}

/// The inflater behind permessage-deflate (RFC 7692 §7.2.2), through a
/// server `Connection` that negotiated it. `data[0]`: bits 0-1 pick the
/// message limit (1 KiB, 64 KiB, 256 KiB, 1 MiB: below and above the
/// 32 KiB window; a bomb costs an execution the time to inflate up to the
/// limit: with 1 MiB and 4 MiB on top the target ran 648 exec/s, 1,611 with
/// these, same corpus and build), bit 2 the peer's context
/// takeover, bits 3-7 the fragment size; `data[1..]` is the compressed
/// payload of one message (then repeated once, so a kept window is used).
/// Whatever the bytes (a bomb that inflates ~1000:1 included), memory stays
/// within the limit plus the decompressor, a message never exceeds the limit,
/// and the outcome is a message, a 1009 (too big) or a 1007 (bad data or
/// UTF-8) — never a panic.
#[cfg(feature = "deflate")]
pub fn inflate(data: &[u8]) {
    use wsmp_core::DeflateConfig;
    let Some((&flags, payload)) = data.split_first() else {
        return;
    };
    let limit = [1 << 10, 1 << 16, 1 << 18, 1 << 20][usize::from(flags & 3)];
    let config = Arc::new(Config {
        inbound_buffer_size: limit,
        max_queued_packets: 4,
        permessage_deflate: Some(DeflateConfig::default()),
        ..Config::default()
    });
    let mut conn =
        Connection::server(config, Timestamp::ZERO, Admission::Automatic).expect("valid config");
    let offer = if flags & 4 != 0 {
        "permessage-deflate"
    } else {
        "permessage-deflate; client_no_context_takeover"
    };
    let req = format!(
        "GET /fuzz HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
Sec-WebSocket-Extensions: {offer}\r\n\r\n"
    );
    assert_eq!(
        conn.handle_input(Timestamp::ZERO, req.as_bytes()),
        req.len()
    );
    let head = take_output(&mut conn);
    assert!(head.starts_with(b"HTTP/1.1 101 "));
    assert!(conn.permessage_deflate().is_some());
    let fragment = 1 + usize::from(flags >> 3) * 97;
    let mut wire = Vec::new();
    for _ in 0..2 {
        let pieces: Vec<&[u8]> = if payload.is_empty() {
            vec![&[][..]]
        } else {
            payload.chunks(fragment).collect()
        };
        for (i, piece) in pieces.iter().enumerate() {
            let fin = if i + 1 == pieces.len() { 0x80 } else { 0 };
            // RFC 7692 §6: RSV1 on the first frame of the message only.
            let first = if i == 0 { 0x42 } else { 0x00 };
            wire.extend_from_slice(&masked_frame(fin | first, piece));
        }
    }
    // The decompressor (about 47.5 KB in zlib-rs 0.6) and small buffers on top.
    let bound = limit + 1 + 128 * 1024;
    let mut pos = 0;
    let mut rounds = 0;
    while pos < wire.len() && rounds < 10_000 {
        rounds += 1;
        let end = (pos + 4096).min(wire.len());
        let n = conn.handle_input(Timestamp::ZERO, &wire[pos..end]);
        pos += n;
        assert!(
            conn.buffered_memory() <= bound,
            "{} > {bound}",
            conn.buffered_memory()
        );
        while let Some(e) = conn.poll_event() {
            if let Event::Message(m) = e {
                assert!(m.data.len() <= limit);
            }
        }
        let _ = take_output(&mut conn);
        if conn.state() != wsmp_core::connection::State::Open {
            break;
        }
    }
    if let Some(info) = conn.close_info() {
        assert!(
            [
                CloseCode::MESSAGE_TOO_BIG,
                CloseCode::INVALID_PAYLOAD,
                CloseCode::PROTOCOL_ERROR
            ]
            .contains(&info.code),
            "{info:?}"
        );
    }
}

/// Without the `deflate` feature there is no inflater to fuzz.
#[cfg(not(feature = "deflate"))]
pub fn inflate(_data: &[u8]) {}

/// A masked client frame with a fixed key.
#[cfg(feature = "deflate")]
fn masked_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let key = [0x37, 0xFA, 0x21, 0x3D];
    let mut v = vec![b0];
    match payload.len() {
        n if n < 126 => v.push(0x80 | n as u8),
        n if n <= 0xFFFF => {
            v.push(0x80 | 126);
            v.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            v.push(0x80 | 127);
            v.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    v.extend_from_slice(&key);
    let at = v.len();
    v.extend_from_slice(payload);
    apply_mask(&mut v[at..], key, 0);
    v
}

/// Small limits so that the fuzzer reaches them.
fn fuzz_config() -> Arc<Config> {
    Arc::new(Config {
        inbound_buffer_size: 1024,
        outbound_buffer_size: 1024,
        max_queued_packets: 8,
        ..Config::default()
    })
}

/// A fixed mask key source (deterministic runs).
pub(crate) struct FixedRng(pub(crate) u32);

impl rand_core::RngCore for FixedRng {
    fn next_u32(&mut self) -> u32 {
        self.0 = self.0.rotate_left(7) ^ 0x9E37_79B9;
        self.0
    }
    fn next_u64(&mut self) -> u64 {
        u64::from(self.next_u32()) << 32 | u64::from(self.next_u32())
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for b in dest {
            *b = self.next_u32() as u8;
        }
    }
}

fn take_output(conn: &mut Connection) -> Vec<u8> {
    let mut out = Vec::with_capacity(conn.transmit_len());
    for c in conn.transmit() {
        out.extend_from_slice(c);
    }
    conn.advance_transmit(Timestamp::ZERO, out.len());
    out
}

/// Feeds `data[2..]` to an open connection. `data[0]` picks the chunk size,
/// `data[1]` flags: bit 0 read events only when input is refused, bit 1 send
/// a message after each chunk, bit 2 start a close half way, bit 3 ping.
/// Checks the contract on the way: consumed ≤ offered, refused input means
/// `can_read() == false` and reading events unblocks it, limits hold, output
/// is well-formed frames with sendable close codes and nothing after the
/// close frame, `Closed` exactly once after EOF.
fn drive(mut conn: Connection, data: &[u8]) {
    let role = conn.role();
    let config = conn.config().clone();
    let (chunk, flags, input) = match data {
        [a, b, rest @ ..] => (1 + usize::from(*a % 64) * 7, *b, rest),
        _ => (usize::MAX, 0, data),
    };
    let lazy_read = flags & 1 != 0;
    let mut wire = Vec::new();
    let mut events = Vec::new();
    let mut now = Timestamp::ZERO;
    let mut pos = 0;
    let mut step = 0usize;
    while pos < input.len() {
        step += 1;
        now = now.saturating_add(Duration::from_millis(10));
        if conn.poll_timeout().is_some_and(|t| t <= now) {
            conn.handle_timeout(now);
        }
        let end = pos.saturating_add(chunk).min(input.len());
        let offered = end - pos;
        let n = conn.handle_input(now, &input[pos..end]);
        assert!(n <= offered, "consumed more than offered");
        pos += n;
        if n < offered {
            // Contract: input refused ⇒ can_read() is false until events are read.
            assert!(!conn.can_read(), "refused input while can_read()");
            read_events(&mut conn, &mut events);
            assert!(conn.can_read(), "reading every event must unblock input");
        } else if !lazy_read {
            read_events(&mut conn, &mut events);
        }
        check_limits(&conn, &config);
        if flags & 2 != 0 {
            let payload = Bytes::from(alloc::vec![b'x'; step % 300]);
            if let Err(e) = conn.send(now, MessageKind::Text, payload.clone()) {
                assert_eq!(e.payload, payload);
            }
        }
        if flags & 8 != 0 && step % 3 == 0 {
            let _ = conn.ping(now, b"p");
        }
        if flags & 4 != 0 && pos >= input.len() / 2 {
            let _ = conn.close(now, CloseCode::NORMAL, "half");
        }
        wire.extend(take_output(&mut conn));
    }
    read_events(&mut conn, &mut events);
    conn.handle_eof(now);
    wire.extend(take_output(&mut conn));
    read_events(&mut conn, &mut events);
    assert_eq!(conn.state(), wsmp_core::connection::State::Closed);
    let closed = events
        .iter()
        .filter(|e| matches!(e, Event::Closed(_)))
        .count();
    assert_eq!(closed, 1, "Closed exactly once");
    for e in &events {
        match e {
            Event::Message(m) => {
                assert!(m.data.len() <= config.inbound_buffer_size);
                if m.kind == MessageKind::Text {
                    assert!(core::str::from_utf8(&m.data).is_ok());
                }
            }
            Event::Closed(info) => {
                // 1005/1006 are reported, never sent; any other reported code
                // is one a peer may send or one we failed with.
                assert!(info.code.is_valid_on_receipt() || matches!(info.code.0, 1005 | 1006));
            }
            _ => {}
        }
    }
    check_wire(&wire, role);
}

fn read_events(conn: &mut Connection, events: &mut Vec<Event>) {
    while let Some(e) = conn.poll_event() {
        events.push(e);
    }
}

fn check_limits(conn: &Connection, config: &Config) {
    assert!(conn.unread_bytes() <= config.inbound_buffer_size);
    assert!(conn.unread_messages() <= config.max_queued_packets);
    assert!(conn.buffered_amount() <= config.outbound_buffer_size);
    assert!(conn.queued_messages() <= config.max_queued_packets);
    assert!(
        conn.buffered_memory()
            <= 4 * config.inbound_buffer_size + 2 * config.outbound_buffer_size + 32 * 1024
    );
}

/// Our output is a sequence of valid frames, masked iff we are a client,
/// close codes sendable, nothing after the close frame.
fn check_wire(mut wire: &[u8], role: Role) {
    let mut closed = false;
    while !wire.is_empty() {
        assert!(!closed, "bytes after our close frame");
        let (h, n) = FrameHeader::decode(wire)
            .expect("our header is valid")
            .expect("our frame is complete");
        assert_eq!(h.rsv, 0);
        assert!(h.fin, "we never fragment");
        assert_eq!(
            h.mask.is_some(),
            role == Role::Client,
            "RFC 6455 §5.1 masking"
        );
        let len = usize::try_from(h.payload_len).expect("small");
        let body = wire.get(n..n + len).expect("whole payload written");
        let mut payload = body.to_vec();
        if let Some(k) = h.mask {
            apply_mask(&mut payload, k, 0);
        }
        if h.opcode == OpCode::Close {
            closed = true;
            match parse_close_payload(&payload) {
                Ok(Some((code, _))) => assert!(code.is_sendable(), "sent {code}"),
                Ok(None) => {}
                Err(e) => panic!("we sent an invalid close payload: {e}"),
            }
        }
        wire = &wire[n + len..];
    }
}
