//! The permessage-deflate codec (RFC 7692 §7.2), feature `deflate`.
//!
//! # Why zlib-rs
//!
//! The two pure-Rust DEFLATE implementations of the field are `miniz_oxide`
//! and `zlib-rs`. This module uses **zlib-rs** (its safe `Deflate`/`Inflate`
//! API), because permessage-deflate needs zlib's semantics, which
//! miniz_oxide does not have:
//!
//! - **window bits below 15 when compressing.** A peer may ask us to
//!   compress with an LZ77 window of 2^9..2^14 bytes (`server_max_window_bits`,
//!   `client_max_window_bits`, RFC 7692 §7.1.2); its inflater may then reject
//!   a longer distance. miniz_oxide's compressor always uses a 32 KiB window;
//!   zlib-rs takes `window_bits` like zlib's `deflateInit2` (Autobahn
//!   13.3–13.7 negotiate 9-bit windows and decompress with them).
//! - the rest of what zlib users rely on: raw streams, `Z_SYNC_FLUSH`
//!   (the `00 00 ff ff` tail of §7.2.1), resetting a stream while keeping its
//!   allocation, and output bounded by the caller's slice at every call.
//!
//! `no_std`: zlib-rs is `#![no_std]` when its `std` feature is off; it then
//! allocates through the C allocator (`posix_memalign`/`calloc`/`free`), so a
//! bare-metal target needs a C library (newlib, picolibc) for this feature.
//! With the core's `std` feature it uses Rust's global allocator and
//! detects SIMD at run time.
//!
//! # Bounded work
//!
//! - [`Decompressor::inflate`] appends at most `room` bytes per call and
//!   grows its output in steps of at most [`INFLATE_CHUNK`] bytes, capacity
//!   never past what `room` allows: a small frame that would inflate to
//!   gigabytes (a "zip bomb", DEFLATE reaches about 1000:1) costs the limit,
//!   not the inflated size, and is detected as soon as the limit is passed.
//! - [`Compressor::compress`] writes into a buffer as large as the message
//!   plus the 4-byte tail and gives up as soon as the output would not be
//!   smaller than the message (it is then sent uncompressed).
//!
//! # Memory (zlib-rs 0.6, measured with a counting allocator)
//!
//! A compressor holds about 380 KB with a 15-bit window (251 KB with a
//! 9-bit one: the 64 Ki-entry hash table dominates); a decompressor about
//! 47.5 KB whatever the window. Connections keep them only while the
//! negotiated parameters need them (context takeover); otherwise they are
//! borrowed from a host's [`DeflatePool`] for one message.

use alloc::boxed::Box;
use alloc::vec::Vec;
use zlib_rs::{Deflate, DeflateConfig as ZConfig, DeflateFlush, Inflate, InflateFlush, Status};

/// The tail removed from each compressed message and appended before
/// inflating (RFC 7692 §7.2.1, §7.2.2): an empty stored block's LEN/NLEN.
pub(crate) const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Largest output step of the inflater (bytes grown per zlib call).
pub(crate) const INFLATE_CHUNK: usize = 32 * 1024;

/// First output step of the inflater.
const INFLATE_FIRST_STEP: usize = 1024;

/// zlib's default `memLevel` (hash chains and the pending buffer).
const MEM_LEVEL: i32 = 8;

/// Compresses messages with one window size and level.
pub(crate) struct Compressor {
    z: Deflate,
    level: u8,
    window_bits: u8,
}

impl core::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Compressor")
            .field("level", &self.level)
            .field("window_bits", &self.window_bits)
            .finish_non_exhaustive()
    }
}

impl Compressor {
    /// `window_bits` is clamped to 9..=15 (zlib cannot write raw DEFLATE
    /// with an 8-bit window: callers never compress for one).
    pub(crate) fn new(level: u8, window_bits: u8) -> Compressor {
        let window_bits = window_bits.clamp(9, 15);
        let level = level.clamp(1, 9);
        let config = ZConfig {
            level: i32::from(level),
            // Negative: a raw DEFLATE stream, no zlib header (RFC 7692 §7.2.1).
            window_bits: -i32::from(window_bits),
            mem_level: MEM_LEVEL,
            ..ZConfig::default()
        };
        Compressor {
            z: Deflate::new_with_config(config),
            level,
            window_bits,
        }
    }

