//! A minimal, neutral WebSocket client protocol for the load tools: the opening handshake
//! (request, `101` check, `Sec-WebSocket-Accept` check), masked frame building and a streaming
//! reader of server frames. Deliberately independent of every WebSocket crate, wsmp included.

use base64::Engine as _;
use sha1::{Digest, Sha1};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// The GUID appended to the key for `Sec-WebSocket-Accept` (RFC 6455 §1.3).
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Largest response head the client accepts.
const MAX_HEAD: usize = 16 * 1024;

/// A parsed `ws://HOST:PORT/path` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUrl {
    /// `HOST:PORT` as written, for the `Host` header.
    pub authority: String,
    /// Resolved socket address (first resolution).
    pub addr: SocketAddr,
    /// Request target, `/` when absent.
    pub path: String,
}

impl WsUrl {
    /// Parses `ws://HOST:PORT[/path]` (`wss://` is not supported by the load tools).
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("ws://")
            .ok_or_else(|| format!("URL {url:?} must start with ws://"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err(format!("URL {url:?} has no host"));
        }
        let with_port = if authority.ends_with(']') || !authority.contains(':') {
            format!("{authority}:80")
        } else {
            authority.to_owned()
        };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {authority:?}: {e}"))?
            .next()
            .ok_or_else(|| format!("{authority:?} resolves to nothing"))?;
        Ok(Self {
            authority: authority.to_owned(),
            addr,
            path: path.to_owned(),
        })
    }
}

/// A small non-cryptographic generator (xorshift64*), for payloads, keys and masks.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// Seeds from `seed` (zero is replaced).
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1) ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// Seeds from the process's random hasher state and `salt`.
    pub fn from_entropy(salt: u64) -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(salt);
        Self::new(h.finish())
    }

    /// Next value.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Fills `buf`.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// `Sec-WebSocket-Accept` for a key (RFC 6455 §4.2.2 item 5.4).
pub fn accept_value(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.as_bytes());
    h.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// Builds the opening handshake request and returns it with the key it carries.
pub fn handshake_request(url: &WsUrl, rng: &mut XorShift) -> (Vec<u8>, String) {
    let mut nonce = [0u8; 16];
    rng.fill(&mut nonce);
    // RFC 6455 §4.1: a random 16-byte nonce, base64-encoded.
    let key = base64::engine::general_purpose::STANDARD.encode(nonce);
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n",
        url.path, url.authority
    );
    (req.into_bytes(), key)
}

/// Checks a complete response head: status `101` and the right accept value
/// (RFC 6455 §4.1, client requirements 1-4). Returns `Ok(None)` while the head is incomplete,
/// `Ok(Some(head_len))` once valid.
pub fn check_response(buf: &[u8], key: &str) -> Result<Option<usize>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("bad handshake response: {e}")),
    };
    if resp.code != Some(101) {
        return Err(format!("handshake answered {:?}, not 101", resp.code));
    }
    let header = |name: &str| {
        resp.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_owned())
    };
    // RFC 6455 §4.1 client requirement 2 and 3.
    if !header("upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket")) {
        return Err("handshake response lacks Upgrade: websocket".into());
    }
    if !header("connection").is_some_and(|v| {
        v.split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
    }) {
        return Err("handshake response lacks Connection: Upgrade".into());
    }
    // RFC 6455 §4.1 client requirement 4.
    let expected = accept_value(key);
    match header("sec-websocket-accept") {
        Some(v) if v == expected => Ok(Some(len)),
        Some(v) => Err(format!("Sec-WebSocket-Accept {v:?}, expected {expected:?}")),
        None => Err("handshake response lacks Sec-WebSocket-Accept".into()),
    }
}

/// Connects (optionally from `local` source address) and performs the opening handshake within
/// `timeout`. Returns the stream and any bytes read past the response head.
pub async fn connect(
    url: &WsUrl,
    local: Option<IpAddr>,
    rng: &mut XorShift,
    timeout: Duration,
) -> Result<(TcpStream, Vec<u8>), String> {
    tokio::time::timeout(timeout, connect_inner(url, local, rng))
        .await
        .map_err(|_| format!("connect + handshake to {} timed out", url.addr))?
}

