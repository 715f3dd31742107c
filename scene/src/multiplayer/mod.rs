//! SceneMultiplayer for peer 1, sans-IO: [`SceneMultiplayer`].
//!
//! The network glue (the `tokio` layer of this crate, or your own) tells it
//! what the transport did — [`peer_connected`](SceneMultiplayer::peer_connected),
//! [`packet`](SceneMultiplayer::packet),
//! [`peer_disconnected`](SceneMultiplayer::peer_disconnected),
//! [`handle_timeout`](SceneMultiplayer::handle_timeout) — and carries out the
//! [`Action`]s it queues, in order. RPC handlers run inside `packet`; the
//! application reads the other [`Event`]s from
//! [`poll_event`](SceneMultiplayer::poll_event).

mod core;
mod signature;
mod stats;

use ::core::fmt;
use ::core::time::Duration;
use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use bytes::Bytes;
use wsmp_core::Timestamp;

use self::core::{Core, NodeMeta, Work};
use crate::checksum::sorted_method_names;
use crate::variant::{Codec, EncodeError, NodePath, Variant};

pub use signature::{Param, Signature};
pub use stats::{DropReason, Stats};

/// Settings of a [`SceneMultiplayer`]; the defaults are the engine's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Variant codec (`real_t` width of the clients' engine build).
    pub codec: Codec,
    /// How long a peer may stay authenticating when an auth callback is set;
    /// zero = forever (SceneMultiplayer `auth_timeout`, 3 s).
    pub auth_timeout: Duration,
    /// Relay client-to-client traffic and send ADD_PEER / DEL_PEER
    /// (SceneMultiplayer `server_relay`, on).
    pub server_relay: bool,
    /// The clients' multiplayer root (SceneMultiplayer `root_path`): node
    /// paths on the wire are relative to it. `/root` for the default root.
    pub root_path: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            codec: Codec::default(),
            auth_timeout: Duration::from_secs(3),
            server_relay: true,
            root_path: String::from("/root"),
        }
    }
}

impl Config {
    /// `path` relative to `root_path`, normalized (`/root/Lobby` → `Lobby`).
    pub(crate) fn relative_path(&self, path: &str) -> String {
        let p = NodePath::parse(path);
        let root = NodePath::parse(&self.root_path);
        if p.absolute && p.names.starts_with(&root.names) {
            NodePath {
                names: p.names[root.names.len()..].to_vec(),
                subnames: p.subnames,
                absolute: false,
            }
            .to_string()
        } else {
            p.to_string()
        }
    }
}

/// Work for the network glue, in the order it must be done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send one binary message to one peer.
    Send {
        /// Receiver.
        to: i32,
        /// Message payload.
        bytes: Bytes,
    },
    /// Send the same binary message to several peers.
    SendMany {
        /// Receivers (at least two, no duplicates).
        to: Vec<i32>,
        /// Message payload, identical for every receiver.
        bytes: Bytes,
    },
    /// Close this peer's connection with a close frame; report
    /// `peer_disconnected` once it is gone.
    Disconnect {
        /// The peer.
        peer: i32,
        /// WebSocket close code (1000 auth timeout, 1008 slow receiver, or yours).
        code: u16,
        /// Close reason.
        reason: &'static str,
    },
}

/// What happened, for the application (RPCs go to their handlers instead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A client is admitted (after authentication, when enabled): it can be
    /// called and gets relayed traffic (SceneMultiplayer `peer_connected`).
    PeerConnected(i32),
    /// An admitted client left (`peer_disconnected`).
    PeerDisconnected(i32),
    /// A client connected and is authenticating (`peer_authenticating`).
    PeerAuthenticating(i32),
    /// An authenticating client left or timed out
    /// (`peer_authentication_failed`).
    AuthFailed(i32),
    /// `send_bytes` data from a client (`peer_packet`).
    Raw {
        /// The sender.
        from: i32,
        /// The bytes.
        data: Bytes,
        /// It was sent to everyone (or everyone but one) and relayed; the
        /// server got its copy as one of the receivers. `false`: sent to
        /// peer 1 alone.
        broadcast: bool,
    },
}

/// A node registered with [`SceneMultiplayer::register_node`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(usize);

/// An RPC call, as its handler gets it.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The caller (`get_remote_sender_id()`).
    pub from: i32,
    /// The node.
    pub node: NodeId,
    /// The method id (position in the node's sorted RPC names).
    pub method: u16,
    /// The arguments, checked against the handler's [`Signature`] (defaults
    /// filled in, GDScript conversions applied).
    pub args: Vec<Variant>,
    /// The call reached the server as part of a relayed broadcast.
    pub via_relay: bool,
}

