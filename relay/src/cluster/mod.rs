//! `wsmp-relay --cluster nats://HOST:PORT`: several relay processes behave
//! as one relay. Every node accepts any client for any room; a room may
//! have members on several nodes, and each client sees the members of other
//! nodes exactly like local ones. The nodes talk only through NATS (core
//! publish/subscribe for rooms and heartbeats, JetStream key-value buckets
//! for peer-id ranges and room slots); docs/cluster.md has the design, the
//! guarantees and the capacity model.
//!
//! - [`wire`]: the bytes of bus messages.
//! - [`stream`]: a room's ordered stream and the streams it follows (inside
//!   the room's critical section).
//! - [`slots`]: node index leases (peer-id ranges) and cluster-wide room slots.
//! - this module: the node (connection, heartbeats, liveness, the bus going
//!   down and up, the outbox, the per-room subscription tasks).
//!
//! # Peer ids
//!
//! A node leases an index `n` in 1..=1023 (key `node.<n>` of the nodes
//! bucket, created only if absent, refreshed while the node lives, expiring
//! 3 × `--cluster-peer-timeout` after it stops). Its peers get ids
//! `n · 2²¹ + k`, `k` in 0..2²¹: ranges of different indexes are disjoint, so
//! two live nodes never hand out the same id.

pub(crate) mod glue;
pub mod slots;
pub mod stream;
pub mod wire;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_nats::{Client, Event, Subject};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use wsmp_tokio::{IdSpace, RoomRef};

use crate::metrics::ClusterSnapshot;
use crate::rooms::RoomName;
use crate::server::RelayRooms;
pub use slots::RoomSlot;
use slots::Slots;

/// Bits of a peer id below the node index.
pub const LOCAL_ID_BITS: u32 = 21;
/// Highest node index (10 bits: ids stay below 2³¹).
pub const MAX_NODE_INDEX: u16 = 1023;
/// Messages the outbox holds before a room's stream breaks.
pub const OUTBOX_MESSAGES: usize = 16 * 1024;
/// Bytes the outbox holds before a room's stream breaks.
pub const OUTBOX_BYTES: usize = 32 * 1024 * 1024;

/// The peer ids node `index` hands out.
pub fn id_space(index: u16) -> IdSpace {
    let first = i32::from(index) << LOCAL_ID_BITS;
    let last = first | ((1 << LOCAL_ID_BITS) - 1);
    IdSpace::new(first, last).unwrap_or_default()
}

/// The node index of a peer id handed out by a cluster node.
pub fn node_of(id: i32) -> u16 {
    (id >> LOCAL_ID_BITS) as u16
}

/// Cluster settings (`--cluster`, `--node-name`, `--cluster-peer-timeout`,
/// `--cluster-name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// NATS server URLs (`nats://HOST:PORT`).
    pub servers: Vec<String>,
    /// This node's name (logs, heartbeats, `/stats`).
    pub node_name: String,
    /// Silence after which a node (or the bus) counts as gone.
    pub peer_timeout: Duration,
    /// Names the cluster: subjects `wsmp.<name>.…`, buckets `wsmp_<name>_…`.
    pub name: String,
    /// `--room-max-peers`, held cluster-wide.
    pub room_max_peers: usize,
    /// The largest packet a client may send (`--inbound-buffer-size`): every
    /// message this node publishes must fit the NATS server's `max_payload`.
    pub max_packet: usize,
}

impl ClusterConfig {
    /// Heartbeat period (a fifth of the timeout).
    pub fn heartbeat_interval(&self) -> Duration {
        (self.peer_timeout / 5).max(Duration::from_millis(50))
    }

    fn subject_prefix(&self) -> String {
        format!("wsmp.{}", self.name)
    }
}

/// A valid `--cluster-name`: 1–32 of `[A-Za-z0-9_-]` (it goes into NATS
/// subjects and bucket names).
pub fn parse_cluster_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(s.to_string())
    } else {
        Err("must be 1-32 characters of [A-Za-z0-9_-]".into())
    }
}

