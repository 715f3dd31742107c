//! What the adversarial tests share: the relay as a separate process (this
//! tree's binary, or another one named by `WSMP_RELAY_BIN`, e.g. a v0.1.0
//! build, to show that a test fails there), raw WebSocket clients over
//! `std::net::TcpStream` (optionally TLS, rustls) that write masked frames by
//! hand (benches/src/client.rs helpers), and readings from `/proc`.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};
use wsmp_benches::client::{
    check_response, handshake_request, masked_frame, Event, FrameReader, WsUrl, XorShift,
};

/// Every test of this binary holds this lock: they measure time and CPU,
/// so they run one at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// True when `ADV_FIGURES=1`: the tests also print the figures of
/// relay/tests/adversarial/README.md (`FIGURE …` lines), at full size.
pub fn figures() -> bool {
    std::env::var("ADV_FIGURES").is_ok_and(|v| v == "1")
}

/// Prints one figure line (`FIGURE name: value (load …)`; see README.md).
pub fn figure(name: &str, value: impl std::fmt::Display) {
    println!("FIGURE {name}: {value} (load {})", load_avg());
}

/// The 1-minute load average (other CPU load at the time of a figure).
pub fn load_avg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The relay binary under test: `WSMP_RELAY_BIN`, else this tree's.
pub fn relay_bin() -> PathBuf {
    match std::env::var_os("WSMP_RELAY_BIN") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_BIN_EXE_wsmp-relay")),
    }
}

/// A relay process on 127.0.0.1 (and more listeners if asked), killed on drop.
pub struct RelayProc {
    child: Child,
    /// The game listeners, in `--listen` order.
    pub addrs: Vec<SocketAddr>,
    /// Where `GET /stats` is served: the admin listener, or (a relay
    /// without one, v0.1) the game port.
    pub stats_addr: SocketAddr,
    /// The process id (for `/proc`).
    pub pid: u32,
}

impl RelayProc {
    /// Starts the relay with `--listen 127.0.0.1:0`, then `args`; `env`
    /// sets `WSMP_RELAY_*` variables (flags an older relay does not know
    /// are given this way, so that it still starts and the test fails on
    /// its behaviour, not on its command line).
    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> RelayProc {
        Self::spawn_listening(&["127.0.0.1:0"], args, env)
    }

