//! The lobby's game logic (shared by the `lobby` example and its tests).
//!
//! Node `/root/Lobby` with the RPC names `announce, chat, echo, echoed, join,
//! move, moved, say, welcome`. Clients call `join`, `say`, `move`, `echo`
//! (`@rpc("any_peer")` on their side); the server calls `welcome`,
//! `announce`, `chat`, `moved`, `echoed` (`@rpc("authority")`).
#![allow(dead_code)]

use wsmp_scene::multiplayer::{
    Call, Config, Context, Event, NodeId, Param, SceneMultiplayer, Signature,
};
use wsmp_scene::tokio::Server;
use wsmp_scene::variant::{Dictionary, Variant, VariantType};

/// The node, relative to the clients' root `/root`.
pub(crate) const NODE: &str = "/root/Lobby";

/// The RPC names the clients' `Lobby` script declares.
pub(crate) const RPC_NAMES: [&str; 9] = [
    "announce", "chat", "echo", "echoed", "join", "move", "moved", "say", "welcome",
];

/// Joined players: id → name, in join order.
#[derive(Debug, Default)]
pub(crate) struct Lobby {
    pub(crate) players: Vec<(i32, String)>,
}

impl Lobby {
    /// Joined players still connected, optionally without one.
    fn targets(&self, ctx: &Context<'_>, except: Option<i32>) -> Vec<i32> {
        self.players
            .iter()
            .map(|&(id, _)| id)
            .filter(|&id| Some(id) != except && ctx.is_admitted(id))
            .collect()
    }

    fn players_dict(&self) -> Dictionary {
        Dictionary::from_entries(
            self.players
                .iter()
                .map(|(id, name)| (Variant::Int((*id).into()), Variant::String(name.clone())))
                .collect(),
        )
    }
}

fn call_or_log(result: Result<(), wsmp_scene::multiplayer::RpcError>, what: &str) {
    if let Err(e) = result {
        tracing::warn!(error = %e, "{what} not sent");
    }
}

/// The scene with the lobby's node and handlers.
pub(crate) fn scene(
    config: Config,
) -> Result<SceneMultiplayer<Lobby>, wsmp_scene::multiplayer::RegisterError> {
    let mut scene = SceneMultiplayer::new(config, Lobby::default());
    let node = scene.register_node(NODE, &RPC_NAMES)?;
    scene.on_rpc(
        node,
        "join",
        Signature::typed(&[VariantType::String]),
        move |lobby, ctx, call| join(lobby, ctx, node, call),
    )?;
    scene.on_rpc(
        node,
        "say",
        Signature::typed(&[VariantType::String]),
        move |lobby, ctx, call| {
            // chat(from_id, text) on every joined client, the caller included.
            let targets = lobby.targets(ctx, None);
            let args = [Variant::Int(call.from.into()), call.args[0].clone()];
            call_or_log(ctx.rpc_peers(&targets, node, "chat", &args), "chat");
        },
    )?;
    scene.on_rpc(
        node,
        "move",
        Signature::typed(&[VariantType::Vector2]),
        move |lobby, ctx, call| {
            // moved(id, pos) on every other joined client.
            let targets = lobby.targets(ctx, Some(call.from));
            let args = [Variant::Int(call.from.into()), call.args[0].clone()];
            call_or_log(ctx.rpc_peers(&targets, node, "moved", &args), "moved");
        },
    )?;
    // echo(value): any value; no argument on the wire is an empty PackedByteArray.
    let echo = Signature::new([Param::Optional(None, Variant::PackedByteArray(Vec::new()))]);
    scene.on_rpc(node, "echo", echo, move |_, ctx, call| {
        call_or_log(ctx.rpc(call.from, node, "echoed", &call.args), "echoed");
    })?;
    Ok(scene)
}

/// join(name): welcome(your_id, players) to the caller, announce(id, name)
/// to every other joined client. A second join renames.
fn join(lobby: &mut Lobby, ctx: &mut Context<'_>, node: NodeId, call: Call) {
    let name = call.args[0].as_str().unwrap_or_default().to_owned();
    match lobby.players.iter_mut().find(|(id, _)| *id == call.from) {
        Some(entry) => entry.1 = name.clone(),
        None => lobby.players.push((call.from, name.clone())),
    }
    tracing::info!(peer = call.from, %name, "joined");
    let welcome = [Variant::Int(call.from.into()), lobby.players_dict().into()];
    call_or_log(ctx.rpc(call.from, node, "welcome", &welcome), "welcome");
    let others = lobby.targets(ctx, Some(call.from));
    let announce = [Variant::Int(call.from.into()), Variant::String(name)];
    call_or_log(
        ctx.rpc_peers(&others, node, "announce", &announce),
        "announce",
    );
}

/// What the lobby does with the other events.
pub(crate) fn on_event(server: &mut Server<Lobby>, event: Event) {
    match event {
        Event::PeerConnected(id) => tracing::info!(peer = id, "connected"),
        Event::PeerDisconnected(id) => {
            server
                .scene_mut()
                .state_mut()
                .players
                .retain(|(p, _)| *p != id);
            tracing::info!(peer = id, "left");
        }
        // send_bytes(data, 1): the same bytes back to the sender. Bytes sent
        // to everyone were relayed to the others already; not echoed.
        Event::Raw {
            from,
            data,
            broadcast: false,
        } => {
            if let Err(e) = server.send_bytes(from, &data) {
                tracing::warn!(peer = from, error = %e, "echo of raw bytes not sent");
            }
        }
        Event::Raw { .. } | Event::PeerAuthenticating(_) | Event::AuthFailed(_) => {}
    }
}
