//! `WebSocket` over real sockets on 127.0.0.1: messages, closing, ping/pong,
//! heartbeat, handshake timeouts, cancellation safety, `split`, and the
//! `futures` Stream/Sink.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wsmp_tokio::{accept, CloseCause, CloseCode, Config, Message, ServerOptions};

fn big_config() -> Config {
    Config {
        inbound_buffer_size: 32 << 20,
        outbound_buffer_size: 32 << 20,
        ..Config::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_round_trip_and_close_with_code() {
    let (mut server, mut client) = ws_pair(big_config(), big_config()).await;
    // Echo server; returns how its side ended.
    let echo = tokio::spawn(async move {
        while let Some(m) = server.recv().await {
            server.send(m).await.unwrap();
        }
        server.close_info()
    });

    let big: Vec<u8> = (0..16u32 << 20).map(|i| (i % 251) as u8).collect();
    let cases = vec![
        Message::Text("hello".into()),
        Message::Binary(Bytes::from_static(&[0, 1, 2, 255])),
        Message::Text(String::new()),
        Message::Binary(Bytes::new()),
        Message::Text("é ünïcødé ✓".into()),
        Message::Binary(Bytes::from(big)),
    ];
    for m in cases {
        let len = m.len();
        within(30.0, "send", client.send(m.clone())).await.unwrap();
        let back = within(30.0, "echo", client.recv()).await.unwrap();
        assert!(back == m, "message of {len} bytes came back different");
    }

    // Many small messages, in order (sent while the echo flows back).
    let n = 2000;
    let (mut rx, mut tx) = client.split();
    let sender = tokio::spawn(async move {
        for i in 0..n {
            tx.send(format!("m{i}")).await.unwrap();
        }
        tx
    });
    for i in 0..n {
        let m = within(20.0, "small message", rx.recv()).await.unwrap();
        assert_eq!(m, Message::Text(format!("m{i}")));
    }
    let mut tx = within(5.0, "sender", sender).await.unwrap();

    // Close with a code and a reason, seen by both sides.
    within(5.0, "close", tx.close(CloseCode(4000), "bye now"))
        .await
        .unwrap();
    assert!(within(5.0, "end", rx.recv()).await.is_none());
    let client_info = rx.close_info().unwrap();
    assert_eq!(client_info.cause, CloseCause::LocalClose);
    assert!(client_info.clean);
    assert_eq!(
        client_info.code,
        CloseCode(4000),
        "the server echoes the code"
    );
    let server_info = within(5.0, "server end", echo).await.unwrap().unwrap();
    assert_eq!(server_info.cause, CloseCause::RemoteClose);
    assert_eq!(server_info.code, CloseCode(4000));
    assert_eq!(server_info.reason, "bye now");
    assert!(server_info.clean);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_returns_close_info() {
    let (mut server, mut client) = ws_pair(Config::default(), Config::default()).await;
    let echo = tokio::spawn(async move {
        while server.recv().await.is_some() {}
        server.close_info()
    });
    let info = within(5.0, "close", client.close(CloseCode::NORMAL, "done"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.cause, CloseCause::LocalClose);
    assert_eq!(info.code, CloseCode::NORMAL);
    let s = within(5.0, "server", echo).await.unwrap().unwrap();
    assert_eq!(s.reason, "done");
    assert_eq!(s.cause, CloseCause::RemoteClose);
    // After the end: recv keeps answering None, send fails.
    assert!(client.recv().await.is_none());
    assert!(client.send("late").await.is_err());
}

/// The server answers a raw client's ping with a pong carrying the payload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_auto_pong() {
    let (l, _) = listener().await;
    let addr = l.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        let mut ws = accept(s, ServerOptions::default()).await.unwrap();
        let first = ws.recv().await;
        (first, ws)
    });
    let mut raw = within(5.0, "raw connect", RawClient::connect(addr)).await;
    raw.send_frame(0x9, b"are you there").await;
    let pong = within(5.0, "pong", raw.next_frame()).await.unwrap();
    assert_eq!(pong.opcode, 0xA);
    assert!(!pong.masked, "server frames are not masked");
    assert_eq!(pong.payload, b"are you there");
    raw.send_frame(0x1, b"after").await;
    let (first, _ws) = within(5.0, "server recv", server).await.unwrap();
    assert_eq!(first, Some(Message::Text("after".into())));
}

/// `ping()` puts a masked ping on the wire; the pong that comes back does
/// not disturb the message stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_ping_reaches_raw_server() {
    let (l, url) = listener().await;
    let raw_server = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let (head, mut buf) = read_http_head(&mut s).await;
        let key = head
            .lines()
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case("sec-websocket-key")
                    .then(|| v.trim().to_owned())
            })
            .unwrap();
        let accept_key = wsmp_core::handshake::accept_key(key.as_bytes());
        let resp = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            String::from_utf8_lossy(&accept_key)
        );
        s.write_all(resp.as_bytes()).await.unwrap();
        let ping = next_frame(&mut s, &mut buf).await.unwrap();
        // Answer the ping, then send a message.
        s.write_all(&encode_frame(0xA, &ping.payload, None))
            .await
            .unwrap();
        s.write_all(&encode_frame(0x2, b"data", None))
            .await
            .unwrap();
        (ping, s, buf)
    });
    let mut ws = within(
        5.0,
        "connect",
        wsmp_tokio::connect(&url, Default::default()),
    )
    .await
    .unwrap();
    within(5.0, "ping", ws.ping(b"p1")).await.unwrap();
    assert!(ws.ping(&[0u8; 126]).await.is_err(), "ping payload > 125");
    let m = within(5.0, "recv", ws.recv()).await.unwrap();
    assert_eq!(m, Message::Binary(Bytes::from_static(b"data")));
    let (ping, _s, _) = within(5.0, "raw server", raw_server).await.unwrap();
    assert_eq!(ping.opcode, 0x9);
    assert!(ping.masked, "client frames are masked");
    assert_eq!(ping.payload, b"p1");
}

