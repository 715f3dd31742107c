//! Neutral load generator for SceneMultiplayer relays (no WebSocket crate: raw TCP, own
//! upgrade, own frame parsing).
//!
//! Its clients speak a Godot 4 client's bytes (spec/websocket-peer.md §3.7,
//! spec/scene-multiplayer.md §2–§4): each joins a room (`/` or `/room/NAME`), reads its 4-byte
//! id, collects ADD_PEER for every room mate, then sends RELAY packets whose inner packet is a
//! RAW packet carrying sender id, target, sequence number and send time
//! ([`wsmp_benches::relay_plan`]). Every delivery is checked: exactly once, in per-sender order,
//! unchanged, only at the receivers its target names. Any fault exits 1 with the reason.
//!
//! A cluster of relays (`wsmp-relay --cluster`): `--url` takes a comma-separated list and the
//! clients of every room are spread over the URLs in turn (client `i` uses URL `i mod n`); the
//! report adds the latency of deliveries that crossed nodes (sender and receiver on different
//! URLs). `--server-pid` takes a list too (CPU and RSS summed; the JSON report also has each
//! process's CPU seconds, `server_cpu_s_each`, e.g. the nodes and the NATS server apart).
//!
//! Load: `--rate HZ` (open loop: each client sends at that rate, phases spread evenly), or
//! `--window K` (closed loop: each client keeps K broadcasts unacknowledged; a send is
//! acknowledged once every receiver got it), or neither (idle: connections held, pings answered).
//! Every phase is bounded in time.

#![forbid(unsafe_code)]

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Notify, Semaphore};
use tokio::time::timeout_at;
use wsmp_benches::args::Args;
use wsmp_benches::client::{self, Inbound, Message, WsUrl, XorShift};
use wsmp_benches::relay_plan::{Inbox, RoomPlan, Stamp, Traffic, STAMP_LEN};
use wsmp_benches::relay_proto::{self, ServerPacket, RELAY_HEADER};
use wsmp_benches::{
    machine_busy_time, own_cpu_time, proc_cpu_time, proc_rss_kib, raise_nofile, Histogram,
};

const USAGE: &str =
    "usage: relay_load --url ws://127.0.0.1:PORT[,ws://…] [--rooms R=1] [--per-room N=8]
       [--size BYTES=64] [--traffic broadcast|mixed] [--rate HZ | --window K]
       [--duration SECS=5] [--warmup SECS=1] [--drain SECS=10] [--settle SECS=0.5]
       [--server-pid PID[,PID…]] [--threads N=1] [--concurrency C=32] [--source-addrs K=auto]
       [--join-timeout SECS=60] [--json]";

/// Receive buffer per connection.
const READ_BUF: usize = 64 * 1024;
/// Largest message the clients accept (a Godot client's default `inbound_buffer_size`,
/// spec/websocket-peer.md §3.1).
const MAX_MESSAGE: usize = 65535;
/// Clients per source address when `--source-addrs` is automatic: relays may cap connections
/// per address (issue 10 plans 256), the load must not hit such a cap.
const PER_SOURCE: usize = 128;
/// Pongs a client may have queued before it counts as a fault.
const PONG_QUEUE: usize = 64;

#[derive(Debug)]
struct Opts {
    /// Every URL (a cluster's nodes; one for a single relay).
    urls: Vec<WsUrl>,
    rooms: usize,
    per_room: usize,
    size: usize,
    traffic: Traffic,
    rate: f64,
    window: usize,
    duration: f64,
    warmup: f64,
    drain: f64,
    settle: f64,
    server_pids: Vec<u32>,
    threads: usize,
    concurrency: usize,
    source_addrs: usize,
    join_timeout: f64,
    json: bool,
}

impl Opts {
    fn clients(&self) -> usize {
        self.rooms * self.per_room
    }

    fn mode(&self) -> &'static str {
        if self.window > 0 {
            "window"
        } else if self.rate > 0.0 {
            "rate"
        } else {
            "idle"
        }
    }

    /// The request path of room `k`: the default room when there is only one.
    fn path(&self, k: usize) -> String {
        if self.rooms == 1 {
            "/".into()
        } else {
            format!("/room/bench-{k}")
        }
    }
}

