//! Blocking single connections: [`connect`], [`accept`] and [`WebSocket`].
//!
//! Underneath, the socket is non-blocking and driven by the adapters' one I/O driver
//! ([`wsmp_io::Driver`] with the [`Connection`] endpoint: reads, TLS, backpressure, writes,
//! the connection's timers and the bounded close are written once there). A blocking call
//! steps the driver and, when it has to wait, waits for the readiness the driver asked for
//! ([`Want`]) with `poll(2)` on the socket, bounded by the connection's next timer and the
//! caller's read or write timeout.

use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use wsmp_core::connection::{Admission, ClientError, CloseCause, CloseInfo, Event};
use wsmp_core::handshake::WsUrl;
use wsmp_core::{CloseCode, Config, Connection, Message, MessageKind};
use wsmp_io::{Driver, Socket, Want};
use wsmp_tls::{TlsClientOptions, TlsServerOptions};

use crate::error::{from_io, Direction, Error};
use crate::{os_rng, Clock};

/// Options of [`connect`].
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Limits and handshake options; `handshake_timeout` bounds name resolution (checked after
    /// it), TCP connect, TLS and the HTTP upgrade together.
    pub config: Config,
    /// TLS options for `wss://` URLs (ignored for `ws://`).
    pub tls: TlsClientOptions,
    /// Longest wait of one [`WebSocket::recv`]; `None` waits forever.
    pub read_timeout: Option<Duration>,
    /// Longest wait for the socket to take data in [`WebSocket::send`]; `None` waits forever.
    pub write_timeout: Option<Duration>,
}

/// Options of [`accept`].
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Limits and handshake options; `handshake_timeout` bounds TLS and the HTTP upgrade.
    pub config: Config,
    /// Serve `wss://` with this certificate chain and key.
    pub tls: Option<TlsServerOptions>,
    /// Longest wait of one [`WebSocket::recv`]; `None` waits forever.
    pub read_timeout: Option<Duration>,
    /// Longest wait for the socket to take data in [`WebSocket::send`]; `None` waits forever.
    pub write_timeout: Option<Duration>,
}

/// One open WebSocket over a blocking socket, used from one thread.
#[derive(Debug)]
pub struct WebSocket {
    conn: Connection,
    sock: mio::net::TcpStream,
    driver: Driver,
    clock: Clock,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    closed: Option<CloseInfo>,
    /// Events taken from the core so far (for [`Want::after_events`]).
    events_taken: u64,
}