/// A client that completes the upgrade and then never answers pings is
/// dropped by the heartbeat within about two intervals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_drops_silent_client() {
    let (l, _) = listener().await;
    let addr = l.local_addr().unwrap();
    let interval = Duration::from_millis(200);
    let server = tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        let config = Config {
            heartbeat_interval: Some(interval),
            ..Config::default()
        };
        let mut ws = accept(
            s,
            ServerOptions {
                config,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let t = Instant::now();
        let m = ws.recv().await;
        (m, t.elapsed(), ws.close_info())
    });
    // Upgrade by hand, then never read or answer again.
    let raw = within(5.0, "raw connect", RawClient::connect(addr)).await;
    let (m, elapsed, info) = within(5.0, "heartbeat drop", server).await.unwrap();
    assert!(m.is_none());
    assert!(
        elapsed < interval * 4,
        "dropped after {elapsed:?} (interval {interval:?})"
    );
    assert!(elapsed >= interval, "dropped too early: {elapsed:?}");
    assert_eq!(info.unwrap().cause, CloseCause::HeartbeatTimeout);
    drop(raw);
}

fn short_handshake() -> ServerOptions {
    ServerOptions {
        config: Config {
            handshake_timeout: Duration::from_millis(300),
            ..Config::default()
        },
        ..Default::default()
    }
}

/// A client that connects and sends nothing: `accept` fails within the
/// handshake timeout and the socket is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_timeout_silent_client() {
    let (l, _) = listener().await;
    let addr = l.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        let t = Instant::now();
        let r = accept(s, short_handshake()).await;
        (r.map(|_| ()), t.elapsed())
    });
    let mut raw = TcpStream::connect(addr).await.unwrap();
    let (r, elapsed) = within(5.0, "accept", server).await.unwrap();
    let err = r.unwrap_err();
    assert!(elapsed >= Duration::from_millis(250), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
    eprintln!("accept error: {err}");
    // The server closed the socket: EOF (an HTTP error answer is allowed before it).
    let rest = within(3.0, "EOF", read_to_eof(&mut raw)).await;
    assert!(
        rest.is_empty() || rest.starts_with(b"HTTP/1.1 "),
        "{:?}",
        String::from_utf8_lossy(&rest)
    );
}

