//! Host benchmarks: broadcast to 1,000 connected peers (64 B and 4 KiB), and
//! host memory per connected idle peer (counting global allocator).
//!
//! `cargo bench -p wsmp-core --bench host -- --warm-up-time 1 --measurement-time 3`

use std::alloc::System;
use std::hint::black_box;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput};
use rand_core::RngCore;
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use wsmp_core::connection::Admission;
use wsmp_core::{Config, Host, HostEvent, PeerId, Target, Timestamp};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const PEERS: usize = 1000;

/// SplitMix64: deterministic ids.
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

const REQUEST: &[u8] = b"GET /game HTTP/1.1\r\nHost: 127.0.0.1:9080\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\n\r\n";

fn server() -> Host {
    Host::server(
        Config::default(),
        Admission::Automatic,
        Box::new(SplitMix64(7)),
    )
    .expect("server")
}

/// Writes everything the dirty peers have queued, as an adapter does.
fn drain(host: &mut Host, now: Timestamp) -> usize {
    let mut total = 0;
    while let Some(id) = host.poll_dirty() {
        let n: usize = host
            .transmit(id)
            .map_or(0, |chunks| chunks.map(|c| black_box(c).len()).sum());
        host.advance_transmit(now, id, n);
        total += n;
    }
    total
}

/// Connects `n` peers through the full handshake and id message, drains
/// all output and events.
fn connect(host: &mut Host, n: usize, now: Timestamp) -> Vec<PeerId> {
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        let id = host.accept(now, None).expect("accept");
        let used = host.handle_input(now, id, REQUEST).expect("peer");
        assert_eq!(used, REQUEST.len());
        ids.push(id);
    }
    drain(host, now);
    let mut connected = 0;
    while let Some(e) = host.poll_event() {
        if matches!(e, HostEvent::PeerConnected(_)) {
            connected += 1;
        }
    }
    assert_eq!(connected, n);
    let _ = host.poll_timeout();
    ids
}

fn live(region: &Region<'_, System>) -> isize {
    let s = region.change();
    s.bytes_allocated as isize - s.bytes_deallocated as isize + s.bytes_reallocated
}

fn memory_report() {
    let now = Timestamp::from_millis(1);
    let mut host = server();
    let region = Region::new(GLOBAL);
    let ids = connect(&mut host, PEERS, now);
    let bytes = live(&region);
    println!(
        "host memory: {} bytes live for {} connected idle peers = {} bytes/peer (target <= 2048)",
        bytes,
        PEERS,
        bytes / PEERS as isize
    );
    // The id vector of the bench itself is not the host's.
    let own = (ids.capacity() * std::mem::size_of::<PeerId>()) as isize;
    println!(
        "host memory excluding the bench's id list: {} bytes/peer",
        (bytes - own) / PEERS as isize
    );
    drop(ids);
    drop(host);
}

fn broadcast(c: &mut Criterion) {
    let now = Timestamp::from_millis(1);
    let mut host = server();
    let _ids = connect(&mut host, PEERS, now);
    let mut group = c.benchmark_group("broadcast_1000_peers");
    group.throughput(Throughput::Elements(PEERS as u64));
    for size in [64usize, 4096] {
        let payload = Bytes::from(vec![0xA5u8; size]);
        group.bench_with_input(BenchmarkId::from_parameter(size), &payload, |b, p| {
            b.iter(|| {
                let report = host
                    .send(now, Target::Broadcast, p.clone())
                    .expect("broadcast");
                debug_assert_eq!(report.delivered, PEERS);
                black_box(drain(&mut host, now))
            })
        });
    }
    group.finish();
}

fn main() {
    memory_report();
    let mut c = Criterion::default().configure_from_args();
    broadcast(&mut c);
    c.final_summary();
}
