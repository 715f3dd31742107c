//! permessage-deflate benchmarks over the core `Host` (server side):
//!
//! - wire bytes and server CPU per message for three payloads (a ~200-byte
//!   JSON chat message, a 2 KiB JSON game state, 64 random bytes) with
//!   compression off / shared (`server_no_context_takeover`, the broadcast
//!   compressed once) / per-connection (context takeover), sent to one peer;
//! - fan-out CPU per delivery for a 32-peer room (one broadcast to 32 peers);
//! - memory per idle peer after one message each way (counting allocator,
//!   clients excluded), per mode, and with no context takeover both ways.
//!
//! Each measured message differs from the previous ones (64 variants in
//! turn), as a game's messages do, so context takeover is not flattered by
//! exact repeats. Clients are real `Connection`s (compressing their own
//! messages); bytes move through in-memory pipes.
//!
//! `cargo bench -p wsmp-core --bench deflate -- --warm-up-time 1 --measurement-time 3`

use std::alloc::System;
use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput};
use rand_core::RngCore;
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use wsmp_core::connection::{Admission, MessageKind};
use wsmp_core::{Config, Connection, DeflateConfig, Host, HostEvent, PeerId, Target, Timestamp};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// SplitMix64: deterministic ids, masks and payloads.
struct SplitMix64(u64);

impl RngCore for SplitMix64 {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        for chunk in dst.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Off,
    Shared,
    /// Shared, and the clients told not to keep context either (memory only).
    NoContext,
    PerConnection,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Shared => "shared",
            Mode::NoContext => "no-context-both",
            Mode::PerConnection => "per-connection",
        }
    }

    /// The server's configuration (clients offer the extension in every mode
    /// but `Off`, as browsers do).
    fn server_config(self) -> Config {
        let deflate = match self {
            Mode::Off => None,
            Mode::Shared => Some(DeflateConfig {
                server_no_context_takeover: true,
                ..DeflateConfig::default()
            }),
            Mode::NoContext => Some(DeflateConfig {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                ..DeflateConfig::default()
            }),
            Mode::PerConnection => Some(DeflateConfig::default()),
        };
        Config {
            permessage_deflate: deflate,
            ..Config::default()
        }
    }

    fn client_config(self) -> Config {
        Config {
            permessage_deflate: (self != Mode::Off).then(DeflateConfig::default),
            ..Config::default()
        }
    }
}

/// A chat message of about 200 bytes, variant `i`.
fn chat(i: usize) -> Bytes {
    let words = [
        "hello", "anyone", "up for", "a round", "on the", "new map", "gg", "brb",
    ];
    let text: Vec<&str> = (0..6)
        .map(|k| words[(i * 3 + k * 5) % words.len()])
        .collect();
    Bytes::from(format!(
        "{{\"type\":\"chat\",\"from\":{},\"room\":\"lobby\",\"channel\":\"global\",\"ts\":{},\"color\":\"#ff{:04x}\",\"text\":\"{}\",\"badges\":[\"veteran\",\"beta\"],\"lang\":\"en\"}}",
        1000 + i % 17,
        1_700_000_000_000u64 + i as u64 * 977,
        i * 31 % 65536,
        text.join(" ")
    ))
}

/// A 2 KiB game state, variant `i`.
fn state(i: usize) -> Bytes {
    let mut s = format!("{{\"tick\":{},\"players\":[", 10_000 + i);
    let mut k = 0;
    while s.len() < 2000 {
        s.push_str(&format!(
            "{{\"id\":{},\"x\":{:.2},\"y\":{:.2},\"vx\":{},\"vy\":{},\"hp\":{},\"anim\":\"{}\"}},",
            k + 2,
            (k * 37 + i * 3) as f32 * 1.25,
            (k * 91 + i * 7) as f32 * 0.75,
            (k + i) % 7,
            (k * 3 + i) % 5,
            100 - (k + i) % 40,
            ["idle", "run", "jump", "fall"][(k + i) % 4]
        ));
        k += 1;
    }
    s.truncate(2047);
    s.push('}');
    Bytes::from(s)
}

/// 64 random bytes, variant `i`.
fn random(i: usize) -> Bytes {
    let mut v = vec![0u8; 64];
    SplitMix64(i as u64 + 1).fill_bytes(&mut v);
    Bytes::from(v)
}

