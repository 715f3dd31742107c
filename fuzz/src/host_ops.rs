//! Fuzz driver for the multi-peer [`Host`]: the input is a sequence of
//! operations from many peers and from the application, driven the way an
//! adapter drives a host (output of the peers `poll_dirty` names, input kept
//! when not consumed and offered again only once the peer is named again).
//!
//! Each peer is a real client [`Connection`] on the other end of an in-memory
//! socket, so valid traffic (handshakes, masked frames, closes) flows both
//! ways; garbage bytes and hand-built frames from the fuzz input are injected
//! into the same sockets.
//!
//! Checked after every operation: no panic (counter underflows included, the
//! targets are built with debug assertions), the host's peer table matches
//! the sockets it was not told to forget, connected counts agree, every
//! connection's queues are within their `Config` bounds and its buffered
//! memory bounded, the host's unread packets bounded (module docs of
//! `wsmp_core::host`, "Released peers"), input refused only while
//! `can_read` is false. On reading: packets from clean peers arrive in
//! order, complete, from the right peer (an id reused while its packets
//! were unread would show here), connect/disconnect signals alternate per id,
//! every client first receives its own id, the host's output never makes a
//! client fail, and every close code it sends is Godot-safe. At the end:
//! no peer waits for a wake-up that `poll_dirty` never gave.

extern crate alloc;

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::time::Duration;

use bytes::Bytes;
use wsmp_core::connection::{
    AcceptOptions, Admission, CloseCause, Event, HttpResponse, MessageKind, State, TransmitBatch,
};
use wsmp_core::frame::{CloseCode, FrameHeader, OpCode};
use wsmp_core::host::{decode_id_message, Host, HostEvent, PeerId, Target};
use wsmp_core::{Config, Connection, Timestamp};

/// Most sockets open at once, and in a whole run (bounds the work per input).
const MAX_LIVE: usize = 12;
const MAX_SOCKETS: usize = 48;

/// Runs the host driver on `data`.
pub fn host_ops(data: &[u8]) {
    let mut c = Cursor { data, pos: 0 };
    let flags = c.byte().unwrap_or(0);
    let config = Config {
        inbound_buffer_size: if flags & 1 != 0 { 300 } else { 1024 },
        outbound_buffer_size: if flags & 2 != 0 { 0 } else { 1024 },
        max_queued_packets: if flags & 4 != 0 { 3 } else { 8 },
        heartbeat_interval: (flags & 8 != 0).then(|| Duration::from_millis(400)),
        ..Config::default()
    };
    let admission = if flags & 16 != 0 {
        Admission::Manual
    } else {
        Admission::Automatic
    };
    let rng = Box::new(SmallIds(u64::from(flags)));
    let host = Host::server(config.clone(), admission, rng).expect("valid config");
    let mut d = Driver {
        host,
        config,
        client_config: Arc::new(Config {
            inbound_buffer_size: 65_535,
            max_queued_packets: 4096,
            ..Config::default()
        }),
        now: Timestamp::from_millis(1),
        socks: Vec::new(),
        connected: BTreeMap::new(),
        forced: BTreeMap::new(),
        peak_live: 0,
        reserved: Vec::new(),
        closed: false,
    };
    while let Some(op) = c.byte() {
        d.step(op, &mut c);
        d.check();
    }
    d.finish();
}

/// Peer ids from a small space (2..258), so that the fuzzer meets ids that
/// were used before. At most 12 live peers, 16 reservations and the ids of
/// released peers with unread packets (≤ 13 × 8) are in use at once: a free
/// id always exists, `PeerId::random` always ends.
struct SmallIds(u64);

