//! What the cluster keeps in JetStream key-value buckets (in memory on the
//! NATS server; rebuilt by the nodes after a NATS restart):
//!
//! - `wsmp_<name>_nodes`, key `node.<n>`: the lease of node index `n` (its
//!   peer-id range, see the [parent module](super)). Created only if absent,
//!   so two live nodes never hold one index; refreshed while the node is up
//!   (compare-and-set on the revision); it expires [`lease_ttl`] after the
//!   node stopped refreshing it.
//! - `wsmp_<name>_rooms`, key `room.<room>`: the members each node holds in
//!   the room, `{"<node>": [incarnation, count], …}`. A node admits a client
//!   only after raising its own count with a compare-and-set that checks the
//!   total against `--room-max-peers`: two nodes racing for a room's last
//!   slot cannot both win (the loser re-reads, sees the room full, answers
//!   503). Counts of nodes that are gone (no heartbeat for the peer timeout,
//!   or another incarnation) are left out of the total and removed; a node
//!   whose bus has been up for less than a peer timeout counts every entry
//!   (it may not have heard every live node yet), so it can under-admit for
//!   a few seconds, never over-admit.
//!
//! Requests of one room on one node are batched: one compare-and-set grants
//! every waiting client it can, so contention is between nodes only.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use async_nats::Client;
use tokio::sync::oneshot;

use super::{room_token, Cluster, ClusterConfig, MAX_NODE_INDEX};
use crate::rooms::RoomName;

/// How long a node index stays leased after its node stopped refreshing it.
pub fn lease_ttl(peer_timeout: Duration) -> Duration {
    (peer_timeout * 3).max(Duration::from_secs(3))
}

/// Why a cluster-wide slot was not reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotError {
    /// The room has `--room-max-peers` members over the cluster (HTTP 503).
    RoomFull,
    /// The bus or the bucket cannot be reached (HTTP 503).
    Unavailable,
}

/// Why the lease of the node index could not be renewed.
#[derive(Debug)]
pub enum LeaseError {
    /// Another node holds it.
    Taken,
    /// The bus failed.
    Bus(String),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Debug, Default)]
struct SlotState {
    /// Slots granted and not released.
    count: usize,
    /// What the bucket holds for this node (`None`: unknown).
    written: Option<usize>,
    waiting: VecDeque<oneshot::Sender<Result<RoomSlot, SlotError>>>,
    running: bool,
}

#[derive(Debug)]
struct RoomSlots {
    room: RoomName,
    key: String,
    state: Mutex<SlotState>,
}

/// A member slot of a room held cluster-wide; dropping it releases it.
#[derive(Debug)]
pub struct RoomSlot {
    slots: Arc<Inner>,
    room: Arc<RoomSlots>,
}

impl Drop for RoomSlot {
    fn drop(&mut self) {
        let start = {
            let mut st = lock(&self.room.state);
            st.count = st.count.saturating_sub(1);
            !std::mem::replace(&mut st.running, true)
        };
        if start {
            spawn_worker(self.slots.clone(), self.room.clone());
        }
    }
}

#[derive(Debug)]
struct Inner {
    js: jetstream::Context,
    nodes_bucket: String,
    rooms_bucket: String,
    ttl: Duration,
    limit: usize,
    incarnation: u64,
    nodes: Mutex<Option<kv::Store>>,
    rooms_store: Mutex<Option<kv::Store>>,
    rooms: Mutex<HashMap<RoomName, Arc<RoomSlots>>>,
    owner: Mutex<Weak<Cluster>>,
    /// Our node index, once leased.
    node: Mutex<Option<(u16, u64)>>,
}

/// The node's buckets. See the [module docs](self).
#[derive(Debug)]
pub struct Slots(Arc<Inner>);

type Counts = BTreeMap<u16, (u64, usize)>;

