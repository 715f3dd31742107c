//! The cluster's hooks into the relay's rooms (`crate::server`): admission
//! with a cluster-wide room slot, and what a room does with messages from
//! the bus and with node-wide events — all inside the room's lock.

use std::sync::Arc;

use wsmp_tokio::{AcceptOptions, Admit, ConnInfo, Host, Timestamp};

use super::slots::SlotError;
use super::stream::Reply;
use super::wire::{Body, StreamPos};
use super::{Cluster, Sweep};
use crate::admission::{Refusal, Ticket};
use crate::rooms::RoomName;
use crate::server::{refusal_response, Observed, RelayRoom};

/// The admission decision once the node's own limits passed: reserve the
/// room slot cluster-wide (a NATS round trip, awaited by the connection's
/// task within the handshake timeout), then join — or answer 503.
pub(crate) fn admit_later(
    cluster: &Arc<Cluster>,
    observed: &Arc<Observed>,
    info: &ConnInfo,
    path: &str,
    room: RoomName,
    mut ticket: Ticket,
) -> Admit<RoomName, Ticket> {
    let cluster = cluster.clone();
    let observed = observed.clone();
    let info = *info;
    let path = path.to_string();
    Admit::Later(Box::pin(async move {
        match cluster.reserve(room.clone()).await {
            Ok(slot) => {
                ticket.attach_cluster_slot(slot);
                Admit::Join {
                    room,
                    ticket,
                    options: AcceptOptions::default(),
                }
            }
            Err(e) => {
                if e == SlotError::Unavailable {
                    tracing::warn!(peer = %info.id, "cluster unavailable: upgrade refused");
                }
                Admit::Respond(refusal_response(
                    &observed,
                    &info,
                    info.remote.ip(),
                    &path,
                    Refusal::RoomFull,
                ))
            }
        }
    }))
}

/// The `cluster` object of `/stats`.
pub(crate) fn stats_json(c: &Cluster) -> serde_json::Value {
    let s = c.snapshot();
    serde_json::json!({
        "node": c.config().node_name,
        "node_index": s.node_index,
        "bus_up": s.bus_up,
        "nodes_seen": s.nodes_seen,
        "nodes": c.node_names(),
        "remote_peers": s.remote_peers,
        "messages_in": s.messages_in,
        "messages_out": s.messages_out,
        "bytes_in": s.bytes_in,
        "bytes_out": s.bytes_out,
        "bus_reconnects": s.bus_reconnects,
        "peers_lost": s.peers_lost,
        "outbox_full": s.outbox_full,
        "publish_errors": s.publish_errors,
        "resyncs": s.resyncs,
    })
}

impl RelayRoom {
    /// The end of the signal that stops the room's subscription task.
    pub(crate) fn cluster_take_closed(&mut self) -> Option<tokio::sync::oneshot::Receiver<()>> {
        self.cluster.as_mut()?.take_closed()
    }

    /// The room's subscription is active: open its stream (a snapshot of
    /// its members that asks the other nodes for theirs).
    pub(crate) fn cluster_ready(&mut self, host: &mut Host, now: Timestamp) {
        let (relay, mut out, _) = self.split(host, now);
        let members = relay.admitted().to_vec();
        if let Some(stream) = out.stream_mut() {
            stream.set_ready();
            if !stream.is_live() {
                stream.open(now, &members);
            }
        }
    }

    /// A message of another node's stream of this room.
    pub(crate) fn cluster_inbound(
        &mut self,
        host: &mut Host,
        now: Timestamp,
        pos: StreamPos,
        body: Body,
    ) {
        let (relay, mut out, sources) = self.split(host, now);
        let Some(sources) = sources else { return };
        // While the bus is down nothing from it is applied: the remote
        // members stay announced gone until the bus is back and every
        // stream restarts from a snapshot.
        if !out.stream_ref().is_some_and(|s| s.link_up()) {
            return;
        }
        let reply = sources.apply(now, pos, body, relay, &mut out);
        let members = relay.admitted();
        if let Some(stream) = out.stream_mut() {
            match reply {
                Reply::None => {}
                Reply::Snapshot => stream.snapshot(now, members, None),
                Reply::Ask(node) => stream.snapshot(now, members, Some(node)),
            }
        }
        if let Some(c) = &mut self.cluster {
            c.recount();
        }
    }

    /// A node-wide event (see [`Sweep`]).
    pub(crate) fn cluster_sweep(&mut self, host: &mut Host, now: Timestamp, what: Sweep) {
        if let Sweep::CloseAll = what {
            host.shutdown(now);
            return;
        }
        let (relay, mut out, sources) = self.split(host, now);
        let Some(sources) = sources else { return };
        match what {
            Sweep::BusDown => {
                sources.forget_all(now, relay, &mut out);
                if let Some(s) = out.stream_mut() {
                    s.break_stream();
                }
            }
            Sweep::BusUp => {
                let members = relay.admitted().to_vec();
                if let Some(s) = out.stream_mut() {
                    s.break_stream();
                    s.open(now, &members);
                }
            }
            Sweep::NodeGone(node, incarnation) => {
                sources.forget_node(now, node, incarnation, relay, &mut out);
            }
            Sweep::Desync => {
                if sources.desync_all(now, relay, &mut out) {
                    let members = relay.admitted().to_vec();
                    if let Some(s) = out.stream_mut() {
                        // Ask every node for a snapshot.
                        s.snapshot(now, &members, Some(0));
                    }
                }
            }
            Sweep::PublishFailed(subject) => {
                if let Some(s) = out.stream_mut() {
                    if s.subject() == &subject {
                        s.publish_failed(now);
                    }
                }
            }
            Sweep::CloseAll => {}
        }
        if let Some(c) = &mut self.cluster {
            c.recount();
        }
    }
}
