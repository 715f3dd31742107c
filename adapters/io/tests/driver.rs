//! The driver over real sockets on 127.0.0.1, plain and TLS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{IoSlice, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use wsmp_core::connection::{Admission, Connection, Event, MessageKind, State};
use wsmp_core::{CloseCode, Config, Timestamp};
use wsmp_io::{Driver, Endpoint, Exchange, Socket, Status, Want, READ_CHUNK};
use wsmp_tls::testing::TestCerts;

struct Clock(Instant);

impl Clock {
    fn now(&self) -> Timestamp {
        Timestamp::from_duration(self.0.elapsed())
    }
}

fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    client.set_nonblocking(true).unwrap();
    server.set_nonblocking(true).unwrap();
    (client, server)
}

fn rng() -> wsmp_core::connection::Rng {
    Box::new(rand_core::UnwrapErr(rand_core::OsRng))
}

fn config() -> Arc<Config> {
    Arc::new(Config {
        close_timeout: Duration::from_millis(300),
        inbound_buffer_size: 1 << 20,
        outbound_buffer_size: 1 << 20,
        ..Config::default()
    })
}

/// One side: a socket, its driver and its connection.
struct Side {
    sock: TcpStream,
    driver: Driver,
    conn: Connection,
    last: Want,
}

impl Side {
    fn step(&mut self, clock: &Clock) -> Want {
        self.last = self.driver.step(&self.sock, &mut self.conn, clock.now());
        self.last
    }

    fn messages(&mut self) -> Vec<Bytes> {
        let mut out = Vec::new();
        while let Some(e) = self.conn.poll_event() {
            if let Event::Message(m) = e {
                out.push(m.data);
            }
        }
        out
    }
}

fn client_server(tls: bool) -> (Side, Side) {
    let (c, s) = pair();
    let (ctls, stls) = if tls {
        let certs = TestCerts::generate();
        let server = wsmp_tls::TlsServerOptions::from_pem(
            certs.server_chain_pem.as_bytes(),
            certs.server_key_pem.as_bytes(),
        )
        .unwrap();
        let (cfg, name) = wsmp_tls::TlsClientOptions::client()
            .with_trusted_ca_pem(certs.ca_pem.as_bytes())
            .unwrap()
            .build("localhost")
            .unwrap();
        let client = rustls::ClientConnection::new(cfg, name).unwrap();
        let server = rustls::ServerConnection::new(server.config()).unwrap();
        (
            Some(Box::new(rustls::Connection::Client(client))),
            Some(Box::new(rustls::Connection::Server(server))),
        )
    } else {
        (None, None)
    };
    let url = if tls {
        "wss://localhost/"
    } else {
        "ws://127.0.0.1/"
    };
    let linger = config().close_timeout;
    let client = Side {
        sock: c,
        driver: Driver::new(ctls, linger),
        conn: Connection::client(config(), url, Timestamp::ZERO, rng()).unwrap(),
        last: Want::default(),
    };
    let server = Side {
        sock: s,
        driver: Driver::new(stls, linger),
        conn: Connection::server(config(), Timestamp::ZERO, Admission::Automatic)
            .expect("valid config"),
        last: Want::default(),
    };
    (client, server)
}

/// Steps both sides until `done` holds (bounded: 5 s).
fn run_until(
    clock: &Clock,
    a: &mut Side,
    b: &mut Side,
    mut done: impl FnMut(&mut Side, &mut Side) -> bool,
) {
    let end = Instant::now() + Duration::from_secs(5);
    while !done(a, b) {
        assert!(Instant::now() < end, "timed out");
        a.step(clock);
        b.step(clock);
        std::thread::sleep(Duration::from_micros(200));
    }
}

