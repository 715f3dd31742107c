//! Single WebSocket connections: [`connect`], [`accept`], [`WebSocket`] and
//! its halves.
//!
//! # Cancellation safety
//!
//! [`WebSocket::recv`], [`WebSocket::send`] (and the same methods of the
//! halves) are cancellation-safe: protocol state only changes inside short,
//! non-awaiting critical sections, and the futures only await socket
//! readiness or a timer. Dropping `recv` (e.g. when another branch of
//! `tokio::select!` wins) loses no message: a message is only taken from the
//! connection when `recv` returns it. Dropping `send` either leaves the
//! message unsent (dropped while waiting for room in a full queue: nothing
//! changed) or leaves it queued, to be written by the next call that
//! flushes (`send`, `recv`, `flush`, `close`).
//!
//! # Timers
//!
//! Heartbeat and close-handshake timers run while `recv` (or `close`) is
//! being awaited.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use tokio::net::TcpStream;
use wsmp_core::connection::{
    AcceptOptions, Admission, CloseInfo, Connection, Event, HttpResponse, MessageKind,
    SendErrorKind,
};
use wsmp_core::{CloseCode, Timestamp};

use wsmp_io::{Driver, Want};

use crate::engine::{self, Clock};
use crate::error::Error;
use crate::tls::{client_tls, server_tls, ClientOptions, Decision, ServerOptions};

/// A WebSocket message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Bytes),
}

impl Message {
    /// The payload bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Message::Text(s) => s.as_bytes(),
            Message::Binary(b) => b,
        }
    }

    /// Payload length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// True for an empty payload.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn into_parts(self) -> (MessageKind, Bytes) {
        match self {
            Message::Text(s) => (MessageKind::Text, Bytes::from(s)),
            Message::Binary(b) => (MessageKind::Binary, b),
        }
    }

    fn from_parts(kind: MessageKind, data: Bytes) -> Message {
        match kind {
            // The core validated the UTF-8 (RFC 6455 §8.1); `Vec::from(Bytes)` does not copy.
            MessageKind::Text => match String::from_utf8(Vec::from(data)) {
                Ok(s) => Message::Text(s),
                Err(e) => Message::Binary(Bytes::from(e.into_bytes())),
            },
            MessageKind::Binary => Message::Binary(data),
        }
    }
}

impl From<String> for Message {
    fn from(s: String) -> Self {
        Message::Text(s)
    }
}

impl From<&str> for Message {
    fn from(s: &str) -> Self {
        Message::Text(s.to_owned())
    }
}

impl From<Bytes> for Message {
    fn from(b: Bytes) -> Self {
        Message::Binary(b)
    }
}

impl From<Vec<u8>> for Message {
    fn from(b: Vec<u8>) -> Self {
        Message::Binary(Bytes::from(b))
    }
}

struct State {
    conn: Connection,
    driver: Driver,
    error: Option<io::Error>,
    /// The time of the last step: what `send`/`feed` give the connection
    /// (it only keeps its clock monotonic there), so queueing a message
    /// reads no clock (`clock_gettime` was 5 % of the echo's CPU with 64
    /// messages in flight).
    now: Timestamp,
}

pub(crate) struct Shared {
    sock: TcpStream,
    state: Mutex<State>,
    clock: Clock,
    /// `send` / `feed` wait while more than this many payload bytes are
    /// queued for the socket.
    watermark: usize,
}

/// Takes the next message, skipping other events (close details stay
/// available through `close_info`).
fn next_message(conn: &mut Connection) -> Option<Message> {
    next_message_counted(conn).0
}

/// [`next_message`], and whether any event was taken (for
/// [`Want::after_events`]).
fn next_message_counted(conn: &mut Connection) -> (Option<Message>, bool) {
    let mut took = false;
    while let Some(event) = conn.poll_event() {
        took = true;
        if let Event::Message(m) = event {
            return (Some(Message::from_parts(m.kind, m.data)), true);
        }
    }
    (None, took)
}

