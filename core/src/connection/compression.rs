//! The sending side of permessage-deflate on one connection (RFC 7692 §7.2.1),
//! feature `deflate`.
//!
//! Which window and which history a message is compressed with follows from
//! the negotiated parameters and the role: a server compresses with
//! `server_max_window_bits` and keeps its history unless
//! `server_no_context_takeover`; a client with `client_max_window_bits` unless
//! `client_no_context_takeover` (RFC 7692 §7.1). A compressor is held by the
//! connection only while its history is kept; otherwise one is borrowed from
//! the host's pool (or made) for each message.

use alloc::boxed::Box;
use alloc::vec::Vec;

use super::{PoolRef, Role};
use crate::deflate::Compressor;
use crate::handshake::{DeflateConfig, DeflateParams};

/// Approximate bytes a compressor holds with a `window_bits` window
/// (zlib-rs 0.6, `memLevel` 8: a 64 Ki-entry hash table, the pending buffer
/// and 4 × 2^bits for the window and its chains).
pub(crate) const fn compressor_bytes(window_bits: u8) -> usize {
    248_960 + (4usize << window_bits)
}

/// Approximate bytes a decompressor holds (zlib-rs 0.6, any window).
pub(crate) const DECOMPRESSOR_BYTES: usize = 47_552;

/// What this connection sends compressed, and with what.
#[derive(Debug)]
pub(crate) struct Deflater {
    /// Messages shorter than this go out uncompressed.
    threshold: usize,
    level: u8,
    /// Our window (log2); 8 means "never compress" (zlib cannot).
    window_bits: u8,
    /// Keep the history between messages (context takeover).
    takeover: bool,
    own: Option<Box<Compressor>>,
}

impl Deflater {
    pub(crate) fn new(role: Role, params: &DeflateParams, config: &DeflateConfig) -> Deflater {
        let (window_bits, no_takeover) = match role {
            Role::Server => (
                params.server_max_window_bits,
                params.server_no_context_takeover,
            ),
            Role::Client => (
                params.client_max_window_bits,
                params.client_no_context_takeover,
            ),
        };
        Deflater {
            threshold: config.compression_threshold,
            level: config.compression_level,
            window_bits,
            takeover: !no_takeover,
            own: None,
        }
    }

    /// Would a message of `len` bytes be compressed at all?
    pub(crate) fn wants(&self, len: usize) -> bool {
        len >= self.threshold.max(1) && self.window_bits >= 9
    }

    /// Compresses with this connection's own history kept between messages?
    pub(crate) fn takeover(&self) -> bool {
        self.takeover
    }

    /// Our window size (log2 bytes).
    pub(crate) fn window_bits(&self) -> u8 {
        self.window_bits
    }

    /// Bytes held between messages.
    pub(crate) fn memory(&self) -> usize {
        self.own
            .as_ref()
            .map_or(0, |c| compressor_bytes(c.window_bits()))
    }

    /// Compresses one message (caller checked [`wants`](Self::wants));
    /// `None`: send it uncompressed.
    pub(crate) fn compress(&mut self, payload: &[u8], pool: PoolRef<'_>) -> Option<Vec<u8>> {
        if self.takeover {
            let (level, bits) = (self.level, self.window_bits);
            return self
                .own
                .get_or_insert_with(|| Box::new(Compressor::new(level, bits)))
                .compress(payload);
        }
        compress_fresh(self.level, self.window_bits, payload, pool)
    }

    /// Compresses without history (RFC 7692 §7.1.1: no context takeover)
    /// with a compressor borrowed from `pool`, or a temporary one.
    pub(crate) fn compress_fresh(&self, payload: &[u8], pool: PoolRef<'_>) -> Option<Vec<u8>> {
        compress_fresh(self.level, self.window_bits, payload, pool)
    }
}

fn compress_fresh(level: u8, bits: u8, payload: &[u8], pool: PoolRef<'_>) -> Option<Vec<u8>> {
    match pool {
        Some(pool) => {
            let mut c = pool.take_compressor(level, bits);
            let out = c.compress(payload);
            pool.put_compressor(c);
            out
        }
        None => Compressor::new(level, bits).compress(payload),
    }
}