fn parse_opts() -> Result<Opts, String> {
    let mut a = Args::parse(std::env::args().skip(1), &["json", "help"])?;
    if a.flag("help") {
        println!("{USAGE}");
        std::process::exit(0);
    }
    let url: String = a.opt("url")?.ok_or("--url is required")?;
    let urls = url
        .split(',')
        .map(WsUrl::parse)
        .collect::<Result<Vec<_>, _>>()?;
    let pids: String = a.get("server-pid", String::new())?;
    let server_pids = pids
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<u32>()
                .map_err(|_| format!("bad --server-pid {p:?}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let traffic: String = a.get("traffic", "broadcast".to_string())?;
    let rooms: usize = a.get("rooms", 1)?;
    let per_room: usize = a.get("per-room", 8)?;
    let source_addrs: usize = a.get("source-addrs", 0)?;
    let o = Opts {
        rooms,
        per_room,
        size: a.get("size", 64)?,
        traffic: Traffic::parse(&traffic)?,
        rate: a.get("rate", 0.0)?,
        window: a.get("window", 0)?,
        duration: a.get("duration", 5.0)?,
        warmup: a.get("warmup", 1.0)?,
        drain: a.get("drain", 10.0)?,
        settle: a.get("settle", 0.5)?,
        server_pids,
        threads: a.get("threads", 1)?,
        concurrency: a.get("concurrency", 32)?,
        source_addrs: if source_addrs == 0 {
            (rooms * per_room).div_ceil(PER_SOURCE).clamp(1, 254)
        } else {
            source_addrs
        },
        join_timeout: a.get("join-timeout", 60.0)?,
        json: a.flag("json"),
        urls,
    };
    a.finish()?;
    let secs_ok = |v: f64| v.is_finite() && (0.0..=3600.0).contains(&v);
    let max_size = MAX_MESSAGE - RELAY_HEADER - 1;
    let in_range = (1..=10_000).contains(&o.rooms)
        && (1..=1000).contains(&o.per_room)
        && o.clients() <= 50_000
        && (STAMP_LEN..=max_size).contains(&o.size)
        && o.rate.is_finite()
        && (0.0..=10_000.0).contains(&o.rate)
        && o.window <= 4096
        && (1..=64).contains(&o.threads)
        && (1..=1024).contains(&o.concurrency)
        && (1..=254).contains(&o.source_addrs)
        && secs_ok(o.duration)
        && o.duration > 0.0
        && secs_ok(o.warmup)
        && secs_ok(o.drain)
        && secs_ok(o.settle)
        && secs_ok(o.join_timeout);
    if !in_range {
        return Err(format!(
            "an option is out of range (rooms 1..=10000, per-room 1..=1000, at most 50000 \
             clients, size {STAMP_LEN}..={max_size}, rate 0..=10000, window 0..=4096, threads \
             1..=64, concurrency 1..=1024, source-addrs 1..=254, durations 0..=3600 s)"
        ));
    }
    if o.rate > 0.0 && o.window > 0 {
        return Err("--rate and --window exclude each other".into());
    }
    if o.window > 0 && (o.per_room < 2 || o.traffic != Traffic::Broadcast) {
        return Err("--window needs --per-room >= 2 and broadcast traffic".into());
    }
    if let Some(u) = o.urls.iter().find(|u| !u.addr.ip().is_loopback()) {
        return Err(format!("{} is not a loopback address", u.addr.ip()));
    }
    if o.source_addrs > 1 && o.urls.iter().any(|u| !u.addr.is_ipv4()) {
        return Err("several source addresses need an IPv4 (127.0.0.x) relay".into());
    }
    Ok(o)
}

// ---------------------------------------------------------------------------------------------
// Joining: connect, id message, ADD_PEER of every room mate.

/// A client that has its id, before traffic starts.
struct Joined {
    stream: TcpStream,
    inbound: Inbound,
    id: i32,
    mask: [u8; 4],
    /// ADD_PEER ids received so far, in order.
    adds: Vec<i32>,
}

/// Handles one message while joining; pongs to send go to `pong`.
fn joining_message(
    m: Message<'_>,
    id: &mut Option<i32>,
    adds: &mut Vec<i32>,
    pong: &mut Vec<u8>,
    mask: [u8; 4],
) -> Result<(), String> {
    match m {
        // spec/websocket-peer.md §3.7: the first message is the binary id message.
        Message::Data { opcode: 2, payload } if id.is_none() => {
            *id = Some(relay_proto::parse_id_message(payload)?);
            Ok(())
        }
        Message::Data { opcode, payload } if id.is_none() => Err(format!(
            "first message is opcode {opcode} with {} bytes, not the binary id message",
            payload.len()
        )),
        Message::Data { opcode: 2, payload } => match relay_proto::parse_server_packet(payload)? {
            ServerPacket::AddPeer(p) => {
                adds.push(p);
                Ok(())
            }
            other => Err(format!("{other:?} before traffic started")),
        },
        Message::Data { opcode, .. } => Err(format!("data message with opcode {opcode}")),
        // RFC 6455 §5.5.3: a pong carries the ping's payload.
        Message::Ping(p) => {
            pong.extend(client::masked_frame(0xA, p, mask));
            Ok(())
        }
        Message::Pong => Ok(()),
        Message::Close(c) => Err(format!("relay closed the connection ({c:?}) while joining")),
    }
}

/// Reads (bounded by `deadline`) until `done(id, adds)` holds, answering pings.
async fn read_joining(
    j: &mut Joined,
    id: &mut Option<i32>,
    deadline: Instant,
    done: impl Fn(Option<i32>, &[i32]) -> bool,
) -> Result<(), String> {
    loop {
        let mut pong = Vec::new();
        let mask = j.mask;
        let adds = &mut j.adds;
        j.inbound
            .drain(|m| joining_message(m, id, adds, &mut pong, mask))?;
        if !pong.is_empty() {
            j.stream
                .write_all(&pong)
                .await
                .map_err(|e| format!("write pong: {e}"))?;
        }
        if done(*id, &j.adds) {
            return Ok(());
        }
        match timeout_at(deadline.into(), j.inbound.fill(&mut j.stream)).await {
            Ok(Ok(0)) => return Err("relay closed the TCP connection while joining".into()),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(format!("read: {e}")),
            Err(_) => return Err("timed out while joining".into()),
        }
    }
}

async fn connect_one(
    i: usize,
    url: WsUrl,
    local: Option<IpAddr>,
    deadline: Instant,
) -> Result<Joined, String> {
    let mut rng = XorShift::from_entropy(i as u64);
    let left = deadline.saturating_duration_since(Instant::now());
    let (stream, leftover) = client::connect(&url, local, &mut rng, left).await?;
    let mut j = Joined {
        stream,
        inbound: Inbound::new(&leftover, READ_BUF, MAX_MESSAGE),
        id: 0,
        mask: (rng.next_u64() as u32).to_le_bytes(),
        adds: Vec::new(),
    };
    let mut id = None;
    read_joining(&mut j, &mut id, deadline, |id, _| id.is_some()).await?;
    j.id = id.unwrap_or(0);
    Ok(j)
}

/// Waits until client `j` got ADD_PEER for exactly `mates` (spec/scene-multiplayer.md §3.2:
/// every admitted room mate, never itself, never anyone else).
async fn await_mates(
    j: &mut Joined,
    mates: &HashSet<i32>,
    deadline: Instant,
) -> Result<(), String> {
    let mut id = Some(j.id);
    let check = |adds: &[i32]| -> Result<bool, String> {
        let mut seen = HashSet::new();
        for &a in adds {
            if !mates.contains(&a) {
                return Err(format!("got ADD_PEER({a}), which is not a room mate"));
            }
            if !seen.insert(a) {
                return Err(format!("got ADD_PEER({a}) twice"));
            }
        }
        Ok(seen.len() == mates.len())
    };
    let r = read_joining(j, &mut id, deadline, |_, adds| {
        adds.len() >= mates.len() || check(adds).is_err()
    })
    .await;
    match r {
        Ok(()) => match check(&j.adds)? {
            true => Ok(()),
            false => Err("ADD_PEER set incomplete".into()),
        },
        Err(e) => Err(match check(&j.adds) {
            Ok(_) => format!(
                "{e} ({} of {} ADD_PEER received)",
                j.adds.len(),
                mates.len()
            ),
            Err(c) => c,
        }),
    }
    .map_err(|e| format!("client {}: {e}", j.id))
}

// ---------------------------------------------------------------------------------------------
// Traffic.

/// Time points of the run.
struct Clock {
    base: Instant,
    measure_start: Instant,
    end: Instant,
    hard_deadline: Instant,
}

impl Clock {
    fn ns(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }
}

/// One client as a sender, shared with every receiver.
struct Sender {
    /// Packets written so far (published before their bytes hit the socket).
    sent: AtomicU64,
    /// `--window`: receivers still to get the send in each slot (`seq % K`).
    slots: Vec<AtomicU32>,
    /// Signalled when a slot drops to zero.
    free: Notify,
}

struct Run {
    opts: Opts,
    clock: Clock,
    rooms: Vec<Arc<RoomPlan>>,
    ids: Vec<i32>,
    senders: Vec<Sender>,
    /// Deliveries the senders caused (receivers per send, summed).
    expected: AtomicU64,
    /// Deliveries checked by the receivers.
    delivered: AtomicU64,
    /// Deliveries received inside the measurement window.
    measured: AtomicU64,
    /// Pings received from the relay during the traffic (each answered with a pong).
    pings: AtomicU64,
    /// Sends made inside the measurement window, and the deliveries they asked for.
    sends_in_window: AtomicU64,
    offered_in_window: AtomicU64,
    latency: Mutex<Histogram>,
    /// Deliveries whose sender used another URL than the receiver (cluster nodes).
    latency_cross: Mutex<Histogram>,
    send_lag: Mutex<Histogram>,
    writers_done: AtomicUsize,
    closing: AtomicBool,
    failure: Mutex<Option<String>>,
    failed: AtomicBool,
}

impl Run {
    fn fail(&self, e: String) {
        let mut f = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        if f.is_none() {
            *f = Some(e);
        }
        self.failed.store(true, Ordering::Release);
    }

    fn room_of(&self, idx: usize) -> (usize, usize) {
        (idx / self.opts.per_room, idx % self.opts.per_room)
    }

    fn in_window(&self, t: Instant) -> bool {
        t >= self.clock.measure_start && t < self.clock.end
    }
}

async fn reader(
    run: Arc<Run>,
    idx: usize,
    mut rd: OwnedReadHalf,
    mut inbound: Inbound,
    pong_tx: mpsc::Sender<Vec<u8>>,
    mask: [u8; 4],
) -> Result<(), String> {
    let (k, _) = run.room_of(idx);
    let room = run.rooms[k].clone();
    let me = run.ids[idx];
    let first = k * run.opts.per_room;
    let senders = &run.senders[first..first + run.opts.per_room];
    let mut inbox = Inbox::new(me, &room, run.opts.traffic);
    let window = run.opts.window as u64;
    let mut lat: Vec<u64> = Vec::with_capacity(256);
    let mut lat_cross: Vec<u64> = Vec::with_capacity(256);
    let nodes = run.opts.urls.len();
    let mut dels: HashSet<i32> = HashSet::new();
    let mut closed = false;
    let close_deadline = run.clock.hard_deadline + Duration::from_secs(5);
    loop {
        let now = Instant::now();
        let now_ns = run.clock.ns(now);
        let in_window = run.in_window(now);
        let closing = run.closing.load(Ordering::Acquire);
        let before = inbox.delivered;
        inbound
            .drain(|m| match m {
                Message::Data { opcode: 2, payload } => {
                    match relay_proto::parse_server_packet(payload)? {
                        ServerPacket::Relay { source, inner } => {
                            let d = inbox.deliver(&room, source, inner, now_ns, |p| {
                                senders[p].sent.load(Ordering::Acquire)
                            })?;
                            if window > 0 {
                                let s = &senders[d.sender_pos];
                                let slot = &s.slots[(d.seq % window) as usize];
                                match slot.fetch_sub(1, Ordering::AcqRel) {
                                    0 => return Err("window slot underflow".into()),
                                    1 => s.free.notify_one(),
                                    _ => {}
                                }
                            }
                            if in_window {
                                lat.push(now_ns.saturating_sub(d.sent_ns));
                                if nodes > 1 && (first + d.sender_pos) % nodes != idx % nodes {
                                    lat_cross.push(now_ns.saturating_sub(d.sent_ns));
                                }
                            }
                            Ok(())
                        }
                        // spec/scene-multiplayer.md §3.3: DEL_PEER once a mate left; mates leave only
                        // in the closing phase.
                        ServerPacket::DelPeer(p)
                            if closing
                                && p != me
                                && room.position(p).is_some()
                                && dels.insert(p) =>
                        {
                            Ok(())
                        }
                        other => Err(format!("unexpected {other:?} during the run")),
                    }
                }
                Message::Data { opcode, payload } => Err(format!(
                    "data message with opcode {opcode} ({} bytes)",
                    payload.len()
                )),
                Message::Ping(p) => match pong_tx.try_send(client::masked_frame(0xA, p, mask)) {
                    Ok(()) => {
                        run.pings.fetch_add(1, Ordering::Relaxed);
                        Ok(())
                    }
                    Err(mpsc::error::TrySendError::Full(_)) => Err(format!(
                        "{PONG_QUEUE} pings unanswered: the writer is blocked (relay not reading)"
                    )),
                    // The writer has sent our close frame: no pong is due any more
                    // (RFC 6455 §5.5.1, the closing handshake has started).
                    Err(mpsc::error::TrySendError::Closed(_))
                        if run.closing.load(Ordering::Acquire) =>
                    {
                        Ok(())
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => {
                        Err("writer task ended during the run".into())
                    }
                },
                Message::Pong => Ok(()),
                Message::Close(_) if closing => {
                    closed = true;
                    Ok(())
                }
                Message::Close(c) => Err(format!("relay sent close {c:?} during the run")),
            })
            .map_err(|e| format!("client {me}: {e}"))?;
        let n = inbox.delivered - before;
        if n > 0 {
            run.delivered.fetch_add(n, Ordering::AcqRel);
        }
        if !lat.is_empty() {
            run.measured.fetch_add(lat.len() as u64, Ordering::Relaxed);
            let mut h = run.latency.lock().unwrap_or_else(|p| p.into_inner());
            for &v in &lat {
                h.record(v);
            }
            lat.clear();
            drop(h);
            let mut h = run.latency_cross.lock().unwrap_or_else(|p| p.into_inner());
            for &v in &lat_cross {
                h.record(v);
            }
            lat_cross.clear();
        }
        if closed {
            break;
        }
        // The closing phase starts by the hard deadline at the latest.
        match timeout_at(close_deadline.into(), inbound.fill(&mut rd)).await {
            Ok(Ok(0)) if run.closing.load(Ordering::Acquire) => {
                return Err(format!(
                    "client {me}: relay dropped the TCP connection without answering the close"
                ))
            }
            Ok(Ok(0)) => return Err(format!("client {me}: relay closed the TCP connection")),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(format!("client {me}: read: {e}")),
            Err(_) => {
                return Err(format!(
                    "client {me}: no close frame from the relay in time"
                ))
            }
        }
    }
    // Every sender has finished (the closing phase starts after that): nothing may be missing.
    inbox.check_complete(&room, |p| senders[p].sent.load(Ordering::Acquire))
}

/// Writes `buf` or fails at the hard deadline.
async fn write(run: &Run, wr: &mut OwnedWriteHalf, buf: &[u8]) -> Result<(), String> {
    match timeout_at(run.clock.hard_deadline.into(), wr.write_all(buf)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("write: {e}")),
        Err(_) => Err("write blocked past the hard deadline".into()),
    }
}

/// Builds sends into `batch` from a frame template; the masked bytes that change per send are
/// patched in place (RFC 6455 §5.3: payload byte i is masked with key byte i mod 4).
struct FrameBuilder {
    frame: Vec<u8>,
    off: usize,
    mask: [u8; 4],
    msg: Vec<u8>,
}

impl FrameBuilder {
    fn new(room: &RoomPlan, pos: usize, mask: [u8; 4]) -> Self {
        let size = room.size();
        let mut msg = vec![0u8; RELAY_HEADER + 1 + size];
        msg[..RELAY_HEADER].copy_from_slice(&relay_proto::relay_header(0));
        let stamp = Stamp {
            sender: room.members[pos],
            target: 0,
            seq: 0,
            sent_ns: 0,
        };
        room.write_inner(pos, &stamp, &mut msg[RELAY_HEADER..]);
        let frame = client::masked_frame(2, &msg, mask);
        Self {
            off: client::header_len(msg.len()),
            frame,
            mask,
            msg,
        }
    }

    /// Appends the frame of `stamp` (its target goes into the RELAY header too).
    fn push(&mut self, stamp: &Stamp, batch: &mut Vec<u8>) {
        self.msg[2..RELAY_HEADER].copy_from_slice(&stamp.target.to_le_bytes());
        stamp.write(&mut self.msg[RELAY_HEADER + 1..RELAY_HEADER + 1 + STAMP_LEN]);
        for i in 2..RELAY_HEADER + 1 + STAMP_LEN {
            self.frame[self.off + i] = self.msg[i] ^ self.mask[i % 4];
        }
        batch.extend_from_slice(&self.frame);
    }
}

async fn writer(
    run: Arc<Run>,
    idx: usize,
    mut wr: OwnedWriteHalf,
    mut pong_rx: mpsc::Receiver<Vec<u8>>,
    mask: [u8; 4],
    mut close_rx: watch::Receiver<bool>,
) -> Result<OwnedWriteHalf, String> {
    let (k, pos) = run.room_of(idx);
    let room = run.rooms[k].clone();
    let me = run.ids[idx];
    let s = &run.senders[idx];
    let o = &run.opts;
    let clock = &run.clock;
    let mut fb = FrameBuilder::new(&room, pos, mask);
    let frame_len = fb.frame.len();
    let mut batch = Vec::with_capacity(frame_len * 64);
    let mut seq: u64 = 0;
    let mut expected = 0u64;
    let traffic = o.traffic;
    // One send: stamp, count, append.
    let mut add = |seq: u64, now: Instant, batch: &mut Vec<u8>| -> u32 {
        let target = traffic.target(&room, pos, seq);
        let receivers = room.receivers(me, target);
        let stamp = Stamp {
            sender: me,
            target,
            seq,
            sent_ns: clock.ns(now),
        };
        fb.push(&stamp, batch);
        if run.in_window(now) {
            run.sends_in_window.fetch_add(1, Ordering::Relaxed);
            run.offered_in_window
                .fetch_add(u64::from(receivers), Ordering::Relaxed);
        }
        receivers
    };
    if o.rate > 0.0 {
        // Open loop: send n is due at base + phase + n / rate; the phases spread the clients
        // evenly over one period. Late sends go out at once (a burst), so the offered rate
        // holds; the lateness is reported as send lag.
        let period = 1.0 / o.rate;
        let phase = period * idx as f64 / o.clients() as f64;
        let due = |n: u64| clock.base + Duration::from_secs_f64(phase + n as f64 * period);
        let mut lags = Vec::new();
        while due(seq) < clock.end {
            tokio::select! {
                biased;
                Some(p) = pong_rx.recv() => write(&run, &mut wr, &p).await?,
                () = tokio::time::sleep_until(due(seq).into()) => {
                    let now = Instant::now();
                    batch.clear();
                    while due(seq) <= now && due(seq) < clock.end && batch.len() < 64 * frame_len {
                        lags.push(u64::try_from(now.saturating_duration_since(due(seq)).as_nanos()).unwrap_or(u64::MAX));
                        expected += u64::from(add(seq, now, &mut batch));
                        seq += 1;
                    }
                    // Release pairs with the receivers' Acquire: a packet is never seen
                    // before its sender counted it.
                    s.sent.store(seq, Ordering::Release);
                    write(&run, &mut wr, &batch).await?;
                    let mut h = run.send_lag.lock().unwrap_or_else(|p| p.into_inner());
                    for &l in &lags {
                        h.record(l);
                    }
                    lags.clear();
                }
            }
        }
    } else if o.window > 0 {
        // Closed loop: seq may go out once slot seq % K is free (its previous send reached
        // every receiver).
        let kk = o.window as u64;
        while Instant::now() < clock.end {
            let slot = &s.slots[(seq % kk) as usize];
            if slot.load(Ordering::Acquire) != 0 {
                tokio::select! {
                    biased;
                    Some(p) = pong_rx.recv() => write(&run, &mut wr, &p).await?,
                    () = s.free.notified() => {}
                    () = tokio::time::sleep_until(clock.end.into()) => break,
                }
                continue;
            }
            let now = Instant::now();
            batch.clear();
            while batch.len() < 64 * frame_len {
                let slot = &s.slots[(seq % kk) as usize];
                if slot.load(Ordering::Acquire) != 0 {
                    break;
                }
                let target = traffic.target(&room, pos, seq);
                slot.store(room.receivers(me, target), Ordering::Release);
                expected += u64::from(add(seq, now, &mut batch));
                seq += 1;
            }
            s.sent.store(seq, Ordering::Release);
            write(&run, &mut wr, &batch).await?;
        }
    } else {
        // Idle: only pongs.
        loop {
            tokio::select! {
                biased;
                Some(p) = pong_rx.recv() => write(&run, &mut wr, &p).await?,
                () = tokio::time::sleep_until(clock.end.into()) => break,
            }
        }
    }
    run.expected.fetch_add(expected, Ordering::AcqRel);
    run.writers_done.fetch_add(1, Ordering::AcqRel);
    // Keep answering pings until the closing phase, then start the closing handshake
    // (RFC 6455 §5.5.1); the reader waits for the relay's close frame.
    loop {
        if *close_rx.borrow() {
            break;
        }
        tokio::select! {
            biased;
            Some(p) = pong_rx.recv() => write(&run, &mut wr, &p).await?,
            r = close_rx.changed() => if r.is_err() { return Ok(wr) },
        }
    }
    while let Ok(p) = pong_rx.try_recv() {
        write(&run, &mut wr, &p).await?;
    }
    write(&run, &mut wr, &client::close_frame(mask)).await?;
    // The caller keeps the write half open until the relay's close frame arrived: dropping it
    // would half-close the TCP connection, which a Godot client never does (RFC 6455 §7.1.1:
    // the server closes the TCP connection first).
    Ok(wr)
}

// ---------------------------------------------------------------------------------------------

struct Report {
    join_secs: f64,
    elapsed: f64,
    measured: u64,
    total_delivered: u64,
    sends_in_window: u64,
    offered_in_window: u64,
    latency: Histogram,
    latency_cross: Histogram,
    send_lag: Histogram,
    own_cpu: f64,
    server_cpu: Option<f64>,
    /// CPU seconds of each `--server-pid`, in the order given.
    server_cpu_each: Vec<f64>,
    machine_busy: Option<f64>,
    rss_before: Option<u64>,
    rss_joined: Option<u64>,
    rss_end: Option<u64>,
    pings: u64,
}

/// Sleeps until `t`, waking early when a task failed.
async fn wait_until(run: &Run, t: Instant) -> Result<(), String> {
    while Instant::now() < t {
        if run.failed.load(Ordering::Acquire) {
            return Err(failure(run));
        }
        let step = (Instant::now() + Duration::from_millis(20)).min(t);
        tokio::time::sleep_until(step.into()).await;
    }
    Ok(())
}

fn failure(run: &Run) -> String {
    run.failure
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .unwrap_or_else(|| "a task failed".into())
}

async fn run(o: Opts) -> Result<Report, String> {
    let clients = o.clients();
    let limit = raise_nofile().unwrap_or(0);
    if limit < clients as u64 + 64 {
        return Err(format!(
            "RLIMIT_NOFILE is {limit}, need at least {} (raise the hard limit)",
            clients + 64
        ));
    }
    let rss = |pids: &[u32]| -> Result<Option<u64>, String> {
        if pids.is_empty() {
            return Ok(None);
        }
        let mut sum = 0;
        for &p in pids {
            sum += proc_rss_kib(p).map_err(|e| format!("cannot read VmRSS of {p}: {e}"))?;
        }
        Ok(Some(sum))
    };
    let rss_before = rss(&o.server_pids)?;

    // Join: connect everyone (bounded concurrency), each reads its id message.
    let t_join = Instant::now();
    let join_deadline = t_join + Duration::from_secs_f64(o.join_timeout);
    let gate = Arc::new(Semaphore::new(o.concurrency));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..clients {
        // A cluster: the clients of each room take the nodes in turn.
        let mut url = o.urls[i % o.urls.len()].clone();
        url.path = o.path(i / o.per_room);
        let local = (o.source_addrs > 1)
            .then(|| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (i % o.source_addrs) as u8)));
        let gate = gate.clone();
        set.spawn(async move {
            let _permit = gate.acquire_owned().await.map_err(|e| e.to_string())?;
            connect_one(i, url, local, join_deadline)
                .await
                .map(|j| (i, j))
                .map_err(|e| format!("client #{i}: {e}"))
        });
    }
    let mut joined: Vec<Option<Joined>> = (0..clients).map(|_| None).collect();
    while let Some(r) = set.join_next().await {
        let (i, j) = r.map_err(|e| format!("connect task: {e}"))??;
        joined[i] = Some(j);
    }
    let mut joined: Vec<Joined> = joined.into_iter().flatten().collect();
    let ids: Vec<i32> = joined.iter().map(|j| j.id).collect();
    let mut all = HashSet::new();
    for &id in &ids {
        if !all.insert(id) {
            return Err(format!("the relay gave id {id} to two clients"));
        }
    }
    // Rooms as every client must now see them.
    let salt = XorShift::from_entropy(99).next_u64();
    let mut rooms = Vec::with_capacity(o.rooms);
    for k in 0..o.rooms {
        let members = ids[k * o.per_room..(k + 1) * o.per_room].to_vec();
        let foreign = if o.rooms > 1 {
            ids[((k + 1) % o.rooms) * o.per_room]
        } else {
            // spec/scene-multiplayer.md §4.2: T == 1 is never an admitted peer.
            1
        };
        rooms.push(Arc::new(RoomPlan::new(members, foreign, o.size, salt)?));
    }
    let mut set = tokio::task::JoinSet::new();
    for (i, mut j) in joined.drain(..).enumerate() {
        let room = rooms[i / o.per_room].clone();
        set.spawn(async move {
            let mates: HashSet<i32> = room
                .members
                .iter()
                .copied()
                .filter(|&m| m != j.id)
                .collect();
            await_mates(&mut j, &mates, join_deadline)
                .await
                .map(|()| (i, j))
        });
    }
    let mut ready: Vec<Option<Joined>> = (0..clients).map(|_| None).collect();
    while let Some(r) = set.join_next().await {
        let (i, j) = r.map_err(|e| format!("join task: {e}"))??;
        ready[i] = Some(j);
    }
    let join_secs = t_join.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs_f64(o.settle)).await;
    let rss_joined = rss(&o.server_pids)?;

    // Traffic.
    let base = Instant::now();
    let measure_start = base + Duration::from_secs_f64(o.warmup);
    let end = measure_start + Duration::from_secs_f64(o.duration);
    let window = o.window;
    let run = Arc::new(Run {
        clock: Clock {
            base,
            measure_start,
            end,
            hard_deadline: end + Duration::from_secs_f64(o.drain),
        },
        rooms,
        ids,
        senders: (0..clients)
            .map(|_| Sender {
                sent: AtomicU64::new(0),
                slots: (0..window).map(|_| AtomicU32::new(0)).collect(),
                free: Notify::new(),
            })
            .collect(),
        expected: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
        measured: AtomicU64::new(0),
        pings: AtomicU64::new(0),
        sends_in_window: AtomicU64::new(0),
        offered_in_window: AtomicU64::new(0),
        latency: Mutex::new(Histogram::new()),
        latency_cross: Mutex::new(Histogram::new()),
        send_lag: Mutex::new(Histogram::new()),
        writers_done: AtomicUsize::new(0),
        closing: AtomicBool::new(false),
        failure: Mutex::new(None),
        failed: AtomicBool::new(false),
        opts: o,
    });
    let (close_tx, close_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, j) in ready.into_iter().enumerate() {
        let Some(j) = j else {
            return Err(format!("client #{i} missing after join"));
        };
        let (rd, wr) = j.stream.into_split();
        let (pong_tx, pong_rx) = mpsc::channel(PONG_QUEUE);
        let r = run.clone();
        tasks.spawn(async move {
            let res = reader(r.clone(), i, rd, j.inbound, pong_tx, j.mask).await;
            if let Err(e) = &res {
                r.fail(e.clone());
            }
            res.map(|()| None)
        });
        let r = run.clone();
        let close_rx = close_rx.clone();
        tasks.spawn(async move {
            let res = writer(r.clone(), i, wr, pong_rx, j.mask, close_rx).await;
            if let Err(e) = &res {
                r.fail(format!("client {}: {e}", r.ids[i]));
            }
            res.map(Some)
        });
    }
    let pids = run.opts.server_pids.clone();
    // CPU time of each server process (None when one cannot be read).
    let cpu = |pids: &[u32]| -> Option<Vec<Duration>> {
        pids.iter()
            .map(|&p| proc_cpu_time(p).ok())
            .collect::<Option<Vec<_>>>()
    };
    wait_until(&run, measure_start).await?;
    let t0 = Instant::now();
    let own0 = own_cpu_time();
    let srv0 = cpu(&pids);
    let mach0 = machine_busy_time().ok();
    wait_until(&run, end).await?;
    let mach1 = machine_busy_time().ok();
    let t1 = Instant::now();
    let own1 = own_cpu_time();
    let srv1 = cpu(&pids);
    let rss_end = rss(&pids)?;
    let server_cpu_each: Vec<f64> = match (srv0, srv1) {
        (Some(a), Some(b)) => a
            .iter()
            .zip(&b)
            .map(|(a, b)| b.saturating_sub(*a).as_secs_f64())
            .collect(),
        _ => return Err("cannot read the server's /proc/PID/stat".into()),
    };

    // Drain: every writer stopped and every delivery it caused arrived (bounded).
    loop {
        let done = run.writers_done.load(Ordering::Acquire) == clients;
        let delivered = run.delivered.load(Ordering::Acquire);
        let expected = run.expected.load(Ordering::Acquire);
        if done && delivered >= expected {
            break;
        }
        if Instant::now() >= run.clock.hard_deadline {
            // The readers' completeness check names what is missing.
            break;
        }
        wait_until(&run, Instant::now() + Duration::from_millis(5)).await?;
    }
    run.closing.store(true, Ordering::Release);
    let _ = close_tx.send(true);
    let mut open_write_halves = Vec::with_capacity(clients);
    while let Some(r) = tasks.join_next().await {
        match r.map_err(|e| format!("task: {e}"))? {
            Ok(Some(wr)) => open_write_halves.push(wr),
            Ok(None) => {}
            Err(e) => {
                // The first failure recorded is the cause; later ones are often its consequences.
                let first = run
                    .failure
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                return Err(first.unwrap_or(e));
            }
        }
    }
    drop(open_write_halves);
    let expected = run.expected.load(Ordering::Acquire);
    let delivered = run.delivered.load(Ordering::Acquire);
    if delivered != expected {
        return Err(format!(
            "{delivered} deliveries checked, {expected} expected from what was sent"
        ));
    }
    let latency = run
        .latency
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let latency_cross = run
        .latency_cross
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let send_lag = run
        .send_lag
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Ok(Report {
        join_secs,
        elapsed: (t1 - t0).as_secs_f64(),
        measured: run.measured.load(Ordering::Acquire),
        total_delivered: delivered,
        sends_in_window: run.sends_in_window.load(Ordering::Acquire),
        offered_in_window: run.offered_in_window.load(Ordering::Acquire),
        latency,
        latency_cross,
        send_lag,
        own_cpu: own1.saturating_sub(own0).as_secs_f64(),
        server_cpu: (!server_cpu_each.is_empty()).then(|| server_cpu_each.iter().sum()),
        server_cpu_each,
        machine_busy: mach0
            .zip(mach1)
            .map(|(a, b)| b.saturating_sub(a).as_secs_f64()),
        rss_before,
        rss_joined,
        rss_end,
        pings: run.pings.load(Ordering::Acquire),
    })
}

