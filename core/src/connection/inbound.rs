//! The streaming frame reader: turns received bytes into complete messages
//! and control frames, one step at a time.
//!
//! Payload bytes are unmasked and validated as they arrive, so a frame never
//! has to be held whole in the adapter's read buffer, invalid UTF-8 fails as
//! soon as it is seen, and a frame's length is checked against the limit from
//! its header before any of its payload is buffered.
//!
//! A compressed message (RSV1 on its first frame, RFC 7692 §6) is inflated
//! as its bytes arrive, in steps that never produce more than the limits
//! allow: its inflated size is checked while inflating (1009 as soon as it
//! passes `inbound_buffer_size`), and the compressed bytes are never held.

#[cfg(feature = "deflate")]
use alloc::boxed::Box;
use alloc::vec::Vec;

use super::PoolRef;
use crate::frame::{
    apply_mask, CloseCode, FrameHeader, HeaderError, OpCode, Utf8Validator, MAX_HEADER_LEN,
};

/// Kind of a data message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// A text message (opcode 0x1): valid UTF-8.
    Text,
    /// A binary message (opcode 0x2).
    Binary,
}

/// What one step produced.
#[derive(Debug)]
pub(crate) enum Step {
    /// `n` bytes consumed; call again with the rest.
    Progress(usize),
    /// `n` bytes consumed; the input is exhausted mid-frame.
    NeedMore(usize),
    /// `n` bytes consumed; no room to accept more until the application reads.
    Blocked(usize),
    /// `n` bytes consumed and a unit completed.
    Complete(usize, Complete),
    /// The connection must fail with this code (the rest of the input is
    /// discarded).
    Fail(CloseCode, &'static str),
}

/// A completed unit of input.
#[derive(Debug)]
pub(crate) enum Complete {
    Message(MessageKind, Vec<u8>),
    Ping(ControlPayload),
    Pong(ControlPayload),
    Close(ControlPayload),
}

/// Payload of a control frame (at most 125 bytes, RFC 6455 §5.5).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ControlPayload {
    buf: [u8; 125],
    len: u8,
}

impl ControlPayload {
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }
}

/// Limits in force for one step.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    /// Largest message (RFC 6455 §10.4: implementations should impose limits).
    pub(crate) max_message: usize,
    /// Payload bytes that may still be buffered now (unread + partial bounded).
    pub(crate) bytes: usize,
    /// May a new frame start? False while the unread-message count is full.
    pub(crate) may_start: bool,
    /// Frames must be masked (we are the server) or must not be (client).
    pub(crate) expect_masked: bool,
}

/// RSV1 (the "Per-Message Compressed" bit of RFC 7692 §6) in `FrameHeader::rsv`.
pub(crate) const RSV1: u8 = 0b100;

#[derive(Debug)]
struct FrameState {
    opcode: OpCode,
    fin: bool,
    mask: Option<[u8; 4]>,
    remaining: u64,
    offset: usize,
}

#[derive(Debug)]
struct MessageState {
    kind: MessageKind,
    buf: Vec<u8>,
    utf8: Utf8Validator,
    /// RSV1 was set on the first frame: the payload is DEFLATE data.
    compressed: bool,
    /// Bytes of the `00 00 ff ff` tail already fed to the inflater.
    #[cfg_attr(not(feature = "deflate"), allow(dead_code))]
    tail: u8,
    /// The last inflate step filled its output: the inflater may hold more.
    #[cfg_attr(not(feature = "deflate"), allow(dead_code))]
    pending: bool,
}

/// The decompressor side of permessage-deflate, once negotiated.
#[derive(Debug, Default)]
struct Inflate {
    /// RSV1 may be set (permessage-deflate was negotiated).
    enabled: bool,
    /// Keep the decompressor between messages (the peer uses context
    /// takeover, RFC 7692 §7.1.1); otherwise it goes back to the pool (or
    /// is freed) after each message.
    keep: bool,
    #[cfg(feature = "deflate")]
    dec: Option<Box<crate::deflate::Decompressor>>,
    /// Compressed messages received.
    messages: u64,
}

