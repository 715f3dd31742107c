//! Engine-compatibility checks by bytes (spec/websocket-peer.md §2.5, §2.6, §5, §6), with a
//! raw `TcpStream` against our tokio and std servers, and a raw `TcpListener` capturing what
//! our tokio and std clients send.
#![allow(missing_docs)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::Duration;

use base64::Engine as _;
use sha1::{Digest, Sha1};
use wsmp_core::Config;

const IO_TIMEOUT: Duration = Duration::from_secs(10);

// spec/websocket-peer.md §6: the request and response vectors.
const SPEC_REQUEST: &[u8] = b"GET /game?x=1 HTTP/1.1\r\nHost: example.com:9080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
const SPEC_RESPONSE: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

#[derive(Debug, Clone, Copy)]
enum Kind {
    Tokio,
    Std,
}

/// The accept value computed independently of wsmp-core (RFC 6455 §4.2.2).
fn accept_of(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.as_bytes());
    h.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// Starts one of our servers for one connection (echoing until it ends); returns its port.
fn start_server(kind: Kind, config: Config) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || match kind {
        Kind::Tokio => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                listener.set_nonblocking(true).expect("nonblocking");
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let (sock, _) = listener.accept().await.expect("accept");
                let options = wsmp_tokio::ServerOptions {
                    config,
                    ..Default::default()
                };
                if let Ok(mut ws) = wsmp_tokio::accept(sock, options).await {
                    while let Some(m) = ws.recv().await {
                        if ws.send(m).await.is_err() {
                            break;
                        }
                    }
                }
            });
        }
        Kind::Std => {
            let (sock, _) = listener.accept().expect("accept");
            let options = wsmp_std::ServerOptions {
                config,
                ..Default::default()
            };
            if let Ok(mut ws) = wsmp_std::accept(sock, &options) {
                while let Ok(m) = ws.recv() {
                    if ws.send(m).is_err() {
                        break;
                    }
                }
            }
        }
    });
    port
}

/// Reads an HTTP head byte by byte up to and including CRLFCRLF (as the engine does),
/// at most 16 KiB; returns what was read (possibly incomplete when the peer closed).
fn read_head(sock: &mut TcpStream) -> Vec<u8> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        match sock.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => break,
        }
    }
    head
}

fn upgrade(port: u16, request: &[u8]) -> (Vec<u8>, TcpStream) {
    let mut sock = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    sock.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    sock.write_all(request).expect("write request");
    (read_head(&mut sock), sock)
}

/// Header lines of a head (status line first), without the final empty line.
fn lines(head: &[u8]) -> Vec<String> {
    let text = std::str::from_utf8(head).expect("head is UTF-8");
    let body = text
        .strip_suffix("\r\n\r\n")
        .expect("head ends with CRLFCRLF");
    body.split("\r\n").map(str::to_owned).collect()
}

fn headers(head: &[u8]) -> Vec<(String, String)> {
    lines(head)
        .iter()
        .skip(1)
        .map(|l| {
            let (n, v) = l
                .split_once(':')
                .unwrap_or_else(|| panic!("header line without colon: {l:?}"));
            (n.to_owned(), v.trim().to_owned())
        })
        .collect()
}

