//! # wsmp-tokio
//!
//! The tokio adapter of [wsmp](wsmp_core): async WebSocket clients and
//! servers ([`connect`], [`accept`], [`WebSocket`]) and the Redot/Godot 4
//! multiplayer peer ([`MultiplayerPeer`]), over `ws://` and `wss://`
//! (rustls, ring backend: it builds with only a C compiler, no cmake or Go,
//! which aws-lc-rs would need).
//!
//! Each type is a thin loop over the sans-IO core: every protocol rule,
//! limit and timer lives in `wsmp-core`; this crate moves bytes, owns the
//! sockets and the TLS sessions, and sleeps until a socket is ready, a
//! command arrives, or the core's next deadline.
//!
//! ## Client
//! ```no_run
//! # async fn demo() -> Result<(), wsmp_tokio::Error> {
//! use wsmp_tokio::{connect, ClientOptions, Message, CloseCode};
//! let mut ws = connect("ws://127.0.0.1:9001/", ClientOptions::default()).await?;
//! ws.send("hello").await?;
//! if let Some(Message::Text(reply)) = ws.recv().await {
//!     println!("{reply}");
//! }
//! ws.close(CloseCode::NORMAL, "bye").await?;
//! # Ok(()) }
//! ```
//!
//! ## Server
//! ```no_run
//! # async fn demo() -> Result<(), wsmp_tokio::Error> {
//! use wsmp_tokio::{accept, ServerOptions};
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9001").await?;
//! loop {
//!     let (stream, _) = listener.accept().await?;
//!     tokio::spawn(async move {
//!         let Ok(mut ws) = accept(stream, ServerOptions::default()).await else { return };
//!         while let Some(message) = ws.recv().await {
//!             if ws.send(message).await.is_err() { break; }
//!         }
//!     });
//! }
//! # }
//! ```
//!
//! ## Multiplayer
//! See [`MultiplayerPeer`].
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod engine;
mod error;
mod multiplayer;
pub mod rooms;
mod tls;
mod websocket;

pub use error::Error;
pub use multiplayer::{bind, MultiplayerPeer, PeerAdmissionHook, PeerInfo};
pub use rooms::{
    Admit, AdmitFuture, ConnInfo, HandshakeOutcome, IdSpace, Preface, PrefaceDecision, Room,
    RoomRef, RoomServer, RoomServerOptions, Rooms, MAX_COALESCE,
};
pub use tls::{
    AdmissionHook, ClientOptions, Decision, ServerOptions, TlsClientOptions, TlsError,
    TlsServerOptions, DEFAULT_SEND_WATERMARK,
};
pub use websocket::{accept, connect, Message, ReadHalf, WebSocket, WriteHalf};
pub use wsmp_core::connection::{AcceptOptions, CloseCause, CloseInfo, HttpResponse, Request};
pub use wsmp_core::host::{
    ConnectionStatus, Host, HostEvent, HostSendError, PeerId, SendReport, Target,
};
pub use wsmp_core::Timestamp;
pub use wsmp_core::{CloseCode, Config, DeflateConfig};
pub use wsmp_io::{bind_listener, BindAddress};
