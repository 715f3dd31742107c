//! `wss://` with run-time test certificates: trusted CA, wrong host name,
//! expired certificate, unverified mode, and the multiplayer peer over TLS.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use bytes::Bytes;
use common::within;
use tokio::net::TcpListener;
use wsmp_tls::testing::TestCerts;
use wsmp_tokio::{
    accept, connect, ClientOptions, CloseCode, Error, HostEvent, Message, MultiplayerPeer, PeerId,
    ServerOptions, Target, TlsClientOptions, TlsServerOptions,
};

/// A wss echo server presenting `chain`/`key`; returns its URL (host 127.0.0.1).
async fn wss_echo(chain: &str, key: &str) -> String {
    let tls = TlsServerOptions::from_pem(chain.as_bytes(), key.as_bytes()).unwrap();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("wss://{}/", l.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let tls = tls.clone();
            tokio::spawn(async move {
                let opts = ServerOptions {
                    tls: Some(tls),
                    ..Default::default()
                };
                let Ok(mut ws) = accept(s, opts).await else {
                    return;
                };
                while let Some(m) = ws.recv().await {
                    if ws.send(m).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    url
}

fn trusting(certs: &TestCerts) -> ClientOptions {
    ClientOptions {
        tls: Some(
            TlsClientOptions::client()
                .with_trusted_ca_pem(certs.ca_pem.as_bytes())
                .unwrap(),
        ),
        ..Default::default()
    }
}

async fn connect_err(url: &str, opts: ClientOptions) -> Error {
    match within(5.0, "failing connect", connect(url, opts)).await {
        Ok(_) => panic!("connect to {url} succeeded"),
        Err(e) => e,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_trusted_ca_round_trip() {
    let certs = TestCerts::generate();
    let url = wss_echo(&certs.server_chain_pem, &certs.server_key_pem).await;
    let mut ws = within(5.0, "connect", connect(&url, trusting(&certs)))
        .await
        .unwrap();
    let big = Bytes::from(vec![7u8; 60_000]);
    for m in [
        Message::Text("secure".into()),
        Message::Binary(big),
        Message::Text(String::new()),
    ] {
        within(5.0, "send", ws.send(m.clone())).await.unwrap();
        assert_eq!(within(5.0, "echo", ws.recv()).await.unwrap(), m);
    }
    let info = within(5.0, "close", ws.close(CloseCode::NORMAL, "tls bye"))
        .await
        .unwrap()
        .unwrap();
    assert!(info.clean);
    // Also by name: the leaf covers localhost.
    let url_name = url.replace("127.0.0.1", "localhost");
    let mut ws = within(
        5.0,
        "connect localhost",
        connect(&url_name, trusting(&certs)),
    )
    .await
    .unwrap();
    ws.send("by name").await.unwrap();
    assert_eq!(
        within(5.0, "echo", ws.recv()).await.unwrap(),
        Message::Text("by name".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_wrong_host_name_fails_clearly() {
    let certs = TestCerts::generate();
    let url = wss_echo(&certs.other_host_chain_pem, &certs.other_host_key_pem).await;
    let e = connect_err(&url, trusting(&certs)).await;
    let text = e.to_string();
    eprintln!("wrong host: {text}");
    let lower = text.to_lowercase();
    assert!(lower.contains("certificate"), "{text}");
    assert!(lower.contains("name"), "{text}");
    // Verification off: the same server is accepted.
    let mut ws = within(
        5.0,
        "unverified",
        connect(
            &url,
            ClientOptions {
                tls: Some(TlsClientOptions::dangerous_unverified()),
                ..Default::default()
            },
        ),
    )
    .await
    .unwrap();
    ws.send("anyway").await.unwrap();
    assert_eq!(
        within(5.0, "echo", ws.recv()).await.unwrap(),
        Message::Text("anyway".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_expired_and_untrusted_fail() {
    let certs = TestCerts::generate();
    let url = wss_echo(&certs.expired_chain_pem, &certs.expired_key_pem).await;
    let e = connect_err(&url, trusting(&certs)).await;
    let text = e.to_string();
    eprintln!("expired: {text}");
    assert!(text.to_lowercase().contains("expired"), "{text}");
    // A valid leaf from a CA the client does not trust (default roots).
    let url = wss_echo(&certs.server_chain_pem, &certs.server_key_pem).await;
    let e = connect_err(&url, ClientOptions::default()).await;
    let text = e.to_string();
    eprintln!("untrusted: {text}");
    assert!(text.to_lowercase().contains("certificate"), "{text}");
    // ws:// against a wss:// server fails too (the server sees no TLS hello).
    let e = connect_err(&url.replace("wss://", "ws://"), ClientOptions::default()).await;
    eprintln!("plain to tls: {e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multiplayer_over_wss() {
    let certs = TestCerts::generate();
    let tls = TlsServerOptions::from_pem(
        certs.server_chain_pem.as_bytes(),
        certs.server_key_pem.as_bytes(),
    )
    .unwrap();
    let mut server = MultiplayerPeer::new();
    server
        .create_server(0, "127.0.0.1", Some(tls))
        .await
        .unwrap();
    let url = format!("wss://{}/", server.local_addrs()[0]);
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut c = MultiplayerPeer::new();
        c.create_client(
            &url,
            Some(
                TlsClientOptions::client()
                    .with_trusted_ca_pem(certs.ca_pem.as_bytes())
                    .unwrap(),
            ),
        )
        .await
        .unwrap();
        assert_eq!(
            within(5.0, "client connected", c.next_event()).await,
            Some(HostEvent::PeerConnected(PeerId::SERVER))
        );
        clients.push(c);
    }
    let mut ids = Vec::new();
    while ids.len() < 3 {
        match within(5.0, "server event", server.next_event())
            .await
            .unwrap()
        {
            HostEvent::PeerConnected(id) => ids.push(id),
            e => panic!("{e:?}"),
        }
    }
    for c in &clients {
        assert!(ids.contains(&PeerId::new(c.get_unique_id()).unwrap()));
        c.send(Target::Peer(PeerId::SERVER), Bytes::from_static(b"hi"))
            .unwrap();
    }
    for _ in 0..3 {
        match within(5.0, "packet", server.next_event()).await.unwrap() {
            HostEvent::Packet { data, .. } => assert_eq!(&data[..], b"hi"),
            e => panic!("{e:?}"),
        }
    }
    server
        .send(Target::Broadcast, Bytes::from_static(b"to all over tls"))
        .unwrap();
    for c in &mut clients {
        assert_eq!(
            within(5.0, "broadcast", c.next_event()).await,
            Some(HostEvent::Packet {
                from: PeerId::SERVER,
                data: Bytes::from_static(b"to all over tls")
            })
        );
    }
    // A client that does not trust the CA never connects.
    let mut bad = MultiplayerPeer::new();
    bad.create_client(&url, None).await.unwrap();
    match within(5.0, "bad client", bad.next_event()).await {
        Some(HostEvent::ConnectFailed(_)) | None => {}
        e => panic!("{e:?}"),
    }
    within(
        10.0,
        "shutdown",
        server.shutdown(std::time::Duration::from_secs(2)),
    )
    .await;
}
