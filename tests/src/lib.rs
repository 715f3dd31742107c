//! Test harness of `wsmp-tests`: interop peers (Python `websockets`, Node `ws`) run as
//! child processes, the scripted interop cases, and a small sans-IO driver of the core
//! [`Connection`] over a blocking socket (to observe pongs, which the adapters consume).
//!
//! See `tests/README.md` for what runs and how skipping works.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;
use wsmp_core::connection::{Connection, Event};
use wsmp_core::{Config, Timestamp};
use wsmp_tokio::{
    AcceptOptions, CloseCause, CloseCode, CloseInfo, Decision, Message, Request, ServerOptions,
};

/// Which foreign WebSocket implementation to talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// Python `websockets` (asyncio API), in a venv under `target/interop/py`.
    Python,
    /// Node `ws`, installed under `target/interop/node`.
    Node,
}

impl Peer {
    fn marker(self) -> &'static str {
        match self {
            Peer::Python => "py",
            Peer::Node => "node",
        }
    }
}

/// The workspace root (parent of this crate).
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

/// Where `tests/interop/setup.sh` installs the peers: `$WSMP_INTEROP_DIR` when set,
/// else `<workspace>/target/interop`.
pub fn interop_dir() -> PathBuf {
    match std::env::var_os("WSMP_INTEROP_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace_root().join("target").join("interop"),
    }
}

fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("interop")
}

/// Runs `tests/interop/setup.sh` once per test binary; returns its success.
fn run_setup() -> bool {
    static DONE: OnceLock<bool> = OnceLock::new();
    *DONE.get_or_init(|| {
        let status = Command::new("bash")
            .arg(scripts_dir().join("setup.sh"))
            .env("WSMP_INTEROP_DIR", interop_dir())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .status()
            .expect("cannot run tests/interop/setup.sh with bash");
        status.success()
    })
}

/// Makes `peer` ready. `Err(reason)` only when the setup script failed and left a
/// `<peer>.skip` marker saying why (registry unreachable, tool missing); a setup that
/// fails without saying why panics, so a broken setup is never a silent pass.
pub fn prepare(peer: Peer) -> Result<(), String> {
    let ok = run_setup();
    let dir = interop_dir();
    if dir.join(format!("{}.ok", peer.marker())).exists() {
        return Ok(());
    }
    let skip = dir.join(format!("{}.skip", peer.marker()));
    match std::fs::read_to_string(&skip) {
        Ok(reason) if !ok => Err(reason.trim().to_owned()),
        _ => panic!(
            "interop setup for {peer:?} neither succeeded nor left a skip reason (setup ok: {ok})"
        ),
    }
}

/// Prints `skipped: <reason>` to the real stderr (not the test harness's capture, so it
/// shows in a normal `cargo test` run).
pub fn report_skip(reason: &str) {
    let _ = writeln!(std::io::stderr(), "skipped: {reason}");
}

/// Returns from the calling test (which then passes) with a `skipped: <reason>` line
/// when the peer could not be installed.
#[macro_export]
macro_rules! require_peer {
    ($peer:expr) => {
        if let Err(reason) = $crate::prepare($peer) {
            $crate::report_skip(&reason);
            return;
        }
    };
}

fn peer_command(peer: Peer) -> Command {
    match peer {
        Peer::Python => {
            let mut c = Command::new(interop_dir().join("py").join("bin").join("python"));
            c.arg(scripts_dir().join("py_peer.py"));
            c
        }
        Peer::Node => {
            let mut c = Command::new("node");
            c.arg(scripts_dir().join("node_peer.js"));
            c.env(
                "WSMP_NODE_MODULES",
                interop_dir().join("node").join("node_modules"),
            );
            c
        }
    }
}

/// A running peer process whose stdout JSON lines are read on a thread.
#[derive(Debug)]
pub struct PeerProcess {
    child: Child,
    lines: mpsc::Receiver<Value>,
}

impl PeerProcess {
    fn spawn(mut cmd: Command) -> PeerProcess {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot start the interop peer");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|_| serde_json::json!({ "raw": line }));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        PeerProcess { child, lines }
    }