/// A request trickled byte by byte, slower than the timeout: same end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_timeout_slow_request() {
    let (l, _) = listener().await;
    let addr = l.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        let t = Instant::now();
        let r = accept(s, short_handshake()).await;
        (r.map(|_| ()), t.elapsed())
    });
    let raw = TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = raw.into_split();
    let trickle = tokio::spawn(async move {
        for b in upgrade_request(&addr.to_string()).bytes() {
            if wr.write_all(&[b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let (r, elapsed) = within(5.0, "accept", server).await.unwrap();
    assert!(r.is_err());
    assert!(elapsed >= Duration::from_millis(250), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
    let mut rest = Vec::new();
    let _ = within(3.0, "EOF", rd.read_to_end(&mut rest)).await;
    assert!(
        rest.is_empty() || rest.starts_with(b"HTTP/1.1 "),
        "{:?}",
        String::from_utf8_lossy(&rest)
    );
    trickle.abort();
}

/// `recv` raced against a short sleep thousands of times loses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recv_is_cancellation_safe() {
    let (mut server, mut client) = ws_pair(Config::default(), Config::default()).await;
    let n = 10_000u32;
    let sender = tokio::spawn(async move {
        for i in 0..n {
            server.send(Message::Text(format!("{i}"))).await.unwrap();
            if i % 500 == 0 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        server
    });
    let mut next = 0u32;
    let mut cancelled = 0u32;
    within(60.0, "receive all", async {
        while next < n {
            tokio::select! {
                m = client.recv() => {
                    let m = m.expect("connection ended early");
                    assert_eq!(m, Message::Text(format!("{next}")), "message {next}");
                    next += 1;
                }
                () = tokio::time::sleep(Duration::from_micros(50)) => cancelled += 1,
            }
        }
    })
    .await;
    eprintln!("recv cancelled {cancelled} times");
    assert!(cancelled > 0, "the race never cancelled a recv");
    let _server = within(5.0, "sender", sender).await.unwrap();
}

/// `send` raced against a short sleep, towards a slow raw reader: each
/// message arrives at most once, in order, and every frame parses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_is_cancellation_safe() {
    let (l, _) = listener().await;
    let addr = l.local_addr().unwrap();
    let n = 10_000u32;
    let server = tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        socket2::SockRef::from(&s)
            .set_send_buffer_size(8 * 1024)
            .unwrap();
        let config = Config {
            outbound_buffer_size: 4096,
            ..Config::default()
        };
        let mut ws = accept(
            s,
            ServerOptions {
                config,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let mut cancelled = 0u32;
        for i in 0..n {
            let body = payload_for(i);
            tokio::select! {
                r = ws.send(Message::Binary(body)) => r.unwrap(),
                () = tokio::time::sleep(Duration::from_micros(200)) => cancelled += 1,
            }
        }
        ws.flush().await.unwrap();
        let _ = ws.close(CloseCode::NORMAL, "end").await;
        cancelled
    });
    // Raw reader with a small receive buffer, reading slowly.
    let sock = tokio::task::spawn_blocking(move || {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.set_recv_buffer_size(8 * 1024).unwrap();
        s.connect(&addr.into()).unwrap();
        std::net::TcpStream::from(s)
    })
    .await
    .unwrap();
    sock.set_nonblocking(true).unwrap();
    let mut raw = TcpStream::from_std(sock).unwrap();
    raw.write_all(upgrade_request(&addr.to_string()).as_bytes())
        .await
        .unwrap();
    let (head, mut buf) = read_http_head(&mut raw).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let mut last: Option<u32> = None;
    let mut received = 0u32;
    let mut chunk = [0u8; 2048];
    within(60.0, "read everything", async {
        loop {
            while let Some((f, used)) = parse_frame(&buf) {
                buf.drain(..used);
                if f.opcode == 0x8 {
                    // Answer the close and finish.
                    let _ = raw
                        .write_all(&encode_frame(0x8, &f.payload, Some([1, 2, 3, 4])))
                        .await;
                    return;
                }
                assert_eq!(f.opcode, 0x2);
                assert!(f.fin);
                let i = u32::from_le_bytes(f.payload[..4].try_into().unwrap());
                assert_eq!(
                    Bytes::from(f.payload),
                    payload_for(i),
                    "payload {i} corrupt"
                );
                assert!(last.is_none_or(|l| i > l), "{i} after {last:?}");
                last = Some(i);
                received += 1;
            }
            let k = raw.read(&mut chunk).await.unwrap();
            assert!(k > 0, "EOF before the close frame");
            buf.extend_from_slice(&chunk[..k]);
            tokio::time::sleep(Duration::from_micros(100)).await;
        }
    })
    .await;
    let cancelled = within(10.0, "server", server).await.unwrap();
    eprintln!("send cancelled {cancelled} times, {received} received");
    assert!(received + cancelled >= n && received <= n);
    assert!(received > 0);
}

fn payload_for(i: u32) -> Bytes {
    let mut v = i.to_le_bytes().to_vec();
    v.extend((0..(i % 300)).map(|k| (k as u8) ^ (i as u8)));
    Bytes::from(v)
}

/// Read half in one task, write half in another: echo 10,000 messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_echo() {
    let (server, client) = ws_pair(Config::default(), Config::default()).await;
    let (mut srx, mut stx) = server.split();
    let (tx_chan, mut rx_chan) = tokio::sync::mpsc::channel::<Message>(64);
    let reader = tokio::spawn(async move {
        while let Some(m) = srx.recv().await {
            if tx_chan.send(m).await.is_err() {
                break;
            }
        }
    });
    let writer = tokio::spawn(async move {
        while let Some(m) = rx_chan.recv().await {
            stx.send(m).await.unwrap();
        }
    });
    let n = 10_000u32;
    let (mut crx, mut ctx) = client.split();
    let sender = tokio::spawn(async move {
        for i in 0..n {
            ctx.send(Message::Binary(Bytes::from(i.to_be_bytes().to_vec())))
                .await
                .unwrap();
        }
        ctx
    });
    within(60.0, "echo 10,000", async {
        for i in 0..n {
            let m = crx.recv().await.unwrap();
            assert_eq!(m.as_bytes(), &i.to_be_bytes());
        }
    })
    .await;
    let mut ctx = sender.await.unwrap();
    ctx.close(CloseCode::NORMAL, "").await.unwrap();
    assert!(within(5.0, "end", crx.recv()).await.is_none());
    within(5.0, "server tasks", async {
        reader.await.unwrap();
        writer.await.unwrap();
    })
    .await;
}

/// futures Stream + Sink: the server forwards its stream into its sink.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_sink_forward() {
    let small = Config {
        outbound_buffer_size: 8 * 1024,
        ..Config::default()
    };
    let (server, client) = ws_pair(small.clone(), small).await;
    let (srx, stx) = server.split();
    let forward = tokio::spawn(async move { srx.map(Ok).forward(stx).await });
    let (mut sink, mut stream) = StreamExt::split(client);
    let n = 5_000u32;
    let producer = tokio::spawn(async move {
        let mut items = futures::stream::iter(
            (0..n).map(|i| Ok(Message::Text(format!("{i:06}-{}", "x".repeat(200))))),
        );
        sink.send_all(&mut items).await.unwrap();
        sink
    });
    within(60.0, "forwarded", async {
        for i in 0..n {
            let m = stream.next().await.unwrap();
            assert_eq!(m, Message::Text(format!("{i:06}-{}", "x".repeat(200))));
        }
    })
    .await;
    let mut sink = within(10.0, "producer", producer).await.unwrap();
    within(5.0, "sink close", sink.close()).await.unwrap();
    assert!(within(5.0, "stream end", stream.next()).await.is_none());
    let r = within(5.0, "forward end", forward).await.unwrap();
    assert!(r.is_ok(), "forward ended with {r:?}");
}

/// A message over inbound_buffer_size fails the connection with 1009 on both sides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_big_message_closes_with_1009() {
    let client_cfg = Config {
        outbound_buffer_size: 1 << 20,
        ..Config::default()
    };
    let (mut server, mut client) = ws_pair(Config::default(), client_cfg).await;
    let s = tokio::spawn(async move {
        let m = server.recv().await;
        (m, server.close_info())
    });
    let _ = within(5.0, "send", client.send(vec![0u8; 100_000])).await;
    assert!(within(5.0, "client end", client.recv()).await.is_none());
    let info = client.close_info().unwrap();
    assert_eq!(info.code, CloseCode::MESSAGE_TOO_BIG, "{info:?}");
    let (m, sinfo) = within(5.0, "server end", s).await.unwrap();
    assert!(m.is_none());
    let sinfo = sinfo.unwrap();
    assert_eq!(sinfo.code, CloseCode::MESSAGE_TOO_BIG);
    assert_eq!(sinfo.cause, CloseCause::ProtocolError);
}

/// The admission hook sees the request: a refusal reaches the client as
/// an HTTP status; an accepted request selects the sub-protocol.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_hook_refuses_and_selects_protocol() {
    use std::sync::Arc;
    use wsmp_tokio::{AcceptOptions, Decision, Error, HttpResponse};
    let (l, url) = listener().await;
    let hook: wsmp_tokio::AdmissionHook = Arc::new(|req: &wsmp_tokio::Request| {
        if req.path.starts_with("/private") {
            Decision::Respond(HttpResponse::text(403, "no\n"))
        } else {
            Decision::Accept(AcceptOptions {
                protocol: req.protocols.last().cloned(),
                headers: Vec::new(),
            })
        }
    });
    let server = tokio::spawn(async move {
        let mut results = Vec::new();
        for _ in 0..2 {
            let (s, _) = l.accept().await.unwrap();
            let r = accept(
                s,
                ServerOptions {
                    admission: Some(hook.clone()),
                    ..Default::default()
                },
            )
            .await;
            results.push(r.map(|ws| ws.protocol()));
        }
        results
    });
    let e = within(
        5.0,
        "refused",
        wsmp_tokio::connect(&format!("{url}private"), Default::default()),
    )
    .await
    .unwrap_err();
    match &e {
        // The client reports the status it got (the core's Handshake(UnexpectedStatus(403))).
        Error::Handshake(info) => assert!(format!("{:?}", info.cause).contains("403"), "{info:?}"),
        e => panic!("{e:?}"),
    }
    let config = Config {
        supported_protocols: vec!["alpha".into(), "beta".into()],
        ..Config::default()
    };
    let ws = within(
        5.0,
        "accepted",
        wsmp_tokio::connect(
            &url,
            wsmp_tokio::ClientOptions {
                config,
                ..Default::default()
            },
        ),
    )
    .await
    .unwrap();
    assert_eq!(ws.protocol().as_deref(), Some("beta"));
    let results = within(5.0, "server", server).await.unwrap();
    assert!(results[0].is_err());
    assert_eq!(results[1].as_ref().unwrap().as_deref(), Some("beta"));
}