/// Incremental reader state.
#[derive(Debug)]
pub(crate) struct Reader {
    head: [u8; MAX_HEADER_LEN],
    head_len: u8,
    frame: Option<FrameState>,
    message: Option<MessageState>,
    control: [u8; 125],
    control_len: u8,
    inflate: Inflate,
}

impl Default for Reader {
    fn default() -> Self {
        Reader {
            head: [0; MAX_HEADER_LEN],
            head_len: 0,
            frame: None,
            message: None,
            control: [0; 125],
            control_len: 0,
            inflate: Inflate::default(),
        }
    }
}

impl Reader {
    /// Payload bytes held for the message being reassembled.
    pub(crate) fn partial_len(&self) -> usize {
        self.message.as_ref().map_or(0, |m| m.buf.len())
    }

    /// Capacity held by the reassembly buffer (for memory accounting).
    pub(crate) fn partial_capacity(&self) -> usize {
        self.message.as_ref().map_or(0, |m| m.buf.capacity())
    }

    /// permessage-deflate was negotiated: RSV1 marks compressed messages;
    /// `keep` the decompressor between messages when the peer uses context
    /// takeover.
    pub(crate) fn enable_inflate(&mut self, keep: bool) {
        self.inflate.enabled = true;
        self.inflate.keep = keep;
    }

    /// Compressed messages received so far.
    pub(crate) fn compressed_messages(&self) -> u64 {
        self.inflate.messages
    }

    /// True while a decompressor is held (for memory accounting).
    #[cfg(feature = "deflate")]
    pub(crate) fn holds_decompressor(&self) -> bool {
        self.inflate.dec.is_some()
    }

    /// Drops any partial state (after a failure or close), decompressor
    /// included.
    pub(crate) fn reset(&mut self) {
        let messages = self.inflate.messages;
        *self = Reader::default();
        self.inflate.messages = messages;
    }

    /// Reads at most one unit from `input`. `pool` lends a decompressor to
    /// a compressed message and takes it back after (no context takeover).
    pub(crate) fn step(&mut self, input: &[u8], budget: Budget, pool: PoolRef<'_>) -> Step {
        if self.frame.is_none() && self.head_len == 0 && self.message.is_none() && budget.may_start
        {
            if let Some(step) = whole_message(input, budget) {
                return step;
            }
        }
        let mut used = 0;
        if self.frame.is_none() {
            if !budget.may_start {
                return Step::Blocked(0);
            }
            // Gather the header, never reading past it.
            loop {
                let have = self.head_len as usize;
                let need = FrameHeader::needed_len(&self.head[..have]);
                if have >= need {
                    break;
                }
                let take = (need - have).min(input.len() - used);
                if take == 0 {
                    return Step::NeedMore(used);
                }
                self.head[have..have + take].copy_from_slice(&input[used..used + take]);
                self.head_len += take as u8;
                used += take;
            }
            let header = match FrameHeader::decode(&self.head[..self.head_len as usize]) {
                Ok(Some((h, _))) => h,
                Ok(None) => return Step::NeedMore(used),
                Err(e) => return Step::Fail(CloseCode::PROTOCOL_ERROR, header_reason(e)),
            };
            self.head_len = 0;
            if let Err((code, why)) = self.start_frame(&header, budget) {
                return Step::Fail(code, why);
            }
        }
        #[cfg(feature = "deflate")]
        if self.frame.as_ref().is_some_and(|f| !f.opcode.is_control())
            && self.message.as_ref().is_some_and(|m| m.compressed)
        {
            return self.read_compressed(input, used, budget, pool);
        }
        let _ = pool;
        self.read_payload(input, used, budget)
    }

