//! Client side: the upgrade request (spec/websocket-peer.md §2.5) and
//! validation of the server's answer (RFC 6455 §4.1).

use super::deflate::{self, DeflateConfig, DeflateParams};
use super::url::WsUrl;
use super::{
    header_has_token, is_header_value, is_valid_extra_header, trim, Accept, HandshakeError, Key,
    Out, MAX_HEADERS,
};

pub use super::BufferTooSmall;

/// Writes the request of spec/websocket-peer.md §2.5, exactly those lines in
/// that order: `GET <path> HTTP/1.1`, `Host`, `Upgrade: websocket`,
/// `Connection: Upgrade`, `Sec-WebSocket-Key`, `Sec-WebSocket-Version: 13`,
/// `Sec-WebSocket-Protocol: a,b,c` (only if `protocols` has a non-empty
/// entry; comma-joined, no spaces), each extra header verbatim, blank line.
///
/// Returns the number of bytes written to `out`. Empty protocol entries are
/// skipped. An extra header that is not one `Name: value` line with a
/// non-empty value is skipped (a Godot server drops a request carrying an
/// empty header value, spec/websocket-peer.md §2.6 step 2);
/// `Config::validate` rejects malformed entries up front.
pub fn write_request(
    url: &WsUrl<'_>,
    key: &Key,
    protocols: &[&str],
    extra_headers: &[&str],
    out: &mut [u8],
) -> Result<usize, BufferTooSmall> {
    write_request_with(url, key, protocols, None, extra_headers, out)
}

/// [`write_request`] with a permessage-deflate offer from `deflate`
/// (RFC 7692 §7.1), written as `Sec-WebSocket-Extensions` right after the
/// `Sec-WebSocket-Protocol` line. With `None` the bytes are exactly those of
/// [`write_request`] (what a Godot engine sends, spec/websocket-peer.md §2.5).
pub fn write_request_with(
    url: &WsUrl<'_>,
    key: &Key,
    protocols: &[&str],
    deflate: Option<&DeflateConfig>,
    extra_headers: &[&str],
    out: &mut [u8],
) -> Result<usize, BufferTooSmall> {
    let mut w = Out::new(out);
    // spec/websocket-peer.md §2.5 line 1; RFC 6455 §4.1 items 1-3.
    w.put(b"GET ")?;
    if !url.path.starts_with('/') {
        w.put(b"/")?;
    }
    w.put_str(url.path)?;
    w.put(b" HTTP/1.1\r\n")?;
    // spec/websocket-peer.md §2.5 line 2; RFC 6455 §4.1 item 4 (brackets: RFC 7230 §5.4).
    w.put(b"Host: ")?;
    url.write_host(&mut w).map_err(|_| BufferTooSmall)?;
    w.put(b"\r\n")?;
    // spec/websocket-peer.md §2.5 lines 3-6; RFC 6455 §4.1 items 5-9.
    w.put(b"Upgrade: websocket\r\n")?;
    w.put(b"Connection: Upgrade\r\n")?;
    w.header("Sec-WebSocket-Key", key)?;
    w.put(b"Sec-WebSocket-Version: 13\r\n")?;
    // spec/websocket-peer.md §2.5 line 7: only when some protocol is offered.
    let mut offered = protocols
        .iter()
        .filter(|p| !p.is_empty() && is_header_value(p.as_bytes()));
    if let Some(first) = offered.next() {
        w.put(b"Sec-WebSocket-Protocol: ")?;
        w.put_str(first)?;
        for p in offered {
            w.put(b",")?;
            w.put_str(p)?;
        }
        w.put(b"\r\n")?;
    }
    // RFC 6455 §4.1 item 11 / RFC 7692 §5: our extension offer.
    if let Some(config) = deflate {
        let mut value = [0u8; 160];
        let n = deflate::write_offer(config, &mut value)?;
        w.header("Sec-WebSocket-Extensions", value.get(..n).unwrap_or(&[]))?;
    }
    // spec/websocket-peer.md §2.5 lines 8…: handshake_headers verbatim.
    for h in extra_headers.iter().filter(|h| is_valid_extra_header(h)) {
        w.put_str(h)?;
        w.put(b"\r\n")?;
    }
    w.put(b"\r\n")?;
    Ok(w.len())
}

