//! # wsmp-relay
//!
//! A SceneMultiplayer relay that unmodified Redot/Godot 4 clients
//! (`WebSocketMultiplayerPeer.create_client(url)`) accept as their server,
//! peer 1. It admits clients into rooms, tells them about each other
//! (ADD_PEER / DEL_PEER) and forwards their RELAY packets, as the engine's own
//! server does (spec/scene-multiplayer.md §6).
//!
//! The relay logic is sans-IO: one [`Relay`] per room is fed events and
//! timestamps and acts through an [`relay::Out`]; the network glue
//! ([`server`]) runs it on the tokio adapter's `RoomServer`, every room
//! behind its own lock, so rooms use every core.
//!
//! Modules:
//! - [`protocol`]: SceneMultiplayer packet bytes.
//! - [`rooms`]: room names from request paths.
//! - [`admission`]: slot reservations at upgrade time (rooms, auth, per address).
//! - [`relay`]: the per-room state machine.
//! - [`stats`]: lock-free counters.
//! - [`cli`]: command-line flags.
//! - [`web`]: the embedded demo page.
//! - [`server`]: the network glue of the `wsmp-relay` program (tokio).
//! - [`config`]: flags, `WSMP_RELAY_*` environment and TOML file, merged.
//! - [`admin`]: the admin listener (`/metrics`, `/healthz`, `/readyz`, `/stats`).
//! - [`metrics`]: the Prometheus metrics, rendered from a [`metrics::Snapshot`].
//! - [`jwt`]: per-player signed tokens and their three carriers.
//! - [`proxy`]: trusted reverse proxies, `X-Forwarded-For`, PROXY protocol, per-IP keys.
//! - [`tls_reload`]: certificate reload on SIGHUP and on an interval.
//! - [`startup`]: the open-file limit.
//! - [`cluster`]: several relay processes as one relay, over NATS (`--cluster`).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod admin;
pub mod admission;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod jwt;
pub mod metrics;
pub mod protocol;
pub mod proxy;
pub mod relay;
pub mod rooms;
pub mod server;
pub mod startup;
pub mod stats;
pub mod tls_reload;
pub mod web;

pub use relay::{Relay, RelayConfig};
pub use rooms::RoomName;
pub use stats::{DropReason, Stats};
