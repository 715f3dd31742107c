//! Shared helpers of the wsmp end-to-end benchmark tools: the server command-line contract
//! (`--listen HOST:PORT`, see `shared/design/CLI.md`), `/proc` readers for another process's
//! CPU time and resident memory, this process's CPU clock, and a fixed-size latency histogram.
//!
//! Nothing here depends on a WebSocket crate: the load generator must stay neutral.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::net::SocketAddr;
use std::time::Duration;

/// Maximum message and frame size of every echo server: 64 MiB (`shared/design/CLI.md`, `echo`).
pub const MAX_MESSAGE: usize = 64 << 20;

/// Parses the server command line: `--listen HOST:PORT` (repeatable; the rivals use the first)
/// and `--help`. Defaults to `127.0.0.1:9080`. On a bad argument prints one line on stderr and
/// exits 2 (`shared/design/CLI.md`, "Bad arguments").
pub fn server_listen_args(program: &str) -> Vec<SocketAddr> {
    match parse_listen(std::env::args().skip(1)) {
        Ok(Some(v)) => v,
        Ok(None) => {
            println!("usage: {program} [--listen HOST:PORT]...");
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("{program}: {e}");
            std::process::exit(2);
        }
    }
}

/// Parses `--listen` arguments; `Ok(None)` means `--help` was asked.
pub fn parse_listen<I: IntoIterator<Item = String>>(
    args: I,
) -> Result<Option<Vec<SocketAddr>>, String> {
    let mut out = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let value = if a == "--listen" {
            it.next().ok_or("--listen needs HOST:PORT")?
        } else if let Some(v) = a.strip_prefix("--listen=") {
            v.to_owned()
        } else if a == "--help" || a == "-h" {
            return Ok(None);
        } else {
            return Err(format!("unknown argument {a:?}"));
        };
        let addr: SocketAddr = value
            .parse()
            .map_err(|_| format!("bad --listen address {value:?} (want HOST:PORT)"))?;
        out.push(addr);
    }
    if out.is_empty() {
        out.push(SocketAddr::from(([127, 0, 0, 1], 9080)));
    }
    Ok(Some(out))
}

/// Prints the contract line `listening on HOST:PORT` to stdout and flushes it.
pub fn announce(addr: SocketAddr) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    // A closed stdout must not stop the server.
    let _ = writeln!(out, "listening on {addr}");
    let _ = out.flush();
}

/// CPU time (user + system) a process has used, read from `/proc/PID/stat` fields 14 and 15.
pub fn proc_cpu_time(pid: u32) -> std::io::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat_cpu(&stat, rustix::param::clock_ticks_per_second())
        .ok_or_else(|| std::io::Error::other("unparsable /proc/PID/stat"))
}

/// Parses utime + stime out of a `/proc/PID/stat` line, in clock ticks of `hz` per second.
pub fn parse_stat_cpu(stat: &str, hz: u64) -> Option<Duration> {
    // The command name (field 2) is in parentheses and may contain spaces: skip past the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    // After ')': field 3 is state, so utime (14) and stime (15) are the 12th and 13th here.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    if hz == 0 {
        return None;
    }
    let ticks = utime + stime;
    Some(Duration::from_secs(ticks / hz) + Duration::from_nanos((ticks % hz) * 1_000_000_000 / hz))
}

/// CPU time all CPUs of the machine spent busy (user, nice, system, irq, softirq, steal) since
/// boot, from the first line of `/proc/stat`.
pub fn machine_busy_time() -> std::io::Result<Duration> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    parse_proc_stat_busy(&stat, rustix::param::clock_ticks_per_second())
        .ok_or_else(|| std::io::Error::other("unparsable /proc/stat"))
}

/// Parses the busy ticks of the aggregate `cpu` line of `/proc/stat`.
pub fn parse_proc_stat_busy(stat: &str, hz: u64) -> Option<Duration> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<u64> = line
        .split_ascii_whitespace()
        .skip(1)
        .map_while(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy = [0usize, 1, 2, 5, 6, 7]
        .iter()
        .map(|&i| f.get(i).copied().unwrap_or(0))
        .sum::<u64>();
    if hz == 0 || f.len() < 4 {
        return None;
    }
    Some(Duration::from_secs(busy / hz) + Duration::from_nanos((busy % hz) * 1_000_000_000 / hz))
}

/// Resident set size of a process in KiB (`VmRSS` of `/proc/PID/status`).
pub fn proc_rss_kib(pid: u32) -> std::io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_status_kib(&status, "VmRSS:")
        .ok_or_else(|| std::io::Error::other("no VmRSS in /proc/PID/status"))
}

/// Reads a `Key:   123 kB` line of `/proc/PID/status`.
pub fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..]
        .split_ascii_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU time used so far by this whole process (all threads), from