    fn start_frame(
        &mut self,
        h: &FrameHeader,
        budget: Budget,
    ) -> Result<(), (CloseCode, &'static str)> {
        // RFC 6455 §5.2: RSV bits must be 0 unless a negotiated extension
        // defines them. RFC 7692 §6: permessage-deflate defines RSV1 on the
        // first frame of a data message only (never on control frames or
        // continuation frames).
        let compressed = h.rsv == RSV1
            && self.inflate.enabled
            && matches!(h.opcode, OpCode::Text | OpCode::Binary);
        if h.rsv != 0 && !compressed {
            return Err((CloseCode::PROTOCOL_ERROR, "reserved bits set"));
        }
        // RFC 6455 §5.1: client frames are masked, server frames are not.
        if h.mask.is_some() != budget.expect_masked {
            return Err((
                CloseCode::PROTOCOL_ERROR,
                if budget.expect_masked {
                    "unmasked client frame"
                } else {
                    "masked server frame"
                },
            ));
        }
        match h.opcode {
            // RFC 6455 §5.4: a continuation frame needs a message in progress.
            OpCode::Continuation if self.message.is_none() => {
                return Err((CloseCode::PROTOCOL_ERROR, "continuation without a message"));
            }
            // RFC 6455 §5.4: no new data message inside a fragmented one.
            OpCode::Text | OpCode::Binary if self.message.is_some() => {
                return Err((
                    CloseCode::PROTOCOL_ERROR,
                    "data frame inside a fragmented message",
                ));
            }
            _ => {}
        }
        if !h.opcode.is_control() {
            let so_far = self.partial_len() as u64;
            let inflating = compressed || self.message.as_ref().is_some_and(|m| m.compressed);
            // RFC 6455 §10.4 / spec/websocket-peer.md §2.7: too big → 1009, checked
            // from the header (for compressed data: while inflating, see read_compressed).
            if !inflating && so_far.saturating_add(h.payload_len) > budget.max_message as u64 {
                return Err((CloseCode::MESSAGE_TOO_BIG, "message too big"));
            }
            if self.message.is_none() {
                let kind = if h.opcode == OpCode::Text {
                    MessageKind::Text
                } else {
                    MessageKind::Binary
                };
                self.message = Some(MessageState {
                    kind,
                    buf: Vec::new(),
                    utf8: Utf8Validator::new(),
                    compressed,
                    tail: 0,
                    pending: false,
                });
            }
        } else {
            self.control_len = 0;
        }
        self.frame = Some(FrameState {
            opcode: h.opcode,
            fin: h.fin,
            mask: h.mask,
            remaining: h.payload_len,
            offset: 0,
        });
        Ok(())
    }

    fn read_payload(&mut self, input: &[u8], mut used: usize, budget: Budget) -> Step {
        let Some(frame) = self.frame.as_mut() else {
            return Step::Progress(used);
        };
        let avail = input.len() - used;
        let remaining = usize::try_from(frame.remaining).unwrap_or(usize::MAX);
        if frame.opcode.is_control() {
            let take = remaining.min(avail);
            let start = self.control_len as usize;
            let dst = &mut self.control[start..start + take];
            dst.copy_from_slice(&input[used..used + take]);
            if let Some(key) = frame.mask {
                apply_mask(dst, key, frame.offset);
            }
            self.control_len += take as u8;
            used += take;
            frame.remaining -= take as u64;
            frame.offset += take;
        } else if let Some(msg) = self.message.as_mut() {
            let take = remaining.min(avail).min(budget.bytes);
            if take == 0 && remaining > 0 {
                return if avail == 0 {
                    Step::NeedMore(used)
                } else {
                    Step::Blocked(used)
                };
            }
            let start = msg.buf.len();
            if msg.buf.capacity() - start < take {
                // Reserve the rest of this frame, but never more than 64 KiB
                // ahead of bytes actually received.
                msg.buf.reserve(remaining.min(65_536).max(take));
            }
            msg.buf.extend_from_slice(&input[used..used + take]);
            let piece = &mut msg.buf[start..];
            if let Some(key) = frame.mask {
                apply_mask(piece, key, frame.offset);
            }
            used += take;
            frame.remaining -= take as u64;
            frame.offset += take;
            // RFC 6455 §8.1: fail fast on invalid UTF-8 in text messages.
            if msg.kind == MessageKind::Text && msg.utf8.feed(piece).is_err() {
                return Step::Fail(CloseCode::INVALID_PAYLOAD, "invalid UTF-8");
            }
        }
        if frame.remaining > 0 {
            // Input left over with the frame unfinished means the byte budget
            // ran out: that is backpressure (the caller must stop offering
            // input until the application reads), not "need more input".
            return if used < input.len() {
                Step::Blocked(used)
            } else {
                Step::NeedMore(used)
            };
        }
        let Some(frame) = self.frame.take() else {
            return Step::Progress(used);
        };
        let control = || ControlPayload {
            buf: self.control,
            len: self.control_len,
        };
        match frame.opcode {
            OpCode::Ping => Step::Complete(used, Complete::Ping(control())),
            OpCode::Pong => Step::Complete(used, Complete::Pong(control())),
            OpCode::Close => Step::Complete(used, Complete::Close(control())),
            _ if !frame.fin => Step::Progress(used),
            _ => {
                let Some(msg) = self.message.take() else {
                    return Step::Progress(used);
                };
                // RFC 6455 §8.1: the whole text message must be valid UTF-8.
                if msg.kind == MessageKind::Text && msg.utf8.finish().is_err() {
                    return Step::Fail(CloseCode::INVALID_PAYLOAD, "invalid UTF-8");
                }
                Step::Complete(used, Complete::Message(msg.kind, msg.buf))
            }
        }
    }
}

