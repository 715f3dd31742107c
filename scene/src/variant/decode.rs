//! The plain decoder (marshalls.cpp `decode_variant`).
//!
//! Every read checks the remaining length first; counts are checked against
//! what the rest of the input can hold before anything is reserved.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use super::types::*;
use super::{Codec, DecodeError, Variant};

/// marshalls.cpp `HEADER_TYPE_MASK`.
pub(super) const HEADER_TYPE_MASK: u32 = 0xFF;
/// marshalls.cpp `HEADER_DATA_FLAG_64` (int, float and `real_t` types).
pub(super) const HEADER_DATA_FLAG_64: u32 = 1 << 16;
/// marshalls.cpp `HEADER_DATA_FIELD_TYPED_ARRAY_SHIFT` (also the dictionary key shift).
pub(super) const TYPED_ARRAY_SHIFT: u32 = 16;
/// marshalls.cpp `HEADER_DATA_FIELD_TYPED_DICTIONARY_VALUE_SHIFT`.
pub(super) const TYPED_DICT_VALUE_SHIFT: u32 = 18;
/// marshalls.cpp `ContainerTypeKind` values.
pub(super) const KIND_NONE: u32 = 0;
pub(super) const KIND_BUILTIN: u32 = 1;
pub(super) const KIND_CLASS_NAME: u32 = 2;
pub(super) const KIND_SCRIPT: u32 = 3;
/// Array and Dictionary counts: bit 31 is the obsolete "shared" flag (masked
/// off by marshalls.cpp `decode_variant`).
pub(super) const COUNT_MASK: u32 = 0x7FFF_FFFF;

/// A cursor over the input.
pub(super) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(super) fn pos(&self) -> usize {
        self.pos
    }

    pub(super) fn peek(&self) -> Option<&u8> {
        self.buf.get(self.pos)
    }

    pub(super) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::UnexpectedEnd)?;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or(DecodeError::UnexpectedEnd)?;
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    pub(super) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    pub(super) fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub(super) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(super) fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn f32(&mut self) -> Result<f32, DecodeError> {
        Ok(f32::from_le_bytes(self.array()?))
    }

    fn f64(&mut self) -> Result<f64, DecodeError> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    /// One `real_t` in the width the header says (marshalls.cpp: "Decoding math
    /// types always checks for the encoded size").
    fn real(&mut self, wide: bool) -> Result<f64, DecodeError> {
        if wide {
            self.f64()
        } else {
            self.f32().map(f64::from)
        }
    }

    /// A non-negative 32-bit count (marshalls.cpp reads counts as `int32_t`
    /// and fails on negative ones).
    fn count(&mut self) -> Result<usize, DecodeError> {
        let n = self.u32()?;
        if n > i32::MAX as u32 {
            return Err(DecodeError::InvalidLength);
        }
        Ok(n as usize)
    }

    /// `count` elements of `size` bytes must fit in the rest of the input.
    fn check_fits(&self, count: usize, size: usize) -> Result<(), DecodeError> {
        match count.checked_mul(size) {
            Some(n) if n <= self.remaining() => Ok(()),
            _ => Err(DecodeError::InvalidLength),
        }
    }

    /// marshalls.cpp `_decode_string`: u32 length, UTF-8 bytes, padding to 4.
    /// The engine's `parse_utf8` stops at a NUL byte, so the text ends there;
    /// the padding bytes are skipped unread (engines do not always zero them).
    pub(super) fn string(&mut self) -> Result<String, DecodeError> {
        let len = self.count()?;
        let pad = (4 - len % 4) % 4;
        let total = len.checked_add(pad).ok_or(DecodeError::InvalidLength)?;
        if total > self.remaining() {
            return Err(DecodeError::UnexpectedEnd);
        }
        let bytes = self.take(len)?;
        self.take(pad)?;
        let text = match bytes.iter().position(|&b| b == 0) {
            Some(nul) => &bytes[..nul],
            None => bytes,
        };
        core::str::from_utf8(text)
            .map(String::from)
            .map_err(|_| DecodeError::InvalidUtf8)
    }
}

/// Reserve room for `count` elements, each at least `min_size` bytes of the
/// remaining input: never more than the input can hold.
fn bounded_vec<T>(r: &Reader<'_>, count: usize, min_size: usize) -> Vec<T> {
    Vec::with_capacity(count.min(r.remaining() / min_size.max(1)))
}

