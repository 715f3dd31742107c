//! Deterministic test rig: pinned RNG, virtual clock, in-memory pipes, and
//! raw frame builders/parsers.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::time::Duration;

use bytes::Bytes;
use rand_core::RngCore;

use super::super::{Admission, CloseInfo, Connection, Event, Rng, State};
use crate::config::Config;
use crate::frame::{apply_mask, FrameHeader, OpCode};
use crate::time::Timestamp;

pub(crate) use crate::test_rng::SplitMix64;

/// An RNG that always yields the same word: every client mask key is
/// `u32::to_ne_bytes(word)`, so masked client output is predictable.
#[derive(Debug, Clone)]
pub(crate) struct ConstRng(pub(crate) u32);

impl RngCore for ConstRng {
    fn next_u32(&mut self) -> u32 {
        self.0
    }
    fn next_u64(&mut self) -> u64 {
        u64::from(self.0) << 32 | u64::from(self.0)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for (i, b) in dest.iter_mut().enumerate() {
            *b = self.0.to_ne_bytes()[i % 4];
        }
    }
}

/// The pinned mask of RFC 6455 §5.7's examples, used for hand-written client frames.
pub(crate) const MASK: [u8; 4] = [0x37, 0xFA, 0x21, 0x3D];

/// RFC 6455 §1.3 example key and its accept value.
pub(crate) const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub(crate) const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// A valid upgrade request with [`KEY`].
pub(crate) fn upgrade_request() -> Vec<u8> {
    request_with(&[])
}

/// A valid upgrade request with extra header lines.
pub(crate) fn request_with(extra: &[&str]) -> Vec<u8> {
    let mut s = String::from(
        "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: ",
    );
    s.push_str(KEY);
    s.push_str("\r\nSec-WebSocket-Version: 13\r\n");
    for h in extra {
        s.push_str(h);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    s.into_bytes()
}

/// A `101` answer carrying `accept`, plus extra lines.
pub(crate) fn response_with(accept: &str, extra: &[&str]) -> Vec<u8> {
    let mut s = String::from(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
    );
    s.push_str("Sec-WebSocket-Accept: ");
    s.push_str(accept);
    s.push_str("\r\n");
    for h in extra {
        s.push_str(h);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    s.into_bytes()
}

/// Default config in an `Arc`.
pub(crate) fn cfg() -> Arc<Config> {
    Arc::new(Config::default())
}

/// `t` milliseconds on the virtual clock.
pub(crate) fn ms(t: u64) -> Timestamp {
    Timestamp::from_millis(t)
}

/// Builds a frame: `b0` is FIN|RSV|opcode, masked with `mask` when given,
/// minimal length encoding.
pub(crate) fn frame(b0: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut v = Vec::with_capacity(payload.len() + 14);
    v.push(b0);
    let m = if mask.is_some() { 0x80 } else { 0 };
    let n = payload.len();
    if n < 126 {
        v.push(m | n as u8);
    } else if n <= 0xFFFF {
        v.push(m | 126);
        v.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        v.push(m | 127);
        v.extend_from_slice(&(n as u64).to_be_bytes());
    }
    let start = v.len();
    if let Some(key) = mask {
        v.extend_from_slice(&key);
    }
    let body = v.len();
    v.extend_from_slice(payload);
    if let Some(key) = mask {
        apply_mask(&mut v[body..], key, 0);
    }
    let _ = start;
    v
}

/// A masked client frame with [`MASK`].
pub(crate) fn cframe(b0: u8, payload: &[u8]) -> Vec<u8> {
    frame(b0, payload, Some(MASK))
}

/// An unmasked server frame.
pub(crate) fn sframe(b0: u8, payload: &[u8]) -> Vec<u8> {
    frame(b0, payload, None)
}

/// A parsed frame: first byte (FIN|RSV|opcode), whether it was masked, and
/// the unmasked payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Parsed {
    pub(crate) b0: u8,
    pub(crate) masked: bool,
    pub(crate) payload: Vec<u8>,
}

impl Parsed {
    pub(crate) fn opcode(&self) -> u8 {
        self.b0 & 0x0F
    }
}

/// Splits a byte stream into frames (panics on malformed test data).
pub(crate) fn parse_frames(mut bytes: &[u8]) -> Vec<Parsed> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (h, n): (FrameHeader, usize) = FrameHeader::decode(bytes)
            .expect("valid header")
            .expect("complete header");
        let len = h.payload_len as usize;
        let mut payload = bytes[n..n + len].to_vec();
        if let Some(key) = h.mask {
            apply_mask(&mut payload, key, 0);
        }
        let b0 = bytes[0];
        out.push(Parsed {
            b0,
            masked: h.mask.is_some(),
            payload,
        });
        bytes = &bytes[n + len..];
        let _ = OpCode::from_u8(b0 & 0x0F);
    }
    out
}

/// Everything `conn` wants to write, marked as written.
pub(crate) fn drain(conn: &mut Connection, now: Timestamp) -> Vec<u8> {
    let v: Vec<u8> = conn.transmit().flat_map(|c| c.iter().copied()).collect();
    assert_eq!(v.len(), conn.transmit_len());
    conn.advance_transmit(now, v.len());
    v
}

