//! # wsmp-core
//!
//! A sans-IO WebSocket (RFC 6455) implementation and the multi-peer host of
//! Redot/Godot 4's `WebSocketMultiplayerPeer`, wire-compatible with the engine.
//!
//! The core never touches a socket, a clock or an OS random source: it is fed
//! bytes, [`Timestamp`]s and an injected [`rand_core::RngCore`], and answers
//! with bytes to write, events, and the next deadline.
//!
//! Layers (each usable on its own):
//! - [`frame`]: header codec, masking, close codes, incremental UTF-8
//!   validation. No allocation.
//! - [`handshake`]: the HTTP/1.1 upgrade, client and server. No allocation.
//! - `Connection` (feature `alloc`): one WebSocket, client or server.
//! - `Host` (feature `alloc`): many peers with ids, routing and limits.
//!
//! Features: `alloc` (default) enables `Connection`, `Host` and owned types;
//! `deflate` (default) adds permessage-deflate (RFC 7692) on top of it;
//! `std` is additive only.
#![no_std]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod frame;
pub mod handshake;
pub mod time;

#[cfg(all(test, feature = "alloc"))]
mod test_rng;

#[cfg(feature = "alloc")]
pub mod config;
#[cfg(feature = "alloc")]
pub mod connection;
#[cfg(feature = "deflate")]
mod deflate;
#[cfg(feature = "alloc")]
pub mod host;

#[cfg(feature = "alloc")]
pub use config::{Config, ConfigError};
#[cfg(feature = "alloc")]
pub use connection::{Connection, Event, Message, MessageKind};
pub use frame::CloseCode;
pub use handshake::{DeflateConfig, DeflateParams};
#[cfg(feature = "alloc")]
pub use host::{ConnectionStatus, Host, HostEvent, PeerId, Target};
pub use time::Timestamp;