impl Codec {
    /// Decodes one value from the start of `bytes`; returns it and the number
    /// of bytes it used (marshalls.cpp `decode_variant` with `r_len`).
    pub fn decode(&self, bytes: &[u8]) -> Result<(Variant, usize), DecodeError> {
        let mut r = Reader::new(bytes);
        let v = self.decode_value(&mut r, 0)?;
        Ok((v, r.pos()))
    }

    /// Decodes exactly one value: bytes left after it are an error.
    pub fn decode_exact(&self, bytes: &[u8]) -> Result<Variant, DecodeError> {
        let (v, used) = self.decode(bytes)?;
        if used != bytes.len() {
            return Err(DecodeError::TrailingBytes);
        }
        Ok(v)
    }

    /// Decodes one value. Containers are decoded with an explicit stack, not
    /// by recursion: nesting up to [`Codec::max_depth`] costs heap (bounded
    /// by the input), never thread stack.
    pub(super) fn decode_value(
        &self,
        r: &mut Reader<'_>,
        depth: usize,
    ) -> Result<Variant, DecodeError> {
        let mut stack: Vec<Frame> = Vec::new();
        loop {
            if depth + stack.len() > self.max_depth {
                return Err(DecodeError::TooDeep);
            }
            let header = r.u32()?;
            let type_id = header & HEADER_TYPE_MASK;
            let ty = VariantType::from_id(type_id).ok_or(DecodeError::InvalidType(type_id))?;
            let mut value = match ty {
                VariantType::Dictionary => {
                    let key_type = element_type(r, (header >> TYPED_ARRAY_SHIFT) & 3)?;
                    let value_type = element_type(r, (header >> TYPED_DICT_VALUE_SHIFT) & 3)?;
                    let count = (r.u32()? & COUNT_MASK) as usize;
                    // Each key and value is at least a 4-byte header.
                    let entries = bounded_vec(r, count, 8);
                    let dict = Dictionary::typed(key_type, value_type, entries);
                    if count > 0 {
                        stack.push(Frame::Dictionary {
                            dict,
                            key: None,
                            left: count,
                        });
                        continue;
                    }
                    Variant::Dictionary(dict)
                }
                VariantType::Array => {
                    let element_type = element_type(r, (header >> TYPED_ARRAY_SHIFT) & 3)?;
                    let count = (r.u32()? & COUNT_MASK) as usize;
                    let array = Array {
                        items: bounded_vec(r, count, 4),
                        element_type,
                    };
                    if count > 0 {
                        stack.push(Frame::Array { array, left: count });
                        continue;
                    }
                    Variant::Array(array)
                }
                _ => decode_leaf(r, ty, header)?,
            };
            // Hand the value to the containers it completes.
            loop {
                match stack.last_mut() {
                    None => return Ok(value),
                    Some(Frame::Array { array, left }) => {
                        array.items.push(value);
                        *left -= 1;
                        if *left > 0 {
                            break;
                        }
                    }
                    Some(Frame::Dictionary { dict, key, left }) => match key.take() {
                        None => {
                            *key = Some(value);
                            break;
                        }
                        Some(k) => {
                            dict.entries_mut().push((k, value));
                            *left -= 1;
                            if *left > 0 {
                                break;
                            }
                        }
                    },
                }
                // The top frame is complete (the stack is not empty here).
                value = match stack.pop() {
                    Some(Frame::Array { array, .. }) => Variant::Array(array),
                    Some(Frame::Dictionary { dict, .. }) => Variant::Dictionary(dict),
                    None => return Err(DecodeError::InvalidLength),
                };
            }
        }
    }
}

/// A container being filled by [`Codec::decode_value`].
enum Frame {
    Array {
        array: Array,
        left: usize,
    },
    Dictionary {
        dict: Dictionary,
        key: Option<Variant>,
        left: usize,
    },
}

