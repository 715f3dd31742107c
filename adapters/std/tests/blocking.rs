//! Blocking client ↔ blocking server over real sockets on 127.0.0.1.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use wsmp_core::connection::CloseCause;
use wsmp_std::{
    accept, connect, ClientOptions, CloseCode, Config, Direction, Error, MessageKind,
    ServerOptions, TlsClientOptions, TlsServerOptions,
};
use wsmp_tls::testing::TestCerts;

fn big_config() -> Config {
    Config {
        inbound_buffer_size: 32 << 20,
        outbound_buffer_size: 32 << 20,
        ..Config::default()
    }
}

/// An echo server for one connection; returns its address and the join handle giving the
/// number of messages echoed.
fn echo_server(options: ServerOptions) -> (String, thread::JoinHandle<Result<usize, String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let handle = thread::spawn(move || {
        let (tcp, _) = listener.accept().map_err(|e| e.to_string())?;
        let mut ws = accept(tcp, &options).map_err(|e| e.to_string())?;
        let mut n = 0;
        loop {
            match ws.recv() {
                Ok(m) => {
                    ws.send(m).map_err(|e| e.to_string())?;
                    n += 1;
                }
                Err(Error::Closed(_)) => return Ok(n),
                Err(e) => return Err(e.to_string()),
            }
        }
    });
    (addr, handle)
}

#[test]
fn text_binary_and_16_mib() {
    let (addr, server) = echo_server(ServerOptions {
        config: big_config(),
        ..Default::default()
    });
    let mut ws = connect(
        &format!("ws://{addr}/path?q=1"),
        ClientOptions {
            config: big_config(),
            ..Default::default()
        },
    )
    .unwrap();
    ws.send_text("héllo").unwrap();
    let m = ws.recv().unwrap();
    assert_eq!(m.kind, MessageKind::Text);
    assert_eq!(&m.data[..], "héllo".as_bytes());
    ws.send_binary(vec![0u8, 1, 2, 255]).unwrap();
    let m = ws.recv().unwrap();
    assert_eq!(m.kind, MessageKind::Binary);
    assert_eq!(&m.data[..], &[0u8, 1, 2, 255]);
    let big: Vec<u8> = (0..16 << 20).map(|i: u32| (i % 251) as u8).collect();
    ws.send_binary(big.clone()).unwrap();
    let m = ws.recv().unwrap();
    assert_eq!(m.data.len(), big.len());
    assert!(m.data[..] == big[..]);
    // An empty message round-trips too.
    ws.send_binary(Vec::new()).unwrap();
    assert!(ws.recv().unwrap().data.is_empty());
    let info = ws.close(CloseCode::NORMAL, "bye").unwrap();
    assert!(info.clean, "{info:?}");
    assert_eq!(server.join().unwrap().unwrap(), 4);
    // After close, recv keeps reporting Closed.
    assert!(matches!(ws.recv(), Err(Error::Closed(_))));
}

#[test]
fn read_timeout_is_not_fatal() {
    let (addr, server) = echo_server(ServerOptions::default());
    let mut ws = connect(
        &format!("ws://{addr}/"),
        ClientOptions {
            read_timeout: Some(Duration::from_millis(100)),
            ..Default::default()
        },
    )
    .unwrap();
    let t = Instant::now();
    assert!(matches!(ws.recv(), Err(Error::Timeout(Direction::Read))));
    assert!(t.elapsed() >= Duration::from_millis(90));
    assert!(t.elapsed() < Duration::from_secs(2));
    // Still usable.
    ws.send_text("after timeout").unwrap();
    assert_eq!(&ws.recv().unwrap().data[..], b"after timeout");
    ws.close(CloseCode::NORMAL, "").unwrap();
    assert_eq!(server.join().unwrap().unwrap(), 1);
}

#[test]
fn too_large_send_is_refused_with_payload() {
    let (addr, server) = echo_server(ServerOptions::default());
    let mut ws = connect(&format!("ws://{addr}/"), ClientOptions::default()).unwrap();
    match ws.send_binary(vec![7u8; 70_000]) {
        Err(Error::Send(e)) => assert_eq!(e.payload.len(), 70_000),
        other => panic!("{other:?}"),
    }
    ws.close(CloseCode::NORMAL, "").unwrap();
    assert_eq!(server.join().unwrap().unwrap(), 0);
}

#[test]
fn server_handshake_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // A client that connects and says nothing.
    let silent = TcpStream::connect(addr).unwrap();
    let (tcp, _) = listener.accept().unwrap();
    let t = Instant::now();
    let options = ServerOptions {
        config: Config {
            handshake_timeout: Duration::from_millis(300),
            ..Config::default()
        },
        ..Default::default()
    };
    match accept(tcp, &options) {
        Err(Error::Handshake(info)) => assert_eq!(info.cause, CloseCause::HandshakeTimeout),
        other => panic!("{other:?}"),
    }
    let e = t.elapsed();
    assert!(
        e >= Duration::from_millis(280) && e < Duration::from_secs(2),
        "{e:?}"
    );
    // The socket was closed.
    let mut silent = silent;
    silent
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut b = [0u8; 16];
    assert_eq!(silent.read(&mut b).unwrap_or(0), 0);
}

