//! The plain encoder (marshalls.cpp `encode_variant`).

use alloc::vec::Vec;

use super::decode::{
    HEADER_DATA_FLAG_64, KIND_BUILTIN, KIND_CLASS_NAME, KIND_NONE, KIND_SCRIPT, TYPED_ARRAY_SHIFT,
    TYPED_DICT_VALUE_SHIFT,
};
use super::types::*;
use super::{Codec, EncodeError, RealWidth, Variant};

/// Writes little-endian values into a `Vec<u8>`.
pub(super) struct Writer<'a> {
    pub(super) out: &'a mut Vec<u8>,
    wide: bool,
}

impl<'a> Writer<'a> {
    pub(super) fn new(out: &'a mut Vec<u8>, real: RealWidth) -> Self {
        Writer {
            out,
            wide: real == RealWidth::F64,
        }
    }

    pub(super) fn u32(&mut self, v: u32) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    fn f32(&mut self, v: f32) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    /// marshalls.cpp `encode_real`: the build's `real_t` width.
    fn real(&mut self, v: f64) {
        if self.wide {
            self.out.extend_from_slice(&v.to_le_bytes());
        } else {
            self.f32(v as f32);
        }
    }

    fn len32(&mut self, n: usize) -> Result<(), EncodeError> {
        let n = u32::try_from(n).map_err(|_| EncodeError::TooLong)?;
        if n > i32::MAX as u32 {
            return Err(EncodeError::TooLong);
        }
        self.u32(n);
        Ok(())
    }

    fn pad4(&mut self, n: usize) {
        for _ in 0..(4 - n % 4) % 4 {
            self.out.push(0);
        }
    }

    /// marshalls.cpp `_encode_string`: length, UTF-8 bytes, zero padding to 4.
    pub(super) fn string(&mut self, s: &str) -> Result<(), EncodeError> {
        self.len32(s.len())?;
        self.out.extend_from_slice(s.as_bytes());
        self.pad4(s.len());
        Ok(())
    }

    fn vector2(&mut self, v: &Vector2) {
        self.real(v.x);
        self.real(v.y);
    }

    fn vector3(&mut self, v: &Vector3) {
        self.real(v.x);
        self.real(v.y);
        self.real(v.z);
    }

    fn vector4(&mut self, v: &Vector4) {
        self.real(v.x);
        self.real(v.y);
        self.real(v.z);
        self.real(v.w);
    }

    fn color(&mut self, c: &Color) {
        self.f32(c.r);
        self.f32(c.g);
        self.f32(c.b);
        self.f32(c.a);
    }

    fn ints(&mut self, v: &[i32]) {
        for &x in v {
            self.u32(x as u32);
        }
    }
}

/// The header bits of a container element type (marshalls.cpp
/// `_encode_container_type_header`).
fn element_kind(t: &ElementType) -> u32 {
    match t {
        ElementType::Any => KIND_NONE,
        ElementType::Builtin(_) => KIND_BUILTIN,
        ElementType::ClassName(_) => KIND_CLASS_NAME,
        ElementType::Script(_) => KIND_SCRIPT,
    }
}

/// marshalls.cpp `_encode_container_type`.
fn element_type(w: &mut Writer<'_>, t: &ElementType) -> Result<(), EncodeError> {
    match t {
        ElementType::Any => Ok(()),
        ElementType::Builtin(ty) => {
            w.u32(ty.id());
            Ok(())
        }
        ElementType::ClassName(s) | ElementType::Script(s) => w.string(s),
    }
}

/// Whether a float needs the 64-bit form: marshalls.cpp encodes in 32 bits
/// when `double(float(d)) == d` (so NaN always takes 64 bits, as there).
pub(super) fn float_is_wide(d: f64) -> bool {
    f64::from(d as f32) != d
}

impl Codec {
    /// Appends `value` in the plain `var_to_bytes` form to `out`. On error,
    /// `out` may hold a partial value.
    pub fn encode(&self, value: &Variant, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let mut w = Writer::new(out, self.real);
        self.encode_value(&mut w, value, 0)
    }

