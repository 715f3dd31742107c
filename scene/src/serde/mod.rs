//! serde support (feature `serde`): RPC arguments into your own types and
//! back, through [`Variant`].
//!
//! The data model maps as GDScript would see it: `bool`, integers (`int`,
//! checked ranges), floats (`float`; an `int` is accepted too), strings
//! (`String`, `StringName` and `NodePath` read as text), `Option` (`null` =
//! `None`), sequences and tuples (`Array`; packed arrays read as sequences of
//! their elements, math types as sequences of their components), maps and
//! structs (`Dictionary`; struct keys are `String`s), byte buffers
//! (`PackedByteArray`), enums (a unit variant is its name as a `String`,
//! others a one-entry `Dictionary` `{name: value}`).
//!
//! A [`Variant`] inside your types passes through unchanged (it travels as its
//! own encoding under a private newtype name, understood by this module's
//! serializer and deserializer only).
//!
//! [`from_args`] reads an argument list into a tuple or struct (`(String,
//! Vector2)`-like: one field per argument, in order; extra arguments are an
//! error); [`to_args`] turns a tuple into an argument list.

mod de;
mod ser;

use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use crate::variant::{Codec, RealWidth, Variant};

pub use de::VariantDeserializer;
pub use ser::VariantSerializer;

/// The newtype name under which a [`Variant`] travels as its own encoding.
const VARIANT_MARKER: &str = "$wsmp_scene::Variant";

/// The codec of that encoding: 64-bit reals, so nothing is rounded.
const MARKER_CODEC: Codec = Codec {
    real: RealWidth::F64,
    max_depth: Codec::ENGINE_MAX_DEPTH,
};

/// A serde error: the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl core::error::Error for Error {}

impl serde::ser::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

impl serde::de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

/// Any serializable value as a [`Variant`].
pub fn to_variant<T: serde::Serialize + ?Sized>(value: &T) -> Result<Variant, Error> {
    value.serialize(VariantSerializer)
}

/// A [`Variant`] into any deserializable type.
pub fn from_variant<T: serde::de::DeserializeOwned>(value: &Variant) -> Result<T, Error> {
    T::deserialize(VariantDeserializer::new(value))
}

/// An argument list from a serializable value: a tuple, tuple struct or
/// sequence gives one argument per element; anything else is one argument.
pub fn to_args<T: serde::Serialize + ?Sized>(value: &T) -> Result<Vec<Variant>, Error> {
    Ok(match to_variant(value)? {
        Variant::Array(a) if a.element_type == crate::variant::ElementType::Any => a.items,
        Variant::Nil => Vec::new(),
        other => vec![other],
    })
}

/// An argument list into a tuple or struct with one field per argument.
pub fn from_args<T: serde::de::DeserializeOwned>(args: &[Variant]) -> Result<T, Error> {
    let mut seq = de::Seq::new(args);
    let value = T::deserialize(de::SeqDeserializer(&mut seq))?;
    if !seq.is_done() {
        return Err(Error(String::from("more arguments than fields")));
    }
    Ok(value)
}

impl serde::Serialize for Variant {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let bytes = MARKER_CODEC
            .to_bytes(self)
            .map_err(serde::ser::Error::custom)?;
        serializer.serialize_newtype_struct(VARIANT_MARKER, &ser::Bytes(&bytes))
    }
}

impl<'de> serde::Deserialize<'de> for Variant {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_newtype_struct(VARIANT_MARKER, de::MarkerVisitor)
    }
}

macro_rules! via_variant {
    ($($t:ident),*) => {$(
        impl serde::Serialize for crate::variant::$t {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                Variant::from(self.clone()).serialize(serializer)
            }
        }
        impl<'de> serde::Deserialize<'de> for crate::variant::$t {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                match Variant::deserialize(deserializer)? {
                    Variant::$t(v) => Ok(v.into()),
                    other => Err(serde::de::Error::custom(alloc::format!(
                        "expected {}, got {:?}", stringify!($t), other.variant_type()
                    ))),
                }
            }
        }
    )*};
}

via_variant!(
    Vector2, Vector2i, Vector3, Vector3i, Vector4, Vector4i, Rect2, Rect2i, Plane, Quaternion,
    Color, Dictionary, Array
);

macro_rules! via_variant_boxed {
    ($($t:ident),*) => {$(
        impl serde::Serialize for crate::variant::$t {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                Variant::from(self.clone()).serialize(serializer)
            }
        }
        impl<'de> serde::Deserialize<'de> for crate::variant::$t {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                match Variant::deserialize(deserializer)? {
                    Variant::$t(v) => Ok(*v),
                    other => Err(serde::de::Error::custom(alloc::format!(
                        "expected {}, got {:?}", stringify!($t), other.variant_type()
                    ))),
                }
            }
        }
    )*};
}

via_variant_boxed!(Transform2D, Aabb, Basis, Transform3D, Projection, NodePath);
