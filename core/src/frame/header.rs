//! Frame header codec (RFC 6455 §5.2).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-------+-+-------------+-------------------------------+
//! |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//! |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//! |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//! | |1|2|3|       |K|             |                               |
//! +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//! |     Extended payload length continued, if payload len == 127  |
//! + - - - - - - - - - - - - - - - +-------------------------------+
//! |                               |Masking-key, if MASK set to 1  |
//! +-------------------------------+-------------------------------+
//! ```

use core::fmt;

use super::opcode::OpCode;

/// The longest possible header: 2 + 8 (64-bit length) + 4 (masking key).
pub const MAX_HEADER_LEN: usize = 14;

/// Largest payload a control frame may carry (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// A decoded (or to-be-encoded) frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN bit: this is the final fragment of a message.
    pub fin: bool,
    /// The three RSV bits, as `byte0 >> 4 & 0b111` (RSV1 = `0b100`, RSV2 =
    /// `0b010`, RSV3 = `0b001`). Decoding reports them; it does not reject them.
    pub rsv: u8,
    /// The frame opcode.
    pub opcode: OpCode,
    /// The masking key, if the MASK bit is set.
    pub mask: Option<[u8; 4]>,
    /// The payload length in bytes (at most `2^63 - 1` on the wire).
    pub payload_len: u64,
}

/// A header that violates RFC 6455 framing rules.
///
/// All of these are "fail the WebSocket connection" conditions; a
/// Redot/Godot peer drops the TCP connection without a close frame for the
/// length and control-frame ones (spec/websocket-peer.md §2.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// Reserved opcode (3–7, 11–15); carries the 4-bit value. RFC 6455 §5.2.
    ReservedOpcode(u8),
    /// Extended length not in minimal form: 126 with a value < 126, or 127
    /// with a value < 65536. RFC 6455 §5.2.
    NonMinimalLength,
    /// 64-bit length with the most significant bit set. RFC 6455 §5.2.
    LengthTopBit,
    /// Control frame with a payload longer than 125 bytes. RFC 6455 §5.5.
    ControlPayloadTooLong,
    /// Control frame with FIN = 0. RFC 6455 §5.5.
    FragmentedControl,
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::ReservedOpcode(op) => write!(f, "reserved opcode {op:#x}"),
            HeaderError::NonMinimalLength => {
                f.write_str("payload length not encoded in the minimal number of bytes")
            }
            HeaderError::LengthTopBit => {
                f.write_str("64-bit payload length has its most significant bit set")
            }
            HeaderError::ControlPayloadTooLong => {
                f.write_str("control frame payload longer than 125 bytes")
            }
            HeaderError::FragmentedControl => f.write_str("fragmented control frame"),
        }
    }
}

impl core::error::Error for HeaderError {}

const FIN_BIT: u8 = 0x80;
const MASK_BIT: u8 = 0x80;

/// Checks that can be made from the first byte alone.
const fn check_byte0(b0: u8) -> Result<OpCode, HeaderError> {
    let fin = b0 & FIN_BIT != 0;
    let op = b0 & 0x0F;
    // RFC 6455 §5.2: reserved opcodes must fail the connection.
    let opcode = match OpCode::from_u8(op) {
        Some(o) => o,
        None => return Err(HeaderError::ReservedOpcode(op)),
    };
    // RFC 6455 §5.5: control frames must not be fragmented.
    if opcode.is_control() && !fin {
        return Err(HeaderError::FragmentedControl);
    }
    Ok(opcode)
}

/// Size of the extended length field for the 7-bit length `len7`.
const fn ext_len_size(len7: u8) -> usize {
    match len7 {
        126 => 2,
        127 => 8,
        _ => 0,
    }
}

