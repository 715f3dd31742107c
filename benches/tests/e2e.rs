//! End-to-end checks of the bench tools against the rival servers and deliberately broken
//! servers: the load generator must pass on a correct echo and fail hard on a wrong one.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use tungstenite::Message;

/// A server binary of this crate, started on port 0.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(bin: &str) -> Server {
        Self::start_with(bin, &[])
    }

    fn start_with(bin: &str, extra: &[&str]) -> Server {
        let mut child = Command::new(bin)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim_end()
            .strip_prefix("listening on 127.0.0.1:")
            .unwrap_or_else(|| panic!("bad first line {line:?}"))
            .parse()
            .unwrap();
        Server { child, port }
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    /// Sends `sig` and returns the exit code (bounded wait).
    fn stop(mut self, sig: &str) -> Option<i32> {
        Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        None
    }
}

fn loadgen(url: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "--url",
            url,
            "--duration",
            "0.5",
            "--warmup",
            "0.2",
            "--drain",
            "2",
        ])
        .args(extra)
        .output()
        .unwrap()
}

const RIVALS: [&str; 3] = [
    env!("CARGO_BIN_EXE_echo_tokio_tungstenite"),
    env!("CARGO_BIN_EXE_echo_fastwebsockets"),
    env!("CARGO_BIN_EXE_echo_tungstenite_blocking"),
];

#[test]
fn rivals_follow_the_echo_contract() {
    for bin in RIVALS {
        // Bad arguments: exit 2.
        let st = Command::new(bin)
            .arg("--bogus")
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert_eq!(st.code(), Some(2), "{bin}");

        let s = Server::start(bin);
        let (mut ws, _) = tungstenite::connect(s.url()).unwrap();
        let big: Vec<u8> = (0..(1 << 20)).map(|i| (i * 7) as u8).collect();
        let msgs = [
            Message::text("héllo"),
            Message::binary(vec![]),
            Message::binary(vec![1, 2, 3]),
            Message::binary(big),
        ];
        for m in msgs {
            ws.send(m.clone()).unwrap();
            assert_eq!(ws.read().unwrap(), m, "{bin}");
        }
        ws.send(Message::Ping(b"p".to_vec().into())).unwrap();
        match ws.read().unwrap() {
            Message::Pong(p) => assert_eq!(&p[..], b"p"),
            other => panic!("{bin}: expected pong, got {other:?}"),
        }
        ws.close(None).unwrap();
        // The server answers the closing handshake.
        loop {
            match ws.read() {
                Ok(Message::Close(_)) | Err(tungstenite::Error::ConnectionClosed) => break,
                Ok(_) => {}
                Err(e) => panic!("{bin}: close: {e}"),
            }
        }
        assert_eq!(s.stop("-TERM"), Some(0), "{bin} on SIGTERM");
        let s = Server::start(bin);
        assert_eq!(s.stop("-INT"), Some(0), "{bin} on SIGINT");
    }
}

#[test]
fn loadgen_passes_on_correct_echo_and_reports_json() {
    let s = Server::start(RIVALS[0]);
    let pid = s.child.id().to_string();
    for (size, k) in [("16", "1"), ("3", "8"), ("70000", "2")] {
        let out = loadgen(
            &s.url(),
            &[
                "--connections",
                "3",
                "--size",
                size,
                "--in-flight",
                k,
                "--server-pid",
                &pid,
                "--json",
            ],
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.starts_with('{') && stdout.trim_end().ends_with('}'),
            "{stdout}"
        );
        assert!(stdout.contains("\"clean_closes\":3"), "{stdout}");
        assert!(!stdout.contains("\"server_cpu_s\":null"), "{stdout}");
    }
    assert_eq!(s.stop("-INT"), Some(0));
}

#[test]
fn loadgen_rejects_bad_arguments() {
    for args in [
        &["--url", "http://x"][..],
        &["--url", "ws://127.0.0.1:1", "--in-flight", "0"],
        &[],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

/// A blocking tungstenite server that serves each connection with `f`, on a thread per
/// connection, until the test process ends.
fn broken_server(f: fn(tungstenite::WebSocket<TcpStream>)) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                s.set_nodelay(true).unwrap();
                if let Ok(ws) = tungstenite::accept(s) {
                    f(ws);
                }
            });
        }
    });
    url
}