    /// Starts the peer's echo server (optionally supporting `protocols`); returns it and
    /// its port.
    pub fn server(peer: Peer, protocols: &str) -> (PeerProcess, u16) {
        PeerProcess::server_with(peer, protocols, false)
    }

    /// [`server`](Self::server), accepting permessage-deflate when `deflate` (Python's
    /// server always does; Node's `ws` only when asked).
    pub fn server_with(peer: Peer, protocols: &str, deflate: bool) -> (PeerProcess, u16) {
        let mut cmd = peer_command(peer);
        cmd.arg("server");
        if !protocols.is_empty() {
            cmd.args(["--protocols", protocols]);
        }
        if deflate && peer == Peer::Node {
            cmd.args(["--deflate", "1"]);
        }
        let mut p = PeerProcess::spawn(cmd);
        let ev = p.expect_event("listening", Duration::from_secs(20));
        let port = ev["port"].as_u64().expect("port in listening event");
        (p, u16::try_from(port).expect("port fits u16"))
    }

    /// The next JSON line, waiting at most `timeout`.
    pub fn next(&mut self, timeout: Duration) -> Option<Value> {
        self.lines.recv_timeout(timeout).ok()
    }

    /// Waits for `{"event": name}`, skipping other events; panics on an error line,
    /// on a timeout or when the process ends first.
    pub fn expect_event(&mut self, name: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self
                .next(left)
                .unwrap_or_else(|| panic!("peer: no {name:?} event within {timeout:?}"));
            assert!(v.get("error").is_none(), "peer reported an error: {v}");
            if v["event"] == name {
                return v;
            }
        }
    }

    /// All remaining lines until the process exits (bounded by `timeout`), and whether
    /// it exited successfully.
    pub fn finish(mut self, timeout: Duration) -> (Vec<Value>, bool) {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) => out.push(v),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("peer did not finish within {timeout:?}; output so far: {out:?}")
                }
            }
        }
        let ok = self.child.wait().map(|s| s.success()).unwrap_or(false);
        (out, ok)
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        // Only this child, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the peer's scripted client and returns its JSON lines (panics if it fails).
pub fn run_client(
    peer: Peer,
    url: &str,
    protocols: &str,
    headers: &[&str],
    steps: &str,
) -> Vec<Value> {
    let mut cmd = peer_command(peer);
    cmd.args(["client", "--url", url, "--steps", steps]);
    if !protocols.is_empty() {
        cmd.args(["--protocols", protocols]);
    }
    for h in headers {
        cmd.args(["--header", h]);
    }
    let (lines, ok) = PeerProcess::spawn(cmd).finish(Duration::from_secs(60));
    assert!(ok, "{peer:?} client failed: {lines:?}");
    lines
}

/// The text message of every case.
pub const TEXT: &str = "hello interop \u{2713}";

/// The 1 MiB message of the `Big` case (same pattern as the peers).
pub fn big_message() -> Vec<u8> {
    (0..1usize << 20)
        .map(|i| ((i * 7 + 3) % 251) as u8)
        .collect()
}

/// Limits that allow the 1 MiB message both ways.
pub fn big_config() -> Config {
    Config {
        inbound_buffer_size: 4 << 20,
        outbound_buffer_size: 4 << 20,
        ..Config::default()
    }
}