/// Every type but the containers.
#[inline(never)]
fn decode_leaf(r: &mut Reader<'_>, ty: VariantType, header: u32) -> Result<Variant, DecodeError> {
    let wide = header & HEADER_DATA_FLAG_64 != 0;
    use VariantType as T;
    Ok(match ty {
        T::Nil => Variant::Nil,
        // marshalls.cpp: any non-zero u32 is true.
        T::Bool => Variant::Bool(r.u32()? != 0),
        T::Int => Variant::Int(if wide {
            r.u64()? as i64
        } else {
            i64::from(r.u32()? as i32)
        }),
        T::Float => Variant::Float(r.real(wide)?),
        T::String => Variant::String(r.string()?),
        T::Vector2 => Variant::Vector2(vector2(r, wide)?),
        T::Vector2i => Variant::Vector2i(Vector2i {
            x: r.u32()? as i32,
            y: r.u32()? as i32,
        }),
        T::Rect2 => Variant::Rect2(Rect2 {
            position: vector2(r, wide)?,
            size: vector2(r, wide)?,
        }),
        T::Rect2i => Variant::Rect2i(Rect2i {
            position: Vector2i {
                x: r.u32()? as i32,
                y: r.u32()? as i32,
            },
            size: Vector2i {
                x: r.u32()? as i32,
                y: r.u32()? as i32,
            },
        }),
        T::Vector3 => Variant::Vector3(vector3(r, wide)?),
        T::Vector3i => Variant::Vector3i(Vector3i {
            x: r.u32()? as i32,
            y: r.u32()? as i32,
            z: r.u32()? as i32,
        }),
        T::Transform2D => Variant::Transform2D(Box::new(Transform2D {
            columns: [vector2(r, wide)?, vector2(r, wide)?, vector2(r, wide)?],
        })),
        T::Vector4 => Variant::Vector4(vector4(r, wide)?),
        T::Vector4i => Variant::Vector4i(Vector4i {
            x: r.u32()? as i32,
            y: r.u32()? as i32,
            z: r.u32()? as i32,
            w: r.u32()? as i32,
        }),
        T::Plane => Variant::Plane(Plane {
            normal: vector3(r, wide)?,
            d: r.real(wide)?,
        }),
        T::Quaternion => {
            let v = vector4(r, wide)?;
            Variant::Quaternion(Quaternion {
                x: v.x,
                y: v.y,
                z: v.z,
                w: v.w,
            })
        }
        T::Aabb => Variant::Aabb(Box::new(Aabb {
            position: vector3(r, wide)?,
            size: vector3(r, wide)?,
        })),
        T::Basis => Variant::Basis(Box::new(basis(r, wide)?)),
        T::Transform3D => Variant::Transform3D(Box::new(Transform3D {
            basis: basis(r, wide)?,
            origin: vector3(r, wide)?,
        })),
        T::Projection => Variant::Projection(Box::new(Projection {
            columns: [
                vector4(r, wide)?,
                vector4(r, wide)?,
                vector4(r, wide)?,
                vector4(r, wide)?,
            ],
        })),
        T::Color => Variant::Color(color(r)?),
        T::StringName => Variant::StringName(r.string()?),
        T::NodePath => Variant::NodePath(Box::new(node_path(r)?)),
        T::Rid => Variant::Rid(r.u64()?),
        T::Object => return Err(DecodeError::Unsupported(T::Object)),
        // marshalls.cpp: a Callable carries nothing.
        T::Callable => Variant::Callable,
        T::Signal => {
            let name = r.string()?;
            let object_id = r.u64()?;
            Variant::Signal { name, object_id }
        }
        T::PackedByteArray => {
            let n = r.count()?;
            let pad = (4 - n % 4) % 4;
            r.check_fits(n + pad, 1)?;
            let data = r.take(n)?.to_vec();
            r.take(pad)?;
            Variant::PackedByteArray(data)
        }
        T::PackedInt32Array => {
            let n = r.count()?;
            r.check_fits(n, 4)?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(r.u32()? as i32);
            }
            Variant::PackedInt32Array(v)
        }
        T::PackedInt64Array => {
            let n = r.count()?;
            r.check_fits(n, 8)?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(r.u64()? as i64);
            }
            Variant::PackedInt64Array(v)
        }
        T::PackedFloat32Array => {
            let n = r.count()?;
            r.check_fits(n, 4)?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(r.f32()?);
            }
            Variant::PackedFloat32Array(v)
        }
        T::PackedFloat64Array => {
            let n = r.count()?;
            r.check_fits(n, 8)?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(r.f64()?);
            }
            Variant::PackedFloat64Array(v)
        }
        T::PackedStringArray => {
            let n = r.count()?;
            let mut v = bounded_vec(r, n, 4);
            for _ in 0..n {
                v.push(r.string()?);
            }
            Variant::PackedStringArray(v)
        }
        T::PackedVector2Array => {
            let n = r.count()?;
            r.check_fits(n, if wide { 16 } else { 8 })?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(vector2(r, wide)?);
            }
            Variant::PackedVector2Array(v)
        }
        T::PackedVector3Array => {
            let n = r.count()?;
            r.check_fits(n, if wide { 24 } else { 12 })?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(vector3(r, wide)?);
            }
            Variant::PackedVector3Array(v)
        }
        T::PackedColorArray => {
            let n = r.count()?;
            r.check_fits(n, 16)?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(color(r)?);
            }
            Variant::PackedColorArray(v)
        }
        T::PackedVector4Array => {
            let n = r.count()?;
            r.check_fits(n, if wide { 32 } else { 16 })?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(vector4(r, wide)?);
            }
            Variant::PackedVector4Array(v)
        }
        T::Dictionary | T::Array => return Err(DecodeError::InvalidType(ty.id())),
    })
}