#[test]
fn client_handshake_timeout() {
    // A server that accepts TCP and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let keep = thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        thread::sleep(Duration::from_millis(5000));
        drop(s);
    });
    let t = Instant::now();
    let options = ClientOptions {
        config: Config {
            handshake_timeout: Duration::from_millis(300),
            ..Config::default()
        },
        ..Default::default()
    };
    match connect(&format!("ws://{addr}/"), options) {
        Err(Error::Handshake(info)) => assert_eq!(info.cause, CloseCause::HandshakeTimeout),
        other => panic!("{other:?}"),
    }
    // Gave up by its own timer, long before the server drops the socket at
    // 5 s (the margin absorbs a loaded machine).
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    keep.join().unwrap();
}

#[test]
fn refused_connection_is_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    match connect(&format!("ws://{addr}/"), ClientOptions::default()) {
        Err(Error::Connect(_)) => {}
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        connect("http://x/", ClientOptions::default()),
        Err(Error::Client(_))
    ));
}

fn tls_server(certs: &TestCerts, chain: &str, key: &str) -> ServerOptions {
    let _ = certs;
    ServerOptions {
        tls: Some(TlsServerOptions::from_pem(chain.as_bytes(), key.as_bytes()).unwrap()),
        config: Config {
            handshake_timeout: Duration::from_secs(2),
            ..Config::default()
        },
        ..Default::default()
    }
}

