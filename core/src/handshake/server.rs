//! Server side: parsing and validating the upgrade request (RFC 6455
//! §4.2.1), sub-protocol selection and the answers (spec/websocket-peer.md
//! §2.6, §5).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::deflate::DeflateAnswer;
use super::{
    header_has_token, is_header_value, is_token_byte, is_valid_extra_header, trim, Accept,
    BufferTooSmall, HandshakeError, Out, GODOT_MAX_HEAD, MAX_HEADERS,
};

/// A parsed HTTP/1.x request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'b> {
    /// Request method, e.g. `GET`.
    pub method: &'b str,
    /// Request target, e.g. `/game?x=1`.
    pub path: &'b str,
    /// HTTP minor version: 1 for `HTTP/1.1`, 0 for `HTTP/1.0`.
    pub version: u8,
    /// Header lines in order: name as sent, value trimmed of spaces/tabs.
    pub headers: heapless::Vec<(&'b str, &'b [u8]), MAX_HEADERS>,
    /// Length of the head including the final blank line; bytes after it
    /// are already WebSocket frames.
    pub header_len: usize,
    /// The head itself (`buf[..header_len]`).
    pub head: &'b [u8],
}

impl<'b> Request<'b> {
    /// Value of the first header called `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'b [u8]> {
        self.headers_named(name).next()
    }

    /// Values of every header called `name` (ASCII case-insensitive), in order.
    pub fn headers_named<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'b [u8]> + 's {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|&(_, v)| v)
    }

    /// True if some `Upgrade` header has the token `websocket` (any case)
    /// and some `Connection` header has the token `upgrade`
    /// (RFC 6455 §4.2.1 items 3-4). Use it to tell WebSocket requests from
    /// plain HTTP ones.
    pub fn is_upgrade(&self) -> bool {
        self.headers_named("upgrade")
            .any(|v| header_has_token(v, "websocket"))
            && self
                .headers_named("connection")
                .any(|v| header_has_token(v, "upgrade"))
    }
}

/// Parses an HTTP/1.x request head. `Ok(None)` = need more bytes, but
/// [`HandshakeError::TooLarge`] once `buf` reaches `max_len` bytes without a
/// complete head (a complete head of exactly `max_len` bytes is fine).
///
/// Re-parsing a growing buffer is quadratic: feed bytes to a
/// [`HeadScanner`](super::HeadScanner) and call this once it has found the end.
pub fn parse_request<'b>(
    buf: &'b [u8],
    max_len: usize,
) -> Result<Option<Request<'b>>, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    // Only the first max_len bytes may hold the head.
    let window = buf.get(..max_len).unwrap_or(buf);
    let header_len = match req.parse(window) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= max_len => {
            return Err(HandshakeError::TooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::TooManyHeaders),
        Err(httparse::Error::Version) => return Err(HandshakeError::BadVersion),
        Err(_) => return Err(HandshakeError::Malformed),
    };
    let (Some(method), Some(path), Some(version)) = (req.method, req.path, req.version) else {
        return Err(HandshakeError::Malformed);
    };
    let mut list = heapless::Vec::new();
    for h in req.headers.iter() {
        list.push((h.name, trim(h.value)))
            .map_err(|_| HandshakeError::TooManyHeaders)?;
    }
    Ok(Some(Request {
        method,
        path,
        version,
        headers: list,
        header_len,
        head: window.get(..header_len).unwrap_or(window),
    }))
}

/// What a valid upgrade request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upgrade<'b> {
    /// The `Sec-WebSocket-Key` value (trimmed): pass it to
    /// [`accept_key`](super::accept_key).
    pub key: &'b [u8],
    /// Raw `Sec-WebSocket-Protocol` value(s), `None` when absent. When the
    /// header is repeated, the slice spans from the first value to the end of
    /// the last one within the head, header lines in between included;
    /// [`select_protocol`] and [`protocol_entries`] read it as one list and
    /// skip the lines that are not `Sec-WebSocket-Protocol`.
    pub protocols: Option<&'b [u8]>,
}