/// A validated `101 Switching Protocols` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response<'b> {
    /// Always 101 when returned by [`parse_response`].
    pub status: u16,
    /// The sub-protocol the server selected (one of those offered), if any.
    pub protocol: Option<&'b str>,
    /// The permessage-deflate parameters the server accepted, when we
    /// offered it and it agreed ([`parse_response_with`]).
    pub permessage_deflate: Option<DeflateParams>,
    /// Length of the head including the final CRLFCRLF; bytes after it are
    /// already WebSocket frames.
    pub header_len: usize,
}

/// Parses and validates the server's answer. `Ok(None)` = need more bytes.
///
/// Validation the RFC way (RFC 6455 §4.1, client requirements): status 101
/// (else [`HandshakeError::UnexpectedStatus`]) on HTTP/1.1, `Upgrade` equal
/// to `websocket` (case-insensitive), `Connection` a token list containing
/// `upgrade` (case-insensitive), exactly one `Sec-WebSocket-Accept` exactly
/// equal to `expected_accept`, a returned `Sec-WebSocket-Protocol` must be
/// one of `offered` (exact match; none may be returned when none was
/// offered; the server may select none), any non-empty
/// `Sec-WebSocket-Extensions` is an error (we offer none). Header names are
/// case-insensitive, values trimmed. A head larger than `max_len` is
/// [`HandshakeError::TooLarge`], even while incomplete.
pub fn parse_response<'b>(
    buf: &'b [u8],
    expected_accept: &Accept,
    offered: &[&str],
    max_len: usize,
) -> Result<Option<Response<'b>>, HandshakeError> {
    parse_response_with(buf, expected_accept, offered, None, max_len)
}

