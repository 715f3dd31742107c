//! SceneMultiplayer packet bytes: the framing of every command, parsed and
//! built. The one implementation of it in the workspace (wsmp-relay uses it).
//!
//! Everything here follows `spec/scene-multiplayer.md` §1, §2 and §7 and the
//! engine's modules/multiplayer sources named at each rule. All integers are
//! little-endian; peer ids are signed 32-bit. Parsing never panics: every
//! accessor checks the length first.
//!
//! - [`parse`] classifies any packet (SYS sub-commands, RELAY, commands 0–6)
//!   the way a relay needs it;
//! - [`parse_command`] reads commands 0–6 fully ([`Message`]): RPCs
//!   ([`RemoteCall`]), path cache offers and answers ([`SimplifyPath`],
//!   [`ConfirmPath`]), RAW, and the replication commands (kept opaque);
//! - the builders (`add_peer`, `relay`, [`RemoteCall::encode`], …) write them.

mod path;
mod rpc;

pub use path::{ConfirmPath, SimplifyPath, CHECKSUM_LEN};
pub use rpc::{NodeRef, RemoteCall};

use alloc::vec::Vec;

use bytes::{Bytes, BytesMut};

/// The server's peer id (spec/websocket-peer.md §3.2, TARGET_PEER_SERVER).
pub const SERVER_ID: i32 = 1;

/// Size of a SYS header with an id: command, sub-command, i32 (spec/scene-multiplayer.md §2, SYS_CMD_SIZE).
pub const SYS_CMD_SIZE: usize = 6;

/// Smallest valid RELAY packet: SYS header plus a one-byte inner packet (spec/scene-multiplayer.md §2).
pub const MIN_RELAY_LEN: usize = SYS_CMD_SIZE + 1;

/// Smallest valid SIMPLIFY_PATH packet (spec/scene-multiplayer.md §1.1).
pub const MIN_SIMPLIFY_PATH_LEN: usize = 38;

/// Offset of the cache id in a SIMPLIFY_PATH packet: command byte + 32 hex chars + NUL
/// (spec/scene-multiplayer.md §1.1).
pub(crate) const SIMPLIFY_PATH_ID_OFFSET: usize = 1 + 33;

/// The network command in the low three bits of byte 0 (spec/scene-multiplayer.md §1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// 0: an RPC.
    RemoteCall,
    /// 1: ask the receiver to cache a node path.
    SimplifyPath,
    /// 2: answer to SIMPLIFY_PATH.
    ConfirmPath,
    /// 3: `send_bytes` payload.
    Raw,
    /// 4: MultiplayerSpawner spawn.
    Spawn,
    /// 5: MultiplayerSpawner despawn.
    Despawn,
    /// 6: MultiplayerSynchronizer state.
    Sync,
    /// 7: system command (§2).
    Sys,
}

impl Command {
    /// The command of a packet whose first byte is `byte0`; flag bits are ignored
    /// (spec/scene-multiplayer.md §1.1: command = byte0 & 0x07).
    pub const fn from_byte(byte0: u8) -> Command {
        match byte0 & 0x07 {
            0 => Command::RemoteCall,
            1 => Command::SimplifyPath,
            2 => Command::ConfirmPath,
            3 => Command::Raw,
            4 => Command::Spawn,
            5 => Command::Despawn,
            6 => Command::Sync,
            _ => Command::Sys,
        }
    }

    /// The command's number (0–7).
    pub const fn id(self) -> u8 {
        match self {
            Command::RemoteCall => 0,
            Command::SimplifyPath => 1,
            Command::ConfirmPath => 2,
            Command::Raw => 3,
            Command::Spawn => 4,
            Command::Despawn => 5,
            Command::Sync => 6,
            Command::Sys => 7,
        }
    }
}

