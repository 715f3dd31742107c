//! The async layer (feature `tokio`): a [`SceneMultiplayer`] driven by
//! [`wsmp_tokio::MultiplayerPeer`] — the engine's WebSocket transport.
//!
//! [`Server::next_event`] waits for the transport or the next auth deadline,
//! feeds the scene (RPC handlers run there), carries out its actions and
//! returns the application's [`Event`]s. Commands outside handlers go through
//! [`Server::context`] followed by [`Server::flush`], or the shortcuts
//! [`Server::rpc`] and [`Server::send_bytes`].
//!
//! Only `MultiplayerPeer`'s public API is used: `create_server_on`,
//! `next_event`, `send`, `disconnect_peer_with`, `shutdown`, `close`.

use std::net::SocketAddr;
use std::string::ToString;
use std::time::{Duration, Instant};
use std::vec::Vec;

use wsmp_core::Timestamp;
use wsmp_tokio::{
    CloseCode, HostEvent, HostSendError, MultiplayerPeer, PeerId, Target, TlsServerOptions,
};

use crate::multiplayer::{Action, Context, Event, NodeId, RpcError, SceneMultiplayer, SendError};
use crate::variant::Variant;

/// A SceneMultiplayer server (peer 1) on WebSocket listeners.
pub struct Server<S> {
    peer: MultiplayerPeer,
    scene: SceneMultiplayer<S>,
    epoch: Instant,
}

impl<S> std::fmt::Debug for Server<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addrs", &self.peer.local_addrs())
            .field("scene", &self.scene)
            .finish()
    }
}

impl<S> Server<S> {
    /// Listens on `listeners` (bound with [`wsmp_tokio::bind`] or tokio) with
    /// the transport settings of `peer` (its `config`, admission hook, …) and
    /// starts serving `scene`. Must be called inside a tokio runtime.
    pub fn start(
        mut peer: MultiplayerPeer,
        listeners: Vec<tokio::net::TcpListener>,
        tls: Option<TlsServerOptions>,
        scene: SceneMultiplayer<S>,
    ) -> Result<Self, wsmp_tokio::Error> {
        peer.create_server_on(listeners, tls)?;
        Ok(Server {
            peer,
            scene,
            epoch: Instant::now(),
        })
    }

    /// Binds `addrs` and starts, with the transport's default settings.
    pub fn bind(
        addrs: &[SocketAddr],
        scene: SceneMultiplayer<S>,
    ) -> Result<Self, wsmp_tokio::Error> {
        let listeners = addrs
            .iter()
            .map(|a| wsmp_tokio::bind(a.port(), &a.ip().to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        Server::start(MultiplayerPeer::new(), listeners, None, scene)
    }

    /// The addresses the server listens on.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        self.peer.local_addrs()
    }

    /// The scene.
    pub fn scene(&self) -> &SceneMultiplayer<S> {
        &self.scene
    }

    /// The scene, mutable. Call [`flush`](Self::flush) after sending through it.
    pub fn scene_mut(&mut self) -> &mut SceneMultiplayer<S> {
        &mut self.scene
    }

    /// A [`Context`] for commands outside handlers; [`flush`](Self::flush) after.
    pub fn context(&mut self) -> Context<'_> {
        self.scene.context()
    }

    /// `rpc_id(target, …)` on `node`, sent at once.
    pub fn rpc(
        &mut self,
        target: i32,
        node: NodeId,
        method: &str,
        args: &[Variant],
    ) -> Result<(), RpcError> {
        let r = self.scene.context().rpc(target, node, method, args);
        self.flush();
        r
    }

    /// `send_bytes(data, target)`, sent at once.
    pub fn send_bytes(&mut self, target: i32, data: &[u8]) -> Result<(), SendError> {
        let r = self.scene.context().send_bytes(target, data);
        self.flush();
        r
    }

    fn now(&self) -> Timestamp {
        Timestamp::from_duration(self.epoch.elapsed())
    }

    /// Carries out the scene's queued actions.
    pub fn flush(&mut self) {
        while let Some(action) = self.scene.poll_action() {
            match action {
                Action::Send { to, bytes } => self.send(to, bytes),
                Action::SendMany { to, bytes } => {
                    for p in to {
                        self.send(p, bytes.clone());
                    }
                }
                Action::Disconnect { peer, code, reason } => {
                    if let Some(id) = PeerId::new(peer) {
                        if let Err(e) = self.peer.disconnect_peer_with(id, CloseCode(code), reason)
                        {
                            tracing::debug!(peer, error = %e, "disconnect failed");
                        }
                    }
                }
            }
        }
    }

    fn send(&mut self, to: i32, bytes: bytes::Bytes) {
        let Some(id) = PeerId::new(to) else {
            return;
        };
        match self.peer.send(Target::Peer(id), bytes) {
            Ok(_) => {}
            Err(HostSendError::QueueFull(..)) => self.scene.receiver_overflow(to),
            Err(HostSendError::TooLarge(b)) => {
                tracing::warn!(
                    peer = to,
                    len = b.len(),
                    "packet larger than outbound_buffer_size; not sent"
                );
            }
            // Gone in the meantime: its PeerDisconnected event follows.
            Err(e) => tracing::debug!(peer = to, error = ?e, "send failed"),
        }
    }

    /// The next application event, driving the transport, the handlers and
    /// the auth timer until there is one. `None` once the transport is closed.
    pub async fn next_event(&mut self) -> Option<Event> {
        loop {
            self.flush();
            if let Some(e) = self.scene.poll_event() {
                return Some(e);
            }
            let deadline = self.scene.poll_timeout().map(|t| {
                let at = t.saturating_duration_since(self.now());
                tokio::time::Instant::now() + at
            });
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                event = self.peer.next_event() => {
                    let now = self.now();
                    match event {
                        None => return None,
                        Some(HostEvent::PeerConnected(id)) => self.scene.peer_connected(now, id.get()),
                        Some(HostEvent::PeerDisconnected { peer, .. }) => {
                            self.scene.peer_disconnected(now, peer.get())
                        }
                        Some(HostEvent::Packet { from, data }) => self.scene.packet(now, from.get(), data),
                        Some(_) => {}
                    }
                }
                () = sleep => {
                    let now = self.now();
                    self.scene.handle_timeout(now);
                }
            }
        }
    }

    /// Graceful stop: close frames (1001) to every peer, wait up to `timeout`.
    pub async fn shutdown(&mut self, timeout: Duration) {
        self.flush();
        self.peer.shutdown(timeout).await;
    }

    /// Drops every connection at once (no close frames).
    pub fn close(&mut self) {
        self.peer.close();
    }
}