fn vector2(r: &mut Reader<'_>, wide: bool) -> Result<Vector2, DecodeError> {
    Ok(Vector2 {
        x: r.real(wide)?,
        y: r.real(wide)?,
    })
}

fn vector3(r: &mut Reader<'_>, wide: bool) -> Result<Vector3, DecodeError> {
    Ok(Vector3 {
        x: r.real(wide)?,
        y: r.real(wide)?,
        z: r.real(wide)?,
    })
}

fn vector4(r: &mut Reader<'_>, wide: bool) -> Result<Vector4, DecodeError> {
    Ok(Vector4 {
        x: r.real(wide)?,
        y: r.real(wide)?,
        z: r.real(wide)?,
        w: r.real(wide)?,
    })
}

fn basis(r: &mut Reader<'_>, wide: bool) -> Result<Basis, DecodeError> {
    Ok(Basis {
        rows: [vector3(r, wide)?, vector3(r, wide)?, vector3(r, wide)?],
    })
}

fn color(r: &mut Reader<'_>) -> Result<Color, DecodeError> {
    Ok(Color {
        r: r.f32()?,
        g: r.f32()?,
        b: r.f32()?,
        a: r.f32()?,
    })
}

/// marshalls.cpp NODE_PATH: `name_count | 0x80000000`, sub-name count, flags
/// (bit 0 absolute, bit 1 obsolete "property" = one more sub-name), then the
/// strings.
fn node_path(r: &mut Reader<'_>) -> Result<NodePath, DecodeError> {
    let first = r.u32()?;
    if first & 0x8000_0000 == 0 {
        return Err(DecodeError::OldNodePath);
    }
    let names = (first & 0x7FFF_FFFF) as usize;
    let mut subnames = r.u32()? as usize;
    let flags = r.u32()?;
    if flags & 2 != 0 {
        subnames = subnames.saturating_add(1);
    }
    // Every string takes at least its 4-byte length.
    let total = names
        .checked_add(subnames)
        .ok_or(DecodeError::InvalidLength)?;
    r.check_fits(total, 4)?;
    let mut path = NodePath {
        names: Vec::with_capacity(names),
        subnames: Vec::with_capacity(subnames),
        absolute: flags & 1 != 0,
    };
    for _ in 0..names {
        path.names.push(r.string()?);
    }
    for _ in 0..subnames {
        path.subnames.push(r.string()?);
    }
    Ok(path)
}

/// marshalls.cpp `_decode_container_type`.
fn element_type(r: &mut Reader<'_>, kind: u32) -> Result<ElementType, DecodeError> {
    Ok(match kind {
        KIND_NONE => ElementType::Any,
        KIND_BUILTIN => {
            let id = r.u32()?;
            ElementType::Builtin(VariantType::from_id(id).ok_or(DecodeError::InvalidType(id))?)
        }
        KIND_CLASS_NAME => ElementType::ClassName(Box::new(r.string()?)),
        // KIND_SCRIPT (the kind is two bits: nothing else is left).
        _ => ElementType::Script(Box::new(r.string()?)),
    })
}