/// Autobahn 2.7–2.9: an unsolicited pong and a close in one segment, to a
/// server whose core holds one event at a time (`max_queued_packets: 1`, as
/// the Autobahn echo server is configured). Once `recv` took the pong, the
/// close must be read and answered; the stale "nothing to wait for" of the
/// step before must not end `recv` (it did: the close went unanswered).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pong_then_close_in_one_segment_is_answered() {
    for round in 0..20 {
        let (l, _) = listener().await;
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            let options = ServerOptions {
                config: Config {
                    max_queued_packets: 1,
                    ..Config::default()
                },
                ..ServerOptions::default()
            };
            let ws = accept(s, options).await.unwrap();
            let (mut rx, mut tx) = ws.split();
            while let Some(m) = rx.recv().await {
                let _ = tx.send(m).await;
            }
        });
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.set_nodelay(true).unwrap();
        c.write_all(
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: bStaYn2d9Mzd5muNVoq+3A==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .unwrap();
        let mut head = [0u8; 129];
        c.read_exact(&mut head).await.unwrap();
        assert!(head.starts_with(b"HTTP/1.1 101"), "round {round}");
        tokio::time::sleep(Duration::from_millis(20)).await;
        // Masked empty pong, then a masked close 1000 (RFC 6455 §5.5.3, §5.5.1).
        let mask = [0x75u8, 0xaa, 0x21, 0xb2];
        let mut frames = vec![0x8a, 0x80];
        frames.extend_from_slice(&mask);
        frames.extend_from_slice(&[0x88, 0x82]);
        frames.extend_from_slice(&mask);
        frames.extend_from_slice(&[0x03 ^ mask[0], 0xe8 ^ mask[1]]);
        c.write_all(&frames).await.unwrap();
        let mut echo = [0u8; 4];
        within(3.0, "close echo", c.read_exact(&mut echo))
            .await
            .unwrap();
        assert_eq!(echo, [0x88, 0x02, 0x03, 0xe8], "round {round}");
        within(3.0, "server end", server).await.unwrap();
    }
}
