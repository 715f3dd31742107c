//! `mp_client`: joins a multiplayer server (ours or the engine's) with the poll-driven peer
//! (CLI.md). Exit 0 when `--expect` packets arrived in time, 1 when not, 2 when it could not
//! connect or the server broke the protocol.
//!
//! `cargo run --release -p wsmp-std --example mp_client -- --url ws://127.0.0.1:9080 --send 0102 --count 3`

mod common;

use std::time::{Duration, Instant};

use wsmp_core::connection::CloseCause;
use wsmp_std::{HostEvent, MultiplayerPeer, PeerId, TlsClientOptions};

fn main() {
    let args = common::Args::parse(
        "mp_client",
        &["url", "send", "count", "expect", "timeout", "ca"],
        &["insecure"],
    );
    let url = args
        .get("url")
        .unwrap_or_else(|| args.fail("--url is required"));
    let send = parse_hex(&args.get("send").unwrap_or_default())
        .unwrap_or_else(|| args.fail("--send must be hex digits, an even number of them"));
    let count: u64 = args.parse_value("count", 1);
    let expect: u64 = args.parse_value("expect", if send.is_empty() { 1 } else { count });
    let timeout: f64 = args.parse_value("timeout", 5.0);
    if !(timeout.is_finite() && timeout >= 0.0) {
        args.fail("--timeout must be a non-negative number of seconds");
    }
    let mut tls = if args.flag("insecure") {
        TlsClientOptions::dangerous_unverified()
    } else {
        TlsClientOptions::client()
    };
    if let Some(ca) = args.get("ca") {
        tls = tls
            .with_trusted_ca_file(ca.as_ref())
            .unwrap_or_else(|e| args.fail(&e.to_string()));
    }
    let deadline = Instant::now() + Duration::from_secs_f64(timeout);
    let mut peer = MultiplayerPeer::new();
    if let Err(e) = peer.create_client(&url, Some(tls)) {
        eprintln!("mp_client: {e}");
        std::process::exit(2);
    }
    let mut connected = false;
    let mut sent = 0u64;
    let mut received = 0u64;
    loop {
        let now = Instant::now();
        if now >= deadline {
            if connected {
                eprintln!("mp_client: timed out: received {received} of {expect} packets");
                std::process::exit(1);
            }
            eprintln!(
                "mp_client: could not connect within {timeout} s{}",
                reason(&peer)
            );
            std::process::exit(2);
        }
        peer.poll_wait((deadline - now).min(Duration::from_millis(20)));
        while let Some(event) = peer.poll_signal() {
            match event {
                HostEvent::PeerConnected(_) => {
                    connected = true;
                    common::say(format_args!("unique_id {}", peer.get_unique_id()));
                }
                HostEvent::ConnectFailed(why) => {
                    match peer.last_error() {
                        Some(e) => eprintln!("mp_client: could not connect: {e}"),
                        None => eprintln!("mp_client: could not connect: {why:?}"),
                    }
                    std::process::exit(2);
                }
                HostEvent::PeerDisconnected { info, .. } => {
                    drain_packets(&mut peer, &mut received);
                    if received >= expect && (send.is_empty() || sent >= count) {
                        std::process::exit(0);
                    }
                    let protocol = info.as_ref().is_some_and(|i| {
                        matches!(
                            i.cause,
                            CloseCause::ProtocolError | CloseCause::Handshake(_)
                        )
                    });
                    eprintln!("mp_client: the server closed the connection: {info:?}");
                    std::process::exit(if protocol { 2 } else { 1 });
                }
                _ => {}
            }
        }
        drain_packets(&mut peer, &mut received);
        if connected && !send.is_empty() {
            while sent < count {
                match peer.put_packet(send.clone()) {
                    Ok(_) => sent += 1,
                    Err(wsmp_core::host::HostSendError::QueueFull(..)) => break,
                    Err(e) => {
                        eprintln!("mp_client: cannot send: {e}");
                        std::process::exit(2);
                    }
                }
            }
            peer.flush();
        }
        if connected && received >= expect && (send.is_empty() || sent >= count) {
            // Graceful close, bounded.
            let _ = peer.disconnect_peer(PeerId::SERVER, false);
            let end = Instant::now() + Duration::from_secs(1);
            while peer.socket_count() > 0 && Instant::now() < end {
                peer.poll_wait(Duration::from_millis(20));
            }
            std::process::exit(0);
        }
    }
}

fn drain_packets(peer: &mut MultiplayerPeer, received: &mut u64) {
    while let Some(p) = peer.get_packet() {
        let hex: String = p.data.iter().map(|b| format!("{b:02x}")).collect();
        common::say(format_args!(
            "recv from={} len={} hex={hex}",
            p.from,
            p.data.len()
        ));
        *received += 1;
    }
}

fn reason(peer: &MultiplayerPeer) -> String {
    peer.last_error()
        .map(|e| format!(" ({e})"))
        .unwrap_or_default()
}

fn parse_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}
