//! Values that cross the [`Connection`](super::Connection) API.

use alloc::string::String;
use alloc::vec::Vec;
use bytes::Bytes;
use core::fmt;

use super::inbound::MessageKind;
use crate::frame::CloseCode;
use crate::handshake::HandshakeError;

/// Which end of the connection this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// We opened the connection and mask our frames.
    Client,
    /// We accepted the connection.
    Server,
}

/// WebSocket ready state (spec/websocket-peer.md §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// The opening handshake is in progress.
    Connecting,
    /// Messages flow both ways.
    Open,
    /// A close frame was sent or received; the closing handshake is running.
    Closing,
    /// Finished; no more input is read and nothing more is sent.
    Closed,
}

/// A complete received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Text or binary.
    pub kind: MessageKind,
    /// The payload (for text, valid UTF-8).
    pub data: Bytes,
}

/// How the server answers an upgrade request it has been shown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AcceptOptions {
    /// Sub-protocol to select; it must be one the client offered. `None`
    /// selects the first of the client's offers found in
    /// `supported_protocols` (spec/websocket-peer.md §2.6), or none.
    pub protocol: Option<String>,
    /// Extra `Name: value` header lines for the 101 response, after
    /// `handshake_headers`.
    pub headers: Vec<String>,
}

/// A plain HTTP response: a refusal of an upgrade, or the answer to a request
/// that is not an upgrade at all. The socket is closed after it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code (e.g. 403, 404, 503, or 200 for a plain answer).
    pub status: u16,
    /// Extra headers (`Content-Length` and `Connection: close` are added).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
}

impl HttpResponse {
    /// A response with `status`, a `text/plain` body and no other header.
    pub fn text(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            headers: alloc::vec![(
                String::from("Content-Type"),
                String::from("text/plain; charset=utf-8")
            )],
            body: Bytes::copy_from_slice(body.as_bytes()),
        }
    }
}

/// An HTTP request received by a server connection, shown to the application
/// when admission is [`Admission::Manual`](super::Admission::Manual).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Request method (`GET`, …).
    pub method: String,
    /// Request target: path with query.
    pub path: String,
    /// Every header line, in order (values decoded lossily as UTF-8).
    pub headers: Vec<(String, String)>,
    /// Sub-protocols the client offered, in its order.
    pub protocols: Vec<String>,
    /// True when this is a valid WebSocket upgrade (RFC 6455 §4.2.1), which
    /// may be accepted; otherwise only an HTTP response is possible.
    pub is_upgrade: bool,
}

impl Request {
    /// The first header called `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The path without its query string.
    pub fn path_only(&self) -> &str {
        self.path.split(['?', '#']).next().unwrap_or("")
    }
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseCause {
    /// The peer started the closing handshake and we answered it.
    RemoteClose,
    /// We started the closing handshake and the peer answered it.
    LocalClose,
    /// We failed the connection because the peer broke the protocol
    /// (the code says how: 1002, 1007, 1009, …).
    ProtocolError,
    /// The opening handshake failed (bad request or bad response).
    Handshake(HandshakeError),
    /// The server answered the request with a plain HTTP response (a refusal
    /// or a non-WebSocket answer) with this status.
    HttpResponse(u16),
    /// The opening handshake did not finish within `handshake_timeout`.
    HandshakeTimeout,
    /// The closing handshake did not finish within `close_timeout`.
    CloseTimeout,
    /// A heartbeat ping went unanswered for a whole interval.
    HeartbeatTimeout,
    /// The transport ended without a closing handshake.
    Eof,
    /// The application aborted the connection.
    Aborted,
}

/// How a connection ended: reported once, with [`Event::Closed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseInfo {
    /// The close code: the peer's on a closing handshake it started or
    /// answered, ours when we failed the connection;
    /// [`CloseCode::NO_STATUS`] (1005) when a close frame carried no code, and
    /// [`CloseCode::ABNORMAL`] (1006) when there was no closing handshake.
    /// RFC 6455 §7.1.5, §7.4.1: 1005 and 1006 are never sent on the wire.
    pub code: CloseCode,
    /// The reason text that came with the code.
    pub reason: String,
    /// True when close frames were both sent and received.
    pub clean: bool,
    /// Why the connection ended.
    pub cause: CloseCause,
}

/// Something that happened on a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Server with manual admission: a request awaits
    /// [`accept`](super::Connection::accept) or
    /// [`respond`](super::Connection::respond).
    Request(alloc::boxed::Box<Request>),
    /// The opening handshake completed.
    Open {
        /// The selected sub-protocol, if any.
        protocol: Option<String>,
    },
    /// A complete message.
    Message(Message),
    /// A pong arrived (solicited or not), with its payload.
    Pong(Bytes),
    /// The connection is closed; emitted exactly once.
    Closed(CloseInfo),
}

/// Why a message could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendErrorKind {
    /// The connection is not open, or a close frame is already queued.
    NotOpen,
    /// `max_queued_packets` messages or `outbound_buffer_size` bytes are
    /// already queued; retry after the socket drains.
    QueueFull,
    /// The message alone is larger than `outbound_buffer_size`: it can never
    /// be sent.
    TooLarge,
    /// A pre-encoded unmasked frame was given to a client connection, which
    /// must mask every frame (RFC 6455 §5.3).
    WrongRole,
}

impl fmt::Display for SendErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendErrorKind::NotOpen => "connection is not open",
            SendErrorKind::QueueFull => "outbound queue is full",
            SendErrorKind::TooLarge => "message is larger than outbound_buffer_size",
            SendErrorKind::WrongRole => "client frames must be masked one by one",
        })
    }
}

impl core::error::Error for SendErrorKind {}

/// A message that was not queued; the payload is handed back unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    /// Why.
    pub kind: SendErrorKind,
    /// The payload that was not sent.
    pub payload: Bytes,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({} byte message not sent)",
            self.kind,
            self.payload.len()
        )
    }
}

impl core::error::Error for SendError {}

/// Misuse of a connection command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandError {
    /// The connection is not in a state where this is possible.
    InvalidState,
    /// The control slot for this frame is taken (one ping and one pong may
    /// wait at a time); retry after the socket drains.
    QueueFull,
    /// A control payload over 125 bytes or a close reason over 123 bytes
    /// (RFC 6455 §5.5).
    PayloadTooLong,
    /// A close code that may not be sent (RFC 6455 §7.4: e.g. 1005, 1006, 1015).
    InvalidCloseCode,
    /// `accept` on a request that is not a valid WebSocket upgrade.
    NotAnUpgrade,
    /// `accept` with a sub-protocol the client did not offer (RFC 6455 §4.2.2).
    ProtocolNotOffered,
    /// The HTTP response would not fit the limit (4096 bytes for a 101).
    ResponseTooLarge,
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CommandError::InvalidState => "not possible in the connection's current state",
            CommandError::QueueFull => "a control frame of this kind is already queued",
            CommandError::PayloadTooLong => "control payload or close reason too long",
            CommandError::InvalidCloseCode => "close code may not be sent",
            CommandError::NotAnUpgrade => "the request is not a WebSocket upgrade",
            CommandError::ProtocolNotOffered => "the client did not offer that sub-protocol",
            CommandError::ResponseTooLarge => "the HTTP response is too large",
        })
    }
}

impl core::error::Error for CommandError {}
