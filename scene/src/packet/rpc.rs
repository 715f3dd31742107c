//! REMOTE_CALL (command 0) packets (modules/multiplayer/scene_rpc_interface.cpp
//! `process_rpc`, `_send_rpc`).
//!
//! Layout: meta byte, node id (1, 2 or 4 bytes), method id (1 or 2 bytes),
//! [argument count], arguments, [node path + NUL]. Meta bits: 0–2 the command,
//! 4–5 node-id width (0 = 8, 1 = 16, 2 = 32 bits), 6 method-id width (0 = 8,
//! 1 = 16 bits), 7 "byte-only or no arguments" (no count byte; the arguments
//! are the raw content of one `PackedByteArray`, or nothing). A 32-bit node id
//! with bit 31 set means "path not cached yet": bits 0–30 are the offset of
//! the NUL-terminated node path at the end of the packet.

use alloc::vec::Vec;

use super::{cstr_tail, Command, PacketError};
use crate::variant::EncodedArgs;

/// scene_rpc_interface.cpp `NODE_ID_COMPRESSION_SHIFT` (`CMD_FLAG_0_SHIFT`).
const NODE_ID_SHIFT: u8 = 4;
/// scene_rpc_interface.cpp `NAME_ID_COMPRESSION_SHIFT` (`CMD_FLAG_2_SHIFT`).
const NAME_ID_SHIFT: u8 = 6;
/// scene_rpc_interface.cpp `BYTE_ONLY_OR_NO_ARGS_FLAG` (`CMD_FLAG_3_SHIFT`).
const BYTE_ONLY_OR_NO_ARGS: u8 = 1 << 7;
/// The "path follows" bit of a 32-bit node id (scene_rpc_interface.cpp).
const PATH_FLAG: u32 = 0x8000_0000;

/// Which node an RPC is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeRef<'a> {
    /// A path cache id the sender offered with SIMPLIFY_PATH (the sender's id space).
    Cached(u32),
    /// The node path, relative to the multiplayer root (e.g. `Lobby` for `/root/Lobby`).
    Path(&'a str),
}

/// An RPC packet. Borrowed from the input when parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteCall<'a> {
    /// The node.
    pub node: NodeRef<'a>,
    /// The method id: the method's position in the node's sorted RPC names
    /// (scene_rpc_interface.cpp `_parse_rpc_config`, "Ensure ID order").
    pub method: u16,
    /// "Byte-only or no arguments": `args` is the raw content of one
    /// `PackedByteArray` argument, or empty for none.
    pub raw: bool,
    /// Argument count (for `raw`: 0 when `args` is empty, else 1).
    pub count: u8,
    /// The encoded arguments (compressed form), without the count byte.
    pub args: &'a [u8],
}

impl<'a> RemoteCall<'a> {
    /// An RPC with arguments encoded by [`Codec::encode_args`](crate::Codec::encode_args).
    pub fn new(node: NodeRef<'a>, method: u16, args: &'a EncodedArgs) -> Self {
        RemoteCall {
            node,
            method,
            raw: args.raw,
            count: args.count,
            args: &args.bytes,
        }
    }

    /// Reads an RPC packet (scene_rpc_interface.cpp `process_rpc`). Stricter
    /// than the engine: the node path must end the packet with its NUL, and
    /// a count byte must be present unless the byte-only flag is set.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, PacketError> {
        let &meta = bytes.first().ok_or(PacketError::Empty)?;
        if Command::from_byte(meta) != Command::RemoteCall {
            return Err(PacketError::TooShort);
        }
        let node_width = match (meta >> NODE_ID_SHIFT) & 3 {
            0 => 1,
            1 => 2,
            2 => 4,
            _ => return Err(PacketError::InvalidCompression),
        };
        let name_width = if meta & (1 << NAME_ID_SHIFT) != 0 {
            2
        } else {
            1
        };
        let header = 1 + node_width + name_width;
        let head = bytes.get(..header).ok_or(PacketError::TooShort)?;
        let node_id = match node_width {
            1 => u32::from(head[1]),
            2 => u32::from(u16::from_le_bytes([head[1], head[2]])),
            _ => u32::from_le_bytes([head[1], head[2], head[3], head[4]]),
        };
        let at = 1 + node_width;
        let method = if name_width == 1 {
            u16::from(head[at])
        } else {
            u16::from_le_bytes([head[at], head[at + 1]])
        };
        let (node, end) = if node_id & PATH_FLAG != 0 {
            let ofs = (node_id & !PATH_FLAG) as usize;
            // The path starts after the header and ends the packet.
            if ofs < header || ofs >= bytes.len() {
                return Err(PacketError::InvalidOffset);
            }
            (NodeRef::Path(cstr_tail(&bytes[ofs..])?), ofs)
        } else {
            (NodeRef::Cached(node_id), bytes.len())
        };
        let body = &bytes[header..end];
        if meta & BYTE_ONLY_OR_NO_ARGS != 0 {
            Ok(RemoteCall {
                node,
                method,
                raw: true,
                count: u8::from(!body.is_empty()),
                args: body,
            })
        } else {
            let (&count, args) = body.split_first().ok_or(PacketError::TooShort)?;
            Ok(RemoteCall {
                node,
                method,
                raw: false,
                count,
                args,
            })
        }
    }

    /// Writes the packet as the engine does (scene_rpc_interface.cpp
    /// `_send_rpc`): the smallest node-id and method-id widths; a path goes
    /// at the end with a 32-bit `0x80000000 | offset` node id.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + self.args.len());
        out.push(0);
        let node_mode: u8 = match self.node {
            NodeRef::Cached(id) if id <= 0xFF => {
                out.push(id as u8);
                0
            }
            NodeRef::Cached(id) if id <= 0xFFFF => {
                out.extend_from_slice(&(id as u16).to_le_bytes());
                1
            }
            NodeRef::Cached(id) => {
                out.extend_from_slice(&id.to_le_bytes());
                2
            }
            NodeRef::Path(_) => {
                // Patched below, once the offset of the path is known.
                out.extend_from_slice(&[0; 4]);
                2
            }
        };
        let name_mode: u8 = if self.method <= 0xFF {
            out.push(self.method as u8);
            0
        } else {
            out.extend_from_slice(&self.method.to_le_bytes());
            1
        };
        if !self.raw {
            out.push(self.count);
        }
        out.extend_from_slice(self.args);
        if let NodeRef::Path(path) = self.node {
            let ofs = out.len() as u32 | PATH_FLAG;
            out[1..5].copy_from_slice(&ofs.to_le_bytes());
            out.extend_from_slice(path.as_bytes());
            out.push(0);
        }
        out[0] = Command::RemoteCall.id()
            | node_mode << NODE_ID_SHIFT
            | name_mode << NAME_ID_SHIFT
            | if self.raw { BYTE_ONLY_OR_NO_ARGS } else { 0 };
        out
    }
}
