//! Issue 10: a `wss` client that stops reading was kicked (1008 slow
//! receiver) or dropped by the heartbeat, yet the relay kept its TCP
//! connection, task, rustls session and kernel buffers forever (ESTABLISHED
//! with 2.8 MB Send-Q 60 s later). Now a connection the core gave up on is
//! ended within `close_timeout` (5 s) + the driver's linger (5 s).
//!
//! A client with a small receive window joins, reads its id and stops
//! reading; another client floods it with 32 KiB packets through the relay.
//! The kick is seen by the flooder (DEL_PEER of the stalled peer). From
//! then on, within 15 s: the stalled client's socket must leave ESTABLISHED
//! (the relay sent FIN or RST: /proc/net/tcp, from the client's side), the
//! relay's `/stats` must no longer count the peer, and reading the socket
//! must end (EOF or reset), not block. ws and wss, kick and heartbeat, run
//! side by side (one relay each).

use std::io::Read;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::support::*;

/// close_timeout (5 s) + linger (5 s) + 5 s for a loaded machine.
const BOUND: Duration = Duration::from_secs(15);
const PAYLOAD: usize = 32 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kick {
    /// 1008: the receiver's queue (`--max-queued-packets 32`) overflowed.
    SlowReceiver,
    /// No pong within a heartbeat interval (`--heartbeat-interval 1`), with
    /// the kernel buffers full and packets queued.
    Heartbeat,
}

/// When each thing happened, measured from the moment the kick was seen.
#[derive(Debug)]
struct Release {
    socket: Option<Duration>,
    stats: Option<Duration>,
    kicked_after: Duration,
}

fn connect(relay: SocketAddr, tls: Option<&TlsFiles>, rcvbuf: Option<usize>) -> Stream {
    let t = tcp(relay, None, rcvbuf).expect("connect");
    match tls {
        Some(f) => f.connect(t).expect("TLS handshake"),
        None => Stream::Plain(t),
    }
}

fn run_case(tls: bool, kick: Kick, observe: Duration) -> Release {
    let files = tls.then(TlsFiles::ecdsa);
    let mut args: Vec<String> = files.as_ref().map(TlsFiles::args).unwrap_or_default();
    match kick {
        Kick::SlowReceiver => args.extend(["--max-queued-packets".into(), "32".into()]),
        Kick::Heartbeat => args.extend(["--heartbeat-interval".into(), "1".into()]),
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = RelayProc::spawn(&args, &[]);
    let addr = server.addr();
    // The stalled client: a 4 KiB receive buffer, so the relay's output piles up.
    let mut stalled = upgrade(connect(addr, files.as_ref(), Some(4096)), "/room/s")
        .expect("upgrade")
        .open();
    let stalled_id = stalled.read_id().expect("id");
    let local_port = stalled.s.tcp().local_addr().expect("local").port();
    let row = tcp_row(local_port, addr.port()).expect("the client's socket in /proc/net/tcp");
    assert_eq!(row.state, TCP_ESTABLISHED);
    let mut sender = upgrade(connect(addr, files.as_ref(), None), "/room/s")
        .expect("upgrade")
        .open();
    sender.read_id().expect("id");
    assert_eq!(sender.recv().expect("ADD_PEER"), add_peer(stalled_id));
    let start = Instant::now();
    let count = match kick {
        // 600 × 32 KiB = 19.7 MB: far more than kernel buffers and 32 packets.
        Kick::SlowReceiver => 600,
        // 1.3 MB: fills the kernel buffers, queues below the packet limit.
        Kick::Heartbeat => 40,
    };
    let mut inner = vec![0x03u8; PAYLOAD + 1];
    for i in 0..count {
        inner[1..9].copy_from_slice(&(i as u64).to_le_bytes());
        sender.send(&relay(stalled_id, &inner)).expect("send");
    }
    // The relay tells the others at once when it drops a peer (DEL_PEER).
    sender
        .s
        .tcp()
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    loop {
        let m = sender.recv().unwrap_or_else(|e| {
            panic!("{kick:?} tls={tls}: the stalled peer was not dropped: {e}")
        });
        if m == del_peer(stalled_id) {
            break;
        }
    }
    let kicked = Instant::now();
    // Keep the flooder alive (it answers the heartbeat) while we watch.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let keeper = {
        let stop = stop.clone();
        sender
            .s
            .tcp()
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(Some(Msg::Ping(p))) = sender.next() {
                    let _ = sender.pong(&p);
                }
            }
        })
    };
    let mut socket = None;
    let mut stats = None;
    while kicked.elapsed() < observe && (socket.is_none() || stats.is_none()) {
        let row = tcp_row(local_port, addr.port());
        if socket.is_none() && row.is_none_or(|r| r.state != TCP_ESTABLISHED) {
            socket = Some(kicked.elapsed());
        }
        if stats.is_none() && server.peers() == 1 {
            stats = Some(kicked.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    keeper.join().expect("flooder thread");
    if socket.is_some() {
        // The client side ends: everything the kernel holds, then EOF or a reset.
        let tcp = stalled.s.tcp();
        tcp.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut sink = vec![0u8; 1 << 16];
        let mut total = 0usize;
        loop {
            match (&*tcp).read(&mut sink) {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!(
                    "{kick:?} tls={tls}: reading the released socket: {e} after {total} bytes"
                ),
            }
            assert!(total < 64 << 20, "endless data on a released socket");
        }
    }
    Release {
        socket,
        stats,
        kicked_after: kicked.duration_since(start),
    }
}

#[test]
fn a_stalled_client_is_released_within_the_bound() {
    let _serial = serial();
    let observe = if figures() {
        Duration::from_secs(60)
    } else {
        BOUND
    };
    let cases = [
        (false, Kick::SlowReceiver),
        (true, Kick::SlowReceiver),
        (false, Kick::Heartbeat),
        (true, Kick::Heartbeat),
    ];
    let runs: Vec<_> = cases
        .iter()
        .map(|&(tls, kick)| std::thread::spawn(move || run_case(tls, kick, observe)))
        .collect();
    let results: Vec<Release> = runs.into_iter().map(|t| t.join().expect("case")).collect();
    let mut failures = Vec::new();
    for ((tls, kick), r) in cases.iter().zip(&results) {
        let scheme = if *tls { "wss" } else { "ws" };
        let show = |d: Option<Duration>| {
            d.map_or(format!("not within {observe:?}"), |d| {
                format!("{:.1} s", d.as_secs_f64())
            })
        };
        figure(
            &format!("release_{scheme}_{kick:?}"),
            format!(
                "socket released {} after the kick (seen {:.1} s into the flood), /stats {}",
                show(r.socket),
                r.kicked_after.as_secs_f64(),
                show(r.stats)
            ),
        );
        if r.socket.is_none_or(|d| d > BOUND) || r.stats.is_none_or(|d| d > BOUND) {
            failures.push(format!("{scheme} {kick:?}: {r:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "not released within {BOUND:?}: {failures:?}"
    );
}
