//! Neutral WebSocket echo load generator over raw TCP (no WebSocket crate).
//!
//! Opens `--connections` connections, keeps `--in-flight` binary messages of `--size` bytes
//! outstanding on each, validates every echoed byte (sequence number + random pattern, so a
//! reordered, truncated or corrupted echo fails the run with exit 1), and reports throughput,
//! per-message round-trip latency, its own CPU and, with `--server-pid`, the server's CPU.
//! Every phase is bounded in time: warmup + duration, then at most `--drain` seconds to finish
//! the closing handshake.

#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Semaphore;
use tokio::time::timeout_at;
use wsmp_benches::args::Args;
use wsmp_benches::client::{self, Event, FrameReader, WsUrl, XorShift};
use wsmp_benches::{machine_busy_time, own_cpu_time, proc_cpu_time, Histogram};

const USAGE: &str =
    "usage: loadgen --url ws://127.0.0.1:PORT [--connections N=64] [--size BYTES=16]
       [--in-flight K=1] [--duration SECS=5] [--warmup SECS=1] [--drain SECS=5]
       [--server-pid PID] [--threads N=1] [--connect-timeout SECS=10] [--json]";

struct Opts {
    url: WsUrl,
    connections: usize,
    size: usize,
    in_flight: usize,
    duration: f64,
    warmup: f64,
    drain: f64,
    server_pid: Option<u32>,
    threads: usize,
    connect_timeout: f64,
    json: bool,
}

fn parse_opts() -> Result<Opts, String> {
    let mut a = Args::parse(std::env::args().skip(1), &["json", "help"])?;
    if a.flag("help") {
        println!("{USAGE}");
        std::process::exit(0);
    }
    let url: String = a.opt("url")?.ok_or("--url is required")?;
    let o = Opts {
        url: WsUrl::parse(&url)?,
        connections: a.get("connections", 64)?,
        size: a.get("size", 16)?,
        in_flight: a.get("in-flight", 1)?,
        duration: a.get("duration", 5.0)?,
        warmup: a.get("warmup", 1.0)?,
        drain: a.get("drain", 5.0)?,
        server_pid: a.opt("server-pid")?,
        threads: a.get("threads", 1)?,
        connect_timeout: a.get("connect-timeout", 10.0)?,
        json: a.flag("json"),
    };
    a.finish()?;
    let secs_ok = |v: f64| v.is_finite() && (0.0..=3600.0).contains(&v);
    if !(1..=100_000).contains(&o.connections)
        || !(1..=4096).contains(&o.in_flight)
        || o.size > wsmp_benches::MAX_MESSAGE
        || !(1..=64).contains(&o.threads)
        || !secs_ok(o.duration)
        || o.duration <= 0.0
        || !secs_ok(o.warmup)
        || !secs_ok(o.drain)
        || !secs_ok(o.connect_timeout)
    {
        return Err(
            "an option is out of range (connections 1..=100000, in-flight 1..=4096, \
                    size <= 64 MiB, threads 1..=64, durations 0..=3600 s)"
                .into(),
        );
    }
    Ok(o)
}

/// Time points shared by every task, as nanoseconds since `base`.
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

/// State shared by one connection's writer and reader.
struct Shared {
    /// Send time (ns since base) of message `seq`, in slot `seq % in_flight`. A slot is reused
    /// only after the reader released the permit of the message that used it.
    slots: Vec<AtomicU64>,
    /// Messages written so far (published before their bytes hit the socket).
    sent: AtomicU64,
    permits: Semaphore,
    /// The payload of every message; its first min(8, size) bytes are replaced by the
    /// little-endian sequence number.
    pattern: Vec<u8>,
}

#[derive(Default)]
struct ConnResult {
    hist: Histogram,
    measured: u64,
    received: u64,
    clean_close: bool,
    pings: u64,
}