    /// Like [`spawn`](Self::spawn) with these `--listen` addresses.
    pub fn spawn_listening(listen: &[&str], args: &[&str], env: &[(&str, &str)]) -> RelayProc {
        let mut cmd = Command::new(relay_bin());
        for l in listen {
            cmd.args(["--listen", l]);
        }
        // This relay reads WSMP_RELAY_* settings and refuses unknown ones:
        // the variable naming the binary under test is not for it.
        cmd.env_remove("WSMP_RELAY_BIN");
        cmd.args(args)
            .envs(env.iter().copied())
            .env(
                "RUST_LOG",
                std::env::var("ADV_RELAY_LOG").unwrap_or("warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(if std::env::var_os("ADV_RELAY_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            });
        let mut child = cmd.spawn().expect("spawn the relay");
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut addrs = Vec::new();
        while addrs.len() < listen.len() {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("relay {:?} did not start", relay_bin()));
            if let Some(a) = line.strip_prefix("listening on ") {
                addrs.push(a.trim().parse().expect("listening address"));
            }
        }
        // design/CLI.md: `admin listening on HOST:PORT` follows at once; a
        // relay without an admin listener (v0.1) serves /stats on the game port.
        let stats_addr = match rx.recv_timeout(Duration::from_secs(3)) {
            Ok(line) => match line.strip_prefix("admin listening on ") {
                Some(a) => a.trim().parse().expect("admin address"),
                None => addrs[0],
            },
            Err(_) => addrs[0],
        };
        let pid = child.id();
        RelayProc {
            child,
            addrs,
            stats_addr,
            pid,
        }
    }

    /// The first game listener.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// `GET /stats` as JSON.
    pub fn stats(&self) -> serde_json::Value {
        let (status, body) = http_get(self.stats_addr, "/stats");
        assert_eq!(status, 200, "GET /stats: {body}");
        serde_json::from_str(&body).expect("stats JSON")
    }

    /// WebSocket peers the relay counts (`/stats` `peers`).
    pub fn peers(&self) -> u64 {
        self.stats()["peers"].as_u64().expect("peers")
    }

    /// Waits (polling `/stats`) until `peers` is `n`; false at the deadline.
    pub fn wait_peers(&self, n: u64, within: Duration) -> bool {
        let end = Instant::now() + within;
        loop {
            if self.peers() == n {
                return true;
            }
            if Instant::now() > end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// CPU time the process used so far (all threads, nanosecond precision:
    /// `/proc/PID/task/*/schedstat`; `/proc/PID/stat` counts 10 ms ticks).
    pub fn cpu(&self) -> Duration {
        process_cpu(self.pid)
    }

    /// Resident memory (`VmRSS`) in KiB.
    pub fn rss_kib(&self) -> u64 {
        wsmp_benches::proc_rss_kib(self.pid).expect("VmRSS")
    }
}

impl Drop for RelayProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time of process `pid` (sum over its threads), from schedstat.
pub fn process_cpu(pid: u32) -> Duration {
    let mut ns = 0u64;
    let dir = format!("/proc/{pid}/task");
    for task in std::fs::read_dir(&dir).expect("task dir").flatten() {
        if let Ok(s) = std::fs::read_to_string(task.path().join("schedstat")) {
            ns += s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Duration::from_nanos(ns)
}

/// Plain `GET path` (HTTP/1.1, `Connection: close`): (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("read");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A TCP connection to `to`, from `from` (any port) if given, with a small
/// receive buffer if asked (set before connecting, so the window stays small).
pub fn tcp(to: SocketAddr, from: Option<IpAddr>, rcvbuf: Option<usize>) -> io::Result<TcpStream> {
    let sock = Socket::new(Domain::for_address(to), Type::STREAM, None)?;
    if let Some(n) = rcvbuf {
        sock.set_recv_buffer_size(n)?;
    }
    if let Some(ip) = from {
        sock.bind(&SocketAddr::new(ip, 0).into())?;
    }
    sock.connect_timeout(&to.into(), Duration::from_secs(5))?;
    sock.set_tcp_nodelay(true)?;
    let s: TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    Ok(s)
}

/// 127.0.0.2: another source address on the loopback (Linux routes all of
/// 127/8 to `lo`).
pub const OTHER_V4: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

// ---- TLS ---------------------------------------------------------------------

/// Certificate files for `--tls-cert/--tls-key`, and the CA to trust.
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client: Arc<rustls::ClientConfig>,
    _dir: TempDir,
}

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("wsmp-adv-{}-{tag}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn client_config(ca_pem: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let mut rd = ca_pem.as_bytes();
    for cert in rustls_pemfile_certs(&mut rd) {
        roots.add(cert).expect("CA certificate");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

fn rustls_pemfile_certs(rd: &mut &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(rd)
        .map(|c| c.expect("PEM certificate"))
        .collect()
}

impl TlsFiles {
    fn write(chain: &str, key: &str, ca: &str) -> TlsFiles {
        let dir = TempDir::new("tls");
        let cert = dir.0.join("cert.pem");
        let keyf = dir.0.join("key.pem");
        std::fs::write(&cert, chain).expect("write cert");
        std::fs::write(&keyf, key).expect("write key");
        TlsFiles {
            cert,
            key: keyf,
            client: client_config(ca),
            _dir: dir,
        }
    }

    /// An ECDSA P-256 chain from `wsmp_tls::testing` (rcgen).
    pub fn ecdsa() -> TlsFiles {
        let c = wsmp_tls::testing::TestCerts::generate();
        Self::write(&c.server_chain_pem, &c.server_key_pem, &c.ca_pem)
    }

    /// A self-signed RSA-2048 certificate for 127.0.0.1 made with rcgen
    /// (the key with the `rsa` crate: rcgen's ring backend cannot generate
    /// RSA keys). An RSA signature per handshake is what makes a handshake
    /// flood expensive for the server.
    pub fn rsa2048() -> TlsFiles {
        use rsa::pkcs8::EncodePrivateKey;
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("RSA keygen");
        let pem = key
            .to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)
            .expect("PKCS#8")
            .to_string();
        let kp = rcgen::KeyPair::from_pem_and_sign_algo(&pem, &rcgen::PKCS_RSA_SHA256)
            .expect("rcgen RSA key");
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("params");
        let cert = params.self_signed(&kp).expect("self-signed");
        Self::write(&cert.pem(), &pem, &cert.pem())
    }

    /// `--tls-cert C --tls-key K`.
    pub fn args(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.cert.display().to_string(),
            "--tls-key".into(),
            self.key.display().to_string(),
        ]
    }

    /// A completed TLS session over `tcp` (server name 127.0.0.1).
    pub fn connect(&self, mut tcp: TcpStream) -> io::Result<Stream> {
        let name = rustls::pki_types::ServerName::IpAddress(
            std::net::IpAddr::V4(Ipv4Addr::LOCALHOST).into(),
        );
        let mut conn =
            rustls::ClientConnection::new(self.client.clone(), name).map_err(io::Error::other)?;
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp)?;
        }
        Ok(Stream::Tls(Box::new(rustls::StreamOwned::new(conn, tcp))))
    }
}

