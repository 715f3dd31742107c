//! The outbound queue: encoded frames waiting to be written, in wire order.
//!
//! Data frames keep their order. Control frames jump ahead of every data frame
//! that has not started yet (never into the middle of a frame, RFC 6455 §5.4),
//! and there is a fixed number of control slots, so the queue is bounded by
//! `max_queued_packets` data frames plus at most [`MAX_CONTROL_FRAMES`].
//!
//! A frame is a small inline part (the header, plus the whole payload when it
//! is short) and an optional shared [`Bytes`] body: one encoded broadcast
//! frame can sit in many queues without being copied.
//!
//! With permessage-deflate, a broadcast frame also carries its compressed
//! variants, one per server window size, each computed once on first use
//! (by whichever connection or host needs it first, on any thread) and then
//! shared like the plain frame (RFC 7692 §7.1.1.1: with
//! `server_no_context_takeover` the compressed bytes depend on the message
//! and the window only).

use alloc::collections::VecDeque;
use bytes::Bytes;

use super::slack::Slack;
use crate::frame::{CloseCode, FrameHeader, OpCode, MAX_HEADER_LEN};

#[cfg(feature = "deflate")]
use alloc::{boxed::Box, sync::Arc};

/// Bytes kept inline: a header plus a short payload (a 16-byte message with
/// its 2-byte header, or a masked one with its 6-byte header, fits). Small
/// enough to keep an idle connection's queue capacity cheap.
const INLINE_CAP: usize = 40;

/// Automatic pongs that may wait at once; past this, the newest ping's pong
/// replaces a waiting one (RFC 6455 §5.5.3 allows answering only the most
/// recent ping). Bounds what a peer that pings without reading can cost.
pub(crate) const MAX_PENDING_PONGS: usize = 32;

/// At most this many control frames besides automatic pongs (user ping,
/// user pong, close) are queued at once.
#[cfg(test)]
pub(crate) const MAX_CONTROL_FRAMES: usize = 4;

/// What a queued frame is, for accounting and control-slot rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// A data message (counts against the outbound limits).
    Data,
    /// Raw handshake bytes (HTTP request or response).
    Http,
    /// Pong generated for a received ping.
    AutoPong,
    /// Ping sent by the application or the heartbeat.
    Ping,
    /// Pong sent by the application.
    UserPong,
    /// The close frame.
    Close,
}

impl Class {
    #[cfg(test)]
    fn is_control(self) -> bool {
        matches!(
            self,
            Class::AutoPong | Class::Ping | Class::UserPong | Class::Close
        )
    }
}

/// An encoded frame, possibly sharing its body with other queues.
///
/// Cheap to clone (a reference count or two), `Send + Sync`: one frame made
/// with [`unmasked`](Self::unmasked) can be queued to peers of several hosts
/// on several threads. Sent to a connection that negotiated
/// permessage-deflate, it goes out compressed when that pays: with
/// `server_no_context_takeover` as a compressed variant made once per window
/// size and shared by every such receiver, with context takeover compressed
/// by that connection.
#[derive(Debug, Clone)]
pub struct SharedFrame {
    inline: [u8; INLINE_CAP],
    inline_len: u8,
    body: Bytes,
    payload_len: usize,
    #[cfg(feature = "deflate")]
    variants: Option<Arc<Variants>>,
}

/// The compressed forms of a broadcast message (feature `deflate`).
#[cfg(feature = "deflate")]
pub(crate) struct Variants {
    opcode: OpCode,
    /// The uncompressed payload.
    payload: Bytes,
    /// Index: server window bits − 9 (9..=15). `None` inside: compressing
    /// does not make it smaller, send the plain frame.
    compressed: [once_cell::race::OnceBox<Option<SharedFrame>>; 7],
}

#[cfg(feature = "deflate")]
impl core::fmt::Debug for Variants {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let made = self.compressed.iter().filter(|c| c.get().is_some()).count();
        f.debug_struct("Variants")
            .field("payload_len", &self.payload.len())
            .field("made", &made)
            .finish()
    }
}

impl SharedFrame {
    /// A single-frame message header (FIN set, RSV bits `rsv`, minimal
    /// length form: RFC 6455 §5.2) written into a fresh inline buffer.
    fn with_header(
        opcode: OpCode,
        rsv: u8,
        mask: Option<[u8; 4]>,
        payload_len: usize,
    ) -> SharedFrame {
        let header = FrameHeader {
            fin: true,
            rsv,
            opcode,
            mask,
            payload_len: payload_len as u64,
        };
        let mut head = [0u8; MAX_HEADER_LEN];
        let head_len = header.encode(&mut head);
        let mut inline = [0u8; INLINE_CAP];
        inline[..head_len].copy_from_slice(&head[..head_len]);
        SharedFrame {
            inline,
            inline_len: head_len as u8,
            body: Bytes::new(),
            payload_len,
            #[cfg(feature = "deflate")]
            variants: None,
        }
    }

    /// Room left inline after the header.
    fn inline_room(&self) -> usize {
        INLINE_CAP - self.inline_len as usize
    }

    /// Appends `payload` inline (the caller checked it fits), masked with
    /// `key` when given.
    fn push_inline(&mut self, payload: &[u8], key: Option<[u8; 4]>) {
        let at = self.inline_len as usize;
        let dst = &mut self.inline[at..at + payload.len()];
        match key {
            Some(key) => crate::frame::mask_into(payload, dst, key, 0),
            None => dst.copy_from_slice(payload),
        }
        self.inline_len += payload.len() as u8;
    }