fn main() {
    let o = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("relay_load: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let rt = if o.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(o.threads)
            .enable_all()
            .build()
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("relay_load: runtime: {e}");
            std::process::exit(1);
        }
    };
    let desc = Desc::of(&o);
    let r = match rt.block_on(run(o)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("relay_load: FAILED: {e}");
            std::process::exit(1);
        }
    };
    desc.print(&r);
    if desc.mode != "idle" && r.measured == 0 {
        eprintln!("relay_load: FAILED: no delivery in the measurement window");
        std::process::exit(1);
    }
}

/// The run's parameters, for the output.
struct Desc {
    addr: String,
    rooms: usize,
    per_room: usize,
    size: usize,
    traffic: &'static str,
    mode: &'static str,
    rate: f64,
    window: usize,
    warmup: f64,
    duration: f64,
    json: bool,
}

impl Desc {
    fn of(o: &Opts) -> Self {
        Self {
            addr: o
                .urls
                .iter()
                .map(|u| u.addr.to_string())
                .collect::<Vec<_>>()
                .join(","),
            rooms: o.rooms,
            per_room: o.per_room,
            size: o.size,
            traffic: o.traffic.name(),
            mode: o.mode(),
            rate: o.rate,
            window: o.window,
            warmup: o.warmup,
            duration: o.duration,
            json: o.json,
        }
    }

