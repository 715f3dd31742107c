//! The poll-driven multiplayer peer over real sockets on 127.0.0.1.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use wsmp_core::host::HostSendError;
use wsmp_std::{
    Config, ConnectionStatus, HostEvent, MultiplayerPeer, PeerId, Target, TlsClientOptions,
    TlsServerOptions,
};
use wsmp_tls::testing::TestCerts;

fn server(config: Config, tls: Option<TlsServerOptions>) -> (MultiplayerPeer, u16) {
    let mut s = MultiplayerPeer::with_config(config);
    s.create_server(0, "127.0.0.1", tls).unwrap();
    assert_eq!(s.get_connection_status(), ConnectionStatus::Connected);
    assert_eq!(s.get_unique_id(), 1);
    assert!(s.is_server());
    let port = s.local_addr().unwrap().port();
    (s, port)
}

/// Polls every peer until `done` or `limit`; panics on timeout.
fn pump(
    peers: &mut [&mut MultiplayerPeer],
    limit: Duration,
    mut done: impl FnMut(&mut [&mut MultiplayerPeer]) -> bool,
) {
    let t = Instant::now();
    while !done(peers) {
        assert!(t.elapsed() < limit, "timed out");
        for p in peers.iter_mut() {
            p.poll();
        }
        thread::sleep(Duration::from_millis(1));
    }
}

fn signals(p: &mut MultiplayerPeer) -> Vec<HostEvent> {
    std::iter::from_fn(|| p.poll_signal()).collect()
}

#[test]
fn one_client_round_trip() {
    let (mut s, port) = server(Config::default(), None);
    let mut c = MultiplayerPeer::new();
    c.create_client(&format!("ws://127.0.0.1:{port}/"), None)
        .unwrap();
    assert_eq!(c.get_connection_status(), ConnectionStatus::Connecting);
    assert_eq!(c.get_unique_id(), 0);
    let mut s_events = Vec::new();
    let mut c_events = Vec::new();
    pump(&mut [&mut s, &mut c], Duration::from_secs(5), |p| {
        s_events.extend(signals(p[0]));
        c_events.extend(signals(p[1]));
        !s_events.is_empty() && !c_events.is_empty()
    });
    let HostEvent::PeerConnected(cid) = s_events[0].clone() else {
        panic!("{s_events:?}")
    };
    assert_eq!(c_events, vec![HostEvent::PeerConnected(PeerId::SERVER)]);
    assert_eq!(c.get_unique_id(), cid.get());
    assert_eq!(c.get_connection_status(), ConnectionStatus::Connected);
    assert_eq!(s.get_peer_address(cid), Some("127.0.0.1".parse().unwrap()));
    assert!(s.get_peer_port(cid).unwrap() > 0);
    assert_eq!(s.get_peer_port(PeerId::new(12345).unwrap()), None);

    // client → server (target ignored on a client).
    c.set_target_peer(Target::Peer(PeerId::new(99).unwrap()));
    c.put_packet(&b"hello"[..]).unwrap();
    c.flush();
    let mut got = None;
    pump(&mut [&mut s, &mut c], Duration::from_secs(5), |p| {
        if p[0].get_available_packet_count() > 0 {
            assert_eq!(p[0].get_packet_peer(), cid);
            got = p[0].get_packet();
        }
        got.is_some()
    });
    let got = got.unwrap();
    assert_eq!(got.from, cid);
    assert_eq!(&got.data[..], b"hello");
    // server → client.
    s.set_target_peer(Target::Peer(cid));
    s.put_packet(vec![1u8, 2, 3]).unwrap();
    let mut got = None;
    pump(&mut [&mut s, &mut c], Duration::from_secs(5), |p| {
        got = got.take().or_else(|| p[1].get_packet());
        got.is_some()
    });
    let got = got.unwrap();
    assert_eq!(got.from, PeerId::SERVER);
    assert_eq!(&got.data[..], &[1, 2, 3]);
    // Unknown target is an error.
    s.set_target_peer(Target::Peer(PeerId::new(5).unwrap()));
    assert!(matches!(
        s.put_packet(vec![1u8]),
        Err(HostSendError::UnknownPeer(..))
    ));

    // Server disconnects the client: both sides report it.
    s.disconnect_peer(cid, false).unwrap();
    let mut s_events = Vec::new();
    let mut c_events = Vec::new();
    pump(&mut [&mut s, &mut c], Duration::from_secs(5), |p| {
        s_events.extend(signals(p[0]));
        c_events.extend(signals(p[1]));
        !c_events.is_empty() && p[0].socket_count() == 0
    });
    assert!(matches!(s_events[..], [HostEvent::PeerDisconnected { peer, .. }] if peer == cid));
    assert!(
        matches!(c_events[..], [HostEvent::PeerDisconnected { peer, .. }] if peer == PeerId::SERVER)
    );
    assert_eq!(c.get_connection_status(), ConnectionStatus::Disconnected);
    assert_eq!(c.get_unique_id(), 0);
    // A disconnected client can connect again.
    c.create_client(&format!("ws://localhost:{port}/"), None)
        .unwrap();
    pump(&mut [&mut s, &mut c], Duration::from_secs(5), |p| {
        p[1].get_connection_status() == ConnectionStatus::Connected
    });
    // The server is in use.
    assert!(s.create_server(0, "127.0.0.1", None).is_err());
    s.close();
    assert_eq!(s.get_connection_status(), ConnectionStatus::Disconnected);
    assert_eq!(s.get_unique_id(), 0);
    pump(&mut [&mut c], Duration::from_secs(5), |p| {
        p[0].get_connection_status() == ConnectionStatus::Disconnected
    });
}

