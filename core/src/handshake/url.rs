//! `ws://` / `wss://` URLs (RFC 6455 §3) as the engine splits them
//! (spec/websocket-peer.md §2.5), and the `Host` header value.

use core::fmt;

/// The parts of a WebSocket URL needed to connect and to write the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WsUrl<'a> {
    /// `wss://` (TLS).
    pub secure: bool,
    /// Host name or address, without the brackets of an IPv6 literal.
    pub host: &'a str,
    /// Port: explicit, or 80 / 443 by scheme.
    pub port: u16,
    /// Path with query, `/` when absent, no fragment. Starts with `/`, or
    /// with `?` when the URL has a query but no path
    /// ([`write_request`](super::client::write_request) then writes `/?…`).
    pub path: &'a str,
    /// `host` was an IPv6 literal (written in brackets).
    pub ipv6: bool,
}

/// Why a URL was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlError {
    /// The URL is empty.
    Empty,
    /// The scheme is neither `ws` nor `wss`.
    Scheme,
    /// The host is missing or malformed.
    Host,
    /// The port is not a number in 1..=65535.
    Port,
    /// Other malformation (e.g. spaces or control bytes in the path).
    Invalid,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UrlError::Empty => "empty URL",
            UrlError::Scheme => "URL scheme must be ws:// or wss://",
            UrlError::Host => "missing or invalid host in URL",
            UrlError::Port => "invalid port in URL",
            UrlError::Invalid => "malformed URL",
        })
    }
}

impl core::error::Error for UrlError {}

/// Longest accepted host (DNS names are at most 253 characters), so the
/// `Host` value always fits a `heapless::String<300>`.
const MAX_HOST_LEN: usize = 253;

impl<'a> WsUrl<'a> {
    /// Parses `ws://` and `wss://` URLs: scheme case-insensitive; a missing
    /// scheme means `ws://` as in the engine (spec/websocket-peer.md §2.5);
    /// default ports 80/443; IPv6 literals in brackets; userinfo stripped;
    /// fragment dropped; path with query. Surrounding whitespace is ignored.
    pub fn parse(url: &'a str) -> Result<WsUrl<'a>, UrlError> {
        let url = url.trim();
        if url.is_empty() {
            return Err(UrlError::Empty);
        }
        // spec/websocket-peer.md §2.5: the fragment is discarded.
        let url = url.split_once('#').map_or(url, |(before, _)| before);

        // spec/websocket-peer.md §2.5: scheme compared lower-cased; missing means ws://.
        let (secure, rest) = match url.split_once("://") {
            Some((scheme, rest)) if is_scheme(scheme) => {
                if scheme.eq_ignore_ascii_case("ws") {
                    (false, rest)
                } else if scheme.eq_ignore_ascii_case("wss") {
                    (true, rest)
                } else {
                    return Err(UrlError::Scheme);
                }
            }
            _ => (false, url),
        };

        // RFC 3986 §3.2: authority ends at the first '/', '?' (or '#', gone).
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        // RFC 6455 §3: "/" when the path is empty.
        let path = if path.is_empty() { "/" } else { path };
        // RFC 7230 §3.1.1: the request-target cannot carry spaces, controls or raw non-ASCII.
        if !path.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(UrlError::Invalid);
        }

        // spec/websocket-peer.md §2.5: credentials (`user@`) are stripped.
        let hostport = authority
            .rsplit_once('@')
            .map_or(authority, |(_, after)| after);

        let (host, port, ipv6) = if let Some(inner) = hostport.strip_prefix('[') {
            // RFC 3986 §3.2.2: IP-literal = "[" IPv6address "]".
            let (host, after) = inner.split_once(']').ok_or(UrlError::Host)?;
            if host.is_empty()
                || !host.contains(':')
                || !host
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
            {
                return Err(UrlError::Host);
            }
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or(UrlError::Host)?),
            };
            (host, port, true)
        } else {
            let (host, port) = match hostport.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            };
            if host.is_empty() || !host.bytes().all(is_reg_name_byte) {
                return Err(UrlError::Host);
            }
            (host, port, false)
        };
        if host.len() > MAX_HOST_LEN {
            return Err(UrlError::Host);
        }

        let default = if secure { 443 } else { 80 };
        let port = match port {
            // RFC 3986 §3.2.3: an empty port means the default.
            None | Some("") => default,
            Some(p) => parse_port(p)?,
        };
        Ok(WsUrl {
            secure,
            host,
            port,
            path,
            ipv6,
        })
    }

    /// 443 for `wss`, 80 for `ws` (RFC 6455 §3).
    pub fn default_port(&self) -> u16 {
        if self.secure {
            443
        } else {
            80
        }
    }

    /// Writes the `Host` header value: the host, in brackets when IPv6
    /// (RFC 7230 §5.4 — unlike the engine, which leaves them out,
    /// spec/websocket-peer.md §2.5), and `:port` only when not the default.
    ///
    /// Any [`fmt::Write`] works, e.g. a `heapless::String<300>` (always large
    /// enough: hosts are at most 253 bytes) or an `alloc` `String`. The error
    /// is the writer's (out of capacity).
    pub fn write_host<W: fmt::Write + ?Sized>(&self, out: &mut W) -> fmt::Result {
        if self.ipv6 {
            write!(out, "[{}]", self.host)?;
        } else {
            out.write_str(self.host)?;
        }
        if self.port != self.default_port() {
            write!(out, ":{}", self.port)?;
        }
        Ok(())
    }
}

/// RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
fn is_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
}

/// RFC 3986 §3.2.2 reg-name: unreserved / pct-encoded / sub-delims.
fn is_reg_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(&b)
}

