//! `echo-server --adapter tokio|std --listen HOST:PORT [--tls-cert PEM --tls-key PEM]`:
//! the `echo` behaviour of ../shared/design/CLI.md on the chosen adapter.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use wsmp_conformance::{config, fail, parse_args, Adapter};

#[derive(Parser)]
#[command(about = "Autobahn echo server on a wsmp adapter")]
struct Args {
    /// Adapter under test.
    #[arg(long, value_enum)]
    adapter: Adapter,
    /// Address to listen on (repeatable).
    #[arg(long = "listen", default_value = "127.0.0.1:9001")]
    listen: Vec<SocketAddr>,
    /// PEM certificate chain (wss).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key (wss).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

fn announce(addr: SocketAddr) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening on {addr}");
    let _ = out.flush();
}

fn main() {
    let args: Args = parse_args();
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => {
            Some(wsmp_tokio::TlsServerOptions::from_pem_files(c, k).unwrap_or_else(|e| fail(e)))
        }
        _ => None,
    };
    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| fail(e));
    match args.adapter {
        Adapter::Tokio => runtime.block_on(tokio_server(args.listen, tls)),
        Adapter::Std => runtime.block_on(std_server(args.listen, tls)),
    }
}

async fn until_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

async fn tokio_server(listen: Vec<SocketAddr>, tls: Option<wsmp_tokio::TlsServerOptions>) {
    let options = wsmp_tokio::ServerOptions {
        config: config(),
        tls,
        ..Default::default()
    };
    for addr in listen {
        let listener = wsmp_tokio::bind(addr.port(), &addr.ip().to_string())
            .unwrap_or_else(|e| fail(format!("bind {addr}: {e}")));
        if let Ok(a) = listener.local_addr() {
            announce(a);
        }
        let options = options.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let options = options.clone();
                tokio::spawn(async move {
                    let Ok(mut ws) = wsmp_tokio::accept(stream, options).await else {
                        return;
                    };
                    while let Some(message) = ws.recv().await {
                        if ws.send(message).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
    }
    until_signal().await;
}

async fn std_server(listen: Vec<SocketAddr>, tls: Option<wsmp_tokio::TlsServerOptions>) {
    let options = std::sync::Arc::new(wsmp_std::ServerOptions {
        config: config(),
        tls,
        read_timeout: None,
        write_timeout: None,
    });
    for addr in listen {
        let listener = wsmp_std::bind_listener(addr)
            .and_then(|l| l.set_nonblocking(false).map(|()| l))
            .unwrap_or_else(|e| fail(format!("bind {addr}: {e}")));
        if let Ok(a) = listener.local_addr() {
            announce(a);
        }
        let options = options.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let options = options.clone();
                std::thread::spawn(move || {
                    let Ok(mut ws) = wsmp_std::accept(stream, &options) else {
                        return;
                    };
                    while let Ok(message) = ws.recv() {
                        if ws.send(message).is_err() {
                            break;
                        }
                    }
                });
            }
        });
    }
    until_signal().await;
}