impl rand_core::RngCore for SmallIds {
    fn next_u32(&mut self) -> u32 {
        // SplitMix64 (Steele, Lea, Flood 2014).
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        2 + ((z ^ (z >> 31)) % 256) as u32
    }
    fn next_u64(&mut self) -> u64 {
        u64::from(self.next_u32())
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for b in dest {
            *b = self.next_u32() as u8;
        }
    }
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.data.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn u8(&mut self) -> u8 {
        self.byte().unwrap_or(0)
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    /// Up to `n` bytes (fewer at the end of the input).
    fn take(&mut self, n: usize) -> &[u8] {
        let end = self.pos.saturating_add(n).min(self.data.len());
        let s = &self.data[self.pos..end];
        self.pos = end;
        s
    }
}

/// One socket: the host's end (`id`) and a client connection at the other.
struct Sock {
    id: PeerId,
    /// Index in `Driver::socks`, written into every packet the client sends.
    idx: u16,
    client: Connection,
    to_server: Vec<u8>,
    to_client: Vec<u8>,
    /// The host has this socket (not released, not forgotten by `close()`).
    server_open: bool,
    client_open: bool,
    server_eof: bool,
    client_eof: bool,
    /// Input was refused: offered again only after `poll_dirty` names it.
    waiting: bool,
    /// The host's output was not all written: keep writing (an adapter
    /// keeps the socket armed for writability).
    flushing: bool,
    /// Garbage or hand-built frames went in: no content checks.
    garbage: bool,
    /// Next sequence number the client sends, and the next one expected
    /// from the host.
    sent: u16,
    expected: u16,
    got_id: bool,
}

struct Driver {
    host: Host,
    config: Config,
    client_config: Arc<Config>,
    now: Timestamp,
    socks: Vec<Sock>,
    /// Per id: connected as far as the application's signals tell.
    connected: BTreeMap<PeerId, bool>,
    /// Per id: forced disconnects (no signal, spec §3.9), each allowing one
    /// `PeerConnected` without a `PeerDisconnected` before it.
    forced: BTreeMap<PeerId, u32>,
    peak_live: usize,
    reserved: Vec<PeerId>,
    /// `close()` was called: the host forgot everything.
    closed: bool,
}

impl Driver {
    fn live(&self) -> usize {
        self.socks.iter().filter(|s| s.server_open).count()
    }

    fn pick(&self, b: u8) -> Option<usize> {
        (!self.socks.is_empty()).then(|| usize::from(b) % self.socks.len())
    }

    fn new_client(&self) -> Connection {
        let seed = 0xC11E_0000 ^ self.socks.len() as u32;
        Connection::client(
            self.client_config.clone(),
            "ws://h/fuzz",
            self.now,
            Box::new(crate::drivers::FixedRng(seed)),
        )
        .expect("valid client")
    }

    fn add_sock(&mut self, id: PeerId, client: Connection, to_server: Vec<u8>) {
        for s in &self.socks {
            assert!(
                !(s.server_open && s.id == id),
                "id {id} handed out while its socket is open"
            );
        }
        let idx = self.socks.len() as u16;
        self.socks.push(Sock {
            id,
            idx,
            client,
            to_server,
            to_client: Vec::new(),
            server_open: true,
            client_open: true,
            server_eof: false,
            client_eof: false,
            waiting: false,
            flushing: false,
            garbage: false,
            sent: 0,
            expected: 0,
            got_id: false,
        });
        self.peak_live = self.peak_live.max(self.live());
    }

