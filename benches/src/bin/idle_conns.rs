//! Opens N idle WebSocket connections to a server (default 10,000), holds them, and reports
//! the server's resident-memory growth per connection (`VmRSS` of `/proc/PID/status`, before
//! vs after). Loopback only: to spread the client ports it binds to several source addresses
//! 127.0.0.1, 127.0.0.2, ... before connecting.

#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wsmp_benches::args::Args;
use wsmp_benches::client::{self, Event, FrameReader, WsUrl, XorShift};
use wsmp_benches::{proc_rss_kib, raise_nofile};

const USAGE: &str = "usage: idle_conns --url ws://127.0.0.1:PORT [--connections N=10000]
       [--server-pid PID] [--source-addrs K=auto] [--concurrency C=128] [--settle SECS=1]
       [--hold SECS=0] [--timeout SECS=120] [--echo-once] [--json]";

/// Connections per source address when `--source-addrs` is automatic (the ephemeral range
/// 32768-60999 holds ~28k ports per source/destination pair).
const PER_SOURCE: usize = 16_000;

struct Opts {
    url: WsUrl,
    connections: usize,
    server_pid: Option<u32>,
    source_addrs: usize,
    concurrency: usize,
    settle: f64,
    hold: f64,
    timeout: f64,
    echo_once: bool,
    json: bool,
}

fn parse_opts() -> Result<Opts, String> {
    let mut a = Args::parse(std::env::args().skip(1), &["json", "echo-once", "help"])?;
    if a.flag("help") {
        println!("{USAGE}");
        std::process::exit(0);
    }
    let url: String = a.opt("url")?.ok_or("--url is required")?;
    let url = WsUrl::parse(&url)?;
    let connections: usize = a.get("connections", 10_000)?;
    let source_addrs: usize = a.get("source-addrs", 0)?;
    let o = Opts {
        connections,
        server_pid: a.opt("server-pid")?,
        source_addrs: if source_addrs == 0 {
            connections.div_ceil(PER_SOURCE)
        } else {
            source_addrs
        },
        concurrency: a.get("concurrency", 128)?,
        settle: a.get("settle", 1.0)?,
        hold: a.get("hold", 0.0)?,
        timeout: a.get("timeout", 120.0)?,
        echo_once: a.flag("echo-once"),
        json: a.flag("json"),
        url,
    };
    a.finish()?;
    let secs_ok = |v: f64| v.is_finite() && (0.0..=3600.0).contains(&v);
    if !(1..=200_000).contains(&o.connections)
        || !(1..=254).contains(&o.source_addrs)
        || !(1..=10_000).contains(&o.concurrency)
        || !secs_ok(o.settle)
        || !secs_ok(o.hold)
        || !secs_ok(o.timeout)
    {
        return Err("an option is out of range".into());
    }
    // Loopback only.
    if !o.url.addr.ip().is_loopback() {
        return Err(format!("{} is not a loopback address", o.url.addr.ip()));
    }
    if o.source_addrs > 1 && !o.url.addr.is_ipv4() {
        return Err("several source addresses need an IPv4 (127.0.0.x) server".into());
    }
    Ok(o)
}

/// One 16-byte echo on a fresh connection, validated byte-for-byte.
async fn echo_once(
    stream: &mut TcpStream,
    mut leftover: Vec<u8>,
    rng: &mut XorShift,
) -> Result<(), String> {
    let mut payload = [0u8; 16];
    rng.fill(&mut payload);
    let mask = (rng.next_u64() as u32).to_le_bytes();
    stream
        .write_all(&client::masked_frame(2, &payload, mask))
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut parser = FrameReader::new();
    let mut got = Vec::new();
    let mut done = false;
    let mut chunk = [0u8; 256];
    // Bounded by the caller's timeout; each round reads at least one byte or fails.
    loop {
        let used = parser.feed(&leftover, |ev| match ev {
            Event::Data {
                opcode: 2,
                chunk,
                end,
            } => {
                got.extend_from_slice(chunk);
                done |= end;
                Ok(())
            }
            Event::Data { opcode, .. } => Err(format!("echo came back with opcode {opcode}")),
            Event::Close(c) => Err(format!("server closed ({c:?}) instead of echoing")),
            Event::Ping(_) | Event::Pong => Ok(()),
        })?;
        leftover.drain(..used);
        if done {
            return if got == payload {
                Ok(())
            } else {
                Err("echo mismatch".into())
            };
        }
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("server closed the connection".into());
        }
        leftover.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
}

