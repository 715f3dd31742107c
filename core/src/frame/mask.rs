//! Payload masking (RFC 6455 §5.3).
//!
//! `transformed[i] = original[i] ^ key[i % 4]`, where `i` counts from the
//! start of the frame payload. Both functions take the payload position of
//! their first byte (`offset`), so a payload can be (un)masked piece by piece
//! as it streams in.
//!
//! The work is done a 32-byte block (four `u64` words) at a time in safe
//! code, a form LLVM vectorises; the tail is done a byte at a time.

/// The key rotated so that its first byte applies to payload position `offset`.
#[inline]
const fn rotate_key(key: [u8; 4], offset: usize) -> [u8; 4] {
    // RFC 6455 §5.3: j = i MOD 4.
    let r = offset % 4;
    [key[r], key[(r + 1) % 4], key[(r + 2) % 4], key[(r + 3) % 4]]
}

/// The rotated key repeated over one `u64`, in memory (native) byte order.
#[inline]
const fn wide_key(k: [u8; 4]) -> u64 {
    u64::from_ne_bytes([k[0], k[1], k[2], k[3], k[0], k[1], k[2], k[3]])
}

#[inline(always)]
fn load(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(b);
    u64::from_ne_bytes(w)
}

/// XOR `data` with `key`, where `data[0]` sits at position `offset` of the
/// payload. Masking and unmasking are the same operation.
///
/// ```
/// use wsmp_core::frame::apply_mask;
/// let mut data = *b"Hello";
/// apply_mask(&mut data, [0x37, 0xfa, 0x21, 0x3d], 0);
/// assert_eq!(data, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
/// // The same payload, unmasked in two pieces:
/// let (a, b) = data.split_at_mut(3);
/// apply_mask(a, [0x37, 0xfa, 0x21, 0x3d], 0);
/// apply_mask(b, [0x37, 0xfa, 0x21, 0x3d], 3);
/// assert_eq!(&data, b"Hello");
/// ```
pub fn apply_mask(data: &mut [u8], key: [u8; 4], offset: usize) {
    let k = rotate_key(key, offset);
    let kw = wide_key(k);
    // Every block is a multiple of 4 bytes long, so the key phase is the same
    // at the start of every block and of the tail.
    let mut blocks = data.chunks_exact_mut(32);
    for block in &mut blocks {
        let (a, rest) = block.split_at_mut(8);
        let (b, rest) = rest.split_at_mut(8);
        let (c, d) = rest.split_at_mut(8);
        let (wa, wb, wc, wd) = (load(a) ^ kw, load(b) ^ kw, load(c) ^ kw, load(d) ^ kw);
        a.copy_from_slice(&wa.to_ne_bytes());
        b.copy_from_slice(&wb.to_ne_bytes());
        c.copy_from_slice(&wc.to_ne_bytes());
        d.copy_from_slice(&wd.to_ne_bytes());
    }
    let mut words = blocks.into_remainder().chunks_exact_mut(8);
    for w in &mut words {
        let v = load(w) ^ kw;
        w.copy_from_slice(&v.to_ne_bytes());
    }
    for (b, m) in words.into_remainder().iter_mut().zip(k.iter().cycle()) {
        *b ^= m;
    }
}