fn seq_bytes(seq: u64, size: usize) -> ([u8; 8], usize) {
    (seq.to_le_bytes(), size.min(8))
}

async fn writer(
    mut wr: OwnedWriteHalf,
    sh: Arc<Shared>,
    clock: Arc<Clock>,
    in_flight: usize,
    mask: [u8; 4],
) -> Result<(), String> {
    let size = sh.pattern.len();
    let mut frame = client::masked_frame(2, &sh.pattern, mask);
    let off = client::header_len(size);
    let (_, prefix) = seq_bytes(0, size);
    // Small messages are batched into one write when several permits are free at once.
    let max_batch = if size <= 4096 { in_flight.min(64) } else { 1 };
    let mut batch = Vec::with_capacity(frame.len() * max_batch);
    let mut seq: u64 = 0;
    loop {
        // Bounded: stops at `end` at the latest.
        match timeout_at(clock.end.into(), sh.permits.acquire()).await {
            Ok(Ok(p)) => p.forget(),
            Ok(Err(_)) | Err(_) => break,
        }
        let mut n = 1;
        while n < max_batch {
            match sh.permits.try_acquire() {
                Ok(p) => {
                    p.forget();
                    n += 1;
                }
                Err(_) => break,
            }
        }
        let now = clock.ns(Instant::now());
        batch.clear();
        for _ in 0..n {
            if let Some(slot) = sh.slots.get((seq % in_flight as u64) as usize) {
                slot.store(now, Ordering::Relaxed);
            }
            let (sb, _) = seq_bytes(seq, size);
            for i in 0..prefix {
                if let Some(b) = frame.get_mut(off + i) {
                    // RFC 6455 §5.3: payload byte i is masked with key byte i mod 4.
                    *b = sb[i] ^ mask[i % 4];
                }
            }
            seq += 1;
            if max_batch > 1 {
                batch.extend_from_slice(&frame);
            }
        }
        // Release pairs with the reader's Acquire: slot stores are visible before `sent`.
        sh.sent.store(seq, Ordering::Release);
        let buf = if max_batch > 1 { &batch } else { &frame };
        match timeout_at(clock.hard_deadline.into(), wr.write_all(buf)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("write: {e}")),
            Err(_) => return Err("write blocked past the hard deadline".into()),
        }
        if Instant::now() >= clock.end {
            break;
        }
    }
    // Drain before closing: wait (bounded) until every message was echoed, so the closing
    // handshake never races echoes still in flight.
    let all = u32::try_from(in_flight).unwrap_or(u32::MAX);
    match timeout_at(clock.hard_deadline.into(), sh.permits.acquire_many(all)).await {
        Ok(Ok(p)) => p.forget(),
        Ok(Err(_)) => return Err("permit semaphore closed".into()),
        Err(_) => {
            return Err(format!(
                "{} echo(es) still missing at the hard deadline",
                sh.sent
                    .load(Ordering::Acquire)
                    .saturating_sub(in_flight as u64 - sh.permits.available_permits() as u64)
                    .min(in_flight as u64)
            ))
        }
    }
    // RFC 6455 §5.5.1: start the closing handshake; the reader waits for the server's reply.
    let close = client::close_frame(mask);
    match timeout_at(clock.hard_deadline.into(), wr.write_all(&close)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("write close: {e}")),
        Err(_) => Err("close write blocked past the hard deadline".into()),
    }
}

