//! `echo`: plain WebSocket echo server on blocking sockets, one thread per connection
//! (CLI.md). Every text and binary message is sent back unchanged; 64 MiB message limit.
//!
//! `cargo run --release -p wsmp-std --example echo -- --listen 127.0.0.1:9080 [--tls-cert PEM --tls-key PEM]`

mod common;

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use wsmp_std::{accept, Config, Error, ServerOptions};

fn main() {
    let args = common::Args::parse("echo", &["listen", "tls-cert", "tls-key"], &[]);
    let addrs = args.listen_addrs();
    let tls = args.server_tls();
    let term = common::termination_flag();
    let options = Arc::new(ServerOptions {
        config: Config {
            inbound_buffer_size: 64 << 20,
            outbound_buffer_size: 64 << 20,
            ..Config::default()
        },
        tls,
        ..Default::default()
    });
    let mut listeners = Vec::new();
    for addr in addrs {
        // The bind rule of every wsmp server (wsmp_io::BindAddress); served blocking here.
        match wsmp_std::bind_listener(addr).and_then(|l| l.set_nonblocking(false).map(|()| l)) {
            Ok(l) => listeners.push(l),
            Err(e) => {
                eprintln!("echo: cannot listen on {addr}: {e}");
                std::process::exit(1);
            }
        }
    }
    for l in &listeners {
        match l.local_addr() {
            Ok(a) => common::say(format_args!("listening on {a}")),
            Err(e) => eprintln!("echo: {e}"),
        }
    }
    for listener in listeners {
        let options = options.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                match stream {
                    Ok(stream) => {
                        let options = options.clone();
                        thread::spawn(move || serve(stream, &options));
                    }
                    Err(e) => {
                        eprintln!("echo: accept: {e}");
                        thread::sleep(Duration::from_millis(10));
                    }
                }
            }
        });
    }
    while !common::terminated(&term) {
        thread::sleep(Duration::from_millis(50));
    }
    std::process::exit(0);
}

fn serve(stream: std::net::TcpStream, options: &ServerOptions) {
    let peer = stream.peer_addr().ok();
    let mut ws = match accept(stream, options) {
        Ok(ws) => ws,
        Err(e) => {
            eprintln!("echo: {peer:?}: {e}");
            return;
        }
    };
    loop {
        match ws.recv() {
            Ok(message) => {
                if let Err(e) = ws.send(message) {
                    eprintln!("echo: {peer:?}: {e}");
                    return;
                }
            }
            Err(Error::Closed(_)) => return,
            Err(e) => {
                eprintln!("echo: {peer:?}: {e}");
                return;
            }
        }
    }
}
