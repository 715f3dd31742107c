//! The compressed form of RPC arguments (scene/main/multiplayer_api.cpp
//! `encode_and_compress_variant(s)` / `decode_and_decompress_variant(s)`).
//!
//! The first byte is a meta byte: bits 0–5 the type, bits 6–7 the encode
//! mode. `bool` keeps its value in bit 7 and takes one byte; `int` is 1, 2, 4
//! or 8 bytes after the meta byte (mode 0–3, the smallest that holds the
//! value); every other type is the plain form, whose first byte is the type.

use alloc::vec::Vec;

use super::decode::Reader;
use super::encode::Writer;
use super::{Codec, DecodeError, EncodeError, Variant, VariantType};

/// multiplayer_api.cpp `VARIANT_META_TYPE_MASK`.
const META_TYPE_MASK: u8 = 0x3F;
/// multiplayer_api.cpp `VARIANT_META_BOOL_MASK`.
const META_BOOL: u8 = 0x80;
/// multiplayer_api.cpp `ENCODE_8/16/32/64` (bits 6–7).
const MODE_SHIFT: u8 = 6;

/// The arguments of an RPC as they travel (scene_rpc_interface.cpp
/// `_send_rpc`): either "byte-only or no arguments" (flag bit 7 of the RPC
/// meta byte, no count byte) or a count byte and the compressed values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedArgs {
    /// Byte-only or no arguments: `bytes` is the raw `PackedByteArray`
    /// content (possibly empty = no arguments).
    pub raw: bool,
    /// Number of arguments (0 or 1 when `raw`).
    pub count: u8,
    /// The encoded arguments (without the count byte).
    pub bytes: Vec<u8>,
}

impl Codec {
    /// Appends `value` in the compressed form
    /// (`MultiplayerAPI::encode_and_compress_variant`).
    pub fn encode_compressed(&self, value: &Variant, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match value {
            Variant::Bool(b) => {
                out.push(VariantType::Bool as u8 | if *b { META_BOOL } else { 0 });
                Ok(())
            }
            Variant::Int(i) => {
                let ty = VariantType::Int as u8;
                let v = *i;
                if let Ok(x) = i8::try_from(v) {
                    out.push(ty);
                    out.push(x as u8);
                } else if let Ok(x) = i16::try_from(v) {
                    out.push(ty | 1 << MODE_SHIFT);
                    out.extend_from_slice(&x.to_le_bytes());
                } else if let Ok(x) = i32::try_from(v) {
                    out.push(ty | 2 << MODE_SHIFT);
                    out.extend_from_slice(&x.to_le_bytes());
                } else {
                    out.push(ty | 3 << MODE_SHIFT);
                    out.extend_from_slice(&v.to_le_bytes());
                }
                Ok(())
            }
            other => {
                let mut w = Writer::new(out, self.real);
                self.encode_value(&mut w, other, 0)
            }
        }
    }

    /// Decodes one compressed value from the start of `bytes`; returns it and
    /// the bytes used (`MultiplayerAPI::decode_and_decompress_variant`).
    ///
    /// A `bool` meta byte must be `0x01` or `0x81`, the only ones the engine
    /// writes.
    pub fn decode_compressed(&self, bytes: &[u8]) -> Result<(Variant, usize), DecodeError> {
        let mut r = Reader::new(bytes);
        let v = self.decode_compressed_value(&mut r)?;
        Ok((v, r.pos()))
    }

    fn decode_compressed_value(&self, r: &mut Reader<'_>) -> Result<Variant, DecodeError> {
        let meta = *r.peek().ok_or(DecodeError::UnexpectedEnd)?;
        let ty = meta & META_TYPE_MASK;
        if ty == VariantType::Bool as u8 {
            r.u8()?;
            return match meta & !META_TYPE_MASK {
                0 => Ok(Variant::Bool(false)),
                META_BOOL => Ok(Variant::Bool(true)),
                _ => Err(DecodeError::InvalidMeta(meta)),
            };
        }
        if ty == VariantType::Int as u8 {
            r.u8()?;
            return Ok(Variant::Int(match meta >> MODE_SHIFT {
                0 => i64::from(r.u8()? as i8),
                1 => i64::from(r.u16()? as i16),
                2 => i64::from(r.u32()? as i32),
                _ => r.u64()? as i64,
            }));
        }
        // Everything else is the plain form: its header byte 0 is the type,
        // so mode bits there are an invalid type, as in decode_variant.
        self.decode_value(r, 0)
    }

    /// Encodes RPC arguments as `encode_and_compress_variants` with `r_raw`
    /// does for an RPC: no arguments, or a single `PackedByteArray`, travel
    /// "raw" (no count byte; the array's bytes as they are). As in the
    /// engine, a single *empty* `PackedByteArray` is then indistinguishable
    /// from no arguments: it arrives as a call without arguments.
    pub fn encode_args(&self, args: &[Variant]) -> Result<EncodedArgs, EncodeError> {
        let count = u8::try_from(args.len()).map_err(|_| EncodeError::TooManyArgs)?;
        match args {
            [] => Ok(EncodedArgs {
                raw: true,
                count: 0,
                bytes: Vec::new(),
            }),
            [Variant::PackedByteArray(b)] => Ok(EncodedArgs {
                raw: true,
                count: 1,
                bytes: b.clone(),
            }),
            _ => {
                let mut bytes = Vec::new();
                for a in args {
                    self.encode_compressed(a, &mut bytes)?;
                }
                Ok(EncodedArgs {
                    raw: false,
                    count,
                    bytes,
                })
            }
        }
    }

    /// Decodes RPC arguments (`decode_and_decompress_variants`): with `raw`,
    /// `bytes` is the content of one `PackedByteArray`, or nothing for no
    /// arguments; otherwise exactly `count` compressed values that must use
    /// every byte (unlike the engine, trailing bytes are an error).
    pub fn decode_args(
        &self,
        raw: bool,
        count: u8,
        bytes: &[u8],
    ) -> Result<Vec<Variant>, DecodeError> {
        if raw {
            return Ok(if bytes.is_empty() {
                Vec::new()
            } else {
                alloc::vec![Variant::PackedByteArray(bytes.to_vec())]
            });
        }
        let mut r = Reader::new(bytes);
        // Each compressed value takes at least one byte.
        let mut args = Vec::with_capacity(usize::from(count).min(bytes.len()));
        for _ in 0..count {
            args.push(self.decode_compressed_value(&mut r)?);
        }
        if r.remaining() != 0 {
            return Err(DecodeError::TrailingBytes);
        }
        Ok(args)
    }
}
