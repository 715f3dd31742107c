//! End-to-end tests of the relay over real sockets on 127.0.0.1, with clients
//! that speak the Godot 4 client's bytes (spec/scene-multiplayer.md §6, §7).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use wsmp_core::handshake::HandshakeError;
use wsmp_tokio::{ClientOptions, CloseCause, CloseCode, Config, Error};

/// The helpers produce the spec's test vectors (spec/scene-multiplayer.md §7).
#[test]
fn helper_bytes_match_spec_vectors() {
    assert_eq!(1234567i32.to_le_bytes(), [0x87, 0xD6, 0x12, 0x00]);
    assert_eq!(add_peer(1234567), [0x07, 0x01, 0x87, 0xD6, 0x12, 0x00]);
    assert_eq!(del_peer(1234567), [0x07, 0x02, 0x87, 0xD6, 0x12, 0x00]);
    assert_eq!(auth(b""), [0x07, 0x00]);
    assert_eq!(auth(b"abc"), [0x07, 0x00, 0x61, 0x62, 0x63]);
    assert_eq!(
        relay(42, &raw(b"hi")),
        [0x07, 0x03, 0x2A, 0x00, 0x00, 0x00, 0x03, 0x68, 0x69]
    );
    assert_eq!(
        relay(-1234567, &raw(b"hi")),
        [0x07, 0x03, 0x79, 0x29, 0xED, 0xFF, 0x03, 0x68, 0x69]
    );
}

/// spec §3.2 / §3.5 / §6 items 2 and 7: join order, ADD_PEER fan-out, DEL_PEER on leave.
#[tokio::test]
async fn join_order_add_peer_fan_out_and_del_peer() {
    let relay_srv = Relay::start(&[]);
    let url = relay_srv.url("/");
    let mut a = Client::join(&url).await;
    // Alone: nothing after the id message.
    a.expect_nothing_pending().await;

    let mut b = Client::join(&url).await;
    assert_ne!(a.id, b.id);
    assert_eq!(a.recv().await, add_peer(b.id));
    assert_eq!(b.recv().await, add_peer(a.id));
    // No ADD_PEER for peer 1 nor for the client itself.
    b.expect_nothing_pending().await;

    let mut c = Client::join(&url).await;
    assert_eq!(a.recv().await, add_peer(c.id));
    assert_eq!(b.recv().await, add_peer(c.id));
    // The newcomer learns the admitted peers in admission order.
    assert_eq!(c.recv().await, add_peer(a.id));
    assert_eq!(c.recv().await, add_peer(b.id));
    c.expect_nothing_pending().await;

    let b_id = b.id;
    b.leave().await;
    assert_eq!(a.recv().await, del_peer(b_id));
    assert_eq!(c.recv().await, del_peer(b_id));
    a.expect_nothing_pending().await;
    c.expect_nothing_pending().await;

    // A dropped TCP connection (no close frame) also yields DEL_PEER.
    let c_id = c.id;
    drop(c);
    assert_eq!(a.recv().await, del_peer(c_id));
    relay_srv.stop().await;
}

/// spec §4.2: RELAY to one, to all (0), to all but the sender (−1), to all
/// but X (−X), echo to self, to an unknown peer; the id is rewritten to the source.
#[tokio::test]
async fn relay_targets_and_source_rewriting() {
    let relay_srv = Relay::start(&[]);
    let url = relay_srv.url("/");
    let mut a = Client::join(&url).await;
    let mut b = Client::join(&url).await;
    let mut c = Client::join(&url).await;
    assert_eq!(a.recv().await, add_peer(b.id));
    assert_eq!(a.recv().await, add_peer(c.id));
    assert_eq!(b.recv().await, add_peer(a.id));
    assert_eq!(b.recv().await, add_peer(c.id));
    assert_eq!(c.recv().await, add_peer(a.id));
    assert_eq!(c.recv().await, add_peer(b.id));

    let hi = raw(b"hi");
    // To one peer.
    a.send(relay(b.id, &hi)).await;
    assert_eq!(b.recv().await, relay(a.id, &hi));

    // To everyone (0): all but the sender.
    let p0 = raw(b"all");
    a.send(relay(0, &p0)).await;
    assert_eq!(b.recv().await, relay(a.id, &p0));
    assert_eq!(c.recv().await, relay(a.id, &p0));

    // To everyone except B (−B): only C.
    let p1 = raw(b"not-b");
    a.send(relay(-b.id, &p1)).await;
    assert_eq!(c.recv().await, relay(a.id, &p1));

    // −1 (everyone except the server): all but the sender.
    let p2 = raw(b"minus-one");
    c.send(relay(-1, &p2)).await;
    assert_eq!(a.recv().await, relay(c.id, &p2));
    assert_eq!(b.recv().await, relay(c.id, &p2));

    // Unknown peer and the server itself (1): dropped.
    a.send(relay(i32::MAX, &raw(b"x"))).await;
    a.send(relay(1, &raw(b"x"))).await;
    // A packet of another command type is forwarded opaquely (DESPAWN net id 5).
    let despawn = [0x05, 0x05, 0x00, 0x00, 0x00];
    b.send(relay(c.id, &despawn)).await;
    assert_eq!(c.recv().await, relay(b.id, &despawn));

    // Nobody got anything else (A never sees its own broadcasts).
    a.expect_nothing_pending().await;
    b.expect_nothing_pending().await;
    c.expect_nothing_pending().await;
    relay_srv.stop().await;
}