fn lease_value(incarnation: u64, name: &str) -> bytes::Bytes {
    bytes::Bytes::from(format!("{incarnation:016x} {name}"))
}

impl Slots {
    pub(super) fn new(client: Client, cfg: &ClusterConfig, incarnation: u64) -> Slots {
        let mut js = jetstream::new(client);
        js.set_timeout(
            cfg.peer_timeout
                .clamp(Duration::from_secs(1), Duration::from_secs(5)),
        );
        Slots(Arc::new(Inner {
            js,
            nodes_bucket: format!("wsmp_{}_nodes", cfg.name),
            rooms_bucket: format!("wsmp_{}_rooms", cfg.name),
            ttl: lease_ttl(cfg.peer_timeout),
            limit: cfg.room_max_peers,
            incarnation,
            nodes: Mutex::new(None),
            rooms_store: Mutex::new(None),
            rooms: Mutex::new(HashMap::new()),
            owner: Mutex::new(Weak::new()),
            node: Mutex::new(None),
        }))
    }

    pub(super) fn set_owner(&self, owner: Weak<Cluster>) {
        *lock(&self.0.owner) = owner;
    }

    /// Opens (creating if needed) both buckets.
    pub(super) async fn ensure_buckets(&self) -> Result<(), String> {
        let i = &self.0;
        let nodes = open_bucket(&i.js, &i.nodes_bucket, i.ttl).await?;
        let rooms = open_bucket(&i.js, &i.rooms_bucket, Duration::ZERO).await?;
        *lock(&i.nodes) = Some(nodes);
        *lock(&i.rooms_store) = Some(rooms);
        Ok(())
    }

    fn nodes(&self) -> Result<kv::Store, String> {
        lock(&self.0.nodes)
            .clone()
            .ok_or_else(|| "no bucket".to_string())
    }

    /// Leases the first free node index (starting from one derived from
    /// the node name, so restarts tend to keep theirs).
    pub(super) async fn acquire_index(&self, name: &str) -> Result<u16, String> {
        let store = self.nodes()?;
        let start = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        let value = lease_value(self.0.incarnation, name);
        for i in 0..u64::from(MAX_NODE_INDEX) {
            let node = ((start + i) % u64::from(MAX_NODE_INDEX) + 1) as u16;
            match store.create(format!("node.{node}"), value.clone()).await {
                Ok(rev) => {
                    *lock(&self.0.node) = Some((node, rev));
                    return Ok(node);
                }
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => continue,
                Err(e) => return Err(format!("cluster node index: {e}")),
            }
        }
        Err(format!(
            "cluster node index: all {MAX_NODE_INDEX} indexes are leased"
        ))
    }

    /// Refreshes the lease of `node` (re-creating it after a NATS restart).
    pub(super) async fn renew_lease(&self, node: u16, name: &str) -> Result<(), LeaseError> {
        let store = self.nodes().map_err(LeaseError::Bus)?;
        let key = format!("node.{node}");
        let value = lease_value(self.0.incarnation, name);
        let rev = lock(&self.0.node).map(|(_, r)| r);
        if let Some(rev) = rev {
            if let Ok(new) = store.update(&key, value.clone(), rev).await {
                *lock(&self.0.node) = Some((node, new));
                return Ok(());
            }
        }
        match store.entry(key.clone()).await {
            Ok(Some(e)) if e.operation == kv::Operation::Put => {
                if e.value != value {
                    return Err(LeaseError::Taken);
                }
                let new = store
                    .update(&key, value, e.revision)
                    .await
                    .map_err(|e| LeaseError::Bus(e.to_string()))?;
                *lock(&self.0.node) = Some((node, new));
                Ok(())
            }
            Ok(_) => match store.create(&key, value).await {
                Ok(new) => {
                    *lock(&self.0.node) = Some((node, new));
                    Ok(())
                }
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Err(LeaseError::Taken),
                Err(e) => Err(LeaseError::Bus(e.to_string())),
            },
            Err(e) => Err(LeaseError::Bus(e.to_string())),
        }
    }