/// Why a node or handler could not be registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterError {
    /// The path is registered already.
    DuplicateNode(String),
    /// An RPC name is listed twice.
    DuplicateMethod(String),
    /// More than 65536 RPC names (method ids are 16-bit).
    TooManyMethods,
    /// The node is not registered.
    UnknownNode,
    /// The node has no RPC of that name.
    UnknownMethod(String),
}

impl fmt::Display for RegisterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegisterError::DuplicateNode(p) => write!(f, "node {p} is registered already"),
            RegisterError::DuplicateMethod(m) => write!(f, "RPC name {m} is listed twice"),
            RegisterError::TooManyMethods => f.write_str("more than 65536 RPC names"),
            RegisterError::UnknownNode => f.write_str("unknown node"),
            RegisterError::UnknownMethod(m) => write!(f, "the node has no RPC named {m}"),
        }
    }
}

impl ::core::error::Error for RegisterError {}

/// Why bytes could not be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The target is not an admitted peer.
    UnknownPeer(i32),
    /// `send_bytes` with no data (the engine refuses it too).
    Empty,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::UnknownPeer(p) => write!(f, "peer {p} is not an admitted peer"),
            SendError::Empty => f.write_str("empty raw packet"),
        }
    }
}

impl ::core::error::Error for SendError {}

/// Why an RPC could not be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RpcError {
    /// The node is not registered.
    UnknownNode,
    /// The node has no RPC of that name.
    UnknownMethod,
    /// The arguments cannot be encoded.
    Encode(EncodeError),
    /// A target is not an admitted peer.
    Send(SendError),
    /// The arguments could not be turned into Variants (serde).
    Serialize(String),
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RpcError::UnknownNode => f.write_str("unknown node"),
            RpcError::UnknownMethod => f.write_str("the node has no RPC of that name"),
            RpcError::Encode(e) => write!(f, "cannot encode the arguments: {e}"),
            RpcError::Send(e) => e.fmt(f),
            RpcError::Serialize(e) => write!(f, "cannot serialize the arguments: {e}"),
        }
    }
}

impl ::core::error::Error for RpcError {}

impl From<SendError> for RpcError {
    fn from(e: SendError) -> Self {
        RpcError::Send(e)
    }
}

/// Why `send_auth` / `complete_auth` failed (SceneMultiplayer's errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// The peer is not authenticating (ERR_INVALID_PARAMETER).
    NotPending,
    /// `send_auth` with no data (ERR_INVALID_PARAMETER).
    EmptyData,
    /// A side has completed already (ERR_FILE_CANT_WRITE).
    AlreadyCompleted,
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthError::NotPending => "the peer is not authenticating",
            AuthError::EmptyData => "empty auth data",
            AuthError::AlreadyCompleted => "authentication already completed",
        })
    }
}

impl ::core::error::Error for AuthError {}

/// What handlers can do: call RPCs, send bytes, run the auth exchange,
/// disconnect peers. Also reachable outside handlers with
/// [`SceneMultiplayer::context`].
pub struct Context<'a> {
    core: &'a mut Core,
}

impl fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("admitted", &self.core.admitted())
            .finish_non_exhaustive()
    }
}

impl Context<'_> {
    /// `rpc_id(target, method, args…)` on `node`: `target > 0` one peer,
    /// `0` every admitted peer, `-id` every admitted peer but `id`.
    pub fn rpc(
        &mut self,
        target: i32,
        node: NodeId,
        method: &str,
        args: &[Variant],
    ) -> Result<(), RpcError> {
        let peers = self.core.resolve(target)?;
        self.core.rpc_peers(&peers, node, method, args)
    }

    /// Calls `method` on each of `peers` (all must be admitted).
    pub fn rpc_peers(
        &mut self,
        peers: &[i32],
        node: NodeId,
        method: &str,
        args: &[Variant],
    ) -> Result<(), RpcError> {
        self.core.rpc_peers(peers, node, method, args)
    }

    /// [`rpc`](Self::rpc) with arguments from a serde value: a tuple or
    /// sequence is the argument list, anything else one argument.
    #[cfg(feature = "serde")]
    pub fn rpc_serde<T: serde::Serialize + ?Sized>(
        &mut self,
        target: i32,
        node: NodeId,
        method: &str,
        args: &T,
    ) -> Result<(), RpcError> {
        let args = crate::serde::to_args(args).map_err(|e| RpcError::Serialize(e.to_string()))?;
        self.rpc(target, node, method, &args)
    }

    /// `send_bytes(data, target)`: a RAW packet to `target` (as in [`rpc`](Self::rpc)).
    pub fn send_bytes(&mut self, target: i32, data: &[u8]) -> Result<(), SendError> {
        self.core.send_bytes(target, data)
    }

    /// The admitted peers, in admission order.
    pub fn peers(&self) -> &[i32] {
        self.core.admitted()
    }

    /// Whether `peer` is admitted.
    pub fn is_admitted(&self, peer: i32) -> bool {
        self.core.is_admitted(peer)
    }

    /// Whether `peer` is authenticating.
    pub fn is_authenticating(&self, peer: i32) -> bool {
        self.core.is_pending(peer)
    }

    /// `send_auth(peer, data)`: auth data to an authenticating peer.
    pub fn send_auth(&mut self, peer: i32, data: &[u8]) -> Result<(), AuthError> {
        self.core.send_auth(peer, data)
    }

    /// `complete_auth(peer)`: this side is done; the peer is admitted once it
    /// has completed too.
    pub fn complete_auth(&mut self, peer: i32) -> Result<(), AuthError> {
        self.core.complete_auth(peer)
    }

    /// Disconnects `peer` with a close frame (`code`, `reason`). Returns
    /// whether it was connected and not closing already.
    pub fn disconnect(&mut self, peer: i32, code: u16, reason: &'static str) -> bool {
        self.core.disconnect(peer, code, reason)
    }

    /// The time of the latest input.
    pub fn now(&self) -> Timestamp {
        self.core.now()
    }
}

