//! Listening sockets: the one bind rule of every wsmp server (both adapters,
//! the examples and the relay). See [`BindAddress`].

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

/// Pending connections the kernel queues per listener.
const BACKLOG: i32 = 1024;

/// Where a server listens: `create_server`'s `bind_address`
/// (spec/websocket-peer.md §3.3), and the one bind rule of every wsmp server.
///
/// The rule is the engine's (`TCPServer::listen`; `NetSocketPosix::open` sets
/// `IPV6_V6ONLY` to `ip_type != IP::TYPE_ANY`):
///
/// - `SO_REUSEADDR` is set, so a restarted server can bind its port while
///   connections of the previous process are still in `TIME_WAIT`.
/// - The socket's family follows the address. An IPv6 address is bound
///   IPv6-only (`IPV6_V6ONLY`): `[::]:P` takes IPv6 connections only,
///   whatever the system default (`net.ipv6.bindv6only`) says, so `[::]:P`
///   and `0.0.0.0:P` can both be bound — two listeners, one per family.
/// - Only the wildcard `*` ([`BindAddress::Any`]) asks for one dual-stack
///   socket (IPv6 with IPv4-mapped addresses). Without IPv6 in the system it
///   falls back to IPv4 `0.0.0.0`, as the engine does.
/// - Listeners are non-blocking, with a backlog of 1024.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindAddress {
    /// `"*"`: every address of both families on one dual-stack socket
    /// (IPv4 only where the system has no IPv6).
    Any,
    /// One address, IPv4 or IPv6. `0.0.0.0` and `::` are the wildcards of
    /// their own family only.
    Ip(IpAddr),
}

impl BindAddress {
    /// Parses `*`, an IPv4 address, or an IPv6 address with or without
    /// brackets (`::1`, `[::1]`). `None` for anything else (host names are
    /// not resolved: the engine answers ERR_INVALID_PARAMETER).
    pub fn parse(s: &str) -> Option<BindAddress> {
        if s == "*" {
            return Some(BindAddress::Any);
        }
        let bare = s
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .unwrap_or(s);
        bare.parse().ok().map(BindAddress::Ip)
    }

    /// Binds a listener on `port` (0: any free port) with the module's rule.
    pub fn bind(self, port: u16) -> io::Result<TcpListener> {
        match self {
            BindAddress::Ip(ip) => bind_listener(SocketAddr::new(ip, port)),
            BindAddress::Any => {
                let dual = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port);
                match listen(dual, Some(false)) {
                    Ok(l) => Ok(l),
                    // The port is taken: IPv4 alone would hide that.
                    Err(e) if e.kind() == io::ErrorKind::AddrInUse => Err(e),
                    // No IPv6 here: every IPv4 address instead.
                    Err(_) => {
                        bind_listener(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port))
                    }
                }
            }
        }
    }
}

/// Binds a non-blocking listener on one address with the module's rule:
/// `SO_REUSEADDR`, and `IPV6_V6ONLY` for an IPv6 address (so `[::]:P` beside
/// `0.0.0.0:P` is two listeners, not a conflict). For the dual-stack
/// wildcard use [`BindAddress::Any`].
pub fn bind_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let v6only = match addr.ip() {
        IpAddr::V4(_) => None,
        // An IPv4-mapped address can only be bound by a dual-stack socket.
        IpAddr::V6(ip) => Some(ip.to_ipv4_mapped().is_none()),
    };
    listen(addr, v6only)
}

fn listen(addr: SocketAddr, v6only: Option<bool>) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if let Some(only) = v6only {
        socket.set_only_v6(only)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}