/// Waits until `sock` is readable (`read`) or writable (`write`), or `timeout`, with `poll(2)`
/// on the socket itself (through `rustix`'s safe wrapper): no descriptor besides the socket.
/// An epoll instance per connection (as a `mio::Poll` is) doubled the descriptors a blocking
/// server needs, and the std echo server ran out of them at 10,000 connections (issue 11).
///
/// `poll(2)` is level-triggered, which is what the driver's [`Want`] means: it has read or
/// written until the socket would block before anyone waits.
fn wait_ready(
    sock: &mio::net::TcpStream,
    read: bool,
    write: bool,
    timeout: Option<Duration>,
) -> io::Result<()> {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let mut flags = PollFlags::empty();
    if read {
        flags |= PollFlags::IN;
    }
    if write {
        flags |= PollFlags::OUT;
    }
    if flags.is_empty() {
        if let Some(t) = timeout {
            // Only a timer: the socket's hang-up or error (always reported by poll)
            // must not turn the wait into a busy loop.
            std::thread::sleep(t);
            return Ok(());
        }
    }
    let timeout = timeout.map(|t| Timespec {
        tv_sec: i64::try_from(t.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(t.subsec_nanos()),
    });
    let mut fds = [PollFd::new(sock, flags)];
    match rustix::event::poll(&mut fds, timeout.as_ref()) {
        Err(e) if e != rustix::io::Errno::INTR => Err(e.into()),
        _ => Ok(()),
    }
}

/// Opens a WebSocket to `url` (`ws://` or `wss://`), blocking until the opening handshake is
/// done or `handshake_timeout` passes.
///
/// Name resolution uses the system resolver and blocks for as long as it takes; the time it
/// took counts against `handshake_timeout`.
pub fn connect(url: &str, options: ClientOptions) -> Result<WebSocket, Error> {
    options.config.validate().map_err(Error::Config)?;
    let parsed = WsUrl::parse(url).map_err(|e| Error::Client(ClientError::Url(e)))?;
    let (host, port, secure) = (parsed.host.to_string(), parsed.port, parsed.secure);
    let tls = if secure {
        Some(options.tls.build(&host).map_err(Error::TlsConfig)?)
    } else {
        None
    };
    let clock = Clock::new();
    let deadline = Instant::now() + options.config.handshake_timeout;
    let conn = Connection::client(Arc::new(options.config), url, clock.now(), os_rng())
        .map_err(Error::Client)?;
    let addrs: Vec<SocketAddr> = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|error| Error::Resolve {
            host: host.clone(),
            error,
        })?
        .collect();
    let mut last_error = None;
    let mut tcp = None;
    for addr in addrs {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            last_error = Some(io::Error::new(
                io::ErrorKind::TimedOut,
                "handshake_timeout passed while connecting",
            ));
            break;
        }
        match TcpStream::connect_timeout(&addr, remaining) {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last_error = Some(e),
        }
    }
    let tcp =
        tcp.ok_or_else(|| {
            Error::Connect(last_error.unwrap_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, "the host has no address")
            }))
        })?;
    let tls = match tls {
        Some((config, name)) => Some(Box::new(rustls::Connection::Client(
            rustls::ClientConnection::new(config, name).map_err(Error::Tls)?,
        ))),
        None => None,
    };
    let mut ws = WebSocket::new(
        conn,
        tcp,
        tls,
        clock,
        options.read_timeout,
        options.write_timeout,
    )?;
    ws.open()?;
    Ok(ws)
}

/// Runs the server side of the opening handshake (TLS first when configured) on an accepted
/// TCP stream, blocking until it is done or `handshake_timeout` passes (the clock starts now).
pub fn accept(stream: TcpStream, options: &ServerOptions) -> Result<WebSocket, Error> {
    let clock = Clock::new();
    // spec/websocket-peer.md §3.5: the handshake clock starts at TCP accept, before TLS.
    let conn = Connection::server(
        Arc::new(options.config.clone()),
        clock.now(),
        Admission::Automatic,
    )
    .map_err(Error::Config)?;
    let tls = match &options.tls {
        Some(tls) => Some(Box::new(rustls::Connection::Server(
            rustls::ServerConnection::new(tls.config()).map_err(Error::Tls)?,
        ))),
        None => None,
    };
    let mut ws = WebSocket::new(
        conn,
        stream,
        tls,
        clock,
        options.read_timeout,
        options.write_timeout,
    )?;
    ws.open()?;
    Ok(ws)
}

impl WebSocket {
    fn new(
        conn: Connection,
        tcp: TcpStream,
        tls: Option<Box<rustls::Connection>>,
        clock: Clock,
        read_timeout: Option<Duration>,
        write_timeout: Option<Duration>,
    ) -> Result<WebSocket, Error> {
        tcp.set_nonblocking(true).map_err(Error::Io)?;
        let sock = mio::net::TcpStream::from_std(tcp);
        wsmp_io::tune_stream(sock.sock_ref()).map_err(Error::Io)?;
        let linger = conn.config().close_timeout;
        Ok(WebSocket {
            conn,
            sock,
            driver: Driver::new(tls, linger),
            clock,
            read_timeout,
            write_timeout,
            closed: None,
            events_taken: 0,
        })
    }