/// spec §5 server rule 1: the checks a Godot 4 client applies to our 101.
fn assert_engine_accepts(head: &[u8], key: &str) {
    assert!(head.len() < 4096, "header block is {} bytes", head.len());
    let l = lines(head);
    assert_eq!(l[0], "HTTP/1.1 101 Switching Protocols");
    let hs = headers(head);
    for (n, v) in &hs {
        assert!(!v.is_empty(), "empty header value for {n}");
    }
    let named = |name: &str| -> Vec<&str> {
        hs.iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(
        named("connection"),
        vec!["Upgrade"],
        "exactly one `Connection: Upgrade`"
    );
    assert_eq!(named("upgrade").len(), 1);
    assert_eq!(named("upgrade")[0].to_ascii_lowercase(), "websocket");
    assert_eq!(named("sec-websocket-accept"), vec![accept_of(key).as_str()]);
    assert!(
        named("sec-websocket-extensions").is_empty(),
        "extensions negotiated"
    );
}

fn spec_vector(kind: Kind) {
    let port = start_server(kind, Config::default());
    let (head, _sock) = upgrade(port, SPEC_REQUEST);
    assert_eq!(
        String::from_utf8_lossy(&head),
        String::from_utf8_lossy(SPEC_RESPONSE),
        "response differs from spec/websocket-peer.md §6"
    );
    assert_engine_accepts(&head, "dGhlIHNhbXBsZSBub25jZQ==");
}

#[test]
fn tokio_server_answers_the_spec_vector_byte_for_byte() {
    spec_vector(Kind::Tokio);
}

#[test]
fn std_server_answers_the_spec_vector_byte_for_byte() {
    spec_vector(Kind::Std);
}

fn response_with_protocol_and_headers(kind: Kind) {
    let config = Config {
        supported_protocols: vec!["b".into()],
        handshake_headers: vec!["X-Token: abc".into(), "X-Other: 1".into()],
        ..Config::default()
    };
    let port = start_server(kind, config);
    let key = "AAAAAAAAAAAAAAAAAAAAAA==";
    let request = format!(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: a, b\r\n\
         Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
    );
    let (head, _sock) = upgrade(port, request.as_bytes());
    assert_engine_accepts(&head, key);
    // spec §2.6 step 3: the line order, protocol then handshake_headers.
    let l = lines(&head);
    assert_eq!(
        l,
        vec![
            "HTTP/1.1 101 Switching Protocols".to_owned(),
            "Upgrade: websocket".to_owned(),
            "Connection: Upgrade".to_owned(),
            format!("Sec-WebSocket-Accept: {}", accept_of(key)),
            "Sec-WebSocket-Protocol: b".to_owned(),
            "X-Token: abc".to_owned(),
            "X-Other: 1".to_owned(),
        ]
    );
}

#[test]
fn tokio_server_response_shape_with_protocol_and_headers() {
    response_with_protocol_and_headers(Kind::Tokio);
}

#[test]
fn std_server_response_shape_with_protocol_and_headers() {
    response_with_protocol_and_headers(Kind::Std);
}

fn protocol_offered_to_server_with_none(kind: Kind) {
    let port = start_server(kind, Config::default());
    let key = "dGhlIHNhbXBsZSBub25jZQ==";
    let request = format!(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat\r\n\r\n"
    );
    let (head, _sock) = upgrade(port, request.as_bytes());
    // RFC 6455 §4.2.2: no match → accept without the header (the engine drops the TCP
    // connection instead, spec/websocket-peer.md §2.6).
    assert_engine_accepts(&head, key);
    assert!(
        !headers(&head)
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-protocol")),
        "{}",
        String::from_utf8_lossy(&head)
    );
    assert_eq!(
        head, SPEC_RESPONSE,
        "otherwise identical to the plain response"
    );
}

#[test]
fn tokio_server_accepts_an_unmatched_protocol_offer_without_the_header() {
    protocol_offered_to_server_with_none(Kind::Tokio);
}

#[test]
fn std_server_accepts_an_unmatched_protocol_offer_without_the_header() {
    protocol_offered_to_server_with_none(Kind::Std);
}

// ----- our clients, captured -------------------------------------------------------

/// What a client does against the raw listener.
type ClientRun = Box<dyn FnOnce(String) + Send>;

fn tokio_client(config: Config, messages: Vec<wsmp_tokio::Message>) -> ClientRun {
    Box::new(move |url: String| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let options = wsmp_tokio::ClientOptions {
                config,
                ..Default::default()
            };
            let Ok(mut ws) = wsmp_tokio::connect(&url, options).await else {
                return;
            };
            for m in messages {
                ws.send(m).await.expect("send");
            }
            let _ = ws.close(wsmp_tokio::CloseCode::NORMAL, "").await;
        });
    })
}

fn std_client(config: Config, messages: Vec<wsmp_tokio::Message>) -> ClientRun {
    Box::new(move |url: String| {
        let options = wsmp_std::ClientOptions {
            config,
            ..Default::default()
        };
        let Ok(mut ws) = wsmp_std::connect(&url, options) else {
            return;
        };
        for m in messages {
            match m {
                wsmp_tokio::Message::Text(t) => ws.send_text(&t).expect("send"),
                wsmp_tokio::Message::Binary(b) => ws.send_binary(b).expect("send"),
            }
        }
        let _ = ws.close(wsmp_std::CloseCode::NORMAL, "");
    })
}

/// Runs `client` against a raw listener at `ws://127.0.0.1:PORT{path}`; returns the
/// accepted socket, the captured request head, the port and the client thread.
fn capture(path: &str, client: ClientRun) -> (TcpStream, Vec<u8>, u16, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let url = format!("ws://127.0.0.1:{port}{path}");
    let handle = std::thread::spawn(move || client(url));
    let (mut sock, _) = listener.accept().expect("accept");
    sock.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    let head = read_head(&mut sock);
    (sock, head, port, handle)
}

fn key_of(line: &str) -> String {
    let key = line.strip_prefix("Sec-WebSocket-Key: ").expect("key line");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(key)
        .expect("key is base64");
    assert_eq!(raw.len(), 16, "the key is base64 of 16 bytes");
    key.to_owned()
}