async fn reader(
    mut rd: OwnedReadHalf,
    leftover: Vec<u8>,
    sh: Arc<Shared>,
    clock: Arc<Clock>,
    in_flight: usize,
) -> Result<ConnResult, String> {
    let size = sh.pattern.len();
    let mut res = ConnResult::default();
    let mut parser = FrameReader::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut filled = leftover.len().min(buf.len());
    buf[..filled].copy_from_slice(&leftover[..filled]);
    let mut recv_seq: u64 = 0; // next message expected
    let mut recv_pos: usize = 0; // bytes of it already validated
    let mut got_close = false;
    let measure_start = clock.ns(clock.measure_start);
    let end = clock.ns(clock.end);
    // First pass handles bytes that came with the handshake response.
    let mut first = true;
    loop {
        if !first {
            let n = match timeout_at(clock.hard_deadline.into(), rd.read(&mut buf[filled..])).await
            {
                Ok(Ok(n)) => n,
                Ok(Err(e)) => return Err(format!("read: {e}")),
                Err(_) => {
                    // Past the hard deadline: the server never finished the closing handshake.
                    if recv_seq < sh.sent.load(Ordering::Acquire) {
                        return Err(format!(
                            "{} echo(es) still missing at the hard deadline",
                            sh.sent.load(Ordering::Acquire) - recv_seq
                        ));
                    }
                    return Ok(res);
                }
            };
            if n == 0 {
                if Instant::now() < clock.end {
                    return Err("server closed the TCP connection during the run".into());
                }
                if recv_seq < sh.sent.load(Ordering::Acquire) {
                    return Err("server closed the TCP connection before echoing everything".into());
                }
                return Ok(res);
            }
            filled += n;
        }
        first = false;
        let now = clock.ns(Instant::now());
        let mut completed = 0usize;
        let sent = sh.sent.load(Ordering::Acquire);
        let used = parser.feed(&buf[..filled], |ev| match ev {
            Event::Data {
                opcode,
                chunk,
                end: msg_end,
            } => {
                if opcode != 2 {
                    return Err(format!(
                        "echo of message {recv_seq} came back with opcode {opcode}"
                    ));
                }
                if recv_seq >= sent {
                    return Err(format!("echo of message {recv_seq}, which was never sent"));
                }
                if recv_pos + chunk.len() > size {
                    return Err(format!(
                        "echo of message {recv_seq} is longer than {size} bytes"
                    ));
                }
                // Byte-for-byte check: the sequence-number prefix, then the pattern.
                let (sb, prefix) = seq_bytes(recv_seq, size);
                let (lo, hi) = (recv_pos, recv_pos + chunk.len());
                let expected = |p: usize| if p < prefix { sb[p] } else { sh.pattern[p] };
                let mismatch = (lo..hi.min(prefix))
                    .find(|&p| chunk[p - lo] != sb[p])
                    .or_else(|| {
                        let s = lo.max(prefix);
                        if hi <= s || chunk[s - lo..] == sh.pattern[s..hi] {
                            return None;
                        }
                        (s..hi).find(|&p| chunk[p - lo] != sh.pattern[p])
                    });
                if let Some(p) = mismatch {
                    return Err(format!(
                        "echo mismatch: message {recv_seq} byte {p}: got {:#04x}, sent {:#04x}",
                        chunk[p - lo],
                        expected(p)
                    ));
                }
                recv_pos += chunk.len();
                if msg_end {
                    if recv_pos != size {
                        return Err(format!(
                            "echo of message {recv_seq} has {recv_pos} bytes, sent {size}"
                        ));
                    }
                    let slot = (recv_seq % in_flight as u64) as usize;
                    let sent_at = sh.slots.get(slot).map_or(0, |s| s.load(Ordering::Relaxed));
                    if now >= measure_start && now < end {
                        res.hist.record(now.saturating_sub(sent_at));
                        res.measured += 1;
                    }
                    res.received += 1;
                    recv_seq += 1;
                    recv_pos = 0;
                    completed += 1;
                }
                Ok(())
            }
            Event::Ping(_) => {
                res.pings += 1;
                Ok(())
            }
            Event::Pong => Ok(()),
            Event::Close(code) => {
                if now < end {
                    return Err(format!("server sent close {code:?} during the run"));
                }
                got_close = true;
                Ok(())
            }
        })?;
        buf.copy_within(used..filled, 0);
        filled -= used;
        if completed > 0 {
            sh.permits.add_permits(completed);
        }
        if got_close {
            if recv_seq < sh.sent.load(Ordering::Acquire) {
                return Err(format!(
                    "server closed after {recv_seq} echoes, {} messages sent",
                    sh.sent.load(Ordering::Acquire)
                ));
            }
            res.clean_close = true;
            return Ok(res);
        }
        if filled == buf.len() {
            return Err("frame header larger than the read buffer".into());
        }
    }
}

