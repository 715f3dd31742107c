//! Opening handshake (RFC 6455 §4), client and server.
//!
//! Everything here works without `alloc`: requests and responses are parsed
//! from caller slices (with [`httparse`] and fixed-capacity header lists of
//! [`MAX_HEADERS`] entries) and written into caller slices.
//!
//! - [`url`]: `ws://` / `wss://` URL parsing and the `Host` header value.
//! - [`client`]: the upgrade request and validation of the server's answer.
//! - [`server`]: parsing and validating the upgrade request, sub-protocol
//!   selection, the `101` answer and plain HTTP (error) answers.
//! - [`deflate`]: `Sec-WebSocket-Extensions` lists and the permessage-deflate
//!   negotiation (RFC 7692 §5, §7.1), both roles.
//! - Shared here: the accept-key computation, key generation, header token
//!   lists, the incremental end-of-head finder [`HeadScanner`] and
//!   [`HandshakeError`].
//!
//! Wire behaviour follows RFC 6455 §4 and spec/websocket-peer.md §2.5, §2.6,
//! §5 (what Redot/Godot 4 peers send and accept).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use core::fmt;
use sha1::{Digest, Sha1};

pub mod client;
pub mod deflate;
pub mod server;
pub mod url;

pub use client::{
    parse_response, parse_response_with, write_request, write_request_with, Response,
};
pub use deflate::{DeflateAnswer, DeflateConfig, DeflateParams};
pub use server::{
    parse_request, select_protocol, validate_upgrade, write_accept_response,
    write_accept_response_with, write_http_response, Request, Upgrade,
};
pub use url::{UrlError, WsUrl};

/// Header lines accepted in a request or response; more is
/// [`HandshakeError::TooManyHeaders`].
pub const MAX_HEADERS: usize = 64;

/// The GUID appended to the key before hashing (RFC 6455 §1.3, §4.2.2).
pub const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// A Godot/Redot peer reads at most this many bytes of handshake head; a
/// larger one is never completed (spec/websocket-peer.md §2.5, §2.6 step 1).
/// [`write_accept_response`] keeps the `101` answer strictly below it.
pub const GODOT_MAX_HEAD: usize = 4096;

/// A `Sec-WebSocket-Key` value: base64 text of 16 bytes (RFC 6455 §4.1).
pub type Key = [u8; 24];

/// A `Sec-WebSocket-Accept` value: base64 text of a SHA-1 digest
/// (RFC 6455 §4.2.2).
pub type Accept = [u8; 28];

/// The output slice is too small for what was to be written (or, for
/// [`write_accept_response`], the answer would reach [`GODOT_MAX_HEAD`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferTooSmall;

impl fmt::Display for BufferTooSmall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("output buffer too small for the handshake message")
    }
}