/// The fast path of [`Reader::step`] for the common case: a whole
/// unfragmented, uncompressed data frame (header and payload) at the start
/// of `input`, within every limit, with no message in progress. It is read
/// straight from `input` into a buffer of the exact size, without the
/// per-frame state of the general path (issue 11: 16-byte messages cost 2×
/// tungstenite's time). Anything else — a partial frame, a control frame,
/// RSV bits, a wrong mask bit, a length over a limit, invalid UTF-8, a
/// header error — returns `None` and the general path handles it, so every
/// failure keeps one implementation (and its close code and reason).
fn whole_message(input: &[u8], budget: Budget) -> Option<Step> {
    let (h, head) = FrameHeader::decode(input).ok()??;
    let kind = match h.opcode {
        OpCode::Binary => MessageKind::Binary,
        OpCode::Text => MessageKind::Text,
        _ => return None,
    };
    // RFC 6455 §5.2 (RSV), §5.1 (masking), §5.4 (FIN): the general path's rules.
    if !h.fin || h.rsv != 0 || h.mask.is_some() != budget.expect_masked {
        return None;
    }
    let len = usize::try_from(h.payload_len).ok()?;
    // RFC 6455 §10.4: the same limits as the general path (which fails or blocks).
    if len > budget.max_message || len > budget.bytes {
        return None;
    }
    let payload = input.get(head..head.checked_add(len)?)?;
    let mut buf = Vec::with_capacity(len);
    buf.extend_from_slice(payload);
    if let Some(key) = h.mask {
        apply_mask(&mut buf, key, 0);
    }
    // RFC 6455 §8.1: text must be UTF-8 (a failure is reported by the general path).
    if kind == MessageKind::Text && core::str::from_utf8(&buf).is_err() {
        return None;
    }
    Some(Step::Complete(head + len, Complete::Message(kind, buf)))
}