#[test]
fn client_connect_failure_and_bad_arguments() {
    let mut c = MultiplayerPeer::new();
    assert!(c.create_client("http://127.0.0.1:1/", None).is_err());
    let mut s = MultiplayerPeer::new();
    assert!(s.create_server(0, "not an ip", None).is_err());
    // Nothing listens on this port.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    c.create_client(&format!("ws://127.0.0.1:{port}/"), None)
        .unwrap();
    let mut events = Vec::new();
    pump(&mut [&mut c], Duration::from_secs(5), |p| {
        events.extend(signals(p[0]));
        p[0].get_connection_status() == ConnectionStatus::Disconnected
    });
    assert!(
        matches!(events[..], [HostEvent::ConnectFailed(_)]),
        "{events:?}"
    );
    assert!(
        c.last_error().unwrap().contains("connect"),
        "{:?}",
        c.last_error()
    );
}

#[test]
fn pending_peer_handshake_timeout() {
    let config = Config {
        handshake_timeout: Duration::from_millis(300),
        ..Config::default()
    };
    let (mut s, port) = server(config, None);
    let mut silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let t = Instant::now();
    let mut closed = false;
    let mut eof = false;
    pump(&mut [&mut s], Duration::from_secs(3), |p| {
        let mut b = [0u8; 8];
        let ended = match silent.read(&mut b) {
            Ok(n) => n == 0,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        };
        if !eof && ended {
            // The server half-closes and waits (at most its linger) for our
            // end of stream, as a real client sends once it reads EOF.
            eof = true;
            let _ = silent.shutdown(std::net::Shutdown::Both);
        }
        closed = eof && t.elapsed() > Duration::from_millis(250) && p[0].socket_count() == 0;
        closed
    });
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(s.host().unwrap().stats().handshake_timeouts, 1);
    assert!(signals(&mut s).is_empty());
}