/// A `--cluster` value: `nats://HOST:PORT` (or `tls://`).
pub fn parse_cluster_url(s: &str) -> Result<String, String> {
    let rest = s
        .strip_prefix("nats://")
        .or_else(|| s.strip_prefix("tls://"))
        .ok_or_else(|| format!("`{s}` is not a nats://HOST:PORT URL"))?;
    if rest.is_empty() || rest.contains(char::is_whitespace) {
        return Err(format!("`{s}` is not a nats://HOST:PORT URL"));
    }
    Ok(s.to_string())
}

/// The subject token of a room: its name, `=` for the default room (`=` is
/// never in a room name).
pub fn room_token(room: &RoomName) -> &str {
    room.name().unwrap_or("=")
}

/// Cluster counters (lock-free; read at scrape).
#[derive(Debug, Default)]
pub struct Counters {
    messages_in: AtomicU64,
    messages_out: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    reconnects: AtomicU64,
    peers_lost: AtomicU64,
    outbox_full: AtomicU64,
    publish_errors: AtomicU64,
    resyncs: AtomicU64,
    malformed: AtomicU64,
    remote_peers: AtomicU64,
}

impl Counters {
    pub(crate) fn peer_lost(&self) {
        self.peers_lost.fetch_add(1, Relaxed);
    }
    pub(crate) fn outbox_full(&self) {
        self.outbox_full.fetch_add(1, Relaxed);
    }
    pub(crate) fn resync(&self) {
        self.resyncs.fetch_add(1, Relaxed);
    }
}

/// The bounded per-node outbox: room streams put messages in it under
/// their room's lock (never waiting); one task publishes them in order.
#[derive(Debug)]
pub struct Outbox {
    tx: mpsc::Sender<(Subject, Bytes)>,
    bytes: AtomicUsize,
}

impl Outbox {
    /// Queues one message; false when the outbox is full (a possible loss:
    /// the caller breaks its stream).
    pub fn push(&self, subject: &Subject, payload: Bytes) -> bool {
        let len = payload.len();
        if self.bytes.fetch_add(len, Relaxed) + len > OUTBOX_BYTES {
            self.bytes.fetch_sub(len, Relaxed);
            return false;
        }
        if self.tx.try_send((subject.clone(), payload)).is_err() {
            self.bytes.fetch_sub(len, Relaxed);
            return false;
        }
        true
    }
}

/// What a room's stream needs from its node.
#[derive(Debug)]
pub struct Link {
    /// This node's index.
    pub node: u16,
    /// This process's incarnation (random).
    pub incarnation: u64,
    epochs: AtomicU64,
    up: AtomicBool,
    /// The outbox.
    pub outbox: Outbox,
    /// Counters.
    pub counters: Counters,
}

impl Link {
    /// A link with its outbox's receiving end (for the publishing task, or a test).
    pub fn new(node: u16, incarnation: u64) -> (Arc<Link>, mpsc::Receiver<(Subject, Bytes)>) {
        let (tx, rx) = mpsc::channel(OUTBOX_MESSAGES);
        let link = Link {
            node,
            incarnation,
            epochs: AtomicU64::new(0),
            up: AtomicBool::new(false),
            outbox: Outbox {
                tx,
                bytes: AtomicUsize::new(0),
            },
            counters: Counters::default(),
        };
        (Arc::new(link), rx)
    }

    /// Whether the bus is up.
    pub fn is_up(&self) -> bool {
        self.up.load(Relaxed)
    }

    /// Sets the bus state (tests; the node's control task otherwise).
    pub fn set_up(&self, up: bool) {
        self.up.store(up, Relaxed);
    }

    fn next_epoch(&self) -> u64 {
        self.epochs.fetch_add(1, Relaxed) + 1
    }
}

/// A node seen through its heartbeats.
#[derive(Debug, Clone)]
struct Seen {
    incarnation: u64,
    name: String,
    last: Instant,
}

type RoomRefs = HashMap<u64, (RoomName, RoomRef<RelayRooms>)>;