/// The first byte of every SYS packet (spec/scene-multiplayer.md §1.1: always exactly 0x07).
pub const SYS: u8 = 0x07;
/// SYS sub-command AUTH (spec/scene-multiplayer.md §2).
pub const SYS_AUTH: u8 = 0;
/// SYS sub-command ADD_PEER (spec/scene-multiplayer.md §2).
pub const SYS_ADD_PEER: u8 = 1;
/// SYS sub-command DEL_PEER (spec/scene-multiplayer.md §2).
pub const SYS_DEL_PEER: u8 = 2;
/// SYS sub-command RELAY (spec/scene-multiplayer.md §2).
pub const SYS_RELAY: u8 = 3;
/// Command byte of CONFIRM_PATH (spec/scene-multiplayer.md §1.1).
pub const CONFIRM_PATH: u8 = 2;

/// Where a relayed packet should go, decoded from a client's RELAY target
/// (spec/scene-multiplayer.md §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// `T > 0`: one peer.
    Peer(i32),
    /// `T == 0`: every peer (the sender is excluded by the relay).
    Broadcast,
    /// `T == -X`: every peer except `X` (and the sender). `None` when `-T`
    /// does not fit in an i32 (`T == i32::MIN`), which excludes nobody extra.
    AllExcept(Option<i32>),
}

impl Target {
    /// Decodes a raw target id.
    pub const fn from_id(t: i32) -> Target {
        if t > 0 {
            Target::Peer(t)
        } else if t == 0 {
            Target::Broadcast
        } else {
            Target::AllExcept(t.checked_neg())
        }
    }
}

/// A packet received from a client, classified. Borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet<'a> {
    /// `07 00` exactly: "I have completed authentication" (spec/scene-multiplayer.md §2).
    AuthComplete,
    /// `07 00 <data>` with at least one byte of data (spec/scene-multiplayer.md §2).
    AuthData(&'a [u8]),
    /// `07 01 <id>` (never valid from a client).
    AddPeer(i32),
    /// `07 02 <id>` (never valid from a client).
    DelPeer(i32),
    /// `07 03 <target> <inner>` with a non-empty inner packet.
    Relay {
        /// The destination as written by the client.
        target: i32,
        /// The inner packet (at least one byte).
        inner: &'a [u8],
    },
    /// Commands 0–6 addressed to the receiver itself (not wrapped).
    Direct(Command),
}

/// Why a packet could not be classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParseError {
    /// Zero-length packet.
    Empty,
    /// SYS packet without a sub-command byte, or ADD/DEL shorter than 6 bytes.
    ShortSys,
    /// RELAY shorter than 7 bytes (spec/scene-multiplayer.md §2).
    ShortRelay,
    /// SYS sub-command other than 0–3.
    UnknownSys(u8),
}

fn read_i32(bytes: &[u8], at: usize) -> Option<i32> {
    let raw: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(i32::from_le_bytes(raw))
}

/// Classifies a packet; never panics.
pub fn parse(bytes: &[u8]) -> Result<Packet<'_>, ParseError> {
    let Some(&byte0) = bytes.first() else {
        return Err(ParseError::Empty);
    };
    let command = Command::from_byte(byte0);
    if command != Command::Sys {
        return Ok(Packet::Direct(command));
    }
    // spec/scene-multiplayer.md §2: byte 1 is the sys sub-command.
    let Some(&sub) = bytes.get(1) else {
        return Err(ParseError::ShortSys);
    };
    match sub {
        SYS_AUTH => match bytes.get(2..) {
            Some([]) | None => Ok(Packet::AuthComplete),
            Some(data) => Ok(Packet::AuthData(data)),
        },
        SYS_ADD_PEER => read_i32(bytes, 2)
            .map(Packet::AddPeer)
            .ok_or(ParseError::ShortSys),
        SYS_DEL_PEER => read_i32(bytes, 2)
            .map(Packet::DelPeer)
            .ok_or(ParseError::ShortSys),
        SYS_RELAY => {
            // spec/scene-multiplayer.md §2: RELAY is at least 7 bytes.
            if bytes.len() < MIN_RELAY_LEN {
                return Err(ParseError::ShortRelay);
            }
            let target = read_i32(bytes, 2).ok_or(ParseError::ShortRelay)?;
            let inner = bytes.get(SYS_CMD_SIZE..).ok_or(ParseError::ShortRelay)?;
            Ok(Packet::Relay { target, inner })
        }
        other => Err(ParseError::UnknownSys(other)),
    }
}