/// One interop case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    /// A text message echoed.
    Text,
    /// A 256-byte binary message echoed.
    Binary,
    /// A 1 MiB binary message echoed.
    Big,
    /// The client pings; the pong is seen.
    Ping,
    /// The client closes with this code and reason; the server echoes the code.
    CloseByClient(u16, &'static str),
    /// The server closes with this code and reason; the client echoes the code.
    CloseByServer(u16, &'static str),
    /// Client offers `a,b`, server supports `b`: `b` is selected.
    Subprotocol,
    /// Extra request headers reach the server.
    Headers,
    /// permessage-deflate negotiated (RFC 7692): compressible text and binary
    /// messages, three of each, echoed; both sides compressed every one of them.
    Compressed,
}

/// The compressible text message of the `Compressed` case (as in the peers).
pub fn deflate_text() -> String {
    (0..100)
        .map(|i| {
            format!(
                "{{\"id\":{i},\"name\":\"player{i}\",\"x\":{},\"y\":{}}},",
                i * 37 % 1000,
                i * 91 % 1000
            )
        })
        .collect()
}

/// The compressible binary message of the `Compressed` case (as in the peers).
pub fn deflate_binary() -> Vec<u8> {
    (0..100_000usize).map(|i| ((i / 16) % 7) as u8).collect()
}

/// Our configuration for the `Compressed` case: permessage-deflate with the defaults.
fn deflate_config(mut config: Config) -> Config {
    config.permessage_deflate = Some(wsmp_core::DeflateConfig::default());
    config
}

// ----- our client ↔ their server ------------------------------------------------

/// Our tokio client against the peer's echo server.
pub async fn our_client(peer: Peer, case: Case) {
    let protocols = if case == Case::Subprotocol { "b" } else { "" };
    let (mut server, port) = PeerProcess::server_with(peer, protocols, case == Case::Compressed);
    let url = format!("ws://127.0.0.1:{port}/game?x=1");
    let mut config = big_config();
    if case == Case::Subprotocol {
        config.supported_protocols = vec!["a".into(), "b".into()];
    }
    if case == Case::Headers {
        config.handshake_headers = vec!["X-Token: abc".into()];
    }
    if case == Case::Compressed {
        config = deflate_config(config);
    }
    let options = wsmp_tokio::ClientOptions {
        config: config.clone(),
        ..Default::default()
    };
    let mut ws = wsmp_tokio::connect(&url, options)
        .await
        .expect("connect to the peer");
    let request = server.expect_event("request", Duration::from_secs(10));
    assert_eq!(request["path"], "/game?x=1");
    // spec/websocket-peer.md §2.5: no Origin, User-Agent or Sec-WebSocket-Extensions
    // (unless permessage-deflate is configured).
    for absent in ["origin", "user-agent", "sec-websocket-extensions"] {
        if case == Case::Compressed && absent == "sec-websocket-extensions" {
            continue;
        }
        assert!(
            request["headers"].get(absent).is_none(),
            "{absent} sent: {request}"
        );
    }
    let timeout = Duration::from_secs(30);
    match case {
        Case::Text => {
            ws.send(TEXT).await.expect("send");
            assert_eq!(
                recv(&mut ws, timeout).await,
                Some(Message::Text(TEXT.into()))
            );
        }
        Case::Binary | Case::Big => {
            let data: Vec<u8> = if case == Case::Big {
                big_message()
            } else {
                (0..=255).collect()
            };
            ws.send(data.clone()).await.expect("send");
            assert_eq!(
                recv(&mut ws, timeout).await,
                Some(Message::Binary(Bytes::from(data)))
            );
        }
        Case::Ping => {
            ws.ping(b"hi").await.expect("ping");
            // The adapter consumes pongs; the echo after the ping shows the link is fine.
            ws.send("after ping").await.expect("send");
            assert_eq!(
                recv(&mut ws, timeout).await,
                Some(Message::Text("after ping".into()))
            );
            if peer == Peer::Node {
                let ev = server.expect_event("ping", Duration::from_secs(10));
                assert_eq!(ev["data"], "hi");
            }
            // The pong itself, seen through the core connection driven directly (on a
            // server of its own, so the close events below stay in order).
            let (mut other, other_port) = PeerProcess::server(peer, "");
            let pong = tokio::task::spawn_blocking(move || {
                let url = format!("ws://127.0.0.1:{other_port}/");
                let mut c = CoreClient::connect(&url, Config::default());
                c.ping(b"hi");
                c.wait_pong(Duration::from_secs(10))
            })
            .await
            .expect("core client");
            assert_eq!(pong.as_deref(), Some(&b"hi"[..]));
            let _ = other.expect_event("request", Duration::from_secs(10));
        }
        Case::CloseByClient(code, reason) => {
            let info = tokio::time::timeout(timeout, ws.close(CloseCode(code), reason))
                .await
                .expect("close timed out")
                .expect("close")
                .expect("close info");
            assert_closed(&info, code, CloseCause::LocalClose);
            let ev = server.expect_event("closed", Duration::from_secs(10));
            assert_eq!(
                (ev["code"].as_u64(), ev["reason"].as_str()),
                (Some(code.into()), Some(reason))
            );
            return;
        }
        Case::CloseByServer(code, reason) => {
            ws.send(format!("close:{code}:{reason}"))
                .await
                .expect("send");
            assert_eq!(recv(&mut ws, timeout).await, None);
            let info = ws.close_info().expect("close info");
            assert_closed(&info, code, CloseCause::RemoteClose);
            assert_eq!(info.reason, reason);
            let ev = server.expect_event("closed", Duration::from_secs(10));
            assert_eq!(
                ev["code"].as_u64(),
                Some(code.into()),
                "our echo of the close code"
            );
            return;
        }
        Case::Subprotocol => {
            assert_eq!(ws.protocol().as_deref(), Some("b"));
            assert_eq!(request["protocol"], "b");
            assert_eq!(request["headers"]["sec-websocket-protocol"], "a,b");
        }
        Case::Headers => {
            assert_eq!(request["headers"]["x-token"], "abc");
        }
        Case::Compressed => {
            let offer = request["headers"]["sec-websocket-extensions"]
                .as_str()
                .unwrap_or_default();
            assert!(offer.starts_with("permessage-deflate"), "{request}");
            let answer = request["extensions"].as_str().unwrap_or_default();
            assert!(answer.starts_with("permessage-deflate"), "{request}");
            assert!(ws.permessage_deflate().is_some(), "answer {answer}");
            for _ in 0..3 {
                ws.send(deflate_text()).await.expect("send");
                assert_eq!(
                    recv(&mut ws, timeout).await,
                    Some(Message::Text(deflate_text()))
                );
                ws.send(deflate_binary()).await.expect("send");
                assert_eq!(
                    recv(&mut ws, timeout).await,
                    Some(Message::Binary(Bytes::from(deflate_binary())))
                );
            }
            assert_eq!(ws.compressed_messages(), (6, 6), "answer {answer}");
        }
    }
    // Every case ends with a clean 1000 close started by us.
    let info = tokio::time::timeout(timeout, ws.close(CloseCode::NORMAL, "done"))
        .await
        .expect("close timed out")
        .expect("close")
        .expect("close info");
    assert_closed(&info, 1000, CloseCause::LocalClose);
    let ev = server.expect_event("closed", Duration::from_secs(10));
    assert_eq!(ev["code"].as_u64(), Some(1000));
}

async fn recv(ws: &mut wsmp_tokio::WebSocket, timeout: Duration) -> Option<Message> {
    tokio::time::timeout(timeout, ws.recv())
        .await
        .expect("recv timed out")
}

fn assert_closed(info: &CloseInfo, code: u16, cause: CloseCause) {
    assert_eq!(info.code, CloseCode(code), "{info:?}");
    assert!(info.clean, "not a clean close: {info:?}");
    assert_eq!(info.cause, cause, "{info:?}");
}

// ----- their client ↔ our server ------------------------------------------------

/// What our server saw of one connection.
#[derive(Debug)]
pub struct ServerSide {
    /// The upgrade request (from the admission hook).
    pub request: Option<Request>,
    /// The negotiated sub-protocol.
    pub protocol: Option<String>,
    /// How the connection ended.
    pub close: Option<CloseInfo>,
    /// permessage-deflate parameters, if negotiated.
    pub deflate: Option<wsmp_core::DeflateParams>,
    /// Messages (received, sent) compressed.
    pub compressed: (u64, u64),
}

/// Accepts one connection with our tokio server and echoes until it ends; a text
/// message `close:CODE:REASON` makes it close with that code and reason.
pub async fn our_server_once(listener: tokio::net::TcpListener, config: Config) -> ServerSide {
    let seen: Arc<Mutex<Option<Request>>> = Arc::default();
    let hook_seen = seen.clone();
    let options = ServerOptions {
        config,
        tls: None,
        admission: Some(Arc::new(move |req: &Request| {
            *hook_seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(req.clone());
            Decision::Accept(AcceptOptions::default())
        })),
        ..Default::default()
    };
    let (sock, _) = listener.accept().await.expect("accept");
    let mut ws = wsmp_tokio::accept(sock, options)
        .await
        .expect("server handshake");
    let protocol = ws.protocol();
    let deflate = ws.permessage_deflate();
    while let Some(m) = ws.recv().await {
        if let Message::Text(t) = &m {
            if let Some(rest) = t.strip_prefix("close:") {
                let (code, reason) = rest.split_once(':').unwrap_or((rest, ""));
                let code = code.parse().expect("close code");
                let _ = ws.close(CloseCode(code), reason).await;
                break;
            }
        }
        ws.send(m).await.expect("echo");
    }
    let request = seen.lock().unwrap_or_else(|p| p.into_inner()).take();
    ServerSide {
        request,
        protocol,
        close: ws.close_info(),
        deflate,
        compressed: ws.compressed_messages(),
    }
}

/// The peer's client against our tokio echo server.
pub async fn their_client(peer: Peer, case: Case) {
    their_client_on(peer, case, OurServer::Tokio).await;
}

/// Which of our servers a `their_client` case runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OurServer {
    /// `wsmp_tokio::accept` with an admission hook.
    Tokio,
    /// `wsmp_std::accept` (blocking, on a thread; no admission hook, so the request is
    /// not recorded).
    Std,
}

