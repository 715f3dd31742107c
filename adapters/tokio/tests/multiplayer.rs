//! `MultiplayerPeer` over real sockets on 127.0.0.1: the id message,
//! disconnect_peer, refuse_new_connections, close, shutdown, pending-peer
//! timeout, 1,000 concurrent clients, and interop with the std adapter.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use wsmp_tokio::{
    connect, ClientOptions, CloseCode, Config, ConnectionStatus, HostEvent, Message,
    MultiplayerPeer, PeerId, Target,
};

async fn mp_server(config: Config) -> (MultiplayerPeer, SocketAddr) {
    let mut p = MultiplayerPeer::new();
    p.config = config;
    p.create_server(0, "127.0.0.1", None).await.unwrap();
    assert_eq!(p.get_connection_status(), ConnectionStatus::Connected);
    assert_eq!(p.get_unique_id(), 1);
    let addr = p.local_addrs()[0];
    (p, addr)
}

async fn event(p: &mut MultiplayerPeer, what: &str) -> HostEvent {
    within(10.0, what, p.next_event()).await.unwrap()
}

/// A raw client joined to `server`: returns it and its id (read from the
/// exact bytes of the id message, the first message).
async fn raw_join(server: &mut MultiplayerPeer, addr: SocketAddr) -> (RawClient, PeerId) {
    let mut raw = within(5.0, "raw connect", RawClient::connect(addr)).await;
    let f = within(5.0, "id message", raw.next_frame()).await.unwrap();
    // spec/websocket-peer.md §3.7: binary frame, 4 bytes, little-endian id.
    assert_eq!(&f.raw[..2], &[0x82, 0x04], "{:02x?}", f.raw);
    let id = PeerId::new(i32::from_le_bytes(f.payload[..].try_into().unwrap())).unwrap();
    assert!(id.get() >= 2);
    assert_eq!(
        event(server, "PeerConnected").await,
        HostEvent::PeerConnected(id)
    );
    (raw, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_message_packets_and_disconnect_peer() {
    let (mut server, addr) = mp_server(Config::default()).await;
    let (mut a, a_id) = raw_join(&mut server, addr).await;
    let (mut b, b_id) = raw_join(&mut server, addr).await;
    assert_ne!(a_id, b_id);
    let mut peers = server.connected_peers();
    peers.sort();
    let mut want = vec![a_id, b_id];
    want.sort();
    assert_eq!(peers, want);

    // Packets both ways.
    a.send_frame(0x2, b"from a").await;
    assert_eq!(
        event(&mut server, "packet").await,
        HostEvent::Packet {
            from: a_id,
            data: Bytes::from_static(b"from a")
        }
    );
    server
        .send(Target::Peer(b_id), Bytes::from_static(b"to b"))
        .unwrap();
    let f = within(5.0, "packet to b", b.next_frame()).await.unwrap();
    assert_eq!((f.opcode, &f.payload[..]), (0x2, &b"to b"[..]));

    // disconnect_peer(force = false): close frame to the client, then PeerDisconnected.
    server.disconnect_peer(a_id, false).unwrap();
    let f = within(5.0, "close frame", a.next_frame()).await.unwrap();
    assert_eq!(f.opcode, 0x8);
    a.send_frame(0x8, &f.payload).await;
    match event(&mut server, "PeerDisconnected").await {
        HostEvent::PeerDisconnected { peer, .. } => assert_eq!(peer, a_id),
        e => panic!("{e:?}"),
    }
    assert!(within(5.0, "EOF a", a.next_frame()).await.is_none());

    // disconnect_peer(force = true): the socket is dropped, no event.
    server.disconnect_peer(b_id, true).unwrap();
    let rest = within(5.0, "EOF b", read_to_eof(&mut b.sock)).await;
    assert!(rest.is_empty(), "force: no close frame, got {rest:02x?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(server.try_event(), None);
    assert!(server.connected_peers().is_empty());
    assert!(server.disconnect_peer(b_id, false).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuse_new_connections_leaves_them_waiting() {
    let (mut server, addr) = mp_server(Config::default()).await;
    // The accept loop is already waiting in accept() when refusal starts.
    tokio::time::sleep(Duration::from_millis(50)).await;
    server.set_refuse_new_connections(true);
    assert!(server.refuse_new_connections());
    let mut waiting = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(upgrade_request(&addr.to_string()).as_bytes())
            .await
            .unwrap();
        waiting.push(s);
    }
    // spec/websocket-peer.md §3.5: not accepted at all — no answer, no close.
    for s in &mut waiting {
        let mut b = [0u8; 1];
        let r = tokio::time::timeout(Duration::from_millis(400), s.peek(&mut b)).await;
        assert!(r.is_err(), "refused connection got an answer/close: {r:?}");
    }
    assert!(server.connected_peers().is_empty());
    assert_eq!(server.try_event(), None);
    // Accepting again: the waiting connections complete their handshake.
    server.set_refuse_new_connections(false);
    for s in &mut waiting {
        let (head, _) = within(5.0, "101", read_http_head(s)).await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    }
    for _ in 0..2 {
        assert!(matches!(
            event(&mut server, "connected").await,
            HostEvent::PeerConnected(_)
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_drops_sockets_without_close_frames() {
    let (mut server, addr) = mp_server(Config::default()).await;
    let (mut a, _) = raw_join(&mut server, addr).await;
    let (mut b, _) = raw_join(&mut server, addr).await;
    server.close();
    assert_eq!(
        server.get_connection_status(),
        ConnectionStatus::Disconnected
    );
    for c in [&mut a, &mut b] {
        let rest = within(5.0, "EOF", read_to_eof(&mut c.sock)).await;
        assert!(rest.is_empty(), "close(): no close frame, got {rest:02x?}");
    }
    assert!(server.next_event().await.is_none());
    // The listener is gone too.
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_sends_going_away() {
    let (mut server, addr) = mp_server(Config::default()).await;
    let (mut a, _) = raw_join(&mut server, addr).await;
    let mut ws = within(
        5.0,
        "ws client",
        connect(&format!("ws://{addr}/"), ClientOptions::default()),
    )
    .await
    .unwrap();
    assert!(matches!(
        event(&mut server, "connected").await,
        HostEvent::PeerConnected(_)
    ));
    let client = tokio::spawn(async move {
        let first = ws.recv().await; // the id message
        let end = ws.recv().await;
        (first, end, ws.close_info())
    });
    let raw = tokio::spawn(async move {
        let f = a.next_frame().await.unwrap();
        a.send_frame(0x8, &f.payload).await;
        let eof = a.next_frame().await;
        (f, eof)
    });
    within(10.0, "shutdown", server.shutdown(Duration::from_secs(3))).await;
    let (f, eof) = within(5.0, "raw", raw).await.unwrap();
    assert_eq!(f.opcode, 0x8);
    assert_eq!(close_code(&f.payload), Some(1001));
    assert!(eof.is_none());
    let (first, end, info) = within(5.0, "client", client).await.unwrap();
    assert_eq!(first.unwrap().len(), 4);
    assert!(end.is_none());
    let info = info.unwrap();
    assert_eq!(info.code, CloseCode::GOING_AWAY);
    assert!(info.clean, "{info:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_peer_times_out() {
    let (mut server, addr) = mp_server(Config {
        handshake_timeout: Duration::from_millis(300),
        ..Config::default()
    })
    .await;
    let t = Instant::now();
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let rest = within(
        3.0,
        "server closes the pending socket",
        read_to_eof(&mut silent),
    )
    .await;
    let elapsed = t.elapsed();
    assert!(
        rest.is_empty() || rest.starts_with(b"HTTP/1.1 "),
        "{:?}",
        String::from_utf8_lossy(&rest)
    );
    assert!(elapsed >= Duration::from_millis(250), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(2000), "{elapsed:?}");
    assert!(server.connected_peers().is_empty());
    assert_eq!(server.try_event(), None, "a pending peer leaves no event");
    // The server still works.
    let (_c, _id) = raw_join(&mut server, addr).await;
}

/// Raises the soft open-files limit towards `want` (no unsafe: via `prlimit`
/// from util-linux on this very process); returns the limit in force.
fn raise_nofile(want: u64) -> u64 {
    let current = || -> Option<u64> {
        let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
        let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
        line.split_whitespace().nth(3)?.parse().ok()
    };
    let soft = current().unwrap_or(1024);
    if soft >= want {
        return soft;
    }
    let _ = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &std::process::id().to_string(),
            &format!("--nofile={want}:"),
        ])
        .status();
    current().unwrap_or(soft)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_clients_routing() {
    let limit = raise_nofile(4096);
    // 2 fds per client (both ends in this process) plus some slack.
    let n = if limit >= 2_200 {
        1000usize
    } else {
        let n = ((limit.saturating_sub(200)) / 2) as usize;
        eprintln!("NOTE: open-files limit {limit}: testing {n} clients instead of 1,000");
        n
    };
    let slow = Config {
        handshake_timeout: Duration::from_secs(30),
        ..Config::default()
    };
    let (mut server, addr) = mp_server(slow.clone()).await;
    let url = format!("ws://{addr}/");
    let started = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Message)>();
    let mut tasks = Vec::new();
    for i in 0..n {
        let url = url.clone();
        let tx = tx.clone();
        let config = slow.clone();
        tasks.push(tokio::spawn(async move {
            let mut ws = connect(
                &url,
                ClientOptions {
                    config,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            while let Some(m) = ws.recv().await {
                if tx.send((i, m)).is_err() {
                    break;
                }
            }
        }));
        if i % 100 == 99 {
            tokio::task::yield_now().await;
        }
    }
    drop(tx);
    let run = async {
        // Every client gets its id first; ids are unique.
        let mut ids: Vec<Option<PeerId>> = vec![None; n];
        let mut seen = std::collections::HashSet::new();
        let mut connected = 0;
        while ids.iter().any(Option::is_none) || connected < n {
            tokio::select! {
                Some((i, m)) = rx.recv() => {
                    assert!(ids[i].is_none(), "client {i} got a second message before routing");
                    let id = PeerId::new(i32::from_le_bytes(m.as_bytes().try_into().unwrap())).unwrap();
                    assert!(seen.insert(id), "duplicate id {id}");
                    ids[i] = Some(id);
                }
                e = server.next_event() => match e.unwrap() {
                    HostEvent::PeerConnected(_) => connected += 1,
                    e => panic!("{e:?}"),
                },
            }
        }
        eprintln!("{n} clients connected in {:?}", started.elapsed());
        assert_eq!(server.connected_peers().len(), n);
        let ids: Vec<PeerId> = ids.into_iter().map(Option::unwrap).collect();

        // Broadcast reaches everyone.
        let report = server
            .send(Target::Broadcast, Bytes::from_static(b"all"))
            .unwrap();
        assert_eq!(report.delivered, n);
        let mut got = vec![0u32; n];
        for _ in 0..n {
            let (i, m) = rx.recv().await.unwrap();
            assert_eq!(m.as_bytes(), b"all");
            got[i] += 1;
        }
        assert!(got.iter().all(|&g| g == 1));

        // AllExcept(x) reaches all but x; then Peer(x) reaches only x. The
        // Peer(x) packet is sent after; x's first message must be it.
        let x = n / 2;
        let r = server
            .send(Target::AllExcept(ids[x]), Bytes::from_static(b"but"))
            .unwrap();
        assert_eq!(r.delivered, n - 1);
        server
            .send(Target::Peer(ids[x]), Bytes::from_static(b"only"))
            .unwrap();
        let mut got = vec![Vec::new(); n];
        for _ in 0..n {
            let (i, m) = rx.recv().await.unwrap();
            got[i].push(m.as_bytes().to_vec());
        }
        for (i, g) in got.iter().enumerate() {
            let want: &[u8] = if i == x { b"only" } else { b"but" };
            assert_eq!(g, &vec![want.to_vec()], "client {i}");
        }
        // Nothing else arrives.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(rx.try_recv().is_err());
    };
    within(60.0, "1,000 clients", run).await;
    eprintln!("routing done in {:?}", started.elapsed());
    server.close();
    for t in tasks {
        t.abort();
    }
}

// ----- std <-> tokio interop ------------------------------------------------

/// The std poll-driven peer as a client against the tokio server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn std_client_tokio_server() {
    let (mut server, addr) = mp_server(Config::default()).await;
    let url = format!("ws://{addr}/");
    let (done_tx, done_rx) = mpsc::channel();
    let client = std::thread::spawn(move || {
        let mut c = wsmp_std::MultiplayerPeer::new();
        c.create_client(&url, None).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut received = Vec::new();
        let mut sent = false;
        while Instant::now() < deadline && received.len() < 3 {
            c.poll_wait(Duration::from_millis(10));
            while let Some(e) = c.poll_signal() {
                if let wsmp_std::HostEvent::PeerConnected(id) = e {
                    assert_eq!(id, PeerId::SERVER);
                }
            }
            if !sent && c.get_connection_status() == ConnectionStatus::Connected {
                for k in 0..3u8 {
                    c.set_target_peer(Target::Peer(PeerId::SERVER));
                    c.put_packet(vec![k; 10 + k as usize]).unwrap();
                }
                sent = true;
            }
            while let Some(p) = c.get_packet() {
                received.push(p);
            }
        }
        let id = c.get_unique_id();
        let _ = done_rx.recv_timeout(Duration::from_secs(5));
        c.close();
        (id, received)
    });
    let mut client_id = None;
    let mut got = Vec::new();
    within(15.0, "std client exchange", async {
        while got.len() < 3 {
            match server.next_event().await.unwrap() {
                HostEvent::PeerConnected(id) => client_id = Some(id),
                HostEvent::Packet { from, data } => {
                    assert_eq!(Some(from), client_id);
                    // Answer each packet, changed.
                    let mut back = data.to_vec();
                    back.reverse();
                    back.push(0xee);
                    server.send(Target::Peer(from), Bytes::from(back)).unwrap();
                    got.push(data);
                }
                e => panic!("{e:?}"),
            }
        }
    })
    .await;
    done_tx.send(()).unwrap();
    let (id, received) = tokio::task::spawn_blocking(move || client.join().unwrap())
        .await
        .unwrap();
    assert_eq!(PeerId::new(id), client_id);
    assert_eq!(received.len(), 3);
    for (k, p) in received.iter().enumerate() {
        assert_eq!(p.from, PeerId::SERVER);
        let mut want = vec![k as u8; 10 + k];
        want.push(0xee);
        assert_eq!(&p.data[..], &want[..]);
    }
    for (k, d) in got.iter().enumerate() {
        assert_eq!(&d[..], &vec![k as u8; 10 + k][..]);
    }
}

/// The tokio peer as a client against the std server (polled in a thread).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_client_std_server() {
    let (addr_tx, addr_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        let mut s = wsmp_std::MultiplayerPeer::new();
        s.create_server(0, "127.0.0.1", None).unwrap();
        addr_tx.send(s.local_addr().unwrap()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut log = Vec::new();
        while Instant::now() < deadline && stop_rx.try_recv().is_err() {
            s.poll_wait(Duration::from_millis(10));
            while let Some(e) = s.poll_signal() {
                if let wsmp_std::HostEvent::PeerConnected(id) = e {
                    s.set_target_peer(Target::Peer(id));
                    s.put_packet(&b"welcome"[..]).unwrap();
                }
            }
            while let Some(p) = s.get_packet() {
                s.set_target_peer(Target::Peer(p.from));
                let mut back = p.data.to_vec();
                back.extend_from_slice(b"!");
                s.put_packet(back).unwrap();
                log.push((p.from, p.data));
            }
        }
        s.close();
        log
    });
    let addr = tokio::task::spawn_blocking(move || addr_rx.recv_timeout(Duration::from_secs(5)))
        .await
        .unwrap()
        .unwrap();
    let mut c = MultiplayerPeer::new();
    c.create_client(&format!("ws://{addr}/"), None)
        .await
        .unwrap();
    assert_eq!(
        event(&mut c, "connected").await,
        HostEvent::PeerConnected(PeerId::SERVER)
    );
    let my_id = c.get_unique_id();
    assert!(my_id >= 2);
    assert_eq!(
        event(&mut c, "welcome").await,
        HostEvent::Packet {
            from: PeerId::SERVER,
            data: Bytes::from_static(b"welcome")
        }
    );
    for k in 0..5u8 {
        c.send(Target::Peer(PeerId::SERVER), Bytes::from(vec![k; 3]))
            .unwrap();
    }
    for k in 0..5u8 {
        let mut want = vec![k; 3];
        want.push(b'!');
        assert_eq!(
            event(&mut c, "echo").await,
            HostEvent::Packet {
                from: PeerId::SERVER,
                data: Bytes::from(want)
            }
        );
    }
    stop_tx.send(()).unwrap();
    let log = tokio::task::spawn_blocking(move || server.join().unwrap())
        .await
        .unwrap();
    assert_eq!(log.len(), 5);
    assert!(log.iter().all(|(from, _)| from.get() == my_id));
    // The server closed: the client sees its server go.
    let e = event(&mut c, "server gone").await;
    assert!(
        matches!(
            e,
            HostEvent::PeerDisconnected {
                peer: PeerId::SERVER,
                ..
            }
        ),
        "{e:?}"
    );
}

/// A server that upgrades but never sends the id message: the client gives
/// up after handshake_timeout with ConnectFailed(Timeout); a closed port
/// gives ConnectFailed at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_connect_failures() {
    let (l, url) = listener().await;
    let silent_server = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let (head, _) = read_http_head(&mut s).await;
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
        // ...and then nothing: no id message.
        read_to_eof(&mut s).await
    });
    let mut c = MultiplayerPeer::new();
    c.config.handshake_timeout = Duration::from_millis(400);
    let t = Instant::now();
    c.create_client(&url, None).await.unwrap();
    assert_eq!(c.get_connection_status(), ConnectionStatus::Connecting);
    let e = event(&mut c, "connect failure").await;
    let elapsed = t.elapsed();
    assert_eq!(
        e,
        HostEvent::ConnectFailed(wsmp_core::host::ConnectFailure::Timeout)
    );
    assert!(elapsed >= Duration::from_millis(350), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert_eq!(c.get_connection_status(), ConnectionStatus::Disconnected);
    // The server side sees the socket end.
    within(5.0, "silent server EOF", silent_server)
        .await
        .unwrap();

    // Nothing listening.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("ws://{}/", closed.local_addr().unwrap());
    drop(closed);
    let mut c = MultiplayerPeer::new();
    c.create_client(&dead, None).await.unwrap();
    match event(&mut c, "refused").await {
        HostEvent::ConnectFailed(_) => {}
        e => panic!("{e:?}"),
    }
    assert_eq!(c.get_connection_status(), ConnectionStatus::Disconnected);
    assert_eq!(within(2.0, "no more events", c.next_event()).await, None);
}

/// A sender stopped at the host's unread limit (backpressure) is read again
/// once the application takes its packets through `next_event`: nothing is
/// dropped and nothing stalls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backpressured_sender_resumes_when_packets_are_read() {
    let (mut server, addr) = mp_server(Config {
        max_queued_packets: 4,
        ..Config::default()
    })
    .await;
    let mut client = MultiplayerPeer::new();
    client
        .create_client(&format!("ws://{addr}/"), None)
        .await
        .unwrap();
    let id = match event(&mut server, "server sees the client").await {
        HostEvent::PeerConnected(id) => id,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        event(&mut client, "client connected").await,
        HostEvent::PeerConnected(PeerId::SERVER)
    );
    for i in 0..50u8 {
        client
            .send(Target::Peer(PeerId::SERVER), Bytes::from(vec![i; 100]))
            .unwrap();
    }
    // Let the server fill its per-peer queue and stop reading.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..50u8 {
        match event(&mut server, "packet").await {
            HostEvent::Packet { from, data } => {
                assert_eq!(from, id);
                assert_eq!(&data[..], &[i; 100][..]);
            }
            other => panic!("{other:?}"),
        }
    }
}

/// The bind rule (spec §3.3, `wsmp_io::BindAddress`): `::` is IPv6-only, so a second server
/// can listen on `0.0.0.0` with the same port; each takes its own family. `*` is dual-stack
/// and holds the IPv4 port too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_and_ipv4_wildcards_listen_side_by_side() {
    let mut v6 = MultiplayerPeer::new();
    v6.create_server(0, "::", None).await.unwrap();
    let port = v6.local_addrs()[0].port();
    let mut v4 = MultiplayerPeer::new();
    v4.create_server(port, "0.0.0.0", None).await.unwrap();
    let (_c6, id6) = raw_join(&mut v6, SocketAddr::new("::1".parse().unwrap(), port)).await;
    let (_c4, id4) = raw_join(&mut v4, SocketAddr::from(([127, 0, 0, 1], port))).await;
    assert_eq!(
        v6.get_peer_address(id6).map(|a| a.is_ipv6()),
        Some(true),
        "IPv6 client on the IPv6 server"
    );
    assert_eq!(
        v4.get_peer_address(id4).map(|a| a.is_ipv4()),
        Some(true),
        "IPv4 client on the IPv4 server"
    );
    let mut any = MultiplayerPeer::new();
    any.create_server(0, "*", None).await.unwrap();
    let port = any.local_addrs()[0].port();
    assert!(
        wsmp_tokio::bind(port, "0.0.0.0").is_err(),
        "`*` holds IPv4 too"
    );
    assert!(
        wsmp_tokio::bind(0, "localhost").is_err(),
        "names are not resolved"
    );
}
