//! A real nginx (Debian package) in front of the `wsmp-relay` program
//! (issue 12, reverse proxies): `X-Forwarded-For` from an HTTP proxy and
//! PROXY protocol headers from a TCP (stream) proxy, with the per-IP limits
//! applied to the address they name, and untrusted headers ignored.
//!
//! `relay/tests/nginx/setup.sh` installs nginx when it is missing;
//! `nginx.sh` starts one per test on an ephemeral port of 127.0.0.1. When
//! nginx cannot be had the tests are skipped, except with `CI=true`, where
//! they fail.
//!
//! Every client runs on 127.0.0.1, so distinct client addresses come from
//! a hop before nginx: the test client plays an outer proxy, adding its own
//! `X-Forwarded-For` entry (nginx appends 127.0.0.1, a trusted hop) or
//! sending a PROXY header to nginx in `chain` mode (nginx trusts it from
//! 127.0.0.1 with `set_real_ip_from` and passes the address on).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;
use wsmp_tokio::{ClientOptions, Config, TlsClientOptions};

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/nginx")
}

/// Runs setup.sh once per test binary: `true` when nginx is ready, `false`
/// when the tests are to be skipped (not in CI); panics on an error.
fn nginx_ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        let out = Command::new("bash")
            .arg(scripts().join("setup.sh"))
            .stdin(Stdio::null())
            .output()
            .expect("run setup.sh");
        match out.status.code() {
            Some(0) => true,
            Some(3) if std::env::var("CI").as_deref() != Ok("true") => {
                eprintln!(
                    "nginx tests skipped: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                false
            }
            _ => panic!(
                "nginx setup failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    })
}

/// An nginx started by nginx.sh, stopped on drop.
struct Nginx {
    work: PathBuf,
    addr: std::net::SocketAddr,
}

impl Nginx {
    fn start(mode: &str, relay: std::net::SocketAddr, work: &Path) -> Nginx {
        let out = Command::new("bash")
            .arg(scripts().join("nginx.sh"))
            .args(["start", mode, &relay.port().to_string()])
            .arg(work)
            .stdin(Stdio::null())
            .output()
            .expect("run nginx.sh");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "nginx.sh start {mode}: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let addr = stdout
            .lines()
            .find_map(|l| l.strip_prefix("nginx listening on "))
            .expect("listening line")
            .parse()
            .expect("HOST:PORT");
        Nginx {
            work: work.to_path_buf(),
            addr,
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(scripts().join("nginx.sh"))
            .arg("stop")
            .arg(&self.work)
            .stdin(Stdio::null())
            .output();
    }
}

fn tmp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wsmp-relay-nginx-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The relay program with `args`, its log in `dir/relay.log`.
fn start_relay(dir: &Path, args: &[&str]) -> (Proc, std::net::SocketAddr, std::net::SocketAddr) {
    let log = std::fs::File::create(dir.join("relay.log")).unwrap();
    let mut all = vec!["--listen", "127.0.0.1:0", "--drain-timeout", "0"];
    all.extend_from_slice(args);
    let mut p = Proc::spawn_with(&all, &[], Stdio::from(log));
    let addr = p.listening();
    let admin = p.admin();
    (p, addr, admin)
}

/// Waits (bounded) until the relay's log contains `needle`.
async fn log_contains(dir: &Path, needle: &str) {
    let path = dir.join("relay.log");
    let deadline = Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if text.contains(needle) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "relay log has no {needle:?}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn stop(mut p: Proc) {
    p.signal("TERM");
    assert_eq!(p.wait(Duration::from_secs(10)), Some(0));
}

/// nginx as an HTTP reverse proxy (`proxy_add_x_forwarded_for`): with
/// `--trusted-proxy 127.0.0.1` the relay counts `--max-conns-per-ip` by the
/// client that the forwarded chain names and logs it; without trust the
/// header is ignored and every client is nginx's 127.0.0.1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_forwarded_for_through_nginx() {
    if !nginx_ready() {
        return;
    }
    let dir = tmp_dir("xff");
    let (p, _addr, admin) = start_relay(
        &dir,
        &["--trusted-proxy", "127.0.0.1", "--max-conns-per-ip", "1"],
    );
    let nginx = Nginx::start("xff", _addr, &dir.join("nginx"));
    let url = format!("ws://{}/room/xff", nginx.addr);
    let mut a = Client::join_with(&url, forwarded_for("198.51.100.1")).await;
    let mut b = Client::join_with(&url, forwarded_for("198.51.100.2")).await;
    assert_eq!(a.recv().await, add_peer(b.id));
    assert_eq!(b.recv().await, add_peer(a.id));
    a.send(relay_packet(b.id, b"through nginx")).await;
    assert_eq!(b.recv().await, relay_from(a.id, b"through nginx"));
    // 198.51.100.1 already has its one connection.
    let refused = raw_upgrade(
        nginx.addr,
        b"",
        "/room/xff",
        &["X-Forwarded-For: 198.51.100.1"],
    )
    .await;
    assert_eq!(refused.status(), 429, "{}", refused.head);
    log_contains(&dir, "client=198.51.100.1").await;
    log_contains(&dir, "too many connections from this address").await;
    let m = scrape(admin).await;
    assert_eq!(
        sample(
            &m,
            "wsmp_relay_refused_per_ip_total",
            &[("limit", "connections")]
        ),
        1.0
    );
    assert_eq!(sample(&m, "wsmp_relay_peers", &[]), 2.0);
    drop((a, b, nginx));
    stop(p);

    // 127.0.0.1 not trusted: the header is ignored, both are 127.0.0.1.
    let dir = tmp_dir("xff-untrusted");
    let (p, addr, _admin) = start_relay(
        &dir,
        &["--trusted-proxy", "10.0.0.0/8", "--max-conns-per-ip", "1"],
    );
    let nginx = Nginx::start("xff", addr, &dir.join("nginx"));
    let url = format!("ws://{}/", nginx.addr);
    let _a = Client::join_with(&url, forwarded_for("198.51.100.1")).await;
    let refused = raw_upgrade(nginx.addr, b"", "/", &["X-Forwarded-For: 198.51.100.2"]).await;
    assert_eq!(refused.status(), 429, "{}", refused.head);
    log_contains(&dir, "client=127.0.0.1").await;
    let text = std::fs::read_to_string(dir.join("relay.log")).unwrap();
    assert!(!text.contains("198.51.100."), "{text}");
    drop(nginx);
    stop(p);
    let _ = std::fs::remove_dir_all(tmp_dir("xff"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// nginx as a TCP (stream) proxy sending PROXY v1 headers: the relay reads
/// them before HTTP; a trusted address without a header is refused; the
/// per-IP limits (connections and unfinished handshakes) count the address
/// the header names (`chain` mode: a load balancer before nginx names it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_protocol_through_nginx() {
    if !nginx_ready() {
        return;
    }
    let dir = tmp_dir("proxy");
    let (p, addr, admin) = start_relay(
        &dir,
        &[
            "--trusted-proxy",
            "127.0.0.1",
            "--proxy-protocol",
            "--max-conns-per-ip",
            "1",
            "--max-pending-per-ip",
            "1",
        ],
    );
    let nginx = Nginx::start("proxy", addr, &dir.join("nginx"));
    let chain = Nginx::start("chain", addr, &dir.join("nginx-chain"));

    // Plain stream mode: nginx names the client, 127.0.0.1.
    let mut a = Client::join(&format!("ws://{}/room/pp", nginx.addr)).await;
    a.expect_nothing_pending().await;
    // Directly, from a trusted address without a header: closed unanswered.
    let direct = raw_upgrade(addr, b"", "/room/pp", &[]).await;
    assert_eq!(direct.status(), 0, "{}", direct.head);

    // Chain mode: the client address comes from the outer header.
    let via = |ip: &str, port: u16| proxy_v1(format!("{ip}:{port}").parse().unwrap(), chain.addr);
    let b = raw_upgrade(chain.addr, &via("198.51.100.1", 4000), "/room/pp", &[]).await;
    assert_eq!(b.status(), 101, "{}", b.head);
    let c = raw_upgrade(chain.addr, &via("198.51.100.2", 4000), "/room/pp", &[]).await;
    assert_eq!(c.status(), 101, "{}", c.head);
    assert_eq!(a.recv().await[..2], [0x07, 0x01], "ADD_PEER of b");
    assert_eq!(a.recv().await[..2], [0x07, 0x01], "ADD_PEER of c");
    let again = raw_upgrade(chain.addr, &via("198.51.100.1", 4001), "/room/pp", &[]).await;
    assert_eq!(again.status(), 429, "{}", again.head);
    log_contains(&dir, "client=198.51.100.1").await;

    // An unfinished handshake from 198.51.100.3 (header only) …
    let mut idle = tokio::net::TcpStream::connect(chain.addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut idle, &via("198.51.100.3", 5000))
        .await
        .unwrap();
    eventually("the idle handshake is pending", || async {
        sample(&scrape(admin).await, "wsmp_relay_pending_handshakes", &[]) == 1.0
    })
    .await;
    // … keeps a second one from 198.51.100.3 out, not one from 198.51.100.4.
    let second = raw_upgrade(chain.addr, &via("198.51.100.3", 5001), "/room/pp", &[]).await;
    assert_eq!(second.status(), 0, "{}", second.head);
    let other = raw_upgrade(chain.addr, &via("198.51.100.4", 5000), "/room/pp", &[]).await;
    assert_eq!(other.status(), 101, "{}", other.head);

    let m = scrape(admin).await;
    assert_eq!(
        sample(
            &m,
            "wsmp_relay_refused_per_ip_total",
            &[("limit", "connections")]
        ),
        1.0
    );
    assert_eq!(
        sample(
            &m,
            "wsmp_relay_refused_per_ip_total",
            &[("limit", "pending")]
        ),
        1.0
    );
    assert!(
        sample(
            &m,
            "wsmp_relay_handshakes_total",
            &[("outcome", "proxy_refused")]
        ) >= 1.0,
        "the direct connection"
    );
    drop((a, b, c, other, idle, nginx, chain));
    stop(p);
    let _ = std::fs::remove_dir_all(&dir);
}

/// PROXY header first, then TLS: a `wss://` client through nginx's stream
/// proxy joins a relay with `--tls-cert` and `--proxy-protocol`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_protocol_before_tls_through_nginx() {
    if !nginx_ready() {
        return;
    }
    let dir = tmp_dir("proxy-tls");
    let certs = wsmp_tls::testing::TestCerts::generate();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, &certs.server_chain_pem).unwrap();
    std::fs::write(&key, &certs.server_key_pem).unwrap();
    let (p, addr, _admin) = start_relay(
        &dir,
        &[
            "--trusted-proxy",
            "127.0.0.1",
            "--proxy-protocol",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let nginx = Nginx::start("proxy", addr, &dir.join("nginx"));
    let options = || ClientOptions {
        config: Config::default(),
        tls: Some(
            TlsClientOptions::client()
                .with_trusted_ca_pem(certs.ca_pem.as_bytes())
                .unwrap(),
        ),
        ..Default::default()
    };
    let url = format!("wss://{}/", nginx.addr);
    let mut a = Client::join_with(&url, options()).await;
    let mut b = Client::join_with(&url, options()).await;
    assert_eq!(a.recv().await, add_peer(b.id));
    b.recv().await;
    a.send(relay_packet(b.id, b"tls behind a PROXY header"))
        .await;
    assert_eq!(
        b.recv().await,
        relay_from(a.id, b"tls behind a PROXY header")
    );
    drop((a, b, nginx));
    stop(p);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `07 03 <target> 03 <text>`: a RAW packet relayed to `target`.
fn relay_packet(target: i32, text: &[u8]) -> Vec<u8> {
    relay(target, &raw(text))
}

/// What the target receives for [`relay_packet`] from `source`.
fn relay_from(source: i32, text: &[u8]) -> Vec<u8> {
    relay(source, &raw(text))
}
