//! Error types of the std adapter.

use std::fmt;
use std::io;

use wsmp_core::connection::{ClientError, CloseCause, CloseInfo, CommandError, SendError};
use wsmp_core::ConfigError;
use wsmp_tls::TlsError;

/// Which way a timed-out operation was going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Reading (`recv`).
    Read,
    /// Writing (`send`, `close`).
    Write,
}

/// Errors of the blocking [`WebSocket`](crate::WebSocket) API.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The URL or the configuration cannot be used.
    Client(ClientError),
    /// The configuration is invalid.
    Config(ConfigError),
    /// The TLS options could not be turned into a configuration.
    TlsConfig(TlsError),
    /// The TLS session failed (certificate not trusted, wrong host name, bad record, ...).
    Tls(rustls::Error),
    /// The host name could not be resolved.
    Resolve {
        /// The host.
        host: String,
        /// Why.
        error: io::Error,
    },
    /// No address of the host accepted a TCP connection.
    Connect(io::Error),
    /// The opening handshake failed; `cause` says how (timeout, bad response, HTTP status, ...).
    Handshake(CloseInfo),
    /// A read or write timeout set by the caller expired. Nothing was lost: the connection is
    /// still usable and the call may be retried.
    Timeout(Direction),
    /// The connection is closed (after a closing handshake, a failure or end of stream).
    Closed(CloseInfo),
    /// The message was not queued (queue full, too large, not open); the payload is inside.
    Send(SendError),
    /// A control command was refused.
    Command(CommandError),
    /// Another I/O error on the socket.
    Io(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Client(e) => write!(f, "cannot create the client: {e}"),
            Error::Config(e) => write!(f, "invalid configuration: {e}"),
            Error::TlsConfig(e) => write!(f, "TLS configuration: {e}"),
            Error::Tls(e) => write!(f, "TLS error: {e}"),
            Error::Resolve { host, error } => write!(f, "cannot resolve {host}: {error}"),
            Error::Connect(e) => write!(f, "cannot connect: {e}"),
            Error::Handshake(info) => write!(f, "opening handshake failed: {}", cause(info)),
            Error::Timeout(Direction::Read) => f.write_str("read timed out"),
            Error::Timeout(Direction::Write) => f.write_str("write timed out"),
            Error::Closed(info) => write!(
                f,
                "connection closed ({}, code {}{}{})",
                cause(info),
                info.code.0,
                if info.reason.is_empty() { "" } else { ": " },
                info.reason
            ),
            Error::Send(e) => write!(f, "send failed: {e}"),
            Error::Command(e) => write!(f, "command failed: {e}"),
            Error::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

/// A short description of a close cause.
pub(crate) fn cause(info: &CloseInfo) -> String {
    match &info.cause {
        CloseCause::RemoteClose => "closed by the peer".into(),
        CloseCause::LocalClose => "closed by us".into(),
        CloseCause::ProtocolError => "protocol error".into(),
        CloseCause::Handshake(e) => format!("bad handshake: {e:?}"),
        CloseCause::HttpResponse(status) => format!("HTTP status {status}"),
        CloseCause::HandshakeTimeout => "handshake timed out".into(),
        CloseCause::CloseTimeout => "closing handshake timed out".into(),
        CloseCause::HeartbeatTimeout => "heartbeat timed out".into(),
        CloseCause::Eof => "connection lost".into(),
        CloseCause::Aborted => "aborted".into(),
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Client(e) => Some(e),
            Error::Config(e) => Some(e),
            Error::TlsConfig(e) => Some(e),
            Error::Tls(e) => Some(e),
            Error::Resolve { error, .. } => Some(error),
            Error::Connect(e) | Error::Io(e) => Some(e),
            Error::Send(e) => Some(e),
            Error::Command(e) => Some(e),
            _ => None,
        }
    }
}

/// Errors of [`MultiplayerPeer::create_server`](crate::MultiplayerPeer::create_server) and
/// [`create_client`](crate::MultiplayerPeer::create_client) (spec/websocket-peer.md §3.3, §3.4).
#[derive(Debug)]
#[non_exhaustive]
pub enum PeerError {
    /// The peer is not DISCONNECTED (the engine's ERR_ALREADY_IN_USE).
    AlreadyInUse,
    /// The bind address is neither an IP address nor `*` (ERR_INVALID_PARAMETER).
    InvalidBindAddress(String),
    /// The listening socket could not be created or bound (ERR_CANT_CREATE / ERR_ALREADY_IN_USE).
    Bind(io::Error),
    /// The URL or configuration cannot be used for a client.
    Client(ClientError),
    /// The configuration is invalid.
    Config(ConfigError),
    /// The TLS options could not be turned into a configuration.
    Tls(TlsError),
    /// The readiness poller could not be created.
    Io(io::Error),
}

impl fmt::Display for PeerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerError::AlreadyInUse => f.write_str("the peer is already in use (not disconnected)"),
            PeerError::InvalidBindAddress(a) => write!(f, "invalid bind address {a:?}"),
            PeerError::Bind(e) => write!(f, "cannot listen: {e}"),
            PeerError::Client(e) => write!(f, "cannot create the client: {e}"),
            PeerError::Config(e) => write!(f, "invalid configuration: {e}"),
            PeerError::Tls(e) => write!(f, "TLS configuration: {e}"),
            PeerError::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

impl std::error::Error for PeerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PeerError::Bind(e) | PeerError::Io(e) => Some(e),
            PeerError::Client(e) => Some(e),
            PeerError::Config(e) => Some(e),
            PeerError::Tls(e) => Some(e),
            _ => None,
        }
    }
}

/// Maps a socket error: rustls errors surface as `InvalidData` wrapping a `rustls::Error`.
pub(crate) fn from_io(e: io::Error) -> Error {
    if e.get_ref()
        .and_then(|r| r.downcast_ref::<rustls::Error>())
        .is_some()
    {
        if let Some(inner) = e.into_inner() {
            if let Ok(tls) = inner.downcast::<rustls::Error>() {
                return Error::Tls(*tls);
            }
        }
        return Error::Io(io::Error::other("TLS error"));
    }
    Error::Io(e)
}