/// spec §3.4 / §6 item 3: token accepted (completion before fan-out), rejected, timed out.
#[tokio::test]
async fn auth_token_accepted_rejected_and_timed_out() {
    let relay_srv = Relay::start(&["--auth-token", "s3cret", "--auth-timeout", "0.5"]);
    let url = relay_srv.url("/");

    // Accepted: data → server completion; client completion → admitted.
    let mut a = Client::join(&url).await;
    a.send(auth(b"s3cret")).await;
    assert_eq!(a.recv().await, auth(b""));
    a.send(auth(b"")).await;

    // B completes first, then sends its token (either order works).
    let mut b = Client::join(&url).await;
    b.send(auth(b"")).await;
    b.send(auth(b"s3cret")).await;
    assert_eq!(b.recv().await, auth(b""));
    assert_eq!(b.recv().await, add_peer(a.id));
    assert_eq!(a.recv().await, add_peer(b.id));

    // A pending client sees nothing but AUTH, and its game packets are dropped.
    let mut p = Client::join(&url).await;
    p.send(relay(a.id, &raw(b"sneaky"))).await;

    // Wrong token: closed with 1008.
    let mut w = Client::join(&url).await;
    w.send(auth(b"wrong")).await;
    let info = w.closed().await;
    assert_eq!(info.code, CloseCode(1008));

    // Timed out (P never authenticated): closed with 1000, as Godot does.
    let info = p.closed().await;
    assert_eq!(info.code, CloseCode(1000));

    // Admitted peers heard of none of them.
    a.expect_nothing_pending().await;
    b.expect_nothing_pending().await;

    let (status, body) = relay_srv.admin_get("/stats").await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["auth_failed"], 1);
    assert_eq!(v["auth_timed_out"], 1);
    assert_eq!(v["peers"], 2);
    assert_eq!(v["pending"], 0);
    assert_eq!(v["dropped"]["not_authenticated"], 1);
    relay_srv.stop().await;
}

/// Rooms: `/room/NAME` peers only see their own room.
#[tokio::test]
async fn rooms_are_isolated() {
    let relay_srv = Relay::start(&[]);
    let mut a1 = Client::join(&relay_srv.url("/room/alpha")).await;
    let mut b1 = Client::join(&relay_srv.url("/room/beta")).await;
    let mut d = Client::join(&relay_srv.url("/")).await;
    let mut a2 = Client::join(&relay_srv.url("/room/alpha?x=1")).await;
    assert_eq!(a1.recv().await, add_peer(a2.id));
    assert_eq!(a2.recv().await, add_peer(a1.id));
    // Broadcast in alpha reaches alpha only; RELAY to a peer of another room is dropped.
    a1.send(relay(0, &raw(b"alpha"))).await;
    assert_eq!(a2.recv().await, relay(a1.id, &raw(b"alpha")));
    b1.send(relay(a1.id, &raw(b"cross"))).await;
    b1.send(relay(0, &raw(b"beta-alone"))).await;
    a1.expect_nothing_pending().await;
    a2.expect_nothing_pending().await;
    b1.expect_nothing_pending().await;
    d.expect_nothing_pending().await;
    let (_, body) = relay_srv.admin_get("/stats").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["rooms"]["/room/alpha"], 2);
    assert_eq!(v["rooms"]["/room/beta"], 1);
    assert_eq!(v["rooms"]["/"], 1);
    relay_srv.stop().await;
}