/// This node of the cluster. See the [module docs](self).
pub struct Cluster {
    cfg: ClusterConfig,
    prefix: String,
    client: Client,
    link: Arc<Link>,
    slots: Slots,
    /// Other nodes, by index.
    seen: Mutex<HashMap<u16, Seen>>,
    /// Rooms with members here (for sweeps; not the data path).
    rooms: Mutex<RoomRefs>,
    room_ids: AtomicU64,
    /// Since when the bus has been up (slot GC waits a timeout after it).
    up_since: Mutex<Option<Instant>>,
    /// The node index lease was lost to another node: no new peers.
    conflict: AtomicBool,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.link.node)
            .field("name", &self.cfg.node_name)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Sweeps run on every room (bus down/up, a node gone, a slow consumer).
#[derive(Debug, Clone)]
pub(crate) enum Sweep {
    /// The bus is down: remote members gone, stream broken.
    BusDown,
    /// The bus is back: open a new epoch (re-announces this node's members
    /// and asks for everybody's).
    BusUp,
    /// A node is gone (`Some(incarnation)`: only that incarnation).
    NodeGone(u16, Option<u64>),
    /// Messages may have been lost on the way in: resynchronise every stream.
    Desync,
    /// Publishing a message on this subject failed: the room whose stream
    /// it is opens a new epoch (its members leave and come back on the
    /// other nodes) instead of leaving a hole nobody notices until its
    /// next message.
    PublishFailed(Subject),
    /// This node lost its id range: close every peer.
    CloseAll,
}

enum Control {
    Event(Event),
}

