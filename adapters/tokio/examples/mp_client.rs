//! `mp_client`: joins a multiplayer server — ours or the engine's
//! (../shared/design/CLI.md). Prints `unique_id ID`, then
//! `recv from=ID len=N hex=HEX` per packet. Exit 0 when `--expect` packets
//! arrived in time, 1 when not, 2 when it could not connect or the server
//! broke the protocol.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use wsmp_tokio::{HostEvent, MultiplayerPeer, Target, TlsClientOptions};

#[derive(Parser)]
#[command(about = "Multiplayer client (wsmp-tokio)")]
struct Args {
    /// ws:// or wss:// URL.
    #[arg(long)]
    url: String,
    /// Packet to send to the server once connected (hex, no separators).
    #[arg(long, default_value = "")]
    send: String,
    /// How many times to send it.
    #[arg(long, default_value_t = 1)]
    count: u32,
    /// Packets to receive before success (default: --count when --send is given, else 1).
    #[arg(long)]
    expect: Option<u32>,
    /// Seconds for the whole run.
    #[arg(long, default_value_t = 5.0)]
    timeout: f64,
    /// Trust this CA (PEM) for wss://.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Skip certificate verification.
    #[arg(long)]
    insecure: bool,
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[tokio::main]
async fn main() {
    let args: Args = common::parse();
    common::init_logging();
    let payload = unhex(&args.send).unwrap_or_else(|| common::fail("--send must be hex digits"));
    if !(args.timeout.is_finite() && args.timeout > 0.0) {
        common::fail("--timeout must be a positive number of seconds");
    }
    let expect = args
        .expect
        .unwrap_or(if payload.is_empty() { 1 } else { args.count });
    let tls = if args.insecure {
        Some(TlsClientOptions::dangerous_unverified())
    } else if let Some(ca) = &args.ca {
        let pem =
            std::fs::read(ca).unwrap_or_else(|e| common::fail(format!("{}: {e}", ca.display())));
        Some(
            TlsClientOptions::client()
                .with_trusted_ca_pem(&pem)
                .unwrap_or_else(|e| common::fail(e)),
        )
    } else {
        None
    };
    let mut peer = MultiplayerPeer::new();
    if let Err(e) = peer.create_client(&args.url, tls).await {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(args.timeout);
    let mut received = 0u32;
    let code = loop {
        if received >= expect {
            break 0;
        }
        let event = tokio::select! {
            e = peer.next_event() => e,
            () = tokio::time::sleep_until(deadline) => break if peer.get_unique_id() == 0 { 2 } else { 1 },
        };
        match event {
            Some(HostEvent::PeerConnected(_)) => {
                println!("unique_id {}", peer.get_unique_id());
                for _ in 0..args.count {
                    if payload.is_empty() {
                        break;
                    }
                    if let Err(e) = peer.send(
                        Target::Peer(wsmp_tokio::PeerId::SERVER),
                        Bytes::from(payload.clone()),
                    ) {
                        eprintln!("error: send failed: {e}");
                        break;
                    }
                }
            }
            Some(HostEvent::Packet { from, data }) => {
                println!(
                    "recv from={from} len={} hex={}",
                    data.len(),
                    common::hex(&data)
                );
                received += 1;
            }
            Some(HostEvent::ConnectFailed(why)) => {
                eprintln!("error: could not connect: {why:?}");
                break 2;
            }
            Some(HostEvent::PeerDisconnected { info, .. }) => {
                eprintln!("error: server disconnected: {info:?}");
                break 1;
            }
            Some(_) => {}
            None => {
                eprintln!("error: connection ended");
                break if peer.get_unique_id() == 0 { 2 } else { 1 };
            }
        }
    };
    peer.close();
    std::process::exit(code);
}
