//! Reverse proxies in front of the relay: which address a connection really
//! comes from, and the per-IP key the limits count by.
//!
//! - [`TrustedProxies`] (`--trusted-proxy CIDR`, repeatable): only
//!   connections from these addresses may speak for a client.
//! - [`TrustedProxies::client_from_forwarded`]: the client address from
//!   `X-Forwarded-For` — the rightmost hop that is not a trusted proxy
//!   (headers from an untrusted peer are ignored).
//! - [`TrustedProxies::proxy_protocol`] (`--proxy-protocol`): the client
//!   address from a PROXY protocol v1/v2 header at the start of the
//!   connection (parsed by the `ppp` crate; haproxy's proxy-protocol.txt).
//! - [`IpKey`]: the key per-IP limits count by (IPv4 address, IPv6 /64).

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use ipnet::IpNet;
use ppp::{v1, v2, HeaderResult, PartialResult};

/// The key per-IP limits count by: an IPv4 address, or the /64 prefix of an
/// IPv6 address (one subscriber usually gets a whole /64). IPv4-mapped IPv6
/// addresses (`::ffff:a.b.c.d`) count as their IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpKey(IpAddr);

impl IpKey {
    /// The key of `addr`.
    pub fn of(addr: IpAddr) -> IpKey {
        match addr.to_canonical() {
            IpAddr::V4(v4) => IpKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpKey(IpAddr::V6(Ipv6Addr::from(bits)))
            }
        }
    }

    /// The address (for IPv6 the /64 prefix with the host part zero).
    pub fn addr(self) -> IpAddr {
        self.0
    }
}

impl From<IpAddr> for IpKey {
    fn from(addr: IpAddr) -> Self {
        IpKey::of(addr)
    }
}

impl fmt::Display for IpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(a) => write!(f, "{a}"),
            IpAddr::V6(a) => write!(f, "{a}/64"),
        }
    }
}

/// A `--trusted-proxy` value: a CIDR block (`10.0.0.0/8`, `fd00::/8`) or a
/// single address (`127.0.0.1`, meaning /32 or /128).
pub fn parse_cidr(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    if let Ok(net) = IpNet::from_str(s) {
        return Ok(net.trunc());
    }
    IpAddr::from_str(s)
        .map(IpNet::from)
        .map_err(|_| format!("`{s}` is not an IP address or CIDR block (e.g. 10.0.0.0/8)"))
}

/// The addresses allowed to speak for clients (`--trusted-proxy`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

/// Most bytes a PROXY header may take (v1 is at most 107 bytes; v2 is 16
/// bytes plus addresses and TLVs): larger v2 headers are refused rather
/// than buffered.
pub const MAX_PROXY_HEADER_LEN: usize = 4096;

/// v2 signature (haproxy proxy-protocol.txt §2.2).
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// v1 prefix (proxy-protocol.txt §2.1).
const V1_PREFIX: &[u8] = b"PROXY ";
/// Longest v1 header, CRLF included (proxy-protocol.txt §2.1).
const V1_MAX_LEN: usize = 107;

/// The result of looking for a PROXY protocol header at the start of a
/// connection ([`parse_proxy_header`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyHeader {
    /// The bytes so far are a prefix of a header (or of its signature): read more.
    NeedMore,
    /// The connection does not start with a PROXY signature.
    Absent,
    /// A complete header of `consumed` bytes; `client` is the source address,
    /// `None` for a LOCAL command (v2) or `UNKNOWN` protocol (v1) — e.g. the
    /// proxy's own health checks — where the connection's own address holds.
    Done {
        /// Header length: the WebSocket/TLS bytes start after it.
        consumed: usize,
        /// The client's address, when the header carries one.
        client: Option<SocketAddr>,
    },
    /// A malformed or oversized header.
    Invalid(String),
}