/// Accepts one connection with our blocking std server and echoes like
/// [`our_server_once`].
pub fn our_std_server_once(listener: std::net::TcpListener, config: Config) -> ServerSide {
    let (sock, _) = listener.accept().expect("accept");
    let options = wsmp_std::ServerOptions {
        config,
        ..Default::default()
    };
    let mut ws = wsmp_std::accept(sock, &options).expect("server handshake");
    let protocol = ws.protocol().map(str::to_owned);
    let deflate = ws.connection().permessage_deflate();
    let close = loop {
        match ws.recv() {
            Ok(m) => {
                if m.kind == wsmp_core::connection::MessageKind::Text {
                    let text = String::from_utf8_lossy(&m.data).into_owned();
                    if let Some(rest) = text.strip_prefix("close:") {
                        let (code, reason) = rest.split_once(':').unwrap_or((rest, ""));
                        let code = code.parse().expect("close code");
                        break ws.close(CloseCode(code), reason).ok();
                    }
                }
                ws.send(m).expect("echo");
            }
            Err(wsmp_std::Error::Closed(info)) => break Some(info),
            Err(e) => panic!("std server: {e}"),
        }
    };
    ServerSide {
        request: None,
        protocol,
        compressed: ws.connection().compressed_messages(),
        close,
        deflate,
    }
}