    /// `var_to_bytes(value)` with this codec.
    pub fn to_bytes(&self, value: &Variant) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode(value, &mut out)?;
        Ok(out)
    }

    pub(super) fn encode_value(
        &self,
        w: &mut Writer<'_>,
        value: &Variant,
        depth: usize,
    ) -> Result<(), EncodeError> {
        if depth > self.max_depth {
            return Err(EncodeError::TooDeep);
        }
        let ty = value.variant_type().id();
        match value {
            Variant::Dictionary(d) => {
                w.u32(
                    ty | element_kind(d.key_type()) << TYPED_ARRAY_SHIFT
                        | element_kind(d.value_type()) << TYPED_DICT_VALUE_SHIFT,
                );
                element_type(w, d.key_type())?;
                element_type(w, d.value_type())?;
                w.len32(d.len())?;
                for (k, v) in d.entries() {
                    self.encode_value(w, k, depth + 1)?;
                    self.encode_value(w, v, depth + 1)?;
                }
            }
            Variant::Array(a) => {
                w.u32(ty | element_kind(&a.element_type) << TYPED_ARRAY_SHIFT);
                element_type(w, &a.element_type)?;
                w.len32(a.items.len())?;
                for item in &a.items {
                    self.encode_value(w, item, depth + 1)?;
                }
            }
            other => encode_leaf(w, other)?,
        }
        Ok(())
    }
}

