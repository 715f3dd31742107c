//! The `wsmp-relay` program from the outside (design/CLI.md): stdout lines,
//! exit codes, signals.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use wsmp_tokio::CloseCode;

const BIN: &str = env!("CARGO_BIN_EXE_wsmp-relay");

struct Proc {
    child: Child,
    stdout: BufReader<std::process::ChildStdout>,
}

impl Proc {
    fn spawn(args: &[&str]) -> Proc {
        let mut child = Command::new(BIN)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn wsmp-relay");
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Proc { child, stdout }
    }

    /// Reads one `listening on HOST:PORT` line.
    fn listening(&mut self) -> std::net::SocketAddr {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("stdout line");
        let addr = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected stdout line {line:?}"))
            .trim_end_matches('\n');
        addr.parse().expect("HOST:PORT")
    }

    /// Reads the `admin listening on HOST:PORT` line.
    fn admin(&mut self) -> std::net::SocketAddr {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("stdout line");
        line.strip_prefix("admin listening on ")
            .unwrap_or_else(|| panic!("unexpected stdout line {line:?}"))
            .trim_end_matches('\n')
            .parse()
            .expect("HOST:PORT")
    }

    fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill")
            .success();
        assert!(ok);
    }

    /// Waits (bounded) for the exit code.
    fn wait(&mut self, limit: Duration) -> Option<i32> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code();
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("wsmp-relay did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_clients_and_exits_zero() {
    let mut p = Proc::spawn(&["--listen", "127.0.0.1:0"]);
    let addr = p.listening();
    assert_ne!(addr.port(), 0, "the real port is printed");
    let admin = p.admin();
    assert_ne!(
        admin.port(),
        0,
        "with --listen the admin port is any free port"
    );
    let url = format!("ws://{addr}/");
    let mut a = Client::join(&url).await;
    let mut b = Client::join(&url).await;
    assert_eq!(a.recv().await, add_peer(b.id));
    assert_eq!(b.recv().await, add_peer(a.id));
    a.send(relay(b.id, &raw(b"hi"))).await;
    assert_eq!(b.recv().await, relay(a.id, &raw(b"hi")));
    let (status, body) = http_get(admin, "/stats").await;
    assert_eq!(status, 200);
    assert!(body.contains("\"peers\":2"), "{body}");
    assert_eq!(
        http_get(addr, "/stats").await.0,
        404,
        "not on the game port"
    );
    assert_eq!(http_get(admin, "/readyz").await.0, 200);

    p.signal("TERM");
    assert_eq!(a.closed().await.code, CloseCode::GOING_AWAY);
    assert_eq!(
        tokio::task::block_in_place(|| p.wait(Duration::from_secs(10))),
        Some(0)
    );
    // Nothing else was printed on stdout.
    let mut rest = String::new();
    p.stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "");
}

#[test]
fn sigint_exits_zero_and_every_listener_is_announced() {
    let mut p = Proc::spawn(&["--listen", "127.0.0.1:0", "--listen", "127.0.0.1:0"]);
    let a = p.listening();
    let b = p.listening();
    assert_ne!(a.port(), b.port());
    p.admin();
    p.signal("INT");
    assert_eq!(p.wait(Duration::from_secs(10)), Some(0));
}

#[test]
fn json_logs_go_to_stderr() {
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.starts_with("listening on 127.0.0.1:"), "{line:?}");
    let mut p = Proc { child, stdout: out };
    p.signal("TERM");
    assert_eq!(p.wait(Duration::from_secs(10)), Some(0));
    let mut err = String::new();
    p.child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let first = err.lines().next().expect("a log line");
    let v: serde_json::Value = serde_json::from_str(first).expect("JSON log line");
    assert!(v.get("level").is_some(), "{first}");
}

#[test]
fn bad_arguments_exit_2_with_one_line() {
    for args in [
        &["--bogus"][..],
        &["--listen", "nowhere"],
        &["--tls-cert", "c.pem"],
        &[
            "--tls-cert",
            "/nonexistent/c.pem",
            "--tls-key",
            "/nonexistent/k.pem",
        ],
    ] {
        let out = Command::new(BIN)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
        let err = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
        assert_eq!(lines.len(), 1, "{args:?}: {err}");
    }
}
