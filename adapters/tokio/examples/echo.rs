//! `echo`: a plain WebSocket echo server (../shared/design/CLI.md).
//! Every text and binary message comes back unchanged, as one message of
//! the same type; 64 MiB message limit; pings answered; closing handshake.

mod common;

use std::path::PathBuf;

use clap::Parser;
use wsmp_tokio::{accept, Config, ServerOptions};

#[derive(Parser)]
#[command(about = "WebSocket echo server (wsmp-tokio)")]
struct Args {
    /// Address to listen on (repeatable), e.g. 127.0.0.1:9001 or [::1]:9001; port 0 = any.
    #[arg(long = "listen", value_parser = common::listen_addr, default_value = "127.0.0.1:9001")]
    listen: Vec<std::net::SocketAddr>,
    /// PEM certificate chain (wss).
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// PEM private key (wss).
    #[arg(long)]
    tls_key: Option<PathBuf>,
}

/// The echo configuration: 64 MiB messages in and out.
fn config() -> Config {
    Config {
        inbound_buffer_size: 64 << 20,
        outbound_buffer_size: 64 << 20,
        ..Config::default()
    }
}

#[tokio::main]
async fn main() {
    let args: Args = common::parse();
    common::init_logging();
    let tls = common::server_tls(args.tls_cert.as_deref(), args.tls_key.as_deref());
    let options = ServerOptions {
        config: config(),
        tls,
        ..ServerOptions::default()
    };
    let mut listeners = Vec::new();
    for addr in &args.listen {
        let l = wsmp_tokio::bind(addr.port(), &addr.ip().to_string())
            .unwrap_or_else(|e| common::fail(format!("bind {addr}: {e}")));
        listeners.push(l);
    }
    for l in &listeners {
        if let Ok(a) = l.local_addr() {
            common::announce(a);
        }
    }
    for listener in listeners {
        let options = options.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let options = options.clone();
                tokio::spawn(async move {
                    let Ok(mut ws) = accept(stream, options).await else {
                        return;
                    };
                    // Batch: queue the echo of everything already received,
                    // then write it all with one vectored write.
                    'conn: while let Some(message) = ws.recv().await {
                        if ws.feed(message).await.is_err() {
                            break;
                        }
                        while let Some(more) = ws.try_recv() {
                            if ws.feed(more).await.is_err() {
                                break 'conn;
                            }
                        }
                        if ws.flush().await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
    }
    common::shutdown_signal().await;
}
