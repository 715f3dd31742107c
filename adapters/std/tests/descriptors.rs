//! A blocking `WebSocket` holds one descriptor: its socket (issue 11: an epoll instance per
//! connection doubled the descriptors, and the std echo server hit EMFILE at 10,000
//! connections). Alone in its test binary: it counts the process's open descriptors.
#![allow(clippy::unwrap_used, missing_docs)]
#![cfg(target_os = "linux")]

use std::net::TcpListener;

use wsmp_std::{accept, connect, ClientOptions, ServerOptions};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn each_blocking_websocket_holds_only_its_socket() {
    const N: usize = 16;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let before = open_fds();
    let server = std::thread::spawn(move || {
        (0..N)
            .map(|_| accept(listener.accept().unwrap().0, &ServerOptions::default()).unwrap())
            .collect::<Vec<_>>()
    });
    let clients: Vec<_> = (0..N)
        .map(|_| connect(&format!("ws://{addr}/"), ClientOptions::default()).unwrap())
        .collect();
    let servers = server.join().unwrap();
    // The listener moved into the thread and was dropped with it.
    let grown = open_fds() + 1 - before;
    assert_eq!(
        grown,
        2 * N,
        "descriptors for {N} client + {N} server sockets"
    );
    drop((clients, servers));
}
