//! The example programs driven from the outside, as CLI.md describes them.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use wsmp_std::{connect, ClientOptions, CloseCode, Config, MessageKind, TlsClientOptions};
use wsmp_tls::testing::TestCerts;

/// target/<profile>/examples/NAME (cargo test builds the examples first).
fn example(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?.parent()?.join("examples").join(name);
    dir.exists().then_some(dir)
}

struct Server {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Server {
    fn start(name: &str, args: &[&str]) -> Option<(Server, String)> {
        let Some(path) = example(name) else {
            eprintln!("example {name} not built; skipping");
            return None;
        };
        let mut child = Command::new(path)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("{line:?}"))
            .to_string();
        Some((Server { child, out }, addr))
    }

    /// Sends `signal`, expects exit 0, returns the rest of stdout.
    fn stop(mut self, signal: &str) -> String {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        let mut rest = String::new();
        self.out.read_to_string(&mut rest).unwrap();
        let status = self.child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "exit status after SIG{signal}");
        rest
    }
}

#[test]
fn mp_echo_and_mp_client() {
    let Some((server, addr)) = Server::start("mp_echo", &["--listen", "127.0.0.1:0"]) else {
        return;
    };
    let client = example("mp_client").unwrap();
    let out = Command::new(&client)
        .args([
            "--url",
            &format!("ws://{addr}"),
            "--send",
            "00ff10",
            "--count",
            "2",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
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
    // Expecting more than arrives: exit 1.
    let out = Command::new(&client)
        .args([
            "--url",
            &format!("ws://{addr}"),
            "--expect",
            "1",
            "--timeout",
            "0.5",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    // Bad arguments: exit 2, one line.
    let out = Command::new(&client).args(["--url"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
    let out = Command::new(&client)
        .args(["--url", "ws://127.0.0.1:9", "--count", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let rest = server.stop("TERM");
    assert!(rest.contains(&format!("peer_connected {id}\n")), "{rest}");
    assert!(
        rest.contains(&format!("packet from={id} len=3\n")),
        "{rest}"
    );
    assert!(
        rest.contains(&format!("peer_disconnected {id}\n")),
        "{rest}"
    );
}

#[test]
fn mp_client_cannot_connect_is_2() {
    let Some(client) = example("mp_client") else {
        return;
    };
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let out = Command::new(client)
        .args(["--url", &format!("ws://127.0.0.1:{port}"), "--timeout", "2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn echo_over_tls() {
    let certs = TestCerts::generate();
    let dir = std::env::temp_dir().join(format!("wsmp-std-echo-{}", std::process::id()));
    certs.write_to(&dir).unwrap();
    let cert = dir.join("server.pem");
    let key = dir.join("server.key");
    let Some((server, addr)) = Server::start(
        "echo",
        &[
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    ) else {
        return;
    };
    let port = addr.rsplit(':').next().unwrap();
    let mut ws = connect(
        &format!("wss://localhost:{port}/"),
        ClientOptions {
            tls: TlsClientOptions::client()
                .with_trusted_ca_pem(certs.ca_pem.as_bytes())
                .unwrap(),
            config: Config {
                inbound_buffer_size: 64 << 20,
                outbound_buffer_size: 64 << 20,
                ..Config::default()
            },
            read_timeout: Some(Duration::from_secs(10)),
            ..Default::default()
        },
    )
    .unwrap();
    ws.send_text("text ✓").unwrap();
    let m = ws.recv().unwrap();
    assert_eq!(
        (m.kind, &m.data[..]),
        (MessageKind::Text, "text ✓".as_bytes())
    );
    let big: Vec<u8> = (0..5_000_000u32).map(|i| (i % 253) as u8).collect();
    ws.send_binary(big.clone()).unwrap();
    let m = ws.recv().unwrap();
    assert_eq!(m.kind, MessageKind::Binary);
    assert!(m.data[..] == big[..]);
    let info = ws.close(CloseCode::NORMAL, "").unwrap();
    assert!(info.clean);
    server.stop("INT");
    let _ = std::fs::remove_dir_all(dir);
}

/// `--listen [::]:P --listen 0.0.0.0:P`: two listeners on one port, one per family (the
/// bind rule of every wsmp server, `wsmp_io::BindAddress`), each echoing.
#[test]
fn echo_listens_on_ipv6_and_ipv4_wildcards_of_one_port() {
    let port = {
        let l = wsmp_std::bind_listener("[::]:0".parse().unwrap()).unwrap();
        l.local_addr().unwrap().port()
    };
    let Some(path) = example("echo") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "example echo not built"
        );
        return;
    };
    let mut child = Command::new(path)
        .args([
            "--listen",
            &format!("[::]:{port}"),
            "--listen",
            &format!("0.0.0.0:{port}"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    for _ in 0..2 {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        lines.push(line.trim().to_string());
    }
    assert_eq!(
        lines,
        vec![
            format!("listening on [::]:{port}"),
            format!("listening on 0.0.0.0:{port}")
        ]
    );
    for url in [
        format!("ws://[::1]:{port}/"),
        format!("ws://127.0.0.1:{port}/"),
    ] {
        let mut ws = connect(&url, ClientOptions::default()).unwrap();
        ws.send_text(&url).unwrap();
        assert_eq!(&ws.recv().unwrap().data[..], url.as_bytes());
        ws.close(CloseCode::NORMAL, "").unwrap();
    }
    let server = Server { child, out };
    server.stop("TERM");
}