impl Cluster {
    /// Connects to NATS, leases a node index and starts the node's tasks.
    /// Must be called inside a tokio runtime.
    pub async fn connect(cfg: ClusterConfig) -> Result<Arc<Cluster>, String> {
        let (events_tx, mut events_rx) = mpsc::unbounded_channel::<Control>();
        let timeout = cfg.peer_timeout;
        let options = async_nats::ConnectOptions::new()
            .name(format!("wsmp-relay {}", cfg.node_name))
            // Own messages are never needed back (a node follows others' streams).
            .no_echo()
            .ping_interval((timeout / 4).max(Duration::from_millis(250)))
            .connection_timeout(timeout.max(Duration::from_secs(1)))
            .max_reconnects(None)
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis((attempts as u64 * 250).min(2_000))
            })
            .event_callback(move |event| {
                let tx = events_tx.clone();
                async move {
                    let _ = tx.send(Control::Event(event));
                }
            });
        let client = options
            .connect(cfg.servers.as_slice())
            .await
            .map_err(|e| format!("--cluster {}: {e}", cfg.servers.join(",")))?;
        check_max_payload(client.server_info().max_payload, &cfg)?;
        let incarnation = {
            use rand_core::TryRngCore;
            rand_core::OsRng
                .try_next_u64()
                .map_err(|e| format!("random incarnation: {e}"))?
        };
        let slots = Slots::new(client.clone(), &cfg, incarnation);
        slots.ensure_buckets().await?;
        let node = slots.acquire_index(&cfg.node_name).await?;
        let (link, outbox_rx) = Link::new(node, incarnation);
        link.set_up(true);
        let prefix = cfg.subject_prefix();
        let cluster = Arc::new(Cluster {
            cfg,
            prefix,
            client,
            link,
            slots,
            seen: Mutex::new(HashMap::new()),
            rooms: Mutex::new(HashMap::new()),
            room_ids: AtomicU64::new(0),
            up_since: Mutex::new(Some(Instant::now())),
            conflict: AtomicBool::new(false),
        });
        cluster.slots.set_owner(Arc::downgrade(&cluster));
        // Drain events that arrived while connecting (the first Connected).
        while events_rx.try_recv().is_ok() {}
        tokio::spawn(publish_loop(cluster.clone(), outbox_rx));
        let hb = cluster
            .client
            .subscribe(format!("{}.hb", cluster.prefix))
            .await
            .map_err(|e| format!("cluster subscribe: {e}"))?;
        tokio::spawn(control_loop(Arc::downgrade(&cluster), events_rx, hb));
        tracing::info!(
            node = node,
            name = %cluster.cfg.node_name,
            ids = %format!("{}..={}", id_space(node).first(), id_space(node).last()),
            "joined the cluster"
        );
        Ok(cluster)
    }

    /// This node's index.
    pub fn node(&self) -> u16 {
        self.link.node
    }

    /// The peer ids this node hands out.
    pub fn id_space(&self) -> IdSpace {
        id_space(self.link.node)
    }

    /// The settings.
    pub fn config(&self) -> &ClusterConfig {
        &self.cfg
    }

    /// The link room streams publish through.
    pub fn link(&self) -> &Arc<Link> {
        &self.link
    }

    /// The subject of this node's stream for `room`.
    pub fn stream_subject(&self, room: &RoomName) -> Subject {
        Subject::from(format!(
            "{}.r.{}.{}",
            self.prefix,
            room_token(room),
            self.link.node
        ))
    }

    /// Reserves a member slot of `room` cluster-wide (a network round trip).
    pub async fn reserve(self: &Arc<Self>, room: RoomName) -> Result<RoomSlot, slots::SlotError> {
        if self.conflict.load(Relaxed) || !self.link.is_up() {
            return Err(slots::SlotError::Unavailable);
        }
        self.slots.reserve(room).await
    }

    /// The cluster figures for `/metrics` and `/stats`.
    pub fn snapshot(&self) -> ClusterSnapshot {
        let c = &self.link.counters;
        ClusterSnapshot {
            nodes_seen: lock(&self.seen).len() as u64 + 1,
            remote_peers: c.remote_peers.load(Relaxed),
            messages_in: c.messages_in.load(Relaxed),
            messages_out: c.messages_out.load(Relaxed),
            bytes_in: c.bytes_in.load(Relaxed),
            bytes_out: c.bytes_out.load(Relaxed),
            bus_reconnects: c.reconnects.load(Relaxed),
            peers_lost: c.peers_lost.load(Relaxed),
            outbox_full: c.outbox_full.load(Relaxed),
            publish_errors: c.publish_errors.load(Relaxed),
            resyncs: c.resyncs.load(Relaxed),
            bus_up: self.link.is_up(),
            node_index: self.link.node,
        }
    }

    /// The names of the nodes seen (for `/stats`), this one included.
    pub fn node_names(&self) -> Vec<String> {
        let mut names: Vec<String> = lock(&self.seen).values().map(|s| s.name.clone()).collect();
        names.push(self.cfg.node_name.clone());
        names.sort();
        names
    }

    /// A room was created here: follow it on the bus.
    pub(crate) fn room_opened(self: &Arc<Self>, key: &RoomName, room: RoomRef<RelayRooms>) {
        let id = self.room_ids.fetch_add(1, Relaxed);
        tokio::spawn(room_task(self.clone(), key.clone(), room, id));
    }

    /// Recounts the remote members (after a sweep or a room change).
    pub(crate) fn add_remote(&self, delta: i64) {
        let c = &self.link.counters.remote_peers;
        if delta >= 0 {
            c.fetch_add(delta as u64, Relaxed);
        } else {
            let _ = c.fetch_update(Relaxed, Relaxed, |v| {
                Some(v.saturating_sub((-delta) as u64))
            });
        }
    }

    fn sweep(&self, what: Sweep) {
        let rooms: Vec<RoomRef<RelayRooms>> =
            lock(&self.rooms).values().map(|(_, r)| r.clone()).collect();
        for room in rooms {
            room.with(|host, r, now| r.cluster_sweep(host, now, what.clone()));
        }
    }

    fn is_alive(&self, node: u16, incarnation: u64) -> bool {
        if node == self.link.node {
            return incarnation == self.link.incarnation;
        }
        lock(&self.seen)
            .get(&node)
            .is_some_and(|s| s.incarnation == incarnation)
    }

    /// Whether the bus has been up for a whole timeout (so every live node
    /// has been heard from).
    fn settled(&self) -> bool {
        lock(&self.up_since).is_some_and(|t| t.elapsed() >= self.cfg.peer_timeout)
    }

    fn bus_down(&self, why: &str) {
        if !self.link.is_up() {
            return;
        }
        tracing::warn!(
            reason = why,
            "cluster bus down: remote peers announced gone"
        );
        self.link.set_up(false);
        *lock(&self.up_since) = None;
        lock(&self.seen).clear();
        self.sweep(Sweep::BusDown);
    }

    async fn bus_up(self: &Arc<Self>) {
        if self.link.is_up() {
            return;
        }
        // The buckets may be new (a restarted NATS keeps no memory state).
        if let Err(e) = self.slots.ensure_buckets().await {
            tracing::warn!(error = %e, "cluster buckets not ready; retrying");
            return;
        }
        match self
            .slots
            .renew_lease(self.link.node, &self.cfg.node_name)
            .await
        {
            Ok(()) => {}
            Err(slots::LeaseError::Taken) => {
                self.lost_index();
                return;
            }
            Err(slots::LeaseError::Bus(e)) => {
                tracing::warn!(error = %e, "cluster lease not renewed; retrying");
                return;
            }
        }
        self.link.counters.reconnects.fetch_add(1, Relaxed);
        *lock(&self.up_since) = Some(Instant::now());
        self.link.set_up(true);
        tracing::info!("cluster bus up: re-announcing this node's peers");
        self.sweep(Sweep::BusUp);
        self.slots.resync();
    }

    fn lost_index(&self) {
        if !self.conflict.swap(true, Relaxed) {
            tracing::error!(
                node = self.link.node,
                "this node's index was taken by another node while the bus was down: its peer ids could collide; closing every peer here and refusing new ones (restart the node)"
            );
            self.link.set_up(false);
            self.sweep(Sweep::CloseAll);
        }
    }
}