    /// Encodes an unmasked (server) frame around `payload` without copying
    /// it when it is large. RFC 6455 §5.1: a server never masks. With the
    /// `deflate` feature, a data frame keeps the payload for its compressed
    /// variants (made only if a receiver negotiated permessage-deflate).
    pub fn unmasked(opcode: OpCode, payload: Bytes) -> SharedFrame {
        #[cfg(feature = "deflate")]
        let variants = (matches!(opcode, OpCode::Text | OpCode::Binary) && !payload.is_empty())
            .then(|| {
                Arc::new(Variants {
                    opcode,
                    payload: payload.clone(),
                    compressed: Default::default(),
                })
            });
        #[allow(unused_mut)]
        let mut frame = SharedFrame::plain(opcode, payload);
        #[cfg(feature = "deflate")]
        {
            frame.variants = variants;
        }
        frame
    }

    /// An unmasked frame around `payload`, without compressed variants.
    pub(crate) fn plain(opcode: OpCode, payload: Bytes) -> SharedFrame {
        SharedFrame::plain_rsv(opcode, 0, payload)
    }

    /// An unmasked frame with RSV bits `rsv` (RSV1: compressed, RFC 7692 §6).
    fn plain_rsv(opcode: OpCode, rsv: u8, payload: Bytes) -> SharedFrame {
        let mut frame = SharedFrame::with_header(opcode, rsv, None, payload.len());
        if payload.len() <= frame.inline_room() {
            frame.push_inline(&payload, None);
        } else {
            frame.body = payload;
        }
        frame
    }

    /// Encodes an unmasked frame from a borrowed payload: short payloads are
    /// kept inline (no allocation), longer ones copied once into a body.
    /// Such a frame is always sent uncompressed.
    pub fn unmasked_slice(opcode: OpCode, payload: &[u8]) -> SharedFrame {
        let mut frame = SharedFrame::with_header(opcode, 0, None, payload.len());
        if payload.len() <= frame.inline_room() {
            frame.push_inline(payload, None);
        } else {
            frame.body = Bytes::copy_from_slice(payload);
        }
        frame
    }

    /// Encodes a masked (client) frame: the payload is copied while masked.
    /// RFC 6455 §5.3: a fresh key per frame.
    pub(crate) fn masked(opcode: OpCode, payload: &[u8], key: [u8; 4]) -> SharedFrame {
        SharedFrame::masked_rsv(opcode, 0, payload, key)
    }

    /// [`masked`](Self::masked) with RSV bits `rsv` (RSV1: compressed).
    pub(crate) fn masked_rsv(opcode: OpCode, rsv: u8, payload: &[u8], key: [u8; 4]) -> SharedFrame {
        let mut frame = SharedFrame::with_header(opcode, rsv, Some(key), payload.len());
        if payload.len() <= frame.inline_room() {
            frame.push_inline(payload, Some(key));
        } else {
            let mut body = alloc::vec![0u8; payload.len()];
            crate::frame::mask_into(payload, &mut body, key, 0);
            frame.body = Bytes::from(body);
        }
        frame
    }

    /// Raw bytes (an HTTP head), sent as they are.
    pub(crate) fn raw(bytes: Bytes) -> SharedFrame {
        SharedFrame {
            inline: [0; INLINE_CAP],
            inline_len: 0,
            body: bytes,
            payload_len: 0,
            #[cfg(feature = "deflate")]
            variants: None,
        }
    }

    /// An unmasked compressed data frame: RSV1 set (RFC 7692 §6).
    #[cfg(feature = "deflate")]
    pub(crate) fn compressed(opcode: OpCode, deflated: alloc::vec::Vec<u8>) -> SharedFrame {
        SharedFrame::plain_rsv(opcode, super::inbound::RSV1, Bytes::from(deflated))
    }

    /// The uncompressed payload and opcode of a frame made by
    /// [`unmasked`](Self::unmasked), for a connection that compresses it
    /// with its own context.
    #[cfg(feature = "deflate")]
    pub(crate) fn message(&self) -> Option<(OpCode, &Bytes)> {
        self.variants.as_ref().map(|v| (v.opcode, &v.payload))
    }

    /// The variant compressed with a `window_bits` window and no context
    /// (RFC 7692 §7.1.1.1), made on first use with `compress`; `None` when
    /// this frame has no variants or compressing does not make it smaller.
    #[cfg(feature = "deflate")]
    pub(crate) fn compressed_variant(
        &self,
        window_bits: u8,
        compress: impl FnOnce(&[u8]) -> Option<alloc::vec::Vec<u8>>,
    ) -> Option<SharedFrame> {
        let v = self.variants.as_ref()?;
        let slot = v.compressed.get(usize::from(window_bits.checked_sub(9)?))?;
        slot.get_or_init(|| {
            Box::new(compress(&v.payload).map(|z| SharedFrame::compressed(v.opcode, z)))
        })
        .clone()
    }

    /// Bytes on the wire.
    pub fn wire_len(&self) -> usize {
        self.inline_len as usize + self.body.len()
    }

    /// Length of the message payload inside.
    pub fn payload_len(&self) -> usize {
        self.payload_len
    }

    fn inline(&self) -> &[u8] {
        &self.inline[..self.inline_len as usize]
    }
}

