//! Rival echo server: tungstenite over a blocking `std::net::TcpStream`, one thread per
//! connection, as in tungstenite's own `server` example; 64 MiB limits, otherwise defaults.
//! Follows the `echo` contract of `shared/design/CLI.md`.

#![forbid(unsafe_code)]

use std::net::{TcpListener, TcpStream};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::Error;
use wsmp_benches::{announce, server_listen_args, MAX_MESSAGE};

fn handle(stream: TcpStream) {
    // Request/response traffic: Nagle would add delayed-ACK stalls.
    let _ = stream.set_nodelay(true);
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let mut ws = match tungstenite::accept_with_config(stream, Some(config)) {
        Ok(ws) => ws,
        Err(e) => {
            eprintln!("handshake failed: {e}");
            return;
        }
    };
    loop {
        match ws.read() {
            // `send` writes and flushes; pongs and the close reply are queued by `read`.
            Ok(msg) if msg.is_binary() || msg.is_text() => {
                if let Err(e) = ws.send(msg) {
                    report(e);
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => {
                report(e);
                return;
            }
        }
    }
}

fn report(e: Error) {
    match e {
        Error::ConnectionClosed | Error::AlreadyClosed => {}
        e => eprintln!("connection error: {e}"),
    }
}

fn main() {
    let addrs = server_listen_args("echo_tungstenite_blocking");
    let mut listeners = Vec::new();
    for addr in &addrs {
        match TcpListener::bind(addr) {
            Ok(l) => listeners.push(l),
            Err(e) => {
                eprintln!("cannot listen on {addr}: {e}");
                std::process::exit(1);
            }
        }
    }
    let mut signals = match signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot install signal handlers: {e}");
            std::process::exit(1);
        }
    };
    for l in &listeners {
        if let Ok(a) = l.local_addr() {
            announce(a);
        }
    }
    for listener in listeners {
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                match stream {
                    Ok(s) => {
                        // Small stacks: the idle-memory scenario holds 10,000 threads.
                        let spawned = std::thread::Builder::new()
                            .stack_size(256 << 10)
                            .spawn(move || handle(s));
                        if let Err(e) = spawned {
                            eprintln!("cannot spawn connection thread: {e}");
                        }
                    }
                    Err(e) => {
                        eprintln!("accept: {e}");
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                }
            }
        });
    }
    if signals.forever().next().is_some() {
        eprintln!("echo_tungstenite_blocking: signal received, exiting");
    }
    std::process::exit(0);
}
