//! What the relay load generator's clients send, and the check of every delivery.
//!
//! Each client sends RELAY packets (spec/scene-multiplayer.md §4.1) whose inner packet is a RAW
//! packet (`03` + payload, as `send_bytes`). The payload starts with a [`Stamp`] (sender id,
//! target, sequence number, send time) followed by filler bytes that are fixed per sender. The
//! target of sequence number `n` is a pure function of the room, the sender and `n`
//! ([`Traffic::target`]), so every receiver knows exactly which of a sender's packets are meant
//! for it. An [`Inbox`] per client then checks each delivery: from a room mate, unchanged,
//! meant for this client (spec/scene-multiplayer.md §4.2), and exactly the next one meant for
//! it from that sender (nothing lost, duplicated or reordered); [`Inbox::check_complete`]
//! finds deliveries still missing at the end.

use crate::client::XorShift;
use crate::relay_proto::CMD_RAW;

/// Bytes of the [`Stamp`] at the start of each payload.
pub const STAMP_LEN: usize = 24;

/// Which RELAY targets the senders use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Traffic {
    /// Always target 0: every room mate but the sender.
    Broadcast,
    /// Sequence number `n` goes, by `n % 5`, to: 0 → target 0 (all but the sender);
    /// 1 → one peer, rotating over the room's members including the sender itself (the relay
    /// echoes it back); 2 → −X for a rotating room mate X (all but sender and X); 3 → −1 (all
    /// but the sender); 4 → a peer of another room, or peer 1 when there is one room (must
    /// reach nobody).
    Mixed,
}

impl Traffic {
    /// Parses `broadcast` or `mixed`.
    pub fn parse(s: &str) -> Result<Traffic, String> {
        match s {
            "broadcast" => Ok(Traffic::Broadcast),
            "mixed" => Ok(Traffic::Mixed),
            _ => Err(format!("unknown traffic {s:?} (broadcast or mixed)")),
        }
    }

    /// Name as parsed.
    pub fn name(self) -> &'static str {
        match self {
            Traffic::Broadcast => "broadcast",
            Traffic::Mixed => "mixed",
        }
    }

    /// The RELAY target of packet `seq` of the member at `sender_pos` of `room`.
    pub fn target(self, room: &RoomPlan, sender_pos: usize, seq: u64) -> i32 {
        let m = room.members.len();
        match self {
            Traffic::Broadcast => 0,
            Traffic::Mixed => {
                let r = seq / 5;
                let pick = |offset: usize, span: usize| {
                    let k = (r % span.max(1) as u64) as usize;
                    room.members[(sender_pos + offset + k) % m]
                };
                match seq % 5 {
                    0 => 0,
                    1 => pick(0, m),
                    2 if m >= 2 => -pick(1, m - 1),
                    2 | 3 => -1,
                    _ => room.foreign,
                }
            }
        }
    }
}

/// Whether `receiver` (a member of the sender's room) gets a RELAY packet sent by `sender`
/// with `target` (spec/scene-multiplayer.md §4.2: T > 0 that peer only, T == S allowed;
/// T == 0 every peer but S; T == −X every peer but S and X).
pub fn receives(target: i32, sender: i32, receiver: i32) -> bool {
    match target {
        t if t > 0 => receiver == t,
        0 => receiver != sender,
        t => receiver != sender && i64::from(receiver) != -i64::from(t),
    }
}

/// One room as its clients see it once everyone joined.
#[derive(Debug, Clone)]
pub struct RoomPlan {
    /// Peer ids of the members, in the load generator's order.
    pub members: Vec<i32>,
    /// A target id that is not in this room.
    pub foreign: i32,
    /// (id, position), sorted by id: a binary search is cheaper than hashing on the hot path.
    index: Vec<(i32, usize)>,
    /// Per member: its payload filler (bytes after the stamp).
    fillers: Vec<Vec<u8>>,
}