fn http_status(r: Result<wsmp_tokio::WebSocket, Error>) -> u16 {
    match r {
        Err(Error::Handshake(info)) => match info.cause {
            CloseCause::HttpResponse(status)
            | CloseCause::Handshake(HandshakeError::UnexpectedStatus(status)) => status,
            other => panic!("unexpected handshake failure {other:?}"),
        },
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("upgrade was accepted"),
    }
}

#[tokio::test]
async fn bad_path_is_404_and_full_room_is_503() {
    let relay_srv = Relay::start(&["--room-max-peers", "1"]);
    for path in ["/nope", "/room/", "/room/a%20b", "/stats", "/room/x/y"] {
        let r = connect_ws(&relay_srv.url(path), ClientOptions::default()).await;
        assert_eq!(http_status(r), 404, "{path}");
    }
    let _a = Client::join(&relay_srv.url("/")).await;
    let r = connect_ws(&relay_srv.url("/"), ClientOptions::default()).await;
    assert_eq!(http_status(r), 503);
    // Another room still has space.
    let _b = Client::join(&relay_srv.url("/room/other")).await;
    relay_srv.stop().await;
}

#[tokio::test]
async fn disallowed_origin_is_403() {
    let relay_srv = Relay::start(&["--allowed-origin", "https://good.example"]);
    let with_origin = |o: &str| ClientOptions {
        config: Config {
            handshake_headers: vec![format!("Origin: {o}")],
            ..Config::default()
        },
        ..Default::default()
    };
    let r = connect_ws(&relay_srv.url("/"), with_origin("https://evil.example")).await;
    assert_eq!(http_status(r), 403);
    // Listed origin and no origin (game clients) are accepted.
    let _a = Client::join_with(&relay_srv.url("/"), with_origin("https://good.example")).await;
    let _b = Client::join(&relay_srv.url("/")).await;
    relay_srv.stop().await;
}

/// `/stats` counts match the traffic exactly.
#[tokio::test]
async fn stats_match_traffic() {
    let relay_srv = Relay::start(&[]);
    let url = relay_srv.url("/");
    let mut a = Client::join(&url).await;
    let mut b = Client::join(&url).await;
    assert_eq!(a.recv().await, add_peer(b.id));
    assert_eq!(b.recv().await, add_peer(a.id));
    let msg = relay(b.id, &raw(b"hi")); // 9 bytes
    a.send(msg).await;
    assert_eq!(b.recv().await, relay(a.id, &raw(b"hi")));
    // A direct game packet to the relay (peer 1) is dropped.
    a.send(raw(b"to-server")).await; // 10 bytes
                                     // Round-trip to be sure it was processed: echo to self (9 bytes in, 9 out).
    a.send(relay(a.id, &raw(b"hi"))).await;
    assert_eq!(a.recv().await, relay(a.id, &raw(b"hi")));

    let (status, body) = relay_srv.admin_get("/stats").await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["peers"], 2);
    assert_eq!(v["joined_total"], 2);
    assert_eq!(v["messages_in"], 3);
    assert_eq!(v["bytes_in"], 9 + 10 + 9);
    // Two ADD_PEER (6 bytes each) + two relayed copies (9 bytes each).
    assert_eq!(v["messages_out"], 4);
    assert_eq!(v["bytes_out"], 6 + 6 + 9 + 9);
    assert_eq!(v["dropped"]["to_server"], 1);
    assert_eq!(v["rooms"]["/"], 2);

    // The demo page and its assets are served on the same port.
    let (status, page) = relay_srv.http_get("/").await;
    assert_eq!(status, 200);
    assert!(page.contains("/app.js"));
    assert_eq!(relay_srv.http_get("/app.js").await.0, 200);
    assert_eq!(relay_srv.http_get("/nope").await.0, 404);
    relay_srv.stop().await;
}

#[tokio::test]
async fn no_stats_hides_stats() {
    let relay_srv = Relay::start(&["--no-stats"]);
    assert_eq!(relay_srv.admin_get("/stats").await.0, 404);
    assert_eq!(relay_srv.http_get("/stats").await.0, 404);
    assert_eq!(relay_srv.admin_get("/metrics").await.0, 200);
    assert_eq!(relay_srv.http_get("/").await.0, 200);
    // --public-stats does not bring them back.
    let relay_srv2 = Relay::start(&["--no-stats", "--public-stats"]);
    assert_eq!(relay_srv2.http_get("/stats").await.0, 404);
    relay_srv.stop().await;
    relay_srv2.stop().await;
}