const VARIANTS: usize = 64;

/// A server host and its clients (real `Connection`s) over in-memory pipes.
struct Room {
    host: Host,
    clients: Vec<(PeerId, Connection)>,
    now: Timestamp,
}

impl Room {
    fn new(mode: Mode, peers: usize) -> Room {
        let now = Timestamp::from_millis(1);
        let host = Host::server(
            mode.server_config(),
            Admission::Automatic,
            Box::new(SplitMix64(7)),
        )
        .expect("server");
        let mut room = Room {
            host,
            clients: Vec::new(),
            now,
        };
        let config = Arc::new(mode.client_config());
        for k in 0..peers {
            let id = room.host.accept(now, None).expect("accept");
            let client = Connection::client(
                config.clone(),
                "ws://127.0.0.1:9080/game",
                now,
                Box::new(SplitMix64(100 + k as u64)),
            )
            .expect("client");
            room.clients.push((id, client));
        }
        room.pump();
        let mut connected = 0;
        while let Some(e) = room.host.poll_event() {
            if matches!(e, HostEvent::PeerConnected(_)) {
                connected += 1;
            }
        }
        assert_eq!(connected, peers);
        for (id, c) in &mut room.clients {
            while c.poll_event().is_some() {}
            let negotiated = room
                .host
                .connection(*id)
                .and_then(Connection::permessage_deflate);
            assert_eq!(negotiated.is_some(), mode != Mode::Off);
        }
        room
    }

    /// Moves bytes both ways until nothing moves; returns the bytes the
    /// server wrote.
    fn pump(&mut self) -> usize {
        let now = self.now;
        let mut server_bytes = 0;
        loop {
            let mut moved = 0;
            for (id, client) in &mut self.clients {
                let out: Vec<u8> = client.transmit().flat_map(|c| c.iter().copied()).collect();
                if !out.is_empty() {
                    client.advance_transmit(now, out.len());
                    let used = self.host.handle_input(now, *id, &out).expect("peer");
                    assert_eq!(used, out.len());
                    moved += out.len();
                }
                let n = server_to(&mut self.host, now, *id, client);
                server_bytes += n;
                moved += n;
            }
            if moved == 0 {
                return server_bytes;
            }
        }
    }

    /// What an adapter does: writes every dirty peer's output (not read by
    /// a client: the measured part is the server's).
    fn drain(&mut self) -> usize {
        let mut total = 0;
        while let Some(id) = self.host.poll_dirty() {
            let n: usize = self
                .host
                .transmit(id)
                .map_or(0, |chunks| chunks.map(|c| black_box(c).len()).sum());
            self.host.advance_transmit(self.now, id, n);
            total += n;
        }
        total
    }
}

/// Delivers what the server queued for `id` to its client.
fn server_to(host: &mut Host, now: Timestamp, id: PeerId, client: &mut Connection) -> usize {
    let out: Vec<u8> = match host.transmit(id) {
        Some(chunks) => chunks.flat_map(|c| c.iter().copied()).collect(),
        None => return 0,
    };
    if out.is_empty() {
        return 0;
    }
    host.advance_transmit(now, id, out.len());
    let used = client.handle_input(now, &out);
    assert_eq!(used, out.len());
    while client.poll_event().is_some() {}
    out.len()
}

type Payload = fn(usize) -> Bytes;

const PAYLOADS: [(&str, Payload); 3] = [
    ("chat-200B", chat),
    ("state-2KiB", state),
    ("random-64B", random),
];

const MODES: [Mode; 3] = [Mode::Off, Mode::Shared, Mode::PerConnection];