/// A client's byte stream: plain TCP or TLS over TCP.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    /// The TCP socket underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

// ---- raw WebSocket client ----------------------------------------------------

/// A message or control frame from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    Binary(Vec<u8>),
    Text(Vec<u8>),
    Ping(Vec<u8>),
    Pong,
    Close(Option<u16>),
}

/// How an upgrade request was answered.
pub enum Upgrade {
    /// `101`: the WebSocket is open.
    Open(Ws),
    /// Any other status (with the body).
    Refused(u16, String),
}

impl Upgrade {
    /// The open WebSocket; panics on a refusal.
    pub fn open(self) -> Ws {
        match self {
            Upgrade::Open(ws) => ws,
            Upgrade::Refused(s, b) => panic!("upgrade refused: {s} {b}"),
        }
    }
}

/// A raw client WebSocket: masked frames built by hand, frames parsed by
/// benches' `FrameReader`.
pub struct Ws {
    pub s: Stream,
    reader: FrameReader,
    buf: Vec<u8>,
    partial: Vec<u8>,
    ready: std::collections::VecDeque<Msg>,
    rng: XorShift,
    /// Every close code the server sent on this connection.
    pub close_codes: Vec<u16>,
}

/// Sends the upgrade request for `path` over `s` and reads the answer.
pub fn upgrade(mut s: Stream, path: &str) -> io::Result<Upgrade> {
    let peer = s.tcp().peer_addr()?;
    let url = WsUrl::parse(&format!("ws://{peer}{path}")).map_err(io::Error::other)?;
    let mut rng = XorShift::from_entropy(u64::from(peer.port()));
    let (req, key) = handshake_request(&url, &mut rng);
    s.write_all(&req)?;
    s.flush()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("closed during the handshake after {} bytes", buf.len()),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        let head = match resp.parse(&buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => continue,
            Err(e) => return Err(io::Error::other(format!("bad response: {e}"))),
        };
        let status = resp.code.unwrap_or(0);
        if status != 101 {
            let len = resp
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
                .unwrap_or(0usize);
            while buf.len() < head + len {
                let n = s.read(&mut chunk)?;
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let end = buf.len().min(head + len);
            let body = String::from_utf8_lossy(&buf[head..end]).into_owned();
            return Ok(Upgrade::Refused(status, body));
        }
        check_response(&buf, &key).map_err(io::Error::other)?;
        return Ok(Upgrade::Open(Ws {
            s,
            reader: FrameReader::new(),
            buf: buf.split_off(head),
            partial: Vec::new(),
            ready: Default::default(),
            rng,
            close_codes: Vec::new(),
        }));
    }
}

/// Connects to `addr` (from `from` if given) and upgrades on `path`, plain.
pub fn open(addr: SocketAddr, from: Option<IpAddr>, path: &str) -> io::Result<Upgrade> {
    upgrade(Stream::Plain(tcp(addr, from, None)?), path)
}

impl Ws {
    fn key(&mut self) -> [u8; 4] {
        (self.rng.next_u64() as u32).to_le_bytes()
    }

    /// The bytes of one masked frame (not sent).
    pub fn frame(&mut self, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let key = self.key();
        masked_frame(opcode, payload, key)
    }

    /// Sends one binary message.
    pub fn send(&mut self, payload: &[u8]) -> io::Result<()> {
        let f = self.frame(2, payload);
        self.s.write_all(&f)?;
        self.s.flush()
    }

    /// Answers a ping with `payload`.
    pub fn pong(&mut self, payload: &[u8]) -> io::Result<()> {
        let f = self.frame(0xA, payload);
        self.s.write_all(&f)
    }

    /// Sends a close frame with `code`.
    pub fn send_close(&mut self, code: u16) -> io::Result<()> {
        let f = self.frame(8, &code.to_be_bytes());
        self.s.write_all(&f)?;
        self.s.flush()
    }

