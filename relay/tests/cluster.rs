//! Three `wsmp-relay --cluster` processes and one real `nats-server`
//! (Debian's, installed by relay/tests/cluster/setup.sh) on 127.0.0.1,
//! with emulated Godot clients (the bytes of spec/scene-multiplayer.md
//! §2/§7) spread over the nodes of one room. Without nats-server the tests
//! skip, except with CI=true, where they fail.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;
use wsmp_tokio::{ClientOptions, CloseCause, Error};

const BIN: &str = env!("CARGO_BIN_EXE_wsmp-relay");
/// `--cluster-peer-timeout` of the test nodes.
const PEER_TIMEOUT: Duration = Duration::from_secs(2);

/// The nats-server binary, installed if needed; `None` = skip (not in CI).
fn nats_binary() -> Option<PathBuf> {
    static NATS: OnceLock<Option<PathBuf>> = OnceLock::new();
    NATS.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cluster/setup.sh");
        let out = Command::new("bash")
            .arg(&script)
            .stderr(Stdio::inherit())
            .output()
            .expect("run setup.sh");
        match out.status.code() {
            Some(0) => Some(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())),
            Some(3) => {
                assert_ne!(
                    std::env::var("CI").as_deref(),
                    Ok("true"),
                    "nats-server is required in CI"
                );
                eprintln!("skipped: nats-server is not available");
                None
            }
            other => panic!("relay/tests/cluster/setup.sh failed: {other:?}"),
        }
    })
    .clone()
}

fn temp_dir(name: &str) -> PathBuf {
    // A counter, not a clock: the tests run in parallel, and two nats-servers
    // given one JetStream store directory make the second fail to start.
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("wsmp-cluster-{name}-{}-{n}", std::process::id(),));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A nats-server with JetStream on 127.0.0.1.
struct Nats {
    child: Child,
    port: u16,
    bin: PathBuf,
    dir: PathBuf,
}

impl Nats {
    fn start(bin: &Path, dir: &Path, port: Option<u16>) -> Nats {
        Nats::start_with(bin, dir, port, &[])
    }