/// Wire bytes per message (frame header included), averaged over the 64
/// variants sent once each to one peer after a warm-up round.
fn wire_report() {
    println!("wire bytes per message (frame header included; average of {VARIANTS} variants):");
    for (name, make) in PAYLOADS {
        let plain: usize = (0..VARIANTS).map(|i| make(i).len()).sum::<usize>() / VARIANTS;
        let mut line = format!("  {name:<11} payload {plain:>5} B:");
        for mode in MODES {
            let mut room = Room::new(mode, 1);
            let id = room.clients[0].0;
            let now = room.now;
            for i in 0..VARIANTS {
                room.host
                    .send(now, Target::Peer(id), make(i + VARIANTS))
                    .expect("warm-up");
                room.pump();
            }
            let mut total = 0;
            for i in 0..VARIANTS {
                room.host
                    .send(now, Target::Peer(id), make(i))
                    .expect("sent");
                total += room.pump();
            }
            let per = total as f64 / VARIANTS as f64;
            line.push_str(&format!(
                "  {} {:.1} ({:.2}x)",
                mode.name(),
                per,
                per / (plain as f64 + 2.0)
            ));
        }
        println!("{line}");
    }
}

/// Memory the host holds per idle peer after one message each way.
fn memory_report() {
    const PEERS: usize = 100;
    println!("host memory per idle peer after one {}-byte message each way ({PEERS} peers, clients excluded):", state(0).len());
    for mode in [
        Mode::Off,
        Mode::Shared,
        Mode::NoContext,
        Mode::PerConnection,
    ] {
        let region = Region::new(GLOBAL);
        let mut room = Room::new(mode, PEERS);
        let now = room.now;
        for k in 0..PEERS {
            let (_, client) = &mut room.clients[k];
            client
                .send(now, MessageKind::Text, state(k))
                .expect("client send");
        }
        room.pump();
        while room.host.poll_event().is_some() {}
        room.host
            .send(now, Target::Broadcast, state(1))
            .expect("broadcast");
        room.pump();
        let reported: usize = room
            .clients
            .iter()
            .map(|(id, _)| {
                room.host
                    .connection(*id)
                    .map_or(0, Connection::buffered_memory)
            })
            .sum();
        // Drop the clients: what stays allocated is the host's.
        let host = std::mem::replace(
            &mut room.host,
            Host::server(
                Config::default(),
                Admission::Automatic,
                Box::new(SplitMix64(1)),
            )
            .expect("placeholder"),
        );
        drop(room);
        let s = region.change();
        let live = s.bytes_allocated as isize - s.bytes_deallocated as isize + s.bytes_reallocated;
        println!(
            "  {:<15} {:>8} bytes/peer live ({} bytes/peer from Connection::buffered_memory)",
            mode.name(),
            live / PEERS as isize,
            reported / PEERS
        );
        drop(host);
    }
}

fn unicast(c: &mut Criterion) {
    for (name, make) in PAYLOADS {
        let mut group = c.benchmark_group(format!("server_cpu_per_message/{name}"));
        group.throughput(Throughput::Elements(1));
        let msgs: Vec<Bytes> = (0..VARIANTS).map(make).collect();
        for mode in MODES {
            let mut room = Room::new(mode, 1);
            let id = room.clients[0].0;
            let now = room.now;
            let mut i = 0;
            group.bench_function(BenchmarkId::from_parameter(mode.name()), |b| {
                b.iter(|| {
                    i = (i + 1) % VARIANTS;
                    room.host
                        .send(now, Target::Peer(id), msgs[i].clone())
                        .expect("sent");
                    black_box(room.drain())
                })
            });
        }
        group.finish();
    }
}

fn fan_out(c: &mut Criterion) {
    const PEERS: usize = 32;
    for (name, make) in PAYLOADS {
        let mut group = c.benchmark_group(format!("fan_out_32_peers/{name}"));
        group.throughput(Throughput::Elements(PEERS as u64));
        let msgs: Vec<Bytes> = (0..VARIANTS).map(make).collect();
        for mode in MODES {
            let mut room = Room::new(mode, PEERS);
            let now = room.now;
            let mut i = 0;
            group.bench_function(BenchmarkId::from_parameter(mode.name()), |b| {
                b.iter(|| {
                    i = (i + 1) % VARIANTS;
                    let r = room
                        .host
                        .send(now, Target::Broadcast, msgs[i].clone())
                        .expect("broadcast");
                    debug_assert_eq!(r.delivered, PEERS);
                    black_box(room.drain())
                })
            });
        }
        group.finish();
    }
}

fn main() {
    wire_report();
    memory_report();
    let mut c = Criterion::default().configure_from_args();
    unicast(&mut c);
    fan_out(&mut c);
    c.final_summary();
}