/// Refuses a NATS server whose `max_payload` is smaller than the largest
/// message this node may publish: such a message would fail to publish.
fn check_max_payload(max_payload: usize, cfg: &ClusterConfig) -> Result<(), String> {
    let need = wire::max_encoded_len(cfg.max_packet, cfg.room_max_peers);
    if max_payload < need {
        return Err(format!(
            "--cluster {}: the NATS server's max_payload is {max_payload} bytes, but this relay \
             may publish {need}-byte messages (--inbound-buffer-size {} plus {} bytes of header, \
             or a snapshot of --room-max-peers {}); raise max_payload in the nats-server \
             configuration or lower --inbound-buffer-size",
            cfg.servers.join(","),
            cfg.max_packet,
            wire::DATA_OVERHEAD,
            cfg.room_max_peers,
        ));
    }
    Ok(())
}

/// Publishes the outbox in order (one task: NATS keeps the order per
/// connection and subject). A message that fails to publish (the client
/// is closed, or a server refuses it) is counted and its room's stream
/// reopened with a new epoch: the room's members on this node leave and
/// come back on the other nodes — a loss they are told about.
async fn publish_loop(cluster: Arc<Cluster>, mut rx: mpsc::Receiver<(Subject, Bytes)>) {
    let link = cluster.link.clone();
    let client = cluster.client.clone();
    let owner = Arc::downgrade(&cluster);
    drop(cluster);
    while let Some((subject, payload)) = rx.recv().await {
        let len = payload.len();
        link.outbox.bytes.fetch_sub(len, Relaxed);
        if !link.is_up() {
            // Its stream is broken and will reopen with a new epoch.
            continue;
        }
        if let Err(e) = client.publish(subject.clone(), payload).await {
            link.counters.publish_errors.fetch_add(1, Relaxed);
            tracing::warn!(error = %e, subject = %subject, "cluster publish failed; room stream reopened");
            if let Some(cluster) = owner.upgrade() {
                cluster.sweep(Sweep::PublishFailed(subject));
            }
            continue;
        }
        link.counters.messages_out.fetch_add(1, Relaxed);
        link.counters.bytes_out.fetch_add(len as u64, Relaxed);
    }
}