/// Looks for a PROXY protocol v1 or v2 header at the start of `buf` (the
/// first bytes read from a connection). Pure: call again with more bytes
/// after [`ProxyHeader::NeedMore`].
pub fn parse_proxy_header(buf: &[u8]) -> ProxyHeader {
    let is_prefix = |sig: &[u8]| {
        let n = buf.len().min(sig.len());
        buf[..n] == sig[..n]
    };
    let v2 = is_prefix(&V2_SIGNATURE);
    let v1 = is_prefix(V1_PREFIX);
    if !v1 && !v2 {
        return ProxyHeader::Absent;
    }
    if v2 && buf.len() >= 16 {
        // proxy-protocol.txt §2.2: bytes 15–16 are the length of what follows, big endian.
        let len = 16 + usize::from(u16::from_be_bytes([buf[14], buf[15]]));
        if len > MAX_PROXY_HEADER_LEN {
            return ProxyHeader::Invalid(format!(
                "PROXY v2 header of {len} bytes (at most {MAX_PROXY_HEADER_LEN})"
            ));
        }
    }
    if (v2 && buf.len() < 16) || (v1 && buf.len() < V1_PREFIX.len()) {
        return ProxyHeader::NeedMore;
    }
    let parsed = if v1 {
        // proxy-protocol.txt §2.1: a v1 header is one line of at most 107
        // bytes ending in CRLF; parse it only once the line is complete (ppp
        // reports some truncated lines as invalid rather than partial).
        let window = &buf[..buf.len().min(V1_MAX_LEN)];
        match window.windows(2).position(|w| w == b"\r\n") {
            Some(end) => HeaderResult::parse(&buf[..end + 2]),
            None if buf.len() >= V1_MAX_LEN => {
                return ProxyHeader::Invalid("PROXY v1 header longer than 107 bytes".into())
            }
            None => return ProxyHeader::NeedMore,
        }
    } else {
        HeaderResult::parse(buf)
    };
    match parsed {
        HeaderResult::V2(Ok(h)) => {
            let client = match (h.command, h.addresses) {
                (v2::Command::Local, _) => None,
                (v2::Command::Proxy, v2::Addresses::IPv4(a)) => {
                    Some(SocketAddr::new(a.source_address.into(), a.source_port))
                }
                (v2::Command::Proxy, v2::Addresses::IPv6(a)) => {
                    Some(SocketAddr::new(a.source_address.into(), a.source_port))
                }
                // proxy-protocol.txt §2.2: UNSPEC or unix sockets: use the real connection's address.
                (v2::Command::Proxy, _) => None,
            };
            ProxyHeader::Done {
                consumed: h.len(),
                client,
            }
        }
        HeaderResult::V1(Ok(h)) => {
            let client = match h.addresses {
                v1::Addresses::Tcp4(a) => {
                    Some(SocketAddr::new(a.source_address.into(), a.source_port))
                }
                v1::Addresses::Tcp6(a) => {
                    Some(SocketAddr::new(a.source_address.into(), a.source_port))
                }
                v1::Addresses::Unknown => None,
            };
            ProxyHeader::Done {
                consumed: h.header.len(),
                client,
            }
        }
        HeaderResult::V2(Err(e)) if e.is_incomplete() => ProxyHeader::NeedMore,
        HeaderResult::V1(Err(e)) => ProxyHeader::Invalid(format!("bad PROXY v1 header: {e}")),
        HeaderResult::V2(Err(e)) => ProxyHeader::Invalid(format!("bad PROXY v2 header: {e}")),
    }
}

/// What to do with a new connection under `--proxy-protocol`
/// ([`TrustedProxies::proxy_protocol`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyDecision {
    /// Read more bytes and ask again.
    NeedMore,
    /// Serve the connection; skip `consumed` bytes (the header); the client is `client`.
    Proceed {
        /// Bytes to skip before the WebSocket (or TLS) stream.
        consumed: usize,
        /// The client address for logs, metrics and limits.
        client: SocketAddr,
    },
    /// Close the connection (a header from an untrusted address, a trusted
    /// proxy without a header, or a malformed header).
    Refuse(String),
}

