//! Admission that cannot be raced: relay, room, authentication and
//! per-address slots are reserved when an upgrade is admitted, before the
//! `101` is sent, and released when the connection ends.
//!
//! - A peer that joins without an authentication exchange (no auth, or a
//!   signed token in the handshake) takes a **member** slot of its room at
//!   once: the loser of a race for a room's last slot gets HTTP 503, never a
//!   `101` followed by a close.
//! - A peer that must authenticate takes a **pending-auth** slot instead: it
//!   is not a room member until it authenticated (then its slot is
//!   converted, see [`Ticket::promote`]). Pending-auth slots are bounded per
//!   room (`--max-pending-auth`) and over the relay
//!   (`--max-pending-auth-total`), and one address may hold at most half of
//!   either budget, so clients that never authenticate cannot keep others
//!   out.
//! - Every connection of an address counts against `--max-conns-per-ip`
//!   (IPv4: the address; IPv6: its /64 prefix); the excess gets HTTP 429.
//!
//! The registry is one mutex touched on admission and on disconnect only —
//! never by the data path.
//!
//! In a cluster the room limit holds over every node: the ticket also
//! carries a cluster-wide room slot ([`crate::cluster::RoomSlot`], reserved
//! with a compare-and-set in a NATS key-value bucket before the `101`, see
//! [`Ticket::attach_cluster_slot`]); the other limits stay per node. A
//! client that must authenticate takes its cluster-wide member slot at
//! upgrade time already (a slot cannot be reserved inside the room's
//! critical section), so clients authenticating in a clustered room count
//! against `--room-max-peers`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

pub use crate::proxy::IpKey;
use crate::rooms::RoomName;

/// The limits admission enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most WebSocket peers over all rooms (members and authenticating).
    pub max_peers: usize,
    /// Most members of one room.
    pub room_max_peers: usize,
    /// Most peers authenticating in one room at once.
    pub max_pending_auth: usize,
    /// Most peers authenticating over the relay at once.
    pub max_pending_auth_total: usize,
    /// Most connections (of any kind) from one address.
    pub max_conns_per_ip: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_peers: 4096,
            room_max_peers: 64,
            max_pending_auth: 16,
            max_pending_auth_total: 1024,
            max_conns_per_ip: 256,
        }
    }
}

/// Why a connection cannot join.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// The path is not a room (HTTP 404).
    NotFound,
    /// The relay has `max_peers` peers (HTTP 503).
    RelayFull,
    /// The room has `room_max_peers` members (HTTP 503).
    RoomFull,
    /// Too many clients are authenticating in this room or in the relay, or
    /// this address holds its share of them (HTTP 503).
    AuthQueueFull,
    /// The address has `max_conns_per_ip` connections (HTTP 429).
    TooManyFromAddress,
    /// The relay is draining before it stops (HTTP 503).
    Draining,
}

impl Refusal {
    /// The HTTP status to answer the upgrade request with.
    pub const fn status(self) -> u16 {
        match self {
            Refusal::NotFound => 404,
            Refusal::TooManyFromAddress => 429,
            Refusal::RelayFull | Refusal::RoomFull | Refusal::AuthQueueFull | Refusal::Draining => {
                503
            }
        }
    }

    /// A short human-readable reason (the response body and logs).
    pub const fn reason(self) -> &'static str {
        match self {
            Refusal::NotFound => "Not Found",
            Refusal::RelayFull => "relay full",
            Refusal::RoomFull => "room full",
            Refusal::AuthQueueFull => "too many clients authenticating",
            Refusal::TooManyFromAddress => "too many connections from this address",
            Refusal::Draining => "relay is shutting down",
        }
    }
}

#[derive(Debug, Default)]
struct RoomCounts {
    members: usize,
    pending: usize,
    pending_by_ip: HashMap<IpKey, usize>,
}

#[derive(Debug, Default)]
struct State {
    peers: usize,
    pending_total: usize,
    pending_by_ip: HashMap<IpKey, usize>,
    conns_by_ip: HashMap<IpKey, usize>,
    rooms: HashMap<RoomName, RoomCounts>,
}

/// The admission registry. See the [module docs](self).
#[derive(Debug)]
pub struct Admission {
    limits: Limits,
    state: Mutex<State>,
}

/// Counts of one room, for `/stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RoomLoad {
    /// Room members.
    pub members: usize,
    /// Peers authenticating.
    pub pending: usize,
}

/// Admission counts at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Load {
    /// WebSocket peers (members and authenticating).
    pub peers: usize,
    /// Peers authenticating.
    pub pending: usize,
    /// Per room (rooms with at least one peer).
    pub rooms: BTreeMap<String, RoomLoad>,
}