impl RoomPlan {
    /// A room of `members` (distinct ids) whose payloads are `size` bytes (≥ [`STAMP_LEN`]);
    /// `salt` varies the filler bytes from run to run.
    pub fn new(members: Vec<i32>, foreign: i32, size: usize, salt: u64) -> Result<Self, String> {
        if size < STAMP_LEN {
            return Err(format!("payload size {size} < {STAMP_LEN}"));
        }
        let mut index: Vec<(i32, usize)> = members.iter().copied().zip(0..).collect();
        index.sort_unstable();
        if let Some(w) = index.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(format!("peer id {} was given to two clients", w[0].0));
        }
        if index.binary_search_by_key(&foreign, |e| e.0).is_ok() {
            return Err(format!("foreign id {foreign} is a member"));
        }
        let fillers = members
            .iter()
            .map(|&id| {
                let mut f = vec![0u8; size - STAMP_LEN];
                XorShift::new(salt ^ (id as u32 as u64).wrapping_mul(0x9E37_79B9)).fill(&mut f);
                f
            })
            .collect();
        Ok(Self {
            members,
            foreign,
            index,
            fillers,
        })
    }

    /// Position of `id` among the members.
    pub fn position(&self, id: i32) -> Option<usize> {
        self.index
            .binary_search_by_key(&id, |e| e.0)
            .ok()
            .map(|i| self.index[i].1)
    }

    /// Payload size in bytes.
    pub fn size(&self) -> usize {
        self.fillers
            .first()
            .map_or(STAMP_LEN, |f| f.len() + STAMP_LEN)
    }

    /// How many members get a packet of `sender` with `target`.
    pub fn receivers(&self, sender: i32, target: i32) -> u32 {
        self.members
            .iter()
            .filter(|&&r| receives(target, sender, r))
            .count() as u32
    }

    /// Writes the inner RAW packet (`03` + stamp + filler, 1 + size bytes) of the member at
    /// `pos` into `out`.
    pub fn write_inner(&self, pos: usize, stamp: &Stamp, out: &mut [u8]) {
        out[0] = CMD_RAW;
        stamp.write(&mut out[1..1 + STAMP_LEN]);
        out[1 + STAMP_LEN..].copy_from_slice(&self.fillers[pos]);
    }
}

/// The fields at the start of each payload, all little-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The sender's peer id.
    pub sender: i32,
    /// The RELAY target it used.
    pub target: i32,
    /// The sender's sequence number, from 0.
    pub seq: u64,
    /// Send time, nanoseconds since the run's time base.
    pub sent_ns: u64,
}

impl Stamp {
    /// Encodes into the first [`STAMP_LEN`] bytes of `out`.
    pub fn write(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.sender.to_le_bytes());
        out[4..8].copy_from_slice(&self.target.to_le_bytes());
        out[8..16].copy_from_slice(&self.seq.to_le_bytes());
        out[16..24].copy_from_slice(&self.sent_ns.to_le_bytes());
    }

    /// Decodes the first [`STAMP_LEN`] bytes of `b`.
    pub fn read(b: &[u8]) -> Option<Stamp> {
        let b = b.get(..STAMP_LEN)?;
        let i32_at = |o: usize| i32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let u64_at = |o: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[o..o + 8]);
            u64::from_le_bytes(a)
        };
        Some(Stamp {
            sender: i32_at(0),
            target: i32_at(4),
            seq: u64_at(8),
            sent_ns: u64_at(16),
        })
    }
}

/// A checked delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// Position of the sender among the room's members.
    pub sender_pos: usize,
    /// Its sequence number.
    pub seq: u64,
    /// When it was sent (ns since the time base).
    pub sent_ns: u64,
}

/// The receive-side check of one client.
#[derive(Debug)]
pub struct Inbox {
    me: i32,
    traffic: Traffic,
    /// Per member: the last sequence number received from it.
    last: Vec<Option<u64>>,
    /// Deliveries accepted so far.
    pub delivered: u64,
}