#[derive(Debug)]
struct Entry {
    frame: SharedFrame,
    class: Class,
    /// Started: partly written, or handed out by [`Outbound::lease`]. A
    /// fixed entry keeps its place: control frames are queued behind it and
    /// it is never dropped or replaced.
    fixed: bool,
}

/// Frames waiting for the socket.
///
/// Bookkeeping is O(1) per frame whatever the queue length (a peer that pings
/// without reading must not make each ping cost a walk of thousands of queued
/// frames): the front run of entries that control frames go behind is kept
/// as a length (`front_run`), and unstarted control frames are counted per
/// class.
#[derive(Debug, Default)]
pub(crate) struct Outbound {
    queue: VecDeque<Entry>,
    /// Bytes of the front entry already written.
    written: usize,
    /// Length of the front run: entries that are fixed, control frames or
    /// HTTP bytes. A new control frame is inserted right after it (RFC 6455
    /// §5.4: between frames, never inside one, ahead of unstarted data).
    front_run: usize,
    /// Unstarted control frames per class ([`Class::control_index`]).
    unstarted_control: [usize; 3],
    /// Total wire bytes not yet written.
    pending_bytes: usize,
    /// Payload bytes of queued data messages not yet fully written.
    data_bytes: usize,
    /// Data messages queued and not fully written.
    data_messages: usize,
    /// When the drained queue gives its buffer back ([`Slack`]).
    slack: Slack,
}

/// A frame class that was completely written by [`Outbound::advance`].
pub(crate) type Written = Class;

impl Class {
    /// Index of the control classes that have an unstarted-frame counter.
    fn control_index(self) -> Option<usize> {
        match self {
            Class::AutoPong => Some(0),
            Class::Ping => Some(1),
            Class::UserPong => Some(2),
            _ => None,
        }
    }
}

impl Outbound {
    pub(crate) fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    pub(crate) fn data_bytes(&self) -> usize {
        self.data_bytes
    }

    pub(crate) fn data_messages(&self) -> usize {
        self.data_messages
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    fn count_unstarted(&mut self, class: Class, delta: isize) {
        if let Some(i) = class.control_index() {
            self.unstarted_control[i] = self.unstarted_control[i].saturating_add_signed(delta);
        }
    }

    /// Marks entry `i` started (it keeps its place from now on).
    fn fix(&mut self, i: usize) {
        let Some(e) = self.queue.get_mut(i) else {
            return;
        };
        if !e.fixed {
            e.fixed = true;
            let class = e.class;
            self.count_unstarted(class, -1);
        }
    }

    /// Grows the front run over the entries that belong to it.
    fn extend_front_run(&mut self) {
        while let Some(e) = self.queue.get(self.front_run) {
            if e.fixed || e.class != Class::Data {
                self.front_run += 1;
            } else {
                break;
            }
        }
    }

    /// Appends a data frame, raw HTTP bytes or the close frame behind
    /// everything queued.
    pub(crate) fn push_back(&mut self, frame: SharedFrame, class: Class) {
        self.pending_bytes += frame.wire_len();
        if class == Class::Data {
            self.data_bytes += frame.payload_len;
            self.data_messages += 1;
        }
        self.count_unstarted(class, 1);
        self.queue.push_back(Entry {
            frame,
            class,
            fixed: false,
        });
        self.extend_front_run();
    }

    /// Queued frames of `class` not yet started (control classes only; O(1)).
    pub(crate) fn unstarted_count(&self, class: Class) -> usize {
        class
            .control_index()
            .map_or(0, |i| self.unstarted_control[i])
    }

    /// True when a control frame of `class` is queued and not yet started.
    pub(crate) fn has_unstarted(&self, class: Class) -> bool {
        self.unstarted_count(class) > 0
    }

    #[cfg(test)]
    pub(crate) fn control_count(&self) -> usize {
        self.queue.iter().filter(|e| e.class.is_control()).count()
    }

    /// Queues a control frame ahead of every unstarted data frame, behind
    /// started frames and other control frames (RFC 6455 §5.4: control frames
    /// may be injected between the frames of a message, never inside one).
    /// With `replace`, the newest unstarted frame of the same class gives way
    /// to this one (RFC 6455 §5.5.3: answering only the most recent ping is
    /// allowed). Cost: bounded by the front run (started frames of one lease
    /// plus the control slots), never by the number of queued data frames.
    pub(crate) fn push_control(&mut self, frame: SharedFrame, class: Class, replace: bool) {
        if replace && self.has_unstarted(class) {
            // Unstarted control frames all sit in the front run.
            let run = self.front_run;
            if let Some(e) = self
                .queue
                .range_mut(..run)
                .rev()
                .find(|e| e.class == class && !e.fixed)
            {
                self.pending_bytes -= e.frame.wire_len();
                self.pending_bytes += frame.wire_len();
                e.frame = frame;
                return;
            }
        }
        self.pending_bytes += frame.wire_len();
        self.count_unstarted(class, 1);
        self.queue.insert(
            self.front_run,
            Entry {
                frame,
                class,
                fixed: false,
            },
        );
        self.front_run += 1;
    }

    /// Drops every data frame that has not started (used when the connection
    /// fails: nothing more is owed to the peer). Rare: linear.
    pub(crate) fn drop_unstarted_data(&mut self) {
        self.slack.note(self.queue.len());
        let mut removed_bytes = 0;
        let mut removed_data = 0;
        let mut removed_msgs = 0;
        self.queue.retain(|e| {
            let keep = e.fixed || e.class != Class::Data;
            if !keep {
                removed_bytes += e.frame.wire_len();
                removed_data += e.frame.payload_len;
                removed_msgs += 1;
            }
            keep
        });
        self.pending_bytes -= removed_bytes;
        self.data_bytes -= removed_data;
        self.data_messages -= removed_msgs;
        self.front_run = 0;
        self.extend_front_run();
    }

    /// Forgets everything (the socket is gone).
    pub(crate) fn clear(&mut self) {
        *self = Outbound::default();
    }

    /// The unwritten bytes, as slices in wire order.
    pub(crate) fn chunks(&self) -> Chunks<'_> {
        Chunks {
            queue: self.queue.iter(),
            skip: self.written,
            pending: None,
        }
    }

