//! Load test of the `wsmp-relay` program: many Godot-protocol clients in many
//! rooms relaying packets to each other, checked for exactly-once delivery.
//!
//! Ignored by a plain `cargo test`. Run it (release build, with output) as:
//!
//! ```text
//! cargo test --release -p wsmp-relay --test load -- --ignored --nocapture
//! ```
//!
//! Knobs (environment variables, defaults in brackets): `LOAD_CLIENTS` [2000],
//! `LOAD_ROOMS` [20], `LOAD_SECS` sending time [10], `LOAD_RATE` packets per
//! client per second [2], `LOAD_PAYLOAD` payload bytes ≥ 8 [32].
//!
//! The relay runs as its own process (the release binary Cargo built beside
//! this test), so its RSS (`/proc/PID/status` VmRSS / VmHWM) and CPU
//! (`/proc/PID/stat` utime + stime) are the relay's alone. The clients are
//! `wsmp_tokio` WebSockets in this process speaking a Godot 4 client's bytes
//! (spec/scene-multiplayer.md §3.2, §4): read the 4-byte id, collect the
//! `07 01 <id>` ADD_PEER of every room mate, then send
//! `07 03 <target> 03 <payload>` with target = one room mate, 0 (everyone) or
//! −X (everyone but X), and expect `07 03 <source> 03 <payload>` at every
//! intended receiver. The payload carries the sender's id and a sequence
//! number; afterwards every (sender, seq) must have arrived exactly once at
//! each receiver of its target set and nowhere else.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{watch, Semaphore};
use wsmp_tokio::{connect, ClientOptions, CloseCode, Message, ReadHalf, WriteHalf};

const BIN: &str = env!("CARGO_BIN_EXE_wsmp-relay");

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// xorshift64*: a tiny deterministic PRNG (no `rand` dependency needed).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

// ---- the relay process -------------------------------------------------------

struct RelayProc {
    child: Child,
    addr: std::net::SocketAddr,
    /// The admin listener (`/stats`).
    admin: std::net::SocketAddr,
}