fn sys_with_id(sub: u8, id: i32) -> Bytes {
    let mut b = [0u8; SYS_CMD_SIZE];
    b[0] = SYS;
    b[1] = sub;
    b[2..].copy_from_slice(&id.to_le_bytes());
    Bytes::copy_from_slice(&b)
}

/// The transport's 4-byte little-endian id message (spec/websocket-peer.md §3.7).
pub fn id_message(id: i32) -> Bytes {
    Bytes::copy_from_slice(&id.to_le_bytes())
}

/// `07 01 <id>`: "peer `id` is now connected" (spec/scene-multiplayer.md §2).
pub fn add_peer(id: i32) -> Bytes {
    sys_with_id(SYS_ADD_PEER, id)
}

/// `07 02 <id>`: "peer `id` left" (spec/scene-multiplayer.md §2).
pub fn del_peer(id: i32) -> Bytes {
    sys_with_id(SYS_DEL_PEER, id)
}

/// `07 00`: authentication completed by this side (spec/scene-multiplayer.md §3.4 step 5).
pub fn auth_complete() -> Bytes {
    Bytes::from_static(&[SYS, SYS_AUTH])
}

/// `07 00 <data>`: authentication data (spec/scene-multiplayer.md §3.4 step 3).
pub fn auth_data(data: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(2 + data.len());
    b.extend_from_slice(&[SYS, SYS_AUTH]);
    b.extend_from_slice(data);
    b.freeze()
}

/// `07 03 <id> <inner>`: a RELAY packet. From a client `id` is the destination,
/// from the server it is the original source (spec/scene-multiplayer.md §2).
pub fn relay(id: i32, inner: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(SYS_CMD_SIZE + inner.len());
    b.extend_from_slice(&[SYS, SYS_RELAY]);
    b.extend_from_slice(&id.to_le_bytes());
    b.extend_from_slice(inner);
    b.freeze()
}

/// Rewrites a client's RELAY packet (destination id) into the copy the relay
/// forwards (source id): only bytes 2..6 change, so the length is kept
/// (spec/scene-multiplayer.md §4.2). Reuses the buffer when it is not shared.
///
/// Returns `None` when `packet` is shorter than a RELAY.
pub fn rewrite_relay_source(packet: Bytes, source: i32) -> Option<Bytes> {
    if packet.len() < MIN_RELAY_LEN {
        return None;
    }
    let mut out = match packet.try_into_mut() {
        Ok(unique) => unique,
        Err(shared) => BytesMut::from(&shared[..]),
    };
    out.get_mut(2..SYS_CMD_SIZE)?
        .copy_from_slice(&source.to_le_bytes());
    Some(out.freeze())
}

/// The cache id of a SIMPLIFY_PATH packet: the u32 after the command byte and
/// the 33-byte hex checksum + NUL. `None` when the packet is not a
/// SIMPLIFY_PATH of at least 38 bytes (spec/scene-multiplayer.md §1.1).
pub fn simplify_path_cache_id(bytes: &[u8]) -> Option<u32> {
    let byte0 = *bytes.first()?;
    if Command::from_byte(byte0) != Command::SimplifyPath || bytes.len() < MIN_SIMPLIFY_PATH_LEN {
        return None;
    }
    let raw: [u8; 4] = bytes
        .get(SIMPLIFY_PATH_ID_OFFSET..SIMPLIFY_PATH_ID_OFFSET + 4)?
        .try_into()
        .ok()?;
    Some(u32::from_le_bytes(raw))
}

/// A node path at the end of a packet: UTF-8, no NUL inside, one NUL as the
/// last byte (`encode_cstring` in scene_rpc_interface.cpp / scene_cache_interface.cpp).
fn cstr_tail(bytes: &[u8]) -> Result<&str, PacketError> {
    match bytes.split_last() {
        Some((0, text)) if !text.contains(&0) => {
            core::str::from_utf8(text).map_err(|_| PacketError::InvalidPath)
        }
        _ => Err(PacketError::InvalidPath),
    }
}

/// `02 01 <cache id>`: CONFIRM_PATH with "checksum matched" (spec/scene-multiplayer.md §6 item 5).
pub fn confirm_path(cache_id: u32) -> Bytes {
    let mut b = [0u8; 6];
    b[0] = CONFIRM_PATH;
    b[1] = 1;
    b[2..].copy_from_slice(&cache_id.to_le_bytes());
    Bytes::copy_from_slice(&b)
}