    /// Reserves a member slot of `room` (see the [module docs](self)).
    pub(super) async fn reserve(&self, room: RoomName) -> Result<RoomSlot, SlotError> {
        let (tx, rx) = oneshot::channel();
        let (slots, start) = {
            let mut rooms = lock(&self.0.rooms);
            let slots = rooms
                .entry(room.clone())
                .or_insert_with(|| {
                    Arc::new(RoomSlots {
                        key: format!("room.{}", room_token(&room)),
                        room: room.clone(),
                        state: Mutex::new(SlotState::default()),
                    })
                })
                .clone();
            let start = {
                let mut st = lock(&slots.state);
                st.waiting.push_back(tx);
                !std::mem::replace(&mut st.running, true)
            };
            (slots, start)
        };
        if start {
            spawn_worker(self.0.clone(), slots);
        }
        // A dropped waiter (handshake timeout) releases what it was granted:
        // the worker's send fails and the slot is dropped there.
        rx.await.unwrap_or(Err(SlotError::Unavailable))
    }

    /// After the bus came back: every room's count is written again.
    pub(super) fn resync(&self) {
        let rooms: Vec<Arc<RoomSlots>> = lock(&self.0.rooms).values().cloned().collect();
        for r in rooms {
            let start = {
                let mut st = lock(&r.state);
                st.written = None;
                !std::mem::replace(&mut st.running, true)
            };
            if start {
                spawn_worker(self.0.clone(), r);
            }
        }
    }
}

async fn open_bucket(
    js: &jetstream::Context,
    bucket: &str,
    max_age: Duration,
) -> Result<kv::Store, String> {
    if let Ok(store) = js.get_key_value(bucket).await {
        return Ok(store);
    }
    // The stream of a key-value bucket, as async-nats' `create_key_value`
    // configures it; created here because that call first reads the
    // account info in a form that NATS servers before 2.10 (Debian's 2.9)
    // do not send.
    let config = jetstream::stream::Config {
        name: format!("KV_{bucket}"),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        max_bytes: -1,
        max_age,
        max_message_size: -1,
        storage: jetstream::stream::StorageType::Memory,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        num_replicas: 1,
        discard: jetstream::stream::DiscardPolicy::New,
        duplicate_window: if max_age.is_zero() {
            Duration::from_secs(120)
        } else {
            max_age.min(Duration::from_secs(120))
        },
        ..Default::default()
    };
    match js.create_stream(config).await {
        Ok(_) => {}
        // Another node created it meanwhile: opened below.
        Err(e) => tracing::debug!(bucket, error = %e, "bucket not created here"),
    }
    js.get_key_value(bucket)
        .await
        .map_err(|e| format!("cluster bucket {bucket}: {e}"))
}

fn spawn_worker(inner: Arc<Inner>, room: Arc<RoomSlots>) {
    tokio::spawn(worker(inner, room));
}

