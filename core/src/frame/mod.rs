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
