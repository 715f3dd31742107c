//! `lobby`: a SceneMultiplayer server with game logic, peer 1 for unmodified
//! Godot 4 clients (../shared/design/CLI.md; the RPC contract is in
//! `game.rs` and examples/godot-lobby/README.md).
//!
//!     cargo run --release -p wsmp-scene --example lobby -- --listen 127.0.0.1:9080

#[path = "../../../adapters/tokio/examples/common/mod.rs"]
mod common;
mod game;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use wsmp_scene::multiplayer::Config;
use wsmp_scene::tokio::Server;

#[derive(Parser)]
#[command(about = "SceneMultiplayer lobby server (wsmp-scene): peer 1 for Godot 4 clients")]
struct Args {
    /// Address to listen on (repeatable); port 0 = any.
    #[arg(long = "listen", value_parser = common::listen_addr, default_value = "127.0.0.1:9080")]
    listen: Vec<SocketAddr>,
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
    let scene = game::scene(Config::default()).unwrap_or_else(|e| common::fail(e));
    let listeners: Vec<_> = args
        .listen
        .iter()
        .map(|a| {
            wsmp_tokio::bind(a.port(), &a.ip().to_string())
                .unwrap_or_else(|e| common::fail(format!("bind {a}: {e}")))
        })
        .collect();
    let mut server = Server::start(wsmp_tokio::MultiplayerPeer::new(), listeners, tls, scene)
        .unwrap_or_else(|e| common::fail(e));
    for a in server.local_addrs().to_vec() {
        common::announce(a);
    }
    let stop = common::shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            event = server.next_event() => match event {
                Some(e) => game::on_event(&mut server, e),
                None => break,
            },
            () = &mut stop => break,
        }
    }
    tracing::info!(stats = ?server.scene().stats(), "stopping");
    server.shutdown(Duration::from_secs(2)).await;
}