#[cfg(feature = "deflate")]
impl Reader {
    /// Reads the payload of a frame of a compressed message: unmasks it in
    /// small steps, inflates each (RFC 7692 §7.2.2, with the `00 00 ff ff`
    /// tail after the last frame), validates UTF-8 as text comes out, and
    /// checks the inflated size against `max_message` while inflating.
    fn read_compressed(
        &mut self,
        input: &[u8],
        mut used: usize,
        budget: Budget,
        mut pool: PoolRef<'_>,
    ) -> Step {
        use crate::deflate::{Decompressor, Inflated, TAIL};
        /// Compressed bytes unmasked and inflated per step.
        const STEP: usize = 4096;

        let (Some(frame), Some(msg)) = (self.frame.as_mut(), self.message.as_mut()) else {
            return Step::Progress(used);
        };
        let dec = self
            .inflate
            .dec
            .get_or_insert_with(|| match pool.as_deref_mut() {
                Some(pool) => pool.take_decompressor(),
                None => Box::new(Decompressor::new()),
            });
        let mut piece = [0u8; STEP];
        loop {
            let remaining = usize::try_from(frame.remaining).unwrap_or(usize::MAX);
            let (len, from_input) = if remaining > 0 {
                let n = remaining.min(input.len() - used).min(STEP);
                if n == 0 {
                    return Step::NeedMore(used);
                }
                piece[..n].copy_from_slice(&input[used..used + n]);
                if let Some(key) = frame.mask {
                    apply_mask(&mut piece[..n], key, frame.offset);
                }
                (n, true)
            } else if frame.fin && usize::from(msg.tail) < TAIL.len() {
                // RFC 7692 §7.2.2: append 00 00 ff ff to the message's payload.
                let tail = &TAIL[usize::from(msg.tail)..];
                piece[..tail.len()].copy_from_slice(tail);
                (tail.len(), false)
            } else if msg.pending {
                (0, false)
            } else {
                break;
            };
            // The message may reach max_message (one byte more shows it is
            // too big); unread data may leave less room for now.
            let left = budget.max_message.saturating_sub(msg.buf.len());
            let room = if budget.bytes >= left {
                left.saturating_add(1)
            } else {
                budget.bytes
            };
            let start = msg.buf.len();
            let result = dec.inflate(&piece[..len], &mut msg.buf, room);
            // RFC 6455 §10.4: too big → 1009, as soon as the inflated size shows it.
            if msg.buf.len() > budget.max_message {
                return Step::Fail(CloseCode::MESSAGE_TOO_BIG, "message too big");
            }
            // RFC 6455 §8.1: fail fast on invalid UTF-8, on the inflated text.
            if msg.kind == MessageKind::Text && msg.utf8.feed(&msg.buf[start..]).is_err() {
                return Step::Fail(CloseCode::INVALID_PAYLOAD, "invalid UTF-8");
            }
            let (took, full) = match result {
                Ok(Inflated::Done(n)) => (n, false),
                Ok(Inflated::Full(n)) => (n, true),
                Err(_) => {
                    return Step::Fail(CloseCode::INVALID_PAYLOAD, "invalid compressed data");
                }
            };
            if !full && took < len {
                // zlib stops short of its input only when the output is full.
                return Step::Fail(CloseCode::INVALID_PAYLOAD, "invalid compressed data");
            }
            if from_input {
                used += took;
                frame.remaining -= took as u64;
                frame.offset += took;
            } else {
                msg.tail += took as u8;
            }
            msg.pending = full;
            if full {
                // Out of room until the application reads (backpressure).
                return Step::Blocked(used);
            }
        }
        let Some(frame) = self.frame.take() else {
            return Step::Progress(used);
        };
        if !frame.fin {
            return Step::Progress(used);
        }
        let Some(msg) = self.message.take() else {
            return Step::Progress(used);
        };
        dec.end_message();
        self.inflate.messages += 1;
        if !self.inflate.keep {
            // RFC 7692 §7.1.1.2: no context takeover, nothing to keep.
            if let (Some(dec), Some(pool)) = (self.inflate.dec.take(), pool) {
                pool.put_decompressor(dec);
            }
        }
        // RFC 6455 §8.1: the whole text message must be valid UTF-8.
        if msg.kind == MessageKind::Text && msg.utf8.finish().is_err() {
            return Step::Fail(CloseCode::INVALID_PAYLOAD, "invalid UTF-8");
        }
        // Unread messages are bounded by their length: keep no spare room.
        let mut buf = msg.buf;
        if buf.capacity() - buf.len() > buf.len() / 8 {
            buf.shrink_to_fit();
        }
        Step::Complete(used, Complete::Message(msg.kind, buf))
    }
}

