//! Blocking single connections: [`connect`], [`accept`] and [`WebSocket`].

use std::io::{self, IoSlice, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustls::{ClientConnection, ServerConnection, StreamOwned};
use wsmp_core::connection::{Admission, ClientError, CloseInfo, Event};
use wsmp_core::handshake::WsUrl;
use wsmp_core::{CloseCode, Config, Connection, Message, MessageKind};
use wsmp_tls::{TlsClientOptions, TlsServerOptions};

use crate::error::{from_io, Direction, Error};
use crate::stream::Stream;
use crate::{os_rng, Clock};

/// Bytes read from the socket at a time.
const READ_BUF: usize = 64 * 1024;
/// Slices gathered for one vectored write.
const MAX_IOV: usize = 64;

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
    stream: Stream,
    clock: Clock,
    buf: Box<[u8]>,
    /// Unconsumed input is `buf[lo..hi]`.
    lo: usize,
    hi: usize,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    /// The socket timeouts currently set (to avoid a syscall per call).
    socket_read_timeout: Option<Option<Duration>>,
    socket_write_timeout: Option<Option<Duration>>,
    closed: Option<CloseInfo>,
    eof: bool,
    socket_closed: bool,
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
    let _ = tcp.set_nodelay(true);
    let stream = match tls {
        Some((config, name)) => {
            let session = ClientConnection::new(config, name).map_err(Error::Tls)?;
            Stream::Client(Box::new(StreamOwned::new(session, tcp)))
        }
        None => Stream::Plain(tcp),
    };
    let mut ws = WebSocket::new(
        conn,
        stream,
        clock,
        options.read_timeout,
        options.write_timeout,
    );
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
    let _ = stream.set_nodelay(true);
    let stream = match &options.tls {
        Some(tls) => {
            let session = ServerConnection::new(tls.config()).map_err(Error::Tls)?;
            Stream::Server(Box::new(StreamOwned::new(session, stream)))
        }
        None => Stream::Plain(stream),
    };
    let mut ws = WebSocket::new(
        conn,
        stream,
        clock,
        options.read_timeout,
        options.write_timeout,
    );
    ws.open()?;
    Ok(ws)
}

impl WebSocket {
    fn new(
        conn: Connection,
        stream: Stream,
        clock: Clock,
        read_timeout: Option<Duration>,
        write_timeout: Option<Duration>,
    ) -> WebSocket {
        WebSocket {
            conn,
            stream,
            clock,
            buf: vec![0; READ_BUF].into_boxed_slice(),
            lo: 0,
            hi: 0,
            read_timeout,
            write_timeout,
            socket_read_timeout: None,
            socket_write_timeout: None,
            closed: None,
            eof: false,
            socket_closed: false,
        }
    }

    /// TLS handshake (if any), then the WebSocket opening handshake.
    fn open(&mut self) -> Result<(), Error> {
        self.tls_handshake()?;
        loop {
            self.flush()?;
            while let Some(event) = self.conn.poll_event() {
                match event {
                    Event::Open { .. } => return Ok(()),
                    Event::Closed(info) => {
                        self.finish_socket();
                        self.closed = Some(info.clone());
                        return Err(Error::Handshake(info));
                    }
                    _ => {}
                }
            }
            self.step(None)?;
        }
    }