impl Shared {
    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One non-blocking step (timers, writes, reads); returns what to wait for.
    fn step(&self, st: &mut State) -> Want {
        let now = self.now();
        let State {
            conn,
            driver,
            error,
            now: last,
        } = st;
        *last = now;
        let want = driver.step(&self.sock, conn, now);
        if let Some(e) = driver.take_error() {
            tracing::debug!(error = %e, "websocket i/o error");
            error.get_or_insert(e);
        }
        want
    }

    /// Writes what is queued without reading (a sender waiting for room).
    fn flush_step(&self, st: &mut State) -> Want {
        let now = self.now();
        let State {
            conn,
            driver,
            error,
            now: last,
        } = st;
        *last = now;
        let want = driver.flush(&self.sock, conn, now);
        if let Some(e) = driver.take_error() {
            error.get_or_insert(e);
        }
        want
    }

    /// Waits for what `want` asks, or its deadline.
    async fn wait(&self, want: Want) {
        if want.again {
            tokio::task::yield_now().await;
            return;
        }
        tokio::select! {
            r = self.sock.readable(), if want.read => { let _ = r; }
            r = self.sock.writable(), if want.write => { let _ = r; }
            () = engine::sleep_until(self.clock, want.deadline) => {}
        }
    }

    async fn recv(&self) -> Option<Message> {
        loop {
            let want = {
                let mut st = self.lock();
                if let Some(m) = next_message(&mut st.conn) {
                    return Some(m);
                }
                let want = self.step(&mut st);
                let (message, took) = next_message_counted(&mut st.conn);
                if let Some(m) = message {
                    return Some(m);
                }
                if want.done {
                    return None;
                }
                // Taken events make it `again`: `wait` yields, then steps.
                want.after_events(took)
            };
            if !want.read && !want.write && !want.again && want.deadline.is_none() {
                return None;
            }
            self.wait(want).await;
        }
    }

    /// A message if one can be had without waiting (after one
    /// non-blocking read/write step).
    fn try_recv(&self) -> Option<Message> {
        let mut st = self.lock();
        if let Some(m) = next_message(&mut st.conn) {
            return Some(m);
        }
        let _ = self.step(&mut st);
        next_message(&mut st.conn)
    }

    async fn send(&self, message: Message) -> Result<(), Error> {
        self.queue(message).await?;
        self.flush().await
    }

    /// Queues one message, first waiting while more than the watermark is
    /// queued for the socket (or the queue is full). Waiting writes but does
    /// not read: a peer that does not read holds this sender back, and its
    /// input waits in the kernel (backpressure), so an echo of a stalled
    /// reader holds about one message, not the whole outbound budget.
    async fn queue(&self, message: Message) -> Result<(), Error> {
        let (kind, mut payload) = message.into_parts();
        loop {
            let want = {
                let mut st = self.lock();
                if st.conn.buffered_amount() <= self.watermark {
                    let now = st.now;
                    match st.conn.send(now, kind, payload) {
                        Ok(()) => return Ok(()),
                        // Wait for room (the caller's payload is kept, nothing queued).
                        Err(e) if e.kind == SendErrorKind::QueueFull => payload = e.payload,
                        Err(e) => return Err(Error::Send(e.kind)),
                    }
                }
                let want = self.flush_step(&mut st);
                if want.done {
                    return Err(self.failure(&mut st));
                }
                if st.conn.buffered_amount() <= self.watermark {
                    continue;
                }
                want
            };
            self.wait(Want {
                read: false,
                ..want
            })
            .await;
        }
    }

    fn failure(&self, st: &mut State) -> Error {
        st.error.take().map_or(Error::Closed, Error::Io)
    }