async fn connect_inner(
    url: &WsUrl,
    local: Option<IpAddr>,
    rng: &mut XorShift,
) -> Result<(TcpStream, Vec<u8>), String> {
    let mut stream = match local {
        None => TcpStream::connect(url.addr).await,
        Some(ip) => {
            let sock = if url.addr.is_ipv4() {
                TcpSocket::new_v4()
            } else {
                TcpSocket::new_v6()
            }
            .map_err(|e| format!("socket: {e}"))?;
            sock.bind(SocketAddr::new(ip, 0))
                .map_err(|e| format!("bind {ip}: {e}"))?;
            sock.connect(url.addr).await
        }
    }
    .map_err(|e| format!("connect {}: {e}", url.addr))?;
    stream
        .set_nodelay(true)
        .map_err(|e| format!("nodelay: {e}"))?;
    let (req, key) = handshake_request(url, rng);
    stream
        .write_all(&req)
        .await
        .map_err(|e| format!("write handshake: {e}"))?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    // Bounded: at most MAX_HEAD bytes, and the caller's timeout.
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read handshake: {e}"))?;
        if n == 0 {
            return Err("server closed during handshake".into());
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if let Some(len) = check_response(&buf, &key)? {
            return Ok((stream, buf.split_off(len)));
        }
        if buf.len() > MAX_HEAD {
            return Err("handshake response head too large".into());
        }
    }
}

/// Length of a client frame header (with the 4-byte mask key) for a payload of `len`
/// (RFC 6455 §5.2).
pub fn header_len(len: usize) -> usize {
    (match len {
        0..=125 => 2,
        126..=0xFFFF => 4,
        _ => 10,
    }) + 4
}

/// Builds one final, masked client frame (RFC 6455 §5.2, §5.3).
pub fn masked_frame(opcode: u8, payload: &[u8], key: [u8; 4]) -> Vec<u8> {
    let mut f = Vec::with_capacity(header_len(payload.len()) + payload.len());
    f.push(0x80 | (opcode & 0x0F));
    match payload.len() {
        n @ 0..=125 => f.push(0x80 | n as u8),
        n @ 126..=0xFFFF => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&key);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    f
}

/// The masked close frame with status 1000 (RFC 6455 §5.5.1, §7.4.1).
pub fn close_frame(key: [u8; 4]) -> Vec<u8> {
    masked_frame(0x8, &1000u16.to_be_bytes(), key)
}

/// What the [`FrameReader`] found in the server's byte stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A piece of a data message's payload. `opcode` is the message's (1 text, 2 binary);
    /// `end` is true on the last piece of the message.
    Data {
        /// Opcode of the message (from its first frame).
        opcode: u8,
        /// Payload bytes, in order.
        chunk: &'a [u8],
        /// Last piece of the message.
        end: bool,
    },
    /// A ping with its payload (to be echoed in a pong, RFC 6455 §5.5.3).
    Ping(&'a [u8]),
    /// A pong.
    Pong,
    /// A close frame with its status code, if any.
    Close(Option<u16>),
}

/// Streaming reader of server-to-client frames: payloads are handed out in pieces as they
/// arrive, so a 64 MiB echo never needs to be buffered. Rejects every protocol violation.
#[derive(Debug, Default)]
pub struct FrameReader {
    /// Payload bytes still to come in the current data frame.
    remaining: u64,
    /// The current data frame is the last of its message.
    fin: bool,
    /// Opcode of the data message in progress, if any.
    msg_opcode: Option<u8>,
}

impl FrameReader {
    /// A reader at a frame boundary.
    pub fn new() -> Self {
        Self::default()
    }

