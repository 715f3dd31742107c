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