impl TrustedProxies {
    /// Trust these blocks.
    pub fn new(nets: Vec<IpNet>) -> TrustedProxies {
        TrustedProxies { nets }
    }

    /// No proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// The trusted blocks.
    pub fn nets(&self) -> &[IpNet] {
        &self.nets
    }

    /// Whether `addr` is a trusted proxy (IPv4-mapped IPv6 counts as IPv4).
    pub fn is_trusted(&self, addr: IpAddr) -> bool {
        let addr = addr.to_canonical();
        self.nets.iter().any(|n| n.contains(&addr))
    }

    /// The client address of a request that arrived from `peer` with these
    /// `X-Forwarded-For` header values (every header line, in order).
    ///
    /// From an untrusted `peer` the headers are ignored and `peer` is the
    /// client. From a trusted one, the hops are read from the right
    /// (nearest first); the first hop that is not a trusted proxy is the
    /// client. A malformed hop stops the walk: the last trusted hop before
    /// it is used (it cannot be attributed further). When every hop is
    /// trusted the leftmost one is the client.
    pub fn client_from_forwarded<'a>(
        &self,
        peer: IpAddr,
        xff_values: impl IntoIterator<Item = &'a str>,
    ) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.is_trusted(peer) {
            return peer;
        }
        let hops: Vec<&str> = xff_values
            .into_iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(addr) = parse_hop(hop) else {
                return client;
            };
            client = addr;
            if !self.is_trusted(addr) {
                return addr;
            }
        }
        client
    }

    /// Decides on a new connection from `peer` whose first bytes are `buf`
    /// (`--proxy-protocol`). A trusted proxy must send a header (with a
    /// LOCAL/UNKNOWN header the connection is the proxy's own); anyone else
    /// must not (haproxy proxy-protocol.txt §2: a receiver must not accept
    /// the header from untrusted sources), and is served directly.
    pub fn proxy_protocol(&self, peer: SocketAddr, buf: &[u8]) -> ProxyDecision {
        let trusted = self.is_trusted(peer.ip());
        match parse_proxy_header(buf) {
            ProxyHeader::NeedMore => ProxyDecision::NeedMore,
            ProxyHeader::Invalid(e) => ProxyDecision::Refuse(e),
            ProxyHeader::Absent if trusted => {
                ProxyDecision::Refuse(format!("no PROXY header from trusted proxy {}", peer.ip()))
            }
            ProxyHeader::Absent => ProxyDecision::Proceed {
                consumed: 0,
                client: peer,
            },
            ProxyHeader::Done { .. } if !trusted => {
                ProxyDecision::Refuse(format!("PROXY header from untrusted address {}", peer.ip()))
            }
            ProxyHeader::Done { consumed, client } => ProxyDecision::Proceed {
                consumed,
                client: client.map_or(peer, |c| SocketAddr::new(c.ip().to_canonical(), c.port())),
            },
        }
    }
}

/// `--proxy-protocol` as the tokio adapter's connection preface: the PROXY
/// header is read in the connection's own task, before TLS and HTTP
/// ([`wsmp_tokio::Preface`]). Connections from trusted proxies are counted
/// against `--max-pending-per-ip` by the client the header names; others
/// by their own address, from accept.
#[derive(Debug, Clone)]
pub struct ProxyProtocol(pub TrustedProxies);

impl wsmp_tokio::Preface for ProxyProtocol {
    fn max_len(&self) -> usize {
        MAX_PROXY_HEADER_LEN
    }

    fn defers_pending_count(&self, remote: SocketAddr) -> bool {
        self.0.is_trusted(remote.ip())
    }

