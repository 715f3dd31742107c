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
        Proc::spawn_with(args, &[], Stdio::null())
    }

    /// With environment variables and a chosen stderr.
    fn spawn_with(args: &[&str], env: &[(&str, &str)], stderr: Stdio) -> Proc {
        let mut child = Command::new(BIN)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
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

fn run_with(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run")
}

fn tmp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("wsmp-relay-bin-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `WSMP_RELAY_*` and `--config` feed the program; `--listen` from the
/// environment moves the admin port to any free port (design/CLI.md).
#[test]
fn environment_and_config_file() {
    let dir = tmp_dir("cfg");
    let cfg = dir.join("relay.toml");
    std::fs::write(
        &cfg,
        "listen = [\"127.0.0.1:0\", \"127.0.0.1:0\"]\nroom-max-peers = 3\n",
    )
    .unwrap();
    let mut p = Proc::spawn_with(
        &[],
        &[("WSMP_RELAY_CONFIG", cfg.to_str().unwrap())],
        Stdio::null(),
    );
    let a = p.listening();
    let b = p.listening();
    assert_ne!(a.port(), b.port(), "two listeners from the file");
    let admin = p.admin();
    assert_ne!(
        admin.port(),
        9081,
        "admin on any free port when --listen is given"
    );
    p.signal("TERM");
    assert_eq!(p.wait(Duration::from_secs(10)), Some(0));

    // Env over file.
    let mut p = Proc::spawn_with(
        &["--config", cfg.to_str().unwrap()],
        &[
            ("WSMP_RELAY_LISTEN", "127.0.0.1:0"),
            ("WSMP_RELAY_ADMIN_LISTEN", "off"),
        ],
        Stdio::null(),
    );
    p.listening();
    p.signal("TERM");
    assert_eq!(p.wait(Duration::from_secs(10)), Some(0));
    let mut rest = String::new();
    p.stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "", "one listener from env, no admin line");

    // Bad values: one line, exit 2, naming the source.
    let out = run_with(&[], &[("WSMP_RELAY_ROOM_MAX_PEERS", "lots")]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: WSMP_RELAY_ROOM_MAX_PEERS: "),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(out.stdout.is_empty());
    std::fs::write(&cfg, "room-max-peers = \"lots\"\n").unwrap();
    let out = run_with(&["--config", cfg.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("room-max-peers"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn print_config_prints_toml_without_secrets() {
    let out = run_with(
        &["--print-config", "--room-max-peers", "5"],
        &[
            ("WSMP_RELAY_AUTH_TOKEN", "hunter2"),
            ("WSMP_RELAY_LISTEN", "127.0.0.1:0"),
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("room-max-peers = 5"), "{text}");
    assert!(text.contains("listen = [\"127.0.0.1:0\"]"), "{text}");
    assert!(text.contains("admin-listen = \"127.0.0.1:0\""), "{text}");
    assert!(text.contains("auth-token = (set, redacted)"), "{text}");
}

/// SIGHUP reloads the certificate: a new client sees the new one, a client
/// connected before stays connected; a bad pair is refused and logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate() {
    use wsmp_tokio::{ClientOptions, Config, TlsClientOptions};
    let dir = tmp_dir("tls");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let first = wsmp_tls::testing::TestCerts::generate();
    let second = wsmp_tls::testing::TestCerts::generate();
    std::fs::write(&cert, &first.server_chain_pem).unwrap();
    std::fs::write(&key, &first.server_key_pem).unwrap();
    let log = dir.join("stderr.log");
    let mut p = Proc::spawn_with(
        &[
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        &[],
        Stdio::from(std::fs::File::create(&log).unwrap()),
    );
    let addr = p.listening();
    let url = format!("wss://{addr}/");
    let trusting = |ca: &str| ClientOptions {
        config: Config::default(),
        tls: Some(
            TlsClientOptions::client()
                .with_trusted_ca_pem(ca.as_bytes())
                .unwrap(),
        ),
        ..Default::default()
    };
    let mut old = Client::join_with(&url, trusting(&first.ca_pem)).await;
    assert!(connect_ws(&url, trusting(&second.ca_pem)).await.is_err());

    std::fs::write(&cert, &second.server_chain_pem).unwrap();
    std::fs::write(&key, &second.server_key_pem).unwrap();
    p.signal("HUP");
    // The reload is asynchronous: poll (bounded) until a new client gets the new pair.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut new = loop {
        if let Ok(ws) = connect_ws(&url, trusting(&second.ca_pem)).await {
            break ws;
        }
        assert!(
            Instant::now() < deadline,
            "new certificate not served after SIGHUP"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut new_id = [0u8; 4];
    match new.recv().await {
        Some(wsmp_tokio::Message::Binary(b)) => new_id.copy_from_slice(&b[..4]),
        other => panic!("id message expected, got {other:?}"),
    }
    let new_id = i32::from_le_bytes(new_id);
    // The old connection is still relayed.
    assert_eq!(old.recv().await, add_peer(new_id));
    old.send(relay(old.id, &raw(b"still"))).await;
    assert_eq!(old.recv().await, relay(old.id, &raw(b"still")));

    // A bad pair: refused, logged, the second pair still served.
    let third = wsmp_tls::testing::TestCerts::generate();
    std::fs::write(&cert, &third.server_chain_pem).unwrap();
    p.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log)
        .unwrap()
        .contains("reload refused")
    {
        assert!(
            Instant::now() < deadline,
            "no log line for the refused reload"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _probe = Client::join_with(&url, trusting(&second.ca_pem)).await;
    assert_eq!(old.recv().await[..2], [0x07, 0x01], "ADD_PEER of the probe");
    assert!(connect_ws(&url, trusting(&third.ca_pem)).await.is_err());
    old.send(relay(old.id, &raw(b"again"))).await;
    assert_eq!(old.recv().await, relay(old.id, &raw(b"again")));

    p.signal("TERM");
    assert_eq!(
        tokio::task::block_in_place(|| p.wait(Duration::from_secs(10))),
        Some(0)
    );
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(logs.contains("TLS certificate reloaded"), "{logs}");
    let _ = std::fs::remove_dir_all(&dir);
}
