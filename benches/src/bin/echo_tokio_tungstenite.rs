//! Rival echo server: tokio-tungstenite, written the way its own `echo-server` example does it
//! (`read.try_filter(data).forward(write)`), default configuration except the 64 MiB limits.
//! Follows the `echo` contract of `shared/design/CLI.md`.

#![forbid(unsafe_code)]

use futures_util::{future, StreamExt, TryStreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use wsmp_benches::{announce, server_listen_args, MAX_MESSAGE};

async fn handle(stream: TcpStream) {
    // Request/response traffic: Nagle would add delayed-ACK stalls (every server here sets it).
    let _ = stream.set_nodelay(true);
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let ws = match tokio_tungstenite::accept_async_with_config(stream, Some(config)).await {
        Ok(ws) => ws,
        Err(e) => {
            eprintln!("handshake failed: {e}");
            return;
        }
    };
    let (write, read) = ws.split();
    // Pings are answered and the closing handshake completed by tungstenite itself.
    if let Err(e) = read
        .try_filter(|msg| future::ready(msg.is_text() || msg.is_binary()))
        .forward(write)
        .await
    {
        match e {
            tokio_tungstenite::tungstenite::Error::ConnectionClosed => {}
            e => eprintln!("connection error: {e}"),
        }
    }
}

#[tokio::main]
async fn main() {
    let addrs = server_listen_args("echo_tokio_tungstenite");
    let mut listeners = Vec::new();
    for addr in &addrs {
        match TcpListener::bind(addr).await {
            Ok(l) => listeners.push(l),
            Err(e) => {
                eprintln!("cannot listen on {addr}: {e}");
                std::process::exit(1);
            }
        }
    }
    // Handlers first: a signal right after the `listening on` line must already be caught.
    let shutdown = shutdown_signal();
    for l in &listeners {
        if let Ok(a) = l.local_addr() {
            announce(a);
        }
    }
    for listener in listeners {
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        tokio::spawn(handle(stream));
                    }
                    Err(e) => {
                        eprintln!("accept: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    }
                }
            }
        });
    }
    shutdown.await;
    eprintln!("echo_tokio_tungstenite: signal received, exiting");
}

/// Installs the SIGINT and SIGTERM handlers now; the returned future completes on either.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let install = |kind| match signal(kind) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot install signal handler: {e}");
            std::process::exit(1);
        }
    };
    let mut int = install(SignalKind::interrupt());
    let mut term = install(SignalKind::terminate());
    async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    }
}
