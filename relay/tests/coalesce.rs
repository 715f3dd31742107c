//! `--coalesce-window`: a peer's output waits up to the window and
//! everything queued for it meanwhile goes out in one write (README,
//! "Performance"). Real sockets on 127.0.0.1; the receiver is a raw TCP
//! socket, so what one write of the relay carried is what one read returns.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::AsyncReadExt;

/// Unmasked server frames (RFC 6455 §5.2, payloads < 126 bytes) in `buf`:
/// their payloads, and the bytes left over (an incomplete frame).
fn frames(buf: &[u8]) -> (Vec<Vec<u8>>, usize) {
    let mut out = Vec::new();
    let mut pos = 0;
    while buf.len() - pos >= 2 {
        assert_eq!(buf[pos], 0x82, "a final binary frame");
        let len = usize::from(buf[pos + 1]);
        assert!(len < 126, "short frames only");
        if buf.len() - pos < 2 + len {
            break;
        }
        out.push(buf[pos + 2..pos + 2 + len].to_vec());
        pos += 2 + len;
    }
    (out, buf.len() - pos)
}

/// One `read` of the raw socket, within [`WAIT`]: the frames it carried.
async fn read_once(stream: &mut tokio::net::TcpStream) -> Vec<Vec<u8>> {
    let mut buf = vec![0u8; 64 * 1024];
    let n = tokio::time::timeout(WAIT, stream.read(&mut buf))
        .await
        .expect("data within WAIT")
        .expect("read");
    assert!(n > 0, "the relay closed the socket");
    let (frames, rest) = frames(&buf[..n]);
    assert_eq!(rest, 0, "one write carries whole frames");
    frames
}

/// Windows lie on one grid: B's ADD_PEER(A) goes out at the end of one
/// window; a burst that A sends right after it waits for the end of the
/// next one (about a whole window later) and arrives in one write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_waits_for_the_window_and_goes_out_in_one_write() {
    let window = Duration::from_secs(1);
    let srv = Relay::start(&["--coalesce-window", "1", "--heartbeat-interval", "0"]);
    let mut b = raw_upgrade(srv.addr, b"", "/", &[]).await;
    assert_eq!(b.status(), 101, "{}", b.head);
    let id_msg = read_once(&mut b.stream).await;
    let b_id = i32::from_le_bytes(id_msg[0][..4].try_into().unwrap());

    let mut a = Client::join(&srv.url("/")).await;
    assert_eq!(a.recv().await, add_peer(b_id));
    // Queued for B by A's join: written at the end of the current window.
    assert_eq!(read_once(&mut b.stream).await, vec![add_peer(a.id)]);

    // Eight packets from A to B in a burst, just after that window ended.
    let start = Instant::now();
    let sent: Vec<Vec<u8>> = (0..8u8).map(|i| relay(b_id, &raw(&[i; 10]))).collect();
    for p in &sent {
        a.send(p.clone()).await;
    }
    let got = read_once(&mut b.stream).await;
    let waited = start.elapsed();
    let expected: Vec<Vec<u8>> = (0..8u8).map(|i| relay(a.id, &raw(&[i; 10]))).collect();
    assert_eq!(got, expected, "the whole burst, in order, in one write");
    // Held until the next window's end (less the time B's read and A's
    // sends took), and not much later.
    assert!(waited >= window * 6 / 10, "written after {waited:?}");
    assert!(
        waited < window + Duration::from_secs(2),
        "written after {waited:?}"
    );
    srv.stop().await;
}

/// Without the flag nothing waits: a packet is relayed at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_window_a_packet_is_written_at_once() {
    let srv = Relay::start(&["--heartbeat-interval", "0"]);
    let url = srv.url("/");
    let mut a = Client::join(&url).await;
    let mut b = Client::join(&url).await;
    assert_eq!(a.recv().await, add_peer(b.id));
    assert_eq!(b.recv().await, add_peer(a.id));
    let start = Instant::now();
    a.send(relay(b.id, &raw(b"now"))).await;
    assert_eq!(b.recv().await, relay(a.id, &raw(b"now")));
    let waited = start.elapsed();
    assert!(
        waited < Duration::from_millis(250),
        "relayed after {waited:?}"
    );
    srv.stop().await;
}
