//! Test clients that speak exactly the bytes a Godot 4 client sends and
//! expects, built from spec/scene-multiplayer.md §2 and §7 (not from the
//! relay's own code), and an in-process relay on 127.0.0.1, port 0.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wsmp_relay::server::Server;
use wsmp_tokio::{connect, ClientOptions, CloseInfo, Message, WebSocket};

/// How long any single wait may take.
pub const WAIT: Duration = Duration::from_secs(5);

/// A relay running in this process.
pub struct Relay {
    pub addr: SocketAddr,
    /// The admin listener (`/metrics`, `/stats`, …), unless `--admin-listen off`.
    pub admin: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Relay {
    /// Starts a relay with `--listen 127.0.0.1:0` and `extra` flags.
    pub fn start(extra: &[&str]) -> Relay {
        let argv = ["wsmp-relay", "--listen", "127.0.0.1:0"]
            .into_iter()
            .chain(extra.iter().copied());
        let args = wsmp_relay::cli::try_parse_from(argv).expect("valid flags");
        let mut server = Server::bind(&args).expect("relay starts");
        let addr = server.local_addrs()[0];
        let admin = args
            .admin_addr()
            .map(|a| server.start_admin(a).expect("admin listener starts"));
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run_until(async move {
            let _ = rx.await;
        }));
        Relay {
            addr,
            admin,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// Stops it gracefully and waits.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .expect("relay stops in time")
                .expect("relay task ok");
        }
    }

    /// `GET path` over plain HTTP/1.1 on the game port: (status, body).
    pub async fn http_get(&self, path: &str) -> (u16, String) {
        http_get(self.addr, path).await
    }

    /// `GET path` on the admin listener: (status, body).
    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        http_get(self.admin.expect("admin listener on"), path).await
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// Plain HTTP GET over a TcpStream: (status, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("tcp");
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.expect("write");
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.expect("read");
        let text = String::from_utf8_lossy(&buf).into_owned();
        let status: u16 = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status line");
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    };
    tokio::time::timeout(WAIT, fut).await.expect("http in time")
}

// ---- the engine's bytes (spec/scene-multiplayer.md §2, §7) ----------------

fn sys(sub: u8, id: i32) -> Vec<u8> {
    let mut v = vec![0x07, sub];
    v.extend_from_slice(&id.to_le_bytes());
    v
}

/// `07 01 <id>`.
pub fn add_peer(id: i32) -> Vec<u8> {
    sys(1, id)
}

/// `07 02 <id>`.
pub fn del_peer(id: i32) -> Vec<u8> {
    sys(2, id)
}

/// `07 03 <target> <inner>` (client → server) or `07 03 <source> <inner>` (server → client).
pub fn relay(id: i32, inner: &[u8]) -> Vec<u8> {
    let mut v = sys(3, id);
    v.extend_from_slice(inner);
    v
}

/// `07 00 <data>`; empty data = auth completion `07 00`.
pub fn auth(data: &[u8]) -> Vec<u8> {
    let mut v = vec![0x07, 0x00];
    v.extend_from_slice(data);
    v
}

/// RAW packet (`send_bytes`): `03 <bytes>`.
pub fn raw(data: &[u8]) -> Vec<u8> {
    let mut v = vec![0x03];
    v.extend_from_slice(data);
    v
}

/// A connected game client.
pub struct Client {
    pub ws: WebSocket,
    /// The id from the 4-byte id message.
    pub id: i32,
}

/// Opens the WebSocket only (no id read yet).
pub async fn connect_ws(url: &str, options: ClientOptions) -> Result<WebSocket, wsmp_tokio::Error> {
    tokio::time::timeout(WAIT, connect(url, options))
        .await
        .expect("connect in time")
}

impl Client {
    /// Connects and reads the id message (spec/websocket-peer.md §3.7).
    pub async fn join(url: &str) -> Client {
        Client::join_with(url, ClientOptions::default()).await
    }