    /// The LZ77 window (log2 bytes) this compressor never exceeds.
    pub(crate) fn window_bits(&self) -> u8 {
        self.window_bits
    }

    /// Compression level.
    pub(crate) fn level(&self) -> u8 {
        self.level
    }

    /// Forgets the history (no context takeover, RFC 7692 §7.1.1).
    pub(crate) fn reset(&mut self) {
        self.z.reset();
    }

    /// Compresses one whole message: DEFLATE blocks ending with a sync
    /// flush whose `00 00 ff ff` tail is removed (RFC 7692 §7.2.1). `None`
    /// when the result would not be smaller than `input` (or zlib failed);
    /// the history is then reset, since the receiver never sees this
    /// message's bytes through its inflater.
    pub(crate) fn compress(&mut self, input: &[u8]) -> Option<Vec<u8>> {
        // Useful output is < input.len() bytes once the 4-byte tail is gone.
        let cap = input.len() + TAIL.len() - 1;
        let mut out = alloc::vec![0u8; cap];
        let (mut read, mut written) = (0usize, 0usize);
        loop {
            let (in0, out0) = (self.z.total_in(), self.z.total_out());
            let status = self.z.compress(
                input.get(read..).unwrap_or(&[]),
                out.get_mut(written..).unwrap_or(&mut []),
                DeflateFlush::SyncFlush,
            );
            let took = usize::try_from(self.z.total_in() - in0).unwrap_or(usize::MAX);
            let gave = usize::try_from(self.z.total_out() - out0).unwrap_or(usize::MAX);
            read = read.saturating_add(took).min(input.len());
            written = written.saturating_add(gave).min(cap);
            match status {
                Ok(Status::Ok | Status::StreamEnd) if read == input.len() && written < cap => break,
                // Output full (no gain possible), no progress, or an error.
                Ok(_) if written < cap && (took > 0 || gave > 0) => continue,
                _ => {
                    self.z.reset();
                    return None;
                }
            }
        }
        out.truncate(written);
        // RFC 7692 §7.2.1: remove the tail; zlib's sync flush always ends
        // with it (an output without it is sent as it is).
        if out.ends_with(&TAIL) {
            out.truncate(written - TAIL.len());
        }
        Some(out)
    }
}

/// What one [`Decompressor::inflate`] call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Inflated {
    /// `n` input bytes consumed; everything they hold is in the output.
    Done(usize),
    /// `n` input bytes consumed and `room` output bytes produced: more may
    /// follow (from the rest of the input or from the inflater's state).
    Full(usize),
}

/// The compressed data is not valid DEFLATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InvalidData;

/// Inflates messages (RFC 7692 §7.2.2).
pub(crate) struct Decompressor {
    z: Inflate,
    /// A final block (BFINAL) ended the stream: the rest of the message is
    /// ignored and the state is reset after it.
    ended: bool,
}