#[test]
fn messages_flow_both_ways_plain_and_tls() {
    for tls in [false, true] {
        let clock = Clock(Instant::now());
        let (mut c, mut s) = client_server(tls);
        run_until(&clock, &mut c, &mut s, |c, s| {
            c.conn.state() == State::Open && s.conn.state() == State::Open
        });
        // Many messages, some larger than a read chunk.
        let sizes = [1usize, 125, 126, 65_535, 100_000, 3];
        for &n in &sizes {
            let payload = Bytes::from(vec![n as u8; n]);
            let sent = c.conn.send(clock.now(), MessageKind::Binary, payload);
            assert_eq!(sent.map_err(|e| e.kind), Ok(()));
        }
        let mut got = Vec::new();
        run_until(&clock, &mut c, &mut s, |_, s| {
            got.extend(s.messages());
            got.len() == sizes.len()
        });
        for (m, &n) in got.iter().zip(&sizes) {
            assert_eq!(m.len(), n);
            assert!(m.iter().all(|&b| b == n as u8));
        }
        // Echo back through the server driver.
        for m in got {
            let sent = s.conn.send(clock.now(), MessageKind::Binary, m);
            assert_eq!(sent.map_err(|e| e.kind), Ok(()));
        }
        let mut back = 0;
        run_until(&clock, &mut c, &mut s, |c, _| {
            back += c.messages().len();
            back == sizes.len()
        });
        // Clean close: the server closes TCP first and both drivers finish.
        c.conn.close(clock.now(), CloseCode::NORMAL, "bye").unwrap();
        run_until(&clock, &mut c, &mut s, |c, s| c.last.done && s.last.done);
        assert!(s.conn.close_info().is_some_and(|i| i.clean), "tls={tls}");
    }
}

/// An endpoint that takes 10 bytes of input and then no more (a full
/// core): the driver holds at most one read.
#[derive(Default)]
struct Full {
    taken: usize,
}

impl Endpoint for Full {
    fn exchange(&mut self, _now: Timestamp, x: Exchange<'_>) -> Status {
        if let Some(b) = x.batch {
            b.clear();
        }
        let consumed = x.input.len().min(10 - self.taken);
        self.taken += consumed;
        Status {
            consumed,
            can_read: self.taken < 10,
            close: false,
            deadline: None,
        }
    }
}

#[test]
fn input_held_back_is_bounded_by_one_read() {
    let clock = Clock(Instant::now());
    let (mut peer, server) = pair();
    peer.set_nonblocking(false).unwrap();
    let writer = std::thread::spawn(move || {
        // Far more than one read: the server stops reading after one.
        let chunk = vec![7u8; 256 * 1024];
        let _ = peer.set_write_timeout(Some(Duration::from_secs(2)));
        let _ = peer.write_all(&chunk);
        peer
    });
    let mut driver = Driver::new(None, Duration::from_secs(1));
    let mut core = Full::default();
    let end = Instant::now() + Duration::from_secs(5);
    while driver.held_len() == 0 {
        assert!(Instant::now() < end);
        driver.step(&server, &mut core, clock.now());
        std::thread::sleep(Duration::from_millis(1));
    }
    for _ in 0..20 {
        let w = driver.step(&server, &mut core, clock.now());
        assert!(!w.read, "a full core is not waited on for input");
    }
    assert!(
        driver.held_len() <= READ_CHUNK,
        "held {}",
        driver.held_len()
    );
    drop(writer.join().unwrap());
}