#[test]
fn stalled_peer_gets_queue_full() {
    let (mut s, port) = server(Config::default(), None);
    // A raw client that completes the handshake and then never reads.
    let mut raw = TcpStream::connect(("127.0.0.1", port)).unwrap();
    raw.write_all(
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let mut id = None;
    pump(&mut [&mut s], Duration::from_secs(5), |p| {
        if let Some(HostEvent::PeerConnected(i)) = p[0].poll_signal() {
            id = Some(i);
        }
        id.is_some()
    });
    s.set_target_peer(Target::Peer(id.unwrap()));
    let packet = vec![0u8; 60_000];
    let mut sent = 0usize;
    let t = Instant::now();
    loop {
        assert!(t.elapsed() < Duration::from_secs(10), "never refused");
        match s.put_packet(packet.clone()) {
            Ok(_) => sent += 1,
            Err(HostSendError::QueueFull(_, payload)) => {
                assert_eq!(payload.len(), 60_000);
                break;
            }
            Err(e) => panic!("{e}"),
        }
        s.poll();
    }
    // The socket buffers took some, the queue holds at most outbound_buffer_size.
    assert!(sent >= 1);
    let queued = s.host().unwrap().transmit_len(id.unwrap());
    assert!(queued <= 65_535 + 16 + 200, "{queued}");
    drop(raw);
}

#[test]
fn two_hundred_clients_routing() {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 25;
    const N: usize = THREADS * PER_THREAD;
    let (mut s, port) = server(Config::default(), None);
    let url = format!("ws://127.0.0.1:{port}/");
    let (tx, rx) = mpsc::channel::<Vec<(i32, Vec<Vec<u8>>)>>();
    let mut handles = Vec::new();
    for _ in 0..THREADS {
        let url = url.clone();
        let tx = tx.clone();
        handles.push(thread::spawn(move || {
            let mut clients: Vec<MultiplayerPeer> = (0..PER_THREAD)
                .map(|_| {
                    let mut c = MultiplayerPeer::new();
                    c.create_client(&url, None).unwrap();
                    c
                })
                .collect();
            let mut got: Vec<Vec<Vec<u8>>> = vec![Vec::new(); PER_THREAD];
            let mut sent = [false; PER_THREAD];
            let t = Instant::now();
            loop {
                assert!(t.elapsed() < Duration::from_secs(30), "client timeout");
                let mut done = 0;
                for (i, c) in clients.iter_mut().enumerate() {
                    c.poll();
                    while let Some(p) = c.get_packet() {
                        assert_eq!(p.from, PeerId::SERVER);
                        got[i].push(p.data.to_vec());
                    }
                    if got[i].last().is_some_and(|m| m == b"end") {
                        if !sent[i] {
                            let id = c.get_unique_id();
                            c.put_packet(id.to_le_bytes().to_vec()).unwrap();
                            c.flush();
                            sent[i] = true;
                        }
                        done += 1;
                    }
                }
                if done == PER_THREAD {
                    break;
                }
                thread::sleep(Duration::from_millis(2));
            }
            // Let the last packets go out.
            for _ in 0..50 {
                for c in clients.iter_mut() {
                    c.poll();
                }
                thread::sleep(Duration::from_millis(2));
            }
            let ids: Vec<i32> = clients.iter().map(|c| c.get_unique_id()).collect();
            tx.send(ids.into_iter().zip(got).collect()).unwrap();
            // Keep the connections until the server has read everything.
            thread::sleep(Duration::from_millis(500));
        }));
    }
    drop(tx);
    let mut connected = Vec::new();
    let t = Instant::now();
    while connected.len() < N {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "only {} connected",
            connected.len()
        );
        s.poll();
        while let Some(e) = s.poll_signal() {
            if let HostEvent::PeerConnected(id) = e {
                connected.push(id);
            }
        }
        thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(s.connected_peers().len(), N);
    let excluded = connected[0];
    for &id in &connected {
        s.set_target_peer(Target::Peer(id));
        let mut p = id.get().to_le_bytes().to_vec();
        p.push(b'p');
        s.put_packet(p).unwrap();
    }
    s.set_target_peer(Target::Broadcast);
    let report = s.put_packet(&b"all"[..]).unwrap();
    assert_eq!(report.delivered, N);
    s.set_target_peer(Target::AllExcept(excluded));
    let report = s.put_packet(&b"but"[..]).unwrap();
    assert_eq!(report.delivered, N - 1);
    s.set_target_peer(Target::Broadcast);
    s.put_packet(&b"end"[..]).unwrap();
    let mut from_clients = Vec::new();
    let t = Instant::now();
    while from_clients.len() < N {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "got {} packets",
            from_clients.len()
        );
        s.poll();
        while let Some(p) = s.get_packet() {
            assert_eq!(
                &p.data[..],
                &p.from.get().to_le_bytes()[..],
                "packet from the right peer"
            );
            from_clients.push(p.from);
        }
        thread::sleep(Duration::from_millis(1));
    }
    from_clients.sort();
    connected.sort();
    assert_eq!(from_clients, connected);
    let mut results = Vec::new();
    for r in rx {
        results.extend(r);
    }
    assert_eq!(results.len(), N);
    for (id, got) in results {
        let mut own = id.to_le_bytes().to_vec();
        own.push(b'p');
        let expected: Vec<Vec<u8>> = if id == excluded.get() {
            vec![own, b"all".to_vec(), b"end".to_vec()]
        } else {
            vec![own, b"all".to_vec(), b"but".to_vec(), b"end".to_vec()]
        };
        assert_eq!(got, expected, "client {id}");
    }
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn wss_poll_peers() {
    let certs = TestCerts::generate();
    let tls = |chain: &str, key: &str| {
        Some(TlsServerOptions::from_pem(chain.as_bytes(), key.as_bytes()).unwrap())
    };
    let trusted = TlsClientOptions::client()
        .with_trusted_ca_pem(certs.ca_pem.as_bytes())
        .unwrap();
    // Trusted CA: works, packets flow.
    let (mut s, port) = server(
        Config::default(),
        tls(&certs.server_chain_pem, &certs.server_key_pem),
    );
    let mut c = MultiplayerPeer::new();
    c.create_client(&format!("wss://localhost:{port}/"), Some(trusted.clone()))
        .unwrap();
    pump(&mut [&mut s, &mut c], Duration::from_secs(5), |p| {
        p[1].get_connection_status() == ConnectionStatus::Connected
    });
    let big = vec![0xabu8; 60_000];
    c.put_packet(big.clone()).unwrap();
    let mut got = None;
    pump(&mut [&mut s, &mut c], Duration::from_secs(5), |p| {
        got = got.take().or_else(|| p[0].get_packet());
        got.is_some()
    });
    assert_eq!(got.unwrap().data.len(), big.len());
    // Wrong host name: the client fails, the server never connects it.
    let (mut s2, port2) = server(
        Config::default(),
        tls(&certs.other_host_chain_pem, &certs.other_host_key_pem),
    );
    let mut bad = MultiplayerPeer::new();
    bad.create_client(&format!("wss://localhost:{port2}/"), Some(trusted))
        .unwrap();
    let mut events = Vec::new();
    pump(&mut [&mut s2, &mut bad], Duration::from_secs(5), |p| {
        events.extend(signals(p[1]));
        p[1].get_connection_status() == ConnectionStatus::Disconnected
    });
    assert!(
        matches!(events[..], [HostEvent::ConnectFailed(_)]),
        "{events:?}"
    );
    assert!(
        bad.last_error().unwrap_or("").contains("TLS"),
        "{:?}",
        bad.last_error()
    );
    assert!(signals(&mut s2).is_empty());
    // Unsafe mode: the same server is accepted.
    let mut unsafe_client = MultiplayerPeer::new();
    unsafe_client
        .create_client(
            &format!("wss://localhost:{port2}/"),
            Some(TlsClientOptions::dangerous_unverified()),
        )
        .unwrap();
    pump(
        &mut [&mut s2, &mut unsafe_client],
        Duration::from_secs(5),
        |p| p[1].get_connection_status() == ConnectionStatus::Connected,
    );
}

/// Idle cost of `poll()` at 60 Hz with 256 connected peers, printed (not asserted).
#[test]
fn idle_poll_cpu_256_peers() {
    const N: usize = 256;
    let (mut s, port) = server(Config::default(), None);
    let url = format!("ws://127.0.0.1:{port}/");
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let clients = thread::spawn(move || {
        let mut clients: Vec<MultiplayerPeer> = (0..N)
            .map(|_| {
                let mut c = MultiplayerPeer::new();
                c.create_client(&url, None).unwrap();
                c
            })
            .collect();
        loop {
            for c in clients.iter_mut() {
                c.poll();
            }
            match stop_rx.recv_timeout(Duration::from_millis(20)) {
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                _ => break,
            }
        }
    });
    let t = Instant::now();
    while s.connected_peers().len() < N {
        assert!(t.elapsed() < Duration::from_secs(30));
        s.poll();
        thread::sleep(Duration::from_millis(1));
    }
    while s.poll_signal().is_some() {}
    let seconds: f64 = std::env::var("WSMP_IDLE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let mut game_loop = |with_poll: bool| {
        measure_thread_cpu(|| {
            let start = Instant::now();
            let mut polls = 0u32;
            let frame = Duration::from_micros(16_667);
            let mut next = start + frame;
            while start.elapsed().as_secs_f64() < seconds {
                if with_poll {
                    s.poll();
                    while s.get_packet().is_some() {}
                }
                polls += 1;
                thread::sleep(next.saturating_duration_since(Instant::now()));
                next += frame;
            }
            polls
        })
    };
    // The same 60 Hz loop without poll(): the cost of sleeping and waking up.
    let (base, _) = game_loop(false);
    let (cpu, polls) = game_loop(true);
    let poll_cpu = cpu.saturating_sub(base);
    println!(
        "idle poll(): {N} peers, {polls} polls in {seconds} s: loop CPU {:.2} ms ({:.2}% of a core), \
         of which poll() {:.2} ms ({:.3}% of a core, {:.1} µs per poll); sleep/wake baseline {:.2} ms",
        cpu.as_secs_f64() * 1e3,
        cpu.as_secs_f64() / seconds * 100.0,
        poll_cpu.as_secs_f64() * 1e3,
        poll_cpu.as_secs_f64() / seconds * 100.0,
        poll_cpu.as_secs_f64() * 1e6 / f64::from(polls.max(1)),
        base.as_secs_f64() * 1e3,
    );
    stop_tx.send(()).unwrap();
    clients.join().unwrap();
}

/// CPU time of the calling thread spent in `f` (Linux: /proc/thread-self/schedstat, in ns).
fn measure_thread_cpu<R>(f: impl FnOnce() -> R) -> (Duration, R) {
    fn read() -> Option<Duration> {
        let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
        let ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
        Some(Duration::from_nanos(ns))
    }
    let before = read().unwrap_or_default();
    let r = f();
    let after = read().unwrap_or_default();
    (after.saturating_sub(before), r)
}

/// A connected server and client, both polled until the client has its id.
fn connected_pair(
    config: Config,
    tls: Option<(TlsServerOptions, TlsClientOptions)>,
) -> (MultiplayerPeer, MultiplayerPeer, PeerId) {
    let (server_tls, client_tls) = match tls {
        Some((s, c)) => (Some(s), Some(c)),
        None => (None, None),
    };
    let scheme = if server_tls.is_some() { "wss" } else { "ws" };
    let (mut s, port) = server(config, server_tls);
    let mut c = MultiplayerPeer::new();
    c.create_client(&format!("{scheme}://localhost:{port}/"), client_tls)
        .unwrap();
    let mut id = None;
    pump(&mut [&mut s, &mut c], Duration::from_secs(5), |p| {
        while let Some(e) = p[0].poll_signal() {
            if let HostEvent::PeerConnected(i) = e {
                id = Some(i);
            }
        }
        id.is_some() && p[1].get_connection_status() == ConnectionStatus::Connected
    });
    (s, c, id.unwrap())
}

/// A peer held back by backpressure (the application does not read its packets) is not
/// visited in a busy loop: `poll_wait` waits while nothing can be done. Its input, held back
/// message by message, is then delivered whole and in order as the application reads.
#[test]
fn backpressure_does_not_spin_and_held_input_is_delivered_in_order() {
    const N: usize = 200;
    let config = Config {
        max_queued_packets: 1,
        ..Config::default()
    };
    let (mut s, mut c, _) = connected_pair(config, None);
    // (The client keeps the default limits.) Many small messages: they arrive in one or two reads, of which the server takes one
    // message at a time.
    for i in 0..N {
        c.put_packet((i as u32).to_le_bytes().to_vec()).unwrap();
    }
    c.flush();
    pump(&mut [&mut s, &mut c], Duration::from_secs(5), |p| {
        p[0].get_available_packet_count() == 1
    });
    // Nothing can be done until the application reads: poll_wait must wait.
    let t = Instant::now();
    let mut calls = 0;
    while t.elapsed() < Duration::from_millis(600) {
        s.poll_wait(Duration::from_millis(100));
        calls += 1;
    }
    assert!(calls <= 12, "poll_wait returned {calls} times in 600 ms");
    let mut got = Vec::new();
    let t = Instant::now();
    while got.len() < N {
        assert!(t.elapsed() < Duration::from_secs(10), "got {}", got.len());
        if let Some(p) = s.get_packet() {
            got.push(u32::from_le_bytes(p.data[..].try_into().unwrap()));
        }
        s.poll_wait(Duration::from_millis(100));
    }
    assert_eq!(got, (0..N as u32).collect::<Vec<_>>());
}

/// Output queued before `poll_wait` is written before it waits, not after the wait.
#[test]
fn poll_wait_writes_queued_output_before_waiting() {
    let (mut s, mut c, id) = connected_pair(Config::default(), None);
    let (tx, rx) = mpsc::channel::<Instant>();
    let client = thread::spawn(move || {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            c.poll_wait(Duration::from_millis(2));
            if c.get_packet().is_some() {
                tx.send(Instant::now()).unwrap();
                return;
            }
        }
    });
    s.set_target_peer(Target::Peer(id));
    let sent = Instant::now();
    s.put_packet(&b"now"[..]).unwrap();
    s.poll_wait(Duration::from_millis(1000));
    let got = rx.recv_timeout(Duration::from_secs(5)).expect("no packet");
    let latency = got.saturating_duration_since(sent);
    assert!(latency < Duration::from_millis(500), "{latency:?}");
    client.join().unwrap();
}