/// The peer's client against one of our echo servers.
pub async fn their_client_on(peer: Peer, case: Case, which: OurServer) {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = std_listener.local_addr().expect("addr").port();
    let mut config = big_config();
    if case == Case::Subprotocol {
        config.supported_protocols = vec!["b".into()];
    }
    if case == Case::Compressed {
        config = deflate_config(config);
    }
    let server = match which {
        OurServer::Tokio => {
            std_listener.set_nonblocking(true).expect("nonblocking");
            let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
            tokio::spawn(our_server_once(listener, config))
        }
        OurServer::Std => {
            tokio::task::spawn_blocking(move || our_std_server_once(std_listener, config))
        }
    };
    let url = format!("ws://127.0.0.1:{port}/game?x=1");
    let close_step = match case {
        Case::CloseByClient(code, reason) => format!("close_client:{code}:{reason}"),
        Case::CloseByServer(code, reason) => format!("close_server:{code}:{reason}"),
        _ => "close_client:1000:done".to_owned(),
    };
    let first = match case {
        Case::Binary => "binary,",
        Case::Big => "big,",
        Case::Ping => "ping,",
        Case::Compressed => "deflate,",
        Case::Text | Case::Subprotocol | Case::Headers => "text,",
        Case::CloseByClient(..) | Case::CloseByServer(..) => "",
    };
    let steps = format!("{first}{close_step}");
    let protocols = if case == Case::Subprotocol { "a,b" } else { "" };
    let headers: &[&str] = if case == Case::Headers {
        &["X-Extra: 42"]
    } else {
        &[]
    };
    let lines =
        tokio::task::spawn_blocking(move || run_client(peer, &url, protocols, headers, &steps))
            .await
            .expect("client thread");
    let side = tokio::time::timeout(Duration::from_secs(20), server)
        .await
        .expect("our server did not finish")
        .expect("our server task");

    let open = lines
        .iter()
        .find(|l| l["event"] == "open")
        .expect("open line");
    let results: Vec<&Value> = lines.iter().filter(|l| l.get("step").is_some()).collect();
    let step = |name: &str| {
        *results
            .iter()
            .find(|l| l["step"] == name)
            .unwrap_or_else(|| panic!("no {name:?} result in {lines:?}"))
    };
    match case {
        Case::Text | Case::Binary | Case::Big => {
            let name = match case {
                Case::Text => "text",
                Case::Binary => "binary",
                _ => "big",
            };
            let r = step(name);
            assert_eq!(r["equal"], true, "{r}");
            assert_eq!(
                r["type"],
                if case == Case::Text { "text" } else { "binary" }
            );
        }
        Case::Ping => assert_eq!(step("ping")["pong"], true),
        Case::Subprotocol => {
            assert_eq!(open["protocol"], "b");
            assert_eq!(side.protocol.as_deref(), Some("b"));
            if which == OurServer::Tokio {
                let req = side.request.as_ref().expect("request");
                assert_eq!(req.protocols, vec!["a".to_owned(), "b".to_owned()]);
            }
        }
        Case::Headers => {
            assert_eq!(
                which,
                OurServer::Tokio,
                "only the tokio server has the hook"
            );
            let req = side.request.as_ref().expect("request");
            assert_eq!(req.header("x-extra"), Some("42"));
            assert_eq!(req.path, "/game?x=1");
        }
        Case::Compressed => {
            assert_eq!(step("deflate")["equal"], true);
            let answer = open["extensions"].as_str().unwrap_or_default();
            assert!(answer.starts_with("permessage-deflate"), "{open}");
            assert!(side.deflate.is_some());
            assert_eq!(side.compressed, (6, 6), "answer {answer}");
        }
        Case::CloseByClient(..) | Case::CloseByServer(..) => {}
    }
    let (code, reason, cause) = match case {
        Case::CloseByClient(code, reason) => (code, reason, CloseCause::RemoteClose),
        Case::CloseByServer(code, reason) => (code, reason, CloseCause::LocalClose),
        _ => (1000, "done", CloseCause::RemoteClose),
    };
    let closed = step("closed");
    assert_eq!(
        closed["code"].as_u64(),
        Some(code.into()),
        "code seen by {peer:?}: {closed}"
    );
    assert_eq!(closed["reason"], reason, "reason seen by {peer:?}");
    let info = side.close.expect("our server's close info");
    let remote = cause == CloseCause::RemoteClose;
    assert_closed(&info, code, cause);
    if remote {
        assert_eq!(info.reason, reason);
    }
}

