//! Godot 4's `Variant` and its binary serialization, without objects.
//!
//! Two encodings:
//! - the plain one of `var_to_bytes` / `bytes_to_var` (core/io/marshalls.cpp
//!   `encode_variant` / `decode_variant`), used by SPAWN/SYNC state, inside
//!   containers, and by users' own protocols: [`Codec::encode`],
//!   [`Codec::decode`];
//! - the compressed one of RPC arguments (scene/main/multiplayer_api.cpp
//!   `encode_and_compress_variant(s)`): `bool` in one byte, `int` in 1, 2, 4
//!   or 8 bytes after a meta byte, everything else plain:
//!   [`Codec::encode_compressed`], [`Codec::decode_compressed`],
//!   [`Codec::encode_args`], [`Codec::decode_args`].
//!
//! Decoding is total: any byte string gives a value or a [`DecodeError`],
//! never a panic. Nesting is bounded by [`Codec::max_depth`] and every
//! allocation by the input: a length field is trusted for a reservation only
//! up to what the rest of the input can hold.
//!
//! Objects (type 24) are not supported: the engine sends them only as
//! instance ids (`allow_object_decoding` off), meaningless to another
//! process; decoding one is [`DecodeError::Unsupported`].

mod compressed;
mod decode;
mod encode;
mod types;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

pub use compressed::EncodedArgs;
pub use types::{
    Aabb, Array, Basis, Color, Dictionary, ElementType, NodePath, Plane, Projection, Quaternion,
    Rect2, Rect2i, Transform2D, Transform3D, VariantType, Vector2, Vector2i, Vector3, Vector3i,
    Vector4, Vector4i,
};

/// A Godot value that can cross the wire.
///
/// `real_t` components are `f64` here; see [`types`](self) and [`RealWidth`].
#[derive(Debug, Clone, PartialEq, Default)]
#[allow(missing_docs)]
pub enum Variant {
    #[default]
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    Vector2(Vector2),
    Vector2i(Vector2i),
    Rect2(Rect2),
    Rect2i(Rect2i),
    Vector3(Vector3),
    Vector3i(Vector3i),
    Transform2D(Box<Transform2D>),
    Vector4(Vector4),
    Vector4i(Vector4i),
    Plane(Plane),
    Quaternion(Quaternion),
    Aabb(Box<Aabb>),
    Basis(Box<Basis>),
    Transform3D(Box<Transform3D>),
    Projection(Box<Projection>),
    Color(Color),
    StringName(String),
    NodePath(Box<NodePath>),
    /// A `RID`: only its 64-bit id crosses the wire.
    Rid(u64),
    /// An empty `Callable`: the engine encodes none of its content.
    Callable,
    /// A `Signal`: its name and the owner's object id.
    Signal {
        name: String,
        object_id: u64,
    },
    Dictionary(Dictionary),
    Array(Array),
    PackedByteArray(Vec<u8>),
    PackedInt32Array(Vec<i32>),
    PackedInt64Array(Vec<i64>),
    PackedFloat32Array(Vec<f32>),
    PackedFloat64Array(Vec<f64>),
    PackedStringArray(Vec<String>),
    PackedVector2Array(Vec<Vector2>),
    PackedVector3Array(Vec<Vector3>),
    PackedColorArray(Vec<Color>),
    PackedVector4Array(Vec<Vector4>),
}

impl Variant {
    /// The engine type of this value.
    pub fn variant_type(&self) -> VariantType {
        use VariantType as T;
        match self {
            Variant::Nil => T::Nil,
            Variant::Bool(_) => T::Bool,
            Variant::Int(_) => T::Int,
            Variant::Float(_) => T::Float,
            Variant::String(_) => T::String,
            Variant::Vector2(_) => T::Vector2,
            Variant::Vector2i(_) => T::Vector2i,
            Variant::Rect2(_) => T::Rect2,
            Variant::Rect2i(_) => T::Rect2i,
            Variant::Vector3(_) => T::Vector3,
            Variant::Vector3i(_) => T::Vector3i,
            Variant::Transform2D(_) => T::Transform2D,
            Variant::Vector4(_) => T::Vector4,
            Variant::Vector4i(_) => T::Vector4i,
            Variant::Plane(_) => T::Plane,
            Variant::Quaternion(_) => T::Quaternion,
            Variant::Aabb(_) => T::Aabb,
            Variant::Basis(_) => T::Basis,
            Variant::Transform3D(_) => T::Transform3D,
            Variant::Projection(_) => T::Projection,
            Variant::Color(_) => T::Color,
            Variant::StringName(_) => T::StringName,
            Variant::NodePath(_) => T::NodePath,
            Variant::Rid(_) => T::Rid,
            Variant::Callable => T::Callable,
            Variant::Signal { .. } => T::Signal,
            Variant::Dictionary(_) => T::Dictionary,
            Variant::Array(_) => T::Array,
            Variant::PackedByteArray(_) => T::PackedByteArray,
            Variant::PackedInt32Array(_) => T::PackedInt32Array,
            Variant::PackedInt64Array(_) => T::PackedInt64Array,
            Variant::PackedFloat32Array(_) => T::PackedFloat32Array,
            Variant::PackedFloat64Array(_) => T::PackedFloat64Array,
            Variant::PackedStringArray(_) => T::PackedStringArray,
            Variant::PackedVector2Array(_) => T::PackedVector2Array,
            Variant::PackedVector3Array(_) => T::PackedVector3Array,
            Variant::PackedColorArray(_) => T::PackedColorArray,
            Variant::PackedVector4Array(_) => T::PackedVector4Array,
        }
    }