/// Every pending event.
pub(crate) fn events(conn: &mut Connection) -> Vec<Event> {
    core::iter::from_fn(|| conn.poll_event()).collect()
}

/// The `Closed` info among `events` (there must be exactly one).
pub(crate) fn closed_info(events: &[Event]) -> CloseInfo {
    let infos: Vec<&CloseInfo> = events
        .iter()
        .filter_map(|e| match e {
            Event::Closed(i) => Some(i),
            _ => None,
        })
        .collect();
    assert_eq!(infos.len(), 1, "exactly one Closed event in {events:?}");
    infos[0].clone()
}

/// A text/binary message event.
pub(crate) fn msg(kind: super::super::MessageKind, data: &[u8]) -> Event {
    Event::Message(super::super::Message {
        kind,
        data: Bytes::copy_from_slice(data),
    })
}

/// A server that completed the handshake at time 0 (101 drained, `Open` read).
pub(crate) fn open_server(config: Arc<Config>) -> Connection {
    let mut s = Connection::server(config, ms(0), Admission::Automatic).expect("valid config");
    let req = upgrade_request();
    assert_eq!(s.handle_input(ms(0), &req), req.len());
    let out = drain(&mut s, ms(0));
    assert!(out.starts_with(b"HTTP/1.1 101 "), "{out:?}");
    assert_eq!(events(&mut s), [Event::Open { protocol: None }]);
    assert_eq!(s.state(), State::Open);
    s
}

/// A client (mask key fixed to [`MASK`]) that completed the handshake at time 0.
pub(crate) fn open_client(config: Arc<Config>) -> Connection {
    let mut c = client(config);
    let req = drain(&mut c, ms(0));
    let accept = accept_for(&req);
    let resp = response_with(&accept, &[]);
    assert_eq!(c.handle_input(ms(0), &resp), resp.len());
    assert_eq!(events(&mut c), [Event::Open { protocol: None }]);
    assert_eq!(c.state(), State::Open);
    c
}

/// A new client whose every mask key is [`MASK`].
pub(crate) fn client(config: Arc<Config>) -> Connection {
    let rng: Rng = Box::new(ConstRng(u32::from_ne_bytes(MASK)));
    Connection::client(config, "ws://example.com/chat", ms(0), rng).expect("client")
}

/// The accept value for the key in a client's request bytes.
pub(crate) fn accept_for(request: &[u8]) -> String {
    let text = core::str::from_utf8(request).expect("ascii request");
    let key = text
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
        .expect("key header");
    let acc = crate::handshake::accept_key(key.trim().as_bytes());
    String::from(core::str::from_utf8(&acc).expect("ascii"))
}

// ----- back-to-back pair -------------------------------------------------

/// One end of the pair with its inbound pipe.
#[derive(Debug)]
pub(crate) struct End {
    pub(crate) conn: Connection,
    /// Bytes written by the peer, not yet consumed by `conn`.
    pub(crate) inbox: Vec<u8>,
    /// Events read so far.
    pub(crate) events: Vec<Event>,
    /// This end closed its socket.
    pub(crate) socket_closed: bool,
    /// EOF was delivered to `conn`.
    pub(crate) eof_delivered: bool,
    /// Read events automatically while pumping.
    pub(crate) auto_read: bool,
}

impl End {
    fn new(conn: Connection) -> End {
        End {
            conn,
            inbox: Vec::new(),
            events: Vec::new(),
            socket_closed: false,
            eof_delivered: false,
            auto_read: true,
        }
    }

    /// The `Closed` info this end reported, if any.
    pub(crate) fn closed(&self) -> Option<&CloseInfo> {
        self.events.iter().find_map(|e| match e {
            Event::Closed(i) => Some(i),
            _ => None,
        })
    }

    /// Received messages (kind, data).
    pub(crate) fn messages(&self) -> Vec<super::super::Message> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Message(m) => Some(m.clone()),
                _ => None,
            })
            .collect()
    }

    pub(crate) fn read_events(&mut self) {
        while let Some(e) = self.conn.poll_event() {
            self.events.push(e);
        }
    }
}

/// A client and a server wired back to back over in-memory byte pipes,
/// stepped on a virtual clock.
#[derive(Debug)]
pub(crate) struct Pair {
    pub(crate) client: End,
    pub(crate) server: End,
    pub(crate) now: Timestamp,
    /// Feed at most this many bytes per `handle_input` call.
    pub(crate) chunk: usize,
}

/// Which end of a [`Pair`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Client,
    Server,
}

impl Pair {
    /// A pair with `client_cfg` / `server_cfg`, RNG seeded with `seed`,
    /// handshake not yet run.
    pub(crate) fn new(client_cfg: Arc<Config>, server_cfg: Arc<Config>, seed: u64) -> Pair {
        let rng: Rng = Box::new(SplitMix64(seed));
        let client =
            Connection::client(client_cfg, "ws://127.0.0.1:8080/game", Timestamp::ZERO, rng)
                .expect("client");
        let server = Connection::server(server_cfg, Timestamp::ZERO, Admission::Automatic)
            .expect("valid config");
        Pair {
            client: End::new(client),
            server: End::new(server),
            now: Timestamp::ZERO,
            chunk: usize::MAX,
        }
    }