    /// TLS handshake (if any), then the WebSocket opening handshake, bounded by the core's
    /// handshake timer.
    fn open(&mut self) -> Result<(), Error> {
        loop {
            let want = self.step();
            while let Some(event) = self.conn.poll_event() {
                match event {
                    Event::Open { .. } => return Ok(()),
                    Event::Closed(info) => {
                        self.closed = Some(info.clone());
                        return Err(self.open_failed(info));
                    }
                    _ => {}
                }
            }
            if want.done {
                let info = self.close_info();
                return Err(self.open_failed(info));
            }
            self.wait(want, None)?;
        }
    }

    /// Why the opening handshake failed: a TLS or socket error if there was one, else how
    /// the core ended it (timeout, HTTP status, end of stream...).
    fn open_failed(&mut self, info: CloseInfo) -> Error {
        match self.driver.take_error() {
            Some(e) if !ended(&e) => from_io(e),
            _ => Error::Handshake(info),
        }
    }

    /// How the connection ended (when its `Closed` event is not at hand).
    fn close_info(&self) -> CloseInfo {
        self.conn.close_info().cloned().unwrap_or(CloseInfo {
            code: CloseCode::ABNORMAL,
            reason: String::new(),
            clean: false,
            cause: CloseCause::Eof,
        })
    }

    /// One driver step: timers, reads, writes, closing.
    fn step(&mut self) -> Want {
        let now = self.clock.now();
        self.driver.step(&self.sock, &mut self.conn, now)
    }

    /// Waits for what `want` asks, at most until its deadline and `user_deadline`.
    fn wait(&mut self, want: Want, user_deadline: Option<Instant>) -> Result<(), Error> {
        if want.again {
            return Ok(());
        }
        let core = want.deadline.and_then(|t| self.clock.instant(t));
        let deadline = match (core, user_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        wait_ready(&self.sock, want.read, want.write, timeout).map_err(Error::Io)
    }

    /// A read or write error that is not just the end of the stream (those are reported as
    /// `Closed` by the core).
    fn failure(&mut self) -> Option<Error> {
        let e = self.driver.take_error()?;
        (!ended(&e)).then(|| from_io(e))
    }

    /// Takes events up to the next message; a `Closed` event is kept in `closed`.
    fn next_message(&mut self) -> Option<Message> {
        while let Some(event) = self.conn.poll_event() {
            self.events_taken += 1;
            match event {
                Event::Message(m) => return Some(m),
                Event::Closed(info) => self.closed = Some(info),
                _ => {}
            }
        }
        None
    }

    /// Takes every waiting event while closing (messages are discarded).
    fn take_close_events(&mut self) {
        while let Some(event) = self.conn.poll_event() {
            self.events_taken += 1;
            if let Event::Closed(info) = event {
                self.closed = Some(info);
            }
        }
    }

    /// After the closing handshake: drives the socket to its end (the close reply written,
    /// the server's end of stream awaited by a client), bounded by the connection's timers
    /// and the driver's linger, and by `user_deadline`.
    fn finish(&mut self, user_deadline: Option<Instant>) {
        while !self.driver.is_done() {
            let want = self.step();
            let _ = self.driver.take_error();
            let mut took = false;
            while self.conn.poll_event().is_some() {
                took = true;
            }
            // Taken events make it `again`: `wait` returns at once.
            let want = want.after_events(took);
            let idle = !want.read && !want.write && !want.again && want.deadline.is_none();
            if want.done || idle || user_deadline.is_some_and(|d| Instant::now() >= d) {
                return;
            }
            if self.wait(want, user_deadline).is_err() {
                return;
            }
        }
    }

    /// Writes all queued output (waiting for the socket at most the write timeout).
    fn flush(&mut self) -> Result<(), Error> {
        let user_deadline = self.write_timeout.map(|t| Instant::now() + t);
        loop {
            let now = self.clock.now();
            let want = self.driver.flush(&self.sock, &mut self.conn, now);
            if let Some(e) = self.driver.take_error() {
                return Err(from_io(e));
            }
            if want.done || !want.write && !want.again {
                return Ok(());
            }
            if want.again {
                continue;
            }
            if user_deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(Error::Timeout(Direction::Write));
            }
            // Writing only: input waits in the kernel meanwhile.
            self.wait(
                Want {
                    read: false,
                    ..want
                },
                user_deadline,
            )?;
        }
    }