    fn step(&mut self, op: u8, c: &mut Cursor<'_>) {
        let now = self.now;
        match op % 16 {
            0 => {
                if self.live() < MAX_LIVE && self.socks.len() < MAX_SOCKETS {
                    if let Ok(id) = self.host.accept(now, None) {
                        let mut client = self.new_client();
                        let req = take_output(&mut client, now);
                        self.add_sock(id, client, req);
                    }
                }
            }
            1 => self.adopt(c),
            2 => {
                let (Some(i), len, kind) = (self.pick(c.u8()), c.u8(), c.u8()) else {
                    return;
                };
                let s = &mut self.socks[i];
                let mut p = Vec::with_capacity(4 + usize::from(len));
                p.extend_from_slice(&s.idx.to_be_bytes());
                p.extend_from_slice(&s.sent.to_be_bytes());
                p.resize(4 + usize::from(len), b'a' + kind % 26);
                let kind = if kind & 1 != 0 {
                    MessageKind::Text
                } else {
                    MessageKind::Binary
                };
                if kind == MessageKind::Text {
                    // Text must be UTF-8: the 4-byte prefix as hex-ish ASCII.
                    for b in &mut p[..4] {
                        *b = b'0' + (*b & 0x3F);
                    }
                    s.garbage = true;
                }
                if s.client.send(now, kind, Bytes::from(p)).is_ok() {
                    s.sent = s.sent.wrapping_add(1);
                }
            }
            3 => {
                let (Some(i), n) = (self.pick(c.u8()), c.u8()) else {
                    return;
                };
                let bytes = c.take(usize::from(n % 64)).to_vec();
                let s = &mut self.socks[i];
                s.to_server.extend_from_slice(&bytes);
                s.garbage = true;
            }
            4 => {
                let Some(i) = self.pick(c.u8()) else { return };
                let frame = hand_built_frame(c);
                let s = &mut self.socks[i];
                s.to_server.extend_from_slice(&frame);
                s.garbage = true;
            }
            5 => {
                let limit = c.u8();
                self.pump(usize::from(limit) * 16 + 1);
            }
            6 => {
                let Some(i) = self.pick(c.u8()) else { return };
                // The client's socket ends (reset or FIN).
                let s = &mut self.socks[i];
                s.client_open = false;
                s.to_server.clear();
                if s.server_open && !s.server_eof {
                    s.server_eof = true;
                    let _ = self.host.handle_eof(now, s.id);
                }
            }
            7 => {
                let Some(i) = self.pick(c.u8()) else { return };
                let s = &mut self.socks[i];
                if s.server_open {
                    self.host.release(now, s.id);
                    s.server_open = false;
                    s.to_client.clear();
                }
            }
            8 => {
                let (t, len) = (c.u8(), c.u8());
                let target = match (t % 4, self.pick(t / 4)) {
                    (0, Some(i)) => Target::Peer(self.socks[i].id),
                    (1, Some(i)) => Target::AllExcept(self.socks[i].id),
                    (2, _) => Target::Peer(PeerId::new(i32::from(t) + 2).unwrap_or(PeerId::SERVER)),
                    _ => Target::Broadcast,
                };
                let payload = Bytes::from(alloc::vec![t; usize::from(len) * 5]);
                let sent = if t & 0x80 != 0 {
                    self.host.set_target_peer(target);
                    self.host.put_packet(now, payload.clone())
                } else {
                    self.host.send(now, target, payload.clone())
                };
                match sent {
                    Ok(r) => assert!(r.delivered <= self.host.connected_count()),
                    Err(e) => assert_eq!(e.into_payload(), payload),
                }
            }
            9 => {
                let (Some(i), how) = (self.pick(c.u8()), c.u8()) else {
                    return;
                };
                let id = self.socks[i].id;
                match how % 3 {
                    0 => {
                        let _ = self.host.disconnect_peer(now, id, false);
                    }
                    1 => {
                        if self.host.disconnect_peer(now, id, true).is_ok() {
                            *self.forced.entry(id).or_insert(0) += 1;
                        }
                    }
                    _ => {
                        let code = CloseCode(c.u16() % 5000);
                        let n = usize::from(c.u8() % 140);
                        let reason: alloc::string::String = c
                            .take(n)
                            .iter()
                            .map(|b| char::from(b'a' + b % 26))
                            .collect();
                        let _ = self.host.disconnect_peer_with(now, id, code, &reason);
                    }
                }
            }
            10 => {
                let ms = u64::from(c.u8()) * 29;
                self.now = self.now.saturating_add(Duration::from_millis(ms));
                self.timers();
            }
            11 => {
                let n = c.u8();
                for k in 0..n % 12 {
                    match (n / 12 + k) % 3 {
                        0 => match self.host.poll_event() {
                            Some(e) => self.on_event(e),
                            None => break,
                        },
                        1 => match self.host.get_packet() {
                            Some((from, data)) => self.on_packet(from, &data),
                            None => break,
                        },
                        _ => match self.host.poll_signal() {
                            Some(e) => self.on_event(e),
                            None => break,
                        },
                    }
                }
            }
            12 => {
                let b = c.u8();
                match b % 4 {
                    0 => {
                        let r = self.host.refuse_new_connections();
                        self.host.set_refuse_new_connections(!r);
                    }
                    _ => {
                        if let Some(HostEvent::Request { peer, request }) = self.host.poll_request()
                        {
                            assert!(self.socks.iter().any(|s| s.server_open && s.id == peer));
                            if b % 4 == 1 && request.is_upgrade {
                                let _ =
                                    self.host
                                        .accept_request(now, peer, AcceptOptions::default());
                            } else {
                                let _ =
                                    self.host
                                        .respond(now, peer, HttpResponse::text(503, "full\n"));
                            }
                        }
                    }
                }
            }
            13 => {
                let (Some(i), code) = (self.pick(c.u8()), c.u16()) else {
                    return;
                };
                let s = &mut self.socks[i];
                let _ = s.client.close(now, CloseCode(code % 5000), "bye");
            }
            14 => {
                let b = c.u8();
                if b & 1 == 0 && self.reserved.len() < 16 {
                    if let Ok(id) = self.host.reserve_id() {
                        assert!(!self.socks.iter().any(|s| s.server_open && s.id == id));
                        self.reserved.push(id);
                    }
                } else if let Some(id) = self.reserved.pop() {
                    self.host.cancel_reservation(id);
                }
            }
            _ => match c.u8() {
                0xFE => self.host.shutdown(now),
                0xFF => {
                    // close(): everything forgotten at once, no events.
                    self.host.close();
                    self.closed = true;
                    for s in &mut self.socks {
                        s.server_open = false;
                        s.to_client.clear();
                    }
                    self.connected.clear();
                    self.forced.clear();
                }
                _ => {
                    // Drain the wake-ups as an adapter would.
                    while let Some(id) = self.host.poll_dirty() {
                        self.woken(id);
                    }
                }
            },
        }
    }