    /// Consumes what it can of `buf`, calling `sink` for every event; returns the number of
    /// bytes consumed. Unconsumed bytes (an incomplete header or control frame, < 128 bytes)
    /// must be passed again, followed by more data. Errors on a protocol violation or when
    /// `sink` errors.
    pub fn feed<F>(&mut self, buf: &[u8], mut sink: F) -> Result<usize, String>
    where
        F: FnMut(Event<'_>) -> Result<(), String>,
    {
        let mut pos = 0;
        // Each iteration consumes at least one byte or returns: bounded by buf.len().
        loop {
            let rest = buf.get(pos..).unwrap_or_default();
            if self.remaining > 0 {
                if rest.is_empty() {
                    return Ok(pos);
                }
                let n = rest
                    .len()
                    .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                self.remaining -= n as u64;
                let end = self.remaining == 0 && self.fin;
                let opcode = self.msg_opcode.unwrap_or(0);
                if end {
                    self.msg_opcode = None;
                }
                sink(Event::Data {
                    opcode,
                    chunk: rest.get(..n).unwrap_or_default(),
                    end,
                })?;
                pos += n;
                continue;
            }
            let (&b0, &b1) = match (rest.first(), rest.get(1)) {
                (Some(a), Some(b)) => (a, b),
                _ => return Ok(pos),
            };
            let fin = b0 & 0x80 != 0;
            let opcode = b0 & 0x0F;
            // RFC 6455 §5.2: RSV bits must be 0 without a negotiated extension.
            if b0 & 0x70 != 0 {
                return Err(format!("server frame with RSV bits {:#x}", b0 & 0x70));
            }
            // RFC 6455 §5.1: a server must not mask frames it sends.
            if b1 & 0x80 != 0 {
                return Err("server sent a masked frame".into());
            }
            let (len, hlen) = match b1 & 0x7F {
                126 => match rest.get(2..4) {
                    Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
                    None => return Ok(pos),
                },
                127 => match rest.get(2..10) {
                    Some(b) => {
                        let mut a = [0u8; 8];
                        a.copy_from_slice(b);
                        let v = u64::from_be_bytes(a);
                        // RFC 6455 §5.2: the most significant bit must be 0.
                        if v >> 63 != 0 {
                            return Err("64-bit frame length with MSB set".into());
                        }
                        (v, 10)
                    }
                    None => return Ok(pos),
                },
                n => (u64::from(n), 2),
            };
            if opcode >= 8 {
                // RFC 6455 §5.5: control frames are final and at most 125 bytes.
                if !fin || len > 125 {
                    return Err(format!("bad control frame (fin={fin}, len={len})"));
                }
                let total = hlen + len as usize;
                let Some(payload) = rest.get(hlen..total) else {
                    return Ok(pos);
                };
                match opcode {
                    // RFC 6455 §5.5.1: a close body is empty or starts with a 2-byte code.
                    0x8 => match payload {
                        [] => sink(Event::Close(None))?,
                        [a, b, ..] => sink(Event::Close(Some(u16::from_be_bytes([*a, *b]))))?,
                        [_] => return Err("close frame with a 1-byte body".into()),
                    },
                    0x9 => sink(Event::Ping(payload))?,
                    0xA => sink(Event::Pong)?,
                    // RFC 6455 §5.2: opcodes 0xB-0xF are reserved.
                    op => return Err(format!("reserved control opcode {op:#x}")),
                }
                pos += total;
                continue;
            }
            match (opcode, self.msg_opcode) {
                // RFC 6455 §5.4: a continuation needs a message in progress...
                (0, None) => return Err("continuation frame without a message".into()),
                (0, Some(_)) => {}
                // ...and a new data message must not start inside another.
                (1 | 2, Some(_)) => return Err("new data frame inside a fragmented message".into()),
                (1 | 2, None) => self.msg_opcode = Some(opcode),
                // RFC 6455 §5.2: opcodes 3-7 are reserved.
                (op, _) => return Err(format!("reserved data opcode {op:#x}")),
            }
            pos += hlen;
            self.fin = fin;
            self.remaining = len;
            if len == 0 {
                let opcode = self.msg_opcode.unwrap_or(0);
                if fin {
                    self.msg_opcode = None;
                }
                sink(Event::Data {
                    opcode,
                    chunk: &[],
                    end: fin,
                })?;
            }
        }
    }
}

/// A whole server message or control frame, as handed out by [`Inbound`].
#[derive(Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// A complete data message (reassembled when fragmented).
    Data {
        /// 1 text, 2 binary.
        opcode: u8,
        /// The whole payload.
        payload: &'a [u8],
    },
    /// A ping with its payload.
    Ping(&'a [u8]),
    /// A pong.
    Pong,
    /// A close frame with its status code, if any.
    Close(Option<u16>),
}

/// The receive side of a client connection: buffers what the socket delivers and hands out
/// whole messages (a message split over several reads or frames is reassembled, up to
/// `max_message` bytes). Used where every message must be looked at as a whole (the relay
/// load generator); `loadgen` streams with [`FrameReader`] directly.
#[derive(Debug)]
pub struct Inbound {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    parser: FrameReader,
    partial: Vec<u8>,
    partial_open: bool,
    max_message: usize,
}

impl Inbound {
    /// A receive buffer of `capacity` bytes (at least 256) starting with `leftover` (bytes
    /// that came with the handshake response).
    pub fn new(leftover: &[u8], capacity: usize, max_message: usize) -> Self {
        let mut buf = vec![0u8; capacity.max(256).max(leftover.len())];
        buf[..leftover.len()].copy_from_slice(leftover);
        Self {
            buf,
            start: 0,
            end: leftover.len(),
            parser: FrameReader::new(),
            partial: Vec::new(),
            partial_open: false,
            max_message,
        }
    }

