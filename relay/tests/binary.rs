//! The `wsmp-relay` program from the outside (design/CLI.md): stdout lines,
//! exit codes, signals.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use wsmp_tokio::CloseCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
/// `--drain-timeout 0`: SIGTERM closes every peer at once.
async fn sigterm_with_drain_timeout_zero_closes_at_once() {
    let mut p = Proc::spawn(&["--listen", "127.0.0.1:0", "--drain-timeout", "0"]);
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
    let t0 = Instant::now();
    assert_eq!(a.closed().await.code, CloseCode::GOING_AWAY);
    assert_eq!(b.closed().await.code, CloseCode::GOING_AWAY);
    assert!(t0.elapsed() < Duration::from_secs(3), "no drain with 0");
    assert_eq!(
        tokio::task::block_in_place(|| p.wait(Duration::from_secs(10))),
        Some(0)
    );
    // Nothing else was printed on stdout.
    let mut rest = String::new();
    p.stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "");
}

/// Reads the log file written so far.
fn log_text(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The drain (issue 12): SIGTERM turns `/readyz` to 503 and refuses new
/// upgrades with 503 + `Retry-After`, while running rooms keep relaying;
/// after `--drain-timeout` every peer gets 1001 and the relay exits 0,
/// logging how many peers were still connected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_running_rooms_then_closes_1001() {
    let dir = tmp_dir("drain");
    let log = dir.join("stderr.log");
    let mut p = Proc::spawn_with(
        &["--listen", "127.0.0.1:0", "--drain-timeout", "2"],
        &[],
        Stdio::from(std::fs::File::create(&log).unwrap()),
    );
    let addr = p.listening();
    let admin = p.admin();
    let url = format!("ws://{addr}/room/match");
    let mut a = Client::join(&url).await;
    let mut b = Client::join(&url).await;
    assert_eq!(a.recv().await, add_peer(b.id));
    assert_eq!(b.recv().await, add_peer(a.id));
    assert_eq!(http_get(admin, "/readyz").await.0, 200);
    assert_eq!(
        sample(&scrape(admin).await, "wsmp_relay_draining", &[]),
        0.0
    );
    // A third peer that reads nothing (kept open).
    let early = raw_upgrade(addr, b"", "/room/match", &[]).await;
    assert_eq!(early.status(), 101);
    assert_eq!(a.recv().await[..2], [0x07, 0x01]);
    assert_eq!(b.recv().await[..2], [0x07, 0x01]);

    p.signal("TERM");
    let t0 = Instant::now();
    eventually("/readyz turns 503", || async {
        http_get(admin, "/readyz").await.0 == 503
    })
    .await;
    let m = scrape(admin).await;
    assert_eq!(sample(&m, "wsmp_relay_draining", &[]), 1.0);
    let refused = raw_upgrade(addr, b"", "/room/match", &[]).await;
    assert_eq!(refused.status(), 503, "{}", refused.head);
    assert!(refused.header("Retry-After").is_some(), "{}", refused.head);
    // The room goes on: packets are relayed both ways across the drain.
    for i in 0..4 {
        let text = format!("during the drain {i}");
        a.send(relay(b.id, &raw(text.as_bytes()))).await;
        assert_eq!(b.recv().await, relay(a.id, &raw(text.as_bytes())));
        b.send(relay(a.id, &raw(text.as_bytes()))).await;
        assert_eq!(a.recv().await, relay(b.id, &raw(text.as_bytes())));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Then every peer gets 1001, once the drain timeout ran out.
    assert_eq!(a.closed().await.code, CloseCode::GOING_AWAY);
    assert_eq!(b.closed().await.code, CloseCode::GOING_AWAY);
    let held = t0.elapsed();
    assert!(held >= Duration::from_millis(1500), "drained for {held:?}");
    assert_eq!(
        tokio::task::block_in_place(|| p.wait(Duration::from_secs(10))),
        Some(0)
    );
    let logs = log_text(&log);
    assert!(logs.contains("draining"), "{logs}");
    // a, b and the raw connection accepted before the signal.
    assert!(logs.contains("peers=3"), "{logs}");
    assert!(logs.contains("drain timeout reached"), "{logs}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A second SIGTERM, or a SIGINT, ends a drain at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_ends_the_drain() {
    for second in ["TERM", "INT"] {
        let dir = tmp_dir(&format!("drain2-{second}"));
        let log = dir.join("stderr.log");
        let mut p = Proc::spawn_with(
            &["--listen", "127.0.0.1:0", "--drain-timeout", "60"],
            &[],
            Stdio::from(std::fs::File::create(&log).unwrap()),
        );
        let addr = p.listening();
        let admin = p.admin();
        let mut a = Client::join(&format!("ws://{addr}/")).await;
        p.signal("TERM");
        eventually("/readyz turns 503", || async {
            http_get(admin, "/readyz").await.0 == 503
        })
        .await;
        a.expect_nothing_pending().await;
        p.signal(second);
        // Well before the 60 s drain timeout.
        assert_eq!(a.closed().await.code, CloseCode::GOING_AWAY, "{second}");
        assert_eq!(
            tokio::task::block_in_place(|| p.wait(Duration::from_secs(10))),
            Some(0)
        );
        let logs = log_text(&log);
        assert!(logs.contains("drain ended early"), "{second}: {logs}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The drain ends as soon as the last peer left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_ends_when_the_last_peer_left() {
    let dir = tmp_dir("drain-empty");
    let log = dir.join("stderr.log");
    let mut p = Proc::spawn_with(
        &["--listen", "127.0.0.1:0", "--drain-timeout", "60"],
        &[],
        Stdio::from(std::fs::File::create(&log).unwrap()),
    );
    let addr = p.listening();
    let admin = p.admin();
    let a = Client::join(&format!("ws://{addr}/")).await;
    let mut b = Client::join(&format!("ws://{addr}/room/other")).await;
    p.signal("TERM");
    eventually("/readyz turns 503", || async {
        http_get(admin, "/readyz").await.0 == 503
    })
    .await;
    a.leave().await;
    b.expect_nothing_pending().await;
    assert!(p.child.try_wait().unwrap().is_none(), "one peer is left");
    b.leave().await;
    assert_eq!(
        tokio::task::block_in_place(|| p.wait(Duration::from_secs(10))),
        Some(0)
    );
    let logs = log_text(&log);
    assert!(logs.contains("every peer left"), "{logs}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// SIGINT alone stops at once (1001), without a drain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_closes_at_once() {
    let mut p = Proc::spawn(&["--listen", "127.0.0.1:0"]);
    let addr = p.listening();
    let mut a = Client::join(&format!("ws://{addr}/")).await;
    p.signal("INT");
    assert_eq!(a.closed().await.code, CloseCode::GOING_AWAY);
    assert_eq!(
        tokio::task::block_in_place(|| p.wait(Duration::from_secs(10))),
        Some(0)
    );
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

    // Clients are still connected: SIGINT stops without a drain.
    p.signal("INT");
    assert_eq!(
        tokio::task::block_in_place(|| p.wait(Duration::from_secs(10))),
        Some(0)
    );
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(logs.contains("TLS certificate reloaded"), "{logs}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Precedence seen by clients: `room-max-peers` from the file, overridden
/// by the environment, overridden by the flag (flags > env > file).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flag_over_environment_over_file_seen_by_clients() {
    let dir = tmp_dir("precedence");
    let cfg = dir.join("relay.toml");
    std::fs::write(&cfg, "room-max-peers = 1\ndrain-timeout = 0\n").unwrap();
    let cfg = cfg.to_str().unwrap();
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], usize);
    let cases: [Case<'_>; 3] = [
        (&["--config", cfg, "--listen", "127.0.0.1:0"], &[], 1),
        (
            &["--config", cfg, "--listen", "127.0.0.1:0"],
            &[("WSMP_RELAY_ROOM_MAX_PEERS", "2")],
            2,
        ),
        (
            &[
                "--config",
                cfg,
                "--listen",
                "127.0.0.1:0",
                "--room-max-peers",
                "3",
            ],
            &[("WSMP_RELAY_ROOM_MAX_PEERS", "2")],
            3,
        ),
    ];
    for (args, env, room_max) in cases {
        let mut p = Proc::spawn_with(args, env, Stdio::null());
        let addr = p.listening();
        let url = format!("ws://{addr}/room/full");
        let mut members = Vec::new();
        for _ in 0..room_max {
            members.push(Client::join(&url).await);
        }
        let over = raw_upgrade(addr, b"", "/room/full", &[]).await;
        assert_eq!(
            over.status(),
            503,
            "room-max-peers {room_max}: {}",
            over.head
        );
        p.signal("TERM");
        assert_eq!(
            tokio::task::block_in_place(|| p.wait(Duration::from_secs(10))),
            Some(0),
            "drain-timeout 0 from the file"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