fn request_line_order(client: fn(Config, Vec<wsmp_tokio::Message>) -> ClientRun) {
    // spec/websocket-peer.md §2.5 request table and §6 vector (key aside).
    let (sock, head, port, handle) = capture("/game?x=1", client(Config::default(), vec![]));
    drop(sock);
    let l = lines(&head);
    assert_eq!(l.len(), 6, "{l:?}");
    key_of(&l[4]);
    let mut expected: Vec<String> = vec![
        "GET /game?x=1 HTTP/1.1".into(),
        format!("Host: 127.0.0.1:{port}"),
        "Upgrade: websocket".into(),
        "Connection: Upgrade".into(),
        l[4].clone(),
        "Sec-WebSocket-Version: 13".into(),
    ];
    assert_eq!(l, expected);
    handle.join().expect("client thread");

    // With protocols and extra headers: lines 7 and 8… of the table.
    let config = Config {
        supported_protocols: vec!["a".into(), "b".into()],
        handshake_headers: vec!["X-Token: abc".into()],
        ..Config::default()
    };
    let (sock, head, port, handle) = capture("/game?x=1", client(config, vec![]));
    drop(sock);
    let l = lines(&head);
    key_of(l.get(4).expect("key line"));
    expected[1] = format!("Host: 127.0.0.1:{port}");
    expected[4] = l[4].clone();
    expected.push("Sec-WebSocket-Protocol: a,b".into());
    expected.push("X-Token: abc".into());
    assert_eq!(l, expected);
    handle.join().expect("client thread");
}

#[test]
fn tokio_client_request_matches_the_spec_line_order() {
    request_line_order(tokio_client);
}

#[test]
fn std_client_request_matches_the_spec_line_order() {
    request_line_order(std_client);
}

/// One frame as read off the wire, checked for what the engine's clients send.
struct Frame {
    first: u8,
    payload: Vec<u8>,
}

/// Reads one client frame; asserts it is masked and uses the minimal length form
/// (RFC 6455 §5.2, spec §5 client rule 3).
fn read_client_frame(sock: &mut TcpStream) -> Frame {
    let mut h = [0u8; 2];
    sock.read_exact(&mut h).expect("frame header");
    assert_eq!(h[0] & 0x70, 0, "RSV bits set");
    assert_eq!(h[1] & 0x80, 0x80, "client frame not masked");
    let len = match h[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            sock.read_exact(&mut b).expect("len16");
            let n = u64::from(u16::from_be_bytes(b));
            assert!(n >= 126, "16-bit length form for {n} bytes is not minimal");
            n
        }
        127 => {
            let mut b = [0u8; 8];
            sock.read_exact(&mut b).expect("len64");
            let n = u64::from_be_bytes(b);
            assert!(
                n > 0xffff,
                "64-bit length form for {n} bytes is not minimal"
            );
            n
        }
        n => u64::from(n),
    };
    let mut mask = [0u8; 4];
    sock.read_exact(&mut mask).expect("mask");
    let mut payload = vec![0u8; usize::try_from(len).expect("len")];
    sock.read_exact(&mut payload).expect("payload");
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
    Frame {
        first: h[0],
        payload,
    }
}

fn client_frames(client: fn(Config, Vec<wsmp_tokio::Message>) -> ClientRun) {
    let big: Vec<u8> = (0..100 * 1024).map(|i: usize| (i % 253) as u8).collect();
    let medium: Vec<u8> = vec![7; 200];
    let small = "x".repeat(100);
    let config = Config {
        outbound_buffer_size: 1 << 20,
        ..Config::default()
    };
    let messages = vec![
        wsmp_tokio::Message::Binary(big.clone().into()),
        wsmp_tokio::Message::Binary(medium.clone().into()),
        wsmp_tokio::Message::Text(small.clone()),
    ];
    let (mut sock, head, _port, handle) = capture("/", client(config, messages));
    let key = headers(&head)
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-key"))
        .map(|(_, v)| v)
        .expect("key");
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        accept_of(&key)
    );
    sock.write_all(response.as_bytes()).expect("write 101");
    // Each message is exactly one frame with FIN set (never fragmented).
    let f = read_client_frame(&mut sock);
    assert_eq!(f.first, 0x82, "100 KiB message: FIN + binary in one frame");
    assert_eq!(f.payload, big);
    let f = read_client_frame(&mut sock);
    assert_eq!(f.first, 0x82);
    assert_eq!(f.payload, medium);
    let f = read_client_frame(&mut sock);
    assert_eq!(f.first, 0x81);
    assert_eq!(f.payload, small.as_bytes());
    let f = read_client_frame(&mut sock);
    assert_eq!(f.first, 0x88, "then the close frame");
    assert_eq!(f.payload, [0x03, 0xE8]);
    // spec §6: the server's echo; then the server closes the TCP connection first.
    sock.write_all(&[0x88, 0x02, 0x03, 0xE8])
        .expect("close echo");
    drop(sock);
    handle.join().expect("client thread");
}

#[test]
fn tokio_client_sends_each_message_as_one_masked_minimal_frame() {
    client_frames(tokio_client);
}

#[test]
fn std_client_sends_each_message_as_one_masked_minimal_frame() {
    client_frames(std_client);
}