    fn read(&self, remote: SocketAddr, head: &[u8]) -> wsmp_tokio::PrefaceDecision {
        match self.0.proxy_protocol(remote, head) {
            ProxyDecision::NeedMore => wsmp_tokio::PrefaceDecision::NeedMore,
            ProxyDecision::Proceed { consumed, client } => wsmp_tokio::PrefaceDecision::Proceed {
                consumed,
                remote: client,
            },
            ProxyDecision::Refuse(reason) => wsmp_tokio::PrefaceDecision::Refuse(reason),
        }
    }
}

/// One `X-Forwarded-For` hop: an address, optionally with a port
/// (`1.2.3.4:5678`, `[::1]:80`) or in brackets; `unknown` and obfuscated
/// identifiers (RFC 7239 §6.3) are not addresses.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim_matches('"');
    if let Ok(a) = IpAddr::from_str(hop) {
        return Some(a.to_canonical());
    }
    if let Ok(sa) = SocketAddr::from_str(hop) {
        return Some(sa.ip().to_canonical());
    }
    let inner = hop.strip_prefix('[')?.strip_suffix(']')?;
    IpAddr::from_str(inner).ok().map(|a| a.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().expect("socket addr")
    }

    fn trusted(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(list.iter().map(|s| parse_cidr(s).expect("cidr")).collect())
    }

    #[test]
    fn ip_keys() {
        assert_eq!(IpKey::of(ip("192.0.2.7")).addr(), ip("192.0.2.7"));
        assert_eq!(
            IpKey::of(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            IpKey::of(ip("2001:db8:1:2::1"))
        );
        assert_ne!(
            IpKey::of(ip("2001:db8:1:2::1")),
            IpKey::of(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            IpKey::of(ip("::ffff:192.0.2.7")),
            IpKey::of(ip("192.0.2.7"))
        );
        assert_eq!(
            IpKey::of(ip("2001:db8:1:2::9")).to_string(),
            "2001:db8:1:2::/64"
        );
        assert_eq!(IpKey::of(ip("10.1.2.3")).to_string(), "10.1.2.3");
    }

    #[test]
    fn cidrs() {
        assert_eq!(
            parse_cidr("10.0.0.0/8").expect("ok").to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            parse_cidr("10.1.2.3/8").expect("ok").to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            parse_cidr("127.0.0.1").expect("ok").to_string(),
            "127.0.0.1/32"
        );
        assert_eq!(parse_cidr("::1").expect("ok").to_string(), "::1/128");
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("localhost").is_err());
        assert!(parse_cidr("").is_err());
        let t = trusted(&["10.0.0.0/8", "::1"]);
        assert!(t.is_trusted(ip("10.9.9.9")));
        assert!(t.is_trusted(ip("::ffff:10.9.9.9")));
        assert!(t.is_trusted(ip("::1")));
        assert!(!t.is_trusted(ip("11.0.0.1")));
    }

    #[test]
    fn forwarded_for_rightmost_untrusted_hop() {
        let t = trusted(&["10.0.0.0/8", "127.0.0.1"]);
        // From an untrusted peer every header is ignored.
        assert_eq!(
            t.client_from_forwarded(ip("203.0.113.9"), ["198.51.100.1"]),
            ip("203.0.113.9")
        );
        // One proxy: the hop it appended.
        assert_eq!(
            t.client_from_forwarded(ip("127.0.0.1"), ["198.51.100.1"]),
            ip("198.51.100.1")
        );
        // A client-forged hop on the left is not believed.
        assert_eq!(
            t.client_from_forwarded(ip("127.0.0.1"), ["6.6.6.6, 198.51.100.1, 10.0.0.2"]),
            ip("198.51.100.1")
        );
        // Several header lines concatenate in order.
        assert_eq!(
            t.client_from_forwarded(ip("127.0.0.1"), ["6.6.6.6", "198.51.100.1", "10.0.0.2"]),
            ip("198.51.100.1")
        );
        // Ports, brackets, IPv4-mapped.
        assert_eq!(
            t.client_from_forwarded(ip("127.0.0.1"), ["[2001:db8::5]:4711"]),
            ip("2001:db8::5")
        );
        assert_eq!(
            t.client_from_forwarded(ip("127.0.0.1"), ["198.51.100.1:999"]),
            ip("198.51.100.1")
        );
        assert_eq!(
            t.client_from_forwarded(ip("::ffff:127.0.0.1"), ["::ffff:198.51.100.1"]),
            ip("198.51.100.1")
        );
        // No header: the proxy itself.
        assert_eq!(
            t.client_from_forwarded(ip("127.0.0.1"), []),
            ip("127.0.0.1")
        );
        // Garbage stops the walk at the last trusted hop.
        assert_eq!(
            t.client_from_forwarded(ip("127.0.0.1"), ["198.51.100.1, unknown, 10.0.0.3"]),
            ip("10.0.0.3")
        );
        assert_eq!(
            t.client_from_forwarded(ip("127.0.0.1"), ["garbage"]),
            ip("127.0.0.1")
        );
        // All hops trusted: the leftmost.
        assert_eq!(
            t.client_from_forwarded(ip("127.0.0.1"), ["10.0.0.1, 10.0.0.2"]),
            ip("10.0.0.1")
        );
        // Nothing trusted: never read.
        let none = TrustedProxies::default();
        assert_eq!(
            none.client_from_forwarded(ip("127.0.0.1"), ["198.51.100.1"]),
            ip("127.0.0.1")
        );
    }

    fn v2_header(command: u8, family: u8, addrs: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | command);
        h.push(family);
        h.extend_from_slice(&(addrs.len() as u16).to_be_bytes());
        h.extend_from_slice(addrs);
        h
    }

    #[test]
    fn proxy_v1() {
        let head = b"PROXY TCP4 198.51.100.1 10.0.0.1 56324 443\r\n";
        let mut buf = head.to_vec();
        buf.extend_from_slice(b"GET / HTTP/1.1\r\n");
        assert_eq!(
            parse_proxy_header(&buf),
            ProxyHeader::Done {
                consumed: head.len(),
                client: Some(sa("198.51.100.1:56324"))
            }
        );
        for n in 0..head.len() {
            assert_eq!(parse_proxy_header(&head[..n]), ProxyHeader::NeedMore, "{n}");
        }
        let v6 = b"PROXY TCP6 2001:db8::1 2001:db8::2 1000 80\r\n";
        assert_eq!(
            parse_proxy_header(v6),
            ProxyHeader::Done {
                consumed: v6.len(),
                client: Some(sa("[2001:db8::1]:1000"))
            }
        );
        assert_eq!(
            parse_proxy_header(b"PROXY UNKNOWN\r\n"),
            ProxyHeader::Done {
                consumed: 15,
                client: None
            }
        );
        assert!(matches!(
            parse_proxy_header(b"PROXY TCP4 nonsense 1 2 3\r\n"),
            ProxyHeader::Invalid(_)
        ));
        let long = [b"PROXY ".as_slice(), &[b'1'; 200]].concat();
        assert!(matches!(parse_proxy_header(&long), ProxyHeader::Invalid(_)));
    }

    #[test]
    fn proxy_v2() {
        let mut addrs = vec![198, 51, 100, 1, 10, 0, 0, 1];
        addrs.extend_from_slice(&56324u16.to_be_bytes());
        addrs.extend_from_slice(&443u16.to_be_bytes());
        let h = v2_header(1, 0x11, &addrs);
        let mut buf = h.clone();
        buf.extend_from_slice(b"GET / HTTP/1.1\r\n");
        assert_eq!(
            parse_proxy_header(&buf),
            ProxyHeader::Done {
                consumed: h.len(),
                client: Some(sa("198.51.100.1:56324"))
            }
        );
        for n in 0..h.len() {
            assert_eq!(parse_proxy_header(&h[..n]), ProxyHeader::NeedMore, "{n}");
        }
        // LOCAL: no client address.
        let local = v2_header(0, 0x00, &[]);
        assert_eq!(
            parse_proxy_header(&local),
            ProxyHeader::Done {
                consumed: 16,
                client: None
            }
        );
        // IPv6.
        let mut a6 = Vec::new();
        a6.extend_from_slice(&ip_bytes("2001:db8::1"));
        a6.extend_from_slice(&ip_bytes("2001:db8::2"));
        a6.extend_from_slice(&1000u16.to_be_bytes());
        a6.extend_from_slice(&80u16.to_be_bytes());
        assert_eq!(
            parse_proxy_header(&v2_header(1, 0x21, &a6)),
            ProxyHeader::Done {
                consumed: 16 + 36,
                client: Some(sa("[2001:db8::1]:1000"))
            }
        );
        // Oversized: refused before buffering it.
        let mut big = V2_SIGNATURE.to_vec();
        big.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert!(matches!(parse_proxy_header(&big), ProxyHeader::Invalid(_)));
        // Bad version nibble.
        let mut bad = v2_header(1, 0x11, &addrs);
        bad[12] = 0x31;
        assert!(matches!(parse_proxy_header(&bad), ProxyHeader::Invalid(_)));
    }

    fn ip_bytes(s: &str) -> [u8; 16] {
        match ip(s) {
            IpAddr::V6(a) => a.octets(),
            IpAddr::V4(_) => panic!("v6 expected"),
        }
    }

    #[test]
    fn not_a_proxy_header() {
        for b in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"POST / HTTP/1.1\r\n",
            b"\x16\x03\x01",
            b"PROXX",
        ] {
            assert_eq!(parse_proxy_header(b), ProxyHeader::Absent, "{b:?}");
        }
        // "P" and "PRO" could still be "PROXY " (or "POST"): wait.
        assert_eq!(parse_proxy_header(b"P"), ProxyHeader::NeedMore);
        assert_eq!(parse_proxy_header(b"PRO"), ProxyHeader::NeedMore);
        assert_eq!(parse_proxy_header(b""), ProxyHeader::NeedMore);
    }

    #[test]
    fn proxy_protocol_policy() {
        let t = trusted(&["127.0.0.1"]);
        let header = b"PROXY TCP4 198.51.100.1 127.0.0.1 5000 80\r\nGET";
        assert_eq!(
            t.proxy_protocol(sa("127.0.0.1:40000"), header),
            ProxyDecision::Proceed {
                consumed: header.len() - 3,
                client: sa("198.51.100.1:5000")
            }
        );
        // From an untrusted address a header is refused.
        assert!(matches!(
            t.proxy_protocol(sa("203.0.113.1:40000"), header),
            ProxyDecision::Refuse(_)
        ));
        // An untrusted address without a header is served directly.
        assert_eq!(
            t.proxy_protocol(sa("203.0.113.1:40000"), b"GET / HTTP/1.1\r\n"),
            ProxyDecision::Proceed {
                consumed: 0,
                client: sa("203.0.113.1:40000")
            }
        );
        // A trusted proxy must send one.
        assert!(matches!(
            t.proxy_protocol(sa("127.0.0.1:40000"), b"GET / HTTP/1.1\r\n"),
            ProxyDecision::Refuse(_)
        ));
        // LOCAL/UNKNOWN: the proxy itself.
        assert_eq!(
            t.proxy_protocol(sa("127.0.0.1:40000"), b"PROXY UNKNOWN\r\n"),
            ProxyDecision::Proceed {
                consumed: 15,
                client: sa("127.0.0.1:40000")
            }
        );
        assert_eq!(
            t.proxy_protocol(sa("127.0.0.1:40000"), b"PROXY TCP4"),
            ProxyDecision::NeedMore
        );
    }
}