#[test]
fn loadgen_fails_on_a_corrupted_echo() {
    let url = broken_server(|mut ws| {
        let mut n = 0u32;
        while let Ok(m) = ws.read() {
            if let Message::Binary(b) = m {
                let mut b = b.to_vec();
                n += 1;
                if n == 50 {
                    if let Some(x) = b.last_mut() {
                        *x ^= 1; // one flipped bit in the 50th echo
                    }
                }
                if ws.send(Message::binary(b)).is_err() {
                    return;
                }
            }
        }
    });
    let out = loadgen(&url, &["--connections", "1", "--size", "32"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("echo mismatch: message 49 byte 31"), "{err}");
}

#[test]
fn loadgen_fails_on_reordered_echoes() {
    let url = broken_server(|mut ws| {
        let mut held: Option<Message> = None;
        while let Ok(m) = ws.read() {
            if m.is_binary() {
                // Echo every pair of messages swapped.
                let out = match held.take() {
                    Some(h) => vec![m, h],
                    None => {
                        held = Some(m);
                        vec![]
                    }
                };
                for o in out {
                    if ws.send(o).is_err() {
                        return;
                    }
                }
            }
        }
    });
    let out = loadgen(
        &url,
        &["--connections", "1", "--size", "16", "--in-flight", "4"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("echo mismatch: message 0 byte 0"), "{err}");
}

#[test]
fn loadgen_fails_on_a_lost_echo() {
    let url = broken_server(|mut ws| {
        let mut n = 0u32;
        while let Ok(m) = ws.read() {
            n += 1;
            if m.is_binary() && n != 10 && ws.send(m).is_err() {
                return;
            }
        }
    });
    // With one message in flight the lost echo stalls the connection: the drain hits the
    // hard deadline.
    let t = Instant::now();
    let out = loadgen(
        &url,
        &["--connections", "1", "--size", "16", "--in-flight", "1"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("missing at the hard deadline"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(20), "bounded in time");
    // With several in flight the next echo arrives in its place: the sequence number catches it.
    let out = loadgen(
        &url,
        &["--connections", "1", "--size", "16", "--in-flight", "4"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("echo mismatch: message 9 byte 0"), "{err}");
}

#[test]
fn loadgen_fails_on_a_bad_accept_value() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                  Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let out = loadgen(&url, &["--connections", "1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("Sec-WebSocket-Accept"), "{err}");
}

#[test]
fn idle_conns_reports_rss_per_connection() {
    let s = Server::start(RIVALS[1]);
    let out = Command::new(env!("CARGO_BIN_EXE_idle_conns"))
        .args([
            "--url",
            &s.url(),
            "--connections",
            "200",
            "--source-addrs",
            "2",
            "--settle",
            "0.2",
        ])
        .args([
            "--server-pid",
            &s.child.id().to_string(),
            "--echo-once",
            "--json",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("\"connections\":200"), "{stdout}");
    assert!(stdout.contains("\"rss_bytes_per_conn\":"), "{stdout}");
    assert!(!stdout.contains("null"), "{stdout}");
    assert_eq!(s.stop("-INT"), Some(0));
}

// ---------------------------------------------------------------------------------------------
// Relay benchmark: relay_load against the tokio-tungstenite rival and this tree's wsmp-relay.

const RELAY_RIVAL: &str = env!("CARGO_BIN_EXE_relay_tokio_tungstenite");

fn relay_load(url: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_relay_load"))
        .args([
            "--url",
            url,
            "--duration",
            "0.4",
            "--warmup",
            "0.1",
            "--drain",
            "3",
            "--settle",
            "0",
            "--join-timeout",
            "10",
        ])
        .args(extra)
        .output()
        .unwrap()
}

/// This tree's relay, run in-process on its own runtime until dropped.
struct InProcessRelay {
    port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl InProcessRelay {
    fn start() -> Self {
        let args =
            // Pings every 0.25 s, dropping a client that has not answered the previous one:
            // the run also proves relay_load answers pings.
            wsmp_relay::cli::try_parse_from([
                "wsmp-relay",
                "--listen",
                "127.0.0.1:0",
                "--heartbeat-interval",
                "0.25",
            ])
            .unwrap();
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async move {
                let server = wsmp_relay::server::Server::bind(&args).unwrap();
                port_tx.send(server.local_addrs()[0].port()).unwrap();
                server
                    .run_until(async {
                        let _ = stop_rx.await;
                    })
                    .await;
            });
        });
        let port = port_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        InProcessRelay {
            port,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }
}

impl Drop for InProcessRelay {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs `relay_load` and checks it succeeded with a JSON report that validated deliveries.
fn assert_relay_run(url: &str, extra: &[&str], want_deliveries: bool) -> String {
    let out = relay_load(url, &[extra, &["--json"]].concat());
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{url} {extra:?}: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with('{') && stdout.trim_end().ends_with('}'),
        "{stdout}"
    );
    let total: u64 = stdout
        .split("\"deliveries_total\":")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no deliveries_total in {stdout}"));
    assert_eq!(total > 0, want_deliveries, "{stdout}");
    stdout
}

#[test]
fn relay_load_validates_every_relay_form_on_both_relays() {
    let rival = Server::start(RELAY_RIVAL);
    let pid = rival.child.id().to_string();
    let wsmp = InProcessRelay::start();
    for url in [rival.url(), wsmp.url()] {
        // Every RELAY form (all, one peer, self, all but X, all but sender, another room's
        // peer), several rooms at once.
        let out = assert_relay_run(
            &url,
            &[
                "--rooms",
                "3",
                "--per-room",
                "4",
                "--rate",
                "60",
                "--traffic",
                "mixed",
            ],
            true,
        );
        // The in-process relay pings every 0.25 s; the rival never does.
        assert_eq!(url == wsmp.url(), !out.contains("\"pings\":0,"), "{out}");
        // Closed loop: 4 broadcasts in flight per client.
        assert_relay_run(
            &url,
            &["--rooms", "1", "--per-room", "5", "--window", "4"],
            true,
        );
    }
    // Idle hold, with the relay's CPU and RSS read from /proc.
    let out = assert_relay_run(
        &rival.url(),
        &["--rooms", "2", "--per-room", "3", "--server-pid", &pid],
        false,
    );
    assert!(out.contains("\"mode\":\"idle\""), "{out}");
    assert!(!out.contains("\"rss_bytes_per_client\":null"), "{out}");
    assert!(!out.contains("\"server_cpu_s\":null"), "{out}");
    assert_eq!(rival.stop("-INT"), Some(0));
}

#[test]
fn relay_load_spreads_rooms_over_several_urls() {
    // The same relay under two URLs: every room has members "on both nodes", so the run
    // reports cross-URL deliveries, and per-process CPU for each --server-pid.
    let rival = Server::start(RELAY_RIVAL);
    let pid = rival.child.id().to_string();
    let url = rival.url();
    let out = assert_relay_run(
        &format!("{url},{url}"),
        &[
            "--rooms",
            "2",
            "--per-room",
            "4",
            "--rate",
            "60",
            "--traffic",
            "mixed",
            "--server-pid",
            &format!("{pid},{pid}"),
        ],
        true,
    );
    assert!(!out.contains("\"cross_deliveries\":0,"), "{out}");
    let each = out
        .split("\"server_cpu_s_each\":[")
        .nth(1)
        .and_then(|r| r.split(']').next())
        .unwrap_or_else(|| panic!("no server_cpu_s_each in {out}"));
    assert_eq!(each.split(',').count(), 2, "{out}");
    assert_eq!(rival.stop("-INT"), Some(0));
    // Two independent relays are no cluster: a room split over them never completes its
    // ADD_PEER set, and the run fails instead of measuring two half rooms.
    let (a, b) = (InProcessRelay::start(), InProcessRelay::start());
    let out = relay_load(
        &format!("{},{}", a.url(), b.url()),
        &[
            "--rooms",
            "1",
            "--per-room",
            "4",
            "--rate",
            "10",
            "--join-timeout",
            "2",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("ADD_PEER received"), "{err}");
}

#[test]
fn relay_load_catches_each_fault() {
    for (fault, expect) in [
        ("drop", "lost or reordered"),
        ("duplicate", "duplicate or reordered"),
        ("corrupt", "corrupted: seq"),
        ("misroute", "misrouted"),
        ("reorder", "lost or reordered"),
    ] {
        let s = Server::start_with(RELAY_RIVAL, &["--fault", &format!("{fault}:40")]);
        let out = relay_load(
            &s.url(),
            &[
                "--rooms",
                "2",
                "--per-room",
                "4",
                "--rate",
                "100",
                "--traffic",
                "mixed",
            ],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{fault}: {err}");
        assert!(err.contains(expect), "{fault}: {err}");
        assert_eq!(s.stop("-INT"), Some(0));
    }
}

#[test]
fn relay_load_fails_against_a_server_that_is_no_relay() {
    // An echo server never sends the id message.
    let s = Server::start(RIVALS[0]);
    let out = relay_load(
        &s.url(),
        &[
            "--rooms",
            "1",
            "--per-room",
            "2",
            "--rate",
            "10",
            "--join-timeout",
            "1",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("timed out while joining"), "{err}");
    assert_eq!(s.stop("-INT"), Some(0));
}

#[test]
fn relay_load_rejects_bad_arguments() {
    for args in [
        &["--url", "ws://127.0.0.1:1", "--rate", "30", "--window", "4"][..],
        &[
            "--url",
            "ws://127.0.0.1:1",
            "--window",
            "4",
            "--per-room",
            "1",
        ],
        &["--url", "ws://127.0.0.1:1", "--size", "8"],
        &["--url", "ws://127.0.0.1:1", "--traffic", "some"],
        &["--url", "ws://10.0.0.1:1"],
        &["--url", "ws://127.0.0.1:1,ws://10.0.0.1:1"],
        &["--url", "ws://127.0.0.1:1", "--server-pid", "1,x"],
        &[],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_relay_load"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn relay_rival_follows_the_server_contract() {
    for bad in [&["--bogus"][..], &["--fault", "explode"]] {
        let st = Command::new(RELAY_RIVAL)
            .args(bad)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert_eq!(st.code(), Some(2), "{bad:?}");
    }
    let s = Server::start(RELAY_RIVAL);
    // Not a room: HTTP 404 (design: rooms are `/` and `/room/NAME`).
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    c.write_all(
        b"GET /nope HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let mut head = [0u8; 12];
    c.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 404");
    assert_eq!(s.stop("-TERM"), Some(0));
    let s = Server::start(RELAY_RIVAL);
    assert_eq!(s.stop("-INT"), Some(0));
}
