//! Incremental, fail-fast UTF-8 validation for text messages (RFC 6455 §8.1).

use core::fmt;

/// Validates a text message that arrives in pieces (frames, or parts of
/// frames) without buffering it.
///
/// It keeps at most 3 bytes of a sequence split across pieces. It fails as
/// soon as the bytes seen so far can no longer be the prefix of valid UTF-8
/// (fail-fast, as Autobahn case 6.x expects), e.g. `ED A0` (surrogate) or
/// `F4 90` (above U+10FFFF) fail immediately even at the end of a piece.
///
/// ```
/// use wsmp_core::frame::Utf8Validator;
/// let mut v = Utf8Validator::new();
/// v.feed(b"caf\xC3").unwrap();
/// assert!(v.is_in_sequence());
/// v.feed(b"\xA9!").unwrap();
/// v.finish().unwrap();
/// assert!(Utf8Validator::new().feed(b"\xED\xA0").is_err());
/// ```
#[derive(Debug, Clone, Default)]
pub struct Utf8Validator {
    /// Bytes of an incomplete (but so far valid) sequence; `pending[..len]`.
    pending: [u8; 4],
    /// Number of pending bytes, 0..=3.
    len: u8,
    /// An error was reported; every later call fails until [`reset`](Self::reset).
    failed: bool,
}

/// The text is not valid UTF-8 (close code 1007, RFC 6455 §8.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utf8Error;

impl fmt::Display for Utf8Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid UTF-8 in text")
    }
}

impl core::error::Error for Utf8Error {}

/// Total length of the sequence a (valid) lead byte starts.
const fn sequence_len(lead: u8) -> usize {
    match lead {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        // Not stored as pending: `from_utf8` reported them invalid.
        _ => 1,
    }
}

impl Utf8Validator {
    /// A validator at the start of a message.
    pub const fn new() -> Self {
        Utf8Validator {
            pending: [0; 4],
            len: 0,
            failed: false,
        }
    }