/// [`parse_response`] after an offer of permessage-deflate made from
/// `deflate` ([`write_request_with`]): a `Sec-WebSocket-Extensions` answer
/// may then accept it, once, and must honour it
/// ([`deflate::accept_response`]; otherwise
/// [`HandshakeError::BadExtension`]). Any other extension, or a second
/// acceptance, is [`HandshakeError::UnexpectedExtension`] (RFC 6455 §9.1).
pub fn parse_response_with<'b>(
    buf: &'b [u8],
    expected_accept: &Accept,
    offered: &[&str],
    deflate: Option<&DeflateConfig>,
    max_len: usize,
) -> Result<Option<Response<'b>>, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    // Only the first max_len bytes may hold the head.
    let window = buf.get(..max_len).unwrap_or(buf);
    let header_len = match resp.parse(window) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= max_len => {
            return Err(HandshakeError::TooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::TooManyHeaders),
        Err(_) => return Err(HandshakeError::Malformed),
    };

    // RFC 6455 §4.1: "If the status code received from the server is not 101 ..."
    let status = resp.code.ok_or(HandshakeError::Malformed)?;
    if status != 101 {
        return Err(HandshakeError::UnexpectedStatus(status));
    }
    // RFC 6455 §4.1 / RFC 7230 §2.6: the response to an HTTP/1.1 upgrade.
    if resp.version != Some(1) {
        return Err(HandshakeError::BadVersion);
    }

    let mut upgrade_ok = false;
    let mut upgrade_bad = false;
    let mut connection_ok = false;
    let mut accepts = 0usize;
    let mut accept_ok = false;
    let mut protocol: Option<&'b [u8]> = None;
    let mut protocols = 0usize;
    let mut permessage_deflate = None;
    for h in resp.headers.iter() {
        let value = trim(h.value);
        let name = h.name;
        if name.eq_ignore_ascii_case("upgrade") {
            // RFC 6455 §4.1 item 2: ASCII case-insensitive match for "websocket".
            if value.eq_ignore_ascii_case(b"websocket") {
                upgrade_ok = true;
            } else {
                upgrade_bad = true;
            }
        } else if name.eq_ignore_ascii_case("connection") {
            // RFC 6455 §4.1 item 3 (token list, RFC 7230 §6.1).
            connection_ok |= header_has_token(value, "upgrade");
        } else if name.eq_ignore_ascii_case("sec-websocket-accept") {
            // RFC 6455 §4.1 item 4: exact (case-sensitive) match.
            accepts += 1;
            accept_ok = value == expected_accept.as_slice();
        } else if name.eq_ignore_ascii_case("sec-websocket-protocol") {
            protocols += 1;
            protocol = Some(value);
        } else if name.eq_ignore_ascii_case("sec-websocket-extensions") {
            for ext in deflate::extension_list(value) {
                // RFC 6455 §4.1 item 5: only an extension we offered, once.
                let is_ours = ext
                    .name
                    .eq_ignore_ascii_case(deflate::PERMESSAGE_DEFLATE.as_bytes());
                match deflate {
                    Some(config) if is_ours && permessage_deflate.is_none() => {
                        permessage_deflate = Some(
                            deflate::accept_response(&ext, config)
                                .map_err(HandshakeError::BadExtension)?,
                        );
                    }
                    _ => return Err(HandshakeError::UnexpectedExtension),
                }
            }
        }
    }
    if !upgrade_ok || upgrade_bad || !connection_ok {
        return Err(HandshakeError::NotUpgrade);
    }
    if accepts != 1 || !accept_ok {
        return Err(HandshakeError::BadAccept);
    }
    // RFC 6455 §4.1 item 6: the selected sub-protocol must be one we offered.
    let protocol = match protocol {
        None => None,
        Some(_) if protocols > 1 => return Err(HandshakeError::UnexpectedProtocol),
        Some(p) => {
            if !offered.iter().any(|o| !o.is_empty() && o.as_bytes() == p) {
                return Err(HandshakeError::UnexpectedProtocol);
            }
            // Equal to an offered &str, so the bytes are UTF-8.
            Some(core::str::from_utf8(p).map_err(|_| HandshakeError::UnexpectedProtocol)?)
        }
    };
    Ok(Some(Response {
        status,
        protocol,
        permessage_deflate,
        header_len,
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::accept_key;
    use super::*;

    const KEY: &[u8; 24] = b"dGhlIHNhbXBsZSBub25jZQ==";
    const ACCEPT: &[u8; 28] = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
    const OK_RESPONSE: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

    fn request(url: &str, protocols: &[&str], extra: &[&str]) -> heapless::Vec<u8, 4096> {
        let url = WsUrl::parse(url).unwrap();
        let mut buf = [0u8; 4096];
        let n = write_request(&url, KEY, protocols, extra, &mut buf).unwrap();
        heapless::Vec::from_slice(&buf[..n]).unwrap()
    }

    #[test]
    fn spec_vector_client_request_is_byte_exact() {
        // spec/websocket-peer.md §6.
        let got = request("ws://example.com:9080/game?x=1", &[], &[]);
        let want: &[u8] = b"GET /game?x=1 HTTP/1.1\r\nHost: example.com:9080\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        assert_eq!(got.as_slice(), want);
    }

    #[test]
    fn request_with_protocols_and_extra_headers() {
        let got = request(
            "wss://[::1]/",
            &["a", "", "b", "c"],
            &["X-One: 1", "X-Empty:", "X-Two: two"],
        );
        let want: &[u8] = b"GET / HTTP/1.1\r\nHost: [::1]\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
Sec-WebSocket-Protocol: a,b,c\r\nX-One: 1\r\nX-Two: two\r\n\r\n";
        assert_eq!(got.as_slice(), want);
        // Query-only URL gets its leading slash.
        let got = request("ws://h?q", &[], &[]);
        assert!(got.starts_with(b"GET /?q HTTP/1.1\r\nHost: h\r\n"));
    }

    #[test]
    fn request_buffer_too_small_at_every_size() {
        let url = WsUrl::parse("ws://example.com:9080/game?x=1").unwrap();
        let mut buf = [0u8; 512];
        let n = write_request(&url, KEY, &["p"], &["X: y"], &mut buf).unwrap();
        for len in 0..n {
            let mut small = [0u8; 512];
            assert_eq!(
                write_request(&url, KEY, &["p"], &["X: y"], &mut small[..len]),
                Err(BufferTooSmall)
            );
        }
    }

    #[test]
    fn spec_vector_response_accepted() {
        assert_eq!(accept_key(KEY), *ACCEPT);
        let mut buf = [0u8; 200];
        buf[..OK_RESPONSE.len()].copy_from_slice(OK_RESPONSE);
        // Frame bytes after the head are not part of it.
        buf[OK_RESPONSE.len()..OK_RESPONSE.len() + 2].copy_from_slice(&[0x82, 0x00]);
        let r = parse_response(&buf[..OK_RESPONSE.len() + 2], ACCEPT, &[], 4096)
            .unwrap()
            .unwrap();
        assert_eq!(
            r,
            Response {
                status: 101,
                protocol: None,
                permessage_deflate: None,
                header_len: OK_RESPONSE.len()
            }
        );
    }

    #[test]
    fn response_header_names_case_insensitive() {
        let r = b"HTTP/1.1 101 OK\r\nUPGRADE: WebSocket\r\nconnection: upgrade\r\n\
sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSEC-WEBSOCKET-PROTOCOL: game\r\n\r\n";
        let got = parse_response(r, ACCEPT, &["chat", "game"], 4096)
            .unwrap()
            .unwrap();
        assert_eq!(got.protocol, Some("game"));
    }

    #[test]
    fn response_connection_token_list_accepted() {
        let r = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
Connection: keep-alive, Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        assert!(parse_response(r, ACCEPT, &[], 4096).unwrap().is_some());
    }

    #[test]
    fn response_wrong_accept_rejected() {
        let r = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Accept: S3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        assert_eq!(
            parse_response(r, ACCEPT, &[], 4096),
            Err(HandshakeError::BadAccept)
        );
        let r = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\n\r\n";
        assert_eq!(
            parse_response(r, ACCEPT, &[], 4096),
            Err(HandshakeError::BadAccept)
        );
        let r = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        assert_eq!(
            parse_response(r, ACCEPT, &[], 4096),
            Err(HandshakeError::BadAccept)
        );
    }

    #[test]
    fn response_missing_upgrade_or_connection_rejected() {
        let r = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        assert_eq!(
            parse_response(r, ACCEPT, &[], 4096),
            Err(HandshakeError::NotUpgrade)
        );
        let r =
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n\
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        assert_eq!(
            parse_response(r, ACCEPT, &[], 4096),
            Err(HandshakeError::NotUpgrade)
        );
        let r = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        assert_eq!(
            parse_response(r, ACCEPT, &[], 4096),
            Err(HandshakeError::NotUpgrade)
        );
    }

    fn with_protocol(p: &str) -> heapless::Vec<u8, 512> {
        let mut v: heapless::Vec<u8, 512> = heapless::Vec::new();
        v.extend_from_slice(&OK_RESPONSE[..OK_RESPONSE.len() - 2])
            .unwrap();
        v.extend_from_slice(b"Sec-WebSocket-Protocol: ").unwrap();
        v.extend_from_slice(p.as_bytes()).unwrap();
        v.extend_from_slice(b"\r\n\r\n").unwrap();
        v
    }

    #[test]
    fn response_protocol_not_offered_rejected() {
        let r = with_protocol("other");
        assert_eq!(
            parse_response(&r, ACCEPT, &["chat", "game"], 4096),
            Err(HandshakeError::UnexpectedProtocol)
        );
        // The whole value must be one offered entry, exactly.
        let r = with_protocol("chat,game");
        assert_eq!(
            parse_response(&r, ACCEPT, &["chat", "game"], 4096),
            Err(HandshakeError::UnexpectedProtocol)
        );
        let r = with_protocol("Chat");
        assert_eq!(
            parse_response(&r, ACCEPT, &["chat", "game"], 4096),
            Err(HandshakeError::UnexpectedProtocol)
        );
        let r = with_protocol("chat");
        let got = parse_response(&r, ACCEPT, &["chat", "game"], 4096)
            .unwrap()
            .unwrap();
        assert_eq!(got.protocol, Some("chat"));
        // RFC 6455: the server may select none of those offered.
        let got = parse_response(OK_RESPONSE, ACCEPT, &["chat"], 4096)
            .unwrap()
            .unwrap();
        assert_eq!(got.protocol, None);
    }

    #[test]
    fn response_protocol_when_none_offered_rejected() {
        let r = with_protocol("chat");
        assert_eq!(
            parse_response(&r, ACCEPT, &[], 4096),
            Err(HandshakeError::UnexpectedProtocol)
        );
    }

    #[test]
    fn response_extension_rejected() {
        let mut v: heapless::Vec<u8, 512> = heapless::Vec::new();
        v.extend_from_slice(&OK_RESPONSE[..OK_RESPONSE.len() - 2])
            .unwrap();
        v.extend_from_slice(b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n")
            .unwrap();
        assert_eq!(
            parse_response(&v, ACCEPT, &[], 4096),
            Err(HandshakeError::UnexpectedExtension)
        );
    }

    #[test]
    fn response_non_101_status_reported() {
        let r = b"HTTP/1.1 302 Found\r\nLocation: ws://elsewhere/\r\n\r\n";
        assert_eq!(
            parse_response(r, ACCEPT, &[], 4096),
            Err(HandshakeError::UnexpectedStatus(302))
        );
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            parse_response(r, ACCEPT, &[], 4096),
            Err(HandshakeError::UnexpectedStatus(200))
        );
        let r = b"HTTP/1.0 101 Switching Protocols\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        assert_eq!(
            parse_response(r, ACCEPT, &[], 4096),
            Err(HandshakeError::BadVersion)
        );
        assert_eq!(
            parse_response(b"garbage\r\n\r\n", ACCEPT, &[], 4096),
            Err(HandshakeError::Malformed)
        );
    }

    #[test]
    fn response_every_prefix_needs_more() {
        let full = with_protocol("game");
        for n in 0..full.len() {
            assert_eq!(
                parse_response(&full[..n], ACCEPT, &["game"], 4096),
                Ok(None),
                "prefix of {n} bytes"
            );
        }
        assert!(parse_response(&full, ACCEPT, &["game"], 4096)
            .unwrap()
            .is_some());
    }

    #[test]
    fn response_too_large_when_over_max_len() {
        let full = with_protocol("game");
        // Complete but longer than allowed.
        assert_eq!(
            parse_response(&full, ACCEPT, &["game"], full.len() - 1),
            Err(HandshakeError::TooLarge)
        );
        // Exactly max_len is fine.
        assert!(parse_response(&full, ACCEPT, &["game"], full.len())
            .unwrap()
            .is_some());
        // Incomplete and already over the limit.
        let junk = [b'a'; 100];
        let mut v: heapless::Vec<u8, 200> = heapless::Vec::new();
        v.extend_from_slice(b"HTTP/1.1 101 OK\r\nX-Pad: ").unwrap();
        v.extend_from_slice(&junk).unwrap();
        assert_eq!(
            parse_response(&v, ACCEPT, &[], 64),
            Err(HandshakeError::TooLarge)
        );
        assert_eq!(parse_response(&v, ACCEPT, &[], 4096), Ok(None));
    }

    #[test]
    fn response_too_many_headers() {
        let mut v: heapless::Vec<u8, 4096> = heapless::Vec::new();
        v.extend_from_slice(b"HTTP/1.1 101 OK\r\n").unwrap();
        for _ in 0..=MAX_HEADERS {
            v.extend_from_slice(b"X: y\r\n").unwrap();
        }
        v.extend_from_slice(b"\r\n").unwrap();
        assert_eq!(
            parse_response(&v, ACCEPT, &[], 4096),
            Err(HandshakeError::TooManyHeaders)
        );
    }

    #[test]
    fn response_roundtrip_with_server_writer() {
        let key = b"AAECAwQFBgcICQoLDA0ODw==";
        let accept = accept_key(key);
        let mut buf = [0u8; 512];
        let n = super::super::server::write_accept_response(
            &accept,
            Some("game"),
            &["X-Server: wsmp"],
            &mut buf,
        )
        .unwrap();
        let r = parse_response(&buf[..n], &accept, &["chat", "game"], 4096)
            .unwrap()
            .unwrap();
        assert_eq!((r.protocol, r.header_len), (Some("game"), n));
    }
}
