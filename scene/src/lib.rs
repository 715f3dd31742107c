//! # wsmp-scene
//!
//! SceneMultiplayer — the high-level multiplayer layer of Redot / Godot 4 —
//! in Rust, so that a Rust program is **peer 1** (the server) for unmodified
//! engine clients on `WebSocketMultiplayerPeer`: it receives and answers their
//! `@rpc` calls, calls RPCs on them, exchanges `send_bytes` data, runs the
//! auth exchange, and relays client-to-client traffic exactly like wsmp-relay.
//!
//! `#![no_std]` + `alloc`, sans-IO (no sockets, clocks or threads inside), like
//! the core. The async layer over wsmp-tokio is behind the `tokio` feature.
//!
//! ## The model
//!
//! The wire protocol is spec/scene-multiplayer.md plus the engine sources
//! named at each rule (modules/multiplayer/*.cpp, core/io/marshalls.cpp,
//! scene/main/multiplayer_api.cpp). Layers:
//!
//! - [`variant`]: `Variant` and its two binary forms — plain `var_to_bytes`
//!   and the compressed form of RPC arguments; `real_t` width a setting
//!   ([`RealWidth`]). Decoding is total and bounded: see [`variant`].
//! - [`packet`]: the framing of every command (SYS/RELAY, REMOTE_CALL,
//!   SIMPLIFY_PATH/CONFIRM_PATH, RAW; replication kept opaque). wsmp-relay
//!   parses through it too.
//! - [`checksum`]: the node RPC checksum (`get_rpc_md5`) and method-id order.
//! - [`multiplayer`]: [`SceneMultiplayer`], the state machine of peer 1.
//! - `tokio` (feature `tokio`): `tokio::Server`, the state machine on
//!   wsmp-tokio's `MultiplayerPeer`.
//! - `serde` (feature `serde`): RPC arguments into your own types and back.
//!
//! ## The API
//!
//! Nodes are registered by path with their RPC method names — the names the
//! clients' script declares `@rpc` on that node, whichever side calls them:
//! method ids are positions in the sorted list, and the path checksum is
//! computed from it, so it must match the clients'. Methods that get a
//! handler are callable by clients; the others (the ones clients declare
//! `@rpc("authority")`) are only called by the server.
//!
//! ```
//! use wsmp_scene::multiplayer::{Config, SceneMultiplayer, Signature};
//! use wsmp_scene::variant::{Variant, VariantType};
//!
//! #[derive(Default)]
//! struct Game { greeted: u32 }
//!
//! let mut scene = SceneMultiplayer::new(Config::default(), Game::default());
//! let main = scene.register_node("/root/Main", &["hello", "greet"]).unwrap();
//! scene
//!     .on_rpc(main, "hello", Signature::typed(&[VariantType::String]), move |game, ctx, call| {
//!         game.greeted += 1;
//!         // Answer the caller: greet(text) on its /root/Main.
//!         let text = format!("hi {}", call.args[0].as_str().unwrap_or(""));
//!         let _ = ctx.rpc(call.from, main, "greet", &[Variant::from(text)]);
//!     })
//!     .unwrap();
//! ```
//!
//! The network glue feeds it ([`SceneMultiplayer::peer_connected`],
//! [`packet`](SceneMultiplayer::packet),
//! [`peer_disconnected`](SceneMultiplayer::peer_disconnected),
//! [`handle_timeout`](SceneMultiplayer::handle_timeout)) and carries out its
//! [`Action`](multiplayer::Action)s; the application reads
//! [`Event`](multiplayer::Event)s (peers admitted and gone, auth, RAW data).
//! Commands — [`rpc`](multiplayer::Context::rpc) to one peer, everyone
//! (`0`) or everyone but one (`-id`), [`send_bytes`](multiplayer::Context::send_bytes),
//! [`send_auth`](multiplayer::Context::send_auth) /
//! [`complete_auth`](multiplayer::Context::complete_auth), disconnect — go
//! through a [`Context`](multiplayer::Context), which handlers get and
//! [`SceneMultiplayer::context`] gives. With the `tokio` feature,
//! `tokio::Server` is that glue. The `lobby` example is a complete server.
//!
//! Packets that do not parse, RPCs for unknown nodes or methods, calls the
//! handler's [`Signature`](multiplayer::Signature) rejects (count, types),
//! undecodable or trailing argument bytes: logged (`tracing`, debug level),
//! counted ([`Stats`](multiplayer::Stats)), dropped. The sender stays
//! connected and nothing else changes. (The engine calls the method with
//! `null` for an argument it cannot decode and ignores trailing bytes; this
//! crate does not.)
//!
//! ## Left for later
//!
//! - Server-side replication authority: SPAWN, DESPAWN and SYNC packets are
//!   relayed between clients (so spawners and synchronizers owned by clients
//!   work), but the server does not spawn, sync or own replicated nodes;
//!   such packets sent to the server itself are counted as
//!   [`DropReason::Replication`](multiplayer::DropReason::Replication).
//! - The client side (a Rust program joining an engine server as a client).
//! - Node-level (`Node.rpc_config`) RPC ids (bit 15 set) and per-method
//!   transfer modes and channels (all the same over WebSocket).
//! - Objects as RPC arguments (the engine sends only instance ids).
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;
#[cfg(any(test, feature = "tokio"))]
extern crate std;

pub mod checksum;
pub mod multiplayer;
pub mod packet;
#[cfg(feature = "serde")]
pub mod serde;
#[cfg(feature = "tokio")]
pub mod tokio;
pub mod variant;

pub use multiplayer::SceneMultiplayer;
pub use variant::{Codec, DecodeError, EncodeError, RealWidth, Variant, VariantType};
