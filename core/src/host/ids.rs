//! Peer ids, targets, and the 4-byte id message.
//!
//! The id message is the only framing this layer adds (Godot 4): kept here
//! in one place so another framing (Godot 3.x, spec §7) can be added later.

use core::fmt;
use rand_core::RngCore;

/// A peer id as the engine numbers them: 1 is the server, clients are
/// 2..=2³¹−1 (spec/websocket-peer.md §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerId(i32);

impl PeerId {
    /// The server, always peer 1 (spec/websocket-peer.md §3.2 `TARGET_PEER_SERVER`).
    pub const SERVER: PeerId = PeerId(1);

    /// A peer id from the engine's integer (`Some` for 1..=2³¹−1).
    pub const fn new(id: i32) -> Option<PeerId> {
        if id >= 1 {
            Some(PeerId(id))
        } else {
            None
        }
    }

    /// The engine's integer.
    pub const fn get(self) -> i32 {
        self.0
    }

    /// Draws a client id uniformly from 2..=2³¹−1 (never 0 or 1,
    /// spec/websocket-peer.md §3.2), retrying while `in_use` says it is taken:
    /// unlike the engine, we never hand out an id that is in use.
    pub fn random<R: RngCore + ?Sized>(
        rng: &mut R,
        mut in_use: impl FnMut(PeerId) -> bool,
    ) -> PeerId {
        loop {
            let id = (rng.next_u32() & 0x7FFF_FFFF) as i32;
            if id >= 2 && !in_use(PeerId(id)) {
                return PeerId(id);
            }
        }
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a packet goes (spec/websocket-peer.md §3.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// One peer.
    Peer(PeerId),
    /// Every connected peer (the engine's target 0).
    Broadcast,
    /// Every connected peer but this one (the engine's negative target).
    AllExcept(PeerId),
}

impl Target {
    /// The engine's integer form: `id > 0` one peer, `0` everyone, `-id`
    /// everyone except `id`. `i32::MIN` has no positive counterpart: `None`.
    pub fn from_godot(target: i32) -> Option<Target> {
        match target {
            0 => Some(Target::Broadcast),
            t if t > 0 => Some(Target::Peer(PeerId(t))),
            t => t.checked_neg().map(|id| Target::AllExcept(PeerId(id))),
        }
    }

    /// The engine's integer form of this target.
    pub fn to_godot(self) -> i32 {
        match self {
            Target::Peer(id) => id.0,
            Target::Broadcast => 0,
            Target::AllExcept(id) => -id.0,
        }
    }
}

/// Length of the id message payload (spec/websocket-peer.md §3.7).
pub const ID_MESSAGE_LEN: usize = 4;

/// The payload announcing `id` to a new client: exactly 4 bytes, the id as a
/// little-endian i32, no header (spec/websocket-peer.md §3.7).
pub fn encode_id_message(id: PeerId) -> [u8; ID_MESSAGE_LEN] {
    id.0.to_le_bytes()
}

/// Reads the first message a client receives: `Some(id)` when it is exactly
/// 4 bytes holding a little-endian id ≥ 2 (spec/websocket-peer.md §3.6).
pub fn decode_id_message(payload: &[u8]) -> Option<PeerId> {
    let bytes: [u8; ID_MESSAGE_LEN] = payload.try_into().ok()?;
    let id = i32::from_le_bytes(bytes);
    (id >= 2).then_some(PeerId(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_message_vectors() {
        // spec/websocket-peer.md §6
        assert_eq!(
            encode_id_message(PeerId(1_234_567)),
            [0x87, 0xD6, 0x12, 0x00]
        );
        assert_eq!(encode_id_message(PeerId(2)), [0x02, 0, 0, 0]);
        assert_eq!(
            encode_id_message(PeerId(i32::MAX)),
            [0xFF, 0xFF, 0xFF, 0x7F]
        );
        assert_eq!(
            decode_id_message(&[0x87, 0xD6, 0x12, 0x00]),
            Some(PeerId(1_234_567))
        );
    }

    #[test]
    fn id_message_rejects_bad_values() {
        assert_eq!(decode_id_message(&[1, 0, 0, 0]), None);
        assert_eq!(decode_id_message(&[0, 0, 0, 0]), None);
        assert_eq!(decode_id_message(&[0xFF, 0xFF, 0xFF, 0xFF]), None);
        assert_eq!(decode_id_message(&[2, 0, 0]), None);
        assert_eq!(decode_id_message(&[2, 0, 0, 0, 0]), None);
    }

    #[test]
    fn godot_targets() {
        assert_eq!(Target::from_godot(0), Some(Target::Broadcast));
        assert_eq!(Target::from_godot(5), Some(Target::Peer(PeerId(5))));
        assert_eq!(Target::from_godot(-5), Some(Target::AllExcept(PeerId(5))));
        assert_eq!(Target::from_godot(i32::MIN), None);
        assert_eq!(Target::AllExcept(PeerId(7)).to_godot(), -7);
    }
}