impl Inbox {
    /// The check for client `me` of `room`.
    pub fn new(me: i32, room: &RoomPlan, traffic: Traffic) -> Self {
        Self {
            me,
            traffic,
            last: vec![None; room.members.len()],
            delivered: 0,
        }
    }

    /// The first sequence number in `from..to` that sender `pos` meant for this client.
    fn first_meant(&self, room: &RoomPlan, pos: usize, from: u64, to: u64) -> Option<(u64, i32)> {
        let sender = room.members[pos];
        if self.traffic == Traffic::Broadcast {
            return (sender != self.me && from < to).then_some((from, 0));
        }
        (from..to).find_map(|s| {
            let t = self.traffic.target(room, pos, s);
            receives(t, sender, self.me).then_some((s, t))
        })
    }

    /// Checks one RELAY delivery `07 03 <source> <inner>` received at `now_ns`. `sent(pos)` is
    /// how many packets the member at `pos` has sent so far (a bound for the sequence number).
    pub fn deliver(
        &mut self,
        room: &RoomPlan,
        source: i32,
        inner: &[u8],
        now_ns: u64,
        sent: impl Fn(usize) -> u64,
    ) -> Result<Delivery, String> {
        let me = self.me;
        let Some(pos) = room.position(source) else {
            return Err(format!(
                "misrouted: client {me} got a RELAY from peer {source}, which is not in its room"
            ));
        };
        let size = room.size();
        if inner.len() != 1 + size {
            return Err(format!(
                "corrupted: client {me} got a RELAY from {source} with a {}-byte inner packet, \
                 sent {}",
                inner.len(),
                1 + size
            ));
        }
        if inner[0] != CMD_RAW {
            return Err(format!(
                "corrupted: inner packet from {source} starts with {:#04x}, sent {CMD_RAW:#04x}",
                inner[0]
            ));
        }
        let Some(st) = Stamp::read(&inner[1..]) else {
            return Err("inner packet too short".into());
        };
        if st.sender != source {
            return Err(format!(
                "corrupted or misattributed: client {me} got a RELAY whose header names source \
                 {source} but whose payload was sent by {}",
                st.sender
            ));
        }
        let seq = st.seq;
        let sent_so_far = sent(pos);
        if seq >= sent_so_far {
            return Err(format!(
                "corrupted: client {me} got seq {seq} from {source}, which has sent only \
                 {sent_so_far}"
            ));
        }
        let planned = self.traffic.target(room, pos, seq);
        if st.target != planned {
            return Err(format!(
                "corrupted: seq {seq} from {source} carries target {}, it was sent to {planned}",
                st.target
            ));
        }
        if !receives(planned, source, me) {
            return Err(format!(
                "misrouted: client {me} got seq {seq} from {source}, sent to target {planned}, \
                 which does not include it"
            ));
        }
        let from = match self.last[pos] {
            Some(l) if seq <= l => {
                return Err(format!(
                    "duplicate or reordered: client {me} got seq {seq} from {source} after \
                     seq {l}"
                ))
            }
            Some(l) => l + 1,
            None => 0,
        };
        if let Some((missing, t)) = self.first_meant(room, pos, from, seq) {
            return Err(format!(
                "lost or reordered: client {me} got seq {seq} from {source} before seq \
                 {missing} (target {t}), which was meant for it too"
            ));
        }
        let filler = &inner[1 + STAMP_LEN..];
        let want = &room.fillers[pos];
        if filler != &want[..] {
            let i = filler
                .iter()
                .zip(want)
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            return Err(format!(
                "corrupted: seq {seq} from {source} to {me}: payload byte {} is {:#04x}, sent \
                 {:#04x}",
                STAMP_LEN + i,
                filler[i],
                want[i]
            ));
        }
        if st.sent_ns > now_ns {
            return Err(format!(
                "corrupted: seq {seq} from {source} carries a send time in the future"
            ));
        }
        self.last[pos] = Some(seq);
        self.delivered += 1;
        Ok(Delivery {
            sender_pos: pos,
            seq,
            sent_ns: st.sent_ns,
        })
    }