    /// Completes the TLS handshake within the core's handshake deadline.
    fn tls_handshake(&mut self) -> Result<(), Error> {
        loop {
            let handshaking = match &self.stream {
                Stream::Plain(_) => false,
                Stream::Client(s) => s.conn.is_handshaking(),
                Stream::Server(s) => s.conn.is_handshaking(),
            };
            if !handshaking {
                return Ok(());
            }
            let now = self.clock.now();
            let deadline = self.conn.poll_timeout().and_then(|t| self.clock.instant(t));
            if deadline.is_some_and(|d| Instant::now() >= d) {
                self.conn.handle_timeout(now);
                let info = self.drain_closed();
                self.finish_socket();
                return Err(Error::Handshake(info));
            }
            let timeout = deadline.map(remaining);
            self.set_socket_timeouts(timeout, timeout);
            let result = match &mut self.stream {
                Stream::Plain(_) => Ok((0, 0)),
                Stream::Client(s) => s.conn.complete_io(&mut s.sock),
                Stream::Server(s) => s.conn.complete_io(&mut s.sock),
            };
            match result {
                Ok((0, 0)) => {
                    // End of stream during the TLS handshake.
                    self.conn.handle_eof(now);
                    let info = self.drain_closed();
                    self.finish_socket();
                    return Err(Error::Handshake(info));
                }
                Ok(_) => {}
                Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.conn.abort(now);
                    let _ = self.drain_closed();
                    self.finish_socket();
                    return Err(from_io(e));
                }
            }
        }
    }

    /// The Closed info after a failure (the event is consumed).
    fn drain_closed(&mut self) -> CloseInfo {
        while let Some(event) = self.conn.poll_event() {
            if let Event::Closed(info) = event {
                self.closed = Some(info.clone());
                return info;
            }
        }
        self.conn.close_info().cloned().unwrap_or(CloseInfo {
            code: CloseCode::ABNORMAL,
            reason: String::new(),
            clean: false,
            cause: wsmp_core::connection::CloseCause::Eof,
        })
    }

    fn set_socket_timeouts(&mut self, read: Option<Duration>, write: Option<Duration>) {
        if self.socket_read_timeout != Some(read) {
            let _ = self.stream.tcp().set_read_timeout(read);
            self.socket_read_timeout = Some(read);
        }
        if self.socket_write_timeout != Some(write) {
            let _ = self.stream.tcp().set_write_timeout(write);
            self.socket_write_timeout = Some(write);
        }
    }

    /// Writes all queued output (blocking, bounded by the write timeout), then closes the
    /// socket if the core asks for it.
    fn flush(&mut self) -> Result<(), Error> {
        let write_timeout = self.write_timeout;
        let read_timeout = self.socket_read_timeout.flatten();
        self.set_socket_timeouts(read_timeout, write_timeout);
        while self.conn.transmit_len() > 0 && !self.socket_closed {
            let result = {
                let mut iov = [IoSlice::new(&[]); MAX_IOV];
                let mut k = 0;
                for chunk in self.conn.transmit().take(MAX_IOV) {
                    iov[k] = IoSlice::new(chunk);
                    k += 1;
                }
                self.stream.write_vectored(&iov[..k])
            };
            let now = self.clock.now();
            match result {
                Ok(0) => return Err(self.write_failed(io::ErrorKind::WriteZero.into())),
                Ok(n) => self.conn.advance_transmit(now, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => return Err(Error::Timeout(Direction::Write)),
                Err(e) => return Err(self.write_failed(e)),
            }
        }
        if !self.socket_closed {
            match self.stream.flush() {
                Ok(()) => {}
                Err(e) if is_timeout(&e) => return Err(Error::Timeout(Direction::Write)),
                Err(e) => return Err(self.write_failed(e)),
            }
        }
        if self.conn.should_close_socket() && self.conn.transmit_len() == 0 {
            self.finish_socket();
        }
        Ok(())
    }

    fn write_failed(&mut self, e: io::Error) -> Error {
        let now = self.clock.now();
        self.eof = true;
        self.conn.handle_eof(now);
        self.conn.abort(now);
        self.finish_socket();
        from_io(e)
    }

    fn finish_socket(&mut self) {
        if !self.socket_closed {
            self.socket_closed = true;
            self.stream.shutdown();
        }
    }

    /// One unit of progress: a due timer, buffered input, or one socket read (bounded by the
    /// next core deadline and `user_deadline`).
    fn step(&mut self, user_deadline: Option<Instant>) -> Result<(), Error> {
        let now = self.clock.now();
        let core_deadline = self.conn.poll_timeout();
        if core_deadline.is_some_and(|t| t <= now) {
            self.conn.handle_timeout(now);
            return Ok(());
        }
        if self.lo < self.hi {
            if !self.conn.can_read() {
                // Backpressure: the caller reads events first.
                return Ok(());
            }
            let n = self.conn.handle_input(now, &self.buf[self.lo..self.hi]);
            self.lo += n;
            if n > 0 {
                return Ok(());
            }
        }
        if self.eof || self.socket_closed {
            if core_deadline.is_none() {
                // Nothing can happen any more: make sure the core knows.
                self.conn.abort(now);
                return Ok(());
            }
            std::thread::sleep(remaining(
                self.clock
                    .instant(core_deadline.unwrap_or(now))
                    .unwrap_or_else(Instant::now),
            ));
            return Ok(());
        }
        let core_instant = core_deadline.and_then(|t| self.clock.instant(t));
        let deadline = match (core_instant, user_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let timeout = deadline.map(remaining);
        let write_timeout = self.write_timeout;
        self.set_socket_timeouts(timeout, write_timeout);
        match self.stream.read(&mut self.buf) {
            Ok(0) => {
                self.eof = true;
                self.conn.handle_eof(self.clock.now());
                Ok(())
            }
            Ok(n) => {
                let now = self.clock.now();
                self.lo = self.conn.handle_input(now, &self.buf[..n]);
                self.hi = n;
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e) if is_timeout(&e) => {
                let now = Instant::now();
                let core_due = core_instant.is_some_and(|d| now >= d);
                if !core_due && user_deadline.is_some_and(|d| now >= d) {
                    Err(Error::Timeout(Direction::Read))
                } else {
                    Ok(())
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::UnexpectedEof
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::ConnectionAborted
                ) =>
            {
                // TLS: the peer closed TCP without close_notify; or the peer reset the
                // connection. Either way the stream has ended: the core reports how.
                self.eof = true;
                self.conn.handle_eof(self.clock.now());
                Ok(())
            }
            Err(e) => {
                let now = self.clock.now();
                self.eof = true;
                self.conn.handle_eof(now);
                self.finish_socket();
                Err(from_io(e))
            }
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
            while let Some(event) = self.conn.poll_event() {
                match event {
                    Event::Message(m) => {
                        // Pongs and close replies produced by the input go out now.
                        let _ = self.flush();
                        return Ok(m);
                    }
                    Event::Closed(info) => {
                        let _ = self.flush();
                        self.closed = Some(info);
                    }
                    _ => {}
                }
            }
            if let Some(info) = self.closed.clone() {
                let _ = self.flush();
                return Err(Error::Closed(info));
            }
            self.flush()?;
            self.step(user_deadline)?;
        }
    }

    /// Starts the closing handshake and waits for it to finish (bounded by `close_timeout`);
    /// messages still arriving meanwhile are discarded. Returns how the connection ended.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<CloseInfo, Error> {
        let now = self.clock.now();
        self.conn.close(now, code, reason).map_err(Error::Command)?;
        loop {
            while let Some(event) = self.conn.poll_event() {
                if let Event::Closed(info) = event {
                    self.closed = Some(info);
                }
            }
            self.flush()?;
            if let Some(info) = self.closed.clone() {
                if self.conn.should_close_socket() || self.socket_closed {
                    self.finish_socket();
                    return Ok(info);
                }
            }
            self.step(None)?;
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
        self.stream.tcp().peer_addr()
    }

    /// The core connection (state, queue sizes, close info).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

impl Drop for WebSocket {
    fn drop(&mut self) {
        self.finish_socket();
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Time left until `deadline`, at least 1 ms (a zero socket timeout is an error).
fn remaining(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1))
}