/// Generates the interop tests (both directions, every case) for one peer.
#[macro_export]
macro_rules! interop_tests {
    ($peer:expr) => {
        $crate::interop_tests!(@each $peer;
            text => $crate::Case::Text,
            binary => $crate::Case::Binary,
            one_mib => $crate::Case::Big,
            ping => $crate::Case::Ping,
            close_by_client_1000 => $crate::Case::CloseByClient(1000, "done"),
            close_by_client_4001 => $crate::Case::CloseByClient(4001, "custom"),
            close_by_server_1000 => $crate::Case::CloseByServer(1000, "bye"),
            close_by_server_4001 => $crate::Case::CloseByServer(4001, "custom reason"),
            subprotocol => $crate::Case::Subprotocol,
            headers => $crate::Case::Headers,
            compressed => $crate::Case::Compressed,
        );
    };
    (@each $peer:expr; $($name:ident => $case:expr,)*) => {
        mod our_client {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::require_peer!($peer);
                    $crate::our_client($peer, $case).await;
                }
            )*
        }
        mod their_client {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::require_peer!($peer);
                    $crate::their_client($peer, $case).await;
                }
            )*
        }
        /// Against the blocking std server (no admission hook: no `headers` case).
        mod their_client_std_server {
            $crate::interop_tests!(@std $peer;
                text => $crate::Case::Text,
                binary => $crate::Case::Binary,
                one_mib => $crate::Case::Big,
                ping => $crate::Case::Ping,
                close_by_client_4001 => $crate::Case::CloseByClient(4001, "custom"),
                close_by_server_4001 => $crate::Case::CloseByServer(4001, "custom reason"),
                subprotocol => $crate::Case::Subprotocol,
                compressed => $crate::Case::Compressed,
            );
        }
    };
    (@std $peer:expr; $($name:ident => $case:expr,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::require_peer!($peer);
                $crate::their_client_on($peer, $case, $crate::OurServer::Std).await;
            }
        )*
    };
}

