//! Issue 10: one IP held 514 completed connections (`--max-pending-per-ip`
//! only counted unfinished handshakes). `--max-conns-per-ip N` counts every
//! connection of an address (IPv4 address, IPv6 /64 — the /64 grouping is
//! unit-tested in relay/src/admission.rs): the (N+1)th gets HTTP 429, other
//! addresses are not affected, and a slot frees when a connection ends.
//!
//! IPv6: the same check over `[::1]` when the kernel has the IPv6 loopback
//! address (a line for `::1` in /proc/net/if_inet6). Without it the check
//! is skipped with a message — also in CI, because then `::1` truly does
//! not exist there; when `::1` exists, a failure to use it fails the test.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use crate::support::*;

const N: usize = 8;

/// True when the kernel has the IPv6 loopback address.
fn ipv6_loopback_exists() -> bool {
    std::fs::read_to_string("/proc/net/if_inet6").is_ok_and(|t| {
        t.lines()
            .any(|l| l.starts_with("00000000000000000000000000000001"))
    })
}

/// Opens `N` WebSockets from `from` (alternating rooms: the limit is per
/// address, not per room), then expects 429 for one more.
fn fill_address(addr: SocketAddr, from: Option<IpAddr>) -> Vec<Ws> {
    let mut held = Vec::new();
    for i in 0..N {
        let path = if i % 2 == 0 { "/room/a" } else { "/room/b" };
        let mut ws = open(addr, from, path).expect("connect").open();
        ws.read_id().expect("id message");
        held.push(ws);
    }
    match open(addr, from, "/room/c").expect("connect") {
        Upgrade::Refused(429, _) => {}
        Upgrade::Refused(s, b) => panic!("connection {} from {from:?}: {s} {b}", N + 1),
        Upgrade::Open(_) => panic!(
            "connection {} from {from:?} was upgraded: --max-conns-per-ip {N} not enforced",
            N + 1
        ),
    }
    held
}

#[test]
fn the_connection_beyond_max_conns_per_ip_gets_429() {
    let _serial = serial();
    if figures() {
        figure_default_flags();
    }
    let v6 = ipv6_loopback_exists();
    let listen: &[&str] = if v6 {
        &["127.0.0.1:0", "[::1]:0"]
    } else {
        eprintln!("NOTE: no IPv6 loopback address (::1) on this machine: [::1] check skipped");
        &["127.0.0.1:0"]
    };
    let n = N.to_string();
    // As an environment variable: a relay without the flag (v0.1) still starts.
    let relay = RelayProc::spawn_listening(listen, &[], &[("WSMP_RELAY_MAX_CONNS_PER_IP", &n)]);
    let addr = relay.addr();
    let mut held = fill_address(addr, None);
    // Another address is not affected.
    let mut other = open(addr, Some(OTHER_V4), "/room/a")
        .expect("connect from 127.0.0.2")
        .open();
    other.read_id().expect("id");
    // A slot frees when a connection ends.
    assert_eq!(
        held.pop().expect("held").leave().expect("close"),
        Some(1000)
    );
    assert!(
        relay.wait_peers(N as u64, Duration::from_secs(10)),
        "slot not released"
    );
    let mut again = open(addr, None, "/room/c").expect("connect").open();
    again.read_id().expect("id");
    if v6 {
        // [::1] is its own address (and its own /64): N more, then 429.
        let v6_addr = relay.addrs[1];
        let held6 = fill_address(v6_addr, Some(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        assert_eq!(held6.len(), N);
    }
}

/// The figure: with default flags, how many upgrades one address holds
/// (600 tried, over rooms of 60).
fn figure_default_flags() {
    let _ = wsmp_benches::raise_nofile();
    let relay = RelayProc::spawn(&[], &[]);
    let mut held = Vec::new();
    let mut refused = None;
    for i in 0..600 {
        let path = format!("/room/f{}", i / 60);
        match open(relay.addr(), None, &path) {
            Ok(Upgrade::Open(mut ws)) => {
                ws.read_id().expect("id");
                held.push(ws);
            }
            Ok(Upgrade::Refused(s, _)) => {
                refused = Some(s);
                break;
            }
            Err(e) => panic!("connection {i}: {e}"),
        }
    }
    figure(
        "per_ip_default_flags",
        format!(
            "127.0.0.1 held {} upgraded connections of 600 tried (default flags); next answer: {}",
            held.len(),
            refused.map_or("none".to_string(), |s| s.to_string())
        ),
    );
}