    async fn flush(&self) -> Result<(), Error> {
        loop {
            let want = {
                let mut st = self.lock();
                let want = self.flush_step(&mut st);
                if st.error.is_some() {
                    return Err(self.failure(&mut st));
                }
                if !want.write || want.done {
                    return Ok(());
                }
                want
            };
            self.wait(Want {
                read: false,
                ..want
            })
            .await;
        }
    }

    async fn close(&self, code: CloseCode, reason: &str) -> Result<Option<CloseInfo>, Error> {
        {
            let mut st = self.lock();
            let now = self.now();
            st.conn.close(now, code, reason).map_err(Error::Command)?;
        }
        // Keep reading (discarding messages) until the closing handshake ends;
        // close_timeout bounds it.
        while self.recv().await.is_some() {}
        Ok(self.lock().conn.close_info().cloned())
    }

    /// Drives the opening handshake to OPEN (the admission `hook` decides
    /// on a server's request).
    async fn handshake(&self, hook: Option<&crate::tls::AdmissionHook>) -> Result<(), Error> {
        // The connection is owned by this task until it is open: move it out
        // of the mutex for the handshake (nobody else can reach it yet).
        let (mut conn, mut driver) = {
            let mut st = self.lock();
            let conn = std::mem::replace(&mut st.conn, placeholder());
            let driver = std::mem::replace(&mut st.driver, Driver::new(None, Default::default()));
            (conn, driver)
        };
        let opened = loop {
            match engine::handshake(&self.sock, &mut driver, &mut conn, self.clock).await {
                engine::HandshakeStep::Opened => break true,
                engine::HandshakeStep::Ended => break false,
                engine::HandshakeStep::Request(request) => {
                    let now = self.now();
                    let decision = match hook {
                        Some(hook) => hook(&request),
                        None => Decision::Accept(AcceptOptions::default()),
                    };
                    let result = match decision {
                        Decision::Accept(opts) => conn.accept(now, opts),
                        Decision::Respond(resp) => conn.respond(now, resp),
                    };
                    if let Err(e) = result {
                        let _ = conn.respond(now, HttpResponse::text(500, "internal error\n"));
                        tracing::warn!(error = %e, "admission decision could not be applied");
                    }
                }
            }
        };
        if opened {
            // Write the 101 now: the caller may drop the connection at once.
            let _ = driver.flush(&self.sock, &mut conn, self.now());
        }
        let error = driver.take_error();
        let info = conn.close_info().cloned();
        let mut st = self.lock();
        st.conn = conn;
        st.driver = driver;
        if opened {
            st.error = error;
            return Ok(());
        }
        Err(match (info, error) {
            (_, Some(e)) => Error::Io(e),
            (Some(info), None) => Error::Handshake(info),
            (None, None) => Error::Closed,
        })
    }
}

/// A stand-in connection while the real one is out of the mutex.
fn placeholder() -> Connection {
    Connection::server(
        Arc::new(wsmp_core::Config::default()),
        Timestamp::ZERO,
        Admission::Automatic,
    )
    .expect("the default configuration is valid")
}

/// A WebSocket connection (client or server).
///
/// Use [`recv`](Self::recv) / [`send`](Self::send) / [`close`](Self::close)
/// directly, split it with [`split`](Self::split) to read and write from
/// different tasks, or use it as a `futures` `Stream` + `Sink` of
/// [`Message`]s. See the [module docs](self) for cancellation safety.
pub struct WebSocket {
    shared: Arc<Shared>,
    poll: Mutex<PollState>,
}

impl std::fmt::Debug for WebSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocket").finish_non_exhaustive()
    }
}

/// The receiving half of a split [`WebSocket`].
#[derive(Debug)]
pub struct ReadHalf {
    inner: WebSocket,
}

/// The sending half of a split [`WebSocket`].
#[derive(Debug)]
pub struct WriteHalf {
    inner: WebSocket,
}

