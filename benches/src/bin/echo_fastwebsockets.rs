//! Rival echo server: fastwebsockets with its `upgrade` feature on hyper 1, as in the crate's own
//! `echo_server` example: `FragmentCollector`, auto close and auto pong, 64 MiB max message.
//! Follows the `echo` contract of `shared/design/CLI.md`.

#![forbid(unsafe_code)]

use fastwebsockets::{upgrade, FragmentCollector, OpCode, WebSocketError};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use tokio::net::TcpListener;
use wsmp_benches::{announce, server_listen_args, MAX_MESSAGE};

async fn handle_client(fut: upgrade::UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = fut.await?;
    ws.set_auto_close(true);
    ws.set_auto_pong(true);
    ws.set_max_message_size(MAX_MESSAGE);
    let mut ws = FragmentCollector::new(ws);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => break,
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
    Ok(())
}

async fn server_upgrade(
    mut req: Request<Incoming>,
) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let (response, fut) = upgrade::upgrade(&mut req)?;
    tokio::spawn(async move {
        if let Err(e) = handle_client(fut).await {
            match e {
                WebSocketError::ConnectionClosed | WebSocketError::UnexpectedEOF => {}
                e => eprintln!("connection error: {e}"),
            }
        }
    });
    Ok(response)
}

#[tokio::main]
async fn main() {
    let addrs = server_listen_args("echo_fastwebsockets");
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
                let stream = match listener.accept().await {
                    Ok((s, _)) => s,
                    Err(e) => {
                        eprintln!("accept: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        continue;
                    }
                };
                // Request/response traffic: Nagle would add delayed-ACK stalls.
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let conn = http1::Builder::new()
                        .serve_connection(io, service_fn(server_upgrade))
                        .with_upgrades();
                    if let Err(e) = conn.await {
                        eprintln!("http error: {e}");
                    }
                });
            }
        });
    }
    shutdown.await;
    eprintln!("echo_fastwebsockets: signal received, exiting");
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