#[test]
fn wss_trusted_ca() {
    let certs = TestCerts::generate();
    let (addr, server) = echo_server(tls_server(
        &certs,
        &certs.server_chain_pem,
        &certs.server_key_pem,
    ));
    let port = addr.rsplit(':').next().unwrap();
    let tls = TlsClientOptions::client()
        .with_trusted_ca_pem(certs.ca_pem.as_bytes())
        .unwrap();
    let mut ws = connect(
        &format!("wss://localhost:{port}/"),
        ClientOptions {
            tls,
            config: big_config(),
            ..Default::default()
        },
    )
    .unwrap();
    ws.send_text("secure").unwrap();
    assert_eq!(&ws.recv().unwrap().data[..], b"secure");
    let big = vec![0x5au8; 1 << 20];
    // The server's default 64 KiB limit refuses 1 MiB with 1009 and closes the socket, so the
    // write may fail part-way (broken pipe); either way the connection ends.
    let sent = ws.send_binary(big);
    assert!(
        matches!(sent, Ok(()) | Err(Error::Io(_)) | Err(Error::Tls(_))),
        "{sent:?}"
    );
    match ws.recv() {
        Err(Error::Closed(info)) => {
            // 1009, or 1006 when the server's reset overtook its close frame.
            assert!(
                info.code == CloseCode::MESSAGE_TOO_BIG || info.code == CloseCode::ABNORMAL,
                "{info:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(server.join().unwrap().is_ok());
}

#[test]
fn wss_wrong_host_name_fails() {
    let certs = TestCerts::generate();
    let (addr, server) = echo_server(tls_server(
        &certs,
        &certs.other_host_chain_pem,
        &certs.other_host_key_pem,
    ));
    let tls = TlsClientOptions::client()
        .with_trusted_ca_pem(certs.ca_pem.as_bytes())
        .unwrap();
    match connect(
        &format!("wss://{addr}/"),
        ClientOptions {
            tls,
            ..Default::default()
        },
    ) {
        Err(Error::Tls(e)) => assert!(e.to_string().contains("not valid for name"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(server.join().unwrap().is_err());
}

#[test]
fn wss_untrusted_fails_and_unsafe_mode_works() {
    let certs = TestCerts::generate();
    // Default roots do not trust the test CA.
    let (addr, server) = echo_server(tls_server(
        &certs,
        &certs.server_chain_pem,
        &certs.server_key_pem,
    ));
    assert!(matches!(
        connect(&format!("wss://{addr}/"), ClientOptions::default()),
        Err(Error::Tls(_))
    ));
    assert!(server.join().unwrap().is_err());
    // Unsafe mode accepts even the wrong-host certificate.
    let (addr, server) = echo_server(tls_server(
        &certs,
        &certs.other_host_chain_pem,
        &certs.other_host_key_pem,
    ));
    let mut ws = connect(
        &format!("wss://{addr}/"),
        ClientOptions {
            tls: TlsClientOptions::dangerous_unverified(),
            ..Default::default()
        },
    )
    .unwrap();
    ws.send_text("x").unwrap();
    assert_eq!(&ws.recv().unwrap().data[..], b"x");
    ws.close(CloseCode::NORMAL, "").unwrap();
    assert_eq!(server.join().unwrap().unwrap(), 1);
}

/// issue 10: closing a connection whose peer stopped reading (its socket full, plain or
/// wss) ends within close_timeout (the core's wait for the close reply) + linger (the
/// driver's bound on writing out), whatever TLS or the kernel still hold; no write timeout
/// is needed for that.
#[test]
fn close_with_a_stalled_reader_is_bounded() {
    let certs = TestCerts::generate();
    let close_timeout = Duration::from_millis(300);
    for tls in [false, true] {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (url, client_tls, server_tls) = if tls {
            (
                format!("wss://localhost:{port}/"),
                TlsClientOptions::client()
                    .with_trusted_ca_pem(certs.ca_pem.as_bytes())
                    .unwrap(),
                Some(
                    TlsServerOptions::from_pem(
                        certs.server_chain_pem.as_bytes(),
                        certs.server_key_pem.as_bytes(),
                    )
                    .unwrap(),
                ),
            )
        } else {
            (
                format!("ws://127.0.0.1:{port}/"),
                TlsClientOptions::default(),
                None,
            )
        };
        // The client connects and then never reads.
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let client = thread::spawn(move || {
            let ws = connect(
                &url,
                ClientOptions {
                    tls: client_tls,
                    ..Default::default()
                },
            )
            .unwrap();
            let _ = stop_rx.recv_timeout(Duration::from_secs(20));
            drop(ws);
        });
        let (tcp, _) = listener.accept().unwrap();
        let mut ws = accept(
            tcp,
            &ServerOptions {
                tls: server_tls,
                config: Config {
                    close_timeout,
                    outbound_buffer_size: 1 << 20,
                    ..Config::default()
                },
                write_timeout: Some(Duration::from_millis(200)),
                ..Default::default()
            },
        )
        .unwrap();
        // Fill the socket until a write times out.
        let t = Instant::now();
        loop {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "tls={tls}: never full"
            );
            match ws.send_binary(vec![1u8; 60_000]) {
                Ok(()) => {}
                Err(Error::Timeout(Direction::Write)) => break,
                Err(e) => panic!("tls={tls}: {e}"),
            }
        }
        ws.set_write_timeout(None);
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let closing = thread::spawn(move || {
            let t = Instant::now();
            let info = ws.close(CloseCode::NORMAL, "bye");
            let _ = done_tx.send(t.elapsed());
            info.map(|i| i.cause).map_err(|e| e.to_string())
        });
        let took = done_rx
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| panic!("tls={tls}: close() did not return"));
        assert!(
            took < 2 * close_timeout + Duration::from_millis(600),
            "tls={tls}: {took:?}"
        );
        assert_eq!(
            closing.join().unwrap(),
            Ok(CloseCause::CloseTimeout),
            "tls={tls}"
        );
        stop_tx.send(()).unwrap();
        client.join().unwrap();
    }
}

/// Autobahn 2.7/2.8: an unsolicited pong and a close in one segment. A core
/// with `max_queued_packets: 1` stops reading while the pong event waits; once `recv` took it, the close
/// (held by the driver) must be read and answered — not left waiting for a
/// socket event that never comes (edge-triggered). Without the fix the
/// first round already hangs until the read timeout.
#[test]
fn pong_then_close_in_one_segment_is_answered() {
    use std::io::Write;
    // One event at a time, as the Autobahn echo server is configured
    // (conformance/src/lib.rs): the pong alone stops the core's reading.
    let options = ServerOptions {
        config: Config {
            max_queued_packets: 1,
            ..Config::default()
        },
        ..ServerOptions::default()
    };
    for round in 0..20 {
        let (addr, server) = echo_server(options.clone());
        let mut c = TcpStream::connect(&addr).unwrap();
        c.set_nodelay(true).unwrap();
        c.write_all(
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: bStaYn2d9Mzd5muNVoq+3A==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .unwrap();
        let mut head = [0u8; 129];
        c.read_exact(&mut head).unwrap();
        assert!(head.starts_with(b"HTTP/1.1 101"), "round {round}");
        // Let the server block in `recv` first (as with Autobahn's client).
        thread::sleep(Duration::from_millis(20));
        // Masked empty pong, then a masked close 1000 (RFC 6455 §5.5.3, §5.5.1).
        let mask = [0x75, 0xaa, 0x21, 0xb2];
        let mut frames = vec![0x8a, 0x80];
        frames.extend_from_slice(&mask);
        frames.extend_from_slice(&[0x88, 0x82]);
        frames.extend_from_slice(&mask);
        frames.extend_from_slice(&[0x03 ^ mask[0], 0xe8 ^ mask[1]]);
        c.write_all(&frames).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut echo = [0u8; 4];
        c.read_exact(&mut echo)
            .unwrap_or_else(|e| panic!("round {round}: no close echo: {e}"));
        assert_eq!(echo, [0x88, 0x02, 0x03, 0xe8], "round {round}");
        assert_eq!(server.join().unwrap(), Ok(0), "round {round}");
    }
}