/// Copy `src` into `dst[..src.len()]` masked with `key` in one pass, where
/// `src[0]` sits at position `offset` of the payload.
///
/// `dst` must be at least as long as `src`; if it is shorter, only the first
/// `dst.len()` bytes of `src` are processed (debug builds panic instead, to
/// catch the bug).
///
/// ```
/// use wsmp_core::frame::mask_into;
/// let mut out = [0u8; 5];
/// mask_into(b"Hello", &mut out, [0x37, 0xfa, 0x21, 0x3d], 0);
/// assert_eq!(out, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
/// ```
pub fn mask_into(src: &[u8], dst: &mut [u8], key: [u8; 4], offset: usize) {
    debug_assert!(dst.len() >= src.len(), "mask_into: dst shorter than src");
    let n = src.len().min(dst.len());
    let (src, dst) = (&src[..n], &mut dst[..n]);
    let k = rotate_key(key, offset);
    let kw = wide_key(k);
    let mut sblocks = src.chunks_exact(32);
    let mut dblocks = dst.chunks_exact_mut(32);
    for (s, d) in (&mut sblocks).zip(&mut dblocks) {
        let (d0, rest) = d.split_at_mut(8);
        let (d1, rest) = rest.split_at_mut(8);
        let (d2, d3) = rest.split_at_mut(8);
        let (s0, rest) = s.split_at(8);
        let (s1, rest) = rest.split_at(8);
        let (s2, s3) = rest.split_at(8);
        d0.copy_from_slice(&(load(s0) ^ kw).to_ne_bytes());
        d1.copy_from_slice(&(load(s1) ^ kw).to_ne_bytes());
        d2.copy_from_slice(&(load(s2) ^ kw).to_ne_bytes());
        d3.copy_from_slice(&(load(s3) ^ kw).to_ne_bytes());
    }
    let mut swords = sblocks.remainder().chunks_exact(8);
    let mut dwords = dblocks.into_remainder().chunks_exact_mut(8);
    for (s, d) in (&mut swords).zip(&mut dwords) {
        d.copy_from_slice(&(load(s) ^ kw).to_ne_bytes());
    }
    for ((d, s), m) in dwords
        .into_remainder()
        .iter_mut()
        .zip(swords.remainder())
        .zip(k.iter().cycle())
    {
        *d = s ^ m;
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::{vec, vec::Vec};

    fn reference(data: &mut [u8], key: [u8; 4], offset: usize) {
        for (i, b) in data.iter_mut().enumerate() {
            *b ^= key[(offset + i) % 4];
        }
    }

    fn pattern(len: usize, seed: u8) -> [u8; 300] {
        let mut buf = [0u8; 300];
        for (i, b) in buf.iter_mut().take(len).enumerate() {
            *b = (i as u8).wrapping_mul(31).wrapping_add(seed);
        }
        buf
    }

    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    #[test]
    fn rfc6455_5_7_masked_hello() {
        let mut d = *b"Hello";
        apply_mask(&mut d, KEY, 0);
        assert_eq!(d, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    }

    #[test]
    fn matches_byte_loop_all_offsets_lengths_and_alignments() {
        for offset in 0..8 {
            for len in 0..100 {
                for start in 0..8 {
                    let src = pattern(start + len, offset as u8);
                    let mut fast = src;
                    let mut slow = src;
                    apply_mask(&mut fast[start..start + len], KEY, offset);
                    reference(&mut slow[start..start + len], KEY, offset);
                    assert_eq!(fast, slow, "offset {offset} len {len} start {start}");

                    let mut out = [0xAAu8; 300];
                    mask_into(&src[start..start + len], &mut out[start..], KEY, offset);
                    assert_eq!(&out[start..start + len], &slow[start..start + len]);
                    // Nothing outside dst[..src.len()] is touched.
                    assert!(out[..start].iter().all(|&b| b == 0xAA));
                    assert!(out[start + len..].iter().all(|&b| b == 0xAA));
                }
            }
        }
    }

    #[test]
    fn large_offsets_wrap() {
        let mut a = pattern(77, 1);
        let mut b = a;
        apply_mask(&mut a[..77], KEY, usize::MAX - 2);
        reference(&mut b[..77], KEY, (usize::MAX - 2) % 4);
        assert_eq!(a, b);
    }

    #[test]
    fn masking_twice_is_identity() {
        let orig = pattern(257, 9);
        let mut d = orig;
        apply_mask(&mut d, [1, 2, 3, 4], 2);
        assert_ne!(d, orig);
        apply_mask(&mut d, [1, 2, 3, 4], 2);
        assert_eq!(d, orig);
    }

    proptest! {
        #[test]
        fn prop_apply_mask_equals_reference(
            data in proptest::collection::vec(any::<u8>(), 0..600),
            key in any::<[u8; 4]>(),
            offset in any::<usize>(),
            start in 0usize..16,
        ) {
            let start = start.min(data.len());
            let mut fast = data.clone();
            let mut slow = data.clone();
            apply_mask(&mut fast[start..], key, offset);
            reference(&mut slow[start..], key, offset);
            prop_assert_eq!(&fast, &slow);

            let mut out = vec![0u8; data.len() + 3];
            mask_into(&data[start..], &mut out[1..], key, offset);
            prop_assert_eq!(&out[1..1 + data.len() - start], &slow[start..]);
        }

        #[test]
        fn prop_pieces_equal_whole(
            data in proptest::collection::vec(any::<u8>(), 0..300),
            key in any::<[u8; 4]>(),
            cuts in proptest::collection::vec(any::<usize>(), 0..6),
        ) {
            let mut whole = data.clone();
            apply_mask(&mut whole, key, 0);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (data.len() + 1)).collect();
            cuts.push(0);
            cuts.push(data.len());
            cuts.sort_unstable();
            let mut pieces = data.clone();
            for w in cuts.windows(2) {
                apply_mask(&mut pieces[w[0]..w[1]], key, w[0]);
            }
            prop_assert_eq!(pieces, whole);
        }
    }
}