impl core::fmt::Debug for Decompressor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Decompressor")
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl Decompressor {
    /// A raw-DEFLATE inflater with a 32 KiB window: it decodes every
    /// window size a peer may negotiate (8..=15 bits).
    pub(crate) fn new() -> Decompressor {
        Decompressor {
            z: Inflate::new(false, 15),
            ended: false,
        }
    }

    /// Forgets the history (no context takeover), keeping the allocation.
    pub(crate) fn reset(&mut self) {
        self.z.reset(false);
        self.ended = false;
    }

    /// After a message: a stream ended by a final block cannot continue.
    pub(crate) fn end_message(&mut self) {
        if self.ended {
            self.reset();
        }
    }

    /// Inflates `input`, appending at most `room` bytes to `out`. The
    /// output grows by at most [`INFLATE_CHUNK`] bytes per step (less while
    /// it is small) and its capacity never exceeds `out.len() + room` (plus
    /// what it already had).
    pub(crate) fn inflate(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        room: usize,
    ) -> Result<Inflated, InvalidData> {
        let mut read = 0usize;
        let mut produced = 0usize;
        let limit = out.len().saturating_add(room);
        loop {
            if self.ended {
                // RFC 7692 §7.2.3.4: a final block ends the data: the rest
                // (the appended tail) carries nothing.
                return Ok(Inflated::Done(input.len()));
            }
            // Steps grow with the output (1 KiB first, then its length so
            // far, at most INFLATE_CHUNK), so a small message never holds a
            // large buffer.
            let step = out.len().clamp(INFLATE_FIRST_STEP, INFLATE_CHUNK);
            let space = (room - produced).min(step);
            if space == 0 {
                return Ok(Inflated::Full(read));
            }
            let start = out.len();
            if out.capacity() < start + space {
                // Grow geometrically, but never past the limit.
                let target = (out.capacity().saturating_mul(2))
                    .max(start + space)
                    .min(limit);
                out.reserve_exact(target - start);
            }
            out.resize(start + space, 0);
            let (in0, out0) = (self.z.total_in(), self.z.total_out());
            let status = self.z.decompress(
                input.get(read..).unwrap_or(&[]),
                out.get_mut(start..).unwrap_or(&mut []),
                InflateFlush::SyncFlush,
            );
            let took = usize::try_from(self.z.total_in() - in0).unwrap_or(usize::MAX);
            let gave = usize::try_from(self.z.total_out() - out0)
                .unwrap_or(usize::MAX)
                .min(space);
            out.truncate(start + gave);
            read = read.saturating_add(took).min(input.len());
            produced += gave;
            match status {
                Err(_) => return Err(InvalidData),
                Ok(Status::StreamEnd) => self.ended = true,
                // The output step was filled: there may be more.
                Ok(_) if gave == space => {}
                // Output left over: everything decodable so far is out.
                Ok(_) => return Ok(Inflated::Done(read)),
            }
        }
    }
}

/// Compressors and decompressors a host keeps between messages, so that
/// peers that negotiated no context takeover (and shared broadcasts) do not
/// allocate and initialise them for every message. Bounded: one compressor
/// per (level, window) in use and [`MAX_IDLE_DECOMPRESSORS`] decompressors.
#[derive(Debug, Default)]
// The boxes move as they are between the pool and the connections that
// borrow them (a connection keeps `Option<Box<_>>`: one word while idle).
#[allow(clippy::vec_box)]
pub(crate) struct DeflatePool {
    compressors: Vec<Box<Compressor>>,
    decompressors: Vec<Box<Decompressor>>,
}

/// Idle decompressors a pool keeps (about 47.5 KB each).
pub(crate) const MAX_IDLE_DECOMPRESSORS: usize = 4;

impl DeflatePool {
    /// A reset compressor for `level`/`window_bits`, from the pool or new.
    pub(crate) fn take_compressor(&mut self, level: u8, window_bits: u8) -> Box<Compressor> {
        let want = (level.clamp(1, 9), window_bits.clamp(9, 15));
        match self
            .compressors
            .iter()
            .position(|c| (c.level(), c.window_bits()) == want)
        {
            Some(i) => self.compressors.swap_remove(i),
            None => Box::new(Compressor::new(want.0, want.1)),
        }
    }

    /// Returns a compressor (reset here; one per kind is kept).
    pub(crate) fn put_compressor(&mut self, mut c: Box<Compressor>) {
        let key = (c.level(), c.window_bits());
        if !self
            .compressors
            .iter()
            .any(|k| (k.level(), k.window_bits()) == key)
        {
            c.reset();
            self.compressors.push(c);
        }
    }

    /// A fresh decompressor, from the pool or new.
    pub(crate) fn take_decompressor(&mut self) -> Box<Decompressor> {
        self.decompressors
            .pop()
            .unwrap_or_else(|| Box::new(Decompressor::new()))
    }