impl FrameHeader {
    /// Decode a header from the start of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` is too short to hold the whole header
    /// (never an error: feed more bytes and call again), or
    /// `Ok(Some((header, header_len)))`; the payload starts at
    /// `buf[header_len..]`. Errors are reported as soon as the bytes that
    /// show them are present. RSV bits are reported, not rejected.
    pub fn decode(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, HeaderError> {
        let Some(&b0) = buf.first() else {
            return Ok(None);
        };
        let opcode = check_byte0(b0)?;
        let Some(&b1) = buf.get(1) else {
            return Ok(None);
        };
        let masked = b1 & MASK_BIT != 0;
        let len7 = b1 & 0x7F;
        // RFC 6455 §5.5: control frame payloads are at most 125 bytes.
        if opcode.is_control() && len7 > MAX_CONTROL_PAYLOAD as u8 {
            return Err(HeaderError::ControlPayloadTooLong);
        }
        let ext = ext_len_size(len7);
        let header_len = 2 + ext + if masked { 4 } else { 0 };
        let Some(rest) = buf.get(2..header_len) else {
            return Ok(None);
        };
        let (len_bytes, mask_bytes) = rest.split_at(ext);
        let payload_len = match *len_bytes {
            [] => u64::from(len7),
            [a, b] => {
                let v = u16::from_be_bytes([a, b]);
                // RFC 6455 §5.2: "the minimal number of bytes MUST be used".
                if v < 126 {
                    return Err(HeaderError::NonMinimalLength);
                }
                u64::from(v)
            }
            [a, b, c, d, e, f, g, h] => {
                let v = u64::from_be_bytes([a, b, c, d, e, f, g, h]);
                // RFC 6455 §5.2: the most significant bit MUST be 0.
                if v >> 63 != 0 {
                    return Err(HeaderError::LengthTopBit);
                }
                // RFC 6455 §5.2: "the minimal number of bytes MUST be used".
                if v <= u64::from(u16::MAX) {
                    return Err(HeaderError::NonMinimalLength);
                }
                v
            }
            // `ext` is 0, 2 or 8 and `rest.len() == ext + mask`, so this is unreachable;
            // treat it as "need more" rather than panicking.
            _ => return Ok(None),
        };
        let mask = match *mask_bytes {
            [a, b, c, d] => Some([a, b, c, d]),
            _ => None,
        };
        let header = FrameHeader {
            fin: b0 & FIN_BIT != 0,
            rsv: (b0 >> 4) & 0b111,
            opcode,
            mask,
            payload_len,
        };
        Ok(Some((header, header_len)))
    }

    /// How many bytes [`decode`](Self::decode) needs at least, given the
    /// first bytes of a header: 2 if fewer than 2 are known, otherwise the
    /// full header length (2–14) those two bytes announce.
    pub fn needed_len(buf: &[u8]) -> usize {
        match buf.get(1) {
            None => 2,
            Some(&b1) => 2 + ext_len_size(b1 & 0x7F) + if b1 & MASK_BIT != 0 { 4 } else { 0 },
        }
    }

    /// Length of this header when encoded (2..=14), minimal length form.
    pub fn encoded_len(&self) -> usize {
        let ext = if self.payload_len < 126 {
            0
        } else if self.payload_len <= u64::from(u16::MAX) {
            2
        } else {
            8
        };
        2 + ext + if self.mask.is_some() { 4 } else { 0 }
    }

    /// Encode into `out` using the minimal length form (RFC 6455 §5.2);
    /// returns the number of bytes written (= [`encoded_len`](Self::encoded_len)).
    ///
    /// Only the low three bits of `rsv` are used. The header is written as
    /// given: use [`validate`](Self::validate) first if it may break the
    /// rules (e.g. a control frame longer than 125 bytes, or a length of
    /// `2^63` or more, which peers will reject).
    pub fn encode(&self, out: &mut [u8; MAX_HEADER_LEN]) -> usize {
        let fin = if self.fin { FIN_BIT } else { 0 };
        out[0] = fin | ((self.rsv & 0b111) << 4) | self.opcode.as_u8();
        let mask_bit = if self.mask.is_some() { MASK_BIT } else { 0 };
        let mut n = 2;
        // RFC 6455 §5.2: 7-bit, 16-bit (126) or 64-bit (127) length, minimal form.
        if self.payload_len < 126 {
            out[1] = mask_bit | self.payload_len as u8;
        } else if let Ok(v) = u16::try_from(self.payload_len) {
            out[1] = mask_bit | 126;
            out[2..4].copy_from_slice(&v.to_be_bytes());
            n = 4;
        } else {
            out[1] = mask_bit | 127;
            out[2..10].copy_from_slice(&self.payload_len.to_be_bytes());
            n = 10;
        }
        if let Some(key) = self.mask {
            out[n..n + 4].copy_from_slice(&key);
            n += 4;
        }
        n
    }

    /// Encode into a fresh array; returns it and the number of bytes used.
    pub fn to_bytes(&self) -> ([u8; MAX_HEADER_LEN], usize) {
        let mut out = [0; MAX_HEADER_LEN];
        let n = self.encode(&mut out);
        (out, n)
    }

    /// Check the rules [`decode`](Self::decode) enforces (minimal length is
    /// implied by [`encode`](Self::encode)): control payload ≤ 125 bytes,
    /// control frames not fragmented, length below `2^63`. RSV bits are not
    /// checked.
    pub fn validate(&self) -> Result<(), HeaderError> {
        // RFC 6455 §5.2: the most significant bit of a 64-bit length MUST be 0.
        if self.payload_len >> 63 != 0 {
            return Err(HeaderError::LengthTopBit);
        }
        if self.opcode.is_control() {
            // RFC 6455 §5.5: control frames are not fragmented and carry ≤ 125 bytes.
            if !self.fin {
                return Err(HeaderError::FragmentedControl);
            }
            if self.payload_len > MAX_CONTROL_PAYLOAD as u64 {
                return Err(HeaderError::ControlPayloadTooLong);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_ok(buf: &[u8]) -> (FrameHeader, usize) {
        match FrameHeader::decode(buf) {
            Ok(Some(h)) => h,
            other => panic!("expected a header from {buf:02x?}, got {other:?}"),
        }
    }

    fn encode_vec(h: &FrameHeader) -> ([u8; MAX_HEADER_LEN], usize) {
        let (out, n) = h.to_bytes();
        assert_eq!(n, h.encoded_len());
        (out, n)
    }

    /// Decodes `bytes` (a whole header), checks every strict prefix asks
    /// for more, checks `needed_len`, and re-encodes to the same bytes.
    fn check_vector(bytes: &[u8], expected: FrameHeader) {
        for i in 0..bytes.len() {
            assert_eq!(
                FrameHeader::decode(&bytes[..i]),
                Ok(None),
                "prefix {i} of {bytes:02x?}"
            );
            let need = FrameHeader::needed_len(&bytes[..i]);
            assert!(need > i);
            assert!(need <= bytes.len());
        }
        assert_eq!(FrameHeader::needed_len(bytes), bytes.len());
        let (h, n) = decode_ok(bytes);
        assert_eq!(h, expected);
        assert_eq!(n, bytes.len());
        let (out, m) = encode_vec(&h);
        assert_eq!(&out[..m], bytes);
        assert_eq!(h.validate(), Ok(()));
    }

    fn hdr(fin: bool, opcode: OpCode, mask: Option<[u8; 4]>, payload_len: u64) -> FrameHeader {
        FrameHeader {
            fin,
            rsv: 0,
            opcode,
            mask,
            payload_len,
        }
    }

    const RFC_KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    // RFC 6455 §5.7 examples.

    #[test]
    fn rfc6455_5_7_single_frame_unmasked_text_hello() {
        let frame = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        let (h, n) = decode_ok(&frame);
        assert_eq!(h, hdr(true, OpCode::Text, None, 5));
        assert_eq!(&frame[n..], b"Hello");
        check_vector(&frame[..2], h);
    }

    #[test]
    fn rfc6455_5_7_single_frame_masked_text_hello() {
        let frame = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let (h, n) = decode_ok(&frame);
        assert_eq!(h, hdr(true, OpCode::Text, Some(RFC_KEY), 5));
        assert_eq!(n, 6);
        let mut payload = [0u8; 5];
        payload.copy_from_slice(&frame[n..]);
        crate::frame::apply_mask(&mut payload, RFC_KEY, 0);
        assert_eq!(&payload, b"Hello");
        check_vector(&frame[..6], h);
    }

    #[test]
    fn rfc6455_5_7_fragmented_unmasked_text() {
        let first = [0x01, 0x03, 0x48, 0x65, 0x6c];
        let second = [0x80, 0x02, 0x6c, 0x6f];
        let (h1, n1) = decode_ok(&first);
        assert_eq!(h1, hdr(false, OpCode::Text, None, 3));
        assert_eq!(&first[n1..], b"Hel");
        let (h2, n2) = decode_ok(&second);
        assert_eq!(h2, hdr(true, OpCode::Continuation, None, 2));
        assert_eq!(&second[n2..], b"lo");
        check_vector(&first[..2], h1);
        check_vector(&second[..2], h2);
    }

    #[test]
    fn rfc6455_5_7_unmasked_ping_hello() {
        let frame = [0x89, 0x05, b'H', b'e', b'l', b'l', b'o'];
        let (h, n) = decode_ok(&frame);
        assert_eq!(h, hdr(true, OpCode::Ping, None, 5));
        assert_eq!(&frame[n..], b"Hello");
        check_vector(&frame[..2], h);
    }

    #[test]
    fn rfc6455_5_7_masked_pong_hello() {
        let frame = [
            0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let (h, n) = decode_ok(&frame);
        assert_eq!(h, hdr(true, OpCode::Pong, Some(RFC_KEY), 5));
        let mut payload = [0u8; 5];
        crate::frame::mask_into(&frame[n..], &mut payload, RFC_KEY, 0);
        assert_eq!(&payload, b"Hello");
        check_vector(&frame[..6], h);
    }

    #[test]
    fn rfc6455_5_7_binary_256_bytes_header() {
        check_vector(
            &[0x82, 0x7E, 0x01, 0x00],
            hdr(true, OpCode::Binary, None, 256),
        );
    }

    #[test]
    fn rfc6455_5_7_binary_64k_header() {
        check_vector(
            &[0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00],
            hdr(true, OpCode::Binary, None, 65536),
        );
    }

    // spec/websocket-peer.md §6 vectors.

    #[test]
    fn spec6_id_frame_82_04_87_d6_12_00() {
        let frame = [0x82, 0x04, 0x87, 0xD6, 0x12, 0x00];
        let (h, n) = decode_ok(&frame);
        assert_eq!(h, hdr(true, OpCode::Binary, None, 4));
        assert_eq!(
            i32::from_le_bytes([frame[n], frame[n + 1], frame[n + 2], frame[n + 3]]),
            1234567
        );
        check_vector(&frame[..2], h);
    }

    #[test]
    fn spec6_server_200_byte_header_82_7e_00_c8() {
        check_vector(
            &[0x82, 0x7E, 0x00, 0xC8],
            hdr(true, OpCode::Binary, None, 200),
        );
    }

    #[test]
    fn spec6_server_70000_byte_header_82_7f_00_00_00_00_00_01_11_70() {
        check_vector(
            &[0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x11, 0x70],
            hdr(true, OpCode::Binary, None, 70000),
        );
    }

    #[test]
    fn spec6_masked_client_frame_82_89_37_fa_21_3d() {
        let payload = [0x07, 0x03, 0x2A, 0x00, 0x00, 0x00, 0x03, 0x68, 0x69];
        let expected = [
            0x82, 0x89, 0x37, 0xFA, 0x21, 0x3D, 0x30, 0xF9, 0x0B, 0x3D, 0x37, 0xFA, 0x22, 0x55,
            0x5E,
        ];
        let h = hdr(true, OpCode::Binary, Some(RFC_KEY), payload.len() as u64);
        let mut wire = [0u8; 15];
        let (hb, n) = encode_vec(&h);
        wire[..n].copy_from_slice(&hb[..n]);
        crate::frame::mask_into(&payload, &mut wire[n..], RFC_KEY, 0);
        assert_eq!(wire, expected);
        // And back.
        let (d, m) = decode_ok(&expected);
        assert_eq!(d, h);
        let mut body = [0u8; 9];
        body.copy_from_slice(&expected[m..]);
        crate::frame::apply_mask(&mut body, RFC_KEY, 0);
        assert_eq!(body, payload);
        check_vector(&expected[..6], h);
    }

    #[test]
    fn spec6_close_1000_bye_88_05_03_e8_62_79_65() {
        let frame = [0x88, 0x05, 0x03, 0xE8, 0x62, 0x79, 0x65];
        let (h, n) = decode_ok(&frame);
        assert_eq!(h, hdr(true, OpCode::Close, None, 5));
        assert_eq!(
            crate::frame::parse_close_payload(&frame[n..]),
            Ok(Some((crate::frame::CloseCode::NORMAL, "bye")))
        );
        check_vector(&frame[..2], h);
    }

    #[test]
    fn spec6_close_reply_1009_88_02_03_f1() {
        check_vector(&[0x88, 0x02], hdr(true, OpCode::Close, None, 2));
    }

    #[test]
    fn spec6_ping_reply_8a_02_70_70() {
        let frame = [0x8A, 0x02, 0x70, 0x70];
        let (h, n) = decode_ok(&frame);
        assert_eq!(h, hdr(true, OpCode::Pong, None, 2));
        assert_eq!(&frame[n..], &[0x70, 0x70]);
        check_vector(&frame[..2], h);
    }

    #[test]
    fn non_minimal_16_bit_length_rejected() {
        for v in 0u16..126 {
            let [a, b] = v.to_be_bytes();
            assert_eq!(
                FrameHeader::decode(&[0x82, 0x7E, a, b]),
                Err(HeaderError::NonMinimalLength)
            );
        }
        // Masked too (length is checked once the full header is present).
        assert_eq!(
            FrameHeader::decode(&[0x82, 0xFE, 0, 125, 1, 2, 3, 4]),
            Err(HeaderError::NonMinimalLength)
        );
        assert!(FrameHeader::decode(&[0x82, 0x7E, 0, 126]).is_ok());
    }

    #[test]
    fn non_minimal_64_bit_length_rejected() {
        for v in [0u64, 1, 125, 126, 65535] {
            let mut buf = [0u8; 10];
            buf[0] = 0x82;
            buf[1] = 0x7F;
            buf[2..].copy_from_slice(&v.to_be_bytes());
            assert_eq!(
                FrameHeader::decode(&buf),
                Err(HeaderError::NonMinimalLength),
                "{v}"
            );
        }
        let mut buf = [0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0];
        assert!(FrameHeader::decode(&buf).is_ok());
        buf[2] = 0x7F;
        buf[3..].fill(0xFF);
        assert_eq!(decode_ok(&buf).0.payload_len, i64::MAX as u64);
    }

    #[test]
    fn length_top_bit_rejected() {
        for first in [0x80u8, 0xFF] {
            let buf = [0x82, 0x7F, first, 0, 0, 0, 0, 0, 0, 0];
            assert_eq!(FrameHeader::decode(&buf), Err(HeaderError::LengthTopBit));
        }
    }

    #[test]
    fn reserved_opcodes_rejected_from_first_byte() {
        for op in (3u8..=7).chain(11..=15) {
            assert_eq!(
                FrameHeader::decode(&[0x80 | op]),
                Err(HeaderError::ReservedOpcode(op))
            );
            assert_eq!(
                FrameHeader::decode(&[op, 0x00]),
                Err(HeaderError::ReservedOpcode(op))
            );
        }
    }

    #[test]
    fn control_frame_rules() {
        for op in [0x8u8, 0x9, 0xA] {
            // FIN = 0.
            assert_eq!(
                FrameHeader::decode(&[op, 0x00]),
                Err(HeaderError::FragmentedControl)
            );
            // 126 / 127 length forms.
            assert_eq!(
                FrameHeader::decode(&[0x80 | op, 0x7E]),
                Err(HeaderError::ControlPayloadTooLong)
            );
            assert_eq!(
                FrameHeader::decode(&[0x80 | op, 0xFF]),
                Err(HeaderError::ControlPayloadTooLong)
            );
            assert!(FrameHeader::decode(&[0x80 | op, 125]).is_ok());
        }
        let h = hdr(true, OpCode::Ping, None, 126);
        assert_eq!(h.validate(), Err(HeaderError::ControlPayloadTooLong));
        let h = hdr(false, OpCode::Close, None, 0);
        assert_eq!(h.validate(), Err(HeaderError::FragmentedControl));
        let h = hdr(true, OpCode::Binary, None, 1 << 63);
        assert_eq!(h.validate(), Err(HeaderError::LengthTopBit));
    }

    #[test]
    fn rsv_bits_reported_not_rejected() {
        for rsv in 0u8..8 {
            let (h, _) = decode_ok(&[0x82 | (rsv << 4), 0x00]);
            assert_eq!(h.rsv, rsv);
            let (out, n) = h.to_bytes();
            assert_eq!(&out[..n], &[0x82 | (rsv << 4), 0x00]);
        }
        let (h, _) = decode_ok(&[0xC1, 0x00]);
        assert_eq!(h.rsv, 0b100); // RSV1
    }

    #[test]
    fn needed_len_table() {
        assert_eq!(FrameHeader::needed_len(&[]), 2);
        assert_eq!(FrameHeader::needed_len(&[0x82]), 2);
        assert_eq!(FrameHeader::needed_len(&[0x82, 0x05]), 2);
        assert_eq!(FrameHeader::needed_len(&[0x82, 0x85]), 6);
        assert_eq!(FrameHeader::needed_len(&[0x82, 0x7E]), 4);
        assert_eq!(FrameHeader::needed_len(&[0x82, 0xFE]), 8);
        assert_eq!(FrameHeader::needed_len(&[0x82, 0x7F]), 10);
        assert_eq!(FrameHeader::needed_len(&[0x82, 0xFF]), 14);
    }

    #[test]
    fn encoded_len_boundaries() {
        for (len, unmasked) in [
            (0u64, 2usize),
            (125, 2),
            (126, 4),
            (65535, 4),
            (65536, 10),
            (i64::MAX as u64, 10),
        ] {
            let h = hdr(true, OpCode::Binary, None, len);
            assert_eq!(h.encoded_len(), unmasked);
            let hm = hdr(true, OpCode::Binary, Some([1, 2, 3, 4]), len);
            assert_eq!(hm.encoded_len(), unmasked + 4);
            let (out, n) = hm.to_bytes();
            assert_eq!(decode_ok(&out[..n]), (hm, n));
        }
    }

    #[test]
    fn display_is_nonempty() {
        use core::fmt::Write;
        struct Buf([u8; 128], usize);
        impl Write for Buf {
            fn write_str(&mut self, s: &str) -> core::fmt::Result {
                let end = self.1 + s.len();
                self.0
                    .get_mut(self.1..end)
                    .ok_or(core::fmt::Error)?
                    .copy_from_slice(s.as_bytes());
                self.1 = end;
                Ok(())
            }
        }
        for e in [
            HeaderError::ReservedOpcode(3),
            HeaderError::NonMinimalLength,
            HeaderError::LengthTopBit,
            HeaderError::ControlPayloadTooLong,
            HeaderError::FragmentedControl,
        ] {
            let mut b = Buf([0; 128], 0);
            write!(b, "{e}").expect("fits");
            assert!(b.1 > 0);
            let _: &dyn core::error::Error = &e;
        }
    }

    fn arb_header() -> impl Strategy<Value = FrameHeader> {
        let data = (
            any::<bool>(),
            prop_oneof![
                Just(OpCode::Continuation),
                Just(OpCode::Text),
                Just(OpCode::Binary)
            ],
            prop_oneof![
                0u64..126,
                126u64..=65535,
                65536u64..=(i64::MAX as u64),
                Just(i64::MAX as u64)
            ],
        );
        let control = (
            Just(true),
            prop_oneof![Just(OpCode::Close), Just(OpCode::Ping), Just(OpCode::Pong)],
            0u64..=125,
        );
        (
            prop_oneof![data, control],
            0u8..8,
            proptest::option::of(any::<[u8; 4]>()),
        )
            .prop_map(|((fin, opcode, payload_len), rsv, mask)| FrameHeader {
                fin,
                rsv,
                opcode,
                mask,
                payload_len,
            })
    }

    proptest! {
        #[test]
        fn prop_round_trip(h in arb_header(), trailing in proptest::collection::vec(any::<u8>(), 0..8)) {
            prop_assert_eq!(h.validate(), Ok(()));
            let (out, n) = h.to_bytes();
            prop_assert_eq!(n, h.encoded_len());
            prop_assert!((2..=MAX_HEADER_LEN).contains(&n));
            prop_assert_eq!(FrameHeader::needed_len(&out[..n]), n);
            for i in 0..n {
                prop_assert_eq!(FrameHeader::decode(&out[..i]), Ok(None));
            }
            let mut buf = [0u8; 32];
            buf[..n].copy_from_slice(&out[..n]);
            buf[n..n + trailing.len()].copy_from_slice(&trailing);
            prop_assert_eq!(FrameHeader::decode(&buf[..n + trailing.len()]), Ok(Some((h, n))));
        }

        #[test]
        fn prop_decode_never_panics_and_is_consistent(bytes in proptest::collection::vec(any::<u8>(), 0..20)) {
            match FrameHeader::decode(&bytes) {
                Ok(None) => prop_assert!(FrameHeader::needed_len(&bytes) > bytes.len()),
                Ok(Some((h, n))) => {
                    prop_assert_eq!(n, FrameHeader::needed_len(&bytes));
                    prop_assert_eq!(h.validate(), Ok(()));
                    let (out, m) = h.to_bytes();
                    prop_assert_eq!(&out[..m], &bytes[..n]);
                }
                Err(_) => {}
            }
        }
    }
}