    /// Hands out up to `max_frames` frames (and about `max_bytes` bytes: at
    /// least one frame) from the front for a write done elsewhere: clones go
    /// into `batch`, and the frames count as started until written.
    pub(crate) fn lease(&mut self, batch: &mut TransmitBatch, max_frames: usize, max_bytes: usize) {
        batch.clear();
        batch.skip = self.written;
        let mut bytes = 0;
        let mut i = 0;
        while i < max_frames && (i == 0 || bytes < max_bytes) {
            let Some(e) = self.queue.get(i) else {
                break;
            };
            bytes += e.frame.wire_len() - if i == 0 { self.written } else { 0 };
            batch.frames.push(e.frame.clone());
            self.fix(i);
            i += 1;
        }
        self.extend_front_run();
        batch.bytes = bytes;
    }

    /// Marks `n` bytes as written; `on_done` is called with the class of each
    /// frame that is now completely written.
    pub(crate) fn advance(&mut self, mut n: usize, mut on_done: impl FnMut(Written)) {
        n = n.min(self.pending_bytes);
        self.pending_bytes -= n;
        self.slack.note(self.queue.len());
        while n > 0 {
            let Some(front) = self.queue.front() else {
                break;
            };
            let left = front.frame.wire_len() - self.written;
            if n < left {
                self.written += n;
                // Partly written: it keeps its place.
                self.fix(0);
                break;
            }
            n -= left;
            self.written = 0;
            self.pop_front(&mut on_done);
        }
        // Zero-length entries (never queued today) would complete here too.
        while self.queue.front().is_some_and(|e| e.frame.wire_len() == 0) {
            self.pop_front(&mut on_done);
        }
        if self.queue.is_empty() && self.slack.drained(self.queue.capacity()) {
            self.queue = VecDeque::new();
        }
        self.extend_front_run();
    }

    fn pop_front(&mut self, on_done: &mut impl FnMut(Written)) {
        if let Some(e) = self.queue.pop_front() {
            if e.class == Class::Data {
                self.data_bytes -= e.frame.payload_len;
                self.data_messages -= 1;
            }
            if !e.fixed {
                self.count_unstarted(e.class, -1);
            }
            self.front_run = self.front_run.saturating_sub(1);
            on_done(e.class);
        }
    }
}

/// Frames handed out for writing outside the connection (see
/// [`Connection::lease_transmit`](super::Connection::lease_transmit)): clones
/// of queued frames (a shared body is not copied), with the bytes of the
/// first one that were already written skipped.
#[derive(Debug, Default)]
pub struct TransmitBatch {
    frames: alloc::vec::Vec<SharedFrame>,
    skip: usize,
    bytes: usize,
}

impl TransmitBatch {
    /// An empty batch.
    pub fn new() -> TransmitBatch {
        TransmitBatch::default()
    }

    /// Drops the frames held (keeps the allocation).
    pub fn clear(&mut self) {
        self.frames.clear();
        self.skip = 0;
        self.bytes = 0;
    }

    /// True when nothing is to be written.
    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// Bytes to write.
    pub fn len(&self) -> usize {
        self.bytes
    }

    /// The bytes to write, as slices in wire order.
    pub fn chunks(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let mut skip = self.skip;
        self.frames
            .iter()
            .flat_map(|f| [f.inline(), &f.body[..]])
            .filter_map(move |c| {
                if skip >= c.len() {
                    skip -= c.len();
                    return None;
                }
                let c = &c[skip..];
                skip = 0;
                Some(c)
            })
    }
}

/// Iterator over the unwritten bytes of an [`Outbound`] queue, front first.
#[derive(Debug)]
pub struct Chunks<'a> {
    queue: alloc::collections::vec_deque::Iter<'a, Entry>,
    skip: usize,
    pending: Option<&'a [u8]>,
}

impl<'a> Iterator for Chunks<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            if let Some(body) = self.pending.take() {
                if !body.is_empty() {
                    return Some(body);
                }
            }
            let e = self.queue.next()?;
            let inline = e.frame.inline();
            let body = &e.frame.body[..];
            let skip = core::mem::take(&mut self.skip);
            if skip < inline.len() {
                self.pending = Some(body);
                return Some(&inline[skip..]);
            }
            let skip = skip - inline.len();
            if skip < body.len() {
                return Some(&body[skip..]);
            }
        }
    }
}

/// Encodes a close frame payload for `code` and `reason` into a frame.
pub(crate) fn close_frame(
    code: Option<CloseCode>,
    reason: &str,
    mask: Option<[u8; 4]>,
) -> SharedFrame {
    let mut payload = [0u8; 125];
    let len = match code {
        Some(code) => crate::frame::encode_close_payload(code, reason, &mut payload).unwrap_or(0),
        None => 0,
    };
    control_frame(OpCode::Close, &payload[..len], mask)
}