/// RFC 6455 §4.2.1 checks: method `GET`, `HTTP/1.1`, `Host` present (value
/// not parsed: the engine sends a bare IPv6 address with a port,
/// spec/websocket-peer.md §2.5 quirk), `Upgrade` contains `websocket`,
/// `Connection` token list contains `upgrade`, `Sec-WebSocket-Version` 13
/// (else [`HandshakeError::UnsupportedWsVersion`] → 426 with
/// `Sec-WebSocket-Version: 13`), exactly one `Sec-WebSocket-Key`, base64 of
/// exactly 16 bytes. Repeated `Sec-WebSocket-Protocol` headers are one list.
pub fn validate_upgrade<'b>(req: &Request<'b>) -> Result<Upgrade<'b>, HandshakeError> {
    // RFC 6455 §4.2.1 item 1: "An HTTP/1.1 or higher GET request".
    if req.method != "GET" {
        return Err(HandshakeError::NotGet);
    }
    if req.version != 1 {
        return Err(HandshakeError::BadVersion);
    }
    // RFC 6455 §4.2.1 item 2: a |Host| header field (value not checked, spec §2.5 quirk).
    if req.header("host").is_none() {
        return Err(HandshakeError::MissingHost);
    }
    // RFC 6455 §4.2.1 items 3-4: Upgrade contains "websocket", Connection contains "Upgrade".
    if !req.is_upgrade() {
        return Err(HandshakeError::NotUpgrade);
    }
    // RFC 6455 §4.2.1 item 6 and §4.2.2 step 4: version 13, else 426.
    if !req
        .headers_named("sec-websocket-version")
        .any(|v| header_has_token(v, "13"))
    {
        return Err(HandshakeError::UnsupportedWsVersion);
    }
    // RFC 6455 §4.2.1 item 5: base64 of a 16-byte value.
    let mut keys = req.headers_named("sec-websocket-key");
    let key = keys.next().ok_or(HandshakeError::BadKey)?;
    if keys.next().is_some() || !is_valid_key(key) {
        return Err(HandshakeError::BadKey);
    }
    Ok(Upgrade {
        key,
        protocols: protocol_span(req),
    })
}

/// Base64 (with padding) of exactly 16 bytes: 24 characters.
fn is_valid_key(key: &[u8]) -> bool {
    let mut decoded = [0u8; 18];
    key.len() == 24 && STANDARD.decode_slice(key, &mut decoded) == Ok(16)
}

/// The raw `Sec-WebSocket-Protocol` value, or the span of all of them.
fn protocol_span<'b>(req: &Request<'b>) -> Option<&'b [u8]> {
    let mut values = req.headers_named("sec-websocket-protocol");
    let first = values.next()?;
    let Some(last) = values.last() else {
        return Some(first);
    };
    // Offsets of the values inside the head (they are sub-slices of it).
    let base = req.head.as_ptr() as usize;
    let start = (first.as_ptr() as usize).checked_sub(base)?;
    let end = (last.as_ptr() as usize)
        .checked_sub(base)?
        .checked_add(last.len())?;
    req.head.get(start..end).or(Some(first))
}

/// The entries of a raw `Sec-WebSocket-Protocol` value as given in
/// [`Upgrade::protocols`]: split on `,`, trimmed, empty entries skipped,
/// in the client's order (across repeated headers too).
pub fn protocol_entries(offered: &[u8]) -> impl Iterator<Item = &[u8]> {
    offered
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .enumerate()
        .filter_map(|(i, line)| {
            if i == 0 {
                return Some(line);
            }
            // A later header line of the span: keep only Sec-WebSocket-Protocol ones.
            let colon = line.iter().position(|&b| b == b':')?;
            let (name, value) = line.split_at(colon);
            trim(name)
                .eq_ignore_ascii_case(b"sec-websocket-protocol")
                .then(|| value.get(1..).unwrap_or(&[]))
        })
        .flat_map(|value| value.split(|&b| b == b','))
        .map(trim)
        .filter(|entry| !entry.is_empty())
}

/// First entry of the client's offered list (in the client's order,
/// trimmed) that exactly equals one of `supported` (spec/websocket-peer.md
/// §2.6 step 2). `None` when nothing matches, none was offered or none is
/// supported: then answer without the header (RFC 6455 §4.2.2 step 5.5 —
/// unlike the engine, which drops the connection).
pub fn select_protocol<'b>(offered: Option<&'b [u8]>, supported: &[&str]) -> Option<&'b str> {
    protocol_entries(offered?)
        .find(|entry| supported.iter().any(|s| s.as_bytes() == *entry))
        .and_then(|entry| core::str::from_utf8(entry).ok())
}

