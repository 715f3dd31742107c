//! Errors of the tokio adapter.

use std::fmt;
use std::io;

use wsmp_core::connection::{ClientError, CloseInfo, CommandError, SendErrorKind};
use wsmp_tls::TlsError;

/// Everything that can go wrong in the tokio adapter.
#[derive(Debug)]
pub enum Error {
    /// The URL or configuration is unusable.
    Client(ClientError),
    /// TLS configuration could not be built.
    TlsConfig(TlsError),
    /// Socket I/O failed (TLS failures such as an invalid certificate, a
    /// wrong host name or an expired certificate arrive here as
    /// `InvalidData` with the rustls error inside).
    Io(io::Error),
    /// The opening handshake failed or timed out; the close info says why.
    Handshake(CloseInfo),
    /// The connection is closed.
    Closed,
    /// A message could not be queued.
    Send(SendErrorKind),
    /// A command was misused.
    Command(CommandError),
    /// Host name resolution found no address.
    Resolve(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Client(e) => write!(f, "{e}"),
            Error::TlsConfig(e) => write!(f, "TLS configuration: {e}"),
            Error::Io(e) => write!(f, "I/O error: {e}"),
            Error::Handshake(info) => write!(f, "opening handshake failed: {:?}", info.cause),
            Error::Closed => f.write_str("connection closed"),
            Error::Send(e) => write!(f, "send failed: {e}"),
            Error::Command(e) => write!(f, "{e}"),
            Error::Resolve(host) => write!(f, "could not resolve {host}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            Error::TlsConfig(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}