/// Why a command 0–6 packet could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketError {
    /// Zero-length packet.
    Empty,
    /// Shorter than its command's fixed part.
    TooShort,
    /// A length or offset field points outside the packet.
    InvalidOffset,
    /// Node-id compression mode 3 (scene_rpc_interface.cpp: "Was not possible
    /// to extract the node id compression mode").
    InvalidCompression,
    /// A node path is not NUL-terminated at the end of the packet, or holds
    /// a NUL, or is not UTF-8.
    InvalidPath,
    /// CONFIRM_PATH is not exactly 6 bytes (scene_cache_interface.cpp).
    InvalidLength,
    /// A SYS packet (command 7): read it with [`parse`].
    Sys,
}

impl core::fmt::Display for PacketError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            PacketError::Empty => "empty packet",
            PacketError::TooShort => "packet too short",
            PacketError::InvalidOffset => "offset outside the packet",
            PacketError::InvalidCompression => "invalid node id compression",
            PacketError::InvalidPath => "invalid node path",
            PacketError::InvalidLength => "invalid packet length",
            PacketError::Sys => "SYS packet",
        })
    }
}

impl core::error::Error for PacketError {}

/// A command 0–6 packet, read fully. Borrowed from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    /// 0: an RPC.
    RemoteCall(RemoteCall<'a>),
    /// 1: a path cache offer.
    SimplifyPath(SimplifyPath<'a>),
    /// 2: the answer to an offer.
    ConfirmPath(ConfirmPath),
    /// 3: `send_bytes` data (at least one byte; spec/scene-multiplayer.md §1.1).
    Raw(&'a [u8]),
    /// 4, 5, 6: replication (MultiplayerSpawner / MultiplayerSynchronizer),
    /// kept opaque: the whole packet.
    Replication(Command, &'a [u8]),
}

/// Reads a command 0–6 packet (modules/multiplayer/scene_multiplayer.cpp
/// `_process_packet`). SYS packets are [`PacketError::Sys`]: use [`parse`].
pub fn parse_command(bytes: &[u8]) -> Result<Message<'_>, PacketError> {
    let &byte0 = bytes.first().ok_or(PacketError::Empty)?;
    match Command::from_byte(byte0) {
        Command::RemoteCall => RemoteCall::parse(bytes).map(Message::RemoteCall),
        Command::SimplifyPath => SimplifyPath::parse(bytes).map(Message::SimplifyPath),
        Command::ConfirmPath => ConfirmPath::parse(bytes).map(Message::ConfirmPath),
        // scene_multiplayer.cpp `_process_raw`: at least one byte of data.
        Command::Raw => match bytes.get(1..) {
            Some(data) if !data.is_empty() => Ok(Message::Raw(data)),
            _ => Err(PacketError::TooShort),
        },
        c @ (Command::Spawn | Command::Despawn | Command::Sync) => {
            Ok(Message::Replication(c, bytes))
        }
        Command::Sys => Err(PacketError::Sys),
    }
}

/// `03 <data>`: a RAW packet (`send_bytes`).
pub fn raw(data: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(1 + data.len());
    b.push(Command::Raw.id());
    b.extend_from_slice(data);
    b
}

/// The peers a RELAY from `from` with target `target` goes to, among the
/// `admitted` peers (spec/scene-multiplayer.md §4.2), written into
/// `receivers` (cleared first; a reused buffer: no allocation per packet),
/// and whether the server also processes the inner packet as if `from` had
/// sent it to it. `None` when a positive target is not admitted (or is the
/// server): the packet is dropped.
pub fn relay_receivers(
    from: i32,
    target: i32,
    admitted: &[i32],
    receivers: &mut Vec<i32>,
) -> Option<bool> {
    receivers.clear();
    match Target::from_id(target) {
        // T > 0: that peer only, if admitted (T == 1 never is); T == S echoes.
        Target::Peer(t) => {
            if admitted.contains(&t) {
                receivers.push(t);
                Some(false)
            } else {
                None
            }
        }
        // T == 0: every admitted peer except the sender; the server too.
        Target::Broadcast => {
            receivers.extend(admitted.iter().copied().filter(|&p| p != from));
            Some(true)
        }
        // T == -X: every admitted peer except the sender and X; the server
        // too unless X is the server.
        Target::AllExcept(x) => {
            receivers.extend(
                admitted
                    .iter()
                    .copied()
                    .filter(|&p| p != from && Some(p) != x),
            );
            Some(x != Some(SERVER_ID))
        }
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec;
    use alloc::vec::Vec;

    use super::*;

    const ID: i32 = 1_234_567;

    // spec/scene-multiplayer.md §7, one test per vector.

    #[test]
    fn vector_transport_id_message() {
        assert_eq!(&id_message(ID)[..], &[0x87, 0xD6, 0x12, 0x00]);
    }

    #[test]
    fn vector_add_peer() {
        assert_eq!(&add_peer(ID)[..], &[0x07, 0x01, 0x87, 0xD6, 0x12, 0x00]);
        assert_eq!(parse(&add_peer(ID)), Ok(Packet::AddPeer(ID)));
    }

    #[test]
    fn vector_del_peer() {
        assert_eq!(&del_peer(ID)[..], &[0x07, 0x02, 0x87, 0xD6, 0x12, 0x00]);
        assert_eq!(parse(&del_peer(ID)), Ok(Packet::DelPeer(ID)));
    }

    #[test]
    fn vector_auth_completion() {
        assert_eq!(&auth_complete()[..], &[0x07, 0x00]);
        assert_eq!(parse(&[0x07, 0x00]), Ok(Packet::AuthComplete));
    }

    #[test]
    fn vector_auth_data_abc() {
        assert_eq!(&auth_data(b"abc")[..], &[0x07, 0x00, 0x61, 0x62, 0x63]);
        assert_eq!(
            parse(&[0x07, 0x00, 0x61, 0x62, 0x63]),
            Ok(Packet::AuthData(b"abc"))
        );
    }

    #[test]
    fn vector_client_raw_hi_to_peer_42() {
        let v = [0x07, 0x03, 0x2A, 0x00, 0x00, 0x00, 0x03, 0x68, 0x69];
        assert_eq!(&relay(42, &[0x03, b'h', b'i'])[..], &v);
        assert_eq!(
            parse(&v),
            Ok(Packet::Relay {
                target: 42,
                inner: &[0x03, 0x68, 0x69]
            })
        );
    }

    #[test]
    fn vector_server_raw_hi_from_1234567() {
        let client = Bytes::from_static(&[0x07, 0x03, 0x2A, 0x00, 0x00, 0x00, 0x03, 0x68, 0x69]);
        let out = rewrite_relay_source(client.clone(), ID).expect("relay");
        assert_eq!(
            &out[..],
            &[0x07, 0x03, 0x87, 0xD6, 0x12, 0x00, 0x03, 0x68, 0x69]
        );
        assert_eq!(out.len(), client.len());
        // Unique buffer path gives the same bytes.
        let unique = Bytes::from(client.to_vec());
        assert_eq!(rewrite_relay_source(unique, ID), Some(out));
    }

    #[test]
    fn vector_client_raw_hi_to_everyone() {
        let v = [0x07, 0x03, 0x00, 0x00, 0x00, 0x00, 0x03, 0x68, 0x69];
        let Ok(Packet::Relay { target, .. }) = parse(&v) else {
            panic!("not a relay")
        };
        assert_eq!(Target::from_id(target), Target::Broadcast);
    }

    #[test]
    fn vector_client_raw_hi_to_all_except_1234567() {
        let v = [0x07, 0x03, 0x79, 0x29, 0xED, 0xFF, 0x03, 0x68, 0x69];
        assert_eq!(&relay(-ID, &[0x03, 0x68, 0x69])[..], &v);
        let Ok(Packet::Relay { target, .. }) = parse(&v) else {
            panic!("not a relay")
        };
        assert_eq!(target, -ID);
        assert_eq!(Target::from_id(target), Target::AllExcept(Some(ID)));
    }

    #[test]
    fn vector_raw_hi_direct_to_server() {
        assert_eq!(parse(&[0x03, 0x68, 0x69]), Ok(Packet::Direct(Command::Raw)));
    }

    #[test]
    fn vector_confirm_path_ok_cache_id_1() {
        assert_eq!(&confirm_path(1)[..], &[0x02, 0x01, 0x01, 0x00, 0x00, 0x00]);
    }

    #[test]
    fn vector_despawn_net_id_5() {
        assert_eq!(
            parse(&[0x05, 0x05, 0x00, 0x00, 0x00]),
            Ok(Packet::Direct(Command::Despawn))
        );
    }

    #[test]
    fn vector_rpc_meta_bytes() {
        assert_eq!(Command::from_byte(0x80), Command::RemoteCall);
        assert_eq!(Command::from_byte(0x60), Command::RemoteCall);
    }

    #[test]
    fn vector_delta_sync_command_byte() {
        assert_eq!(Command::from_byte(0x16), Command::Sync);
    }

    #[test]
    fn vector_masked_client_frame_carries_the_relay_example() {
        // The masked frame of §7: unmasking its payload gives the client→server relay packet.
        let frame = [
            0x82u8, 0x89, 0x37, 0xFA, 0x21, 0x3D, 0x30, 0xF9, 0x0B, 0x3D, 0x37, 0xFA, 0x22, 0x55,
            0x5E,
        ];
        let mask = [0x37, 0xFA, 0x21, 0x3D];
        let payload: Vec<u8> = frame[6..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4])
            .collect();
        assert_eq!(payload, relay(42, &[0x03, b'h', b'i']).to_vec());
    }

    #[test]
    fn command_ids_round_trip() {
        for b in 0u8..=255 {
            assert_eq!(Command::from_byte(b).id(), b & 7);
        }
    }

    #[test]
    fn short_and_unknown_sys_are_errors() {
        assert_eq!(parse(&[]), Err(ParseError::Empty));
        assert_eq!(parse(&[0x07]), Err(ParseError::ShortSys));
        assert_eq!(parse(&[0x07, 0x01, 1, 0, 0]), Err(ParseError::ShortSys));
        assert_eq!(parse(&[0x07, 0x02]), Err(ParseError::ShortSys));
        assert_eq!(
            parse(&[0x07, 0x03, 2, 0, 0, 0]),
            Err(ParseError::ShortRelay)
        );
        assert_eq!(parse(&[0x07, 0x04, 0]), Err(ParseError::UnknownSys(4)));
        assert_eq!(
            rewrite_relay_source(Bytes::from_static(&[7, 3, 0, 0, 0, 0]), 5),
            None
        );
    }

    #[test]
    fn target_decoding() {
        assert_eq!(Target::from_id(7), Target::Peer(7));
        assert_eq!(Target::from_id(0), Target::Broadcast);
        assert_eq!(Target::from_id(-1), Target::AllExcept(Some(1)));
        assert_eq!(Target::from_id(i32::MIN), Target::AllExcept(None));
    }

    #[test]
    fn simplify_path_cache_id_is_read_after_checksum() {
        let mut p = vec![0x01u8];
        p.extend_from_slice(&[b'a'; 32]);
        p.push(0);
        p.extend_from_slice(&0x0102_0304u32.to_le_bytes());
        assert_eq!(p.len(), 38);
        assert_eq!(simplify_path_cache_id(&p), Some(0x0102_0304));
        assert_eq!(
            simplify_path_cache_id(&p[..37]),
            None,
            "37 bytes is too short"
        );
        p.extend_from_slice(b"Main\0");
        assert_eq!(simplify_path_cache_id(&p), Some(0x0102_0304));
        p[0] = 0x02;
        assert_eq!(simplify_path_cache_id(&p), None);
        assert_eq!(simplify_path_cache_id(&[]), None);
    }

    #[test]
    fn parse_never_panics_on_short_inputs() {
        for len in 0..12 {
            for fill in [0u8, 3, 7, 0xFF] {
                let mut v = vec![fill; len];
                if let Some(b) = v.first_mut() {
                    *b = 7;
                }
                let _ = parse(&v);
                let _ = simplify_path_cache_id(&v);
            }
        }
    }
}
