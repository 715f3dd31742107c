//! Issue 10: the tokio `echo` example (64 MiB limits) let one stalled reader
//! grow the server by 64.9 MiB — it queued a whole outbound budget before it
//! stopped reading; tokio-tungstenite's echo stays near one message. Now
//! `send`/`feed` wait while more than the send watermark (32 KiB) is queued,
//! so the server holds about one message (+ the watermark + one read).
//!
//! A raw client (masked frames by hand, benches/src/client.rs helpers)
//! pipelines 1 MiB binary messages to the `echo` example and never reads;
//! once the server stops taking them (a write blocks for 3 s) or 256 MiB
//! were sent, the server's VmRSS growth since the upgrade must stay under
//! 12 MiB (v0.1: 64.9 MiB). `WSMP_ECHO_BIN` runs another echo binary (e.g.
//! a v0.1.0 build, where this fails).
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wsmp_benches::client::{check_response, handshake_request, masked_frame, WsUrl, XorShift};

const MESSAGE: usize = 1 << 20;
const LIMIT_KIB: u64 = 12 * 1024;

/// target/<profile>/examples/echo[-hash] of this crate (wsmp-std has an
/// `echo` too: the newest whose `--help` names wsmp-tokio), or `WSMP_ECHO_BIN`.
fn echo_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("WSMP_ECHO_BIN") {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?.parent()?.join("examples");
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let file = e.file_name().into_string().ok()?;
            let ours = file == "echo"
                || file
                    .strip_prefix("echo-")
                    .is_some_and(|h| h.chars().all(|c| c.is_ascii_hexdigit()));
            ours.then(|| Some((e.metadata().ok()?.modified().ok()?, e.path())))?
        })
        .collect();
    found.sort();
    found.into_iter().rev().map(|(_, p)| p).find(|p| {
        Command::new(p)
            .arg("--help")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("wsmp-tokio"))
    })
}

fn rss_kib(pid: u32) -> u64 {
    wsmp_benches::proc_rss_kib(pid).unwrap()
}

#[test]
fn echo_holds_about_one_message_for_a_stalled_reader() {
    let Some(bin) = echo_bin() else {
        // `cargo test -p wsmp-tokio` builds the examples; `--test` alone may not.
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the echo example is not built"
        );
        eprintln!("NOTE: echo example (wsmp-tokio) not built; skipping");
        return;
    };
    let mut child = Command::new(&bin)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line {line:?}"))
        .parse()
        .unwrap();
    let result = std::panic::catch_unwind(|| stall(pid, addr));
    let _ = child.kill();
    let _ = child.wait();
    let (growth, sent) = result.unwrap();
    println!(
        "FIGURE echo_rss: server VmRSS grew {:.1} MiB for a reader that never reads \
         ({} x 1 MiB messages sent before the server stopped taking them)",
        growth as f64 / 1024.0,
        sent
    );
    assert!(
        growth <= LIMIT_KIB,
        "the echo server grew by {growth} KiB for one stalled reader"
    );
}

/// Upgrades, echoes one small message (warm-up), then pipelines 1 MiB
/// messages without reading. Returns (VmRSS growth KiB, messages sent).
fn stall(pid: u32, addr: SocketAddr) -> (u64, usize) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let url = WsUrl::parse(&format!("ws://{addr}/")).unwrap();
    let mut rng = XorShift::new(7);
    let (req, key) = handshake_request(&url, &mut rng);
    s.write_all(&req).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head = loop {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "closed during the handshake");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(len) = check_response(&buf, &key).unwrap() {
            break len;
        }
    };
    // Warm-up: one small echo, read back (frame: 2-byte header + 5 bytes).
    s.write_all(&masked_frame(2, b"hello", [1, 2, 3, 4]))
        .unwrap();
    let mut got = buf.split_off(head);
    while got.len() < 7 {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "closed during the warm-up");
        got.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(&got[..7], b"\x82\x05hello");
    std::thread::sleep(Duration::from_millis(300));
    let before = rss_kib(pid);
    let frame = masked_frame(2, &vec![0x5a; MESSAGE], [9, 8, 7, 6]);
    s.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
    let start = Instant::now();
    let mut sent = 0;
    // Bounded: 256 messages (256 MiB) or 60 s, and each write by 3 s.
    while sent < 256 && start.elapsed() < Duration::from_secs(60) {
        match s.write_all(&frame) {
            Ok(()) => sent += 1,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break
            }
            Err(e) => panic!("write: {e}"),
        }
    }
    // Let the server settle, then read its memory.
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_kib(pid);
    (after.saturating_sub(before), sent)
}