/// Graceful stop: connected clients get a close frame (1001).
#[tokio::test]
async fn shutdown_sends_close_frames() {
    let relay_srv = Relay::start(&[]);
    let mut a = Client::join(&relay_srv.url("/")).await;
    let stop = tokio::spawn(relay_srv.stop());
    let info = a.closed().await;
    assert_eq!(info.code, CloseCode::GOING_AWAY);
    stop.await.unwrap();
}

/// `--tls-cert/--tls-key`: the same protocol over wss://.
#[tokio::test]
async fn wss_with_tls_cert_and_key() {
    let certs = wsmp_tls::testing::TestCerts::generate();
    let dir = std::env::temp_dir().join(format!("wsmp-relay-e2e-tls-{}", std::process::id()));
    certs.write_to(&dir).unwrap();
    let cert = dir.join("server.pem");
    let key = dir.join("server.key");
    let relay_srv = Relay::start(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let opts = ClientOptions {
        config: Config::default(),
        tls: Some(
            wsmp_tokio::TlsClientOptions::client()
                .with_trusted_ca_pem(certs.ca_pem.as_bytes())
                .unwrap(),
        ),
        ..Default::default()
    };
    let url = format!("wss://127.0.0.1:{}/", relay_srv.addr.port());
    let mut a = Client::join_with(&url, opts.clone()).await;
    let mut b = Client::join_with(&url, opts).await;
    assert_eq!(a.recv().await, add_peer(b.id));
    assert_eq!(b.recv().await, add_peer(a.id));
    b.send(relay(a.id, &raw(b"secure"))).await;
    assert_eq!(a.recv().await, relay(b.id, &raw(b"secure")));
    relay_srv.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A receiver that stops reading is disconnected (1008) once its outbound
/// queue is full, the others get DEL_PEER, and it is counted.
#[tokio::test]
async fn slow_receiver_is_disconnected() {
    let relay_srv = Relay::start(&["--max-queued-packets", "4"]);
    let url = relay_srv.url("/");
    let mut a = Client::join(&url).await;
    let mut b = Client::join(&url).await;
    let b_id = b.id;
    assert_eq!(a.recv().await, add_peer(b.id));
    assert_eq!(b.recv().await, add_peer(a.id));
    // B stops reading; A floods it (bounded: at most 3000 × 60 kB).
    let big = bytes::Bytes::from(relay(b_id, &raw(&vec![0x55; 60_000])));
    let (mut reader, mut writer) = a.ws.split();
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel::<Vec<u8>>();
    let read_task = tokio::spawn(async move {
        if let Some(wsmp_tokio::Message::Binary(m)) = reader.recv().await {
            let _ = done_tx.send(m.to_vec());
        }
    });
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut got = None;
    for _ in 0..3000 {
        if let Ok(m) = done_rx.try_recv() {
            got = Some(m);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no overflow in time"
        );
        let send = writer.send(wsmp_tokio::Message::Binary(big.clone()));
        tokio::time::timeout(WAIT, send)
            .await
            .expect("send in time")
            .expect("send");
    }
    let got = match got {
        Some(m) => m,
        None => tokio::time::timeout(WAIT, done_rx)
            .await
            .expect("DEL_PEER in time")
            .expect("message"),
    };
    assert_eq!(got, del_peer(b_id));
    read_task.await.unwrap();
    let (_, body) = relay_srv.admin_get("/stats").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["disconnected_slow"], 1, "{body}");
    let m = scrape(relay_srv.admin.unwrap()).await;
    assert_eq!(sample(&m, "wsmp_relay_slow_receiver_kicks_total", &[]), 1.0);
    drop(b);
    relay_srv.stop().await;
}

/// `--max-pending-per-ip`: one more unfinished handshake from the same
/// address is closed at once; once the first is gone, connections work again.
#[tokio::test]
async fn max_pending_per_ip() {
    use tokio::io::AsyncReadExt;
    let relay_srv = Relay::start(&["--max-pending-per-ip", "1"]);
    let idle = tokio::net::TcpStream::connect(relay_srv.addr)
        .await
        .unwrap();
    let mut second = tokio::net::TcpStream::connect(relay_srv.addr)
        .await
        .unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(WAIT, second.read(&mut buf))
        .await
        .expect("closed in time")
        .unwrap_or(0);
    assert_eq!(
        n, 0,
        "the second pending connection is closed without an answer"
    );
    drop(idle);
    let mut joined = None;
    for _ in 0..100 {
        if let Ok(ws) = connect_ws(&relay_srv.url("/"), ClientOptions::default()).await {
            joined = Some(ws);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(joined.is_some(), "a new connection is accepted again");
    relay_srv.stop().await;
}