struct Report {
    messages: u64,
    elapsed: f64,
    hist: Histogram,
    own_cpu: f64,
    server_cpu: Option<f64>,
    /// Busy CPU time of the whole machine over the window.
    machine_busy: Option<f64>,
    clean: usize,
    pings: u64,
}

async fn run(o: &Opts) -> Result<Report, String> {
    // Connect everything first; the clock starts once all handshakes are done.
    let ct = Duration::from_secs_f64(o.connect_timeout);
    let mut set = tokio::task::JoinSet::new();
    for i in 0..o.connections {
        let url = o.url.clone();
        set.spawn(async move {
            let mut rng = XorShift::from_entropy(i as u64);
            client::connect(&url, None, &mut rng, ct)
                .await
                .map(|c| (i, c, rng))
        });
    }
    let mut conns = Vec::with_capacity(o.connections);
    while let Some(r) = set.join_next().await {
        conns.push(r.map_err(|e| format!("connect task: {e}"))??);
    }
    let base = Instant::now();
    let measure_start = base + Duration::from_secs_f64(o.warmup);
    let end = measure_start + Duration::from_secs_f64(o.duration);
    let clock = Arc::new(Clock {
        base,
        measure_start,
        end,
        hard_deadline: end + Duration::from_secs_f64(o.drain),
    });
    let mut readers = tokio::task::JoinSet::new();
    let mut writers = tokio::task::JoinSet::new();
    for (i, (stream, leftover), mut rng) in conns {
        let mut pattern = vec![0u8; o.size];
        XorShift::new(i as u64 + 1).fill(&mut pattern);
        let sh = Arc::new(Shared {
            slots: (0..o.in_flight).map(|_| AtomicU64::new(0)).collect(),
            sent: AtomicU64::new(0),
            permits: Semaphore::new(o.in_flight),
            pattern,
        });
        let mask = (rng.next_u64() as u32).to_le_bytes();
        let (rd, wr) = stream.into_split();
        readers.spawn(reader(rd, leftover, sh.clone(), clock.clone(), o.in_flight));
        writers.spawn(writer(wr, sh, clock.clone(), o.in_flight, mask));
    }
    // CPU snapshots at the edges of the measurement window.
    tokio::time::sleep_until(measure_start.into()).await;
    let t0 = Instant::now();
    let own0 = own_cpu_time();
    let srv0 = o.server_pid.and_then(|p| proc_cpu_time(p).ok());
    let mach0 = machine_busy_time().ok();
    tokio::time::sleep_until(end.into()).await;
    let mach1 = machine_busy_time().ok();
    let t1 = Instant::now();
    let own1 = own_cpu_time();
    let srv1 = o.server_pid.and_then(|p| proc_cpu_time(p).ok());
    if o.server_pid.is_some() && (srv0.is_none() || srv1.is_none()) {
        return Err("cannot read the server's /proc/PID/stat".into());
    }

    let mut hist = Histogram::new();
    let mut messages = 0;
    let mut clean = 0;
    let mut pings = 0;
    while let Some(r) = readers.join_next().await {
        let r = r.map_err(|e| format!("reader task: {e}"))??;
        hist.merge(&r.hist);
        messages += r.measured;
        clean += usize::from(r.clean_close);
        pings += r.pings;
    }
    while let Some(r) = writers.join_next().await {
        r.map_err(|e| format!("writer task: {e}"))??;
    }
    Ok(Report {
        messages,
        elapsed: (t1 - t0).as_secs_f64(),
        hist,
        own_cpu: (own1.saturating_sub(own0)).as_secs_f64(),
        server_cpu: srv0
            .zip(srv1)
            .map(|(a, b)| b.saturating_sub(a).as_secs_f64()),
        machine_busy: mach0
            .zip(mach1)
            .map(|(a, b)| b.saturating_sub(a).as_secs_f64()),
        clean,
        pings,
    })
}