    /// A handshake run outside the host (the adapter's task), then adopted.
    fn adopt(&mut self, c: &mut Cursor<'_>) {
        let (how, opts) = (c.u8(), c.u8());
        let (take_open, pipelined) = (opts & 1 != 0, opts & 2 != 0);
        if self.live() >= MAX_LIVE || self.socks.len() >= MAX_SOCKETS {
            return;
        }
        let now = self.now;
        let mut client = self.new_client();
        let mut server =
            Connection::server(Arc::new(self.config.clone()), now, Admission::Automatic)
                .expect("valid config");
        let mut req = take_output(&mut client, now);
        if pipelined {
            // A first packet right behind the request, read by the adapter's
            // task before adoption (sequence 0 of the socket-to-be).
            let mut p = (self.socks.len() as u16).to_be_bytes().to_vec();
            p.extend_from_slice(&[0, 0, b'p']);
            req.extend_from_slice(&masked_binary(&p));
        }
        assert_eq!(server.handle_input(now, &req), req.len());
        if take_open {
            assert!(matches!(server.poll_event(), Some(Event::Open { .. })));
        }
        // The adapter may write the 101 itself, or leave it to the host.
        let resp = if how & 0x80 != 0 {
            take_output(&mut server, now)
        } else {
            Vec::new()
        };
        let id = match how % 4 {
            0 => None,
            1 => self.pick(how / 4).map(|i| self.socks[i].id),
            2 => self.reserved.last().copied(),
            _ => PeerId::new(i32::from(how & 0x7F) + 2),
        };
        if let Ok(got) = self.host.adopt(now, server, None, id) {
            if let Some(want) = id {
                assert_eq!(got, want);
            }
            self.reserved.retain(|r| *r != got);
            self.add_sock(got, client, Vec::new());
            let s = self.socks.last_mut().expect("just added");
            s.to_client = resp;
            s.sent = u16::from(pipelined);
        }
    }