/// `clock_gettime(CLOCK_PROCESS_CPUTIME_ID)` — the same kernel accounting `getrusage` sums.
pub fn own_cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(
        t.tv_sec.max(0) as u64,
        t.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the new soft limit.
pub fn raise_nofile() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current != lim.maximum {
        lim.current = lim.maximum;
        // Failing to raise is not fatal: the caller sees the limit it got.
        let _ = setrlimit(Resource::Nofile, lim);
    }
    getrlimit(Resource::Nofile).current
}

/// Sub-buckets per power of two in [`Histogram`]: relative error below 1/64 (~1.6 %).
const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;
const BUCKETS: usize = ((64 - SUB_BITS as usize) + 1) * SUB as usize;

/// A log-linear histogram of `u64` values (nanoseconds here), fixed size, mergeable.
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < SUB {
            return v as usize;
        }
        let e = 63 - v.leading_zeros(); // e >= SUB_BITS
        let sub = (v >> (e - SUB_BITS)) & (SUB - 1);
        ((e - SUB_BITS + 1) as u64 * SUB + sub) as usize
    }

    fn lower_bound(i: usize) -> u64 {
        let i = i as u64;
        if i < SUB {
            return i;
        }
        let e = i / SUB + SUB_BITS as u64 - 1;
        let sub = i % SUB;
        (SUB + sub) << (e - SUB_BITS as u64)
    }

    /// Records one value.
    pub fn record(&mut self, v: u64) {
        let i = Self::index(v);
        if let Some(c) = self.counts.get_mut(i) {
            *c += 1;
        }
        self.total += 1;
        self.max = self.max.max(v);
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// Number of recorded values.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Largest recorded value.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0..=1): the lower bound of the bucket holding it; 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::lower_bound(i).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn listen_args() {
        let v = |s: &[&str]| parse_listen(s.iter().map(|x| x.to_string()));
        assert_eq!(
            v(&[]).unwrap().unwrap(),
            vec!["127.0.0.1:9080".parse().unwrap()]
        );
        assert_eq!(
            v(&["--listen", "[::1]:0"]).unwrap().unwrap(),
            vec!["[::1]:0".parse().unwrap()]
        );
        assert!(v(&["--listen"]).is_err());
        assert!(v(&["--listen", "localhost"]).is_err());
        assert!(v(&["--bogus"]).is_err());
        assert!(v(&["--help"]).unwrap().is_none());
    }

    #[test]
    fn stat_parsing() {
        // Real layout, with a command name holding spaces and a ')'.
        let line = "1234 (my (odd) prog) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0";
        assert_eq!(parse_stat_cpu(line, 100), Some(Duration::from_secs(3)));
        assert_eq!(parse_stat_cpu("garbage", 100), None);
        let status = "Name:\tx\nVmHWM:\t  900 kB\nVmRSS:\t  812 kB\n";
        assert_eq!(parse_status_kib(status, "VmRSS:"), Some(812));
        assert_eq!(parse_status_kib(status, "VmSwap:"), None);
        let ps = "cpu  100 20 30 5000 7 1 2 3 0 0\ncpu0 50 10 15 2500 3 0 1 1 0 0\n";
        assert_eq!(
            parse_proc_stat_busy(ps, 100),
            Some(Duration::from_millis(1560))
        );
        assert_eq!(parse_proc_stat_busy("intr 1 2", 100), None);
        assert!(machine_busy_time().is_ok());
    }

    #[test]
    fn own_proc_readable() {
        let pid = std::process::id();
        assert!(proc_rss_kib(pid).unwrap() > 0);
        proc_cpu_time(pid).unwrap();
        let a = own_cpu_time();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        assert!(own_cpu_time() > a);
    }

    #[test]
    fn histogram_quantiles() {
        let mut h = Histogram::new();
        assert_eq!(h.quantile(0.5), 0);
        for v in 1..=10_000u64 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(0.5) as f64;
        let p99 = h.quantile(0.99) as f64;
        assert!((p50 / 5_000_000.0 - 1.0).abs() < 0.02, "{p50}");
        assert!((p99 / 9_900_000.0 - 1.0).abs() < 0.02, "{p99}");
        assert_eq!(h.quantile(1.0), 10_000_000u64.min(h.quantile(1.0)));
        let mut g = Histogram::new();
        g.record(u64::MAX);
        g.merge(&h);
        assert_eq!(g.count(), 10_001);
        assert_eq!(g.max(), u64::MAX);
        // Bucket lower bounds are monotone and index/lower_bound agree.
        for v in [0u64, 1, 63, 64, 65, 127, 128, 1000, 1 << 40, u64::MAX] {
            let i = Histogram::index(v);
            assert!(Histogram::lower_bound(i) <= v);
            assert!(i < BUCKETS);
        }
    }
}

pub mod args;
pub mod client;
pub mod relay_plan;
pub mod relay_proto;