/// Heartbeats, liveness, bus events and the index lease.
async fn control_loop(
    cluster: std::sync::Weak<Cluster>,
    mut events: mpsc::UnboundedReceiver<Control>,
    mut hb: async_nats::Subscriber,
) {
    let Some(c) = cluster.upgrade() else { return };
    let interval = c.cfg.heartbeat_interval();
    let timeout = c.cfg.peer_timeout;
    let lease_every = slots::lease_ttl(timeout) / 4;
    let me = wire::Heartbeat {
        node: c.link.node,
        incarnation: c.link.incarnation,
        name: c.cfg.node_name.clone(),
    }
    .encode();
    let hb_subject = format!("{}.hb", c.prefix);
    drop(c);
    let mut beat = tokio::time::interval(interval);
    let mut check = tokio::time::interval(Duration::from_millis(100));
    let mut lease = tokio::time::interval(lease_every);
    lease.tick().await;
    let mut connected = true;
    let mut last_probe_ok = Instant::now();
    loop {
        tokio::select! {
            ev = events.recv() => {
                let Some(Control::Event(ev)) = ev else { return };
                let Some(c) = cluster.upgrade() else { return };
                match ev {
                    Event::Disconnected => {
                        connected = false;
                        c.bus_down("disconnected from NATS");
                    }
                    Event::Connected => {
                        connected = true;
                        last_probe_ok = Instant::now();
                        c.bus_up().await;
                    }
                    Event::SlowConsumer(sid) => {
                        tracing::warn!(sid, "cluster: slow consumer; resynchronising every room");
                        c.link.counters.resync();
                        c.sweep(Sweep::Desync);
                    }
                    other => tracing::info!(event = %other, "cluster bus event"),
                }
            }
            msg = hb.next() => {
                let Some(msg) = msg else { return };
                let Some(c) = cluster.upgrade() else { return };
                let Ok(beat) = wire::Heartbeat::decode(&msg.payload) else {
                    c.link.counters.malformed.fetch_add(1, Relaxed);
                    continue;
                };
                if beat.node == c.link.node {
                    if beat.incarnation != c.link.incarnation {
                        // Another process holds our index: ids could collide.
                        c.lost_index();
                    }
                    continue;
                }
                let replaced = {
                    let mut seen = lock(&c.seen);
                    let old = seen.insert(beat.node, Seen {
                        incarnation: beat.incarnation,
                        name: beat.name.clone(),
                        last: Instant::now(),
                    });
                    match old {
                        None => {
                            tracing::info!(node = beat.node, name = %beat.name, "cluster node joined");
                            None
                        }
                        Some(o) if o.incarnation != beat.incarnation => Some(o.incarnation),
                        Some(_) => None,
                    }
                };
                if let Some(old) = replaced {
                    tracing::warn!(node = beat.node, name = %beat.name, "cluster node restarted: its previous peers are gone");
                    c.sweep(Sweep::NodeGone(beat.node, Some(old)));
                }
            }
            _ = beat.tick() => {
                let Some(c) = cluster.upgrade() else { return };
                if c.conflict.load(Relaxed) {
                    continue;
                }
                if connected {
                    let _ = c.client.publish(hb_subject.clone(), me.clone()).await;
                    // A round trip proves the bus works (a stuck connection
                    // is not always reported as disconnected).
                    match tokio::time::timeout(timeout, c.client.flush()).await {
                        Ok(Ok(())) => {
                            last_probe_ok = Instant::now();
                            if !c.link.is_up() {
                                c.bus_up().await;
                            }
                        }
                        _ if last_probe_ok.elapsed() >= timeout => c.bus_down("no answer from NATS"),
                        _ => {}
                    }
                } else if last_probe_ok.elapsed() >= timeout {
                    c.bus_down("disconnected from NATS");
                }
            }
            _ = check.tick() => {
                let Some(c) = cluster.upgrade() else { return };
                let gone: Vec<(u16, String)> = {
                    let mut seen = lock(&c.seen);
                    let gone: Vec<(u16, String)> = seen
                        .iter()
                        .filter(|(_, s)| s.last.elapsed() >= timeout)
                        .map(|(&n, s)| (n, s.name.clone()))
                        .collect();
                    for (n, _) in &gone {
                        seen.remove(n);
                    }
                    gone
                };
                for (node, name) in gone {
                    tracing::warn!(node, %name, "cluster node silent for the peer timeout: its peers are gone");
                    c.sweep(Sweep::NodeGone(node, None));
                }
            }
            _ = lease.tick() => {
                let Some(c) = cluster.upgrade() else { return };
                if c.link.is_up() && !c.conflict.load(Relaxed) {
                    match c.slots.renew_lease(c.link.node, &c.cfg.node_name).await {
                        Ok(()) => {}
                        Err(slots::LeaseError::Taken) => c.lost_index(),
                        Err(slots::LeaseError::Bus(e)) => tracing::debug!(error = %e, "lease renewal failed"),
                    }
                }
            }
        }
    }
}

