//! # wsmp-std
//!
//! The std adapter of wsmp: no async runtime, just `std::net` sockets, rustls for `wss://`,
//! and the sans-IO [`wsmp_core`] underneath.
//!
//! Two ways to use it:
//!
//! - **Blocking single connections** — [`connect`] and [`accept`] give a [`WebSocket`] with
//!   blocking [`send`](WebSocket::send) / [`recv`](WebSocket::recv) /
//!   [`close`](WebSocket::close). Read and write timeouts are reported as
//!   [`Error::Timeout`] and leave the connection usable.
//! - **A poll-driven multiplayer peer** — [`MultiplayerPeer`] is Redot/Godot's
//!   `WebSocketMultiplayerPeer` for game loops: [`poll`](MultiplayerPeer::poll) does all the
//!   I/O that is ready without blocking (accepts, TLS, handshakes, reads, writes, timers), then
//!   the loop reads packets and events.
//!
//! ```no_run
//! use wsmp_std::{MultiplayerPeer, Target};
//! use wsmp_core::HostEvent;
//!
//! let mut peer = MultiplayerPeer::new();
//! peer.create_server(9080, "127.0.0.1", None).unwrap();
//! loop {
//!     peer.poll();
//!     while let Some(event) = peer.poll_signal() {
//!         if let HostEvent::PeerConnected(id) = event {
//!             println!("peer {id} joined");
//!         }
//!     }
//!     while let Some(p) = peer.get_packet() {
//!         // Echo every packet back to its sender.
//!         peer.set_target_peer(Target::Peer(p.from));
//!         let _ = peer.put_packet(p.data);
//!     }
//!     // ... simulate, render ...
//!     std::thread::sleep(std::time::Duration::from_millis(16));
//! }
//! ```
//!
//! Both drive every socket through the adapters' one I/O driver, [`wsmp_io::Driver`] (reads,
//! rustls, backpressure, writes, a bounded close), and bind listeners with its one rule,
//! [`BindAddress`] / [`bind_listener`].
//!
//! TLS options are the engine's `TLSOptions` ([`TlsClientOptions`], [`TlsServerOptions`],
//! from `wsmp-tls`, shared with the tokio adapter).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod blocking;
mod error;
mod peer;

pub use blocking::{accept, connect, ClientOptions, ServerOptions, WebSocket};
pub use error::{Direction, Error, PeerError};
pub use peer::{MultiplayerPeer, Packet};
pub use wsmp_io::{bind_listener, BindAddress};

pub use wsmp_core::{
    CloseCode, Config, ConnectionStatus, DeflateConfig, HostEvent, Message, MessageKind, PeerId,
    Target,
};
pub use wsmp_tls::{TlsClientOptions, TlsError, TlsServerOptions};

use std::time::Instant;
use wsmp_core::Timestamp;

/// A monotonic clock anchored at its creation, giving core [`Timestamp`]s.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    epoch: Instant,
}

impl Clock {
    pub(crate) fn new() -> Clock {
        Clock {
            epoch: Instant::now(),
        }
    }

    pub(crate) fn now(&self) -> Timestamp {
        Timestamp::from_duration(self.epoch.elapsed())
    }

    /// The instant of a core timestamp.
    pub(crate) fn instant(&self, t: Timestamp) -> Option<Instant> {
        self.epoch.checked_add(t.as_duration())
    }
}

/// The OS random source, as the core wants it.
pub(crate) fn os_rng() -> wsmp_core::connection::Rng {
    Box::new(rand_core::UnwrapErr(rand_core::OsRng))
}
