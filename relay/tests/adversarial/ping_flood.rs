//! Issue 10: a never-reading client in a room with ~3,000 queued small
//! packets cost the relay 35–49 ms of CPU per 10,000 pings it sent, against
//! 1.2–1.7 ms with an empty queue: each ping walked the whole outbound queue
//! (core/src/connection/outbound.rs `unstarted_count`, and the reverse
//! search once 32 pongs waited). Control frames now cost O(1) per ping.
//!
//! Two rounds of the same measurement, alternated: a raw client joins and
//! stops reading (4 KiB receive buffer); in the "queued" round another
//! client first relays 1 KiB packets to it until the kernel buffers take
//! no more (/proc/net/tcp queues), then 3,000 small packets, which wait in
//! the relay's queue for the stalled peer; then the
//! stalled client sends 10,000 masked pings and a marker packet, and the
//! relay's CPU time from before the pings until the marker arrived is read
//! from /proc/PID/task/*/schedstat. The median queued cost must stay within
//! 3× the median empty-queue cost (+ 3 ms of measurement noise).

use std::io::Write;
use std::time::Duration;

use crate::support::*;

const PINGS: usize = 10_000;
const QUEUED: u64 = 3_000;
const ROUNDS: usize = 3;

/// One measurement: relay CPU for 10,000 pings, and how many packets were queued.
fn measure(relay: &RelayProc, room: &str, queue: bool) -> (Duration, u64) {
    let addr = relay.addr();
    let mut observer = open(addr, None, room).expect("connect").open();
    let observer_id = observer.read_id().expect("id");
    let mut stalled = upgrade(
        Stream::Plain(tcp(addr, None, Some(4096)).expect("connect")),
        room,
    )
    .expect("upgrade")
    .open();
    let stalled_id = stalled.read_id().expect("id");
    assert_eq!(observer.recv().expect("ADD_PEER"), add_peer(stalled_id));
    let s_port = stalled.s.tcp().local_addr().expect("addr").port();
    let mut queued = 0u64;
    if queue {
        let kernel = || {
            tcp_row(addr.port(), s_port).map_or(0, |r| r.tx_queue)
                + tcp_row(s_port, addr.port()).map_or(0, |r| r.rx_queue)
        };
        // A packet to itself: once it is back, everything sent before was handled.
        let sync = |observer: &mut Ws| {
            let marker = relay_packet(observer_id, &[0x03, b'm']);
            observer.send(&marker).expect("send");
            let back = observer.recv().expect("marker");
            assert_eq!(
                back, marker,
                "relay kicked the stalled client while queueing"
            );
        };
        // 1. Fill the kernel buffers with 32 KiB packets, 8 at a time, until
        //    they take no more (the relay's send buffer autotunes up to
        //    tcp_wmem's 4 MiB). At most ~1.3 MB (40 packets) of these
        //    then wait in the relay's queue for the peer.
        let big = [&[0x03u8][..], &[0x42; 32 * 1024]].concat();
        let mut last = 0;
        let mut still = 0;
        // Loopback buffers autotune: "full" is no growth over 5 rounds 20 ms
        // apart (bounded: 2,000 rounds, and 10 s — a zero window held past
        // TCP_USER_TIMEOUT, 30 s, rightly ends the connection).
        let fill_start = std::time::Instant::now();
        for _ in 0..2000 {
            for _ in 0..8 {
                observer
                    .send(&relay_packet(stalled_id, &big))
                    .expect("send");
            }
            sync(&mut observer);
            std::thread::sleep(Duration::from_millis(20));
            let now = kernel();
            still = if now < last + 1024 { still + 1 } else { 0 };
            last = now;
            if still >= 5 || fill_start.elapsed() > Duration::from_secs(10) {
                break;
            }
        }
        assert!(still >= 5, "the kernel buffers never filled ({last} bytes)");
        // 2. Everything sent from here on waits in the relay's queue.
        for seq in 0..QUEUED {
            let mut inner = vec![0x03u8];
            inner.extend_from_slice(&seq.to_le_bytes());
            observer
                .send(&relay_packet(stalled_id, &inner))
                .expect("send");
        }
        sync(&mut observer);
        // The kernel may still take some (loopback buffers autotune): count
        // those out. Each small packet is 17 bytes on the wire (2-byte frame
        // header, `07 03 <id>`, 9-byte inner).
        let taken = kernel().saturating_sub(last) / 17;
        queued = QUEUED.saturating_sub(taken);
        assert!(
            queued >= QUEUED * 3 / 4,
            "the kernel took {taken} of the {QUEUED} small packets: no long queue"
        );
    }
    let mut pings = Vec::with_capacity(PINGS * 10);
    for i in 0..PINGS as u32 {
        pings.extend_from_slice(&stalled.frame(0x9, &i.to_le_bytes()));
    }
    let marker = relay_packet(observer_id, &[0x03, b'e', b'n', b'd']);
    pings.extend_from_slice(&stalled.frame(2, &marker));
    let before = relay.cpu();
    stalled.s.write_all(&pings).expect("write the pings");
    observer
        .s
        .tcp()
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    assert_eq!(
        observer.recv().expect("the marker after the pings"),
        relay_packet(stalled_id, &[0x03, b'e', b'n', b'd'])
    );
    let cpu = relay.cpu() - before;
    drop(stalled);
    let _ = observer.leave();
    (cpu, queued)
}

fn relay_packet(id: i32, inner: &[u8]) -> Vec<u8> {
    relay(id, inner)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
fn a_ping_flood_costs_the_same_with_a_long_queue() {
    let _serial = serial();
    // The peer's queue is bounded in bytes (--outbound-buffer-size, default
    // 65535) and packets (--max-queued-packets, default 4096): ~1.3 MB of
    // 32 KiB packets + 3,000 small ones (~50 KB framed) overflow the default
    // byte budget and the relay (rightly) kicks the peer as a slow receiver.
    // A 16 MiB budget keeps them queued; the count stays under 4096.
    let relay = RelayProc::spawn(
        &[
            "--heartbeat-interval",
            "0",
            "--outbound-buffer-size",
            "16777216",
        ],
        &[],
    );
    let (mut empty, mut full, mut queued) = (Vec::new(), Vec::new(), u64::MAX);
    for round in 0..ROUNDS {
        let (e, _) = measure(&relay, &format!("/room/e{round}"), false);
        let (f, q) = measure(&relay, &format!("/room/q{round}"), true);
        empty.push(e);
        full.push(f);
        queued = queued.min(q);
    }
    let (e, f) = (median(empty.clone()), median(full.clone()));
    figure(
        "ping_flood_cpu",
        format!(
            "relay CPU per {PINGS} pings: {} with at least {queued} packets queued, {} with an empty queue \
             (medians of {ROUNDS}; all: {:?} / {:?})",
            ms(f),
            ms(e),
            full.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
            empty.iter().map(|d| ms(*d)).collect::<Vec<_>>()
        ),
    );
    assert!(
        f <= e * 3 + Duration::from_millis(3),
        "pings cost {} with a queue, {} without",
        ms(f),
        ms(e)
    );
}
