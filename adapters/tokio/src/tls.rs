//! Options of client and server connections, and the TLS session setup.

use std::sync::Arc;

use wsmp_core::connection::{AcceptOptions, HttpResponse, Request};
use wsmp_core::Config;
pub use wsmp_tls::{TlsClientOptions, TlsError, TlsServerOptions};

use crate::error::Error;

/// Default of [`ClientOptions::send_watermark`] and
/// [`ServerOptions::send_watermark`].
pub const DEFAULT_SEND_WATERMARK: usize = 32 * 1024;

/// Options of [`connect`](crate::connect).
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Limits, timers, sub-protocols and extra headers.
    pub config: Config,
    /// TLS for `wss://` (default: verify against the built-in roots).
    pub tls: Option<TlsClientOptions>,
    /// `send`/`feed` wait while more than this many payload bytes are queued
    /// for the socket (default [`DEFAULT_SEND_WATERMARK`]); one message may
    /// always be queued on top.
    pub send_watermark: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            config: Config::default(),
            tls: None,
            send_watermark: DEFAULT_SEND_WATERMARK,
        }
    }
}

/// What an admission hook decides for one HTTP request.
#[derive(Debug, Clone)]
pub enum Decision {
    /// Accept the WebSocket upgrade.
    Accept(AcceptOptions),
    /// Answer with this HTTP response and close (a refusal, or a plain HTTP
    /// answer to a request that is not an upgrade).
    Respond(HttpResponse),
}

/// The admission hook: sees every request (path, headers, offered
/// sub-protocols) before anything is answered.
pub type AdmissionHook = Arc<dyn Fn(&Request) -> Decision + Send + Sync>;

/// Options of [`accept`](crate::accept).
#[derive(Clone)]
pub struct ServerOptions {
    /// Limits, timers, sub-protocols and extra headers.
    pub config: Config,
    /// TLS for `wss://`.
    pub tls: Option<TlsServerOptions>,
    /// Admission hook; without one, valid upgrades are accepted and
    /// anything else gets 400.
    pub admission: Option<AdmissionHook>,
    /// `send`/`feed` wait while more than this many payload bytes are queued
    /// for the socket (default [`DEFAULT_SEND_WATERMARK`]); one message may
    /// always be queued on top.
    pub send_watermark: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            config: Config::default(),
            tls: None,
            admission: None,
            send_watermark: DEFAULT_SEND_WATERMARK,
        }
    }
}

impl std::fmt::Debug for ServerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerOptions")
            .field("config", &self.config)
            .field("tls", &self.tls.is_some())
            .field("admission", &self.admission.is_some())
            .field("send_watermark", &self.send_watermark)
            .finish()
    }
}

/// A rustls client session for `host` (the URL's host).
pub(crate) fn client_tls(
    options: Option<&TlsClientOptions>,
    host: &str,
) -> Result<Box<rustls::Connection>, Error> {
    let default = TlsClientOptions::client();
    let options = options.unwrap_or(&default);
    let (config, name) = options.build(host).map_err(Error::TlsConfig)?;
    let conn = rustls::ClientConnection::new(config, name)
        .map_err(|e| Error::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
    Ok(Box::new(rustls::Connection::Client(conn)))
}

/// A rustls server session.
pub(crate) fn server_tls(options: &TlsServerOptions) -> Result<Box<rustls::Connection>, Error> {
    let conn = rustls::ServerConnection::new(options.config())
        .map_err(|e| Error::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
    Ok(Box::new(rustls::Connection::Server(conn)))
}