/// Writes the `101` answer of spec/websocket-peer.md §2.6 step 3 exactly:
/// `HTTP/1.1 101 Switching Protocols`, `Upgrade: websocket`,
/// `Connection: Upgrade`, `Sec-WebSocket-Accept: …`,
/// [`Sec-WebSocket-Protocol: x`], extra headers verbatim, blank line.
///
/// Never writes an empty header value (spec/websocket-peer.md §5 item 1): an
/// empty `protocol` is left out, as is an extra header that is not one
/// `Name: value` line with a non-empty value. Fails with [`BufferTooSmall`]
/// if `out` is too small or the answer would be [`GODOT_MAX_HEAD`] (4096)
/// bytes or more (Godot clients refuse it, spec/websocket-peer.md §2.5).
pub fn write_accept_response(
    accept: &Accept,
    protocol: Option<&str>,
    extra_headers: &[&str],
    out: &mut [u8],
) -> Result<usize, BufferTooSmall> {
    write_accept_response_with(accept, protocol, None, extra_headers, out)
}

/// [`write_accept_response`] with the answer to a permessage-deflate offer
/// (from [`negotiate`](super::deflate::negotiate)) written as
/// `Sec-WebSocket-Extensions` after the `Sec-WebSocket-Protocol` line
/// (RFC 7692 §5). With `None` the bytes are exactly those of
/// [`write_accept_response`].
pub fn write_accept_response_with(
    accept: &Accept,
    protocol: Option<&str>,
    deflate: Option<&DeflateAnswer>,
    extra_headers: &[&str],
    out: &mut [u8],
) -> Result<usize, BufferTooSmall> {
    let mut w = Out::new(out);
    // spec/websocket-peer.md §2.6 step 3 lines 1-4; RFC 6455 §4.2.2 step 5.
    w.put(b"HTTP/1.1 101 Switching Protocols\r\n")?;
    w.put(b"Upgrade: websocket\r\n")?;
    w.put(b"Connection: Upgrade\r\n")?;
    w.header("Sec-WebSocket-Accept", accept)?;
    // spec/websocket-peer.md §2.6 step 3 line 5: only if one was selected.
    if let Some(p) = protocol {
        let p = trim(p.as_bytes());
        if !p.is_empty() && is_header_value(p) {
            w.header("Sec-WebSocket-Protocol", p)?;
        }
    }
    // RFC 6455 §4.2.2 step 5.6 / RFC 7692 §5: the accepted extension, only
    // when the client offered it (Godot clients never do).
    if let Some(answer) = deflate {
        let mut value = [0u8; 160];
        let n = answer.write_value(&mut value)?;
        w.header("Sec-WebSocket-Extensions", value.get(..n).unwrap_or(&[]))?;
    }
    // spec/websocket-peer.md §2.6 step 3 lines 6…: handshake_headers verbatim.
    for h in extra_headers.iter().filter(|h| is_valid_extra_header(h)) {
        w.put_str(h)?;
        w.put(b"\r\n")?;
    }
    w.put(b"\r\n")?;
    // spec/websocket-peer.md §2.5 / §5 item 1: the header block must fit in 4096 bytes.
    if w.len() >= GODOT_MAX_HEAD {
        return Err(BufferTooSmall);
    }
    Ok(w.len())
}

/// Writes any other HTTP response (errors, plain HTTP answers): the status
/// line with the standard reason phrase for `status` ([`reason_phrase`];
/// empty for unknown codes), the given headers, `Content-Length`,
/// `Connection: close`, the blank line, then `body`.
///
/// Do not pass `Content-Length` or `Connection` in `headers`. A header whose
/// name is not a token or whose value contains CR, LF or NUL is left out.
/// `status` outside 100..=999 is written as 500.
pub fn write_http_response(
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
    out: &mut [u8],
) -> Result<usize, BufferTooSmall> {
    // RFC 9110 §15: a status code is three digits.
    let status = if (100..=999).contains(&status) {
        status
    } else {
        500
    };
    let mut w = Out::new(out);
    // RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ].
    w.put(b"HTTP/1.1 ")?;
    w.put_uint(u64::from(status))?;
    w.put(b" ")?;
    w.put_str(reason_phrase(status).unwrap_or(""))?;
    w.put(b"\r\n")?;
    for (name, value) in headers {
        if !name.is_empty() && name.bytes().all(is_token_byte) && is_header_value(value.as_bytes())
        {
            w.header(name, value.as_bytes())?;
        }
    }
    // RFC 9112 §6.3: the body length; RFC 9112 §9.6: close after answering.
    w.put(b"Content-Length: ")?;
    w.put_uint(body.len() as u64)?;
    w.put(b"\r\nConnection: close\r\n\r\n")?;
    w.put(body)?;
    Ok(w.len())
}