    /// The next message or control frame; `Ok(None)` at end of stream.
    /// Uses the socket's read timeout.
    pub fn next(&mut self) -> io::Result<Option<Msg>> {
        loop {
            if let Some(m) = self.ready.pop_front() {
                return Ok(Some(m));
            }
            let Self {
                reader,
                buf,
                partial,
                ready,
                close_codes,
                ..
            } = self;
            let used = reader
                .feed(buf, |ev| {
                    match ev {
                        Event::Data { opcode, chunk, end } => {
                            partial.extend_from_slice(chunk);
                            if end {
                                let p = std::mem::take(partial);
                                ready.push_back(if opcode == 1 {
                                    Msg::Text(p)
                                } else {
                                    Msg::Binary(p)
                                });
                            }
                        }
                        Event::Ping(p) => ready.push_back(Msg::Ping(p.to_vec())),
                        Event::Pong => ready.push_back(Msg::Pong),
                        Event::Close(c) => {
                            if let Some(c) = c {
                                close_codes.push(c);
                            }
                            ready.push_back(Msg::Close(c));
                        }
                    }
                    Ok(())
                })
                .map_err(io::Error::other)?;
            buf.drain(..used);
            if !self.ready.is_empty() {
                continue;
            }
            let mut chunk = [0u8; 16384];
            let n = self.s.read(&mut chunk)?;
            if n == 0 {
                return Ok(None);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The next binary message (pings answered, pongs skipped); an error
    /// for a close or the end of the stream.
    pub fn recv(&mut self) -> io::Result<Vec<u8>> {
        loop {
            match self.next()? {
                Some(Msg::Binary(b)) => return Ok(b),
                Some(Msg::Ping(p)) => self.pong(&p)?,
                Some(Msg::Pong) => {}
                Some(m) => return Err(io::Error::other(format!("got {m:?}"))),
                None => return Err(io::ErrorKind::UnexpectedEof.into()),
            }
        }
    }

    /// Reads the 4-byte id message (spec/websocket-peer.md §3.7).
    pub fn read_id(&mut self) -> io::Result<i32> {
        let m = self.recv()?;
        let id: [u8; 4] = m
            .as_slice()
            .try_into()
            .map_err(|_| io::Error::other(format!("id message {m:02x?}")))?;
        Ok(i32::from_le_bytes(id))
    }

    /// Closes with 1000 and reads until the server's close frame (or the
    /// end): returns the server's close code.
    pub fn leave(mut self) -> io::Result<Option<u16>> {
        self.send_close(1000)?;
        loop {
            match self.next() {
                Ok(Some(Msg::Close(c))) => return Ok(c),
                Ok(Some(_)) => {}
                Ok(None) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }
}

// ---- the engine's bytes (spec/scene-multiplayer.md §2) -------------------------

/// `07 01 <id>`.
pub fn add_peer(id: i32) -> Vec<u8> {
    [&[7u8, 1][..], &id.to_le_bytes()].concat()
}

/// `07 02 <id>`.
pub fn del_peer(id: i32) -> Vec<u8> {
    [&[7u8, 2][..], &id.to_le_bytes()].concat()
}

/// `07 03 <id> <inner>`.
pub fn relay(id: i32, inner: &[u8]) -> Vec<u8> {
    [&[7u8, 3][..], &id.to_le_bytes(), inner].concat()
}

/// `07 00 <data>`.
pub fn auth(data: &[u8]) -> Vec<u8> {
    [&[7u8, 0][..], data].concat()
}

// ---- sockets as the kernel sees them -----------------------------------------

/// One row of `/proc/net/tcp{,6}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpRow {
    /// Kernel TCP state (1 ESTABLISHED, 4 FIN_WAIT1, 8 CLOSE_WAIT, …).
    pub state: u8,
    /// Bytes written and not acknowledged (send queue).
    pub tx_queue: u64,
    /// Bytes received and not read (receive queue).
    pub rx_queue: u64,
}

/// The kernel's row for the TCP socket whose local port is `local` and
/// remote port is `remote` (loopback: ports identify it).
pub fn tcp_row(local: u16, remote: u16) -> Option<TcpRow> {
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 5 {
                continue;
            }
            let port = |s: &str| {
                s.rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
            };
            if port(f[1]) == Some(local) && port(f[2]) == Some(remote) {
                let (tx, rx) = f[4].split_once(':').unwrap_or(("0", "0"));
                return Some(TcpRow {
                    state: u8::from_str_radix(f[3], 16).unwrap_or(0),
                    tx_queue: u64::from_str_radix(tx, 16).unwrap_or(0),
                    rx_queue: u64::from_str_radix(rx, 16).unwrap_or(0),
                });
            }
        }
    }
    None
}

/// ESTABLISHED in `/proc/net/tcp`.
pub const TCP_ESTABLISHED: u8 = 1;

/// Percentile `q` (0..=1) of sorted `v`.
pub fn percentile(v: &[Duration], q: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    let i = ((v.len() as f64 - 1.0) * q).round() as usize;
    v[i.min(v.len() - 1)]
}

/// Milliseconds with two decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// True in CI (`CI=true`): a test that could skip must fail instead.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}