// ----- the core connection over a blocking socket ---------------------------------

/// A client [`Connection`] driven directly over a blocking [`TcpStream`], for what the
/// adapters do not surface (pong events).
pub struct CoreClient {
    conn: Connection,
    sock: TcpStream,
    epoch: Instant,
    pending: Vec<u8>,
}

impl std::fmt::Debug for CoreClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoreClient").finish_non_exhaustive()
    }
}

impl CoreClient {
    /// Connects to a `ws://127.0.0.1:PORT/…` URL and waits for the open event.
    pub fn connect(url: &str, config: Config) -> CoreClient {
        let parsed = wsmp_core::handshake::WsUrl::parse(url).expect("url");
        let sock = TcpStream::connect((parsed.host, parsed.port)).expect("tcp connect");
        let rng: wsmp_core::connection::Rng = Box::new(rand_core::UnwrapErr(rand_core::OsRng));
        let conn = Connection::client(Arc::new(config), url, Timestamp::ZERO, rng).expect("client");
        let mut c = CoreClient {
            conn,
            sock,
            epoch: Instant::now(),
            pending: Vec::new(),
        };
        let ev = c.next_event(Duration::from_secs(10));
        assert!(matches!(ev, Some(Event::Open { .. })), "not opened: {ev:?}");
        c
    }

    fn now(&self) -> Timestamp {
        Timestamp::from_duration(self.epoch.elapsed())
    }

    /// Sends a ping.
    pub fn ping(&mut self, payload: &[u8]) {
        let now = self.now();
        self.conn.ping(now, payload).expect("ping");
    }

    /// Waits for a pong event and returns its payload (`None` on timeout or close).
    pub fn wait_pong(&mut self, timeout: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event(left)? {
                Event::Pong(p) => return Some(p.to_vec()),
                Event::Closed(_) => return None,
                _ => {}
            }
        }
    }

    /// Drives I/O until the next event (or `timeout`).
    pub fn next_event(&mut self, timeout: Duration) -> Option<Event> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            loop {
                let now = self.now();
                let n = self.conn.poll_transmit_into(now, &mut buf);
                if n == 0 {
                    break;
                }
                self.sock.write_all(buf.get(..n)?).ok()?;
            }
            if let Some(ev) = self.conn.poll_event() {
                return Some(ev);
            }
            if !self.pending.is_empty() && self.conn.can_read() {
                let now = self.now();
                let used = self.conn.handle_input(now, &self.pending);
                self.pending.drain(..used.min(self.pending.len()));
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let _ = self
                .sock
                .set_read_timeout(Some(left.min(Duration::from_millis(50))));
            match self.sock.read(&mut buf) {
                Ok(0) => {
                    let now = self.now();
                    self.conn.handle_eof(now);
                }
                Ok(n) => self.pending.extend_from_slice(buf.get(..n)?),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => {
                    let now = self.now();
                    self.conn.handle_eof(now);
                }
            }
            let now = self.now();
            if self.conn.poll_timeout().is_some_and(|t| t <= now) {
                self.conn.handle_timeout(now);
            }
        }
    }
}