/// Encodes a control frame (payload ≤ 125 bytes, RFC 6455 §5.5).
pub(crate) fn control_frame(opcode: OpCode, payload: &[u8], mask: Option<[u8; 4]>) -> SharedFrame {
    match mask {
        Some(key) => SharedFrame::masked(opcode, payload, key),
        None => SharedFrame::unmasked_slice(opcode, payload),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn flat(out: &Outbound) -> Vec<u8> {
        out.chunks().flat_map(|c| c.iter().copied()).collect()
    }

    fn data(n: usize) -> SharedFrame {
        SharedFrame::unmasked(OpCode::Binary, Bytes::from(alloc::vec![0xAB; n]))
    }

    #[test]
    fn a_drained_queue_frees_a_burst_s_capacity() {
        use super::super::slack::{IDLE_CAPACITY, QUIET_DRAINS, SMALL_CAPACITY};
        let mut out = Outbound::default();
        let cycle = |out: &mut Outbound, n: usize| {
            for _ in 0..n {
                out.push_back(data(3), Class::Data);
            }
            out.advance(out.pending_bytes(), |_| {});
            assert!(out.is_empty());
        };
        cycle(&mut out, 3);
        let small = out.queue.capacity();
        assert!(small <= IDLE_CAPACITY, "{small}");
        // A small burst (a newcomer's ADD_PEERs): freed as soon as it drained.
        cycle(&mut out, SMALL_CAPACITY);
        assert_eq!(out.queue.capacity(), 0);
        // A large one: kept while frames wait and while the queue is busy ...
        for _ in 0..16 {
            out.push_back(data(3), Class::Data);
        }
        assert!(out.queue.capacity() >= 16);
        out.advance(10, |_| {});
        assert!(out.queue.capacity() >= 16, "not freed while frames wait");
        out.advance(out.pending_bytes(), |_| {});
        assert!(out.is_empty());
        for _ in 0..5 {
            cycle(&mut out, 16);
            assert!(out.queue.capacity() >= 16, "a busy queue keeps its buffer");
        }
        // ... and freed after quiet drains (a heartbeat's ping or two).
        for _ in 0..QUIET_DRAINS {
            assert!(out.queue.capacity() >= 16);
            cycle(&mut out, 1);
        }
        assert_eq!(out.queue.capacity(), 0);
        assert_eq!((out.data_messages(), out.data_bytes()), (0, 0));
        // Still usable.
        out.push_back(data(3), Class::Data);
        assert_eq!(flat(&out), [0x82, 3, 0xAB, 0xAB, 0xAB]);
    }

    #[test]
    fn control_frames_jump_unstarted_data_but_not_a_started_frame() {
        let mut out = Outbound::default();
        out.push_back(data(200), Class::Data);
        out.push_back(data(3), Class::Data);
        out.advance(10, |_| {});
        out.push_control(
            control_frame(OpCode::Pong, b"p", None),
            Class::AutoPong,
            true,
        );
        let bytes = flat(&out);
        // Rest of the 200-byte frame (header 4 + 200 − 10 written), then the pong, then the 3-byte frame.
        assert_eq!(bytes.len(), 194 + 3 + 5);
        assert_eq!(&bytes[194..197], &[0x8A, 0x01, b'p']);
        assert_eq!(&bytes[197..199], &[0x82, 0x03]);
        assert_eq!(out.control_count(), 1);
    }

    #[test]
    fn automatic_pong_is_replaced_by_the_newest_and_slots_are_bounded() {
        let mut out = Outbound::default();
        out.push_control(
            control_frame(OpCode::Pong, b"1", None),
            Class::AutoPong,
            true,
        );
        out.push_control(
            control_frame(OpCode::Pong, b"2", None),
            Class::AutoPong,
            true,
        );
        assert_eq!(flat(&out), [0x8A, 0x01, b'2']);
        out.push_control(control_frame(OpCode::Ping, b"", None), Class::Ping, false);
        out.push_control(
            control_frame(OpCode::Pong, b"u", None),
            Class::UserPong,
            false,
        );
        out.push_back(close_frame(Some(CloseCode::NORMAL), "", None), Class::Close);
        assert!(out.control_count() <= MAX_CONTROL_FRAMES);
        let mut done = Vec::new();
        out.advance(out.pending_bytes(), |c| done.push(c));
        assert_eq!(
            done,
            [Class::AutoPong, Class::Ping, Class::UserPong, Class::Close]
        );
        assert!(out.is_empty());
    }

    #[test]
    fn accounting_follows_partial_writes() {
        let mut out = Outbound::default();
        out.push_back(data(100), Class::Data);
        out.push_back(data(100), Class::Data);
        assert_eq!((out.data_messages(), out.data_bytes()), (2, 200));
        // Each frame is 2 header bytes + 100: finish the first, start the second.
        out.advance(101, |_| {});
        assert_eq!((out.data_messages(), out.data_bytes()), (2, 200));
        out.advance(2, |_| {});
        assert_eq!((out.data_messages(), out.data_bytes()), (1, 100));
        out.drop_unstarted_data();
        assert_eq!((out.data_messages(), out.pending_bytes()), (1, 101));
        out.advance(101, |_| {});
        assert!(out.is_empty());
    }

    fn batch_bytes(b: &TransmitBatch) -> Vec<u8> {
        b.chunks().flat_map(|c| c.iter().copied()).collect()
    }

    #[test]
    fn leased_frames_keep_their_place_and_survive_a_failure() {
        let mut out = Outbound::default();
        out.push_back(data(3), Class::Data);
        out.push_back(data(4), Class::Data);
        out.push_back(data(5), Class::Data);
        let mut batch = TransmitBatch::new();
        out.lease(&mut batch, 2, usize::MAX);
        assert_eq!(batch.len(), 5 + 6);
        assert_eq!(batch_bytes(&batch), flat(&out)[..11].to_vec());
        // A pong queued while the lease is out goes behind the leased frames.
        out.push_control(
            control_frame(OpCode::Pong, b"p", None),
            Class::AutoPong,
            true,
        );
        let bytes = flat(&out);
        assert_eq!(&bytes[11..14], &[0x8A, 0x01, b'p']);
        assert_eq!(&bytes[14..16], &[0x82, 0x05]);
        // A failure drops unstarted data only: the leased frames stay owed.
        out.drop_unstarted_data();
        assert_eq!((out.data_messages(), out.pending_bytes()), (2, 14));
        // Partial write, then a new lease resumes at the first unwritten byte.
        out.advance(4, |_| {});
        out.lease(&mut batch, 8, usize::MAX);
        assert_eq!(batch_bytes(&batch), flat(&out));
        assert_eq!(batch.len(), 10);
        let mut done = Vec::new();
        out.advance(10, |c| done.push(c));
        assert_eq!(done, [Class::Data, Class::Data, Class::AutoPong]);
        assert!(out.is_empty());
        assert_eq!(out.unstarted_count(Class::AutoPong), 0);
    }

    #[test]
    fn lease_stops_at_the_byte_budget_but_takes_one_frame() {
        let mut out = Outbound::default();
        out.push_back(data(300), Class::Data);
        out.push_back(data(300), Class::Data);
        let mut batch = TransmitBatch::new();
        out.lease(&mut batch, 64, 100);
        assert_eq!(batch.len(), 304);
        out.lease(&mut batch, 64, 400);
        assert_eq!(batch.len(), 608);
    }

    #[test]
    fn control_counters_follow_every_transition() {
        let mut out = Outbound::default();
        for _ in 0..1000 {
            out.push_back(data(2), Class::Data);
        }
        for i in 0..MAX_PENDING_PONGS + 5 {
            let full = out.unstarted_count(Class::AutoPong) >= MAX_PENDING_PONGS;
            out.push_control(
                control_frame(OpCode::Pong, &[i as u8], None),
                Class::AutoPong,
                full,
            );
        }
        assert_eq!(out.unstarted_count(Class::AutoPong), MAX_PENDING_PONGS);
        // The newest pong replaced the newest waiting one (RFC 6455 §5.5.3).
        let bytes = flat(&out);
        let last = 3 * (MAX_PENDING_PONGS - 1);
        assert_eq!(
            &bytes[last..last + 3],
            &[0x8A, 0x01, (MAX_PENDING_PONGS + 4) as u8]
        );
        out.push_control(control_frame(OpCode::Ping, b"", None), Class::Ping, false);
        assert!(out.has_unstarted(Class::Ping));
        let mut batch = TransmitBatch::new();
        out.lease(&mut batch, 10, usize::MAX);
        assert_eq!(out.unstarted_count(Class::AutoPong), MAX_PENDING_PONGS - 10);
        out.advance(out.pending_bytes(), |_| {});
        assert_eq!(out.unstarted_count(Class::AutoPong), 0);
        assert!(!out.has_unstarted(Class::Ping));
        assert!(out.is_empty());
    }

    // ----- property test: wire order rules and counters ------------------

    use alloc::collections::{BTreeMap, BTreeSet};
    use proptest::prelude::*;

    /// One operation on the queue, as the connection performs them.
    #[derive(Debug, Clone)]
    enum Op {
        /// A data frame with a payload of 4 + n bytes.
        Data(u16),
        /// A control frame of class 0 (automatic pong), 1 (ping) or 2
        /// (user pong), possibly replacing the newest unstarted one.
        Control(u8, bool),
        /// The close frame (nothing is queued after it).
        Close,
        /// A connection failure: unstarted data dropped, then the close.
        Fail,
        /// A lease of up to n frames / about m bytes (replaces any
        /// outstanding one, as a new lease does).
        Lease(u8, u16),
        /// n bytes written: from the outstanding lease if any (which is
        /// then spent), else from `chunks()`.
        Write(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u16..300).prop_map(Op::Data),
            3 => (0u8..3, any::<bool>()).prop_map(|(c, r)| Op::Control(c, r)),
            1 => Just(Op::Close),
            1 => Just(Op::Fail),
            3 => (1u8..6, 1u16..600).prop_map(|(f, b)| Op::Lease(f, b)),
            4 => (0u16..700).prop_map(Op::Write),
        ]
    }

    const CONTROL_CLASSES: [Class; 3] = [Class::AutoPong, Class::Ping, Class::UserPong];

    /// The frame tag (first 4 payload bytes) of an unmasked frame.
    fn tag_of(bytes: &[u8]) -> u32 {
        let (h, n) = FrameHeader::decode(bytes)
            .expect("valid header")
            .expect("complete header");
        assert!(h.payload_len >= 4);
        u32::from_be_bytes([bytes[n], bytes[n + 1], bytes[n + 2], bytes[n + 3]])
    }

    fn entry_bytes(e: &Entry) -> Vec<u8> {
        let mut v = e.frame.inline().to_vec();
        v.extend_from_slice(&e.frame.body);
        v
    }

    /// Every counter equals a recount of the queue.
    fn check_counters(out: &Outbound) {
        let total: usize = out.queue.iter().map(|e| e.frame.wire_len()).sum();
        assert_eq!(out.pending_bytes, total - out.written, "pending_bytes");
        let data = out.queue.iter().filter(|e| e.class == Class::Data);
        assert_eq!(out.data_messages, data.clone().count(), "data_messages");
        assert_eq!(
            out.data_bytes,
            data.map(|e| e.frame.payload_len).sum::<usize>(),
            "data_bytes"
        );
        for class in CONTROL_CLASSES {
            let naive = out
                .queue
                .iter()
                .filter(|e| e.class == class && !e.fixed)
                .count();
            assert_eq!(out.unstarted_count(class), naive, "{class:?}");
        }
        let run = out
            .queue
            .iter()
            .take_while(|e| e.fixed || e.class != Class::Data)
            .count();
        assert_eq!(out.front_run, run, "front_run");
        if out.written > 0 {
            assert!(
                out.queue.front().is_some_and(|e| e.fixed),
                "partly written ⇒ fixed"
            );
        }
    }

    /// The model: what each tag is and what the rules require of it.
    #[derive(Default)]
    struct Model {
        next_tag: u32,
        class: BTreeMap<u32, Class>,
        /// Data tags in push order.
        data: Vec<u32>,
        /// Control tags in push order, with the data tags unstarted when
        /// each was pushed (it must go out before them).
        controls: Vec<(u32, BTreeSet<u32>)>,
        /// Where each control frame belongs among the others: its own tag,
        /// or that of the frame it replaced (it takes that one's place).
        slot: BTreeMap<u32, u32>,
        /// Tags with bytes written or handed out in a lease.
        started: BTreeSet<u32>,
        /// Tags that must never be written (dropped or replaced).
        gone: BTreeSet<u32>,
        closed: bool,
    }

    impl Model {
        fn tag(&mut self, class: Class) -> u32 {
            self.next_tag += 1;
            self.class.insert(self.next_tag, class);
            self.next_tag
        }

        fn unstarted_data(&self) -> BTreeSet<u32> {
            self.data
                .iter()
                .filter(|t| !self.started.contains(t) && !self.gone.contains(t))
                .copied()
                .collect()
        }
    }

    fn run_ops(ops: &[Op], http: bool) {
        let mut out = Outbound::default();
        let mut m = Model::default();
        let mut wire: Vec<u8> = Vec::new();
        let mut lease: Option<TransmitBatch> = None;
        const HEAD: &[u8] = b"HTTP/1.1 101 x\r\n\r\n";
        if http {
            out.push_back(SharedFrame::raw(Bytes::from_static(HEAD)), Class::Http);
        }
        for op in ops {
            match *op {
                Op::Data(n) if !m.closed => {
                    let t = m.tag(Class::Data);
                    let mut p = t.to_be_bytes().to_vec();
                    p.resize(4 + usize::from(n), 0xD0);
                    out.push_back(
                        SharedFrame::unmasked(OpCode::Binary, Bytes::from(p)),
                        Class::Data,
                    );
                    m.data.push(t);
                }
                Op::Control(c, replace) if !m.closed => {
                    let class = CONTROL_CLASSES[usize::from(c)];
                    let t = m.tag(class);
                    let opcode = if class == Class::Ping {
                        OpCode::Ping
                    } else {
                        OpCode::Pong
                    };
                    if replace {
                        // RFC 6455 §5.5.3: the newest unstarted one of the class gives way.
                        let newest = m.controls.iter().rev().map(|(c, _)| *c).find(|c| {
                            m.class[c] == class && !m.started.contains(c) && !m.gone.contains(c)
                        });
                        if let Some(old) = newest {
                            m.gone.insert(old);
                            let s = m.slot[&old];
                            m.slot.insert(t, s);
                        }
                    }
                    m.slot.entry(t).or_insert(t);
                    let before = m.unstarted_data();
                    out.push_control(
                        control_frame(opcode, &t.to_be_bytes(), None),
                        class,
                        replace,
                    );
                    m.controls.push((t, before));
                }
                Op::Close | Op::Fail if !m.closed => {
                    if matches!(op, Op::Fail) {
                        out.drop_unstarted_data();
                        let dropped = m.unstarted_data();
                        m.gone.extend(dropped);
                    }
                    let t = m.tag(Class::Close);
                    let mut p = [0u8; 6];
                    p[..2].copy_from_slice(&1000u16.to_be_bytes());
                    p[2..].copy_from_slice(&t.to_be_bytes());
                    out.push_back(control_frame(OpCode::Close, &p, None), Class::Close);
                    m.closed = true;
                }
                Op::Lease(frames, bytes) => {
                    let mut b = TransmitBatch::new();
                    out.lease(&mut b, usize::from(frames), usize::from(bytes));
                    for e in out.queue.iter().take(b.frames.len()) {
                        if e.class != Class::Http {
                            // Close frames carry the tag after the code.
                            let bytes = entry_bytes(e);
                            let t = if e.class == Class::Close {
                                let n = bytes.len();
                                u32::from_be_bytes([
                                    bytes[n - 4],
                                    bytes[n - 3],
                                    bytes[n - 2],
                                    bytes[n - 1],
                                ])
                            } else {
                                tag_of(&bytes)
                            };
                            m.started.insert(t);
                        }
                    }
                    lease = Some(b);
                }
                Op::Write(n) => {
                    let flat_now = flat(&out);
                    let bytes: Vec<u8> = match lease.take() {
                        Some(b) => {
                            let all = batch_bytes(&b);
                            all[..usize::from(n).min(all.len())].to_vec()
                        }
                        None => flat_now[..usize::from(n).min(flat_now.len())].to_vec(),
                    };
                    // Whatever is written is the front of the queue.
                    assert_eq!(&flat_now[..bytes.len()], &bytes[..]);
                    mark_started(&out, bytes.len(), &mut m);
                    out.advance(bytes.len(), |_| {});
                    wire.extend_from_slice(&bytes);
                }
                _ => {}
            }
            check_counters(&out);
            if let Some(b) = &lease {
                // A lease keeps its place: its bytes stay the front of the queue.
                let flat_now = flat(&out);
                let leased = batch_bytes(b);
                assert_eq!(
                    &flat_now[..leased.len()],
                    &leased[..],
                    "leased frames moved"
                );
            }
        }
        // Flush the rest.
        let rest = flat(&out);
        out.advance(rest.len(), |_| {});
        wire.extend_from_slice(&rest);
        check_counters(&out);
        assert!(out.queue.is_empty() && out.pending_bytes == 0);
        check_wire(&wire, http, &m);
    }

    /// Marks the tags of the entries overlapped by the next `n` bytes.
    fn mark_started(out: &Outbound, n: usize, m: &mut Model) {
        let mut skip = out.written;
        let mut left = n;
        for e in &out.queue {
            if left == 0 {
                break;
            }
            let len = e.frame.wire_len() - skip;
            skip = 0;
            if e.class != Class::Http && e.class != Class::Close {
                m.started.insert(tag_of(&entry_bytes(e)));
            }
            left = left.saturating_sub(len);
        }
    }

    /// The rules, checked on everything written.
    fn check_wire(wire: &[u8], http: bool, m: &Model) {
        let mut rest = wire;
        if http {
            let head = b"HTTP/1.1 101 x\r\n\r\n";
            assert!(rest.starts_with(head), "HTTP bytes first");
            rest = &rest[head.len()..];
        }
        // Frames are whole and back to back (RFC 6455 §5.4: nothing inside a frame).
        let mut order: Vec<u32> = Vec::new();
        let mut closed = false;
        while !rest.is_empty() {
            assert!(!closed, "bytes after the close frame");
            let (h, n) = FrameHeader::decode(rest)
                .expect("valid header")
                .expect("complete header");
            let len = h.payload_len as usize;
            let payload = &rest[n..n + len];
            let t = if h.opcode == OpCode::Close {
                closed = true;
                u32::from_be_bytes([payload[2], payload[3], payload[4], payload[5]])
            } else {
                u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]])
            };
            let class = m.class.get(&t).copied().expect("a frame we queued");
            let want = match class {
                Class::Data => OpCode::Binary,
                Class::Ping => OpCode::Ping,
                Class::Close => OpCode::Close,
                _ => OpCode::Pong,
            };
            assert_eq!(h.opcode, want, "frame {t} intact");
            if class == Class::Data {
                assert!(
                    payload[4..].iter().all(|&b| b == 0xD0),
                    "data frame {t} intact"
                );
            }
            order.push(t);
            rest = &rest[n + len..];
        }
        // Exactly the frames not dropped or replaced, each once.
        let written: BTreeSet<u32> = order.iter().copied().collect();
        assert_eq!(written.len(), order.len(), "a frame written twice");
        let expected: BTreeSet<u32> = m
            .class
            .keys()
            .filter(|t| !m.gone.contains(t))
            .copied()
            .collect();
        assert_eq!(written, expected);
        let pos: BTreeMap<u32, usize> = order.iter().enumerate().map(|(i, t)| (*t, i)).collect();
        // Data FIFO.
        let data: Vec<u32> = order
            .iter()
            .filter(|t| m.class[t] == Class::Data)
            .copied()
            .collect();
        let want: Vec<u32> = m
            .data
            .iter()
            .filter(|t| !m.gone.contains(t))
            .copied()
            .collect();
        assert_eq!(data, want, "data out of order");
        // Controls in push order (a replacement in the place of the one it
        // replaced), each ahead of the data unstarted when it was queued.
        let mut slots: Vec<(u32, usize)> = m
            .controls
            .iter()
            .filter_map(|(c, _)| pos.get(c).map(|p| (m.slot[c], *p)))
            .collect();
        slots.sort_unstable();
        assert!(
            slots.windows(2).all(|w| w[0].1 < w[1].1),
            "controls out of order"
        );
        for (c, before) in &m.controls {
            let Some(&pc) = pos.get(c) else { continue };
            for d in before {
                if let Some(&pd) = pos.get(d) {
                    assert!(pc < pd, "control {c} behind unstarted data {d}");
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Random push_back / push_control / lease / advance /
        /// drop_unstarted_data sequences keep the RFC 6455 §5.4 order rules
        /// and every counter equal to a recount of the queue.
        #[test]
        fn random_operations_keep_wire_order_and_counters(
            ops in proptest::collection::vec(op(), 0..80),
            http in any::<bool>(),
        ) {
            run_ops(&ops, http);
        }
    }
}
