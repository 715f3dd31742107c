//! A client that never reads: `WebSocket::send` waits, the multiplayer
//! server's `send` returns `QueueFull` with the payload, and memory stays
//! bounded. One test in this binary so that VmRSS measures only it.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use wsmp_tokio::{
    accept, connect, ClientOptions, Config, HostEvent, HostSendError, Message, MultiplayerPeer,
    ServerOptions, Target,
};

const CHUNK: usize = 64 * 1024;
/// 200 MiB worth of send attempts.
const ATTEMPTS: usize = 200 * 1024 * 1024 / CHUNK;

fn small_out() -> Config {
    Config {
        outbound_buffer_size: 256 * 1024,
        ..Config::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_reader_is_bounded() {
    // --- WebSocket: send eventually waits.
    let (l, url) = listener().await;
    let server = tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        accept(
            s,
            ServerOptions {
                config: small_out(),
                ..Default::default()
            },
        )
        .await
        .unwrap()
    });
    let client = within(5.0, "connect", connect(&url, ClientOptions::default()))
        .await
        .unwrap();
    let mut server = within(5.0, "accept", server).await.unwrap();
    let before = rss_bytes().unwrap();
    let mut sent = 0usize;
    let mut blocked = false;
    for i in 0..ATTEMPTS {
        let m = Message::Binary(Bytes::from(vec![i as u8; CHUNK]));
        match tokio::time::timeout(Duration::from_secs(1), server.send(m)).await {
            Ok(r) => {
                r.unwrap();
                sent += 1;
            }
            Err(_) => {
                blocked = true;
                break;
            }
        }
    }
    assert!(blocked, "send never waited after {sent} messages");
    eprintln!("WebSocket::send waited after {sent} x 64 KiB");
    let growth = rss_bytes().unwrap().saturating_sub(before);
    assert!(growth < 50 << 20, "RSS grew {} MiB", growth >> 20);
    drop((server, client));

    // --- MultiplayerPeer: send returns QueueFull with the payload.
    let mut mp = MultiplayerPeer::new();
    mp.config = small_out();
    mp.create_server(0, "127.0.0.1", None).await.unwrap();
    let addr = mp.local_addrs()[0];
    // A raw client: upgrades, then never reads.
    let raw = within(5.0, "raw connect", RawClient::connect(addr)).await;
    let id = match within(5.0, "connected", mp.next_event()).await.unwrap() {
        HostEvent::PeerConnected(id) => id,
        e => panic!("{e:?}"),
    };
    let before = rss_bytes().unwrap();
    let mut full = 0usize;
    let mut queued = 0usize;
    for i in 0..ATTEMPTS {
        let payload = Bytes::from(vec![i as u8; CHUNK]);
        match mp.send(Target::Peer(id), payload) {
            Ok(r) => {
                assert_eq!(r.delivered, 1);
                queued += 1;
            }
            Err(HostSendError::QueueFull(p, back)) => {
                assert_eq!(p, id);
                assert_eq!(back.len(), CHUNK, "the payload comes back");
                assert!(back.iter().all(|&b| b == i as u8));
                full += 1;
            }
            Err(e) => panic!("{e}"),
        }
        if i % 64 == 0 {
            // Let the peer's task write what the socket takes.
            tokio::task::yield_now().await;
        }
    }
    let growth = rss_bytes().unwrap().saturating_sub(before);
    eprintln!(
        "multiplayer: {queued} queued, {full} QueueFull, RSS growth {} KiB",
        growth >> 10
    );
    assert!(full > 0, "never QueueFull");
    assert!(growth < 50 << 20, "RSS grew {} MiB", growth >> 20);
    // The peer is still connected (a slow reader is not an error).
    assert_eq!(mp.connected_peers(), vec![id]);
    mp.close();
    drop(raw);
}