    fn timers(&mut self) {
        let now = self.now;
        if self.host.poll_timeout().is_some_and(|t| t <= now) {
            self.host.handle_timeout(now);
        }
        for s in &mut self.socks {
            if s.client_open && s.client.poll_timeout().is_some_and(|t| t <= now) {
                s.client.handle_timeout(now);
            }
        }
    }

    /// `poll_dirty` named `id`: its output is written below, and input that
    /// waited may be offered again.
    fn woken(&mut self, id: PeerId) {
        for s in &mut self.socks {
            if s.server_open && s.id == id {
                s.waiting = false;
            }
        }
    }

    /// A few rounds of moving bytes; the host's output only for the peers
    /// `poll_dirty` names (and those still flushing), at most `limit` bytes
    /// per write.
    fn pump(&mut self, limit: usize) {
        for _ in 0..4 {
            let mut moved = 0;
            while let Some(id) = self.host.poll_dirty() {
                moved += 1;
                self.woken(id);
                match self.socks.iter_mut().find(|s| s.server_open && s.id == id) {
                    Some(s) => s.flushing = true,
                    // Named but not ours: only a socket the host forgot.
                    None => assert!(
                        self.host.connection(id).is_none(),
                        "poll_dirty named unknown {id}"
                    ),
                }
            }
            for i in 0..self.socks.len() {
                moved += self.write(i, limit);
                moved += self.move_bytes(i, limit);
            }
            if moved == 0 {
                break;
            }
        }
    }

    /// Writes up to `limit` bytes of the host's output to socket `i`,
    /// through a lease as the adapters do.
    fn write(&mut self, i: usize, limit: usize) -> usize {
        let now = self.now;
        let s = &mut self.socks[i];
        if !s.server_open || !s.flushing {
            return 0;
        }
        let id = s.id;
        let mut batch = TransmitBatch::new();
        self.host.lease_transmit(id, &mut batch, 16, limit);
        let mut bytes = Vec::with_capacity(batch.len().min(limit));
        for c in batch.chunks() {
            let room = limit - bytes.len();
            bytes.extend_from_slice(&c[..c.len().min(room)]);
            if bytes.len() == limit {
                break;
            }
        }
        let n = bytes.len();
        if n > 0 {
            self.host.advance_transmit(now, id, n);
            if s.client_open {
                s.to_client.extend_from_slice(&bytes);
            }
        }
        s.flushing = self.host.transmit_len(id) > 0;
        if !s.flushing && self.host.should_close_socket(id) {
            self.host.release(now, id);
            s.server_open = false;
            s.to_client.clear();
            return n + 1;
        }
        n
    }

    /// Moves bytes over socket `i` both ways; returns how many (plus the
    /// ends delivered).
    fn move_bytes(&mut self, i: usize, limit: usize) -> usize {
        let now = self.now;
        let mut moved = 0;
        let s = &mut self.socks[i];
        if s.client_open {
            let out = take_output(&mut s.client, now);
            moved += out.len();
            if s.server_open {
                s.to_server.extend_from_slice(&out);
            }
            if !s.to_client.is_empty() {
                let n = s.client.handle_input(now, &s.to_client);
                assert!(n <= s.to_client.len());
                s.to_client.drain(..n);
                moved += n;
            }
            client_events(s);
            if s.client.should_close_socket() && s.client.transmit_len() == 0 {
                s.client_open = false;
                s.to_server.clear();
                moved += 1;
            }
        }
        if s.server_open && !s.waiting && !s.to_server.is_empty() {
            let offered = s.to_server.len().min(limit);
            let n = self
                .host
                .handle_input(now, s.id, &s.to_server[..offered])
                .expect("the host knows an open socket");
            assert!(n <= offered, "consumed more than offered");
            s.to_server.drain(..n);
            moved += n;
            if n < offered {
                // Contract: refused input ⇒ can_read() false until poll_dirty names it.
                assert!(!self.host.can_read(s.id), "refused input while can_read()");
                s.waiting = true;
            }
        }
        if s.server_open && !s.client_open && s.to_server.is_empty() && !s.server_eof {
            s.server_eof = true;
            let _ = self.host.handle_eof(now, s.id);
            moved += 1;
        }
        if s.client_open && !s.server_open && s.to_client.is_empty() && !s.client_eof {
            s.client_eof = true;
            s.client.handle_eof(now);
            client_events(s);
            moved += 1;
        }
        moved
    }