impl core::error::Error for BufferTooSmall {}

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` value (pass the key
/// without surrounding whitespace):
/// base64(SHA-1(key + [`GUID`])).
pub fn accept_key(key: &[u8]) -> Accept {
    // RFC 6455 §4.2.2 step 5.4 (/key/ concatenated with the GUID, SHA-1, base64).
    let mut hasher = Sha1::new();
    hasher.update(key);
    hasher.update(GUID.as_bytes());
    let digest = hasher.finalize();
    let mut out = [0u8; 28];
    // Cannot fail: 20 bytes always encode to exactly 28 base64 characters.
    let _ = STANDARD.encode_slice(digest.as_slice(), &mut out);
    out
}

/// A fresh `Sec-WebSocket-Key`: 16 bytes from `rng`, base64-encoded. Use a
/// cryptographically secure generator (RFC 6455 §4.1, §10.3).
pub fn generate_key<R: rand_core::RngCore + ?Sized>(rng: &mut R) -> Key {
    // RFC 6455 §4.1: "a randomly selected 16-byte value ... base64-encoded".
    let mut nonce = [0u8; 16];
    rng.fill_bytes(&mut nonce);
    let mut out = [0u8; 24];
    // Cannot fail: 16 bytes always encode to exactly 24 base64 characters.
    let _ = STANDARD.encode_slice(nonce, &mut out);
    out
}

/// True if the comma-separated header value contains `token` (ASCII
/// case-insensitive, trimmed). An empty `token` never matches.
pub fn header_has_token(value: &[u8], token: &str) -> bool {
    // RFC 7230 §7 (#rule lists) and RFC 6455 §4.2.1 item 4 ("treated as an
    // ASCII case-insensitive value").
    !token.is_empty()
        && value
            .split(|&b| b == b',')
            .any(|item| trim(item).eq_ignore_ascii_case(token.as_bytes()))
}

/// Incremental end-of-headers finder: resumes where it stopped, so feeding
/// one byte at a time is linear in the total length.
///
/// It looks for the first `CRLFCRLF` (spec/websocket-peer.md §2.5, §2.6:
/// the engine reads until `CRLFCRLF`); bytes after it (early frames) are not
/// part of the head.
#[derive(Debug, Clone, Default)]
pub struct HeadScanner {
    /// Bytes already examined: no head ends before this position.
    pos: usize,
    /// A byte other than CR/LF was seen (empty lines before the start line
    /// are skipped, RFC 7230 §3.5, as httparse does).
    started: bool,
    /// Byte positions examined in total (for the linearity test).
    #[cfg(test)]
    steps: usize,
}

impl HeadScanner {
    /// A scanner at the start of a message.
    pub const fn new() -> Self {
        HeadScanner {
            pos: 0,
            started: false,
            #[cfg(test)]
            steps: 0,
        }
    }

    /// `buf` is everything received so far (it only grows between calls).
    /// Returns `Some(len of the header block including the final CRLFCRLF)`
    /// when found (empty lines before the start line are part of the block,
    /// as httparse skips them). If `buf` shrank (contract broken), the scan
    /// restarts.
    ///
    /// Then parse `&buf[..len]` once with
    /// [`parse_request`] / [`parse_response`]; their `header_len` must equal
    /// `len`. httparse also ends a head at a bare-LF empty line, which can
    /// be shorter: treat that as malformed (the bytes between the two ends
    /// would otherwise be neither head nor frames), as `Connection` does.
    /// `Ok(None)` from them at that point cannot happen for a
    /// CRLFCRLF-terminated head, treat it as malformed too.
    pub fn find_end(&mut self, buf: &[u8]) -> Option<usize> {
        if self.pos > buf.len() {
            self.reset();
        }
        let start = self.pos;
        for (end, &byte) in buf.iter().enumerate().skip(start) {
            #[cfg(test)]
            {
                self.steps += 1;
            }
            // RFC 7230 §3.5: empty lines before the start line are ignored.
            if !self.started {
                self.started = byte != b'\r' && byte != b'\n';
                continue;
            }
            // RFC 7230 §3: the header section ends with an empty line.
            if end >= 3 && buf.get(end - 3..=end) == Some(b"\r\n\r\n".as_slice()) {
                self.pos = end;
                return Some(end + 1);
            }
        }
        self.pos = buf.len();
        None
    }

    /// Bytes examined so far (no head ends before this offset).
    pub const fn scanned(&self) -> usize {
        self.pos
    }

    /// Forget the position, for a new message.
    pub fn reset(&mut self) {
        *self = HeadScanner::new();
    }
}

/// Why a handshake failed.
///
/// Server-side variants map to the HTTP status a server answers with
/// ([`http_status`](Self::http_status)); client-side variants
/// ([`UnexpectedStatus`](Self::UnexpectedStatus) and after) are never
/// answered and map to 400 only for completeness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeError {
    /// The head is longer than allowed (checked even while incomplete).
    TooLarge,
    /// Not a well-formed HTTP/1.x head (an [`httparse`] error).
    Malformed,
    /// More than [`MAX_HEADERS`] header lines.
    TooManyHeaders,
    /// Request method is not `GET` (RFC 6455 §4.2.1 item 1).
    NotGet,
    /// Not HTTP/1.1 (RFC 6455 §4.1, §4.2.1 item 1).
    BadVersion,
    /// No `Host` header (RFC 6455 §4.2.1 item 2).
    MissingHost,
    /// `Upgrade: websocket` or the `Connection: upgrade` token is missing or
    /// wrong (RFC 6455 §4.1, §4.2.1 items 3-4).
    NotUpgrade,
    /// `Sec-WebSocket-Version` is missing or not 13: answer 426 with
    /// `Sec-WebSocket-Version: 13` (RFC 6455 §4.2.2 step 4, §4.4).
    UnsupportedWsVersion,
    /// `Sec-WebSocket-Key` missing, repeated, or not base64 of exactly 16
    /// bytes (RFC 6455 §4.2.1 item 5).
    BadKey,
    /// Client: the server answered with this status instead of 101
    /// (RFC 6455 §4.1; no redirect following).
    UnexpectedStatus(u16),
    /// Client: `Sec-WebSocket-Accept` missing, repeated or not the expected
    /// value (RFC 6455 §4.1).
    BadAccept,
    /// Client: the server selected a sub-protocol the client did not offer,
    /// or one when none was offered (RFC 6455 §4.1).
    UnexpectedProtocol,
    /// Client: a sub-protocol was offered but the server selected none.
    /// RFC 6455 allows this, so [`parse_response`] does not raise it; it is
    /// for callers that insist on a protocol (Godot clients do,
    /// spec/websocket-peer.md §2.5).
    MissingProtocol,
    /// Client: the server returned an extension we did not offer, or
    /// accepted one twice (RFC 6455 §4.1, §9.1).
    UnexpectedExtension,
    /// Client: the server's permessage-deflate answer is invalid or does not
    /// honour our offer (RFC 7692 §5: fail the connection).
    BadExtension(deflate::ParamError),
}

impl HandshakeError {
    /// The HTTP status a server answers this error with: 431 for
    /// [`TooLarge`](Self::TooLarge) / [`TooManyHeaders`](Self::TooManyHeaders),
    /// 405 for [`NotGet`](Self::NotGet), 505 for
    /// [`BadVersion`](Self::BadVersion), 426 for
    /// [`UnsupportedWsVersion`](Self::UnsupportedWsVersion), otherwise 400
    /// (RFC 6455 §4.2.1: "such as 400 Bad Request"). Add
    /// [`response_headers`](Self::response_headers) to the answer.
    pub const fn http_status(self) -> u16 {
        match self {
            HandshakeError::TooLarge | HandshakeError::TooManyHeaders => 431,
            HandshakeError::NotGet => 405,
            HandshakeError::BadVersion => 505,
            // RFC 6455 §4.2.2 step 4: 426 Upgrade Required.
            HandshakeError::UnsupportedWsVersion => 426,
            HandshakeError::Malformed
            | HandshakeError::MissingHost
            | HandshakeError::NotUpgrade
            | HandshakeError::BadKey
            | HandshakeError::UnexpectedStatus(_)
            | HandshakeError::BadAccept
            | HandshakeError::UnexpectedProtocol
            | HandshakeError::MissingProtocol
            | HandshakeError::UnexpectedExtension
            | HandshakeError::BadExtension(_) => 400,
        }
    }

    /// Headers the error answer must carry: `Sec-WebSocket-Version: 13` with
    /// 426 (RFC 6455 §4.2.2 step 4), `Allow: GET` with 405 (RFC 9110 §15.5.6);
    /// none otherwise.
    pub const fn response_headers(self) -> &'static [(&'static str, &'static str)] {
        match self {
            HandshakeError::UnsupportedWsVersion => &[("Sec-WebSocket-Version", "13")],
            HandshakeError::NotGet => &[("Allow", "GET")],
            _ => &[],
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::TooLarge => f.write_str("handshake head too large"),
            HandshakeError::Malformed => f.write_str("malformed HTTP head"),
            HandshakeError::TooManyHeaders => f.write_str("too many HTTP header lines"),
            HandshakeError::NotGet => f.write_str("upgrade request method is not GET"),
            HandshakeError::BadVersion => f.write_str("HTTP version is not HTTP/1.1"),
            HandshakeError::MissingHost => f.write_str("missing Host header"),
            HandshakeError::NotUpgrade => {
                f.write_str("not a WebSocket upgrade (Upgrade/Connection headers)")
            }
            HandshakeError::UnsupportedWsVersion => {
                f.write_str("unsupported Sec-WebSocket-Version (13 required)")
            }
            HandshakeError::BadKey => f.write_str("missing or invalid Sec-WebSocket-Key"),
            HandshakeError::UnexpectedStatus(code) => {
                write!(f, "server answered HTTP status {code} instead of 101")
            }
            HandshakeError::BadAccept => f.write_str("missing or wrong Sec-WebSocket-Accept"),
            HandshakeError::UnexpectedProtocol => {
                f.write_str("server selected a sub-protocol that was not offered")
            }
            HandshakeError::MissingProtocol => f.write_str("server selected no sub-protocol"),
            HandshakeError::UnexpectedExtension => {
                f.write_str("server selected an extension that was not offered")
            }
            HandshakeError::BadExtension(e) => write!(f, "server's extension answer: {e}"),
        }
    }
}

impl core::error::Error for HandshakeError {}

/// Strip ASCII spaces and tabs from both ends (RFC 7230 §3.2 OWS).
pub(crate) fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Bounded writer into a caller slice.
pub(crate) struct Out<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> Out<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Out { buf, len: 0 }
    }

    pub(crate) fn put(&mut self, bytes: &[u8]) -> Result<(), BufferTooSmall> {
        let end = self.len.checked_add(bytes.len()).ok_or(BufferTooSmall)?;
        let dst = self.buf.get_mut(self.len..end).ok_or(BufferTooSmall)?;
        dst.copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }

    pub(crate) fn put_str(&mut self, s: &str) -> Result<(), BufferTooSmall> {
        self.put(s.as_bytes())
    }

    /// Decimal digits of `n`.
    pub(crate) fn put_uint(&mut self, mut n: u64) -> Result<(), BufferTooSmall> {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            if let Some(d) = digits.get_mut(i) {
                *d = b'0' + (n % 10) as u8;
            }
            n /= 10;
            if n == 0 || i == 0 {
                break;
            }
        }
        self.put(digits.get(i..).unwrap_or(&[]))
    }

    /// `Name: value` CRLF.
    pub(crate) fn header(&mut self, name: &str, value: &[u8]) -> Result<(), BufferTooSmall> {
        self.put_str(name)?;
        self.put(b": ")?;
        self.put(value)?;
        self.put(b"\r\n")
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl fmt::Write for Out<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.put_str(s).map_err(|_| fmt::Error)
    }
}

/// An extra header line (`handshake_headers` entry) that is safe to write
/// verbatim: one line, `Name: value` with a token name and a non-empty value.
/// Godot peers drop a handshake with an empty header value
/// (spec/websocket-peer.md §2.5 response rules, §2.6 step 2).
pub(crate) fn is_valid_extra_header(line: &str) -> bool {
    let Some((name, value)) = line.split_once(':') else {
        return false;
    };
    !name.is_empty()
        && name.bytes().all(is_token_byte)
        && is_header_value(value.as_bytes())
        && !trim(value.as_bytes()).is_empty()
}

/// A header value that cannot break the head: no CR, LF or NUL
/// (RFC 7230 §3.2 field-value).
pub(crate) fn is_header_value(value: &[u8]) -> bool {
    !value.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0))
}

/// RFC 7230 §3.2.6 `tchar`.
pub(crate) fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    struct CountRng(u8);
    impl rand_core::RngCore for CountRng {
        fn next_u32(&mut self) -> u32 {
            0
        }
        fn next_u64(&mut self) -> u64 {
            0
        }
        fn fill_bytes(&mut self, dst: &mut [u8]) {
            for b in dst {
                *b = self.0;
                self.0 = self.0.wrapping_add(1);
            }
        }
    }

    #[test]
    fn accept_of_rfc_sample_key() {
        // spec/websocket-peer.md §6, RFC 6455 §1.3.
        assert_eq!(
            &accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn generated_key_is_base64_of_rng_bytes() {
        let key = generate_key(&mut CountRng(0));
        // base64 of 00 01 02 .. 0f
        assert_eq!(&key, b"AAECAwQFBgcICQoLDA0ODw==");
        let other = generate_key(&mut CountRng(16));
        assert_ne!(key, other);
        let mut dec = [0u8; 18];
        assert_eq!(STANDARD.decode_slice(other, &mut dec), Ok(16));
    }

    #[test]
    fn token_lists() {
        assert!(header_has_token(b"keep-alive, Upgrade", "upgrade"));
        assert!(header_has_token(b"UPGRADE", "upgrade"));
        assert!(header_has_token(b" a ,\tb\t", "b"));
        assert!(!header_has_token(b"upgrades", "upgrade"));
        assert!(!header_has_token(b"", "upgrade"));
        assert!(!header_has_token(b"a,,b", ""));
    }

    #[test]
    fn trim_strips_ows_only() {
        assert_eq!(trim(b" \t x y \t"), b"x y");
        assert_eq!(trim(b"   "), b"");
        assert_eq!(trim(b""), b"");
    }

    #[test]
    fn head_scanner_finds_end_and_ignores_trailing_bytes() {
        let msg = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n\x81\x00";
        let mut s = HeadScanner::new();
        assert_eq!(s.find_end(msg), Some(msg.len() - 2));
        let mut s = HeadScanner::new();
        assert_eq!(s.find_end(b"a\r\n\r"), None);
        assert_eq!(s.find_end(b"a\r\n\r\n"), Some(5));
        // Bare LF is not an end (the engine requires CRLFCRLF).
        assert_eq!(HeadScanner::new().find_end(b"a\n\n\n\n"), None);
        // Leading empty lines are skipped, as httparse does.
        let lead = b"\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(HeadScanner::new().find_end(lead), Some(lead.len()));
        let req = parse_request(lead, 4096).unwrap().unwrap();
        assert_eq!(req.header_len, lead.len());
    }

    #[test]
    fn head_scanner_byte_by_byte_is_linear() {
        let msg = b"GET /game HTTP/1.1\r\nHost: ::1:9080\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\n\r\n";
        let whole = HeadScanner::new().find_end(msg);
        assert_eq!(whole, Some(msg.len()));
        let mut s = HeadScanner::new();
        let mut found = None;
        for n in 0..=msg.len() {
            found = s.find_end(&msg[..n]);
            if found.is_some() {
                break;
            }
            assert_eq!(s.scanned(), n);
        }
        assert_eq!(found, whole);
        // Every byte examined exactly once: linear, not quadratic.
        assert_eq!(s.steps, msg.len());
        // A large head without an end, fed one byte at a time, stays linear.
        let junk = [b'a'; 10_000];
        let mut s = HeadScanner::new();
        for n in 0..=junk.len() {
            assert_eq!(s.find_end(&junk[..n]), None);
        }
        assert_eq!(s.steps, junk.len());
        s.reset();
        assert_eq!(s.scanned(), 0);
    }

    #[test]
    fn error_statuses() {
        assert_eq!(HandshakeError::UnsupportedWsVersion.http_status(), 426);
        assert_eq!(
            HandshakeError::UnsupportedWsVersion.response_headers(),
            &[("Sec-WebSocket-Version", "13")]
        );
        assert_eq!(HandshakeError::TooLarge.http_status(), 431);
        assert_eq!(HandshakeError::BadKey.http_status(), 400);
        assert_eq!(HandshakeError::NotGet.http_status(), 405);
        assert_eq!(HandshakeError::BadVersion.http_status(), 505);
    }

    #[test]
    fn extra_header_validity() {
        assert!(is_valid_extra_header("X-Server: wsmp"));
        assert!(is_valid_extra_header("X-A:b"));
        assert!(!is_valid_extra_header("X-Empty:"));
        assert!(!is_valid_extra_header("X-Empty:  "));
        assert!(!is_valid_extra_header("no colon"));
        assert!(!is_valid_extra_header("X-Inject: a\r\nEvil: b"));
        assert!(!is_valid_extra_header("Bad Name: a"));
    }
}