/// A stalled reader: the server queues more than the socket buffers take,
/// then closes; the client never reads. The driver must finish within the
/// linger bound (close_timeout) after the core gave up, plain or TLS, and
/// reset the connection so the kernel frees its buffers.
#[test]
fn stalled_reader_is_released_within_the_bound() {
    for tls in [false, true] {
        let clock = Clock(Instant::now());
        let (mut c, mut s) = client_server(tls);
        run_until(&clock, &mut c, &mut s, |c, s| {
            c.conn.state() == State::Open && s.conn.state() == State::Open
        });
        // The client stops reading from here on. Fill the server's queue.
        let big = Bytes::from(vec![1u8; 60_000]);
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            assert!(Instant::now() < end);
            if s.conn
                .send(clock.now(), MessageKind::Binary, big.clone())
                .is_err()
            {
                // Queue full: write until the socket is full too.
                if s.step(&clock).write {
                    break;
                }
            }
        }
        let gave_up = Instant::now();
        s.conn
            .close(clock.now(), CloseCode::POLICY_VIOLATION, "slow")
            .unwrap();
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            let w = s.step(&clock);
            if w.done {
                break;
            }
            assert!(Instant::now() < end, "tls={tls}: not released");
            // Wait as an adapter would: until the deadline the driver gave.
            assert!(w.deadline.is_some() || w.write, "tls={tls}: {w:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
        let took = gave_up.elapsed();
        // close_timeout (the core's close wait) + linger, both 300 ms here.
        assert!(took < Duration::from_millis(1500), "tls={tls}: {took:?}");
        // The connection was reset: the client's reads end in an error
        // (after whatever it still had buffered) rather than hanging.
        c.sock.set_nonblocking(false).unwrap();
        c.sock
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let ended = loop {
            match c.sock.read(&mut buf) {
                Ok(0) => break true,
                Ok(_) => continue,
                Err(e) => break e.kind() == std::io::ErrorKind::ConnectionReset,
            }
        };
        assert!(ended, "tls={tls}: the client's socket did not end");
    }
}

/// A socket that takes nothing yet reports no error (`Ok(0)`): a broken
/// socket, never a busy loop.
struct WritesZero(TcpStream);

impl Socket for WritesZero {
    fn read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        Socket::read(&self.0, buf)
    }
    fn write_vectored(&self, _bufs: &[IoSlice<'_>]) -> std::io::Result<usize> {
        Ok(0)
    }
    fn sock_ref(&self) -> socket2::SockRef<'_> {
        self.0.sock_ref()
    }
}

#[test]
fn a_write_of_zero_bytes_ends_the_socket() {
    let clock = Clock(Instant::now());
    let (c, _s) = pair();
    let sock = WritesZero(c);
    let mut conn = Connection::client(config(), "ws://127.0.0.1/", Timestamp::ZERO, rng()).unwrap();
    let mut driver = Driver::new(None, Duration::from_secs(1));
    let w = driver.step(&sock, &mut conn, clock.now());
    assert!(w.done, "{w:?}");
    assert_eq!(
        driver.take_error().map(|e| e.kind()),
        Some(std::io::ErrorKind::WriteZero)
    );
    assert_eq!(conn.state(), State::Closed);
}

/// The kernel's TCP state of the socket from local port `local` to remote
/// port `remote` (`/proc/net/tcp`: 1 = ESTABLISHED), if it still exists.
fn tcp_state(local: u16, remote: u16) -> Option<u8> {
    let text = std::fs::read_to_string("/proc/net/tcp").ok()?;
    text.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let port = |s: &str| u16::from_str_radix(s.rsplit(':').next()?, 16).ok();
        (port(f[1])? == local && port(f[2])? == remote)
            .then(|| u8::from_str_radix(f[3], 16).ok())?
    })
}

