//! The path cache packets (modules/multiplayer/scene_cache_interface.cpp):
//! SIMPLIFY_PATH (command 1) offers a cache id for a node path, CONFIRM_PATH
//! (command 2) answers it.

use alloc::vec::Vec;

use super::{cstr_tail, Command, PacketError, MIN_SIMPLIFY_PATH_LEN, SIMPLIFY_PATH_ID_OFFSET};

/// Length of the checksum field: 32 lowercase hex characters of an MD5
/// (scene_cache_interface.cpp `methods_md5_len` = 33 with its NUL).
pub const CHECKSUM_LEN: usize = 32;

/// `01 <checksum, 32 bytes> 00 <cache id u32> <path> 00`: "call node `path`
/// by `cache_id` from now on" (scene_cache_interface.cpp `_send_confirm_path`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimplifyPath<'a> {
    /// The sender's RPC checksum of the node (`get_rpc_md5`), as sent.
    pub checksum: &'a [u8],
    /// The sender's cache id for the node.
    pub cache_id: u32,
    /// The node path relative to the multiplayer root.
    pub path: &'a str,
}

impl<'a> SimplifyPath<'a> {
    /// Reads an offer (scene_cache_interface.cpp `process_simplify_path`:
    /// at least 38 bytes). Stricter than the engine: the checksum's NUL must
    /// be there and the path must end the packet with its NUL.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, PacketError> {
        if bytes.len() < MIN_SIMPLIFY_PATH_LEN {
            return Err(PacketError::TooShort);
        }
        if Command::from_byte(bytes[0]) != Command::SimplifyPath || bytes[1 + CHECKSUM_LEN] != 0 {
            return Err(PacketError::InvalidPath);
        }
        let id = &bytes[SIMPLIFY_PATH_ID_OFFSET..SIMPLIFY_PATH_ID_OFFSET + 4];
        Ok(SimplifyPath {
            checksum: &bytes[1..1 + CHECKSUM_LEN],
            cache_id: u32::from_le_bytes([id[0], id[1], id[2], id[3]]),
            path: cstr_tail(&bytes[MIN_SIMPLIFY_PATH_LEN..])?,
        })
    }

    /// Writes the offer. `checksum` should be 32 bytes (see [`crate::checksum`]).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MIN_SIMPLIFY_PATH_LEN + self.path.len() + 1);
        out.push(Command::SimplifyPath.id());
        out.extend_from_slice(self.checksum);
        out.push(0);
        out.extend_from_slice(&self.cache_id.to_le_bytes());
        out.extend_from_slice(self.path.as_bytes());
        out.push(0);
        out
    }
}

/// `02 <valid> <cache id u32>`: the answer to an offer; `valid` says whether
/// the checksums matched (scene_cache_interface.cpp `process_confirm_path`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConfirmPath {
    /// The checksums matched.
    pub valid: bool,
    /// The offered cache id.
    pub cache_id: u32,
}

impl ConfirmPath {
    /// Reads an answer: exactly 6 bytes; any non-zero byte 1 is "valid".
    pub fn parse(bytes: &[u8]) -> Result<Self, PacketError> {
        let b: [u8; 6] = bytes.try_into().map_err(|_| PacketError::InvalidLength)?;
        if Command::from_byte(b[0]) != Command::ConfirmPath {
            return Err(PacketError::InvalidLength);
        }
        Ok(ConfirmPath {
            valid: b[1] != 0,
            cache_id: u32::from_le_bytes([b[2], b[3], b[4], b[5]]),
        })
    }

    /// Writes the answer.
    pub fn encode(&self) -> [u8; 6] {
        let mut b = [0u8; 6];
        b[0] = Command::ConfirmPath.id();
        b[1] = u8::from(self.valid);
        b[2..].copy_from_slice(&self.cache_id.to_le_bytes());
        b
    }
}
