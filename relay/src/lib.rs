//! # wsmp-relay
//!
//! A SceneMultiplayer relay that unmodified Redot/Godot 4 clients
//! (`WebSocketMultiplayerPeer.create_client(url)`) accept as their server,
//! peer 1. It admits clients into rooms, tells them about each other
//! (ADD_PEER / DEL_PEER) and forwards their RELAY packets, as the engine's own
//! server does (spec/scene-multiplayer.md §6).
//!
//! This crate is sans-IO: [`Relay`] is fed events and timestamps and answers
//! with [`Action`]s; the network glue (sockets, WebSocket, ids) lives outside.
//!
//! Modules:
//! - [`protocol`]: SceneMultiplayer packet bytes.
//! - [`rooms`]: room names from request paths, peer limits.
//! - [`relay`]: the state machine.
//! - [`stats`]: counters and their JSON form.
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
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod admin;
pub mod cli;
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

pub use relay::{Action, Admission, Relay, RelayConfig};
pub use rooms::RoomName;
pub use stats::{DropReason, Stats};
