//! `mp_echo`: a multiplayer server speaking the engine's wire protocol
//! (../shared/design/CLI.md). Assigns ids, sends the id message, and sends
//! every packet from peer X back to X only.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use wsmp_tokio::{bind, HostEvent, MultiplayerPeer, Target};

#[derive(Parser)]
#[command(about = "Multiplayer echo server (wsmp-tokio)")]
struct Args {
    /// Address to listen on (repeatable); port 0 = any.
    #[arg(long = "listen", value_parser = common::listen_addr, default_value = "127.0.0.1:9080")]
    listen: Vec<std::net::SocketAddr>,
    /// PEM certificate chain (wss).
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// PEM private key (wss).
    #[arg(long)]
    tls_key: Option<PathBuf>,
}

#[tokio::main]
async fn main() {
    let args: Args = common::parse();
    common::init_logging();
    let tls = common::server_tls(args.tls_cert.as_deref(), args.tls_key.as_deref());
    let listeners: Vec<_> = args
        .listen
        .iter()
        .map(|a| {
            bind(a.port(), &a.ip().to_string())
                .unwrap_or_else(|e| common::fail(format!("bind {a}: {e}")))
        })
        .collect();
    let mut peer = MultiplayerPeer::new();
    peer.create_server_on(listeners, tls)
        .unwrap_or_else(|e| common::fail(e));
    for a in peer.local_addrs().to_vec() {
        common::announce(a);
    }
    loop {
        tokio::select! {
            event = peer.next_event() => match event {
                Some(HostEvent::PeerConnected(id)) => println!("peer_connected {id}"),
                Some(HostEvent::PeerDisconnected { peer: id, .. }) => println!("peer_disconnected {id}"),
                Some(HostEvent::Packet { from, data }) => {
                    println!("packet from={from} len={}", data.len());
                    if let Err(e) = peer.send(Target::Peer(from), data) {
                        eprintln!("echo to {from} failed: {e}");
                    }
                }
                Some(_) => {}
                None => break,
            },
            () = common::shutdown_signal() => break,
        }
    }
    peer.shutdown(Duration::from_secs(2)).await;
}