/// Brings the bucket in line with this node's count of one room, granting
/// the waiting requests it can. See the [module docs](self).
async fn worker(inner: Arc<Inner>, room: Arc<RoomSlots>) {
    let mut failures = 0u32;
    loop {
        let (waiting, base) = {
            let mut st = lock(&room.state);
            if st.waiting.is_empty() && st.written == Some(st.count) {
                st.running = false;
                drop(st);
                retire(&inner, &room);
                return;
            }
            (st.waiting.len(), st.count)
        };
        let result = write_count(&inner, &room.key, waiting, base).await;
        let mut grants = Vec::new();
        let mut refusals = Vec::new();
        let stop = {
            let mut st = lock(&room.state);
            match result {
                Ok(granted) => {
                    failures = 0;
                    st.written = Some(base + granted);
                    st.count += granted;
                    for _ in 0..granted {
                        grants.extend(st.waiting.pop_front());
                    }
                    for _ in granted..waiting {
                        refusals.extend(st.waiting.pop_front().map(|t| (t, SlotError::RoomFull)));
                    }
                    false
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(room = %room.room, error = %e, "cluster room slots not written");
                    st.written = None;
                    for _ in 0..waiting {
                        refusals
                            .extend(st.waiting.pop_front().map(|t| (t, SlotError::Unavailable)));
                    }
                    // The bus-up resync writes it again; meanwhile stop.
                    let down = inner_owner(&inner).is_none_or(|c| !c.link.is_up());
                    if down || failures >= 5 {
                        st.running = false;
                        true
                    } else {
                        false
                    }
                }
            }
        };
        for tx in grants {
            let slot = RoomSlot {
                slots: inner.clone(),
                room: room.clone(),
            };
            // A waiter that gave up drops the slot here (released).
            let _ = tx.send(Ok(slot));
        }
        for (tx, e) in refusals {
            let _ = tx.send(Err(e));
        }
        if stop {
            return;
        }
        if failures > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn inner_owner(inner: &Inner) -> Option<Arc<Cluster>> {
    lock(&inner.owner).upgrade()
}

/// Forgets an idle room (map lock, then the room's: no worker can start on
/// it meanwhile).
fn retire(inner: &Inner, room: &Arc<RoomSlots>) {
    let mut rooms = lock(&inner.rooms);
    let idle = {
        let st = lock(&room.state);
        !st.running && st.count == 0 && st.waiting.is_empty() && st.written == Some(0)
    };
    if idle && rooms.get(&room.room).is_some_and(|r| Arc::ptr_eq(r, room)) {
        rooms.remove(&room.room);
    }
}

/// One compare-and-set round: sets this node's count to `base` plus what
/// it can grant of `waiting`; returns the grant.
async fn write_count(
    inner: &Inner,
    key: &str,
    waiting: usize,
    base: usize,
) -> Result<usize, String> {
    let store = lock(&inner.rooms_store)
        .clone()
        .ok_or_else(|| "no bucket".to_string())?;
    let cluster = inner_owner(inner).ok_or_else(|| "stopped".to_string())?;
    let me = cluster.link.node;
    for attempt in 0..32u32 {
        let entry = store
            .entry(key.to_string())
            .await
            .map_err(|e| e.to_string())?;
        let (mut counts, revision): (Counts, Option<u64>) = match entry {
            Some(e) if e.operation == kv::Operation::Put => (
                serde_json::from_slice(&e.value).unwrap_or_default(),
                Some(e.revision),
            ),
            Some(e) => (Counts::new(), Some(e.revision)),
            None => (Counts::new(), None),
        };
        let settled = cluster.settled();
        counts.retain(|&node, &mut (inc, n)| {
            n > 0 && (node == me || !settled || cluster.is_alive(node, inc))
        });
        counts.remove(&me);
        let others: usize = counts.values().map(|&(_, n)| n).sum();
        let free = inner.limit.saturating_sub(others + base);
        let granted = waiting.min(free);
        let mine = base + granted;
        if mine > 0 {
            counts.insert(me, (inner.incarnation, mine));
        }
        let value = bytes::Bytes::from(serde_json::to_vec(&counts).map_err(|e| e.to_string())?);
        let written = match revision {
            Some(rev) => store
                .update(key, value, rev)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            None => store
                .create(key, value)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
        };
        match written {
            Ok(()) => return Ok(granted),
            Err(e) => {
                tracing::trace!(key, attempt, error = %e, "room slots: compare-and-set lost; retrying");
                // Another node wrote first: re-read (with a little jitter).
                let jitter = (u64::from(me) * 7 + u64::from(attempt) * 13) % 10;
                tokio::time::sleep(Duration::from_millis(jitter)).await;
            }
        }
    }
    Err("too much contention on the room's slots".into())
}