/// issue 10: a server peer whose client stops reading, then closed by the core, is released
/// within close_timeout + linger (= close_timeout), plain and over wss, whatever TLS or the
/// kernel still hold.
#[test]
fn stalled_reader_is_released_within_the_bound() {
    let close_timeout = Duration::from_millis(400);
    let config = Config {
        close_timeout,
        ..Config::default()
    };
    let certs = TestCerts::generate();
    for tls in [false, true] {
        let options = tls.then(|| {
            (
                TlsServerOptions::from_pem(
                    certs.server_chain_pem.as_bytes(),
                    certs.server_key_pem.as_bytes(),
                )
                .unwrap(),
                TlsClientOptions::client()
                    .with_trusted_ca_pem(certs.ca_pem.as_bytes())
                    .unwrap(),
            )
        });
        let (mut s, c, id) = connected_pair(config.clone(), options);
        // The client is never polled again: it does not read. Fill the server's queue.
        s.set_target_peer(Target::Peer(id));
        let packet = vec![7u8; 60_000];
        let t = Instant::now();
        loop {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "tls={tls}: never full"
            );
            match s.put_packet(packet.clone()) {
                Ok(_) => {}
                Err(HostSendError::QueueFull(..)) => break,
                Err(e) => panic!("{e}"),
            }
            s.poll();
        }
        let gave_up = Instant::now();
        s.disconnect_peer(id, false).unwrap();
        while s.socket_count() > 0 {
            assert!(
                gave_up.elapsed() < Duration::from_secs(5),
                "tls={tls}: the socket was not released"
            );
            s.poll_wait(Duration::from_millis(20));
        }
        let took = gave_up.elapsed();
        // close_timeout (the core's wait for the close reply) + linger (the driver's bound
        // on writing out), plus scheduling slack on a shared machine.
        assert!(
            took < 2 * close_timeout + Duration::from_millis(600),
            "tls={tls}: {took:?}"
        );
        drop(c);
    }
}

