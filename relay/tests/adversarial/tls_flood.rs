//! Issue 10: TLS handshakes ran inside the tokio MultiplayerPeer's one lock;
//! a flood of ~300 RSA-2048 handshakes/s raised the relayed round trip of an
//! unrelated room from p50 0.48 ms / p99 1.3 ms to p50 344 ms / p99 2,043 ms,
//! while the same flood against a second relay process left it near normal.
//! Now TLS runs in each connection's own task with no shared lock.
//!
//! Two relays with the same RSA-2048 certificate (rcgen): a wss ping-pong
//! runs through relay A; a handshake flood (concurrent TLS handshakes,
//! paced, bounded in count and time) hits relay B, then relay A, and again,
//! alternating. The ping-pong's p90 while A is flooded must stay within
//! 2× (+5 ms) of its p90 while B is — the same CPU competition, so only
//! contention inside A's process can tell them apart. p90, not p99: with a
//! few hundred samples per side the p99 is the third-worst round trip, which
//! the scheduler of a loaded 2-core machine decides (seen: 65.6 vs 34.9 ms at
//! load 6.3, with p50 11.4 vs 9.7 ms); the defect this guards against moved
//! the whole distribution (p50 0.48 → 344 ms). Both percentiles are reported.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::*;

/// Flooding threads (handshakes in flight at once).
const FLOODERS: usize = 24;

struct Flood {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// Starts `FLOODERS` threads doing TLS handshakes against `target` at about
/// `rate` per second in all; each connection is dropped once its handshake
/// completed (the relay then waits for an HTTP request that never comes).
fn flood(target: std::net::SocketAddr, tls: &TlsFiles, rate: u64) -> Flood {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let gap = Duration::from_secs_f64(FLOODERS as f64 / rate as f64);
    let threads = (0..FLOODERS)
        .map(|i| {
            let (stop, done, client) = (stop.clone(), done.clone(), tls.client.clone());
            std::thread::spawn(move || {
                let mut next = Instant::now() + gap.mul_f64(i as f64 / FLOODERS as f64);
                while !stop.load(Ordering::Relaxed) {
                    let now = Instant::now();
                    if now < next {
                        std::thread::sleep(next - now);
                        continue;
                    }
                    next += gap;
                    let Ok(mut sock) = tcp(target, None, None) else {
                        continue;
                    };
                    let name = rustls::pki_types::ServerName::IpAddress(
                        std::net::IpAddr::from([127, 0, 0, 1]).into(),
                    );
                    let Ok(mut conn) = rustls::ClientConnection::new(client.clone(), name) else {
                        continue;
                    };
                    let mut ok = true;
                    while conn.is_handshaking() && ok {
                        ok = conn.complete_io(&mut sock).is_ok();
                    }
                    if ok {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    Flood {
        stop,
        done,
        threads,
    }
}

impl Flood {
    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().expect("flood thread");
        }
        self.done.load(Ordering::Relaxed)
    }
}

/// Paced round trips through the relay (one every 2 ms) for `during`.
fn ping_pong(ws: &mut Ws, echo_id: i32, seq: &mut u64, during: Duration) -> Vec<Duration> {
    let mut rtts = Vec::new();
    let end = Instant::now() + during;
    while Instant::now() < end {
        *seq += 1;
        let mut inner = vec![0x03u8];
        inner.extend_from_slice(&seq.to_le_bytes());
        let t = Instant::now();
        ws.send(&relay(echo_id, &inner)).expect("send");
        let back = ws.recv().expect("echo");
        rtts.push(t.elapsed());
        assert_eq!(&back[6..], &inner[..], "echo out of order");
        std::thread::sleep(Duration::from_millis(2));
    }
    rtts
}

/// p50, p90 and p99.
fn stats(v: &mut [Duration]) -> (Duration, Duration, Duration) {
    v.sort();
    (percentile(v, 0.5), percentile(v, 0.9), percentile(v, 0.99))
}

#[test]
fn a_tls_handshake_flood_does_not_slow_another_room() {
    let _serial = serial();
    let full = figures();
    // Debug builds (plain `cargo test`) pay more per handshake than release.
    let (rate, phase, rounds) = if full {
        (300, Duration::from_secs(4), 3)
    } else {
        (120, Duration::from_secs(2), 3)
    };
    let tls = TlsFiles::rsa2048();
    let args = tls.args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let a = RelayProc::spawn(&args, &[]);
    let b = RelayProc::spawn(&args, &[]);
    let connect = |path: &str| {
        let s = tls
            .connect(tcp(a.addr(), None, None).expect("tcp"))
            .expect("TLS");
        upgrade(s, path).expect("upgrade").open()
    };
    let mut pinger = connect("/room/pp");
    pinger.read_id().expect("id");
    let mut echo = connect("/room/pp");
    let echo_id = echo.read_id().expect("id");
    assert_eq!(pinger.recv().expect("ADD_PEER"), add_peer(echo_id));
    let echo_stop = Arc::new(AtomicBool::new(false));
    let echo_thread = {
        let stop = echo_stop.clone();
        echo.s
            .tcp()
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match echo.next() {
                    // `07 03 <source> <inner>` back to its source.
                    Ok(Some(Msg::Binary(m))) if m.len() > 6 && m[..2] == [7, 3] => {
                        let src = i32::from_le_bytes([m[2], m[3], m[4], m[5]]);
                        echo.send(&relay(src, &m[6..])).expect("echo");
                    }
                    Ok(Some(Msg::Ping(p))) => echo.pong(&p).expect("pong"),
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(e) => panic!("echo client: {e}"),
                }
            }
        })
    };
    let mut seq = 0;
    let mut quiet = ping_pong(&mut pinger, echo_id, &mut seq, phase / 2);
    let (mut on_a, mut on_b) = (Vec::new(), Vec::new());
    let (mut hs_a, mut hs_b) = (0, 0);
    for _ in 0..rounds {
        for (target, rtts, count) in [
            (b.addr(), &mut on_b, &mut hs_b),
            (a.addr(), &mut on_a, &mut hs_a),
        ] {
            let f = flood(target, &tls, rate);
            std::thread::sleep(Duration::from_millis(300));
            rtts.extend(ping_pong(&mut pinger, echo_id, &mut seq, phase));
            *count += f.stop();
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    echo_stop.store(true, Ordering::Relaxed);
    echo_thread.join().expect("echo thread");
    let (q50, q90, q99) = stats(&mut quiet);
    let (a50, a90, a99) = stats(&mut on_a);
    let (b50, b90, b99) = stats(&mut on_b);
    let secs = phase.as_secs_f64() * rounds as f64;
    figure(
        "tls_flood",
        format!(
            "relayed round trip p50/p90/p99: no flood {}/{}/{}; flood on the other relay process \
             {}/{}/{} ({:.0} handshakes/s); flood on this relay {}/{}/{} ({:.0} handshakes/s); \
             {} + {} samples",
            ms(q50),
            ms(q90),
            ms(q99),
            ms(b50),
            ms(b90),
            ms(b99),
            hs_b as f64 / secs,
            ms(a50),
            ms(a90),
            ms(a99),
            hs_a as f64 / secs,
            on_b.len(),
            on_a.len()
        ),
    );
    assert!(hs_a > 0 && hs_b > 0, "no handshake completed: no flood");
    assert!(
        a90 <= b90 * 2 + Duration::from_millis(5),
        "p90 {} with the flood on this relay, {} with it on another process",
        ms(a90),
        ms(b90)
    );
}