fn header_reason(e: HeaderError) -> &'static str {
    match e {
        HeaderError::ReservedOpcode(_) => "reserved opcode",
        HeaderError::NonMinimalLength => "non-minimal length encoding",
        HeaderError::LengthTopBit => "64-bit length with the top bit set",
        HeaderError::ControlPayloadTooLong => "control frame payload over 125 bytes",
        HeaderError::FragmentedControl => "fragmented control frame",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    const KEY: [u8; 4] = [0x37, 0xFA, 0x21, 0x3D];

    fn budget() -> Budget {
        Budget {
            max_message: 100,
            bytes: 100,
            may_start: true,
            expect_masked: true,
        }
    }

    /// A client frame: `b0` as given, masked with [`KEY`] unless `masked` is false.
    fn frame(b0: u8, payload: &[u8], masked: bool) -> Vec<u8> {
        let mut v = vec![b0, payload.len() as u8 | if masked { 0x80 } else { 0 }];
        if masked {
            v.extend_from_slice(&KEY);
        }
        let start = v.len();
        v.extend_from_slice(payload);
        if masked {
            apply_mask(&mut v[start..], KEY, 0);
        }
        v
    }

    #[test]
    fn a_whole_small_data_frame_takes_the_fast_path() {
        let mut input = frame(0x82, b"abc", true);
        input.extend_from_slice(&frame(0x81, b"next", true));
        match whole_message(&input, budget()) {
            Some(Step::Complete(9, Complete::Message(MessageKind::Binary, data))) => {
                assert_eq!(data, b"abc");
            }
            other => panic!("{other:?}"),
        }
        match whole_message(&input[9..], budget()) {
            Some(Step::Complete(10, Complete::Message(MessageKind::Text, data))) => {
                assert_eq!(data, b"next");
            }
            other => panic!("{other:?}"),
        }
        // An empty message is a message too (spec §3.5 leaves discarding to the host).
        assert!(matches!(
            whole_message(&frame(0x82, b"", true), budget()),
            Some(Step::Complete(6, Complete::Message(MessageKind::Binary, d))) if d.is_empty()
        ));
    }

    /// Everything but the simple case goes to the general path, which owns
    /// every failure (its close code and reason).
    #[test]
    fn anything_else_is_left_to_the_general_path() {
        let ok = frame(0x82, b"abcd", true);
        let cases: Vec<(&str, Vec<u8>, Budget)> = vec![
            ("partial header", ok[..3].to_vec(), budget()),
            ("partial payload", ok[..ok.len() - 1].to_vec(), budget()),
            ("not final", frame(0x02, b"abcd", true), budget()),
            ("continuation", frame(0x80, b"abcd", true), budget()),
            ("RSV1", frame(0xC2, b"abcd", true), budget()),
            ("ping", frame(0x89, b"abcd", true), budget()),
            ("close", frame(0x88, &[0x03, 0xE8], true), budget()),
            (
                "unmasked from a client",
                frame(0x82, b"abcd", false),
                budget(),
            ),
            ("reserved opcode", frame(0x83, b"abcd", true), budget()),
            ("invalid UTF-8", frame(0x81, &[0xC3, 0x28], true), budget()),
            (
                "over the message limit",
                ok.clone(),
                Budget {
                    max_message: 3,
                    ..budget()
                },
            ),
            (
                "over the byte budget",
                ok.clone(),
                Budget {
                    bytes: 3,
                    ..budget()
                },
            ),
        ];
        for (what, input, b) in cases {
            assert!(whole_message(&input, b).is_none(), "{what}");
        }
        // A masked frame to a client (the server side of `expect_masked`).
        let client = Budget {
            expect_masked: false,
            ..budget()
        };
        assert!(whole_message(&ok, client).is_none(), "masked to a client");
        assert!(whole_message(&frame(0x82, b"abcd", false), client).is_some());
    }
}