impl WebSocket {
    fn new(
        sock: TcpStream,
        conn: Connection,
        tls: Option<Box<rustls::Connection>>,
        clock: Clock,
        watermark: usize,
    ) -> WebSocket {
        let linger = conn.config().close_timeout;
        WebSocket {
            shared: Arc::new(Shared {
                sock,
                state: Mutex::new(State {
                    conn,
                    driver: Driver::new(tls, linger),
                    error: None,
                    now: clock.now(),
                }),
                clock,
                watermark,
            }),
            poll: Mutex::default(),
        }
    }

    /// The next message, or `None` once the connection is closed (see
    /// [`close_info`](Self::close_info) for how it ended). Cancellation-safe.
    pub async fn recv(&mut self) -> Option<Message> {
        self.shared.recv().await
    }

    /// Sends one message (one unfragmented frame), waiting for room while
    /// more than the send watermark ([`ServerOptions::send_watermark`],
    /// [`ClientOptions::send_watermark`]; 32 KiB by default) is queued, and
    /// until it is written. Cancellation-safe.
    pub async fn send(&mut self, message: impl Into<Message>) -> Result<(), Error> {
        self.shared.send(message.into()).await
    }

    /// A message that is available without waiting, if any (reads what the
    /// socket has without blocking). Useful to batch replies: receive with
    /// [`recv`](Self::recv), drain with `try_recv`, answer with
    /// [`feed`](Self::feed), then [`flush`](Self::flush) once.
    pub fn try_recv(&mut self) -> Option<Message> {
        self.shared.try_recv()
    }

    /// Queues a message without writing it yet, waiting only while more than
    /// the send watermark is queued (or the queue is full);
    /// [`flush`](Self::flush) (or any later `send`, `recv`) writes it. Lets
    /// many messages go out in one vectored write. Cancellation-safe like
    /// `send`.
    pub async fn feed(&mut self, message: impl Into<Message>) -> Result<(), Error> {
        self.shared.queue(message.into()).await
    }

    /// Sends a ping with `payload` (≤ 125 bytes).
    pub async fn ping(&mut self, payload: &[u8]) -> Result<(), Error> {
        {
            let mut st = self.shared.lock();
            let now = self.shared.now();
            st.conn.ping(now, payload).map_err(Error::Command)?;
        }
        self.shared.flush().await
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<(), Error> {
        self.shared.flush().await
    }

    /// Starts the closing handshake and waits for it to finish (bounded by
    /// `close_timeout`); returns how the connection ended.
    pub async fn close(
        &mut self,
        code: CloseCode,
        reason: &str,
    ) -> Result<Option<CloseInfo>, Error> {
        self.shared.close(code, reason).await
    }

    /// How the connection ended, once it has.
    pub fn close_info(&self) -> Option<CloseInfo> {
        self.shared.lock().conn.close_info().cloned()
    }

    /// The negotiated sub-protocol.
    pub fn protocol(&self) -> Option<String> {
        self.shared
            .lock()
            .conn
            .selected_protocol()
            .map(str::to_owned)
    }

    /// The permessage-deflate parameters in force, if it was negotiated
    /// (`Config::permessage_deflate`, RFC 7692).
    pub fn permessage_deflate(&self) -> Option<wsmp_core::DeflateParams> {
        self.shared.lock().conn.permessage_deflate()
    }

    /// Messages (received, sent) compressed with permessage-deflate so far.
    pub fn compressed_messages(&self) -> (u64, u64) {
        self.shared.lock().conn.compressed_messages()
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.shared.sock.peer_addr()
    }

    /// Splits into a read half and a write half, usable from different tasks.
    pub fn split(self) -> (ReadHalf, WriteHalf) {
        let other = WebSocket {
            shared: self.shared.clone(),
            poll: Mutex::default(),
        };
        (ReadHalf { inner: self }, WriteHalf { inner: other })
    }
}

impl ReadHalf {
    /// See [`WebSocket::recv`].
    pub async fn recv(&mut self) -> Option<Message> {
        self.inner.recv().await
    }