fn half(n: usize) -> usize {
    n.div_ceil(2).max(1)
}

impl Admission {
    /// A registry enforcing `limits`.
    pub fn new(limits: Limits) -> Arc<Admission> {
        Arc::new(Admission {
            limits,
            state: Mutex::new(State::default()),
        })
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves what a connection from `ip` joining `room` needs: a member
    /// slot, or (`pending_auth`) an authentication slot. The reservation is
    /// held by the returned ticket until it is dropped.
    pub fn reserve(
        self: &Arc<Self>,
        room: &RoomName,
        ip: IpKey,
        pending_auth: bool,
    ) -> Result<Ticket, Refusal> {
        let l = self.limits;
        let mut st = self.lock();
        if st.conns_by_ip.get(&ip).copied().unwrap_or(0) >= l.max_conns_per_ip {
            return Err(Refusal::TooManyFromAddress);
        }
        if st.peers >= l.max_peers {
            return Err(Refusal::RelayFull);
        }
        let room_counts = st.rooms.get(room);
        let members = room_counts.map_or(0, |r| r.members);
        if pending_auth {
            let pending = room_counts.map_or(0, |r| r.pending);
            let pending_ip = room_counts
                .and_then(|r| r.pending_by_ip.get(&ip))
                .copied()
                .unwrap_or(0);
            let pending_ip_total = st.pending_by_ip.get(&ip).copied().unwrap_or(0);
            // A full room refuses authenticating clients too: they could not
            // become members.
            if members >= l.room_max_peers {
                return Err(Refusal::RoomFull);
            }
            if pending >= l.max_pending_auth
                || pending_ip >= half(l.max_pending_auth)
                || st.pending_total >= l.max_pending_auth_total
                || pending_ip_total >= half(l.max_pending_auth_total)
            {
                return Err(Refusal::AuthQueueFull);
            }
        } else if members >= l.room_max_peers {
            return Err(Refusal::RoomFull);
        }
        st.peers += 1;
        *st.conns_by_ip.entry(ip).or_insert(0) += 1;
        let r = st.rooms.entry(room.clone()).or_default();
        if pending_auth {
            r.pending += 1;
            *r.pending_by_ip.entry(ip).or_insert(0) += 1;
            st.pending_total += 1;
            *st.pending_by_ip.entry(ip).or_insert(0) += 1;
        } else {
            r.members += 1;
        }
        Ok(Ticket {
            admission: self.clone(),
            room: room.clone(),
            ip,
            member: !pending_auth,
            cluster: None,
        })
    }

    /// The counts now (room names included: for the admin listener only).
    pub fn load(&self) -> Load {
        let st = self.lock();
        Load {
            peers: st.peers,
            pending: st.pending_total,
            rooms: st
                .rooms
                .iter()
                .map(|(k, r)| {
                    (
                        k.to_string(),
                        RoomLoad {
                            members: r.members,
                            pending: r.pending,
                        },
                    )
                })
                .collect(),
        }
    }
}

fn decrement<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: &K) {
    if let Some(n) = map.get_mut(key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(key);
        }
    }
}

/// A reservation made by [`Admission::reserve`]; dropping it releases it.
#[derive(Debug)]
pub struct Ticket {
    admission: Arc<Admission>,
    room: RoomName,
    ip: IpKey,
    member: bool,
    /// The cluster-wide room slot, in a cluster (released with the ticket).
    cluster: Option<crate::cluster::RoomSlot>,
}

impl Ticket {
    /// True when the ticket holds a member slot (no authentication needed,
    /// or already promoted).
    pub fn is_member(&self) -> bool {
        self.member
    }

    /// The room reserved.
    pub fn room(&self) -> &RoomName {
        &self.room
    }

    /// Holds a cluster-wide slot of the room with this ticket: released
    /// when the ticket is dropped.
    pub fn attach_cluster_slot(&mut self, slot: crate::cluster::RoomSlot) {
        self.cluster = Some(slot);
    }