    pub async fn join_with(url: &str, options: ClientOptions) -> Client {
        let ws = connect_ws(url, options).await.expect("upgrade accepted");
        let mut c = Client { ws, id: 0 };
        let first = c.recv().await;
        assert_eq!(
            first.len(),
            4,
            "first message is the 4-byte id: {first:02x?}"
        );
        c.id = i32::from_le_bytes([first[0], first[1], first[2], first[3]]);
        assert!(c.id >= 2, "client ids are ≥ 2");
        c
    }

    /// The next message (must be binary), within [`WAIT`].
    pub async fn recv(&mut self) -> Vec<u8> {
        match tokio::time::timeout(WAIT, self.ws.recv()).await {
            Ok(Some(Message::Binary(b))) => b.to_vec(),
            Ok(Some(Message::Text(t))) => panic!("unexpected text message {t:?}"),
            Ok(None) => panic!("connection closed: {:?}", self.ws.close_info()),
            Err(_) => panic!("nothing received within {WAIT:?}"),
        }
    }

    pub async fn send(&mut self, bytes: Vec<u8>) {
        self.ws
            .send(Message::Binary(Bytes::from(bytes)))
            .await
            .expect("send");
    }

    /// Proves nothing else is queued for this client: it relays a marker to
    /// itself (target = own id, echoed per spec §4.2) and the next message
    /// must be that marker.
    pub async fn expect_nothing_pending(&mut self) {
        let marker = raw(b"marker");
        self.send(relay(self.id, &marker)).await;
        assert_eq!(
            self.recv().await,
            relay(self.id, &marker),
            "nothing before the marker"
        );
    }

    /// Waits for the server to close; returns how it ended.
    pub async fn closed(&mut self) -> CloseInfo {
        loop {
            match tokio::time::timeout(WAIT, self.ws.recv()).await {
                Ok(Some(_)) => continue,
                Ok(None) => return self.ws.close_info().expect("close info"),
                Err(_) => panic!("not closed within {WAIT:?}"),
            }
        }
    }

    pub async fn leave(mut self) {
        let _ = self.ws.close(wsmp_tokio::CloseCode::NORMAL, "").await;
        let _ = tokio::time::timeout(WAIT, async { while self.ws.recv().await.is_some() {} }).await;
    }
}

// ---- the wsmp-relay program ----------------------------------------------

pub const BIN: &str = env!("CARGO_BIN_EXE_wsmp-relay");

pub struct Proc {
    pub child: Child,
    pub stdout: BufReader<std::process::ChildStdout>,
}

impl Proc {
    pub fn spawn(args: &[&str]) -> Proc {
        Proc::spawn_with(args, &[], Stdio::null())
    }

    /// With environment variables and a chosen stderr.
    pub fn spawn_with(args: &[&str], env: &[(&str, &str)], stderr: Stdio) -> Proc {
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
    pub fn listening(&mut self) -> std::net::SocketAddr {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("stdout line");
        let addr = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected stdout line {line:?}"))
            .trim_end_matches('\n');
        addr.parse().expect("HOST:PORT")
    }

    /// Reads the `admin listening on HOST:PORT` line.
    pub fn admin(&mut self) -> std::net::SocketAddr {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("stdout line");
        line.strip_prefix("admin listening on ")
            .unwrap_or_else(|| panic!("unexpected stdout line {line:?}"))
            .trim_end_matches('\n')
            .parse()
            .expect("HOST:PORT")
    }

    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill")
            .success();
        assert!(ok);
    }