/// Follows one room on the bus while it exists here: subscribes to every
/// node's stream of the room, opens this node's stream, and applies what
/// arrives under the room's lock.
async fn room_task(cluster: Arc<Cluster>, key: RoomName, room: RoomRef<RelayRooms>, id: u64) {
    let Some(Some(closed)) = room.with(|_, r, _| r.cluster_take_closed()) else {
        return;
    };
    let subject = format!("{}.r.{}.*", cluster.prefix, room_token(&key));
    let mut sub = match cluster.client.subscribe(subject.clone()).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(%subject, error = %e, "cluster subscribe failed; closing the room's peers");
            room.with(|host, r, now| r.cluster_sweep(host, now, Sweep::CloseAll));
            return;
        }
    };
    // The server knows the subscription before this node asks for snapshots.
    let _ = tokio::time::timeout(cluster.cfg.peer_timeout, cluster.client.flush()).await;
    lock(&cluster.rooms).insert(id, (key.clone(), room.clone()));
    room.with(|host, r, now| r.cluster_ready(host, now));
    tokio::pin!(closed);
    let counters = &cluster.link.counters;
    loop {
        tokio::select! {
            msg = sub.next() => {
                let Some(msg) = msg else { break };
                counters.messages_in.fetch_add(1, Relaxed);
                counters.bytes_in.fetch_add(msg.payload.len() as u64, Relaxed);
                match wire::decode(&msg.payload) {
                    Ok((pos, body)) => {
                        if room.with(|host, r, now| r.cluster_inbound(host, now, pos, body)).is_none() {
                            break;
                        }
                    }
                    Err(wire::Malformed) => {
                        counters.malformed.fetch_add(1, Relaxed);
                    }
                }
            }
            _ = &mut closed => break,
        }
    }
    lock(&cluster.rooms).remove(&id);
    let _ = sub.unsubscribe().await;
}

/// A room's part of the cluster: its stream, the streams it follows, and
/// the signal that ends its subscription task when the room is dropped.
#[derive(Debug)]
pub struct RoomPart {
    /// This node's stream for the room.
    pub stream: stream::StreamOut,
    /// Other nodes' streams.
    pub sources: stream::Sources,
    cluster: Arc<Cluster>,
    _close: tokio::sync::oneshot::Sender<()>,
    closed: Option<tokio::sync::oneshot::Receiver<()>>,
    counted_remote: usize,
}

impl RoomPart {
    /// The cluster part of a new room.
    pub(crate) fn new(cluster: &Arc<Cluster>, room: &RoomName) -> RoomPart {
        let (tx, rx) = tokio::sync::oneshot::channel();
        RoomPart {
            stream: stream::StreamOut::new(cluster.link.clone(), cluster.stream_subject(room)),
            sources: stream::Sources::new(cluster.link.clone()),
            cluster: cluster.clone(),
            _close: tx,
            closed: Some(rx),
            counted_remote: 0,
        }
    }

    pub(crate) fn take_closed(&mut self) -> Option<tokio::sync::oneshot::Receiver<()>> {
        self.closed.take()
    }

    /// Updates the node's remote-peer gauge after a change.
    pub(crate) fn recount(&mut self) {
        let n = self.sources.remote_count();
        if n != self.counted_remote {
            self.cluster
                .add_remote(n as i64 - self.counted_remote as i64);
            self.counted_remote = n;
        }
    }
}

impl Drop for RoomPart {
    fn drop(&mut self) {
        self.cluster.add_remote(-(self.counted_remote as i64));
    }
}