    fn start_with(bin: &Path, dir: &Path, port: Option<u16>, extra: &[&str]) -> Nats {
        let port_arg = port.map_or("-1".to_string(), |p| p.to_string());
        let mut child = Command::new(bin)
            .args(extra)
            .args(["-a", "127.0.0.1", "-p", &port_arg, "-js", "-sd"])
            .arg(dir.join("js"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nats-server");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut port = None;
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("Listening for client connections on ").nth(1) {
                    port = rest
                        .trim()
                        .rsplit(':')
                        .next()
                        .and_then(|p| p.parse::<u16>().ok());
                }
                if line.contains("Server is ready") {
                    let _ = tx.send(port);
                }
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("nats-server ready in time")
            .expect("nats-server port");
        Nats {
            child,
            port,
            bin: bin.to_path_buf(),
            dir: dir.to_path_buf(),
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port (JetStream memory state is gone).
    fn restart(&mut self) {
        self.kill();
        *self = Nats::start(&self.bin.clone(), &self.dir.clone(), Some(self.port));
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One relay node (a `wsmp-relay --cluster` process).
struct Node {
    child: Child,
    addr: SocketAddr,
    admin: SocketAddr,
    log: PathBuf,
}

impl Node {
    fn start(nats: &Nats, dir: &Path, name: &str, extra: &[&str]) -> Node {
        let log = dir.join(format!("{name}.log"));
        let mut child = Command::new(BIN)
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(["--cluster", &nats.url(), "--node-name", name])
            .args([
                "--cluster-peer-timeout",
                &PEER_TIMEOUT.as_secs_f64().to_string(),
            ])
            .args(["--heartbeat-interval", "0", "--max-conns-per-ip", "100000"])
            .args(["--max-pending-per-ip", "100000"])
            .args(extra)
            .env("RUST_LOG", "info,async_nats=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn wsmp-relay");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let Some(addr) = line.trim_end().strip_prefix("listening on ") else {
            panic!(
                "node {name} did not start: {line:?}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        let addr = addr.parse().unwrap();
        line.clear();
        stdout.read_line(&mut line).unwrap();
        let admin = line
            .trim_end()
            .strip_prefix("admin listening on ")
            .unwrap()
            .parse()
            .unwrap();
        std::thread::spawn(move || for _ in stdout.lines() {});
        Node {
            child,
            addr,
            admin,
            log,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }

    async fn stats(&self) -> serde_json::Value {
        let (status, body) = http_get(self.admin, "/stats").await;
        assert_eq!(status, 200);
        serde_json::from_str(&body).unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// NATS and three nodes.
struct Cluster {
    nodes: Vec<Node>,
    nats: Nats,
    _dir: PathBuf,
}

impl Cluster {
    fn start(extra: &[&str]) -> Option<Cluster> {
        let bin = nats_binary()?;
        let dir = temp_dir("t");
        let nats = Nats::start(&bin, &dir, None);
        let nodes = (1..=3)
            .map(|i| Node::start(&nats, &dir, &format!("node{i}"), extra))
            .collect();
        Some(Cluster {
            nodes,
            nats,
            _dir: dir,
        })
    }

    fn logs(&self) -> String {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| format!("--- node{} ---\n{}", i + 1, n.log()))
            .collect()
    }
}

/// The next `n` messages of `c`, sorted (their order across senders is free).
async fn recv_sorted(c: &mut Client, n: usize) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(c.recv().await);
    }
    v.sort();
    v
}

fn sorted(mut v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    v.sort();
    v
}

/// Waits (bounded) for the next message and how long it took.
async fn recv_timed(c: &mut Client, limit: Duration) -> (Vec<u8>, Duration) {
    let start = Instant::now();
    match tokio::time::timeout(limit, c.ws.recv()).await {
        Ok(Some(wsmp_tokio::Message::Binary(b))) => (b.to_vec(), start.elapsed()),
        other => panic!("no message within {limit:?}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_span_nodes_join_relay_and_leave() {
    let Some(cl) = Cluster::start(&[]) else {
        return;
    };
    let path = "/room/span";
    let mut a = Client::join(&cl.nodes[0].url(path)).await;
    let mut b = Client::join(&cl.nodes[1].url(path)).await;
    // Peer ids are unique across the cluster: each node has its own range.
    assert_ne!(a.id >> 21, b.id >> 21, "ids {} and {}", a.id, b.id);
    assert_eq!(b.recv().await, add_peer(a.id), "{}", cl.logs());
    assert_eq!(a.recv().await, add_peer(b.id));
    let mut c = Client::join(&cl.nodes[2].url(path)).await;
    assert_eq!(
        recv_sorted(&mut c, 2).await,
        sorted(vec![add_peer(a.id), add_peer(b.id)])
    );
    assert_eq!(a.recv().await, add_peer(c.id));
    assert_eq!(b.recv().await, add_peer(c.id));
    // A second client on node 1: learns the remote ones, they learn it.
    let mut a2 = Client::join(&cl.nodes[0].url(path)).await;
    assert_eq!(
        recv_sorted(&mut a2, 3).await,
        sorted(vec![add_peer(a.id), add_peer(b.id), add_peer(c.id)])
    );
    for x in [&mut a, &mut b, &mut c] {
        assert_eq!(x.recv().await, add_peer(a2.id));
    }
    // RELAY to one peer on another node (spec/scene-multiplayer.md §4.2).
    a.send(relay(c.id, &raw(b"to-c"))).await;
    assert_eq!(c.recv().await, relay(a.id, &raw(b"to-c")));
    // To all: every other member, on every node, exactly once.
    b.send(relay(0, &raw(b"all"))).await;
    for x in [&mut a, &mut a2, &mut c] {
        assert_eq!(x.recv().await, relay(b.id, &raw(b"all")));
    }
    // To all but one (a remote one).
    c.send(relay(-a.id, &raw(b"not-a"))).await;
    for x in [&mut a2, &mut b] {
        assert_eq!(x.recv().await, relay(c.id, &raw(b"not-a")));
    }
    // Per-sender order across nodes: 50 packets from a to b, in order.
    for i in 0..50u32 {
        a.send(relay(b.id, &raw(&i.to_le_bytes()))).await;
    }
    for i in 0..50u32 {
        assert_eq!(b.recv().await, relay(a.id, &raw(&i.to_le_bytes())));
    }
    for x in [&mut a, &mut a2, &mut b, &mut c] {
        x.expect_nothing_pending().await;
    }
    // Figures: nodes seen and remote peers.
    let s = cl.nodes[0].stats().await;
    assert_eq!(s["cluster"]["nodes_seen"], 3, "{s}");
    assert_eq!(s["cluster"]["remote_peers"], 2, "{s}");
    assert_eq!(s["cluster"]["peers_lost"], 0, "{s}");
    let (status, metrics) = http_get(cl.nodes[1].admin, "/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics.contains("wsmp_relay_cluster_nodes 3"), "{metrics}");
    assert!(
        metrics.contains("wsmp_relay_cluster_remote_peers 3"),
        "{metrics}"
    );
    // Leave: DEL_PEER on every node.
    let (bid, cid) = (b.id, c.id);
    b.leave().await;
    for x in [&mut a, &mut a2, &mut c] {
        assert_eq!(x.recv().await, del_peer(bid));
    }
    c.leave().await;
    for x in [&mut a, &mut a2] {
        assert_eq!(x.recv().await, del_peer(cid));
    }
    // Other rooms never see this one.
    let mut other = Client::join(&cl.nodes[1].url("/room/other")).await;
    other.expect_nothing_pending().await;
    a.expect_nothing_pending().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_s_peers_are_gone_within_the_timeout() {
    let Some(mut cl) = Cluster::start(&[]) else {
        return;
    };
    let path = "/room/kill";
    let mut a = Client::join(&cl.nodes[0].url(path)).await;
    let mut b = Client::join(&cl.nodes[1].url(path)).await;
    assert_eq!(b.recv().await, add_peer(a.id));
    assert_eq!(a.recv().await, add_peer(b.id));
    let c = Client::join(&cl.nodes[2].url(path)).await;
    assert_eq!(a.recv().await, add_peer(c.id));
    assert_eq!(b.recv().await, add_peer(c.id));
    cl.nodes[2].kill9();
    let limit = PEER_TIMEOUT + Duration::from_millis(1500);
    for x in [&mut a, &mut b] {
        let (msg, took) = recv_timed(x, limit).await;
        assert_eq!(msg, del_peer(c.id));
        assert!(took <= limit, "DEL_PEER after {took:?}");
    }
    drop(c);
    // The survivors still relay to each other.
    a.send(relay(b.id, &raw(b"still"))).await;
    assert_eq!(b.recv().await, relay(a.id, &raw(b"still")));
    let s = cl.nodes[0].stats().await;
    assert_eq!(s["cluster"]["nodes_seen"], 2, "{s}");
    assert_eq!(s["cluster"]["peers_lost"], 1, "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_stopped_and_restarted_clients_are_told_and_recover() {
    let Some(mut cl) = Cluster::start(&[]) else {
        return;
    };
    let path = "/room/bus";
    let mut a = Client::join(&cl.nodes[0].url(path)).await;
    let mut b = Client::join(&cl.nodes[1].url(path)).await;
    assert_eq!(b.recv().await, add_peer(a.id));
    assert_eq!(a.recv().await, add_peer(b.id));
    cl.nats.kill();
    let limit = PEER_TIMEOUT + Duration::from_millis(1500);
    let (msg, took) = recv_timed(&mut a, limit).await;
    assert_eq!(msg, del_peer(b.id), "after {took:?}");
    let (msg, _) = recv_timed(&mut b, limit).await;
    assert_eq!(msg, del_peer(a.id));
    // While NATS is down the clients already in keep relaying locally, and
    // new joins are refused (the room limit cannot be checked): HTTP 503.
    assert_eq!(
        http_status(connect_ws(&cl.nodes[0].url("/room/other"), ClientOptions::default()).await),
        Some(503)
    );
    let started = Instant::now();
    cl.nats.restart();
    // Re-announced within 15 s of NATS being back.
    let limit = Duration::from_secs(15);
    let (msg, took) = recv_timed(&mut a, limit).await;
    assert_eq!(msg, add_peer(b.id), "{}", cl.logs());
    let (msg, _) = recv_timed(&mut b, limit).await;
    assert_eq!(msg, add_peer(a.id));
    eprintln!(
        "re-announced {took:?} after NATS restarted ({:?} in all)",
        started.elapsed()
    );
    a.send(relay(b.id, &raw(b"back"))).await;
    assert_eq!(b.recv().await, relay(a.id, &raw(b"back")));
    b.send(relay(0, &raw(b"all"))).await;
    assert_eq!(a.recv().await, relay(b.id, &raw(b"all")));
    let s = cl.nodes[0].stats().await;
    assert!(s["cluster"]["bus_reconnects"].as_u64().unwrap() >= 1, "{s}");
    assert_eq!(s["cluster"]["peers_lost"], 1, "{s}");
}

fn http_status(r: Result<wsmp_tokio::WebSocket, Error>) -> Option<u16> {
    match r {
        Ok(_) => None,
        Err(Error::Handshake(info)) => match info.cause {
            CloseCause::HttpResponse(status) => Some(status),
            CloseCause::Handshake(wsmp_core::handshake::HandshakeError::UnexpectedStatus(s)) => {
                Some(s)
            }
            other => panic!("unexpected handshake failure {other:?}"),
        },
        Err(e) => panic!("unexpected error {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_room_limit_holds_across_nodes_under_a_race() {
    const LIMIT: usize = 5;
    let Some(cl) = Cluster::start(&["--room-max-peers", "5"]) else {
        return;
    };
    // Every node's room exists before the race (so the race is on the slots).
    let path = "/room/race";
    let urls: Vec<String> = (0..30).map(|i| cl.nodes[i % 3].url(path)).collect();
    let attempts = urls.iter().map(|u| {
        let u = u.clone();
        tokio::spawn(async move { connect_ws(&u, ClientOptions::default()).await })
    });
    let mut admitted = Vec::new();
    let mut refused = 0;
    for t in attempts {
        match t.await.unwrap() {
            Ok(ws) => admitted.push(ws),
            r => {
                assert_eq!(http_status(r), Some(503));
                refused += 1;
            }
        }
    }
    assert_eq!(admitted.len(), LIMIT, "{}", cl.logs());
    assert_eq!(refused, 30 - LIMIT);
    // A slot freed on one node is usable from another.
    drop(admitted.pop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    // (From the node after the one whose client left.)
    let again = connect_ws(&cl.nodes[1].url(path), ClientOptions::default()).await;
    assert!(again.is_ok(), "the freed slot was not usable");
    assert_eq!(
        http_status(connect_ws(&cl.nodes[2].url(path), ClientOptions::default()).await),
        Some(503)
    );
}

#[test]
fn a_nats_server_whose_max_payload_is_too_small_is_refused_at_startup() {
    let Some(bin) = nats_binary() else { return };
    let dir = temp_dir("payload");
    let conf = dir.join("nats.conf");
    std::fs::write(&conf, "max_payload: 4096\n").unwrap();
    let nats = Nats::start_with(&bin, &dir, None, &["-c", conf.to_str().unwrap()]);
    let run = |extra: &[&str]| {
        let mut child = Command::new(BIN)
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "off"])
            .args(["--cluster", &nats.url()])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn wsmp-relay");
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        (first, String::from_utf8_lossy(&out.stderr).into_owned())
    };
    // Godot's default 64 KiB packets cannot cross this bus: refused, with
    // the reason and the way out.
    let (first, err) = run(&[]);
    assert_eq!(first, "", "{err}");
    assert!(err.contains("max_payload is 4096 bytes"), "{err}");
    assert!(err.contains("--inbound-buffer-size 65535"), "{err}");
    // Packets that fit: the node starts.
    let (first, err) = run(&["--inbound-buffer-size", "4000"]);
    assert!(first.starts_with("listening on "), "{first:?} {err}");
}