    /// Same config on both ends, handshake completed.
    pub(crate) fn open(config: Arc<Config>) -> Pair {
        let mut p = Pair::new(config.clone(), config, 7);
        p.pump();
        assert_eq!(p.client.conn.state(), State::Open);
        assert_eq!(p.server.conn.state(), State::Open);
        p.client.events.clear();
        p.server.events.clear();
        p
    }

    pub(crate) fn end(&mut self, side: Side) -> &mut End {
        match side {
            Side::Client => &mut self.client,
            Side::Server => &mut self.server,
        }
    }

    /// Moves up to `limit` bytes of `from`'s output into its peer's inbox
    /// (dropped when the peer's socket is closed). Returns bytes moved.
    pub(crate) fn write(&mut self, from: Side, limit: usize) -> usize {
        let now = self.now;
        let (src, dst) = match from {
            Side::Client => (&mut self.client, &mut self.server),
            Side::Server => (&mut self.server, &mut self.client),
        };
        if src.socket_closed {
            return 0;
        }
        let mut n = 0;
        for c in src.conn.transmit() {
            let take = c.len().min(limit - n);
            if !dst.socket_closed {
                dst.inbox.extend_from_slice(&c[..take]);
            }
            n += take;
            if n == limit {
                break;
            }
        }
        src.conn.advance_transmit(now, n);
        n
    }

    /// Feeds up to `limit` bytes of `to`'s inbox into it, in `self.chunk`
    /// pieces. Returns bytes consumed.
    pub(crate) fn deliver(&mut self, to: Side, limit: usize) -> usize {
        let now = self.now;
        let chunk = self.chunk.max(1);
        let end = self.end(to);
        if end.socket_closed {
            end.inbox.clear();
            return 0;
        }
        let avail = end.inbox.len().min(limit);
        let mut pos = 0;
        while pos < avail {
            let piece = (avail - pos).min(chunk);
            let n = end.conn.handle_input(now, &end.inbox[pos..pos + piece]);
            assert!(n <= piece, "consumed more than offered");
            pos += n;
            if n < piece {
                break;
            }
        }
        end.inbox.drain(..pos);
        pos
    }

    /// Closes sockets that should be closed and delivers EOF to the peer
    /// once its inbox is empty.
    fn sockets(&mut self) -> bool {
        let now = self.now;
        let mut progress = false;
        for side in [Side::Client, Side::Server] {
            let (me, peer) = match side {
                Side::Client => (&mut self.client, &mut self.server),
                Side::Server => (&mut self.server, &mut self.client),
            };
            if !me.socket_closed && me.conn.should_close_socket() && me.conn.transmit_len() == 0 {
                me.socket_closed = true;
                progress = true;
            }
            // The peer closed its socket: EOF once everything sent is read.
            if me.socket_closed
                && !peer.eof_delivered
                && !peer.socket_closed
                && peer.inbox.is_empty()
            {
                peer.eof_delivered = true;
                peer.conn.handle_eof(now);
                progress = true;
            }
        }
        progress
    }

    /// Pumps bytes both ways until nothing moves.
    pub(crate) fn pump(&mut self) {
        for _ in 0..10_000 {
            let mut progress = false;
            for side in [Side::Client, Side::Server] {
                let peer = match side {
                    Side::Client => Side::Server,
                    Side::Server => Side::Client,
                };
                progress |= self.write(side, usize::MAX) > 0;
                progress |= self.deliver(peer, usize::MAX) > 0;
            }
            for side in [Side::Client, Side::Server] {
                let end = self.end(side);
                if end.auto_read {
                    let before = end.events.len();
                    end.read_events();
                    progress |= end.events.len() > before;
                }
            }
            progress |= self.sockets();
            if !progress {
                return;
            }
        }
        panic!("pump did not settle");
    }

    /// Advances the virtual clock by `d`, firing due timers, then pumps.
    pub(crate) fn advance(&mut self, d: Duration) {
        self.now = self.now.saturating_add(d);
        let now = self.now;
        for side in [Side::Client, Side::Server] {
            let end = self.end(side);
            if end.conn.poll_timeout().is_some_and(|t| t <= now) {
                end.conn.handle_timeout(now);
            }
        }
        self.pump();
    }

    /// Steps the clock to each pending deadline (at most `max` steps),
    /// pumping in between, until neither end has a timer.
    pub(crate) fn run_timers(&mut self, max: usize) {
        for _ in 0..max {
            self.pump();
            let next = [&self.client, &self.server]
                .iter()
                .filter_map(|e| e.conn.poll_timeout())
                .min();
            let Some(t) = next else { return };
            let d = t.saturating_duration_since(self.now);
            self.advance(d);
        }
    }
}