async fn run(o: &Opts) -> Result<(), String> {
    let limit = raise_nofile().unwrap_or(0);
    if limit < o.connections as u64 + 64 {
        return Err(format!(
            "RLIMIT_NOFILE is {limit}, need at least {} (raise the hard limit)",
            o.connections + 64
        ));
    }
    let pid = o.server_pid;
    let rss = |p: u32| proc_rss_kib(p).map_err(|e| format!("cannot read VmRSS of {p}: {e}"));
    let before = match pid {
        Some(p) => Some(rss(p)?),
        None => None,
    };
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(o.timeout);
    let gate = Arc::new(tokio::sync::Semaphore::new(o.concurrency));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..o.connections {
        let url = o.url.clone();
        let gate = gate.clone();
        let echo = o.echo_once;
        let local = if o.source_addrs > 1 {
            Some(IpAddr::V4(Ipv4Addr::new(
                127,
                0,
                0,
                1 + (i % o.source_addrs) as u8,
            )))
        } else {
            None
        };
        set.spawn(async move {
            let _permit = gate.acquire().await.map_err(|e| e.to_string())?;
            let mut rng = XorShift::from_entropy(i as u64);
            let left = deadline.saturating_duration_since(Instant::now());
            let (mut stream, leftover) = client::connect(&url, local, &mut rng, left).await?;
            if echo {
                let left = deadline.saturating_duration_since(Instant::now());
                tokio::time::timeout(left, echo_once(&mut stream, leftover, &mut rng))
                    .await
                    .map_err(|_| "echo timed out".to_string())??;
            }
            Ok::<TcpStream, String>(stream)
        });
    }
    let mut held = Vec::with_capacity(o.connections);
    let mut first_error = None;
    let mut failures = 0usize;
    while let Some(r) = set.join_next().await {
        match r.map_err(|e| e.to_string()).and_then(|r| r) {
            Ok(s) => held.push(s),
            Err(e) => {
                failures += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    let open_secs = started.elapsed().as_secs_f64();
    if let Some(e) = first_error {
        return Err(format!(
            "{failures} of {} connections failed; first: {e}",
            o.connections
        ));
    }
    tokio::time::sleep(Duration::from_secs_f64(o.settle)).await;
    let after = match pid {
        Some(p) => Some(rss(p)?),
        None => None,
    };
    // Make sure the server still holds them all: none may have been closed meanwhile.
    let mut closed = 0usize;
    for s in &held {
        let mut b = [0u8; 1];
        match s.try_read(&mut b) {
            Ok(_) => closed += 1, // EOF or unexpected data: not an idle open connection
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => closed += 1,
        }
    }
    if closed > 0 {
        return Err(format!(
            "{closed} connection(s) were closed or sent data while idle"
        ));
    }
    if o.hold > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(o.hold)).await;
    }
    let n = held.len();
    let per_conn = before
        .zip(after)
        .map(|(b, a)| (a as f64 - b as f64) * 1024.0 / n as f64);
    if o.json {
        let num = |v: Option<f64>| v.map_or("null".into(), |v| format!("{v:.1}"));
        let int = |v: Option<u64>| v.map_or("null".into(), |v| v.to_string());
        println!(
            "{{\"url\":\"{}\",\"connections\":{n},\"source_addrs\":{},\"echo_once\":{},\
             \"open_secs\":{open_secs:.3},\"rss_before_kib\":{},\"rss_after_kib\":{},\
             \"rss_bytes_per_conn\":{}}}",
            o.url.addr,
            o.source_addrs,
            o.echo_once,
            int(before),
            int(after),
            num(per_conn)
        );
    } else {
        println!(
            "{n} idle connections open in {open_secs:.2} s ({} source addresses)",
            o.source_addrs
        );
        if let (Some(b), Some(a), Some(p)) = (before, after, per_conn) {
            println!("  server VmRSS  {b} KiB -> {a} KiB");
            println!("  per connection  {:.0} bytes ({:.2} KiB)", p, p / 1024.0);
        }
    }
    // Polite goodbye: a close frame on each (best effort, never blocking), then drop.
    let mut rng = XorShift::from_entropy(0);
    for s in &held {
        let _ = s.try_write(&client::close_frame((rng.next_u64() as u32).to_le_bytes()));
    }
    Ok(())
}

fn main() {
    let o = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("idle_conns: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("idle_conns: runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(run(&o)) {
        eprintln!("idle_conns: FAILED: {e}");
        std::process::exit(1);
    }
}
