//! The example programs (`echo`, `mp_echo`, `mp_client`) driven from the
//! outside, per ../shared/design/CLI.md: listening lines, output lines,
//! exit codes 0/1/2, SIGTERM → exit 0, wss.
//!
//! `cargo test -p wsmp-tokio` builds the examples; when they are missing
//! (e.g. `--test examples` alone), the tests say so and pass.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::within;
use wsmp_tls::testing::TestCerts;
use wsmp_tokio::{connect, ClientOptions, Message};

/// target/<profile>/examples/NAME[-hash] built from this crate: wsmp-std
/// has examples with the same names, so pick the newest file whose `--help`
/// names wsmp-tokio.
fn example(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?.parent()?.join("examples");
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let file = e.file_name().into_string().ok()?;
            let ours = file == name
                || file
                    .strip_prefix(name)
                    .and_then(|r| r.strip_prefix('-'))
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

/// A running server example; stdout lines arrive on a channel.
struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Server {
    fn start(name: &str, args: &[&str]) -> Option<(Server, String)> {
        let Some(path) = example(name) else {
            eprintln!("NOTE: example {name} (wsmp-tokio) not built; skipping");
            return None;
        };
        let mut child = Command::new(path)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut s = Server { child, lines };
        let first = s.line();
        let addr = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first line {first:?}"))
            .to_string();
        Some((s, addr))
    }

    fn line(&mut self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(10))
            .expect("a stdout line in time")
    }

    /// SIGTERM; expects exit 0; returns the remaining stdout lines.
    fn stop(mut self) -> Vec<String> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let t = std::time::Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "no exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(status.code(), Some(0), "exit status after SIGTERM");
        self.lines.iter().collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mp_client(args: &[&str]) -> std::process::Output {
    let path = example("mp_client").expect("mp_client built with mp_echo");
    let mut child = Command::new(path)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded: mp_client's own --timeout is at most a few seconds here.
    let t = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > Duration::from_secs(15) {
            let _ = child.kill();
            panic!("mp_client {args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn mp_echo_and_mp_client() {
    let Some((mut server, addr)) = Server::start("mp_echo", &["--listen", "127.0.0.1:0"]) else {
        return;
    };
    let url = format!("ws://{addr}/");
    // Exit 0: both packets echoed.
    let out = mp_client(&["--url", &url, "--send", "00ff10", "--count", "2"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    let id: i32 = lines[0]
        .strip_prefix("unique_id ")
        .unwrap()
        .parse()
        .unwrap();
    assert!(id >= 2);
    assert_eq!(lines[1], "recv from=1 len=3 hex=00ff10");
    assert_eq!(lines[2], "recv from=1 len=3 hex=00ff10");
    // The server's lines for that client.
    assert_eq!(server.line(), format!("peer_connected {id}"));
    assert_eq!(server.line(), format!("packet from={id} len=3"));
    assert_eq!(server.line(), format!("packet from={id} len=3"));
    assert_eq!(server.line(), format!("peer_disconnected {id}"));

    // Exit 1: connected, but fewer packets than expected in time.
    let out = mp_client(&[
        "--url",
        &url,
        "--send",
        "01",
        "--expect",
        "3",
        "--timeout",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(stdout.starts_with("unique_id "), "{stdout}");
    assert!(stdout.contains("recv from=1 len=1 hex=01"), "{stdout}");

    // Exit 2: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("ws://{}/", closed.local_addr().unwrap());
    drop(closed);
    let out = mp_client(&["--url", &dead, "--timeout", "2"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(!out.stderr.is_empty());
    // Exit 2: bad arguments (one line on stderr).
    let out = mp_client(&["--url", &url, "--send", "xyz"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).lines().count(),
        1,
        "{out:?}"
    );
    let out = mp_client(&[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");

    let rest = server.stop();
    eprintln!("mp_echo after SIGTERM: {rest:?}");
}

#[test]
fn mp_echo_over_wss() {
    let certs = TestCerts::generate();
    let dir = std::env::temp_dir().join(format!("wsmp-tokio-examples-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    certs.write_to(&dir).unwrap();
    let path = |f: &str| dir.join(f).to_string_lossy().into_owned();
    let (cert, key, ca) = (path("server.pem"), path("server.key"), path("ca.pem"));
    let Some((server, addr)) = Server::start(
        "mp_echo",
        &[
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ],
    ) else {
        return;
    };
    let url = format!("wss://{addr}/");
    let out = mp_client(&["--url", &url, "--send", "abcd", "--ca", &ca]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("recv from=1 len=2 hex=abcd"));
    let out = mp_client(&["--url", &url, "--send", "abcd", "--insecure"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // Without the CA: certificate rejected → could not connect.
    let out = mp_client(&["--url", &url, "--send", "abcd", "--timeout", "2"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    server.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn echo_server_round_trip_and_bad_args() {
    let Some((server, addr)) = Server::start("echo", &["--listen", "127.0.0.1:0"]) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut ws = within(
            5.0,
            "connect",
            connect(
                &format!("ws://{addr}/"),
                ClientOptions {
                    config: wsmp_tokio::Config {
                        inbound_buffer_size: 4 << 20,
                        outbound_buffer_size: 4 << 20,
                        ..Default::default()
                    },
                    ..Default::default()
                },
            ),
        )
        .await
        .unwrap();
        let big = Message::Binary(bytes::Bytes::from(vec![3u8; 1 << 20]));
        for m in [
            Message::Text("echo me".into()),
            big,
            Message::Text(String::new()),
        ] {
            ws.send(m.clone()).await.unwrap();
            assert_eq!(within(10.0, "echo", ws.recv()).await.unwrap(), m);
        }
    });
    server.stop();
    let path = example("echo").unwrap();
    let out = Command::new(path)
        .args(["--listen", "not-an-address"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stdout.is_empty());
}

/// `--listen [::]:P --listen 0.0.0.0:P`: two listeners on one port, one per family (the
/// bind rule of every wsmp server, `wsmp_io::BindAddress`), each echoing.
#[test]
fn echo_listens_on_ipv6_and_ipv4_wildcards_of_one_port() {
    let port = {
        let l = wsmp_tokio::bind_listener("[::]:0".parse().unwrap()).unwrap();
        l.local_addr().unwrap().port()
    };
    let Some((mut server, first)) = Server::start(
        "echo",
        &[
            "--listen",
            &format!("[::]:{port}"),
            "--listen",
            &format!("0.0.0.0:{port}"),
        ],
    ) else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "example echo not built"
        );
        return;
    };
    assert_eq!(first, format!("[::]:{port}"));
    assert_eq!(server.line(), format!("listening on 0.0.0.0:{port}"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for url in [
            format!("ws://[::1]:{port}/"),
            format!("ws://127.0.0.1:{port}/"),
        ] {
            let mut ws = within(5.0, "connect", connect(&url, ClientOptions::default()))
                .await
                .unwrap();
            let m = Message::Text(url.clone());
            ws.send(m.clone()).await.unwrap();
            assert_eq!(within(10.0, "echo", ws.recv()).await.unwrap(), m);
        }
    });
    server.stop();
}