    /// Converts an authentication slot into a member slot once the peer
    /// authenticated. Fails (keeping the authentication slot) when the room
    /// filled up meanwhile.
    pub fn promote(&mut self) -> Result<(), Refusal> {
        if self.member {
            return Ok(());
        }
        let limit = self.admission.limits.room_max_peers;
        let mut st = self.admission.lock();
        let State {
            rooms,
            pending_total,
            pending_by_ip,
            ..
        } = &mut *st;
        let Some(r) = rooms.get_mut(&self.room) else {
            return Err(Refusal::RoomFull);
        };
        if r.members >= limit {
            return Err(Refusal::RoomFull);
        }
        r.members += 1;
        r.pending = r.pending.saturating_sub(1);
        decrement(&mut r.pending_by_ip, &self.ip);
        *pending_total = pending_total.saturating_sub(1);
        decrement(pending_by_ip, &self.ip);
        self.member = true;
        Ok(())
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut st = self.admission.lock();
        st.peers = st.peers.saturating_sub(1);
        decrement(&mut st.conns_by_ip, &self.ip);
        if !self.member {
            st.pending_total = st.pending_total.saturating_sub(1);
            decrement(&mut st.pending_by_ip, &self.ip);
        }
        let empty = match st.rooms.get_mut(&self.room) {
            Some(r) => {
                if self.member {
                    r.members = r.members.saturating_sub(1);
                } else {
                    r.pending = r.pending.saturating_sub(1);
                    decrement(&mut r.pending_by_ip, &self.ip);
                }
                r.members == 0 && r.pending == 0
            }
            None => false,
        };
        if empty {
            st.rooms.remove(&self.room);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn ip(last: u8) -> IpKey {
        IpKey::of(IpAddr::from([10, 0, 0, last]))
    }

    fn room(name: &str) -> RoomName {
        RoomName::named(name).expect("room")
    }

    #[test]
    fn member_slots_are_reserved_at_admission() {
        let a = Admission::new(Limits {
            room_max_peers: 2,
            ..Limits::default()
        });
        let t1 = a.reserve(&room("r"), ip(1), false).expect("1");
        let _t2 = a.reserve(&room("r"), ip(2), false).expect("2");
        assert_eq!(
            a.reserve(&room("r"), ip(3), false).err(),
            Some(Refusal::RoomFull)
        );
        assert!(a.reserve(&room("other"), ip(3), false).is_ok());
        drop(t1);
        assert!(a.reserve(&room("r"), ip(3), false).is_ok());
    }

    #[test]
    fn one_address_holds_at_most_half_of_the_auth_budget() {
        let a = Admission::new(Limits {
            max_pending_auth: 8,
            ..Limits::default()
        });
        let squatters: Vec<Ticket> = (0..4)
            .map(|_| a.reserve(&room("r"), ip(1), true).expect("share"))
            .collect();
        assert_eq!(
            a.reserve(&room("r"), ip(1), true).err(),
            Some(Refusal::AuthQueueFull)
        );
        // Another address still gets in, and squatters never count as members.
        let mut legit = a.reserve(&room("r"), ip(2), true).expect("legit");
        legit.promote().expect("promote");
        let load = a.load();
        assert_eq!(
            load.rooms["/room/r"],
            RoomLoad {
                members: 1,
                pending: 4
            }
        );
        drop(squatters);
        assert_eq!(a.load().pending, 0);
    }

    #[test]
    fn promotion_fails_when_the_room_filled_up() {
        let a = Admission::new(Limits {
            room_max_peers: 1,
            ..Limits::default()
        });
        let mut pending = a.reserve(&room("r"), ip(1), true).expect("pending");
        let _member = a.reserve(&room("r"), ip(2), false).expect("member");
        assert_eq!(pending.promote(), Err(Refusal::RoomFull));
        assert!(!pending.is_member());
        drop(pending);
        assert_eq!(a.load().pending, 0);
        assert_eq!(a.load().peers, 1);
    }

    #[test]
    fn connections_per_address_and_ipv6_prefixes() {
        let a = Admission::new(Limits {
            max_conns_per_ip: 2,
            ..Limits::default()
        });
        let v6 = |s: &str| IpKey::of(s.parse::<IpAddr>().expect("ip"));
        let _x = a.reserve(&room("a"), v6("2001:db8::1"), false).expect("1");
        let _y = a
            .reserve(&room("b"), v6("2001:db8::ffff"), false)
            .expect("2");
        assert_eq!(
            a.reserve(&room("c"), v6("2001:db8::2"), false).err(),
            Some(Refusal::TooManyFromAddress)
        );
        assert!(a.reserve(&room("c"), v6("2001:db8:0:1::2"), false).is_ok());
        assert_eq!(Refusal::TooManyFromAddress.status(), 429);
        assert_eq!(v6("::ffff:10.0.0.1"), ip(1));
    }

    #[test]
    fn relay_limit() {
        let a = Admission::new(Limits {
            max_peers: 1,
            ..Limits::default()
        });
        let _t = a.reserve(&room("a"), ip(1), false).expect("1");
        assert_eq!(
            a.reserve(&room("b"), ip(2), true).err(),
            Some(Refusal::RelayFull)
        );
    }
}
