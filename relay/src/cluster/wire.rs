//! The bytes nodes exchange on the bus (NATS message payloads).
//!
//! A small fixed binary layout, little-endian, version byte first: every
//! relayed packet crosses the bus once per node, so the header is written
//! and read without a serialisation framework (28 bytes, no allocation
//! beyond the payload's own buffer).
//!
//! Room stream message (subject `<prefix>.r.<room>.<node>`):
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 1 | version (1) |
//! | 1 | 1 | kind: 1 ADD, 2 DEL, 3 DATA, 4 SNAPSHOT |
//! | 2 | 2 | source node index |
//! | 4 | 8 | source incarnation (random per process) |
//! | 12 | 8 | stream epoch (grows per node) |
//! | 20 | 8 | sequence number in the epoch (the SNAPSHOT opening an epoch is 0) |
//! | 28 | … | ADD/DEL: peer id (i32). DATA: source peer (i32), target (i32), the packet as the receivers get it. SNAPSHOT: flags (u8, bit 0: "answer with yours"), node to answer (u16, 0 = every node), member count (u32), member ids (i32 each). |
//!
//! Heartbeat (subject `<prefix>.hb`): version (1), node index (u16),
//! incarnation (u64), node name (UTF-8, the rest).

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The layout version.
pub const VERSION: u8 = 1;
/// Size of the room stream header.
pub const HEADER_LEN: usize = 28;

/// Where a room stream message sits: which stream and which position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamPos {
    /// Source node index.
    pub node: u16,
    /// Source incarnation.
    pub incarnation: u64,
    /// Stream epoch.
    pub epoch: u64,
    /// Sequence number in the epoch.
    pub seq: u64,
}

/// What a room stream message says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// A member joined on the source node.
    Add(i32),
    /// A member left the source node.
    Del(i32),
    /// A packet from source member `from` for the members `target`
    /// designates (spec/scene-multiplayer.md §4.2 targets).
    Data {
        /// Source peer.
        from: i32,
        /// Target as the sender gave it.
        target: i32,
        /// The packet, already rewritten to carry the source.
        packet: Bytes,
    },
    /// The source node's members of the room at this point of its stream.
    Snapshot {
        /// Whether the receivers should publish their own snapshot.
        want_replies: bool,
        /// Which node should answer (0: every node).
        reply_from: u16,
        /// Member ids.
        members: Vec<i32>,
    },
}

const ADD: u8 = 1;
const DEL: u8 = 2;
const DATA: u8 = 3;
const SNAPSHOT: u8 = 4;

fn header(buf: &mut BytesMut, kind: u8, pos: StreamPos) {
    buf.put_u8(VERSION);
    buf.put_u8(kind);
    buf.put_u16_le(pos.node);
    buf.put_u64_le(pos.incarnation);
    buf.put_u64_le(pos.epoch);
    buf.put_u64_le(pos.seq);
}

/// Encodes a room stream message.
pub fn encode(pos: StreamPos, body: &Body) -> Bytes {
    match body {
        Body::Add(p) | Body::Del(p) => {
            let mut b = BytesMut::with_capacity(HEADER_LEN + 4);
            header(
                &mut b,
                if matches!(body, Body::Add(_)) {
                    ADD
                } else {
                    DEL
                },
                pos,
            );
            b.put_i32_le(*p);
            b.freeze()
        }
        Body::Data {
            from,
            target,
            packet,
        } => {
            let mut b = BytesMut::with_capacity(DATA_OVERHEAD + packet.len());
            header(&mut b, DATA, pos);
            b.put_i32_le(*from);
            b.put_i32_le(*target);
            b.put_slice(packet);
            b.freeze()
        }
        Body::Snapshot {
            want_replies,
            reply_from,
            members,
        } => {
            let mut b = BytesMut::with_capacity(HEADER_LEN + 7 + 4 * members.len());
            header(&mut b, SNAPSHOT, pos);
            b.put_u8(u8::from(*want_replies));
            b.put_u16_le(*reply_from);
            b.put_u32_le(members.len() as u32);
            for &m in members {
                b.put_i32_le(m);
            }
            b.freeze()
        }
    }
}

/// The largest message a node publishes: a DATA message carrying a packet
/// of `max_packet` bytes, or a SNAPSHOT of `max_members` members.
pub fn max_encoded_len(max_packet: usize, max_members: usize) -> usize {
    (DATA_OVERHEAD + max_packet).max(HEADER_LEN + 7 + 4 * max_members)
}

/// Bytes a DATA message adds to the packet it carries (header, from, target).
pub const DATA_OVERHEAD: usize = HEADER_LEN + 8;

/// A message that does not follow the layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