    /// See [`WebSocket::close_info`].
    pub fn close_info(&self) -> Option<CloseInfo> {
        self.inner.close_info()
    }
}

impl WriteHalf {
    /// See [`WebSocket::send`].
    pub async fn send(&mut self, message: impl Into<Message>) -> Result<(), Error> {
        self.inner.send(message).await
    }

    /// See [`WebSocket::ping`].
    pub async fn ping(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.inner.ping(payload).await
    }

    /// Starts the closing handshake (the read half sees the end). Waits
    /// until the close frame is written.
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        {
            let mut st = self.inner.shared.lock();
            let now = self.inner.shared.now();
            st.conn.close(now, code, reason).map_err(Error::Command)?;
        }
        self.inner.shared.flush().await
    }
}

// ----- futures Stream / Sink ------------------------------------------------

/// A boxed, owned operation kept across polls of the Stream/Sink impls.
type BoxFut<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// Operations in progress for the `Stream`/`Sink` impls. They must live
/// across polls: a readiness or timer future that is dropped after
/// returning `Pending` deregisters its waker, and the task would never be
/// woken again. (Behind a `Mutex` only to keep `WebSocket: Sync`; it is
/// reached through `&mut self`, so it is never contended.)
#[derive(Default)]
struct PollState {
    /// `poll_next`: a `recv` in progress.
    recv: Option<BoxFut<Option<Message>>>,
    /// `start_send`: the item being queued (waiting for room).
    queue: Option<BoxFut<Result<(), Error>>>,
    /// `poll_flush` / `poll_close`: a flush (after queueing the close frame) in progress.
    flush: Option<BoxFut<Result<(), Error>>>,
}

impl WebSocket {
    fn poll_state(&mut self) -> &mut PollState {
        self.poll.get_mut().unwrap_or_else(|p| p.into_inner())
    }

    /// Drives the queued `start_send` item until it is queued.
    fn poll_queue(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let st = self.poll_state();
        let Some(fut) = st.queue.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let r = std::task::ready!(fut.as_mut().poll(cx));
        st.queue = None;
        Poll::Ready(r)
    }

    /// Drives a flush (started if none is running) to completion.
    fn poll_flush_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        std::task::ready!(self.poll_queue(cx))?;
        let shared = self.shared.clone();
        let st = self.poll_state();
        let fut = st
            .flush
            .get_or_insert_with(|| Box::pin(async move { shared.flush().await }));
        let r = std::task::ready!(fut.as_mut().poll(cx));
        st.flush = None;
        Poll::Ready(r)
    }
}

impl futures_core::Stream for WebSocket {
    type Item = Message;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        // `recv` is cancellation-safe, so keeping one in progress across
        // polls (and dropping it with the stream) loses nothing.
        let shared = self.shared.clone();
        let st = self.poll_state();
        let fut = st
            .recv
            .get_or_insert_with(|| Box::pin(async move { shared.recv().await }));
        let r = std::task::ready!(fut.as_mut().poll(cx));
        st.recv = None;
        Poll::Ready(r)
    }
}

impl futures_core::Stream for ReadHalf {
    type Item = Message;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        Pin::new(&mut self.inner).poll_next(cx)
    }
}