    /// Waits (bounded) for the exit code.
    pub fn wait(&mut self, limit: Duration) -> Option<i32> {
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

// ---- raw HTTP upgrades (custom prefaces and headers) ------------------------

/// The upgrade request a WebSocket client sends (RFC 6455 §4.1), with
/// `extra` header lines.
pub fn upgrade_request(host: SocketAddr, path: &str, extra: &[&str]) -> String {
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    );
    for h in extra {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    req
}

/// A raw connection after its upgrade request: the response head (empty
/// when the server closed without answering) and the stream, kept open.
pub struct RawConn {
    pub stream: tokio::net::TcpStream,
    /// The response head up to the blank line; "" when closed unanswered.
    pub head: String,
}

impl RawConn {
    /// The status code; 0 when the server closed without an answer.
    pub fn status(&self) -> u16 {
        self.head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// A header's value in the response.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Connects to `addr`, writes `preface` then the upgrade request for
/// `path` with `extra` headers, and reads the response head (bounded).
pub async fn raw_upgrade(addr: SocketAddr, preface: &[u8], path: &str, extra: &[&str]) -> RawConn {
    let fut = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("tcp");
        let mut bytes = preface.to_vec();
        bytes.extend_from_slice(upgrade_request(addr, path, extra).as_bytes());
        // The server may close at once (a refused preface): ignore write errors.
        let _ = stream.write_all(&bytes).await;
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte).await {
                Ok(1) => head.push(byte[0]),
                _ => break,
            }
        }
        RawConn {
            stream,
            head: String::from_utf8_lossy(&head).into_owned(),
        }
    };
    tokio::time::timeout(WAIT, fut)
        .await
        .expect("answer in time")
}

/// A PROXY protocol v1 header naming `client` (haproxy proxy-protocol.txt §2.1).
pub fn proxy_v1(client: SocketAddr, server: SocketAddr) -> Vec<u8> {
    // Both addresses of one family (an IPv4 server is named IPv4-mapped for TCP6).
    let (family, server_ip) = match (client.ip(), server.ip()) {
        (std::net::IpAddr::V6(_), std::net::IpAddr::V4(v4)) => {
            ("TCP6", std::net::IpAddr::V6(v4.to_ipv6_mapped()))
        }
        (std::net::IpAddr::V6(_), ip) => ("TCP6", ip),
        (_, ip) => ("TCP4", ip),
    };
    format!(
        "PROXY {family} {} {} {} {}\r\n",
        client.ip(),
        server_ip,
        client.port(),
        server.port()
    )
    .into_bytes()
}

/// A PROXY protocol v2 header naming the IPv4 `client` (proxy-protocol.txt §2.2).
pub fn proxy_v2(client: std::net::SocketAddrV4, server: std::net::SocketAddrV4) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.push(0x21); // version 2, PROXY
    h.push(0x11); // TCP over IPv4
    h.extend_from_slice(&12u16.to_be_bytes());
    h.extend_from_slice(&client.ip().octets());
    h.extend_from_slice(&server.ip().octets());
    h.extend_from_slice(&client.port().to_be_bytes());
    h.extend_from_slice(&server.port().to_be_bytes());
    h
}

/// Client options adding `X-Forwarded-For: value` to the upgrade request.
pub fn forwarded_for(value: &str) -> ClientOptions {
    ClientOptions {
        config: wsmp_tokio::Config {
            handshake_headers: vec![format!("X-Forwarded-For: {value}")],
            ..wsmp_tokio::Config::default()
        },
        ..Default::default()
    }
}

/// Polls `f` every 20 ms until it returns true (panics after [`WAIT`]).
pub async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !f().await {
        assert!(Instant::now() < deadline, "not within {WAIT:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---- metrics -----------------------------------------------------------------

/// One sample of a scrape (panics when missing).
pub fn sample(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
        .unwrap_or_else(|| panic!("no sample {name} {labels:?}"))
}

/// `GET /metrics` on an admin listener, parsed with a Prometheus text parser.
pub async fn scrape(admin: SocketAddr) -> prometheus_parse::Scrape {
    let (status, body) = http_get(admin, "/metrics").await;
    assert_eq!(status, 200);
    prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).expect("parses")
}
