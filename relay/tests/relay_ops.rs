//! Operations features over real sockets (issue 12): metrics on the admin
//! listener moving with traffic, `/stats` off the game port, path prefix and
//! any-path rooms, signed tokens in the handshake carriers.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::*;
use jsonwebtoken::{encode, EncodingKey, Header};
use wsmp_core::handshake::HandshakeError;
use wsmp_tokio::{ClientOptions, CloseCause, Config, Error};

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

async fn metrics(relay_srv: &Relay) -> prometheus_parse::Scrape {
    scrape(relay_srv.admin.expect("admin listener on")).await
}

#[tokio::test]
async fn metrics_move_with_traffic() {
    let relay_srv = Relay::start(&[]);
    let m0 = metrics(&relay_srv).await;
    assert_eq!(sample(&m0, "wsmp_relay_peers", &[]), 0.0);
    assert_eq!(
        sample(
            &m0,
            "wsmp_relay_handshakes_total",
            &[("outcome", "accepted")]
        ),
        0.0
    );

    let url = relay_srv.url("/room/m");
    let mut a = Client::join(&url).await;
    let mut b = Client::join(&url).await;
    assert_eq!(a.recv().await, add_peer(b.id));
    assert_eq!(b.recv().await, add_peer(a.id));
    a.send(relay(b.id, &raw(b"hi"))).await;
    assert_eq!(b.recv().await, relay(a.id, &raw(b"hi")));
    a.send(raw(b"to-server")).await; // dropped: to_server
    a.expect_nothing_pending().await;
    let r = connect_ws(&relay_srv.url("/nope"), ClientOptions::default()).await;
    assert_eq!(http_status(r), 404);

    let m1 = metrics(&relay_srv).await;
    assert_eq!(sample(&m1, "wsmp_relay_peers", &[]), 2.0);
    assert_eq!(sample(&m1, "wsmp_relay_rooms", &[]), 1.0);
    assert_eq!(
        sample(
            &m1,
            "wsmp_relay_handshakes_total",
            &[("outcome", "accepted")]
        ),
        2.0
    );
    assert_eq!(
        sample(
            &m1,
            "wsmp_relay_handshake_refusals_total",
            &[("status", "404")]
        ),
        1.0
    );
    // RELAY, to_server, the marker: 3 in; ADD_PEER ×2, relayed hi, marker echo: 4 out.
    assert_eq!(
        sample(&m1, "wsmp_relay_messages_total", &[("direction", "in")]),
        3.0
    );
    assert_eq!(
        sample(&m1, "wsmp_relay_messages_total", &[("direction", "out")]),
        4.0
    );
    assert_eq!(
        sample(
            &m1,
            "wsmp_relay_dropped_packets_total",
            &[("reason", "to_server")]
        ),
        1.0
    );
    assert_eq!(sample(&m1, "wsmp_relay_draining", &[]), 0.0);
    // No room names in the metrics.
    let (_, text) = relay_srv.admin_get("/metrics").await;
    assert!(!text.contains("room/m"), "{text}");

    b.leave().await;
    a.recv().await; // DEL_PEER
    let m2 = metrics(&relay_srv).await;
    assert_eq!(sample(&m2, "wsmp_relay_peers", &[]), 1.0);
    assert_eq!(
        sample(&m2, "wsmp_relay_disconnects_total", &[("code", "1000")]),
        1.0
    );
    relay_srv.stop().await;

    // Handshake timeouts, pending handshakes, per-IP refusals, the
    // authentication exchange and bytes, on a relay with small limits.
    let relay_srv = Relay::start(&[
        "--handshake-timeout",
        "0.5",
        "--max-pending-per-ip",
        "2",
        "--max-conns-per-ip",
        "3",
        "--auth-token",
        "s3cret",
        "--auth-timeout",
        "1.5",
    ]);
    let addr = relay_srv.addr;
    let m0 = metrics(&relay_srv).await;
    for (name, labels) in [
        ("wsmp_relay_pending_handshakes", &[][..]),
        ("wsmp_relay_pending_auth", &[]),
        ("wsmp_relay_handshakes_total", &[("outcome", "timeout")]),
        ("wsmp_relay_refused_per_ip_total", &[("limit", "pending")]),
        (
            "wsmp_relay_refused_per_ip_total",
            &[("limit", "connections")],
        ),
        ("wsmp_relay_auth_total", &[("outcome", "ok")]),
        ("wsmp_relay_auth_total", &[("outcome", "failed")]),
        ("wsmp_relay_auth_total", &[("outcome", "timeout")]),
        ("wsmp_relay_bytes_total", &[("direction", "in")]),
    ] {
        assert_eq!(sample(&m0, name, labels), 0.0, "{name} {labels:?}");
    }
    // Two idle TCP connections: pending handshakes; a third is over
    // --max-pending-per-ip and closed at accept.
    let idle1 = tokio::net::TcpStream::connect(addr).await.unwrap();
    let idle2 = tokio::net::TcpStream::connect(addr).await.unwrap();
    eventually("two pending handshakes", || async {
        sample(
            &metrics(&relay_srv).await,
            "wsmp_relay_pending_handshakes",
            &[],
        ) == 2.0
    })
    .await;
    let over = raw_upgrade(addr, b"", "/", &[]).await;
    assert_eq!(over.status(), 0, "closed at accept: {}", over.head);
    // Both time out after 0.5 s.
    eventually("two handshake timeouts", || async {
        let m = metrics(&relay_srv).await;
        sample(&m, "wsmp_relay_handshakes_total", &[("outcome", "timeout")]) == 2.0
            && sample(&m, "wsmp_relay_pending_handshakes", &[]) == 0.0
    })
    .await;
    drop((idle1, idle2));
    // Authentication: one right token, one wrong, one silent (times out).
    let url = relay_srv.url("/");
    let mut ok = Client::join(&url).await;
    let mut wrong = Client::join(&url).await;
    let _silent = Client::join(&url).await;
    assert_eq!(
        sample(&metrics(&relay_srv).await, "wsmp_relay_pending_auth", &[]),
        3.0
    );
    // A fourth connection from 127.0.0.1 while three are open: 429.
    let r = connect_ws(&url, ClientOptions::default()).await;
    assert_eq!(http_status(r), 429);
    ok.send(auth(b"s3cret")).await;
    assert_eq!(ok.recv().await, auth(b""));
    ok.send(auth(b"")).await;
    wrong.send(auth(b"nope")).await;
    assert_eq!(wrong.closed().await.code, wsmp_tokio::CloseCode(1008));
    eventually("auth outcomes counted", || async {
        let m = metrics(&relay_srv).await;
        sample(&m, "wsmp_relay_auth_total", &[("outcome", "ok")]) == 1.0
            && sample(&m, "wsmp_relay_auth_total", &[("outcome", "failed")]) == 1.0
            && sample(&m, "wsmp_relay_auth_total", &[("outcome", "timeout")]) >= 1.0
    })
    .await;
    let m = metrics(&relay_srv).await;
    assert_eq!(
        sample(
            &m,
            "wsmp_relay_refused_per_ip_total",
            &[("limit", "pending")]
        ),
        1.0
    );
    assert_eq!(
        sample(
            &m,
            "wsmp_relay_refused_per_ip_total",
            &[("limit", "connections")]
        ),
        1.0
    );
    assert_eq!(
        sample(
            &m,
            "wsmp_relay_handshake_refusals_total",
            &[("status", "429")]
        ),
        1.0
    );
    // Bytes: the auth messages in ("07 00 s3cret", "07 00", "07 00 nope"),
    // the id messages and the auth answer out.
    assert!(sample(&m, "wsmp_relay_bytes_total", &[("direction", "in")]) >= 14.0);
    assert!(sample(&m, "wsmp_relay_bytes_total", &[("direction", "out")]) >= 2.0);
    assert_eq!(
        sample(&m, "wsmp_relay_disconnects_total", &[("code", "1008")]),
        1.0
    );
    relay_srv.stop().await;

    // TLS failures: plain HTTP to a wss:// port, and a client that does not
    // trust the certificate.
    let certs = wsmp_tls::testing::TestCerts::generate();
    let dir = std::env::temp_dir().join(format!("wsmp-relay-ops-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, &certs.server_chain_pem).unwrap();
    std::fs::write(&key, &certs.server_key_pem).unwrap();
    let relay_srv = Relay::start(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let plain = raw_upgrade(relay_srv.addr, b"", "/", &[]).await;
    assert_eq!(plain.status(), 0, "{}", plain.head);
    let wss = format!("wss://{}/", relay_srv.addr);
    assert!(connect_ws(&wss, ClientOptions::default()).await.is_err());
    eventually("two TLS failures", || async {
        let m = metrics(&relay_srv).await;
        sample(
            &m,
            "wsmp_relay_handshakes_total",
            &[("outcome", "tls_failure")],
        ) == 2.0
    })
    .await;
    relay_srv.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn stats_only_on_admin_unless_public() {
    let relay_srv = Relay::start(&[]);
    let _a = Client::join(&relay_srv.url("/room/secret-lobby")).await;
    assert_eq!(relay_srv.http_get("/stats").await.0, 404);
    let (s, body) = relay_srv.admin_get("/stats").await;
    assert_eq!(s, 200);
    assert!(body.contains("secret-lobby"), "{body}");
    assert_eq!(relay_srv.admin_get("/healthz").await.0, 200);
    assert_eq!(relay_srv.admin_get("/readyz").await.0, 200);
    relay_srv.stop().await;

    let relay_srv = Relay::start(&["--public-stats"]);
    let _a = Client::join(&relay_srv.url("/room/secret-lobby")).await;
    let (s, body) = relay_srv.http_get("/stats").await;
    assert_eq!(s, 200);
    assert!(
        !body.contains("secret-lobby"),
        "no room names on the game port: {body}"
    );
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["rooms"], 1);
    assert_eq!(v["peers"], 1);
    relay_srv.stop().await;

    let relay_srv = Relay::start(&["--admin-listen", "off"]);
    assert!(relay_srv.admin.is_none());
    relay_srv.stop().await;
}

#[tokio::test]
async fn path_prefix_and_any_path() {
    let relay_srv = Relay::start(&["--path-prefix", "/game"]);
    let mut a = Client::join(&relay_srv.url("/game")).await;
    let mut b = Client::join(&relay_srv.url("/game/")).await;
    assert_eq!(
        a.recv().await,
        add_peer(b.id),
        "/game and /game/ are one room"
    );
    assert_eq!(b.recv().await, add_peer(a.id));
    let mut c = Client::join(&relay_srv.url("/game/room/x")).await;
    c.expect_nothing_pending().await;
    a.expect_nothing_pending().await;
    for path in ["/", "/room/x", "/gamex", "/game/other"] {
        let r = connect_ws(&relay_srv.url(path), ClientOptions::default()).await;
        assert_eq!(http_status(r), 404, "{path}");
    }
    relay_srv.stop().await;

    let relay_srv = Relay::start(&["--any-path-room", "default"]);
    let mut a = Client::join(&relay_srv.url("/ws")).await;
    let b = Client::join(&relay_srv.url("/")).await;
    assert_eq!(a.recv().await, add_peer(b.id), "/ws joins the default room");
    relay_srv.stop().await;

    let relay_srv = Relay::start(&["--any-path-room", "path"]);
    let mut a = Client::join(&relay_srv.url("/ws")).await;
    let b = Client::join(&relay_srv.url("/room/ws")).await;
    let mut d = Client::join(&relay_srv.url("/")).await;
    assert_eq!(a.recv().await, add_peer(b.id), "/ws is room ws");
    d.expect_nothing_pending().await;
    let r = connect_ws(&relay_srv.url("/a/b"), ClientOptions::default()).await;
    assert_eq!(http_status(r), 404);
    relay_srv.stop().await;
}

const SECRET: &str = "an-hs256-secret-of-more-than-32-bytes!";

fn token(claims: serde_json::Value) -> String {
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn bearer(t: &str) -> ClientOptions {
    ClientOptions {
        config: Config {
            handshake_headers: vec![format!("Authorization: Bearer {t}")],
            ..Config::default()
        },
        ..Default::default()
    }
}

#[tokio::test]
async fn jwt_in_the_handshake() {
    let dir = std::env::temp_dir().join(format!("wsmp-relay-ops-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("jwt.key");
    std::fs::write(&key, format!("{SECRET}\n")).unwrap();
    let relay_srv = Relay::start(&["--jwt-key-file", key.to_str().unwrap()]);
    let later = unix_now() + 600;

    // Header carrier.
    let good = token(serde_json::json!({"exp": later, "sub": "alice"}));
    let mut a = Client::join_with(&relay_srv.url("/"), bearer(&good)).await;
    // Query carrier, room token for its room.
    let room_tok = token(serde_json::json!({"exp": later, "room": "r1"}));
    let b = Client::join(&relay_srv.url(&format!("/room/r1?token={room_tok}"))).await;
    let _ = b;
    a.expect_nothing_pending().await;

    let refused =
        |url: String, opts: ClientOptions| async move { http_status(connect_ws(&url, opts).await) };
    // No token in the handshake: the client authenticates with the
    // SceneMultiplayer auth message instead (a valid token admits it, a bad
    // one is closed with 1008), as with --auth-token.
    let mut c = Client::join(&relay_srv.url("/")).await;
    c.send(auth(good.as_bytes())).await;
    assert_eq!(c.recv().await, auth(b""));
    c.send(auth(b"")).await;
    assert_eq!(c.recv().await, add_peer(a.id));
    assert_eq!(a.recv().await, add_peer(c.id));
    let mut d = Client::join(&relay_srv.url("/")).await;
    d.send(auth(room_tok.as_bytes())).await;
    assert_eq!(d.closed().await.code, wsmp_tokio::CloseCode(1008));
    // Expired (beyond the 30 s leeway).
    let expired = token(serde_json::json!({"exp": unix_now() - 120}));
    assert_eq!(refused(relay_srv.url("/"), bearer(&expired)).await, 401);
    assert_eq!(
        refused(
            relay_srv.url(&format!("/?token={expired}")),
            ClientOptions::default()
        )
        .await,
        401
    );
    // Room token: wrong room and the default room.
    assert_eq!(
        refused(relay_srv.url("/room/r2"), bearer(&room_tok)).await,
        401
    );
    assert_eq!(refused(relay_srv.url("/"), bearer(&room_tok)).await, 401);
    // Bad signature.
    let forged = encode(
        &Header::default(),
        &serde_json::json!({"exp": later}),
        &EncodingKey::from_secret(b"another-secret-another-secret-another"),
    )
    .unwrap();
    assert_eq!(refused(relay_srv.url("/"), bearer(&forged)).await, 401);
    assert_eq!(
        refused(
            relay_srv.url(&format!("/?token={forged}")),
            ClientOptions::default()
        )
        .await,
        401
    );

    let m = metrics(&relay_srv).await;
    assert_eq!(
        sample(&m, "wsmp_relay_auth_total", &[("outcome", "ok")]),
        3.0
    );
    assert_eq!(
        sample(&m, "wsmp_relay_auth_total", &[("outcome", "token_expired")]),
        2.0
    );
    assert_eq!(
        sample(
            &m,
            "wsmp_relay_auth_total",
            &[("outcome", "token_wrong_room")]
        ),
        3.0
    );
    assert_eq!(
        sample(
            &m,
            "wsmp_relay_auth_total",
            &[("outcome", "token_bad_signature")]
        ),
        2.0
    );
    assert_eq!(
        sample(
            &m,
            "wsmp_relay_handshake_refusals_total",
            &[("status", "401")]
        ),
        6.0
    );
    relay_srv.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

fn sa(s: &str) -> std::net::SocketAddr {
    s.parse().unwrap()
}

/// `--trusted-proxy`: from a trusted address the client is the rightmost
/// untrusted `X-Forwarded-For` hop, and `--max-conns-per-ip` counts it; from
/// an untrusted address the header is ignored.
#[tokio::test]
async fn forwarded_for_from_trusted_proxies_only() {
    let relay_srv = Relay::start(&["--trusted-proxy", "127.0.0.1", "--max-conns-per-ip", "1"]);
    let url = relay_srv.url("/");
    let _a = Client::join_with(&url, forwarded_for("198.51.100.1")).await;
    // Another client behind the same proxy: its own share.
    let _b = Client::join_with(&url, forwarded_for("198.51.100.2")).await;
    // A forged hop on the left is not believed: the client is 198.51.100.1.
    let r = connect_ws(&url, forwarded_for("203.0.113.9, 198.51.100.1")).await;
    assert_eq!(http_status(r), 429);
    // The proxy's own connection (no header) counts as 127.0.0.1.
    let _c = Client::join(&url).await;
    assert_eq!(
        http_status(connect_ws(&url, ClientOptions::default()).await),
        429
    );
    let m = metrics(&relay_srv).await;
    assert_eq!(
        sample(
            &m,
            "wsmp_relay_refused_per_ip_total",
            &[("limit", "connections")]
        ),
        2.0
    );
    assert_eq!(sample(&m, "wsmp_relay_peers", &[]), 3.0);
    relay_srv.stop().await;

    // 127.0.0.1 is not a trusted proxy here: X-Forwarded-For is ignored.
    let relay_srv = Relay::start(&["--trusted-proxy", "10.0.0.0/8", "--max-conns-per-ip", "1"]);
    let url = relay_srv.url("/");
    let _a = Client::join_with(&url, forwarded_for("198.51.100.1")).await;
    let r = connect_ws(&url, forwarded_for("198.51.100.2")).await;
    assert_eq!(http_status(r), 429, "both are 127.0.0.1");
    relay_srv.stop().await;
}

/// `--proxy-protocol`: a PROXY v1/v2 header from a trusted proxy names the
/// client (for `--max-conns-per-ip` and `--max-pending-per-ip`); a trusted
/// proxy must send one; from an untrusted address one is refused.
#[tokio::test]
async fn proxy_protocol_headers() {
    let relay_srv = Relay::start(&[
        "--trusted-proxy",
        "127.0.0.1",
        "--proxy-protocol",
        "--max-conns-per-ip",
        "1",
        "--max-pending-per-ip",
        "1",
    ]);
    let addr = relay_srv.addr;
    let v1 = |client: &str| proxy_v1(sa(client), addr);
    let a = raw_upgrade(addr, &v1("198.51.100.1:4000"), "/", &[]).await;
    assert_eq!(a.status(), 101, "{}", a.head);
    let b = raw_upgrade(addr, &v1("198.51.100.2:4000"), "/", &[]).await;
    assert_eq!(b.status(), 101, "{}", b.head);
    let c = raw_upgrade(addr, &v1("198.51.100.1:4001"), "/", &[]).await;
    assert_eq!(c.status(), 429, "{}", c.head);
    let v2 = proxy_v2(
        "198.51.100.3:4000".parse().unwrap(),
        "127.0.0.1:80".parse().unwrap(),
    );
    let d = raw_upgrade(addr, &v2, "/", &[]).await;
    assert_eq!(d.status(), 101, "v2: {}", d.head);
    // IPv6 client behind an IPv4 proxy.
    let e = raw_upgrade(addr, &v1("[2001:db8::7]:4000"), "/", &[]).await;
    assert_eq!(e.status(), 101, "{}", e.head);
    // LOCAL / UNKNOWN: the proxy's own connection (127.0.0.1).
    let f = raw_upgrade(addr, b"PROXY UNKNOWN\r\n", "/", &[]).await;
    assert_eq!(f.status(), 101, "{}", f.head);
    // A trusted proxy without a header, or a malformed one: closed unanswered.
    let g = raw_upgrade(addr, b"", "/", &[]).await;
    assert_eq!(g.status(), 0, "no header from a trusted proxy: {}", g.head);
    let h = raw_upgrade(addr, b"PROXY TCP4 nonsense\r\n", "/", &[]).await;
    assert_eq!(h.status(), 0, "{}", h.head);

    // Pending handshakes count by the header's client: one idle connection
    // from 198.51.100.4 …
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut idle, &v1("198.51.100.4:5000"))
        .await
        .unwrap();
    eventually("the idle handshake is pending", || async {
        sample(
            &metrics(&relay_srv).await,
            "wsmp_relay_pending_handshakes",
            &[],
        ) == 1.0
    })
    .await;
    // … keeps a second one from 198.51.100.4 out, but not one from 198.51.100.5.
    let i = raw_upgrade(addr, &v1("198.51.100.4:5001"), "/", &[]).await;
    assert_eq!(i.status(), 0, "over --max-pending-per-ip: {}", i.head);
    let j = raw_upgrade(addr, &v1("198.51.100.5:5000"), "/", &[]).await;
    assert_eq!(j.status(), 101, "{}", j.head);

    let m = metrics(&relay_srv).await;
    assert_eq!(
        sample(
            &m,
            "wsmp_relay_handshakes_total",
            &[("outcome", "proxy_refused")]
        ),
        2.0
    );
    assert_eq!(
        sample(
            &m,
            "wsmp_relay_refused_per_ip_total",
            &[("limit", "pending")]
        ),
        1.0
    );
    assert_eq!(
        sample(
            &m,
            "wsmp_relay_refused_per_ip_total",
            &[("limit", "connections")]
        ),
        1.0
    );
    assert_eq!(sample(&m, "wsmp_relay_peers", &[]), 6.0);
    drop((a, b, d, e, f, j, idle));
    relay_srv.stop().await;

    // From an untrusted address a PROXY header is refused; a plain client is served.
    let relay_srv = Relay::start(&["--trusted-proxy", "10.0.0.0/8", "--proxy-protocol"]);
    let addr = relay_srv.addr;
    let k = raw_upgrade(addr, &proxy_v1(sa("198.51.100.1:1"), addr), "/", &[]).await;
    assert_eq!(k.status(), 0, "{}", k.head);
    let mut plain = Client::join(&relay_srv.url("/")).await;
    plain.expect_nothing_pending().await;
    let m = metrics(&relay_srv).await;
    assert_eq!(
        sample(
            &m,
            "wsmp_relay_handshakes_total",
            &[("outcome", "proxy_refused")]
        ),
        1.0
    );
    relay_srv.stop().await;
}
