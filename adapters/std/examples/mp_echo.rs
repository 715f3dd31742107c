//! `mp_echo`: multiplayer server (engine wire protocol) on the poll-driven peer (CLI.md).
//! Every packet from peer X goes back to X only.
//!
//! `cargo run --release -p wsmp-std --example mp_echo -- --listen 127.0.0.1:9080 [--tls-cert PEM --tls-key PEM]`

mod common;

use std::time::{Duration, Instant};

use wsmp_std::{HostEvent, MultiplayerPeer, Target};

fn main() {
    let args = common::Args::parse("mp_echo", &["listen", "tls-cert", "tls-key"], &[]);
    let addrs = args.listen_addrs();
    if addrs.len() != 1 {
        args.fail("mp_echo listens on exactly one address");
    }
    let addr = addrs[0];
    let tls = args.server_tls();
    let term = common::termination_flag();
    let mut peer = MultiplayerPeer::new();
    if let Err(e) = peer.create_server(addr.port(), &addr.ip().to_string(), tls) {
        eprintln!("mp_echo: cannot listen on {addr}: {e}");
        std::process::exit(1);
    }
    let local = peer.local_addr().unwrap_or(addr);
    common::say(format_args!("listening on {local}"));
    while !common::terminated(&term) {
        peer.poll_wait(Duration::from_millis(50));
        drain(&mut peer);
    }
    // Graceful stop: close frames to everyone, bounded wait.
    peer.shutdown();
    let deadline = Instant::now() + Duration::from_secs(2);
    while peer.socket_count() > 0 && Instant::now() < deadline {
        peer.poll_wait(Duration::from_millis(20));
        drain(&mut peer);
    }
    peer.close();
    std::process::exit(0);
}

fn drain(peer: &mut MultiplayerPeer) {
    while let Some(event) = peer.poll_signal() {
        match event {
            HostEvent::PeerConnected(id) => common::say(format_args!("peer_connected {id}")),
            HostEvent::PeerDisconnected { peer: id, .. } => {
                common::say(format_args!("peer_disconnected {id}"))
            }
            _ => {}
        }
    }
    while let Some(packet) = peer.get_packet() {
        common::say(format_args!(
            "packet from={} len={}",
            packet.from,
            packet.data.len()
        ));
        peer.set_target_peer(Target::Peer(packet.from));
        if let Err(e) = peer.put_packet(packet.data) {
            eprintln!("mp_echo: cannot echo to {}: {e}", packet.from);
        }
    }
    peer.flush();
}