/// The `Sink` queues each item (waiting for room while the outbound queue
/// is full, before accepting the next one) and writes on `poll_flush`.
/// `poll_close` sends a close frame (1000) and flushes it; the closing
/// handshake then completes while the stream side is read (until it ends),
/// so messages already on their way are not lost.
impl futures_sink::Sink<Message> for WebSocket {
    type Error = Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.poll_queue(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, item: Message) -> Result<(), Error> {
        let shared = self.shared.clone();
        // Lazy: queued by the next poll_ready / poll_flush / poll_close.
        self.poll_state().queue = Some(Box::pin(async move { shared.queue(item).await }));
        Ok(())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.poll_flush_inner(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        std::task::ready!(self.poll_queue(cx))?;
        if self.poll_state().flush.is_none() {
            // Already closing or closed: nothing happens (idempotent).
            let mut st = self.shared.lock();
            let now = self.shared.now();
            st.conn
                .close(now, CloseCode::NORMAL, "")
                .map_err(Error::Command)?;
        }
        match std::task::ready!(self.poll_flush_inner(cx)) {
            // The connection already ended: the sink is closed all the same.
            Err(Error::Closed) => Poll::Ready(Ok(())),
            r => Poll::Ready(r),
        }
    }
}

impl futures_sink::Sink<Message> for WriteHalf {
    type Error = Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Pin::new(&mut self.inner).poll_ready(cx)
    }
    fn start_send(mut self: Pin<&mut Self>, item: Message) -> Result<(), Error> {
        Pin::new(&mut self.inner).start_send(item)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

// ----- connect / accept -------------------------------------------------------

fn os_rng() -> wsmp_core::connection::Rng {
    Box::new(rand_core::UnwrapErr(rand_core::OsRng))
}

/// Opens a TCP connection to `host:port`, trying every resolved address in
/// order (spec/websocket-peer.md §2.5), with `TCP_NODELAY` on.
pub(crate) async fn tcp_connect(host: &str, port: u16) -> Result<TcpStream, Error> {
    let mut last = None;
    let addrs = tokio::net::lookup_host((host, port)).await?;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(sock) => {
                wsmp_io::tune_stream(wsmp_io::Socket::sock_ref(&sock))?;
                return Ok(sock);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.map_or_else(|| Error::Resolve(host.to_owned()), Error::Io))
}

/// Connects to a `ws://` or `wss://` URL and completes the opening
/// handshake (bounded by `handshake_timeout`, which covers DNS, TCP, TLS
/// and the upgrade).
pub async fn connect(url: &str, options: ClientOptions) -> Result<WebSocket, Error> {
    let clock = Clock(Instant::now());
    let parsed = wsmp_core::handshake::WsUrl::parse(url)
        .map_err(|e| Error::Client(wsmp_core::connection::ClientError::Url(e)))?;
    let timeout = options.config.handshake_timeout;
    let conn = Connection::client(
        Arc::new(options.config.clone()),
        url,
        Timestamp::ZERO,
        os_rng(),
    )
    .map_err(Error::Client)?;
    let fut = async {
        let sock = tcp_connect(parsed.host, parsed.port).await?;
        let tls = if parsed.secure {
            Some(client_tls(options.tls.as_ref(), parsed.host)?)
        } else {
            None
        };
        let ws = WebSocket::new(sock, conn, tls, clock, options.send_watermark);
        ws.shared.handshake(None).await?;
        Ok(ws)
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(Error::Io(io::Error::new(
            io::ErrorKind::TimedOut,
            "opening handshake timed out",
        ))),
    }
}

/// Runs the server side of the opening handshake on an accepted TCP stream
/// (TLS first when `options.tls` is set). The handshake timer started when
/// this is called; call it right after `TcpListener::accept`.
pub async fn accept(stream: TcpStream, options: ServerOptions) -> Result<WebSocket, Error> {
    let clock = Clock(Instant::now());
    wsmp_io::tune_stream(wsmp_io::Socket::sock_ref(&stream))?;
    let admission = if options.admission.is_some() {
        Admission::Manual
    } else {
        Admission::Automatic
    };
    let conn = Connection::server(Arc::new(options.config.clone()), Timestamp::ZERO, admission)
        .map_err(|e| Error::Client(wsmp_core::connection::ClientError::Config(e)))?;
    let tls = match &options.tls {
        Some(t) => Some(server_tls(t)?),
        None => None,
    };
    let ws = WebSocket::new(stream, conn, tls, clock, options.send_watermark);
    ws.shared.handshake(options.admission.as_ref()).await?;
    Ok(ws)
}