    fn print(&self, r: &Report) {
        let clients = self.rooms * self.per_room;
        let secs = r.elapsed.max(1e-9);
        let dps = r.measured as f64 / secs;
        let us = |ns: u64| ns as f64 / 1000.0;
        let per_delivery = r
            .server_cpu
            .and_then(|c| (r.measured > 0).then(|| c * 1e6 / r.measured as f64));
        let other_pct = r
            .machine_busy
            .map(|m| ((m - r.own_cpu - r.server_cpu.unwrap_or(0.0)) / secs * 100.0).max(0.0));
        let rss_per_client = r
            .rss_before
            .zip(r.rss_end)
            .map(|(b, e)| (e as f64 - b as f64) * 1024.0 / clients as f64);
        let rss_joined_per_client = r
            .rss_before
            .zip(r.rss_joined)
            .map(|(b, e)| (e as f64 - b as f64) * 1024.0 / clients as f64);
        let num = |v: Option<f64>, p: usize| match v {
            Some(v) if v.is_finite() => format!("{v:.p$}"),
            _ => "null".into(),
        };
        let int = |v: Option<u64>| v.map_or("null".into(), |v| v.to_string());
        if self.json {
            println!(
                "{{\"url\":\"{}\",\"rooms\":{},\"per_room\":{},\"clients\":{clients},\"size\":{},\
                 \"traffic\":\"{}\",\"mode\":\"{}\",\"rate_hz\":{},\"window\":{},\"warmup_s\":{},\
                 \"duration_s\":{},\"join_s\":{:.3},\"deliveries\":{},\"deliveries_total\":{},\
                 \"deliveries_per_sec\":{:.1},\"offered_deliveries_per_sec\":{:.1},\
                 \"sends_per_sec\":{:.1},\"p50_us\":{:.1},\"p99_us\":{:.1},\"max_us\":{:.1},\
                 \"send_lag_p99_us\":{:.1},\"send_lag_max_us\":{:.1},\"loadgen_cpu_s\":{:.3},\
                 \"loadgen_cpu_pct\":{:.1},\"server_cpu_s\":{},\"server_cpu_pct\":{},\
                 \"server_cpu_us_per_delivery\":{},\"other_cpu_pct\":{},\"rss_before_kib\":{},\
                 \"rss_joined_kib\":{},\"rss_end_kib\":{},\"rss_joined_bytes_per_client\":{},\
                 \"rss_bytes_per_client\":{},\"pings\":{},\"cross_deliveries\":{},\
                 \"cross_p50_us\":{:.1},\"cross_p99_us\":{:.1},\"server_cpu_s_each\":[{}]}}",
                self.addr,
                self.rooms,
                self.per_room,
                self.size,
                self.traffic,
                self.mode,
                self.rate,
                self.window,
                self.warmup,
                self.duration,
                r.join_secs,
                r.measured,
                r.total_delivered,
                dps,
                r.offered_in_window as f64 / secs,
                r.sends_in_window as f64 / secs,
                us(r.latency.quantile(0.5)),
                us(r.latency.quantile(0.99)),
                us(r.latency.max()),
                us(r.send_lag.quantile(0.99)),
                us(r.send_lag.max()),
                r.own_cpu,
                r.own_cpu / secs * 100.0,
                num(r.server_cpu, 3),
                num(r.server_cpu.map(|c| c / secs * 100.0), 1),
                num(per_delivery, 3),
                num(other_pct, 1),
                int(r.rss_before),
                int(r.rss_joined),
                int(r.rss_end),
                num(rss_joined_per_client, 1),
                num(rss_per_client, 1),
                r.pings,
                r.latency_cross.count(),
                us(r.latency_cross.quantile(0.5)),
                us(r.latency_cross.quantile(0.99)),
                r.server_cpu_each
                    .iter()
                    .map(|c| format!("{c:.3}"))
                    .collect::<Vec<_>>()
                    .join(","),
            );
            return;
        }
        println!(
            "{} room(s) x {} clients, {} B {} {} ({}), {:.1} s measured ({:.1} s warmup)",
            self.rooms,
            self.per_room,
            self.size,
            self.traffic,
            self.mode,
            match self.mode {
                "rate" => format!("{} Hz", self.rate),
                "window" => format!("{} in flight", self.window),
                _ => "held open".into(),
            },
            secs,
            self.warmup
        );
        println!("  joined in          {:.2} s", r.join_secs);
        println!(
            "  deliveries/s       {dps:.0} (offered {:.0})",
            r.offered_in_window as f64 / secs
        );
        println!("  deliveries checked {} in all", r.total_delivered);
        println!(
            "  latency p50/p99/max {:.1} / {:.1} / {:.1} us",
            us(r.latency.quantile(0.5)),
            us(r.latency.quantile(0.99)),
            us(r.latency.max())
        );
        if r.latency_cross.count() > 0 {
            println!(
                "  cross-node p50/p99 {:.1} / {:.1} us ({} deliveries)",
                us(r.latency_cross.quantile(0.5)),
                us(r.latency_cross.quantile(0.99)),
                r.latency_cross.count()
            );
        }
        println!(
            "  send lag p99/max   {:.1} / {:.1} us",
            us(r.send_lag.quantile(0.99)),
            us(r.send_lag.max())
        );
        println!(
            "  loadgen CPU        {:.2} s ({:.0} %)",
            r.own_cpu,
            r.own_cpu / secs * 100.0
        );
        if let (Some(c), Some(u)) = (r.server_cpu, per_delivery) {
            println!("  server CPU         {c:.2} s, {u:.3} us/delivery");
            if r.server_cpu_each.len() > 1 {
                let each: Vec<String> = r
                    .server_cpu_each
                    .iter()
                    .map(|c| format!("{c:.2}"))
                    .collect();
                println!("    per process      {} s", each.join(" / "));
            }
        }
        if let Some(p) = rss_per_client {
            println!(
                "  server RSS         {p:.0} B/client at the end (joined: {} B/client)",
                num(rss_joined_per_client, 0)
            );
        }
        if let Some(p) = other_pct {
            println!("  other CPU          {p:.0} % (rest of the machine)");
        }
    }
}