/// A stored RPC handler; `Some(reason)` when it rejected the call.
type Handler<S> = Box<dyn FnMut(&mut S, &mut Context<'_>, Call) -> Option<DropReason> + Send>;

/// The auth callback (SceneMultiplayer `auth_callback`): the application
/// state, a [`Context`] (for `send_auth` / `complete_auth` / `disconnect`),
/// the peer, its auth data.
pub type AuthCallback<S> = Box<dyn FnMut(&mut S, &mut Context<'_>, i32, &[u8]) + Send>;

/// SceneMultiplayer as peer 1 (the server), sans-IO, with the application
/// state `S` that handlers get.
pub struct SceneMultiplayer<S> {
    core: Core,
    handlers: Vec<Vec<Option<Handler<S>>>>,
    auth: Option<AuthCallback<S>>,
    state: S,
}

impl<S> fmt::Debug for SceneMultiplayer<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SceneMultiplayer")
            .field("config", &self.core.cfg)
            .field("admitted", &self.core.admitted())
            .finish_non_exhaustive()
    }
}

impl<S> SceneMultiplayer<S> {
    /// A server with no peers and no nodes.
    pub fn new(config: Config, state: S) -> Self {
        SceneMultiplayer {
            core: Core::new(config),
            handlers: Vec::new(),
            auth: None,
            state,
        }
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.core.cfg
    }

    /// The application state.
    pub fn state(&self) -> &S {
        &self.state
    }

    /// The application state, mutable.
    pub fn state_mut(&mut self) -> &mut S {
        &mut self.state
    }