/// The bind rule (spec §3.3, `wsmp_io::BindAddress`): `::` is IPv6-only, so a second server
/// can listen on `0.0.0.0` with the same port; each takes its own family. `*` is dual-stack
/// and holds the IPv4 port too.
#[test]
fn ipv6_and_ipv4_wildcards_listen_side_by_side() {
    let mut v6 = MultiplayerPeer::new();
    v6.create_server(0, "::", None).unwrap();
    let port = v6.local_addr().unwrap().port();
    let mut v4 = MultiplayerPeer::new();
    v4.create_server(port, "0.0.0.0", None).unwrap();
    let mut c6 = MultiplayerPeer::new();
    c6.create_client(&format!("ws://[::1]:{port}/"), None)
        .unwrap();
    let mut c4 = MultiplayerPeer::new();
    c4.create_client(&format!("ws://127.0.0.1:{port}/"), None)
        .unwrap();
    pump(
        &mut [&mut v6, &mut v4, &mut c6, &mut c4],
        Duration::from_secs(5),
        |p| {
            p[2].get_connection_status() == ConnectionStatus::Connected
                && p[3].get_connection_status() == ConnectionStatus::Connected
        },
    );
    let only = |p: &MultiplayerPeer| {
        let peers = p.connected_peers();
        assert_eq!(peers.len(), 1);
        p.get_peer_address(peers[0]).unwrap()
    };
    assert_eq!(only(&v6), "::1".parse::<std::net::IpAddr>().unwrap());
    assert_eq!(only(&v4), "127.0.0.1".parse::<std::net::IpAddr>().unwrap());
    // `[::]` with brackets is the same address.
    let mut again = MultiplayerPeer::new();
    assert!(
        again.create_server(port, "[::]", None).is_err(),
        "port taken"
    );
    // `*`: one dual-stack socket.
    let mut any = MultiplayerPeer::new();
    any.create_server(0, "*", None).unwrap();
    let port = any.local_addr().unwrap().port();
    let mut v4 = MultiplayerPeer::new();
    assert!(matches!(
        v4.create_server(port, "0.0.0.0", None),
        Err(wsmp_std::PeerError::Bind(_))
    ));
}

/// A client that connects and closes at once (no request) is released:
/// the handshake fails at its end of stream, well before the handshake
/// timeout, and no socket is left behind.
#[test]
fn client_gone_before_the_request_is_released() {
    let (mut s, port) = server(Config::default(), None);
    let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    pump(&mut [&mut s], Duration::from_secs(2), |p| {
        p[0].socket_count() == 1
    });
    c.shutdown(std::net::Shutdown::Both).unwrap();
    pump(&mut [&mut s], Duration::from_secs(2), |p| {
        p[0].socket_count() == 0
    });
    drop(c);
    assert!(signals(&mut s).is_empty());
}