    /// After every sender stopped: errors if a packet meant for this client was never
    /// delivered. `sent(pos)` is the final count of the member at `pos`.
    pub fn check_complete(
        &self,
        room: &RoomPlan,
        sent: impl Fn(usize) -> u64,
    ) -> Result<(), String> {
        for (pos, &sender) in room.members.iter().enumerate() {
            let from = self.last[pos].map_or(0, |l| l + 1);
            let total = sent(pos);
            if let Some((first, t)) = self.first_meant(room, pos, from, total) {
                let missing = if self.traffic == Traffic::Broadcast {
                    total - first
                } else {
                    (first..total)
                        .filter(|&s| receives(self.traffic.target(room, pos, s), sender, self.me))
                        .count() as u64
                };
                return Err(format!(
                    "lost: client {} never got {missing} packet(s) from {sender} meant for it \
                     (first: seq {first}, target {t}; {total} sent)",
                    self.me
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SIZE: usize = 40;

    fn room() -> RoomPlan {
        RoomPlan::new(vec![10, 20, 30, 40], 99, SIZE, 7).unwrap()
    }

    fn inner(room: &RoomPlan, traffic: Traffic, pos: usize, seq: u64) -> Vec<u8> {
        let stamp = Stamp {
            sender: room.members[pos],
            target: traffic.target(room, pos, seq),
            seq,
            sent_ns: 5,
        };
        let mut v = vec![0u8; 1 + SIZE];
        room.write_inner(pos, &stamp, &mut v);
        v
    }

    #[test]
    fn targets_follow_the_spec() {
        assert!(receives(0, 10, 20) && !receives(0, 10, 10));
        assert!(receives(-1, 10, 20) && !receives(-1, 10, 10));
        assert!(receives(-30, 10, 20) && !receives(-30, 10, 30) && !receives(-30, 10, 10));
        assert!(receives(10, 10, 10) && !receives(10, 10, 20));
        assert!(!receives(i32::MIN, 10, 10));
        let r = room();
        let t = Traffic::Mixed;
        // Every form appears, each with the expected receiver count.
        let kinds: Vec<(i32, u32)> = (0..5)
            .map(|s| {
                let tg = t.target(&r, 1, s);
                (tg, r.receivers(20, tg))
            })
            .collect();
        assert_eq!(kinds, vec![(0, 3), (20, 1), (-30, 2), (-1, 3), (99, 0)]);
        // The one-peer target rotates over every member, the excluded one over the mates.
        let ones: Vec<i32> = (0..4).map(|k| t.target(&r, 1, 1 + 5 * k)).collect();
        assert_eq!(ones, vec![20, 30, 40, 10]);
        let excl: Vec<i32> = (0..3).map(|k| t.target(&r, 1, 2 + 5 * k)).collect();
        assert_eq!(excl, vec![-30, -40, -10]);
        assert!(RoomPlan::new(vec![1, 1], 5, SIZE, 0).is_err());
        assert!(RoomPlan::new(vec![1, 2], 5, 10, 0).is_err());
    }

    /// Feeds every packet of senders 0..4 meant for `me`, in order, through an inbox.
    #[test]
    fn correct_stream_passes_for_every_receiver() {
        let r = room();
        for traffic in [Traffic::Broadcast, Traffic::Mixed] {
            for me_pos in 0..4 {
                let me = r.members[me_pos];
                let mut inbox = Inbox::new(me, &r, traffic);
                let mut expected = 0;
                for seq in 0..200u64 {
                    for pos in 0..4 {
                        let tg = traffic.target(&r, pos, seq);
                        if receives(tg, r.members[pos], me) {
                            expected += 1;
                            inbox
                                .deliver(
                                    &r,
                                    r.members[pos],
                                    &inner(&r, traffic, pos, seq),
                                    9,
                                    |_| 200,
                                )
                                .unwrap();
                        }
                    }
                }
                assert_eq!(inbox.delivered, expected);
                inbox.check_complete(&r, |_| 200).unwrap();
                // One more packet sent that never arrived.
                let late = (200..400)
                    .find(|&s| (0..4).any(|p| receives(traffic.target(&r, p, s), r.members[p], me)))
                    .unwrap();
                let err = inbox.check_complete(&r, |_| late + 1).unwrap_err();
                assert!(err.starts_with("lost:"), "{err}");
            }
        }
    }

    #[test]
    fn every_fault_is_caught() {
        let r = room();
        let t = Traffic::Broadcast;
        let ok = |inbox: &mut Inbox, pos: usize, seq: u64| {
            inbox
                .deliver(&r, r.members[pos], &inner(&r, t, pos, seq), 9, |_| 100)
                .unwrap();
        };
        let err = |inbox: &mut Inbox, src: i32, bytes: &[u8]| {
            inbox.deliver(&r, src, bytes, 9, |_| 100).unwrap_err()
        };
        let mut inbox = Inbox::new(20, &r, t);
        ok(&mut inbox, 0, 0);
        // Duplicate.
        let e = err(&mut inbox, 10, &inner(&r, t, 0, 0));
        assert!(e.starts_with("duplicate"), "{e}");
        // Lost (seq 1 skipped).
        let e = err(&mut inbox, 10, &inner(&r, t, 0, 2));
        assert!(e.starts_with("lost or reordered"), "{e}");
        // Corrupted filler byte.
        let mut b = inner(&r, t, 0, 1);
        b[1 + SIZE - 1] ^= 1;
        let e = err(&mut inbox, 10, &b);
        assert!(e.contains("payload byte 39"), "{e}");
        // Wrong source in the relay header.
        let e = err(&mut inbox, 30, &inner(&r, t, 0, 1));
        assert!(e.contains("misattributed"), "{e}");
        // Not a room mate.
        let e = err(&mut inbox, 77, &inner(&r, t, 0, 1));
        assert!(e.starts_with("misrouted"), "{e}");
        // Own broadcast echoed back to the sender.
        let e = err(&mut inbox, 20, &inner(&r, t, 1, 0));
        assert!(e.starts_with("misrouted"), "{e}");
        // Truncated, wrong command byte, never-sent seq, future timestamp.
        let e = err(&mut inbox, 10, &inner(&r, t, 0, 1)[..SIZE]);
        assert!(e.contains("inner packet"), "{e}");
        let mut b = inner(&r, t, 0, 1);
        b[0] = 0;
        assert!(err(&mut inbox, 10, &b).contains("starts with"));
        assert!(err(&mut inbox, 10, &inner(&r, t, 0, 100)).contains("has sent only"));
        let e = inbox
            .deliver(&r, 10, &inner(&r, t, 0, 1), 4, |_| 100)
            .unwrap_err();
        assert!(e.contains("future"), "{e}");
        // Still accepts the right next packet after all that.
        ok(&mut inbox, 0, 1);
        // Mixed: a packet whose target excludes the receiver.
        let m = Traffic::Mixed;
        let mut inbox = Inbox::new(40, &r, m);
        // Seq 1 of member 1 goes to peer 20 only.
        let e = inbox
            .deliver(&r, 20, &inner(&r, m, 1, 1), 9, |_| 100)
            .unwrap_err();
        assert!(e.starts_with("misrouted"), "{e}");
        // Target field rewritten.
        let mut b = inner(&r, m, 1, 0);
        b[1 + 4] = 7;
        assert!(err(&mut inbox, 20, &b).contains("carries target"));
    }
}