/// The core drops a peer that stopped reading (heartbeat timeout: its
/// output is discarded, nothing is left to write) while the kernel still
/// holds unsent data. A plain shutdown would queue the FIN behind that
/// data: the peer stays ESTABLISHED forever and, once the descriptor is
/// closed, an orphaned FIN-WAIT-1 connection keeps the kernel buffers
/// (issue 10: found by relay/tests/adversarial/release.rs). The driver must
/// wait for the peer's end at most `linger`, then reset.
#[test]
fn a_dropped_peer_that_stopped_reading_is_reset_not_left_established() {
    if std::fs::metadata("/proc/net/tcp").is_err() {
        eprintln!("NOTE: no /proc/net/tcp: skipped");
        return;
    }
    for tls in [false, true] {
        let clock = Clock(Instant::now());
        let (mut c, mut s) = client_server(tls);
        let heartbeat = Config {
            heartbeat_interval: Some(Duration::from_millis(150)),
            ..(*config()).clone()
        };
        s.conn = Connection::server(Arc::new(heartbeat), Timestamp::ZERO, Admission::Automatic)
            .expect("valid config");
        run_until(&clock, &mut c, &mut s, |c, s| {
            c.conn.state() == State::Open && s.conn.state() == State::Open
        });
        let (client_port, server_port) = (
            c.sock.local_addr().unwrap().port(),
            s.sock.local_addr().unwrap().port(),
        );
        // The client stops here (no reads, no pongs). Fill the kernel buffers.
        let big = Bytes::from(vec![1u8; 60_000]);
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            assert!(Instant::now() < end);
            let _ = s.conn.send(clock.now(), MessageKind::Binary, big.clone());
            if s.step(&clock).write {
                break;
            }
        }
        let start = Instant::now();
        loop {
            let w = s.step(&clock);
            if w.done {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "tls={tls}: not released: {w:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        // As an adapter does once the driver is done.
        drop(s);
        // 2 heartbeat intervals + linger, with room for a loaded machine.
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "tls={tls}: {:?}",
            start.elapsed()
        );
        std::thread::sleep(Duration::from_millis(100));
        let state = tcp_state(client_port, server_port);
        assert!(
            state != Some(1),
            "tls={tls}: the client's socket is still ESTABLISHED (our FIN stuck behind unsent data)"
        );
        drop(c);
    }
}

/// The same for a peer of a multiplayer host (the endpoint the std adapter's
/// `MultiplayerPeer` drives every socket with): the 101 cannot be written,
/// the socket ends with `WriteZero` instead of waiting forever with its
/// output queued; the host reports the peer gone and forgets it once it is
/// released.
#[test]
fn a_write_of_zero_bytes_ends_a_host_peer() {
    use wsmp_core::host::Host;
    use wsmp_io::HostPeer;
    let clock = Clock(Instant::now());
    let (mut c, s) = pair();
    let sock = WritesZero(s);
    let mut host = Host::server(
        Config::default(),
        wsmp_core::connection::Admission::Automatic,
        rng(),
    )
    .unwrap();
    let id = host.accept(clock.now(), None).unwrap();
    c.set_nonblocking(false).unwrap();
    c.write_all(
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let mut driver = Driver::new(None, Duration::from_secs(1));
    let end = Instant::now() + Duration::from_secs(5);
    let want = loop {
        assert!(Instant::now() < end, "the socket never ended");
        let w = driver.step(
            &sock,
            &mut HostPeer {
                host: &mut host,
                id,
            },
            clock.now(),
        );
        if w.done {
            break w;
        }
        // Nothing may be waited for on a socket that cannot be written.
        assert!(!w.write, "{w:?}");
        std::thread::sleep(Duration::from_millis(1));
    };
    assert!(want.done);
    assert_eq!(
        driver.take_error().map(|e| e.kind()),
        Some(std::io::ErrorKind::WriteZero)
    );
    host.release(clock.now(), id);
    assert!(host.connection(id).is_none());
    let signals: Vec<_> = std::iter::from_fn(|| host.poll_signal()).collect();
    assert!(
        matches!(signals.last(), Some(wsmp_core::HostEvent::PeerDisconnected { peer, .. }) if *peer == id),
        "{signals:?}"
    );
}

/// The rule every adapter loop applies after taking events: a step's
/// "nothing to wait for" is stale once events were taken (the core reads
/// again), so the answer is to step again — unless the socket is finished.
/// The loops themselves are tested end to end by the pong-and-close-in-one-
/// segment tests of both adapters (Autobahn 2.7–2.9).
#[test]
fn taking_events_makes_a_want_step_again_unless_done() {
    let idle = Want::default();
    assert_eq!(idle.after_events(false), idle);
    let again = idle.after_events(true);
    assert!(again.again && !again.read && !again.write && !again.done);
    let deadline = Want {
        deadline: Some(Timestamp::from_millis(5)),
        read: true,
        ..Want::default()
    };
    assert_eq!(
        deadline.after_events(true),
        Want {
            again: true,
            ..deadline
        }
    );
    assert_eq!(Want::DONE.after_events(true), Want::DONE);
}
