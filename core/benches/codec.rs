//! Codec micro-benchmarks: masking, frame header decode/encode, and a whole
//! server `Connection` receiving and sending frames, against fastwebsockets
//! and tungstenite.
//!
//! Run: `cargo bench -p wsmp-core --bench codec -- --warm-up-time 1 --measurement-time 3`

#![allow(missing_docs)]

use std::hint::black_box;
use std::io::Cursor;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use wsmp_core::connection::Admission;
use wsmp_core::frame::{apply_mask, FrameHeader, OpCode, MAX_HEADER_LEN};
use wsmp_core::{Config, Connection, Event, MessageKind, Timestamp};

const KEY: [u8; 4] = [0x37, 0xFA, 0x21, 0x3D];

fn byte_loop_mask(data: &mut [u8], key: [u8; 4]) {
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

fn mask(c: &mut Criterion) {
    let mut g = c.benchmark_group("mask");
    for size in [16usize, 1024, 64 * 1024, 1024 * 1024] {
        let mut buf = vec![0x5Au8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("wsmp", size), &size, |b, _| {
            b.iter(|| apply_mask(black_box(&mut buf), black_box(KEY), 0));
        });
        g.bench_with_input(BenchmarkId::new("fastwebsockets", size), &size, |b, _| {
            b.iter(|| fastwebsockets::unmask(black_box(&mut buf), black_box(KEY)));
        });
        g.bench_with_input(BenchmarkId::new("byte_loop", size), &size, |b, _| {
            b.iter(|| byte_loop_mask(black_box(&mut buf), black_box(KEY)));
        });
    }
    g.finish();
}

/// Headers of assorted shapes: short, 16-bit and 64-bit lengths, masked or not.
fn header_samples() -> Vec<(bool, Option<[u8; 4]>, u64)> {
    let mut v = Vec::new();
    for &len in &[5u64, 125, 200, 65535, 70_000] {
        for mask in [None, Some(KEY)] {
            v.push((true, mask, len));
        }
    }
    v
}

/// The sample headers encoded back to back, `reps` times.
fn header_stream(reps: usize) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    let mut n = 0;
    for _ in 0..reps {
        for &(fin, mask, len) in &header_samples() {
            let h = FrameHeader {
                fin,
                rsv: 0,
                opcode: OpCode::Binary,
                mask,
                payload_len: len,
            };
            let (bytes, m) = h.to_bytes();
            out.extend_from_slice(&bytes[..m]);
            n += 1;
        }
    }
    (out, n)
}

fn headers(c: &mut Criterion) {
    use tungstenite::protocol::frame::coding::{Data, OpCode as TOpCode};
    use tungstenite::protocol::frame::FrameHeader as THeader;

    let (stream, count) = header_stream(100);
    let mut g = c.benchmark_group("header_decode");
    g.throughput(Throughput::Elements(count as u64));
    g.bench_function("wsmp", |b| {
        b.iter(|| {
            let mut buf = black_box(&stream[..]);
            let mut total = 0u64;
            while let Ok(Some((h, n))) = FrameHeader::decode(buf) {
                total = total.wrapping_add(h.payload_len);
                buf = &buf[n..];
            }
            total
        });
    });
    g.bench_function("tungstenite", |b| {
        b.iter(|| {
            let mut cur = Cursor::new(black_box(&stream[..]));
            let mut total = 0u64;
            while let Ok(Some((_h, len))) = THeader::parse(&mut cur) {
                total = total.wrapping_add(len);
            }
            total
        });
    });
    g.finish();

    let samples = header_samples();
    let mut g = c.benchmark_group("header_encode");
    g.throughput(Throughput::Elements(samples.len() as u64 * 100));
    g.bench_function("wsmp", |b| {
        let mut out = [0u8; MAX_HEADER_LEN];
        b.iter(|| {
            let mut total = 0usize;
            for _ in 0..100 {
                for &(fin, mask, len) in black_box(&samples) {
                    let h = FrameHeader {
                        fin,
                        rsv: 0,
                        opcode: OpCode::Binary,
                        mask,
                        payload_len: len,
                    };
                    total += h.encode(&mut out);
                }
            }
            total
        });
    });
    g.bench_function("tungstenite", |b| {
        let mut out = Vec::with_capacity(MAX_HEADER_LEN);
        b.iter(|| {
            let mut total = 0usize;
            for _ in 0..100 {
                for &(fin, mask, len) in black_box(&samples) {
                    let h = THeader {
                        is_final: fin,
                        rsv1: false,
                        rsv2: false,
                        rsv3: false,
                        opcode: TOpCode::Data(Data::Binary),
                        mask,
                    };
                    out.clear();
                    h.format(len, &mut out).expect("format");
                    total += out.len();
                }
            }
            total
        });
    });
    g.finish();
}

const REQUEST: &[u8] =
    b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

