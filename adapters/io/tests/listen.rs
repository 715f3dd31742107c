//! The bind rule (`wsmp_io::BindAddress`, `bind_listener`) over real sockets on
//! 127.0.0.1 and ::1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use wsmp_io::{bind_listener, BindAddress};

/// Accepts one connection on a non-blocking listener (bounded wait).
fn accept_one(l: &TcpListener) -> Option<TcpStream> {
    let end = Instant::now() + Duration::from_secs(2);
    while Instant::now() < end {
        match l.accept() {
            Ok((s, _)) => return Some(s),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2))
            }
            Err(e) => panic!("{e}"),
        }
    }
    None
}

fn v4(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn v6(port: u16) -> SocketAddr {
    SocketAddr::new("::1".parse().unwrap(), port)
}

#[test]
fn parse_accepts_the_wildcard_and_ip_addresses_only() {
    assert_eq!(BindAddress::parse("*"), Some(BindAddress::Any));
    let ip = |s: &str| Some(BindAddress::Ip(s.parse::<IpAddr>().unwrap()));
    assert_eq!(BindAddress::parse("0.0.0.0"), ip("0.0.0.0"));
    assert_eq!(BindAddress::parse("::"), ip("::"));
    assert_eq!(BindAddress::parse("[::1]"), ip("::1"));
    for bad in ["", "localhost", "[::1", "1.2.3", "**", "127.0.0.1:80"] {
        assert_eq!(BindAddress::parse(bad), None, "{bad:?}");
    }
}

/// `[::]:P` is IPv6-only, so `0.0.0.0:P` can be bound beside it: each
/// listener takes its own family.
#[test]
fn ipv6_wildcard_and_ipv4_wildcard_share_a_port() {
    let l6 = bind_listener("[::]:0".parse().unwrap()).unwrap();
    let port = l6.local_addr().unwrap().port();
    let l4 = bind_listener(SocketAddr::from(([0, 0, 0, 0], port))).unwrap();
    let _c4 = TcpStream::connect(v4(port)).unwrap();
    let _c6 = TcpStream::connect(v6(port)).unwrap();
    let a4 = accept_one(&l4).expect("IPv4 connection on the IPv4 listener");
    let a6 = accept_one(&l6).expect("IPv6 connection on the IPv6 listener");
    assert!(a4.peer_addr().unwrap().is_ipv4());
    assert!(a6.peer_addr().unwrap().is_ipv6());
    // Nothing crossed over: both backlogs are empty now.
    for l in [&l4, &l6] {
        let rest = l.accept().map(|(s, _)| s.peer_addr().ok());
        assert_eq!(rest.err().map(|e| e.kind()), Some(ErrorKind::WouldBlock));
    }
    // The other order works too.
    let l4 = bind_listener("0.0.0.0:0".parse().unwrap()).unwrap();
    let port = l4.local_addr().unwrap().port();
    bind_listener(SocketAddr::new("::".parse().unwrap(), port)).unwrap();
}

/// An explicit `[::]` takes no IPv4 connection (whatever
/// `net.ipv6.bindv6only` says).
#[test]
fn explicit_ipv6_wildcard_is_ipv6_only() {
    let l6 = bind_listener("[::]:0".parse().unwrap()).unwrap();
    let port = l6.local_addr().unwrap().port();
    let refused = TcpStream::connect_timeout(&v4(port), Duration::from_secs(2));
    assert!(refused.is_err(), "an IPv4 connection reached [::]");
}

/// `*` is one dual-stack socket: both families arrive on it, and it holds
/// the port for IPv4 too.
#[test]
fn any_is_dual_stack() {
    let l = BindAddress::Any.bind(0).unwrap();
    let port = l.local_addr().unwrap().port();
    let _c4 = TcpStream::connect(v4(port)).unwrap();
    let _c6 = TcpStream::connect(v6(port)).unwrap();
    let a = accept_one(&l).unwrap();
    let b = accept_one(&l).unwrap();
    let mut got: Vec<IpAddr> = [a, b]
        .iter()
        .map(|s| s.peer_addr().unwrap().ip())
        .map(|ip| match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        })
        .collect();
    got.sort();
    assert_eq!(got, vec![v4(0).ip(), v6(0).ip()]);
    let taken = bind_listener(SocketAddr::from(([0, 0, 0, 0], port)));
    assert_eq!(taken.err().map(|e| e.kind()), Some(ErrorKind::AddrInUse));
    // And the wildcard reports a taken port instead of falling back.
    let taken = BindAddress::Any.bind(port);
    assert_eq!(taken.err().map(|e| e.kind()), Some(ErrorKind::AddrInUse));
}

/// `SO_REUSEADDR`: a port whose closed connection is still in `TIME_WAIT` on
/// the server side can be bound again at once (a restarted server).
#[test]
fn a_port_in_time_wait_can_be_bound_again() {
    let l = bind_listener("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = l.local_addr().unwrap();
    let mut client = TcpStream::connect(addr).unwrap();
    let mut server = accept_one(&l).unwrap();
    server.set_nonblocking(false).unwrap();
    server.write_all(b"x").unwrap();
    // The server closes first: its side of the connection goes to TIME_WAIT.
    drop(server);
    let mut b = [0u8; 4];
    client
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    while client.read(&mut b).unwrap() > 0 {}
    drop(client);
    drop(l);
    let again = bind_listener(addr);
    assert!(again.is_ok(), "{:?}", again.err());
}
