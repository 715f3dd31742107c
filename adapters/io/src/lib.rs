//! # wsmp-io
//!
//! The one I/O driver of the wsmp adapters: it moves bytes between a
//! non-blocking socket (plain TCP, or rustls over TCP) and the sans-IO core
//! ([`Connection`](wsmp_core::Connection), or one peer of a
//! [`Host`](wsmp_core::Host)). `wsmp-tokio` and `wsmp-std` both drive every
//! socket through it, so socket reads and writes, TLS, backpressure and
//! closing are written and tested once.
//!
//! ## The loop
//!
//! [`Driver::step`] runs without blocking. Each round it flushes TLS
//! ciphertext, reads what the socket has (into a per-thread scratch buffer:
//! an idle connection holds no read buffer), then makes one
//! [`Endpoint::exchange`] with the core — report what was written, feed the
//! input, lease the next output — and writes the leased frames (one vectored
//! write, or one TLS record run). It returns a [`Want`]: what to wait for
//! (readability, writability, a deadline), whether to call again at once,
//! or that the socket is finished.
//!
//! ## Locks
//!
//! The exchange is the only moment the driver touches the core, and it is
//! one short call: an adapter whose core is shared (a multiplayer host whose
//! peers are served by many tasks) takes its lock inside `exchange` only.
//! Socket I/O and TLS work run outside it, on the connection's own buffers.
//!
//! ## Listening
//!
//! [`BindAddress`] and [`bind_listener`] are the one bind rule of every wsmp
//! server (`SO_REUSEADDR`; IPv6 addresses IPv6-only, dual-stack only for
//! `*`): see [`BindAddress`].
//!
//! ## Bounds
//!
//! - Input the core cannot take yet (backpressure) is held per connection:
//!   at most one read's worth ([`READ_CHUNK`]).
//! - rustls buffers at most [`TLS_BUFFER_LIMIT`] of ciphertext; plaintext is
//!   handed to it only once earlier ciphertext is out.
//! - Closing is bounded: once the core asks for the socket to be closed, the
//!   driver closes it as soon as the output is out, and at the latest after
//!   the `linger` given to [`Driver::new`] (the core's `close_timeout`),
//!   whatever TLS or the kernel still hold — then with a TCP reset, so the
//!   kernel frees the connection's buffers at once. A graceful close is a
//!   half close (FIN after what the kernel holds) followed by the peer's end
//!   of stream, within the same bound; a peer that stopped reading gets the
//!   reset instead of an orphaned connection pinning the kernel buffers.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod driver;
mod endpoint;
mod listen;
mod socket;
mod tls;

pub use driver::{Driver, Want, READ_CHUNK, TLS_BUFFER_LIMIT};
pub use endpoint::{Endpoint, Exchange, HostPeer, Status};
pub use listen::{bind_listener, BindAddress};
pub use socket::{tune_stream, Socket};