/// Decodes a room stream message; `payload` is sliced (no copy) for DATA.
pub fn decode(payload: &Bytes) -> Result<(StreamPos, Body), Malformed> {
    if payload.len() < HEADER_LEN || payload[0] != VERSION {
        return Err(Malformed);
    }
    let mut b = &payload[1..];
    let kind = b.get_u8();
    let pos = StreamPos {
        node: b.get_u16_le(),
        incarnation: b.get_u64_le(),
        epoch: b.get_u64_le(),
        seq: b.get_u64_le(),
    };
    let body = match kind {
        ADD | DEL if b.remaining() == 4 => {
            let p = b.get_i32_le();
            if kind == ADD {
                Body::Add(p)
            } else {
                Body::Del(p)
            }
        }
        DATA if b.remaining() >= 8 => {
            let from = b.get_i32_le();
            let target = b.get_i32_le();
            Body::Data {
                from,
                target,
                packet: payload.slice(DATA_OVERHEAD..),
            }
        }
        SNAPSHOT if b.remaining() >= 7 => {
            let want_replies = b.get_u8() & 1 == 1;
            let reply_from = b.get_u16_le();
            let n = b.get_u32_le() as usize;
            if b.remaining() != n.checked_mul(4).ok_or(Malformed)? {
                return Err(Malformed);
            }
            let members = (0..n).map(|_| b.get_i32_le()).collect();
            Body::Snapshot {
                want_replies,
                reply_from,
                members,
            }
        }
        _ => return Err(Malformed),
    };
    Ok((pos, body))
}

/// A node's heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    /// Node index.
    pub node: u16,
    /// Incarnation.
    pub incarnation: u64,
    /// Node name (`--node-name`).
    pub name: String,
}

impl Heartbeat {
    /// Encodes it.
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(11 + self.name.len());
        b.put_u8(VERSION);
        b.put_u16_le(self.node);
        b.put_u64_le(self.incarnation);
        b.put_slice(self.name.as_bytes());
        b.freeze()
    }

    /// Decodes one.
    pub fn decode(payload: &[u8]) -> Result<Heartbeat, Malformed> {
        if payload.len() < 11 || payload[0] != VERSION {
            return Err(Malformed);
        }
        let mut b = &payload[1..];
        let node = b.get_u16_le();
        let incarnation = b.get_u64_le();
        let name = String::from_utf8_lossy(b).into_owned();
        Ok(Heartbeat {
            node,
            incarnation,
            name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(seq: u64) -> StreamPos {
        StreamPos {
            node: 7,
            incarnation: 0xDEAD_BEEF_0102_0304,
            epoch: 42,
            seq,
        }
    }

    #[test]
    fn round_trips() {
        let bodies = [
            Body::Add(2_097_153),
            Body::Del(-5),
            Body::Data {
                from: 3,
                target: -4,
                packet: Bytes::from_static(&[7, 3, 3, 0, 0, 0, 3, 0x68, 0x69]),
            },
            Body::Data {
                from: 3,
                target: 0,
                packet: Bytes::new(),
            },
            Body::Snapshot {
                want_replies: true,
                reply_from: 9,
                members: vec![10, 11, 12],
            },
            Body::Snapshot {
                want_replies: false,
                reply_from: 0,
                members: vec![],
            },
        ];
        for (i, body) in bodies.iter().enumerate() {
            let bytes = encode(pos(i as u64), body);
            assert_eq!(
                decode(&bytes),
                Ok((pos(i as u64), body.clone())),
                "{body:?}"
            );
        }
        let hb = Heartbeat {
            node: 1023,
            incarnation: 5,
            name: "host:9080".into(),
        };
        assert_eq!(Heartbeat::decode(&hb.encode()), Ok(hb));
    }

    #[test]
    fn header_layout() {
        let bytes = encode(pos(1), &Body::Add(0x0102_0304));
        assert_eq!(bytes.len(), HEADER_LEN + 4);
        assert_eq!(&bytes[..4], &[1, 1, 7, 0]);
        assert_eq!(&bytes[20..28], &1u64.to_le_bytes());
        assert_eq!(&bytes[28..], &[4, 3, 2, 1]);
    }

    #[test]
    fn malformed_is_refused() {
        let good = encode(
            pos(0),
            &Body::Snapshot {
                want_replies: false,
                reply_from: 0,
                members: vec![1, 2],
            },
        );
        for cut in 0..good.len() {
            assert_eq!(decode(&good.slice(..cut)), Err(Malformed), "cut {cut}");
        }
        let mut bad = good.to_vec();
        bad[0] = 2;
        assert_eq!(decode(&Bytes::from(bad)), Err(Malformed));
        let mut bad = good.to_vec();
        bad[1] = 9;
        assert_eq!(decode(&Bytes::from(bad)), Err(Malformed));
        let mut long = encode(pos(0), &Body::Del(1)).to_vec();
        long.push(0);
        assert_eq!(decode(&Bytes::from(long)), Err(Malformed));
        assert_eq!(Heartbeat::decode(&[1, 2]), Err(Malformed));
    }
}