    fn on_event(&mut self, e: HostEvent) {
        match e {
            HostEvent::Packet { from, data } => {
                // In order with the signals: its peer was announced first.
                assert!(
                    self.connected.contains_key(&from),
                    "packet from {from} before PeerConnected"
                );
                self.on_packet(from, &data);
            }
            HostEvent::PeerConnected(id) => {
                let was = self.connected.insert(id, true);
                if was == Some(true) {
                    // Only a forced disconnect leaves no signal between two.
                    let f = self.forced.get_mut(&id).filter(|f| **f > 0);
                    let f = f.unwrap_or_else(|| panic!("PeerConnected({id}) twice"));
                    *f -= 1;
                }
            }
            HostEvent::PeerDisconnected { peer, .. } => {
                let was = self.connected.insert(peer, false);
                assert_eq!(
                    was,
                    Some(true),
                    "PeerDisconnected({peer}) without PeerConnected"
                );
            }
            HostEvent::Request { .. } => panic!("requests come from poll_request only"),
            HostEvent::ConnectFailed(_) => panic!("a server never fails to connect"),
        }
    }

    fn on_packet(&mut self, from: PeerId, data: &[u8]) {
        assert!(!data.is_empty(), "spec §3.5: empty messages are discarded");
        assert!(data.len() <= self.config.inbound_buffer_size);
        // The packet's sender: the newest socket with that id (an id is not
        // reused while packets of its previous peer are unread).
        let s = self
            .socks
            .iter_mut()
            .rev()
            .find(|s| s.id == from)
            .expect("a packet from a peer we never had");
        if s.garbage || data.len() < 4 {
            return;
        }
        let idx = u16::from_be_bytes([data[0], data[1]]);
        let seq = u16::from_be_bytes([data[2], data[3]]);
        assert_eq!(idx, s.idx, "packet of another socket reported from {from}");
        assert_eq!(seq, s.expected, "packets from {from} out of order or lost");
        s.expected = s.expected.wrapping_add(1);
    }

    fn check(&mut self) {
        let h = &self.host;
        let open: Vec<PeerId> = self
            .socks
            .iter()
            .filter(|s| s.server_open)
            .map(|s| s.id)
            .collect();
        assert_eq!(h.socket_count(), open.len(), "host peers ≠ open sockets");
        for id in &open {
            let conn = h.connection(*id).expect("the host forgot an open socket");
            check_connection(conn, &self.config);
        }
        assert_eq!(h.connected_peers().count(), h.connected_count());
        assert!(h.connected_count() + h.pending_count() <= h.socket_count());
        // Unread packets: per peer within its limits, released peers within
        // one more peer's worth (module docs, "Released peers").
        let bound = (self.peak_live + 1) * self.config.max_queued_packets;
        assert!(
            h.available_packet_count() <= bound,
            "{} unread packets, bound {bound}",
            h.available_packet_count()
        );
        if self.closed {
            assert_eq!(h.socket_count(), 0);
        }
    }