    /// Sends one message (text must be valid UTF-8, which `&str` guarantees) and writes it out.
    ///
    /// A message larger than `outbound_buffer_size`, or one that does not fit the queue because
    /// an earlier write timed out, is refused with [`Error::Send`] (the payload is handed back).
    pub fn send(&mut self, message: Message) -> Result<(), Error> {
        if let Some(info) = &self.closed {
            return Err(Error::Closed(info.clone()));
        }
        let now = self.clock.now();
        self.conn
            .send(now, message.kind, message.data)
            .map_err(Error::Send)?;
        self.flush()
    }

    /// Sends a text message.
    pub fn send_text(&mut self, text: &str) -> Result<(), Error> {
        self.send(Message {
            kind: MessageKind::Text,
            data: Bytes::copy_from_slice(text.as_bytes()),
        })
    }

    /// Sends a binary message.
    pub fn send_binary(&mut self, data: impl Into<Bytes>) -> Result<(), Error> {
        self.send(Message {
            kind: MessageKind::Binary,
            data: data.into(),
        })
    }

    /// Sends a ping (payload ≤ 125 bytes); its pong is consumed by `recv`.
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), Error> {
        let now = self.clock.now();
        self.conn.ping(now, payload).map_err(Error::Command)?;
        self.flush()
    }

    /// Waits for the next message. Pings are answered on the way. When the connection ends
    /// (closing handshake, failure, end of stream) this returns [`Error::Closed`], and keeps
    /// returning it. With a read timeout, [`Error::Timeout`] means only that nothing arrived
    /// in time.
    pub fn recv(&mut self) -> Result<Message, Error> {
        let user_deadline = self.read_timeout.map(|t| Instant::now() + t);
        loop {
            if let Some(m) = self.next_message() {
                return Ok(m);
            }
            if let Some(info) = self.closed.clone() {
                self.finish(user_deadline);
                return Err(Error::Closed(info));
            }
            if self.driver.is_done() {
                self.closed = Some(self.close_info());
                continue;
            }
            let want = self.step();
            if let Some(e) = self.failure() {
                return Err(e);
            }
            let taken = self.events_taken;
            if let Some(m) = self.next_message() {
                return Ok(m);
            }
            let want = want.after_events(self.events_taken != taken);
            if self.closed.is_some() || want.done || want.again {
                continue;
            }
            if user_deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(Error::Timeout(Direction::Read));
            }
            self.wait(want, user_deadline)?;
        }
    }

    /// Starts the closing handshake and waits for it to finish (bounded by `close_timeout`);
    /// messages still arriving meanwhile are discarded. Returns how the connection ended.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<CloseInfo, Error> {
        let now = self.clock.now();
        self.conn.close(now, code, reason).map_err(Error::Command)?;
        loop {
            self.take_close_events();
            if self.driver.is_done() {
                return Ok(self.closed.clone().unwrap_or_else(|| self.close_info()));
            }
            let want = self.step();
            if let Some(e) = self.failure() {
                return Err(e);
            }
            let taken = self.events_taken;
            self.take_close_events();
            let want = want.after_events(self.events_taken != taken);
            if want.done || want.again {
                continue;
            }
            self.wait(want, None)?;
        }
    }

    /// Sets the longest wait of one [`recv`](Self::recv) (`None`: forever).
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.read_timeout = timeout;
    }

    /// Sets the longest wait for the socket to take data (`None`: forever).
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        self.write_timeout = timeout;
    }

    /// The negotiated sub-protocol.
    pub fn protocol(&self) -> Option<&str> {
        self.conn.selected_protocol()
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.sock.peer_addr()
    }

    /// The core connection (state, queue sizes, close info).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

/// The peer ended the stream (reset, or TCP closed without TLS close_notify): the core
/// reports it as the end of the connection, not as an error of its own.
fn ended(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}