    /// The integer, for `Int`.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Variant::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The float, for `Float` (and `Int`, converted as GDScript does).
    pub fn as_float(&self) -> Option<f64> {
        match self {
            Variant::Float(f) => Some(*f),
            Variant::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// The text, for `String` and `StringName`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Variant::String(s) | Variant::StringName(s) => Some(s),
            _ => None,
        }
    }

    /// The bool, for `Bool`.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Variant::Bool(b) => Some(*b),
            _ => None,
        }
    }
}

macro_rules! from_impl {
    ($($t:ty => $v:ident),* $(,)?) => {$(
        impl From<$t> for Variant {
            fn from(v: $t) -> Variant { Variant::$v(v.into()) }
        }
    )*};
}

from_impl!(
    bool => Bool, i64 => Int, i32 => Int, u32 => Int, f64 => Float, f32 => Float,
    String => String, &str => String, Vector2 => Vector2, Vector2i => Vector2i,
    Vector3 => Vector3, Vector3i => Vector3i, Vector4 => Vector4, Vector4i => Vector4i,
    Rect2 => Rect2, Rect2i => Rect2i, Plane => Plane, Quaternion => Quaternion,
    Color => Color, Dictionary => Dictionary, Array => Array, Vec<u8> => PackedByteArray,
    Transform2D => Transform2D, Aabb => Aabb, Basis => Basis, Transform3D => Transform3D,
    Projection => Projection, NodePath => NodePath,
);

/// Width of `real_t` in the engine build you talk to (`precision=double`
/// builds use 64 bits). Decoding accepts both whatever the setting
/// (marshalls.cpp reads the header's 64-bit flag); encoding writes this width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RealWidth {
    /// 32-bit `real_t`: the default engine build.
    #[default]
    F32,
    /// 64-bit `real_t`: engines built with `precision=double`.
    F64,
}

/// Codec settings: `real_t` width and nesting limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Codec {
    /// The `real_t` width written by the encoder.
    pub real: RealWidth,
    /// Deepest nesting of arrays and dictionaries accepted or produced: the
    /// engine's `Variant::MAX_RECURSION_DEPTH` (1024) by default.
    pub max_depth: usize,
}

impl Default for Codec {
    fn default() -> Self {
        Codec {
            real: RealWidth::F32,
            max_depth: Codec::ENGINE_MAX_DEPTH,
        }
    }
}

impl Codec {
    /// `Variant::MAX_RECURSION_DEPTH` (core/variant/variant.h).
    pub const ENGINE_MAX_DEPTH: usize = 1024;

    /// A codec for engines with this `real_t` width.
    pub fn with_real(real: RealWidth) -> Self {
        Codec {
            real,
            ..Codec::default()
        }
    }
}

/// Why bytes could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecodeError {
    /// The input ended inside a value.
    UnexpectedEnd,
    /// A type id (or container element type id) the engine does not have.
    InvalidType(u32),
    /// A type this crate does not decode (objects).
    Unsupported(VariantType),
    /// A count or length field is negative or larger than the input.
    InvalidLength,
    /// A string is not valid UTF-8.
    InvalidUtf8,
    /// A NodePath in the pre-4.0 string form (marshalls.cpp rejects it too).
    OldNodePath,
    /// Nesting deeper than [`Codec::max_depth`].
    TooDeep,
    /// A compressed-form meta byte the engine never writes.
    InvalidMeta(u8),
    /// Bytes left after the value(s) where none may follow.
    TrailingBytes,
    /// The RPC argument list is inconsistent (byte-only flag with a count).
    InvalidArgs,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::UnexpectedEnd => f.write_str("input ends inside a value"),
            DecodeError::InvalidType(t) => write!(f, "invalid variant type {t}"),
            DecodeError::Unsupported(t) => write!(f, "unsupported variant type {t:?}"),
            DecodeError::InvalidLength => f.write_str("invalid length or count"),
            DecodeError::InvalidUtf8 => f.write_str("string is not valid UTF-8"),
            DecodeError::OldNodePath => f.write_str("NodePath in the old string format"),
            DecodeError::TooDeep => f.write_str("nesting too deep"),
            DecodeError::InvalidMeta(m) => write!(f, "invalid compressed meta byte {m:#04x}"),
            DecodeError::TrailingBytes => f.write_str("trailing bytes after the value"),
            DecodeError::InvalidArgs => f.write_str("invalid argument list"),
        }
    }
}

impl core::error::Error for DecodeError {}

/// Why a value could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EncodeError {
    /// Nesting deeper than [`Codec::max_depth`].
    TooDeep,
    /// A string, array or count too long for its 31- or 32-bit field.
    TooLong,
    /// More than 255 RPC arguments (scene_rpc_interface.cpp: "Too many arguments").
    TooManyArgs,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::TooDeep => f.write_str("nesting too deep"),
            EncodeError::TooLong => f.write_str("value too long for its length field"),
            EncodeError::TooManyArgs => f.write_str("more than 255 RPC arguments"),
        }
    }
}

impl core::error::Error for EncodeError {}

/// `var_to_bytes(value)` with the default codec (32-bit `real_t`).
pub fn var_to_bytes(value: &Variant) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    Codec::default().encode(value, &mut out)?;
    Ok(out)
}

/// `bytes_to_var(bytes)` with the default codec; the whole input must be one value.
pub fn bytes_to_var(bytes: &[u8]) -> Result<Variant, DecodeError> {
    Codec::default().decode_exact(bytes)
}
