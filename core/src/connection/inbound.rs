//! The streaming frame reader: turns received bytes into complete messages
//! and control frames, one step at a time.
//!
//! Payload bytes are unmasked and validated as they arrive, so a frame never
//! has to be held whole in the adapter's read buffer, invalid UTF-8 fails as
//! soon as it is seen, and a frame's length is checked against the limit from
//! its header before any of its payload is buffered.

use alloc::vec::Vec;

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

    /// Drops any partial state (after a failure or close).
    pub(crate) fn reset(&mut self) {
        *self = Reader::default();
    }

    /// Reads at most one unit from `input`.
    pub(crate) fn step(&mut self, input: &[u8], budget: Budget) -> Step {
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
        self.read_payload(input, used, budget)
    }

    fn start_frame(
        &mut self,
        h: &FrameHeader,
        budget: Budget,
    ) -> Result<(), (CloseCode, &'static str)> {
        // RFC 6455 §5.2: RSV bits must be 0 unless an extension defines them; none is negotiated.
        if h.rsv != 0 {
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
            // RFC 6455 §10.4 / spec/websocket-peer.md §2.7: too big → 1009, checked from the header.
            if so_far.saturating_add(h.payload_len) > budget.max_message as u64 {
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
        let control = ControlPayload {
            buf: self.control,
            len: self.control_len,
        };
        match frame.opcode {
            OpCode::Ping => Step::Complete(used, Complete::Ping(control)),
            OpCode::Pong => Step::Complete(used, Complete::Pong(control)),
            OpCode::Close => Step::Complete(used, Complete::Close(control)),
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

fn header_reason(e: HeaderError) -> &'static str {
    match e {
        HeaderError::ReservedOpcode(_) => "reserved opcode",
        HeaderError::NonMinimalLength => "non-minimal length encoding",
        HeaderError::LengthTopBit => "64-bit length with the top bit set",
        HeaderError::ControlPayloadTooLong => "control frame payload over 125 bytes",
        HeaderError::FragmentedControl => "fragmented control frame",
    }
}