    /// Returns a decompressor (reset here; at most
    /// [`MAX_IDLE_DECOMPRESSORS`] are kept).
    pub(crate) fn put_decompressor(&mut self, mut d: Box<Decompressor>) {
        if self.decompressors.len() < MAX_IDLE_DECOMPRESSORS {
            d.reset();
            self.decompressors.push(d);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use alloc::vec;

    fn text(n: usize) -> Vec<u8> {
        let words = b"the quick brown fox jumps over the lazy dog 0123456789 ";
        (0..n)
            .map(|i| words[(i * 7 + i / 13) % words.len()])
            .collect()
    }

    fn inflate_all(d: &mut Decompressor, data: &[u8], room: usize) -> Result<Vec<u8>, InvalidData> {
        let mut out = Vec::new();
        let mut input = data.to_vec();
        input.extend_from_slice(&TAIL);
        let mut pos = 0;
        loop {
            let left = room - out.len();
            match d.inflate(&input[pos..], &mut out, left)? {
                Inflated::Done(n) => {
                    pos += n;
                    if pos == input.len() {
                        return Ok(out);
                    }
                }
                Inflated::Full(n) => {
                    pos += n;
                    if out.len() >= room {
                        return Ok(out);
                    }
                }
            }
        }
    }

    #[test]
    fn round_trip_every_window() {
        for bits in 9..=15u8 {
            let mut c = Compressor::new(6, bits);
            let mut d = Decompressor::new();
            for n in [128usize, 1000, 70_000] {
                let msg = text(n);
                let z = c.compress(&msg).unwrap();
                assert!(z.len() < msg.len() && !z.ends_with(&TAIL));
                assert_eq!(inflate_all(&mut d, &z, usize::MAX / 2).unwrap(), msg);
            }
        }
    }

    /// Inflates with a `bits` window in 64-byte output steps, so that only
    /// the window (not the output buffer) holds the history zlib may use.
    fn strict_inflate(bits: u8, z: &[u8]) -> Result<Vec<u8>, ()> {
        let mut inf = Inflate::new(false, bits);
        let mut input = z.to_vec();
        input.extend_from_slice(&TAIL);
        let (mut pos, mut out) = (0usize, Vec::new());
        loop {
            let mut step = [0u8; 64];
            let (i0, o0) = (inf.total_in(), inf.total_out());
            inf.decompress(&input[pos..], &mut step, InflateFlush::SyncFlush)
                .map_err(|_| ())?;
            let (took, gave) = (
                (inf.total_in() - i0) as usize,
                (inf.total_out() - o0) as usize,
            );
            pos += took;
            out.extend_from_slice(&step[..gave]);
            if took == 0 && gave == 0 {
                return Ok(out);
            }
        }
    }

    #[test]
    fn small_window_compressors_keep_to_their_window() {
        // A 9-bit stream inflates with a 9-bit window.
        let msg = text(20_000);
        let z = Compressor::new(9, 9).compress(&msg).unwrap();
        assert_eq!(strict_inflate(9, &z).unwrap(), msg);
        // Repeated noise: only a compressor whose window reaches back 2000
        // bytes can shrink it (zlib reaches back at most 2^bits - 262 bytes).
        // (zlib-rs's inflater is lenient about distances, like zlib without
        // INFLATE_STRICT, so the window is checked on the compressing side.)
        let noise = noise(2000);
        let twice = [&noise[..], &noise[..]].concat();
        for bits in 9..=11 {
            assert!(Compressor::new(9, bits).compress(&twice).is_none());
        }
        let wide = Compressor::new(9, 12).compress(&twice).unwrap();
        assert!(wide.len() < 2100, "{}", wide.len());
        assert_eq!(strict_inflate(15, &wide).unwrap(), twice);
    }

    fn noise(n: usize) -> Vec<u8> {
        let mut x = 0x1234_5678u32;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    #[test]
    fn incompressible_data_is_refused_and_history_reset() {
        let noise = noise(4096);
        let mut c = Compressor::new(6, 15);
        let mut d = Decompressor::new();
        let a = c.compress(&text(500)).unwrap();
        assert_eq!(inflate_all(&mut d, &a, 1 << 20).unwrap(), text(500));
        assert!(c.compress(&noise).is_none());
        // The refused message never reached the peer's inflater, and the
        // compressor's history no longer refers to it.
        let b = c.compress(&text(500)).unwrap();
        let mut fresh = Decompressor::new();
        assert_eq!(inflate_all(&mut fresh, &b, 1 << 20).unwrap(), text(500));
    }

    #[test]
    fn context_takeover_shrinks_repeats() {
        let mut c = Compressor::new(6, 15);
        let mut d = Decompressor::new();
        let msg = text(1000);
        let first = c.compress(&msg).unwrap();
        let second = c.compress(&msg).unwrap();
        assert!(
            second.len() < first.len() / 4,
            "{} vs {}",
            second.len(),
            first.len()
        );
        assert_eq!(inflate_all(&mut d, &first, 1 << 20).unwrap(), msg);
        assert_eq!(inflate_all(&mut d, &second, 1 << 20).unwrap(), msg);
    }

    #[test]
    fn bomb_stops_at_the_room_with_bounded_capacity() {
        // 16 MiB of zeros compress to about 16 KiB.
        let zeros = vec![0u8; 16 << 20];
        let z = Compressor::new(9, 15).compress(&zeros).unwrap();
        assert!(z.len() < 40_000, "{}", z.len());
        let mut d = Decompressor::new();
        let mut out = Vec::new();
        let room = 100_000;
        let r = d.inflate(&z, &mut out, room).unwrap();
        assert!(matches!(r, Inflated::Full(n) if n < z.len()), "{r:?}");
        assert_eq!(out.len(), room);
        assert!(out.capacity() <= room, "capacity {}", out.capacity());
    }

    #[test]
    fn small_messages_get_small_buffers() {
        for n in [150usize, 2000, 40_000] {
            let msg = text(n);
            let mut z = Compressor::new(6, 15).compress(&msg).unwrap();
            z.extend_from_slice(&TAIL);
            let mut d = Decompressor::new();
            let mut out = Vec::new();
            assert_eq!(
                d.inflate(&z, &mut out, 1 << 24),
                Ok(Inflated::Done(z.len()))
            );
            assert_eq!(out, msg);
            // Grown in steps that follow the length, not in 32 KiB chunks.
            assert!(
                out.capacity() <= 2 * n.max(INFLATE_FIRST_STEP),
                "{n}: {}",
                out.capacity()
            );
        }
    }

    #[test]
    fn garbage_is_invalid_data() {
        let mut d = Decompressor::new();
        let mut out = Vec::new();
        // BTYPE 11 is reserved (RFC 1951 §3.2.3).
        assert_eq!(
            d.inflate(&[0xff, 0xff, 0xff], &mut out, 1000),
            Err(InvalidData)
        );
    }

    #[test]
    fn final_block_ends_the_message_and_resets() {
        // A stream ended with BFINAL (RFC 7692 §7.2.3.4 allows it): the
        // appended tail is ignored and the next message starts fresh.
        let mut z = Deflate::new(6, false, 15);
        let mut buf = vec![0u8; 100];
        z.compress(b"hello hello hello", &mut buf, DeflateFlush::Finish)
            .unwrap();
        let n = z.total_out() as usize;
        let mut d = Decompressor::new();
        assert_eq!(
            inflate_all(&mut d, &buf[..n], 1000).unwrap(),
            b"hello hello hello"
        );
        d.end_message();
        let again = Compressor::new(6, 15).compress(&text(300)).unwrap();
        assert_eq!(inflate_all(&mut d, &again, 1000).unwrap(), text(300));
    }

    #[test]
    fn pool_reuses_and_bounds() {
        let mut pool = DeflatePool::default();
        let c = pool.take_compressor(6, 15);
        pool.put_compressor(c);
        let c2 = pool.take_compressor(6, 15);
        pool.put_compressor(Box::new(Compressor::new(6, 15)));
        pool.put_compressor(c2);
        assert_eq!(pool.compressors.len(), 1);
        for _ in 0..10 {
            pool.put_decompressor(Box::new(Decompressor::new()));
        }
        assert_eq!(pool.decompressors.len(), MAX_IDLE_DECOMPRESSORS);
        let _ = pool.take_decompressor();
        assert_eq!(pool.decompressors.len(), MAX_IDLE_DECOMPRESSORS - 1);
    }
}