fn bench_config() -> Arc<Config> {
    Arc::new(Config {
        inbound_buffer_size: 1 << 24,
        outbound_buffer_size: 1 << 24,
        max_queued_packets: 1 << 16,
        ..Config::default()
    })
}

/// An open server connection with the 101 drained.
fn open_server(config: &Arc<Config>) -> Connection {
    let mut s = Connection::server(config.clone(), Timestamp::ZERO, Admission::Automatic)
        .expect("valid config");
    s.handle_input(Timestamp::ZERO, REQUEST);
    let n = s.transmit_len();
    s.advance_transmit(Timestamp::ZERO, n);
    while s.poll_event().is_some() {}
    s
}

/// `count` masked binary client frames of `size` bytes.
fn client_frames(count: usize, size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..count {
        let key = (i as u32).wrapping_mul(0x9E37_79B9).to_ne_bytes();
        let h = FrameHeader {
            fin: true,
            rsv: 0,
            opcode: OpCode::Binary,
            mask: Some(key),
            payload_len: size as u64,
        };
        let (bytes, m) = h.to_bytes();
        out.extend_from_slice(&bytes[..m]);
        let start = out.len();
        out.extend(std::iter::repeat_n(i as u8, size));
        apply_mask(&mut out[start..], key, 0);
    }
    out
}

fn receive(c: &mut Criterion) {
    let config = bench_config();
    let mut g = c.benchmark_group("receive");
    for (count, size) in [(1000usize, 16usize), (1000, 1024), (16, 64 * 1024)] {
        let stream = client_frames(count, size);
        g.throughput(Throughput::Bytes(stream.len() as u64));
        let id = format!("{count}x{size}");
        g.bench_function(BenchmarkId::new("wsmp", &id), |b| {
            b.iter_batched(
                || open_server(&config),
                |mut s| {
                    let n = s.handle_input(Timestamp::ZERO, &stream);
                    assert_eq!(n, stream.len());
                    let mut got = 0;
                    while let Some(e) = s.poll_event() {
                        if let Event::Message(m) = e {
                            got += m.data.len();
                        }
                    }
                    assert_eq!(got, count * size);
                    s
                },
                BatchSize::LargeInput,
            );
        });
        g.bench_function(BenchmarkId::new("tungstenite", &id), |b| {
            use tungstenite::protocol::{Role, WebSocket, WebSocketConfig};
            b.iter_batched(
                || {
                    WebSocket::from_raw_socket(
                        Cursor::new(stream.clone()),
                        Role::Server,
                        Some(
                            WebSocketConfig::default()
                                .max_message_size(Some(1 << 24))
                                .max_frame_size(Some(1 << 24)),
                        ),
                    )
                },
                |mut ws| {
                    let mut got = 0;
                    for _ in 0..count {
                        got += ws.read().expect("message").len();
                    }
                    assert_eq!(got, count * size);
                    ws
                },
                BatchSize::LargeInput,
            );
        });
    }
    g.finish();
}

fn send(c: &mut Criterion) {
    let config = bench_config();
    let mut g = c.benchmark_group("send");
    for (count, size) in [(1000usize, 16usize), (1000, 1024), (16, 64 * 1024)] {
        let payload = Bytes::from(vec![0xA5u8; size]);
        g.throughput(Throughput::Bytes((count * size) as u64));
        let id = format!("{count}x{size}");
        g.bench_function(BenchmarkId::new("wsmp", &id), |b| {
            b.iter_batched(
                || {
                    (
                        open_server(&config),
                        Vec::with_capacity(count * (size + 14)),
                    )
                },
                |(mut s, mut out)| {
                    for _ in 0..count {
                        s.send(Timestamp::ZERO, MessageKind::Binary, payload.clone())
                            .expect("send");
                    }
                    for chunk in s.transmit() {
                        out.extend_from_slice(chunk);
                    }
                    let n = out.len();
                    s.advance_transmit(Timestamp::ZERO, n);
                    (s, out)
                },
                BatchSize::LargeInput,
            );
        });
        g.bench_function(BenchmarkId::new("tungstenite", &id), |b| {
            use tungstenite::protocol::{Role, WebSocket, WebSocketConfig};
            use tungstenite::Message;
            b.iter_batched(
                || {
                    WebSocket::from_raw_socket(
                        Cursor::new(Vec::with_capacity(count * (size + 14))),
                        Role::Server,
                        Some(WebSocketConfig::default().max_write_buffer_size(1 << 26)),
                    )
                },
                |mut ws| {
                    for _ in 0..count {
                        ws.write(Message::Binary(payload.clone())).expect("write");
                    }
                    ws.flush().expect("flush");
                    ws
                },
                BatchSize::LargeInput,
            );
        });
    }
    g.finish();
}

criterion_group!(benches, mask, headers, receive, send);
criterion_main!(benches);