/// Every type but the containers: no recursion, so the recursive
/// `encode_value` keeps a small stack frame.
#[inline(never)]
fn encode_leaf(w: &mut Writer<'_>, value: &Variant) -> Result<(), EncodeError> {
    let ty = value.variant_type().id();
    let real_flag = if w.wide { HEADER_DATA_FLAG_64 } else { 0 };
    match value {
        Variant::Nil => w.u32(ty),
        Variant::Bool(b) => {
            w.u32(ty);
            w.u32(u32::from(*b));
        }
        // marshalls.cpp: 64-bit only outside the i32 range.
        Variant::Int(i) => match i32::try_from(*i) {
            Ok(small) => {
                w.u32(ty);
                w.u32(small as u32);
            }
            Err(_) => {
                w.u32(ty | HEADER_DATA_FLAG_64);
                w.u64(*i as u64);
            }
        },
        Variant::Float(d) => {
            if float_is_wide(*d) {
                w.u32(ty | HEADER_DATA_FLAG_64);
                w.out.extend_from_slice(&d.to_le_bytes());
            } else {
                w.u32(ty);
                w.f32(*d as f32);
            }
        }
        Variant::String(s) | Variant::StringName(s) => {
            w.u32(ty);
            w.string(s)?;
        }
        Variant::Vector2(v) => {
            w.u32(ty | real_flag);
            w.vector2(v);
        }
        Variant::Vector2i(v) => {
            w.u32(ty);
            w.ints(&[v.x, v.y]);
        }
        Variant::Rect2(r) => {
            w.u32(ty | real_flag);
            w.vector2(&r.position);
            w.vector2(&r.size);
        }
        Variant::Rect2i(r) => {
            w.u32(ty);
            w.ints(&[r.position.x, r.position.y, r.size.x, r.size.y]);
        }
        Variant::Vector3(v) => {
            w.u32(ty | real_flag);
            w.vector3(v);
        }
        Variant::Vector3i(v) => {
            w.u32(ty);
            w.ints(&[v.x, v.y, v.z]);
        }
        Variant::Transform2D(t) => {
            w.u32(ty | real_flag);
            for c in &t.columns {
                w.vector2(c);
            }
        }
        Variant::Vector4(v) => {
            w.u32(ty | real_flag);
            w.vector4(v);
        }
        Variant::Vector4i(v) => {
            w.u32(ty);
            w.ints(&[v.x, v.y, v.z, v.w]);
        }
        Variant::Plane(p) => {
            w.u32(ty | real_flag);
            w.vector3(&p.normal);
            w.real(p.d);
        }
        Variant::Quaternion(q) => {
            w.u32(ty | real_flag);
            w.vector4(&Vector4 {
                x: q.x,
                y: q.y,
                z: q.z,
                w: q.w,
            });
        }
        Variant::Aabb(a) => {
            w.u32(ty | real_flag);
            w.vector3(&a.position);
            w.vector3(&a.size);
        }
        Variant::Basis(b) => {
            w.u32(ty | real_flag);
            for row in &b.rows {
                w.vector3(row);
            }
        }
        Variant::Transform3D(t) => {
            w.u32(ty | real_flag);
            for row in &t.basis.rows {
                w.vector3(row);
            }
            w.vector3(&t.origin);
        }
        Variant::Projection(p) => {
            w.u32(ty | real_flag);
            for c in &p.columns {
                w.vector4(c);
            }
        }
        Variant::Color(c) => {
            w.u32(ty);
            w.color(c);
        }
        // marshalls.cpp NODE_PATH. The engine leaves the padding bytes
        // unwritten (whatever the buffer held); we write zeros.
        Variant::NodePath(p) => {
            w.u32(ty);
            let names = u32::try_from(p.names.len())
                .ok()
                .filter(|&n| n <= 0x7FFF_FFFF)
                .ok_or(EncodeError::TooLong)?;
            w.u32(names | 0x8000_0000);
            w.len32(p.subnames.len())?;
            w.u32(u32::from(p.absolute));
            for s in p.names.iter().chain(&p.subnames) {
                w.string(s)?;
            }
        }
        Variant::Rid(id) => {
            w.u32(ty);
            w.u64(*id);
        }
        Variant::Callable => w.u32(ty),
        Variant::Signal { name, object_id } => {
            w.u32(ty);
            w.string(name)?;
            w.u64(*object_id);
        }
        Variant::PackedByteArray(b) => {
            w.u32(ty);
            w.len32(b.len())?;
            w.out.extend_from_slice(b);
            w.pad4(b.len());
        }
        Variant::PackedInt32Array(v) => {
            w.u32(ty);
            w.len32(v.len())?;
            w.ints(v);
        }
        Variant::PackedInt64Array(v) => {
            w.u32(ty);
            w.len32(v.len())?;
            for &x in v {
                w.u64(x as u64);
            }
        }
        Variant::PackedFloat32Array(v) => {
            w.u32(ty);
            w.len32(v.len())?;
            for &x in v {
                w.f32(x);
            }
        }
        Variant::PackedFloat64Array(v) => {
            w.u32(ty);
            w.len32(v.len())?;
            for &x in v {
                w.out.extend_from_slice(&x.to_le_bytes());
            }
        }
        // marshalls.cpp PACKED_STRING_ARRAY: each string's length counts
        // its NUL terminator, which is written too.
        Variant::PackedStringArray(v) => {
            w.u32(ty);
            w.len32(v.len())?;
            for s in v {
                let n = s.len().checked_add(1).ok_or(EncodeError::TooLong)?;
                w.len32(n)?;
                w.out.extend_from_slice(s.as_bytes());
                w.out.push(0);
                w.pad4(n);
            }
        }
        Variant::PackedVector2Array(v) => {
            w.u32(ty | real_flag);
            w.len32(v.len())?;
            w.out.reserve(v.len() * if w.wide { 16 } else { 8 });
            for x in v {
                w.vector2(x);
            }
        }
        Variant::PackedVector3Array(v) => {
            w.u32(ty | real_flag);
            w.len32(v.len())?;
            for x in v {
                w.vector3(x);
            }
        }
        Variant::PackedColorArray(v) => {
            w.u32(ty);
            w.len32(v.len())?;
            for c in v {
                w.color(c);
            }
        }
        Variant::PackedVector4Array(v) => {
            w.u32(ty | real_flag);
            w.len32(v.len())?;
            for x in v {
                w.vector4(x);
            }
        }
        Variant::Dictionary(_) | Variant::Array(_) => {}
    }
    Ok(())
}