impl RelayProc {
    fn spawn(args: &[&str]) -> RelayProc {
        let mut child = Command::new(BIN)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn wsmp-relay");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        // design/CLI.md: `listening on HOST:PORT`, then `admin listening on HOST:PORT`.
        let mut read = |prefix: &str| -> std::net::SocketAddr {
            let mut line = String::new();
            out.read_line(&mut line).expect("stdout line");
            line.trim_end()
                .strip_prefix(prefix)
                .unwrap_or_else(|| panic!("unexpected stdout line {line:?}"))
                .parse()
                .expect("HOST:PORT")
        };
        let addr = read("listening on ");
        let admin = read("admin listening on ");
        RelayProc { child, addr, admin }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for RelayProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `kB` field (`VmRSS`, `VmHWM`) of /proc/PID/status.
fn proc_status_kb(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("field")
}

/// utime + stime of /proc/PID/stat, in clock ticks.
fn proc_cpu_ticks(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the `(comm)` that may contain spaces; utime/stime are 14 and 15.
    let rest = &text[text.rfind(')').expect(")") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn clock_ticks_per_sec() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}

fn nofile_soft_limit() -> u64 {
    let text = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
        .unwrap_or(u64::MAX)
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("tcp");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

// ---- shared test state ---------------------------------------------------------

#[derive(Default)]
struct Shared {
    /// Clients that have seen ADD_PEER for every room mate.
    ready: AtomicUsize,
    /// Deliveries that must happen (sum of receiver-set sizes of sent packets).
    expected: AtomicU64,
    /// Valid deliveries seen.
    received: AtomicU64,
    /// Protocol errors seen by clients (first few kept as text).
    errors: AtomicU64,
    error_text: Mutex<Vec<String>>,
}

impl Shared {
    fn error(&self, msg: String) {
        if self.errors.fetch_add(1, Ordering::Relaxed) < 20 {
            self.error_text.lock().unwrap().push(msg);
        }
    }
}

/// What a reader returns: every (source, seq) it received with its count,
/// and the ADD_PEER ids it saw.
struct ReaderResult {
    got: HashMap<(i32, u32), u32>,
    added: HashSet<i32>,
}

fn sys(sub: u8, id: i32) -> [u8; 6] {
    let b = id.to_le_bytes();
    [0x07, sub, b[0], b[1], b[2], b[3]]
}

/// One client's reading side. `room_mates` = room size − 1.
async fn reader(
    me: i32,
    mut rx: ReadHalf,
    room_mates: usize,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> ReaderResult {
    let mut res = ReaderResult {
        got: HashMap::new(),
        added: HashSet::new(),
    };
    let mut ready = false;
    loop {
        let msg = tokio::select! {
            m = rx.recv() => m,
            _ = stop.changed() => break,
        };
        let b = match msg {
            Some(Message::Binary(b)) => b,
            Some(Message::Text(t)) => {
                shared.error(format!("{me}: text message {t:?}"));
                continue;
            }
            None => {
                if !*stop.borrow() {
                    shared.error(format!("{me}: closed early: {:?}", rx.close_info()));
                }
                break;
            }
        };
        // spec/scene-multiplayer.md §2: SYS packets `07 <sub> <id i32 LE> …`.
        let (Some(&0x07), Some(&sub), Some(id)) = (
            b.first(),
            b.get(1),
            b.get(2..6)
                .map(|s| i32::from_le_bytes([s[0], s[1], s[2], s[3]])),
        ) else {
            shared.error(format!(
                "{me}: not a SYS packet: {:02x?}",
                &b[..b.len().min(16)]
            ));
            continue;
        };
        match sub {
            // spec §3.2 step 3: ADD_PEER, never for 1 or ourselves.
            1 => {
                if id < 2 || id == me || !res.added.insert(id) {
                    shared.error(format!("{me}: bad/duplicate ADD_PEER {id}"));
                }
                if !ready && res.added.len() == room_mates {
                    ready = true;
                    shared.ready.fetch_add(1, Ordering::Relaxed);
                }
            }
            // spec §4.2: `07 03 <source> <inner>`; inner = `03 <src i32> <seq u32> <pad>`.
            3 => {
                let inner = &b[6..];
                let ok = inner.len() >= 9
                    && inner[0] == 0x03
                    && i32::from_le_bytes([inner[1], inner[2], inner[3], inner[4]]) == id;
                // spec §4.3: ADD_PEER(S) reaches a client before any relayed packet from S.
                if !ok || !res.added.contains(&id) {
                    shared.error(format!(
                        "{me}: bad RELAY from {id}: {:02x?}",
                        &b[..b.len().min(24)]
                    ));
                    continue;
                }
                let seq = u32::from_le_bytes([inner[5], inner[6], inner[7], inner[8]]);
                *res.got.entry((id, seq)).or_insert(0) += 1;
                shared.received.fetch_add(1, Ordering::Relaxed);
            }
            _ => shared.error(format!("{me}: unexpected SYS sub {sub} id {id}")),
        }
    }
    res
}

/// What one sender sent: (seq, target).
type SendLog = Vec<(u32, i32)>;

#[allow(clippy::too_many_arguments)]
async fn sender(
    me: i32,
    mut tx: WriteHalf,
    room: Arc<Vec<i32>>,
    rate: f64,
    until: Instant,
    payload_len: usize,
    seed: u64,
    shared: Arc<Shared>,
) -> (SendLog, WriteHalf) {
    let mut rng = Rng(seed | 1);
    let others: Vec<i32> = room.iter().copied().filter(|&p| p != me).collect();
    let period = Duration::from_secs_f64(1.0 / rate);
    // Spread the clients' ticks over one period.
    let start = tokio::time::Instant::now() + period.mul_f64((rng.below(1000) as f64) / 1000.0);
    let mut tick = tokio::time::interval_at(start, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut log = SendLog::new();
    let mut seq: u32 = 0;
    loop {
        tick.tick().await;
        if Instant::now() >= until {
            break;
        }
        // Target mix: 50 % one peer, 25 % everyone (0), 25 % everyone but X (−X).
        let (target, receivers) = match rng.below(4) {
            0 | 1 => (others[rng.below(others.len())], 1),
            2 => (0, others.len()),
            _ => (-others[rng.below(others.len())], others.len() - 1),
        };
        let mut pkt = Vec::with_capacity(7 + payload_len);
        pkt.extend_from_slice(&sys(3, target));
        pkt.push(0x03);
        pkt.extend_from_slice(&me.to_le_bytes());
        pkt.extend_from_slice(&seq.to_le_bytes());
        pkt.resize(7 + payload_len, 0xA5);
        // Count before sending: a delivery may be seen before send() returns.
        shared
            .expected
            .fetch_add(receivers as u64, Ordering::Relaxed);
        if let Err(e) = tx.send(Message::Binary(Bytes::from(pkt))).await {
            shared.error(format!("{me}: send failed: {e}"));
            shared
                .expected
                .fetch_sub(receivers as u64, Ordering::Relaxed);
            break;
        }
        log.push((seq, target));
        seq += 1;
    }
    (log, tx)
}

/// The ids that must receive `target` sent by `src` in `room` (spec §4.2).
fn receivers(src: i32, target: i32, room: &[i32]) -> Vec<i32> {
    match target {
        t if t > 0 => vec![t],
        0 => room.iter().copied().filter(|&p| p != src).collect(),
        t => room
            .iter()
            .copied()
            .filter(|&p| p != src && p != -t)
            .collect(),
    }
}

#[test]
#[ignore = "load test: run with --release -- --ignored --nocapture"]
fn load_rooms_exactly_once() {
    let clients = env_num("LOAD_CLIENTS", 2000) as usize;
    let rooms = env_num("LOAD_ROOMS", 20).max(1) as usize;
    let secs = env_num("LOAD_SECS", 10);
    let rate = env_num("LOAD_RATE", 2).max(1) as f64;
    let payload_len = env_num("LOAD_PAYLOAD", 32).max(8) as usize;
    let per_room = clients / rooms;
    assert!(per_room >= 3, "need ≥ 3 clients per room");
    let clients = per_room * rooms;
    let nofile = nofile_soft_limit();
    assert!(
        nofile > (clients as u64) * 2 + 200,
        "RLIMIT_NOFILE soft limit {nofile} too low for {clients} clients (raise it with `ulimit -n`)"
    );

    let per_room_s = per_room.to_string();
    let max_peers_s = (clients + 16).to_string();
    let relay = RelayProc::spawn(&[
        "--listen",
        "127.0.0.1:0",
        "--max-peers",
        &max_peers_s,
        "--room-max-peers",
        &per_room_s,
        "--max-pending-per-ip",
        "256",
        // Every client comes from 127.0.0.1.
        "--max-conns-per-ip",
        &max_peers_s,
        "--handshake-timeout",
        "20",
    ]);
    let pid = relay.pid();
    let tck = clock_ticks_per_sec();
    std::thread::sleep(Duration::from_millis(200));
    let rss_idle = proc_status_kb(pid, "VmRSS");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let shared = Arc::new(Shared::default());
        let (stop_tx, stop_rx) = watch::channel(false);

        // ---- connect: room r gets clients r*per_room .. (r+1)*per_room ------
        let t_connect = Instant::now();
        let gate = Arc::new(Semaphore::new(128));
        let mut joins = Vec::with_capacity(clients);
        for i in 0..clients {
            let url = format!("ws://{}/room/load{:02}", relay.addr, i / per_room);
            let gate = gate.clone();
            joins.push(tokio::spawn(async move {
                let _permit = gate.acquire().await.unwrap();
                let fut = async {
                    let mut ws = connect(&url, ClientOptions::default()).await.expect("upgrade");
                    // spec/websocket-peer.md §3.7: first message = 4-byte LE id ≥ 2.
                    let id = match ws.recv().await {
                        Some(Message::Binary(b)) if b.len() == 4 => {
                            i32::from_le_bytes([b[0], b[1], b[2], b[3]])
                        }
                        other => panic!("client {i}: bad id message {other:?}"),
                    };
                    assert!(id >= 2);
                    (id, ws)
                };
                tokio::time::timeout(Duration::from_secs(30), fut)
                    .await
                    .expect("connect in time")
            }));
        }
        let mut ids = Vec::with_capacity(clients);
        let mut readers = Vec::with_capacity(clients);
        let mut writers = Vec::with_capacity(clients);
        for j in joins {
            let (id, ws) = j.await.expect("join task");
            let (rx, tx) = ws.split();
            ids.push(id);
            writers.push(tx);
            readers.push(tokio::spawn(reader(
                id,
                rx,
                per_room - 1,
                shared.clone(),
                stop_rx.clone(),
            )));
        }
        let unique: HashSet<i32> = ids.iter().copied().collect();
        assert_eq!(unique.len(), clients, "ids are unique");
        let connect_time = t_connect.elapsed();

        // ---- every client knows its room mates --------------------------------
        let deadline = Instant::now() + Duration::from_secs(60);
        while shared.ready.load(Ordering::Relaxed) < clients {
            assert!(
                Instant::now() < deadline,
                "only {} of {clients} clients got all ADD_PEERs; errors: {:?}",
                shared.ready.load(Ordering::Relaxed),
                shared.error_text.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let ready_time = t_connect.elapsed();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let rss_connected = proc_status_kb(pid, "VmRSS");

        // ---- send phase ---------------------------------------------------------
        let room_ids: Vec<Arc<Vec<i32>>> = ids
            .chunks(per_room)
            .map(|c| Arc::new(c.to_vec()))
            .collect();
        let cpu0 = proc_cpu_ticks(pid);
        let t_send = Instant::now();
        let until = t_send + Duration::from_secs(secs);
        let mut senders = Vec::with_capacity(clients);
        for (i, tx) in writers.into_iter().enumerate() {
            senders.push(tokio::spawn(sender(
                ids[i],
                tx,
                room_ids[i / per_room].clone(),
                rate,
                until,
                payload_len,
                0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1),
                shared.clone(),
            )));
        }
        let mut logs = Vec::with_capacity(clients);
        let mut writers = Vec::with_capacity(clients);
        // Sample RSS halfway through.
        tokio::time::sleep(Duration::from_secs(secs) / 2).await;
        let mid_rss = proc_status_kb(pid, "VmRSS");
        for s in senders {
            let (log, tx) = s.await.expect("sender task");
            logs.push(log);
            writers.push(tx);
        }
        let send_time = t_send.elapsed();
        // Drain: wait until every expected delivery arrived (bounded).
        let expected = shared.expected.load(Ordering::Relaxed);
        let drain_deadline = Instant::now() + Duration::from_secs(30);
        while shared.received.load(Ordering::Relaxed) < expected && Instant::now() < drain_deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let total_time = t_send.elapsed();
        let cpu_ticks = proc_cpu_ticks(pid) - cpu0;
        let rss_after = proc_status_kb(pid, "VmRSS");
        let rss_peak = proc_status_kb(pid, "VmHWM");
        // A little longer, to catch duplicates or strays arriving late.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let stats = http_get(relay.admin, "/stats").await;

        let _ = stop_tx.send(true);
        let mut results = Vec::with_capacity(clients);
        for r in readers {
            results.push(r.await.expect("reader task"));
        }
        for mut tx in writers {
            let _ = tx.close(CloseCode::NORMAL, "").await;
        }

        // ---- verify exactly-once ---------------------------------------------
        let index: HashMap<i32, usize> = ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();
        let mut missing = 0u64;
        let mut duplicates = 0u64;
        let mut expected_total = 0u64;
        let mut sent_total = 0u64;
        let mut examples = Vec::new();
        for (si, log) in logs.iter().enumerate() {
            let src = ids[si];
            let room = &room_ids[si / per_room];
            for &(seq, target) in log {
                sent_total += 1;
                for r in receivers(src, target, room) {
                    expected_total += 1;
                    match results[index[&r]].got.get(&(src, seq)).copied().unwrap_or(0) {
                        1 => {}
                        0 => {
                            missing += 1;
                            if examples.len() < 5 {
                                examples.push(format!("{src}#{seq} (target {target}) missing at {r}"));
                            }
                        }
                        n => {
                            duplicates += 1;
                            if examples.len() < 5 {
                                examples.push(format!("{src}#{seq} arrived {n}× at {r}"));
                            }
                        }
                    }
                }
            }
        }
        let received_total: u64 = results.iter().map(|r| r.got.values().map(|&n| n as u64).sum::<u64>()).sum();
        // Distinct (source, seq) keys received that no target set asked for.
        let distinct_received: u64 = results.iter().map(|r| r.got.len() as u64).sum();
        let strays = distinct_received - (expected_total - missing);
        for (i, r) in results.iter().enumerate() {
            let room = &room_ids[i / per_room];
            let want: HashSet<i32> = room.iter().copied().filter(|&p| p != ids[i]).collect();
            assert_eq!(r.added, want, "client {} saw ADD_PEER of exactly its room mates", ids[i]);
        }

        let deliveries_per_sec = expected_total as f64 / total_time.as_secs_f64();
        let cpu_secs = cpu_ticks as f64 / tck;
        println!("---- wsmp-relay load test ----");
        println!(
            "clients {clients} in {rooms} rooms ({per_room} per room); rate {rate}/client/s for {secs} s; payload {payload_len} B (+7 B header)"
        );
        println!(
            "connect: all {clients} upgraded in {:.2} s, all ADD_PEERs in {:.2} s",
            connect_time.as_secs_f64(),
            ready_time.as_secs_f64()
        );
        println!(
            "sent {sent_total} RELAY packets in {:.2} s ({:.0}/s); deliveries expected {expected_total}, received {received_total}",
            send_time.as_secs_f64(),
            sent_total as f64 / send_time.as_secs_f64()
        );
        println!(
            "all delivered after {:.2} s: {deliveries_per_sec:.0} deliveries/s",
            total_time.as_secs_f64()
        );
        println!(
            "relay CPU {cpu_secs:.2} s over {:.2} s = {:.0} % of one core ({:.2} µs per delivery)",
            total_time.as_secs_f64(),
            100.0 * cpu_secs / total_time.as_secs_f64(),
            1e6 * cpu_secs / expected_total.max(1) as f64
        );
        println!(
            "relay RSS: idle {rss_idle} kB, {clients} peers connected {rss_connected} kB ({:.1} kB/peer over idle, {:.1} kB/peer total), mid-send {mid_rss} kB, after {rss_after} kB, peak (VmHWM) {rss_peak} kB ({:.1} kB/peer)",
            (rss_connected.saturating_sub(rss_idle)) as f64 / clients as f64,
            rss_connected as f64 / clients as f64,
            rss_peak as f64 / clients as f64,
        );
        println!("missing {missing}, duplicates {duplicates}, strays {strays}, client errors {}", shared.errors.load(Ordering::Relaxed));
        println!("relay /stats: {stats}");

        assert_eq!(
            shared.errors.load(Ordering::Relaxed),
            0,
            "client errors: {:?}",
            shared.error_text.lock().unwrap()
        );
        assert!(sent_total > 0, "nothing was sent");
        assert_eq!((missing, duplicates, strays), (0, 0, 0), "exactly once: {examples:?}");
        assert_eq!(received_total, expected_total);
    });
}