fn main() {
    let o = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("loadgen: {e}\n{USAGE}");
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
            eprintln!("loadgen: runtime: {e}");
            std::process::exit(1);
        }
    };
    let r = match rt.block_on(run(&o)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loadgen: FAILED: {e}");
            std::process::exit(1);
        }
    };
    let secs = r.elapsed.max(1e-9);
    let mps = r.messages as f64 / secs;
    let mbps = mps * o.size as f64 / 1e6;
    let us = |ns: u64| ns as f64 / 1000.0;
    let (p50, p99, max) = (
        us(r.hist.quantile(0.5)),
        us(r.hist.quantile(0.99)),
        us(r.hist.max()),
    );
    let own_pct = r.own_cpu / secs * 100.0;
    let srv_us = r.server_cpu.map(|c| {
        if r.messages > 0 {
            c * 1e6 / r.messages as f64
        } else {
            f64::NAN
        }
    });
    // CPU used by everything else on the machine (other processes, kernel threads) during the
    // window, 100 % = one core: interference that skews the numbers.
    let other_pct = r
        .machine_busy
        .map(|m| ((m - r.own_cpu - r.server_cpu.unwrap_or(0.0)) / secs * 100.0).max(0.0));
    if o.json {
        let num = |v: Option<f64>| match v {
            Some(v) if v.is_finite() => format!("{v:.3}"),
            _ => "null".into(),
        };
        println!(
            "{{\"url\":\"{}\",\"connections\":{},\"size\":{},\"in_flight\":{},\"warmup_s\":{},\
             \"duration_s\":{},\"messages\":{},\"msgs_per_sec\":{:.1},\"mb_per_sec\":{:.3},\
             \"p50_us\":{:.1},\"p99_us\":{:.1},\"max_us\":{:.1},\"loadgen_cpu_s\":{:.3},\
             \"loadgen_cpu_pct\":{:.1},\"server_cpu_s\":{},\"server_cpu_us_per_msg\":{},\
             \"other_cpu_pct\":{},\"clean_closes\":{},\"server_pings\":{}}}",
            o.url.addr,
            o.connections,
            o.size,
            o.in_flight,
            o.warmup,
            o.duration,
            r.messages,
            mps,
            mbps,
            p50,
            p99,
            max,
            r.own_cpu,
            own_pct,
            num(r.server_cpu),
            num(srv_us),
            num(other_pct),
            r.clean,
            r.pings
        );
    } else {
        println!(
            "{} conns x {} B, {} in flight, {:.1} s measured ({:.1} s warmup)",
            o.connections, o.size, o.in_flight, secs, o.warmup
        );
        println!("  messages        {}", r.messages);
        println!("  msgs/s          {mps:.0}");
        println!("  MB/s (payload)  {mbps:.2}");
        println!("  latency p50/p99/max  {p50:.1} / {p99:.1} / {max:.1} us");
        println!("  loadgen CPU     {:.2} s ({own_pct:.0} %)", r.own_cpu);
        if let (Some(c), Some(u)) = (r.server_cpu, srv_us) {
            println!("  server CPU      {c:.2} s, {u:.2} us/msg");
        }
        if let Some(p) = other_pct {
            println!("  other CPU       {p:.0} % (rest of the machine)");
        }
        println!("  clean closes    {}/{}", r.clean, o.connections);
    }
    if r.messages == 0 {
        eprintln!("loadgen: FAILED: no message completed in the measurement window");
        std::process::exit(1);
    }
}
