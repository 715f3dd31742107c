//! Shared helpers of the socket tests: bounded waits, a hand-written raw
//! WebSocket client/server (to see exact bytes and to misbehave on purpose),
//! and a frame parser.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wsmp_tokio::{accept, connect, ClientOptions, Config, ServerOptions, WebSocket};

/// Awaits `fut` for at most `secs` seconds; panics with `what` otherwise.
pub async fn within<T>(secs: f64, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs_f64(secs), fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {secs} s: {what}"),
    }
}

/// A listener on 127.0.0.1 port 0 and its `ws://` URL.
pub async fn listener() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", l.local_addr().unwrap());
    (l, url)
}

/// A connected (server, client) pair of `WebSocket`s.
pub async fn ws_pair(server: Config, client: Config) -> (WebSocket, WebSocket) {
    let (l, url) = listener().await;
    let accept_task = tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        accept(
            s,
            ServerOptions {
                config: server,
                ..ServerOptions::default()
            },
        )
        .await
        .unwrap()
    });
    let c = within(
        10.0,
        "connect",
        connect(
            &url,
            ClientOptions {
                config: client,
                ..ClientOptions::default()
            },
        ),
    )
    .await
    .unwrap();
    let s = within(10.0, "accept", accept_task).await.unwrap();
    (s, c)
}

pub const CLIENT_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// The upgrade request a raw client sends.
pub fn upgrade_request(host: &str) -> String {
    format!(
        "GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {CLIENT_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// Reads up to the end of an HTTP header block; returns the header text and
/// any bytes read past it.
pub async fn read_http_head(s: &mut TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(pos + 4);
            return (String::from_utf8_lossy(&buf).into_owned(), rest);
        }
        let n = s.read(&mut chunk).await.unwrap();
        assert!(
            n > 0,
            "EOF inside the HTTP head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A raw client connection: TCP plus bytes read past the last parsed frame.
pub struct RawClient {
    pub sock: TcpStream,
    pub buf: Vec<u8>,
}

impl RawClient {
    /// Connects and completes the upgrade by hand.
    pub async fn connect(addr: std::net::SocketAddr) -> RawClient {
        let mut sock = TcpStream::connect(addr).await.unwrap();
        sock.write_all(upgrade_request(&addr.to_string()).as_bytes())
            .await
            .unwrap();
        let (head, rest) = read_http_head(&mut sock).await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(
            head.contains(
                &String::from_utf8_lossy(&wsmp_core::handshake::accept_key(CLIENT_KEY.as_bytes()))
                    .into_owned()
            ),
            "{head}"
        );
        RawClient { sock, buf: rest }
    }

    /// Sends one masked frame.
    pub async fn send_frame(&mut self, opcode: u8, payload: &[u8]) {
        let bytes = encode_frame(opcode, payload, Some([0x12, 0x34, 0x56, 0x78]));
        self.sock.write_all(&bytes).await.unwrap();
    }

    /// The next complete frame, or `None` at EOF (or reset).
    pub async fn next_frame(&mut self) -> Option<Frame> {
        next_frame(&mut self.sock, &mut self.buf).await
    }
}

/// One parsed frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: u8,
    pub masked: bool,
    pub payload: Vec<u8>,
    /// The frame's bytes as they came off the wire.
    pub raw: Vec<u8>,
}

/// Encodes a final frame (masked when `mask` is given).
pub fn encode_frame(opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![0x80 | opcode];
    let m = if mask.is_some() { 0x80 } else { 0 };
    let len = payload.len();
    if len < 126 {
        out.push(m | len as u8);
    } else if len <= 0xffff {
        out.push(m | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(m | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// Parses one frame from the front of `buf`: `Some((frame, used))`, or
/// `None` when more bytes are needed. Panics on a malformed header.
pub fn parse_frame(buf: &[u8]) -> Option<(Frame, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let fin = buf[0] & 0x80 != 0;
    assert_eq!(buf[0] & 0x70, 0, "reserved bits set: {:02x}", buf[0]);
    let opcode = buf[0] & 0x0f;
    let masked = buf[1] & 0x80 != 0;
    let (len, mut at) = match buf[1] & 0x7f {
        126 => {
            if buf.len() < 4 {
                return None;
            }
            (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4)
        }
        127 => {
            if buf.len() < 10 {
                return None;
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(b) as usize, 10)
        }
        n => (n as usize, 2),
    };
    let key = if masked {
        if buf.len() < at + 4 {
            return None;
        }
        let k = [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]];
        at += 4;
        Some(k)
    } else {
        None
    };
    if buf.len() < at + len {
        return None;
    }
    let mut payload = buf[at..at + len].to_vec();
    if let Some(k) = key {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= k[i % 4];
        }
    }
    let used = at + len;
    Some((
        Frame {
            fin,
            opcode,
            masked,
            payload,
            raw: buf[..used].to_vec(),
        },
        used,
    ))
}

/// Reads the next frame from `sock`, keeping extra bytes in `buf`.
pub async fn next_frame(sock: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Frame> {
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        if let Some((f, used)) = parse_frame(buf) {
            buf.drain(..used);
            return Some(f);
        }
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Reads until EOF (or reset); returns what arrived. Bounded by the caller.
pub async fn read_to_eof(sock: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The close code of a close frame's payload.
pub fn close_code(payload: &[u8]) -> Option<u16> {
    (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]))
}

/// Resident set size of this process, in bytes (Linux).
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