    /// Whether unparsed bytes are buffered.
    pub fn has_buffered(&self) -> bool {
        self.start < self.end
    }

    /// One read from `r` into the buffer; returns the byte count (0 = end of stream).
    pub async fn fill<R: tokio::io::AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
    ) -> std::io::Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        // After `drain`, at most an incomplete header or control frame (< 136 bytes) is left,
        // so there is always room here.
        let n = r.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok(n)
    }

    /// Hands every complete message buffered so far to `f`, in order. Errors on a protocol
    /// violation, an oversized message, or when `f` errors.
    pub fn drain<F>(&mut self, mut f: F) -> Result<(), String>
    where
        F: FnMut(Message<'_>) -> Result<(), String>,
    {
        let Self {
            buf,
            start,
            end,
            parser,
            partial,
            partial_open,
            max_message,
        } = self;
        let max = *max_message;
        let used = parser.feed(&buf[*start..*end], |ev| match ev {
            Event::Data { opcode, chunk, end } => {
                if !*partial_open && end {
                    if chunk.len() > max {
                        return Err(format!("server message of {} bytes", chunk.len()));
                    }
                    return f(Message::Data {
                        opcode,
                        payload: chunk,
                    });
                }
                if partial.len() + chunk.len() > max {
                    return Err(format!(
                        "server message longer than {max} bytes (limit of this tool)"
                    ));
                }
                partial.extend_from_slice(chunk);
                *partial_open = !end;
                if end {
                    let r = f(Message::Data {
                        opcode,
                        payload: partial,
                    });
                    partial.clear();
                    r
                } else {
                    Ok(())
                }
            }
            Event::Ping(p) => f(Message::Ping(p)),
            Event::Pong => f(Message::Pong),
            Event::Close(c) => f(Message::Close(c)),
        })?;
        *start += used;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn server_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![b0];
        match payload.len() {
            n @ 0..=125 => f.push(n as u8),
            n @ 126..=0xFFFF => {
                f.push(126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(payload);
        f
    }

    /// Feeds `bytes` in pieces of `step`, collecting (opcode, payload, end) per message piece.
    fn run(bytes: &[u8], step: usize) -> Result<Vec<String>, String> {
        let mut r = FrameReader::new();
        let mut out = Vec::new();
        let mut pending: Vec<u8> = Vec::new();
        let mut msg: Vec<u8> = Vec::new();
        for piece in bytes.chunks(step) {
            pending.extend_from_slice(piece);
            let used = r.feed(&pending, |ev| {
                match ev {
                    Event::Data { opcode, chunk, end } => {
                        msg.extend_from_slice(chunk);
                        if end {
                            out.push(format!("data{opcode}:{}", msg.len()));
                            msg.clear();
                        }
                    }
                    other => out.push(format!("{other:?}")),
                }
                Ok(())
            })?;
            pending.drain(..used);
        }
        Ok(out)
    }

    #[test]
    fn rfc_accept_example() {
        // RFC 6455 §1.3 worked example.
        assert_eq!(
            accept_value("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn response_checks() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let ok = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\nXY";
        assert_eq!(check_response(ok, key), Ok(Some(ok.len() - 2)));
        assert_eq!(check_response(&ok[..40], key), Ok(None));
        let bad = String::from_utf8_lossy(ok).replace("s3pP", "AAAA");
        assert!(check_response(bad.as_bytes(), key).is_err());
        let not101 = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert!(check_response(not101, key).is_err());
        let no_upgrade = String::from_utf8_lossy(ok).replace("Upgrade: websocket\r\n", "");
        assert!(check_response(no_upgrade.as_bytes(), key).is_err());
    }

    #[test]
    fn url_parsing() {
        let u = WsUrl::parse("ws://127.0.0.1:9080").unwrap();
        assert_eq!(u.addr, "127.0.0.1:9080".parse().unwrap());
        assert_eq!(u.path, "/");
        let u = WsUrl::parse("ws://[::1]:81/x?y").unwrap();
        assert_eq!(u.addr, "[::1]:81".parse().unwrap());
        assert_eq!(u.path, "/x?y");
        assert!(WsUrl::parse("http://127.0.0.1:1").is_err());
        assert!(WsUrl::parse("ws://").is_err());
    }

    #[test]
    fn masked_frames_layout() {
        let key = [1, 2, 3, 4];
        let f = masked_frame(2, b"abcd", key);
        assert_eq!(&f[..6], &[0x82, 0x84, 1, 2, 3, 4]);
        assert_eq!(&f[6..], &[b'a' ^ 1, b'b' ^ 2, b'c' ^ 3, b'd' ^ 4]);
        for n in [0usize, 125, 126, 65535, 65536] {
            let f = masked_frame(2, &vec![7; n], key);
            assert_eq!(f.len(), header_len(n) + n);
        }
        assert_eq!(&masked_frame(2, &[0; 126], key)[1..4], &[0xFE, 0, 126]);
        assert_eq!(&close_frame(key)[..2], &[0x88, 0x82]);
    }

    #[test]
    fn reader_all_sizes_and_splits() {
        let mut s = Vec::new();
        for n in [0usize, 1, 125, 126, 1000, 65535, 65536, 200_000] {
            s.extend(server_frame(0x82, &vec![9; n]));
        }
        s.extend(server_frame(0x89, b"hi"));
        s.extend(server_frame(0x01, b"ab"));
        s.extend(server_frame(0x8A, b""));
        s.extend(server_frame(0x00, b"cd"));
        s.extend(server_frame(0x80, b""));
        s.extend(server_frame(0x88, &1000u16.to_be_bytes()));
        let expect = vec![
            "data2:0",
            "data2:1",
            "data2:125",
            "data2:126",
            "data2:1000",
            "data2:65535",
            "data2:65536",
            "data2:200000",
            "Ping([104, 105])",
            "Pong",
            "data1:4",
            "Close(Some(1000))",
        ];
        for step in [1, 2, 3, 7, 100, 4096, 1 << 20] {
            assert_eq!(run(&s, step).unwrap(), expect, "step {step}");
        }
    }

    #[test]
    fn inbound_reassembles_messages_across_reads() {
        let mut s = Vec::new();
        s.extend(server_frame(0x82, b"hello"));
        s.extend(server_frame(0x02, b"ab"));
        s.extend(server_frame(0x89, b"p"));
        s.extend(server_frame(0x80, b"cd"));
        s.extend(server_frame(0x82, &[5; 300]));
        s.extend(server_frame(0x88, &1000u16.to_be_bytes()));
        for step in [1, 2, 5, 64, 4096] {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let got = rt.block_on(async {
                let mut inb = Inbound::new(&s[..step.min(s.len())], 256, 1000);
                let mut rest: &[u8] = &s[step.min(s.len())..];
                let mut got = Vec::new();
                loop {
                    inb.drain(|m| {
                        got.push(match m {
                            Message::Data { opcode, payload } => {
                                format!(
                                    "d{opcode}:{}",
                                    String::from_utf8_lossy(&payload[..payload.len().min(5)])
                                )
                            }
                            other => format!("{other:?}"),
                        });
                        Ok(())
                    })
                    .unwrap();
                    if rest.is_empty() {
                        break;
                    }
                    let mut piece = &rest[..step.min(rest.len())];
                    rest = &rest[piece.len()..];
                    while !piece.is_empty() {
                        let n = inb.fill(&mut piece).await.unwrap();
                        assert!(n > 0);
                    }
                }
                got
            });
            assert_eq!(
                got,
                vec![
                    "d2:hello".to_string(),
                    "Ping([112])".into(),
                    "d2:abcd".into(),
                    "d2:\u{5}\u{5}\u{5}\u{5}\u{5}".into(),
                    "Close(Some(1000))".into()
                ],
                "step {step}"
            );
        }
        let mut inb = Inbound::new(&server_frame(0x82, &[0; 40]), 256, 39);
        assert!(inb.drain(|_| Ok(())).is_err());
    }

    #[test]
    fn reader_rejects_violations() {
        let cases: Vec<Vec<u8>> = vec![
            vec![0xC2, 0x00],                                              // RSV1
            vec![0x82, 0x80, 0, 0, 0, 0],                                  // masked
            vec![0x80, 0x00],                                              // lone continuation
            vec![0x83, 0x00],                                              // reserved opcode
            vec![0x8B, 0x00],              // reserved control opcode
            vec![0x09, 0x00],              // fragmented ping
            server_frame(0x89, &[0; 126]), // long control
            server_frame(0x88, &[3]),      // 1-byte close body
            [server_frame(0x02, b"a"), server_frame(0x82, b"b")].concat(), // interleaved
            vec![0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0], // 64-bit MSB
        ];
        for c in cases {
            assert!(run(&c, 1).is_err(), "{c:?}");
            assert!(run(&c, 64).is_err(), "{c:?}");
        }
    }
}