/// RFC 3986 §3.2.3 port, restricted to a usable TCP port.
fn parse_port(p: &str) -> Result<u16, UrlError> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UrlError::Port);
    }
    match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(UrlError::Port),
        Ok(port) => Ok(port),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn host_of(url: &WsUrl<'_>) -> heapless::String<300> {
        let mut s = heapless::String::new();
        assert!(url.write_host(&mut s).is_ok());
        s
    }

    #[test]
    fn url_default_ports() {
        let u = WsUrl::parse("ws://example.com/game").unwrap();
        assert_eq!(
            (u.secure, u.host, u.port, u.path),
            (false, "example.com", 80, "/game")
        );
        assert_eq!(host_of(&u), "example.com");
        let u = WsUrl::parse("wss://example.com").unwrap();
        assert_eq!((u.secure, u.port, u.path), (true, 443, "/"));
        assert_eq!(u.default_port(), 443);
        assert_eq!(host_of(&u), "example.com");
        // Explicit default port: not repeated in Host.
        assert_eq!(host_of(&WsUrl::parse("ws://a:80/").unwrap()), "a");
        // Port 80 is not the default for wss.
        assert_eq!(host_of(&WsUrl::parse("wss://a:80/").unwrap()), "a:80");
    }

    #[test]
    fn url_non_default_port_in_host() {
        let u = WsUrl::parse("ws://example.com:9080/game?x=1").unwrap();
        assert_eq!(u.port, 9080);
        assert_eq!(u.path, "/game?x=1");
        assert_eq!(host_of(&u), "example.com:9080");
    }

    #[test]
    fn url_scheme_case_insensitive_and_optional() {
        let u = WsUrl::parse("WSS://Example.COM:8443/x").unwrap();
        assert!(u.secure);
        assert_eq!((u.host, u.port), ("Example.COM", 8443));
        // spec §2.5: a missing scheme means ws://
        let u = WsUrl::parse("localhost:9080/x").unwrap();
        assert_eq!(
            (u.secure, u.host, u.port, u.path),
            (false, "localhost", 9080, "/x")
        );
    }

    #[test]
    fn url_path_with_query_and_fragment_dropped() {
        let u = WsUrl::parse("ws://h/a/b?c=d&e#frag").unwrap();
        assert_eq!(u.path, "/a/b?c=d&e");
        let u = WsUrl::parse("ws://h#frag").unwrap();
        assert_eq!(u.path, "/");
        let u = WsUrl::parse("ws://h?q=1").unwrap();
        assert_eq!((u.host, u.path), ("h", "?q=1"));
    }

    #[test]
    fn url_ipv6_literal() {
        let u = WsUrl::parse("ws://[::1]:9080/x").unwrap();
        assert_eq!((u.host, u.port, u.path, u.ipv6), ("::1", 9080, "/x", true));
        assert_eq!(host_of(&u), "[::1]:9080");
        let u = WsUrl::parse("wss://[2001:db8::7]/").unwrap();
        assert_eq!((u.host, u.port), ("2001:db8::7", 443));
        assert_eq!(host_of(&u), "[2001:db8::7]");
        assert_eq!(WsUrl::parse("ws://[::1/x"), Err(UrlError::Host));
        assert_eq!(WsUrl::parse("ws://[]:80/"), Err(UrlError::Host));
        assert_eq!(WsUrl::parse("ws://[::1]x/"), Err(UrlError::Host));
        assert_eq!(WsUrl::parse("ws://[::1]:0/"), Err(UrlError::Port));
        // A bare IPv6 address is ambiguous with a port.
        assert!(WsUrl::parse("ws://::1:9080/").is_err());
    }

    #[test]
    fn url_userinfo_stripped() {
        let u = WsUrl::parse("ws://user:pa@ss@example.com:81/p").unwrap();
        assert_eq!((u.host, u.port, u.path), ("example.com", 81, "/p"));
        assert_eq!(host_of(&u), "example.com:81");
    }

    #[test]
    fn url_errors() {
        assert_eq!(WsUrl::parse(""), Err(UrlError::Empty));
        assert_eq!(WsUrl::parse("  "), Err(UrlError::Empty));
        assert_eq!(WsUrl::parse("http://example.com/"), Err(UrlError::Scheme));
        assert_eq!(WsUrl::parse("ftp://example.com/"), Err(UrlError::Scheme));
        assert_eq!(WsUrl::parse("ws://example.com:99999/"), Err(UrlError::Port));
        assert_eq!(WsUrl::parse("ws://example.com:12ab/"), Err(UrlError::Port));
        assert_eq!(WsUrl::parse("ws://example.com:0/"), Err(UrlError::Port));
        assert_eq!(WsUrl::parse("ws://example.com:-1/"), Err(UrlError::Port));
        assert_eq!(WsUrl::parse("ws:///path"), Err(UrlError::Host));
        assert_eq!(WsUrl::parse("ws://:9080/"), Err(UrlError::Host));
        assert_eq!(WsUrl::parse("ws://user@/"), Err(UrlError::Host));
        assert_eq!(WsUrl::parse("ws://a b/"), Err(UrlError::Host));
        assert_eq!(WsUrl::parse("ws://h/a b"), Err(UrlError::Invalid));
        assert_eq!(WsUrl::parse("ws://h/\r\nX: y"), Err(UrlError::Invalid));
        let long = "ws://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/";
        assert_eq!(WsUrl::parse(long), Err(UrlError::Host));
    }

    #[test]
    fn url_empty_port_means_default() {
        let u = WsUrl::parse("ws://h:/x").unwrap();
        assert_eq!(u.port, 80);
    }
}
