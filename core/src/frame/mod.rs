//! Frame codec: header, masking, close codes, UTF-8 validation (RFC 6455 §5).
//!
//! Everything here works without `alloc`, on borrowed buffers:
//!
//! - [`FrameHeader`]: decode/encode the 2–14 byte frame header, enforcing the
//!   framing rules of RFC 6455 §5.2 and §5.5 ([`HeaderError`]). RSV bits are
//!   reported, not rejected, so the caller can allow negotiated extensions.
//! - [`apply_mask`] / [`mask_into`]: payload masking (§5.3), streamable.
//! - [`Utf8Validator`]: incremental, fail-fast UTF-8 validation of text
//!   messages split over frames (§8.1).
//! - [`CloseCode`], [`parse_close_payload`], [`encode_close_payload`]: close
//!   frame bodies and status codes (§5.5.1, §7.4), including which codes a
//!   Redot/Godot peer accepts.
//! - [`OpCode`]: frame opcodes (§5.2).

mod close;
mod header;
mod mask;
mod opcode;
mod utf8;

pub use close::{
    encode_close_payload, parse_close_payload, truncate_reason, CloseCode, CloseEncodeError,
    CloseError, MAX_CLOSE_REASON,
};
pub use header::{FrameHeader, HeaderError, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN};
pub use mask::{apply_mask, mask_into};
pub use opcode::OpCode;
pub use utf8::{Utf8Error, Utf8Validator};

/// Whole-frame vectors (header + payload) from spec/websocket-peer.md §6,
/// built with the public API the way a sender would.
#[cfg(test)]
mod spec_vectors {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    fn server_frame(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
        let h = FrameHeader {
            fin: true,
            rsv: 0,
            opcode,
            mask: None,
            payload_len: payload.len() as u64,
        };
        assert_eq!(h.validate(), Ok(()));
        let mut out = [0u8; MAX_HEADER_LEN];
        let n = h.encode(&mut out);
        let mut v = out[..n].to_vec();
        v.extend_from_slice(payload);
        v
    }

    fn close_frame(code: CloseCode, reason: &str) -> Vec<u8> {
        let mut p = [0u8; 125];
        let n = encode_close_payload(code, reason, &mut p).expect("sendable");
        server_frame(OpCode::Close, &p[..n])
    }

    /// Decodes a whole frame; returns header and (unmasked) payload.
    fn parse(frame: &[u8]) -> (FrameHeader, Vec<u8>) {
        let (h, n) = FrameHeader::decode(frame)
            .expect("valid header")
            .expect("complete header");
        let mut payload = frame[n..].to_vec();
        assert_eq!(payload.len() as u64, h.payload_len);
        if let Some(k) = h.mask {
            apply_mask(&mut payload, k, 0);
        }
        (h, payload)
    }

    #[test]
    fn id_frame_82_04_87_d6_12_00() {
        let f = server_frame(OpCode::Binary, &1234567i32.to_le_bytes());
        assert_eq!(f, [0x82, 0x04, 0x87, 0xD6, 0x12, 0x00]);
    }

    #[test]
    fn close_1000_bye_88_05_03_e8_62_79_65() {
        let bytes = [0x88, 0x05, 0x03, 0xE8, 0x62, 0x79, 0x65];
        assert_eq!(close_frame(CloseCode::NORMAL, "bye"), bytes);
        let (h, p) = parse(&bytes);
        assert_eq!(h.opcode, OpCode::Close);
        assert_eq!(
            parse_close_payload(&p),
            Ok(Some((CloseCode::NORMAL, "bye")))
        );
    }

    #[test]
    fn close_reply_1009_88_02_03_f1() {
        assert_eq!(
            close_frame(CloseCode::MESSAGE_TOO_BIG, ""),
            [0x88, 0x02, 0x03, 0xF1]
        );
    }

    #[test]
    fn close_reply_1002_88_02_03_ea() {
        assert_eq!(
            close_frame(CloseCode::PROTOCOL_ERROR, ""),
            [0x88, 0x02, 0x03, 0xEA]
        );
        // What triggers it: a received 1012 (invalid for Godot; we accept it on
        // receipt per the IANA registry but never send it to a Godot peer).
        assert_eq!(
            CloseError::InvalidCode(1012).close_code(),
            CloseCode::PROTOCOL_ERROR
        );
    }

    #[test]
    fn close_reply_1007_88_02_03_ef() {
        assert_eq!(
            close_frame(CloseCode::INVALID_PAYLOAD, ""),
            [0x88, 0x02, 0x03, 0xEF]
        );
        let mut v = Utf8Validator::new();
        assert_eq!(
            v.feed(b"\xED\xA0\x80")
                .map_err(|_| CloseCode::INVALID_PAYLOAD),
            Err(CloseCode(1007))
        );
    }

    #[test]
    fn ping_70_70_reply_8a_02_70_70() {
        let ping = [0x89, 0x02, 0x70, 0x70];
        let (h, p) = parse(&ping);
        assert_eq!(h.opcode, OpCode::Ping);
        assert_eq!(server_frame(OpCode::Pong, &p), [0x8A, 0x02, 0x70, 0x70]);
    }

    #[test]
    fn empty_close_echo_88_00() {
        assert_eq!(server_frame(OpCode::Close, &[]), [0x88, 0x00]);
        assert_eq!(parse_close_payload(&[]), Ok(None));
    }

    #[test]
    fn masked_client_frame_82_89_37_fa_21_3d() {
        let bytes = [
            0x82, 0x89, 0x37, 0xFA, 0x21, 0x3D, 0x30, 0xF9, 0x0B, 0x3D, 0x37, 0xFA, 0x22, 0x55,
            0x5E,
        ];
        let (h, p) = parse(&bytes);
        assert_eq!(h.mask, Some([0x37, 0xFA, 0x21, 0x3D]));
        assert_eq!(p, [0x07, 0x03, 0x2A, 0x00, 0x00, 0x00, 0x03, 0x68, 0x69]);
    }

    #[test]
    fn server_200_and_70000_byte_headers() {
        assert_eq!(
            server_frame(OpCode::Binary, &[0; 200])[..4],
            [0x82, 0x7E, 0x00, 0xC8]
        );
        assert_eq!(
            server_frame(OpCode::Binary, &[0; 70000])[..10],
            [0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x11, 0x70]
        );
    }
}
