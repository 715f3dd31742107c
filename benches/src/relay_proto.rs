//! The bytes a Godot 4 client exchanges with a SceneMultiplayer relay server (peer 1), written
//! from the specs, independent of the relay under test: the 4-byte id message
//! (spec/websocket-peer.md §3.7) and the SYS packets ADD_PEER, DEL_PEER and RELAY
//! (spec/scene-multiplayer.md §2).

/// Command byte of a SYS packet (spec/scene-multiplayer.md §1.1, command 7).
pub const CMD_SYS: u8 = 7;
/// Command byte of a RAW packet, the `send_bytes` payload (spec/scene-multiplayer.md §1.1).
pub const CMD_RAW: u8 = 3;
/// SYS sub-command ADD_PEER (spec/scene-multiplayer.md §2).
pub const SYS_ADD_PEER: u8 = 1;
/// SYS sub-command DEL_PEER (spec/scene-multiplayer.md §2).
pub const SYS_DEL_PEER: u8 = 2;
/// SYS sub-command RELAY (spec/scene-multiplayer.md §2).
pub const SYS_RELAY: u8 = 3;
/// Length of the RELAY header `07 03 <id i32>` (spec/scene-multiplayer.md §2, `SYS_CMD_SIZE`).
pub const RELAY_HEADER: usize = 6;

/// Reads the id message: exactly 4 bytes, a little-endian i32 ≥ 2
/// (spec/websocket-peer.md §3.7; a Godot client closes on anything else, §3.6).
pub fn parse_id_message(msg: &[u8]) -> Result<i32, String> {
    let bytes: [u8; 4] = msg
        .try_into()
        .map_err(|_| format!("id message of {} bytes, want exactly 4", msg.len()))?;
    let id = i32::from_le_bytes(bytes);
    if id < 2 {
        return Err(format!("id message carries {id}, want >= 2"));
    }
    Ok(id)
}

/// The RELAY header a client puts before an inner packet for `target`: `07 03 <target i32 LE>`
/// (spec/scene-multiplayer.md §4.1: positive = one peer, 0 = all, −X = all but X).
pub fn relay_header(target: i32) -> [u8; RELAY_HEADER] {
    let t = target.to_le_bytes();
    [CMD_SYS, SYS_RELAY, t[0], t[1], t[2], t[3]]
}

/// A message from the relay after the id message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerPacket<'a> {
    /// `07 01 <id>`: peer `id` joined the room (spec/scene-multiplayer.md §3.2).
    AddPeer(i32),
    /// `07 02 <id>`: peer `id` left (spec/scene-multiplayer.md §3.3).
    DelPeer(i32),
    /// `07 03 <source> <inner>`: a relayed packet from `source` (spec/scene-multiplayer.md §4.2).
    Relay {
        /// The original sender.
        source: i32,
        /// The inner packet, unchanged.
        inner: &'a [u8],
    },
}

/// Parses a relay → client message; anything but ADD_PEER, DEL_PEER (exactly 6 bytes) and
/// RELAY (at least 7 bytes) is an error here: the benchmark's clients never talk to peer 1
/// directly, so the relay has nothing else to send them.
pub fn parse_server_packet(msg: &[u8]) -> Result<ServerPacket<'_>, String> {
    let describe = || {
        let head: Vec<String> = msg.iter().take(8).map(|b| format!("{b:02x}")).collect();
        format!("{} bytes [{}…]", msg.len(), head.join(" "))
    };
    let (Some(&CMD_SYS), Some(&sub), Some(id)) = (msg.first(), msg.get(1), msg.get(2..6)) else {
        return Err(format!("unexpected message from the relay: {}", describe()));
    };
    let id = i32::from_le_bytes([id[0], id[1], id[2], id[3]]);
    match sub {
        SYS_ADD_PEER if msg.len() == 6 => Ok(ServerPacket::AddPeer(id)),
        SYS_DEL_PEER if msg.len() == 6 => Ok(ServerPacket::DelPeer(id)),
        SYS_RELAY if msg.len() > RELAY_HEADER => Ok(ServerPacket::Relay {
            source: id,
            inner: &msg[RELAY_HEADER..],
        }),
        _ => Err(format!(
            "unexpected SYS message from the relay: {}",
            describe()
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn id_message() {
        assert_eq!(parse_id_message(&[0xE8, 3, 0, 0]), Ok(1000));
        assert!(parse_id_message(&[1, 0, 0, 0]).is_err());
        assert!(parse_id_message(&[0xFF, 0xFF, 0xFF, 0xFF]).is_err());
        assert!(parse_id_message(&[2, 0, 0]).is_err());
        assert!(parse_id_message(&[2, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn server_packets() {
        // spec/scene-multiplayer.md §3.5 example bytes.
        assert_eq!(
            parse_server_packet(&[7, 1, 0xD0, 7, 0, 0]),
            Ok(ServerPacket::AddPeer(2000))
        );
        assert_eq!(
            parse_server_packet(&[7, 2, 0xD0, 7, 0, 0]),
            Ok(ServerPacket::DelPeer(2000))
        );
        assert_eq!(
            parse_server_packet(&[7, 3, 0xE8, 3, 0, 0, 3, 9]),
            Ok(ServerPacket::Relay {
                source: 1000,
                inner: &[3, 9]
            })
        );
        for bad in [
            &[7, 3, 1, 0, 0, 0][..],
            &[7, 1, 1, 0, 0, 0, 0],
            &[7, 0],
            &[7, 4, 1, 0, 0, 0],
            &[3, 1, 2, 3, 4, 5, 6],
            &[],
        ] {
            assert!(parse_server_packet(bad).is_err(), "{bad:?}");
        }
        assert_eq!(relay_header(-5), [7, 3, 0xFB, 0xFF, 0xFF, 0xFF]);
    }
}