    /// Validate the next piece of the message. Pieces may split multi-byte
    /// sequences anywhere. Fails as soon as the bytes seen so far can no
    /// longer become valid UTF-8; after a failure every call fails until
    /// [`reset`](Self::reset).
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), Utf8Error> {
        if self.failed {
            return Err(Utf8Error);
        }
        let r = self.feed_inner(bytes);
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    fn feed_inner(&mut self, mut bytes: &[u8]) -> Result<(), Utf8Error> {
        // First complete the sequence left over from the previous piece.
        let have = usize::from(self.len);
        if have > 0 {
            let total = sequence_len(self.pending[0]);
            let take = total.saturating_sub(have).min(bytes.len());
            let (head, rest) = bytes.split_at(take);
            let end = have + take;
            let buf = self.pending.get_mut(have..end).ok_or(Utf8Error)?;
            buf.copy_from_slice(head);
            let seq = self.pending.get(..end).ok_or(Utf8Error)?;
            match core::str::from_utf8(seq) {
                Ok(_) => self.len = 0,
                // Still a valid prefix: every byte of the piece was taken.
                Err(e) if e.error_len().is_none() => {
                    self.len = end as u8;
                    return Ok(());
                }
                Err(_) => return Err(Utf8Error),
            }
            bytes = rest;
        }
        match core::str::from_utf8(bytes) {
            Ok(_) => Ok(()),
            // `error_len() == None`: the tail is a valid but incomplete prefix
            // (1..=3 bytes); the standard library already checks the restricted
            // second-byte ranges (E0 A0.., ED ..9F, F0 90.., F4 ..8F), so
            // surrogates, overlongs and > U+10FFFF fail here at once.
            Err(e) if e.error_len().is_none() => {
                let tail = bytes.get(e.valid_up_to()..).ok_or(Utf8Error)?;
                let dst = self.pending.get_mut(..tail.len()).ok_or(Utf8Error)?;
                dst.copy_from_slice(tail);
                self.len = tail.len() as u8;
                Ok(())
            }
            Err(_) => Err(Utf8Error),
        }
    }

    /// The message is complete: fails if a sequence is unfinished (or a
    /// previous [`feed`](Self::feed) failed).
    pub fn finish(&self) -> Result<(), Utf8Error> {
        if self.failed || self.len != 0 {
            Err(Utf8Error)
        } else {
            Ok(())
        }
    }

    /// Forget everything; ready for a new message.
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// Whether the bytes fed so far end inside a multi-byte sequence.
    pub fn is_in_sequence(&self) -> bool {
        self.len != 0
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    /// Can `prefix` still be extended to valid UTF-8?
    fn viable(prefix: &[u8]) -> bool {
        match core::str::from_utf8(prefix) {
            Ok(_) => true,
            Err(e) => e.error_len().is_none(),
        }
    }

    /// Feeds `pieces`; returns the index of the failing piece (or
    /// `pieces.len()` if `finish` failed), or `None` if all valid.
    fn run(pieces: &[&[u8]]) -> Option<usize> {
        let mut v = Utf8Validator::new();
        for (i, p) in pieces.iter().enumerate() {
            if v.feed(p).is_err() {
                // Sticky.
                assert!(v.feed(b"a").is_err());
                assert!(v.finish().is_err());
                return Some(i);
            }
        }
        if v.finish().is_err() {
            return Some(pieces.len());
        }
        None
    }

    /// Where a piecewise validator must fail: index of the first piece after
    /// which the prefix is no longer viable, `pieces.len()` if only the
    /// complete message is invalid, `None` if valid.
    fn expected(pieces: &[&[u8]]) -> Option<usize> {
        let mut all = Vec::new();
        for (i, p) in pieces.iter().enumerate() {
            all.extend_from_slice(p);
            if !viable(&all) {
                return Some(i);
            }
        }
        if core::str::from_utf8(&all).is_err() {
            return Some(pieces.len());
        }
        None
    }

    /// Checks `data` whole, at every single split point, and at every pair
    /// of split points, and byte by byte.
    fn check_all_splits(data: &[u8]) {
        let valid = core::str::from_utf8(data).is_ok();
        assert_eq!(run(&[data]).is_none(), valid, "{data:02x?}");
        assert_eq!(run(&[data]), expected(&[data]), "{data:02x?}");
        for i in 0..=data.len() {
            let pieces = [&data[..i], &data[i..]];
            assert_eq!(run(&pieces), expected(&pieces), "{data:02x?} split at {i}");
            for j in i..=data.len() {
                let pieces = [&data[..i], &data[i..j], &data[j..]];
                assert_eq!(run(&pieces), expected(&pieces), "{data:02x?} at {i},{j}");
            }
        }
        let bytes: Vec<&[u8]> = data.chunks(1).collect();
        assert_eq!(run(&bytes), expected(&bytes), "{data:02x?} bytewise");
    }

    // Autobahn TestSuite case 6.x style vectors.
    const VALID: &[&[u8]] = &[
        b"",
        b"Hello-\xC2\xB5@\xC3\x9F\xC3\xB6\xC3\xA4\xC3\xBC\xC3\xA0\xC3\xA1-UTF-8!!", // 6.2
        b"\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5",                            // 6.5 kosme
        b"\x00",                                                                    // 6.7.1
        b"\xC2\x80",                                                                // 6.7.2
        b"\xE0\xA0\x80",                                                            // 6.7.3
        b"\xF0\x90\x80\x80",                                                        // 6.7.4
        b"\x7F",                                                                    // 6.8.1
        b"\xDF\xBF",                                                                // 6.8.2
        b"\xEF\xBF\xBF",                                                            // 6.8.3
        b"\xF4\x8F\xBF\xBF",                                                        // 6.8.4
        b"\xED\x9F\xBF",                                                            // 6.9.1
        b"\xEE\x80\x80",                                                            // 6.9.2
        b"\xEF\xBF\xBD",                                                            // 6.9.3
        b"\xEF\xBF\xBE", // 6.23 noncharacter
        b"\xF0\x9F\x98\x80 smile",
    ];

    const INVALID: &[&[u8]] = &[
        b"\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5\xED\xA0\x80edited", // 6.3 surrogate
        b"\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5\xF4\x90\x80\x80",   // 6.4.1 > U+10FFFF
        b"\xF4\x90\x80\x80",
        b"\xF8\x88\x80\x80\x80",     // 6.6/6.8: 5-byte
        b"\xFC\x84\x80\x80\x80\x80", // 6-byte
        b"\xF7\xBF\xBF\xBF",         // 6.8.x beyond
        b"\x80",                     // 6.10 lone continuation
        b"\xBF",
        b"\x80\xBF\x80",
        b"a\x80b",
        b"\xC0", // 6.11 lone start bytes
        b"\xC0 ",
        b"\xDF", // 6.12 truncated sequences
        b"\xE0\x80",
        b"\xEF\xBF",
        b"\xF0\x80\x80",
        b"\xF7\xBF\xBF",
        b"\xC2",
        b"\xE0\xA0",
        b"\xF0\x90\x80",
        b"\xC2\xC2\x80",
        b"\xFE", // 6.13 impossible bytes
        b"\xFF",
        b"\xFE\xFE\xFF\xFF",
        b"\xC0\xAF", // 6.14 overlong
        b"\xE0\x80\xAF",
        b"\xF0\x80\x80\xAF",
        b"\xC1\xBF", // 6.15 maximum overlong
        b"\xE0\x9F\xBF",
        b"\xF0\x8F\xBF\xBF",
        b"\xC0\x80", // 6.16 overlong NUL
        b"\xE0\x80\x80",
        b"\xF0\x80\x80\x80",
        b"\xED\xA0\x80", // 6.17 single surrogates
        b"\xED\xAD\xBF",
        b"\xED\xAE\x80",
        b"\xED\xAF\xBF",
        b"\xED\xB0\x80",
        b"\xED\xBE\x80",
        b"\xED\xBF\xBF",
        b"\xED\xA0\x80\xED\xB0\x80", // 6.18 paired surrogates
        b"\xED\xAF\xBF\xED\xBF\xBF",
        b"hello\xE2\x82", // truncated at the end
        b"hello\xF0\x9F\x98",
    ];

    #[test]
    fn autobahn_6_x_valid_all_splits() {
        for v in VALID {
            assert!(core::str::from_utf8(v).is_ok());
            check_all_splits(v);
        }
    }

    #[test]
    fn autobahn_6_x_invalid_all_splits() {
        for v in INVALID {
            assert!(core::str::from_utf8(v).is_err(), "{v:02x?}");
            check_all_splits(v);
        }
    }

    #[test]
    fn fail_fast_at_end_of_piece() {
        for bad in [
            &b"\xED\xA0"[..], // surrogate
            b"\xF4\x90",      // > U+10FFFF
            b"\xE0\x80",      // overlong
            b"\xF0\x80",      // overlong
            b"\xC0",          // never valid lead
            b"\xF5",          // never valid lead
            b"\x80",          // lone continuation
        ] {
            let mut v = Utf8Validator::new();
            assert_eq!(v.feed(bad), Err(Utf8Error), "{bad:02x?}");
            // Split in two pieces: the second byte fails immediately.
            if bad.len() == 2 {
                let mut v = Utf8Validator::new();
                assert_eq!(v.feed(&bad[..1]), Ok(()));
                assert!(v.is_in_sequence());
                assert_eq!(v.feed(&bad[1..]), Err(Utf8Error), "{bad:02x?}");
            }
        }
    }

    #[test]
    fn pending_state_and_finish() {
        let mut v = Utf8Validator::new();
        assert!(!v.is_in_sequence());
        v.feed(b"\xF0").expect("prefix");
        v.feed(b"").expect("empty");
        v.feed(b"\x9F").expect("prefix");
        assert!(v.is_in_sequence());
        assert_eq!(v.finish(), Err(Utf8Error));
        v.feed(b"\x98").expect("prefix");
        v.feed(b"\x80abc").expect("complete");
        assert!(!v.is_in_sequence());
        assert_eq!(v.finish(), Ok(()));
        v.feed(b"\xE2\x82").expect("prefix");
        v.reset();
        assert!(!v.is_in_sequence());
        assert_eq!(v.finish(), Ok(()));
        assert!(v.feed(b"\xFF").is_err());
        v.reset();
        assert_eq!(v.feed(b"ok"), Ok(()));
    }

    fn arb_text_like() -> impl Strategy<Value = Vec<u8>> {
        // Mix of arbitrary bytes and real UTF-8 so valid messages are common.
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..40),
            any::<std::string::String>().prop_map(|s| s.into_bytes()),
            (
                any::<std::string::String>(),
                any::<u8>(),
                any::<std::string::String>()
            )
                .prop_map(|(a, b, c)| {
                    let mut v = a.into_bytes();
                    v.push(b);
                    v.extend_from_slice(c.as_bytes());
                    v
                }),
            proptest::collection::vec(
                proptest::sample::select(
                    &[0x80u8, 0xBF, 0xC2, 0xE0, 0xED, 0xF0, 0xF4, 0x9F, 0xA0, 0x90, b'a',][..]
                ),
                0..20
            ),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn prop_matches_std_for_any_split(
            data in arb_text_like(),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (data.len() + 1)).collect();
            cuts.push(0);
            cuts.push(data.len());
            cuts.sort_unstable();
            let pieces: Vec<&[u8]> = cuts.windows(2).map(|w| &data[w[0]..w[1]]).collect();
            let got = run(&pieces);
            prop_assert_eq!(got.is_none(), core::str::from_utf8(&data).is_ok());
            prop_assert_eq!(got, expected(&pieces));
        }
    }
}