/// The standard reason phrase of an HTTP status code (RFC 9110 §15, plus
/// 426/428/429/431 from RFC 9110 / RFC 6585), `None` if unknown.
pub const fn reason_phrase(status: u16) -> Option<&'static str> {
    Some(match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => return None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::{accept_key, HeadScanner};
    use super::*;

    /// A Godot 4 client's request (spec/websocket-peer.md §2.5 shape), with
    /// the engine's bare IPv6 `Host` quirk.
    const GODOT_REQ: &[u8] = b"GET /game HTTP/1.1\r\nHost: ::1:9080\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
Sec-WebSocket-Protocol: chat,game\r\nX-Custom: 1\r\n\r\n";

    fn parse(buf: &[u8]) -> Request<'_> {
        parse_request(buf, 4096).unwrap().unwrap()
    }

    fn validate(buf: &[u8]) -> Result<Upgrade<'_>, HandshakeError> {
        validate_upgrade(&parse(buf))
    }

    /// GODOT_REQ with `from` replaced by `to` (whole-buffer, first match).
    fn edit(from: &str, to: &str) -> heapless::Vec<u8, 1024> {
        let s = core::str::from_utf8(GODOT_REQ).unwrap();
        let i = s.find(from).unwrap();
        let mut v = heapless::Vec::new();
        v.extend_from_slice(&GODOT_REQ[..i]).unwrap();
        v.extend_from_slice(to.as_bytes()).unwrap();
        v.extend_from_slice(&GODOT_REQ[i + from.len()..]).unwrap();
        v
    }

    #[test]
    fn godot_client_request_accepted() {
        let req = parse(GODOT_REQ);
        assert_eq!((req.method, req.path, req.version), ("GET", "/game", 1));
        assert_eq!(req.header_len, GODOT_REQ.len());
        assert_eq!(req.header("HOST"), Some(b"::1:9080".as_slice()));
        assert_eq!(req.header("x-custom"), Some(b"1".as_slice()));
        assert!(req.is_upgrade());
        let up = validate_upgrade(&req).unwrap();
        assert_eq!(up.key, b"dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(up.protocols, Some(b"chat,game".as_slice()));
        assert_eq!(
            select_protocol(up.protocols, &["game", "chat"]),
            Some("chat")
        );
    }

    #[test]
    fn request_missing_key_rejected_400() {
        let r = edit("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "");
        let e = validate(&r).unwrap_err();
        assert_eq!((e, e.http_status()), (HandshakeError::BadKey, 400));
    }

    #[test]
    fn request_bad_key_length_rejected_400() {
        for bad in [
            "dGhlIHNhbXBsZSBub25j",              // 15 bytes' worth, unpadded
            "dGhlIHNhbXBsZSBub25jZQ",            // 16 bytes unpadded (22 chars)
            "dGhlIHNhbXBsZSBub25jZQAA",          // 18 bytes
            "dGhlIHNhbXBsZSBub25jZQ=!",          // not base64
            "",                                  // empty
            "dGhlIHNhbXBsZSBub25jZQ==dGhlIHNhb", // too long
        ] {
            let r = edit("dGhlIHNhbXBsZSBub25jZQ==", bad);
            let e = validate(&r).unwrap_err();
            assert_eq!((e, e.http_status()), (HandshakeError::BadKey, 400), "{bad}");
        }
        // Repeated key.
        let r = edit(
            "Sec-WebSocket-Version",
            "Sec-WebSocket-Key: AAECAwQFBgcICQoLDA0ODw==\r\nSec-WebSocket-Version",
        );
        assert_eq!(validate(&r), Err(HandshakeError::BadKey));
    }

    #[test]
    fn request_version_8_rejected_426() {
        let r = edit("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8");
        let e = validate(&r).unwrap_err();
        assert_eq!(e, HandshakeError::UnsupportedWsVersion);
        assert_eq!(e.http_status(), 426);
        assert_eq!(e.response_headers(), &[("Sec-WebSocket-Version", "13")]);
        let mut out = [0u8; 256];
        let n = write_http_response(e.http_status(), e.response_headers(), b"", &mut out).unwrap();
        assert_eq!(
            &out[..n],
            b"HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n\
Content-Length: 0\r\nConnection: close\r\n\r\n"
        );
        // Missing version: also 426.
        let r = edit("Sec-WebSocket-Version: 13\r\n", "");
        assert_eq!(validate(&r), Err(HandshakeError::UnsupportedWsVersion));
    }

    #[test]
    fn request_post_rejected_405() {
        let r = edit("GET", "POST");
        let e = validate(&r).unwrap_err();
        assert_eq!((e, e.http_status()), (HandshakeError::NotGet, 405));
    }

    #[test]
    fn request_http10_rejected_505() {
        let r = edit("HTTP/1.1", "HTTP/1.0");
        let e = validate(&r).unwrap_err();
        assert_eq!((e, e.http_status()), (HandshakeError::BadVersion, 505));
        // A version httparse does not know at all.
        let r = edit("HTTP/1.1", "HTTP/2.0");
        assert_eq!(parse_request(&r, 4096), Err(HandshakeError::BadVersion));
    }

    #[test]
    fn request_missing_upgrade_rejected_400() {
        let r = edit("Upgrade: websocket\r\n", "");
        let req = parse(&r);
        assert!(!req.is_upgrade());
        let e = validate_upgrade(&req).unwrap_err();
        assert_eq!((e, e.http_status()), (HandshakeError::NotUpgrade, 400));
        let r = edit("Connection: Upgrade", "Connection: keep-alive");
        assert_eq!(validate(&r), Err(HandshakeError::NotUpgrade));
        // Token lists and case are fine.
        let r = edit("Connection: Upgrade", "connection: keep-alive, UPGRADE");
        assert!(validate(&r).is_ok());
        let r = edit("Upgrade: websocket", "upgrade: WebSocket");
        assert!(validate(&r).is_ok());
    }

    #[test]
    fn request_missing_host_rejected_400() {
        let r = edit("Host: ::1:9080\r\n", "");
        let e = validate(&r).unwrap_err();
        assert_eq!((e, e.http_status()), (HandshakeError::MissingHost, 400));
    }

    #[test]
    fn request_malformed_and_too_many_headers() {
        assert_eq!(
            parse_request(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", 4096),
            Err(HandshakeError::Malformed)
        );
        let mut v: heapless::Vec<u8, 4096> = heapless::Vec::new();
        v.extend_from_slice(b"GET / HTTP/1.1\r\n").unwrap();
        for _ in 0..=MAX_HEADERS {
            v.extend_from_slice(b"X: y\r\n").unwrap();
        }
        v.extend_from_slice(b"\r\n").unwrap();
        let e = parse_request(&v, 4096).unwrap_err();
        assert_eq!((e, e.http_status()), (HandshakeError::TooManyHeaders, 431));
    }

    #[test]
    fn request_every_prefix_needs_more() {
        for n in 0..GODOT_REQ.len() {
            assert!(
                matches!(parse_request(&GODOT_REQ[..n], 4096), Ok(None)),
                "prefix of {n} bytes"
            );
        }
        assert!(parse_request(GODOT_REQ, 4096).unwrap().is_some());
    }

    #[test]
    fn request_too_large() {
        let n = GODOT_REQ.len();
        assert_eq!(
            parse_request(GODOT_REQ, n - 1).unwrap_err(),
            HandshakeError::TooLarge
        );
        assert!(parse_request(GODOT_REQ, n).unwrap().is_some());
        // Incomplete but already at the limit.
        assert_eq!(
            parse_request(&GODOT_REQ[..40], 40).unwrap_err(),
            HandshakeError::TooLarge
        );
        assert!(matches!(parse_request(&GODOT_REQ[..40], 41), Ok(None)));
        assert_eq!(HandshakeError::TooLarge.http_status(), 431);
    }

    #[test]
    fn head_scanner_then_parse_matches_whole_parse() {
        // Bytes after the head (an early frame) stay out of it.
        let mut stream: heapless::Vec<u8, 1024> = heapless::Vec::new();
        stream.extend_from_slice(GODOT_REQ).unwrap();
        stream.extend_from_slice(&[0x81, 0x80, 1, 2, 3, 4]).unwrap();
        let mut scanner = HeadScanner::new();
        let mut end = None;
        for n in 0..=stream.len() {
            end = scanner.find_end(&stream[..n]);
            if end.is_some() {
                break;
            }
        }
        let end = end.unwrap();
        assert_eq!(end, GODOT_REQ.len());
        let req = parse_request(&stream[..end], 4096).unwrap().unwrap();
        let whole = parse_request(&stream, 4096).unwrap().unwrap();
        assert_eq!(req.header_len, whole.header_len);
        assert_eq!(req.headers, whole.headers);
    }

    #[test]
    fn protocol_selection_in_client_order() {
        let offered = Some(b" b , a ,c".as_slice());
        assert_eq!(select_protocol(offered, &["a", "b"]), Some("b"));
        assert_eq!(select_protocol(offered, &["c", "a"]), Some("a"));
        assert_eq!(select_protocol(offered, &["x"]), None);
        assert_eq!(select_protocol(offered, &[]), None);
        assert_eq!(select_protocol(None, &["a"]), None);
        assert_eq!(select_protocol(Some(b"".as_slice()), &[""]), None);
        // Exact match only (case-sensitive).
        assert_eq!(select_protocol(Some(b"A".as_slice()), &["a"]), None);
    }

    #[test]
    fn repeated_protocol_headers_are_one_list() {
        let r = edit(
            "Sec-WebSocket-Protocol: chat,game\r\n",
            "Sec-WebSocket-Protocol: one\r\nX-Between: game, two\r\n\
sec-websocket-protocol: two , three\r\n",
        );
        let up = validate(&r).unwrap();
        let p = up.protocols.unwrap();
        let mut got: heapless::Vec<&[u8], 8> = heapless::Vec::new();
        for e in protocol_entries(p) {
            got.push(e).unwrap();
        }
        assert_eq!(got.as_slice(), &[b"one".as_slice(), b"two", b"three"]);
        assert_eq!(
            select_protocol(up.protocols, &["three", "game"]),
            Some("three")
        );
        assert_eq!(select_protocol(up.protocols, &["game"]), None);
    }

    fn assert_no_empty_values(head: &[u8]) {
        let text = core::str::from_utf8(head).unwrap();
        let lines: heapless::Vec<&str, 80> = text.split("\r\n").collect();
        // status line, headers, "", "" (after the final CRLF)
        assert_eq!(lines[lines.len() - 2..], ["", ""]);
        for line in &lines[1..lines.len() - 2] {
            let (name, value) = line.split_once(':').unwrap();
            assert!(!name.is_empty(), "{line:?}");
            assert!(!value.trim().is_empty(), "empty value in {line:?}");
        }
    }

    #[test]
    fn spec_vector_server_response_is_byte_exact() {
        // spec/websocket-peer.md §6.
        let accept = accept_key(b"dGhlIHNhbXBsZSBub25jZQ==");
        let mut out = [0u8; 4096];
        let n = write_accept_response(&accept, None, &[], &mut out).unwrap();
        assert_eq!(
            &out[..n],
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        );
    }

    #[test]
    fn accept_response_each_case_small_and_no_empty_values() {
        let accept = accept_key(b"dGhlIHNhbXBsZSBub25jZQ==");
        let extra = ["X-Server: wsmp", "Set-Cookie: a=b; Path=/"];
        for protocol in [None, Some("game"), Some(""), Some("  ")] {
            for extra in [&extra[..], &[], &["X-Empty:", "X-Ok: 1"]] {
                let mut out = [0u8; 4096];
                let n = write_accept_response(&accept, protocol, extra, &mut out).unwrap();
                assert!(n < GODOT_MAX_HEAD);
                assert_no_empty_values(&out[..n]);
                let head = &out[..n];
                let has_proto = head
                    .windows(30)
                    .any(|w| w == b"Sec-WebSocket-Protocol: game\r\n");
                assert_eq!(has_proto, protocol == Some("game"));
                for h in extra.iter().filter(|h| !h.ends_with(':')) {
                    assert!(head.windows(h.len()).any(|w| w == h.as_bytes()), "{h}");
                }
            }
        }
        // handshake_headers appended verbatim, in order, before the blank line.
        let mut out = [0u8; 4096];
        let n = write_accept_response(&accept, Some("game"), &extra, &mut out).unwrap();
        assert!(out[..n].ends_with(
            b"Sec-WebSocket-Protocol: game\r\nX-Server: wsmp\r\nSet-Cookie: a=b; Path=/\r\n\r\n"
        ));
    }

    #[test]
    fn accept_response_limit_4096() {
        let accept = accept_key(b"dGhlIHNhbXBsZSBub25jZQ==");
        let mut big = [b'v'; 5000];
        big[..3].copy_from_slice(b"X: ");
        let big = core::str::from_utf8(&big).unwrap();
        let mut out = [0u8; 8192];
        assert_eq!(
            write_accept_response(&accept, None, &[big], &mut out),
            Err(BufferTooSmall)
        );
        // Just below the limit is fine, at the limit is not.
        let base = write_accept_response(&accept, None, &[], &mut out).unwrap();
        let fits = 4095 - base - 2; // header line + CRLF
        let ok = &big[..fits];
        assert_eq!(
            write_accept_response(&accept, None, &[ok], &mut out),
            Ok(4095)
        );
        let too = &big[..fits + 1];
        assert_eq!(
            write_accept_response(&accept, None, &[too], &mut out),
            Err(BufferTooSmall)
        );
        // Small output buffers.
        let mut small = [0u8; 50];
        assert_eq!(
            write_accept_response(&accept, None, &[], &mut small),
            Err(BufferTooSmall)
        );
    }

    #[test]
    fn http_response_shape() {
        let mut out = [0u8; 256];
        let n = write_http_response(
            404,
            &[
                ("Content-Type", "text/plain"),
                ("Bad\r\nName", "x"),
                ("X", "a\r\nb"),
            ],
            b"nope",
            &mut out,
        )
        .unwrap();
        assert_eq!(
            &out[..n],
            b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n\
Content-Length: 4\r\nConnection: close\r\n\r\nnope"
        );
        let n = write_http_response(299, &[], b"", &mut out).unwrap();
        assert!(out[..n].starts_with(b"HTTP/1.1 299 \r\n"));
        let n = write_http_response(7, &[], b"", &mut out).unwrap();
        assert!(out[..n].starts_with(b"HTTP/1.1 500 Internal Server Error\r\n"));
        let e = HandshakeError::NotGet;
        let n = write_http_response(e.http_status(), e.response_headers(), b"", &mut out).unwrap();
        assert!(out[..n].starts_with(b"HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\n"));
        let mut small = [0u8; 20];
        assert_eq!(
            write_http_response(400, &[], b"", &mut small),
            Err(BufferTooSmall)
        );
    }

    #[test]
    fn full_exchange_client_to_server_to_client() {
        use super::super::client::{parse_response, write_request};
        use super::super::url::WsUrl;
        let url = WsUrl::parse("ws://[::1]:9080/lobby").unwrap();
        let key = *b"AAECAwQFBgcICQoLDA0ODw==";
        let mut req_buf = [0u8; 1024];
        let n = write_request(&url, &key, &["chat", "game"], &["X-A: 1"], &mut req_buf).unwrap();
        let req = parse_request(&req_buf[..n], 4096).unwrap().unwrap();
        assert_eq!(req.header("host"), Some(b"[::1]:9080".as_slice()));
        let up = validate_upgrade(&req).unwrap();
        let proto = select_protocol(up.protocols, &["game"]);
        assert_eq!(proto, Some("game"));
        let mut resp = [0u8; 1024];
        let m = write_accept_response(&accept_key(up.key), proto, &[], &mut resp).unwrap();
        let r = parse_response(&resp[..m], &accept_key(&key), &["chat", "game"], 4096)
            .unwrap()
            .unwrap();
        assert_eq!(r.protocol, Some("game"));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod proptests {
    extern crate std;
    use super::super::client::parse_response;
    use super::super::HeadScanner;
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parse_request_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600),
                                      max_len in 0usize..700) {
            if let Ok(Some(req)) = parse_request(&bytes, max_len) {
                prop_assert!(req.header_len <= max_len.min(bytes.len()));
                let up = validate_upgrade(&req);
                if let Ok(up) = up {
                    let _ = select_protocol(up.protocols, &["a", "b"]);
                }
                let _ = req.is_upgrade();
            }
        }

        #[test]
        fn parse_response_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600),
                                       max_len in 0usize..700) {
            if let Ok(Some(r)) = parse_response(&bytes, &[b'a'; 28], &["a"], max_len) {
                prop_assert!(r.header_len <= max_len.min(bytes.len()));
            }
        }

        #[test]
        fn scanner_chunked_equals_whole_and_agrees_with_parser(
            body in proptest::collection::vec(
                prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'a'), Just(b':'), Just(b' '), Just(b'/'),
                            any::<u8>()], 0..300),
            request in any::<bool>(),
            chunk in 1usize..20,
        ) {
            let mut buf = std::vec::Vec::new();
            buf.extend_from_slice(if request { b"GET / HTTP/1.1\r\n".as_slice() } else { b"HTTP/1.1 101 OK\r\n" });
            buf.extend_from_slice(&body);
            let whole = HeadScanner::new().find_end(&buf);
            let mut s = HeadScanner::new();
            let mut chunked = None;
            let mut n = 0;
            while chunked.is_none() && n < buf.len() {
                n = (n + chunk).min(buf.len());
                chunked = s.find_end(&buf[..n]);
            }
            prop_assert_eq!(chunked, whole);
            if let Some(len) = whole {
                // A CRLFCRLF-terminated head is never "need more" to the parsers.
                if request {
                    match parse_request(&buf[..len], 4096) {
                        Ok(Some(r)) => prop_assert!(r.header_len <= len),
                        Ok(None) => prop_assert!(false, "need more after scanner end"),
                        Err(_) => {}
                    }
                } else {
                    match parse_response(&buf[..len], &[b'a'; 28], &[], 4096) {
                        Ok(Some(r)) => prop_assert!(r.header_len <= len),
                        Ok(None) => prop_assert!(false, "need more after scanner end"),
                        Err(_) => {}
                    }
                }
            }
        }

        #[test]
        fn header_shaped_input_never_panics(
            lines in proptest::collection::vec(
                proptest::string::string_regex(
                    "(?i)(upgrade|connection|sec-websocket-(key|version|protocol|accept|extensions)|host|x): ?[ -~]{0,30}"
                ).unwrap(), 0..12),
            response in any::<bool>(),
        ) {
            let mut buf = std::vec::Vec::new();
            buf.extend_from_slice(if response { b"HTTP/1.1 101 OK\r\n".as_slice() } else { b"GET / HTTP/1.1\r\n" });
            for l in &lines {
                buf.extend_from_slice(l.as_bytes());
                buf.extend_from_slice(b"\r\n");
            }
            buf.extend_from_slice(b"\r\n");
            if response {
                let _ = parse_response(&buf, &[b'a'; 28], &["a", "b"], 4096);
            } else if let Ok(Some(req)) = parse_request(&buf, 4096) {
                if let Ok(up) = validate_upgrade(&req) {
                    let _ = select_protocol(up.protocols, &["a", "b"]);
                }
            }
        }
    }

    #[test]
    fn fuzz_corpus_from_valid_request() {
        // Deterministic mutations of a valid request: every single-byte change.
        let base: &[u8] =
            b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
Sec-WebSocket-Protocol: a, b\r\nSec-WebSocket-Protocol: c\r\n\r\n";
        let mut buf = std::vec::Vec::from(base);
        for i in 0..base.len() {
            for b in [0u8, b'\r', b'\n', b',', b':', b' ', 0xff] {
                buf[i] = b;
                if let Ok(Some(req)) = parse_request(&buf, 4096) {
                    if let Ok(up) = validate_upgrade(&req) {
                        let _ = select_protocol(up.protocols, &["a", "b", "c"]);
                    }
                }
            }
            buf[i] = base[i];
        }
    }
}