    /// A [`Context`] for calls outside handlers.
    pub fn context(&mut self) -> Context<'_> {
        Context {
            core: &mut self.core,
        }
    }

    /// The application state and a [`Context`] at once.
    pub fn split(&mut self) -> (&mut S, Context<'_>) {
        (
            &mut self.state,
            Context {
                core: &mut self.core,
            },
        )
    }

    /// Registers a node by its path (absolute, e.g. `/root/Lobby`, or
    /// relative to [`Config::root_path`]) with its RPC method names: the
    /// names the clients' script declares `@rpc` on that node, whichever
    /// side may call them. Method ids are positions in the sorted list, and
    /// the path offer checksum is computed from it: both must match the
    /// clients'.
    pub fn register_node<N: AsRef<str>>(
        &mut self,
        path: &str,
        rpc_names: &[N],
    ) -> Result<NodeId, RegisterError> {
        let path = self.core.cfg.relative_path(path);
        if self.core.nodes.iter().any(|n| n.path == path) {
            return Err(RegisterError::DuplicateNode(path));
        }
        let methods = sorted_method_names(rpc_names);
        if let Some(w) = methods.windows(2).find(|w| w[0] == w[1]) {
            return Err(RegisterError::DuplicateMethod(w[0].clone()));
        }
        if methods.len() > usize::from(u16::MAX) + 1 {
            return Err(RegisterError::TooManyMethods);
        }
        let id = NodeId(self.core.nodes.len());
        self.handlers.push(methods.iter().map(|_| None).collect());
        self.core.nodes.push(NodeMeta::new(path, methods));
        Ok(id)
    }

    /// Makes `method` of `node` callable by clients (`@rpc("any_peer")` on
    /// their side): calls whose arguments fit `signature` run `handler`;
    /// others are dropped and counted. Methods without a handler are not
    /// callable (peer 1 is the authority of every node).
    pub fn on_rpc(
        &mut self,
        node: NodeId,
        method: &str,
        signature: Signature,
        handler: impl FnMut(&mut S, &mut Context<'_>, Call) + Send + 'static,
    ) -> Result<(), RegisterError> {
        let mut handler = handler;
        self.set_handler(
            node,
            method,
            signature,
            Box::new(move |state, ctx, call| {
                handler(state, ctx, call);
                None
            }),
        )
    }

    fn set_handler(
        &mut self,
        node: NodeId,
        method: &str,
        signature: Signature,
        handler: Handler<S>,
    ) -> Result<(), RegisterError> {
        let meta = self
            .core
            .nodes
            .get_mut(node.0)
            .ok_or(RegisterError::UnknownNode)?;
        let i = meta
            .methods
            .iter()
            .position(|m| m == method)
            .ok_or_else(|| RegisterError::UnknownMethod(String::from(method)))?;
        meta.signatures[i] = Some(signature);
        self.handlers[node.0][i] = Some(handler);
        Ok(())
    }

    /// Like [`on_rpc`](Self::on_rpc) with the arguments deserialized into `T`
    /// (a tuple or struct of the argument list, see [`crate::serde`]); calls
    /// that do not deserialize are dropped and counted as
    /// [`DropReason::WrongArgType`].
    #[cfg(feature = "serde")]
    pub fn on_rpc_serde<T, F>(
        &mut self,
        node: NodeId,
        method: &str,
        mut handler: F,
    ) -> Result<(), RegisterError>
    where
        T: serde::de::DeserializeOwned,
        F: FnMut(&mut S, &mut Context<'_>, i32, T) + Send + 'static,
    {
        let wrapped: Handler<S> = Box::new(move |state, ctx, call| {
            match crate::serde::from_args::<T>(&call.args) {
                Ok(value) => {
                    handler(state, ctx, call.from, value);
                    None
                }
                Err(e) => {
                    tracing::debug!(peer = call.from, error = %e, "RPC arguments do not deserialize");
                    Some(DropReason::WrongArgType)
                }
            }
        });
        self.set_handler(node, method, Signature::any(), wrapped)
    }

    /// Enables authentication (SceneMultiplayer `auth_callback`): new peers
    /// are pending until both sides completed (spec/scene-multiplayer.md
    /// §3.4); their auth data goes to `callback`. Set it before peers connect.
    pub fn set_auth_callback(
        &mut self,
        callback: impl FnMut(&mut S, &mut Context<'_>, i32, &[u8]) + Send + 'static,
    ) {
        self.auth = Some(Box::new(callback));
        self.core.auth_enabled = true;
    }

    /// The method names of `node`, in id order.
    pub fn methods(&self, node: NodeId) -> Option<&[String]> {
        self.core.nodes.get(node.0).map(|n| &n.methods[..])
    }

    /// The transport connected `id` (its id message is sent).
    pub fn peer_connected(&mut self, now: Timestamp, id: i32) {
        self.core.peer_connected(now, id);
    }

    /// The transport reports `id` gone (closed by either side).
    pub fn peer_disconnected(&mut self, now: Timestamp, id: i32) {
        self.core.peer_disconnected(now, id);
    }

    /// A packet (one WebSocket message) from `from`. RPC handlers and the
    /// auth callback run from here.
    pub fn packet(&mut self, now: Timestamp, from: i32, bytes: Bytes) {
        match self.core.packet(now, from, &bytes) {
            None => {}
            Some(Work::AuthData(peer, data)) => {
                let mut ctx = Context {
                    core: &mut self.core,
                };
                match &mut self.auth {
                    Some(cb) => cb(&mut self.state, &mut ctx, peer, data),
                    None => ctx.core.drop_packet(peer, DropReason::AuthUnexpected),
                }
            }
            Some(Work::Rpc(d)) => {
                let call = Call {
                    from: d.from,
                    node: NodeId(d.node),
                    method: d.method as u16,
                    args: d.args,
                    via_relay: d.via_relay,
                };
                let mut ctx = Context {
                    core: &mut self.core,
                };
                if let Some(h) = self
                    .handlers
                    .get_mut(d.node)
                    .and_then(|m| m.get_mut(d.method))
                    .and_then(Option::as_mut)
                {
                    match h(&mut self.state, &mut ctx, call) {
                        None => ctx.core.stats.rpcs_handled += 1,
                        Some(reason) => ctx.core.drop_packet(d.from, reason),
                    }
                }
            }
        }
    }

    /// The glue could not queue a message for `peer` (its queue is full):
    /// it is disconnected with 1008, as wsmp-relay does.
    pub fn receiver_overflow(&mut self, peer: i32) {
        self.core.receiver_overflow(peer);
    }

    /// Runs the auth timeouts due at `now`.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.core.handle_timeout(now);
    }

    /// The earliest time [`handle_timeout`](Self::handle_timeout) has work.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.core.poll_timeout()
    }

    /// The next action for the glue, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.core.poll_action()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.core.poll_event()
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.core.stats
    }
}

#[cfg(test)]
mod tests;