    fn finish(&mut self) {
        // Deliver what is pending, then every wake-up.
        self.pump(usize::MAX);
        while let Some(id) = self.host.poll_dirty() {
            self.woken(id);
        }
        for s in &self.socks {
            if s.server_open && s.waiting && !s.to_server.is_empty() {
                assert!(
                    !self.host.can_read(s.id),
                    "peer {} may read again but poll_dirty never named it",
                    s.id
                );
            }
        }
        // Read everything: every packet is accounted for.
        while let Some(e) = self.host.poll_event() {
            self.on_event(e);
        }
        assert_eq!(self.host.available_packet_count(), 0);
        self.check();
    }
}

/// The client's view of the host's output: its own id first, never a
/// protocol error, close codes the engine accepts.
fn client_events(s: &mut Sock) {
    while let Some(e) = s.client.poll_event() {
        match e {
            Event::Message(m) => {
                if !s.got_id {
                    s.got_id = true;
                    assert_eq!(m.kind, MessageKind::Binary, "spec §3.7: binary id");
                    assert_eq!(
                        decode_id_message(&m.data),
                        Some(s.id),
                        "spec §3.7: own id first"
                    );
                }
            }
            Event::Closed(info) => {
                assert_ne!(
                    info.cause,
                    CloseCause::ProtocolError,
                    "host output broke the protocol: {info:?}"
                );
                if info.clean && info.code != CloseCode::NO_STATUS {
                    assert!(
                        info.code.is_godot_safe(),
                        "host sent close code {}",
                        info.code
                    );
                }
            }
            Event::Open { .. } | Event::Pong(_) | Event::Request(_) => {}
        }
    }
}

/// Limits every connection keeps (see `drivers::check_limits`).
fn check_connection(conn: &Connection, config: &Config) {
    assert!(conn.unread_bytes() <= config.inbound_buffer_size);
    assert!(conn.unread_messages() <= config.max_queued_packets);
    if config.outbound_buffer_size > 0 {
        assert!(conn.buffered_amount() <= config.outbound_buffer_size);
    }
    assert!(conn.queued_messages() <= config.max_queued_packets);
    // Without a byte limit, data is bounded by the count and what the
    // driver sends (≤ 1275-byte messages).
    let out = config
        .outbound_buffer_size
        .max(config.max_queued_packets * 1300);
    assert!(
        conn.buffered_memory() <= 4 * config.inbound_buffer_size + 2 * out + 32 * 1024,
        "buffered memory {}",
        conn.buffered_memory()
    );
    if conn.state() == State::Closed {
        assert_eq!(conn.buffered_amount(), 0);
    }
}

/// A frame built from fuzz bytes: the first byte (FIN, RSV, opcode) as
/// given, a short payload, masked or not.
fn hand_built_frame(c: &mut Cursor<'_>) -> Vec<u8> {
    let (b0, b1) = (c.u8(), c.u8());
    let payload = c.take(usize::from(b1 & 0x7F)).to_vec();
    let mask = (b1 & 0x80 != 0).then_some([b0, b1, 0x5A, 0xA5]);
    let header = FrameHeader {
        fin: true,
        rsv: 0,
        opcode: OpCode::Binary,
        mask,
        payload_len: payload.len() as u64,
    };
    let (head, n) = header.to_bytes();
    let mut v = head[..n].to_vec();
    v[0] = b0;
    let start = v.len();
    v.extend_from_slice(&payload);
    if let Some(k) = mask {
        wsmp_core::frame::apply_mask(&mut v[start..], k, 0);
    }
    v
}

/// A masked binary frame (RFC 6455 §5.3), as a client sends it.
fn masked_binary(payload: &[u8]) -> Vec<u8> {
    let key = [0x11, 0x22, 0x33, 0x44];
    let header = FrameHeader {
        fin: true,
        rsv: 0,
        opcode: OpCode::Binary,
        mask: Some(key),
        payload_len: payload.len() as u64,
    };
    let (head, n) = header.to_bytes();
    let mut v = head[..n].to_vec();
    let start = v.len();
    v.extend_from_slice(payload);
    wsmp_core::frame::apply_mask(&mut v[start..], key, 0);
    v
}

fn take_output(conn: &mut Connection, now: Timestamp) -> Vec<u8> {
    let mut out = Vec::with_capacity(conn.transmit_len());
    for c in conn.transmit() {
        out.extend_from_slice(c);
    }
    conn.advance_transmit(now, out.len());
    out
}
