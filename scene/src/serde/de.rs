//! serde `Deserializer` reading a [`Variant`].

use alloc::borrow::Cow;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use serde::de::{self, DeserializeSeed, Visitor};

use super::{Error, MARKER_CODEC, VARIANT_MARKER};
use crate::variant::Variant;

/// Deserializes from a borrowed [`Variant`] (see the [module docs](super)).
#[derive(Debug, Clone, Copy)]
pub struct VariantDeserializer<'a> {
    value: &'a Variant,
}

impl<'a> VariantDeserializer<'a> {
    /// A deserializer of `value`.
    pub fn new(value: &'a Variant) -> Self {
        VariantDeserializer { value }
    }
}

fn unexpected(v: &Variant, what: &str) -> Error {
    Error(alloc::format!(
        "expected {what}, got {:?}",
        v.variant_type()
    ))
}

/// The elements of sequence-like values: arrays, packed arrays, and the
/// components of math types.
fn seq_items(v: &Variant) -> Option<Cow<'_, [Variant]>> {
    fn owned<T: Clone + Into<Variant>>(xs: &[T]) -> Option<Cow<'static, [Variant]>> {
        Some(Cow::Owned(xs.iter().cloned().map(Into::into).collect()))
    }
    fn reals(xs: &[f64]) -> Option<Cow<'static, [Variant]>> {
        owned(xs)
    }
    match v {
        Variant::Array(a) => Some(Cow::Borrowed(&a.items)),
        Variant::PackedByteArray(b) => Some(Cow::Owned(
            b.iter().map(|&x| Variant::Int(x.into())).collect(),
        )),
        Variant::PackedInt32Array(x) => owned(x),
        Variant::PackedInt64Array(x) => owned(x),
        Variant::PackedFloat32Array(x) => owned(x),
        Variant::PackedFloat64Array(x) => owned(x),
        Variant::PackedStringArray(x) => owned(x),
        Variant::PackedVector2Array(x) => owned(x),
        Variant::PackedVector3Array(x) => owned(x),
        Variant::PackedColorArray(x) => owned(x),
        Variant::PackedVector4Array(x) => owned(x),
        Variant::Vector2(p) => reals(&[p.x, p.y]),
        Variant::Vector3(p) => reals(&[p.x, p.y, p.z]),
        Variant::Vector4(p) => reals(&[p.x, p.y, p.z, p.w]),
        Variant::Quaternion(p) => reals(&[p.x, p.y, p.z, p.w]),
        Variant::Vector2i(p) => owned(&[p.x, p.y]),
        Variant::Vector3i(p) => owned(&[p.x, p.y, p.z]),
        Variant::Vector4i(p) => owned(&[p.x, p.y, p.z, p.w]),
        Variant::Color(c) => owned(&[c.r, c.g, c.b, c.a]),
        _ => None,
    }
}

impl<'de> de::Deserializer<'de> for VariantDeserializer<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Variant::Nil => visitor.visit_unit(),
            Variant::Bool(b) => visitor.visit_bool(*b),
            Variant::Int(i) => visitor.visit_i64(*i),
            Variant::Float(f) => visitor.visit_f64(*f),
            Variant::String(s) | Variant::StringName(s) => visitor.visit_str(s),
            Variant::NodePath(p) => visitor.visit_string(p.to_string()),
            Variant::Rid(id) => visitor.visit_u64(*id),
            Variant::PackedByteArray(b) => visitor.visit_bytes(b),
            Variant::Dictionary(d) => visitor.visit_map(MapAccess {
                entries: d.entries(),
                pos: 0,
            }),
            other => match seq_items(other) {
                Some(items) => {
                    let mut seq = Seq::from_cow(items);
                    let v = visitor.visit_seq(&mut seq)?;
                    seq.end()?;
                    Ok(v)
                }
                None => Err(unexpected(other, "a value serde can represent")),
            },
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Variant::Nil => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        if name == VARIANT_MARKER {
            let bytes = MARKER_CODEC
                .to_bytes(self.value)
                .map_err(|e| Error(e.to_string()))?;
            return visitor
                .visit_newtype_struct(de::value::BytesDeserializer::<Error>::new(&bytes));
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match seq_items(self.value) {
            Some(items) => {
                let mut seq = Seq::from_cow(items);
                let v = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(v)
            }
            None => Err(unexpected(self.value, "an array")),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.value {
            Variant::String(s) | Variant::StringName(s) => {
                visitor.visit_enum(de::value::StrDeserializer::<Error>::new(s))
            }
            Variant::Dictionary(d) if d.len() == 1 => {
                let (k, v) = &d.entries()[0];
                let name = k.as_str().ok_or_else(|| unexpected(k, "a variant name"))?;
                visitor.visit_enum(EnumAccess { name, value: v })
            }
            other => Err(unexpected(
                other,
                "an enum (String or one-entry Dictionary)",
            )),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct map struct identifier ignored_any
    }
}

/// A sequence of Variants being read.
pub(crate) struct Seq<'a> {
    items: Cow<'a, [Variant]>,
    pos: usize,
}

impl<'a> Seq<'a> {
    pub(crate) fn new(items: &'a [Variant]) -> Self {
        Seq::from_cow(Cow::Borrowed(items))
    }

    fn from_cow(items: Cow<'a, [Variant]>) -> Self {
        Seq { items, pos: 0 }
    }

    pub(crate) fn is_done(&self) -> bool {
        self.pos >= self.items.len()
    }

    fn end(&self) -> Result<(), Error> {
        if self.is_done() {
            Ok(())
        } else {
            Err(Error(String::from("more elements than expected")))
        }
    }
}

impl<'de> de::SeqAccess<'de> for Seq<'_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        let Some(item) = self.items.get(self.pos) else {
            return Ok(None);
        };
        self.pos += 1;
        seed.deserialize(VariantDeserializer::new(item)).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len() - self.pos)
    }
}

/// The argument list as a sequence (for [`super::from_args`]); the caller
/// checks that every argument was used.
pub(crate) struct SeqDeserializer<'s, 'a>(pub(crate) &'s mut Seq<'a>);

impl<'de> de::Deserializer<'de> for SeqDeserializer<'_, '_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_seq(self.0)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

struct MapAccess<'a> {
    entries: &'a [(Variant, Variant)],
    pos: usize,
}

impl<'de> de::MapAccess<'de> for MapAccess<'_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.entries.get(self.pos) {
            Some((k, _)) => seed.deserialize(VariantDeserializer::new(k)).map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let (_, v) = self
            .entries
            .get(self.pos)
            .ok_or_else(|| Error(String::from("map value without a key")))?;
        self.pos += 1;
        seed.deserialize(VariantDeserializer::new(v))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len() - self.pos)
    }
}

struct EnumAccess<'a> {
    name: &'a str,
    value: &'a Variant,
}

impl<'de, 'a> de::EnumAccess<'de> for EnumAccess<'a> {
    type Error = Error;
    type Variant = VariantDeserializer<'a>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), Error> {
        let name = seed.deserialize(de::value::StrDeserializer::<Error>::new(self.name))?;
        Ok((name, VariantDeserializer::new(self.value)))
    }
}

impl<'de> de::VariantAccess<'de> for VariantDeserializer<'_> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        match self.value {
            Variant::Nil => Ok(()),
            other => Err(unexpected(other, "null")),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_seq(self, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_any(self, visitor)
    }
}

/// Reads a [`Variant`] from its own encoding.
pub(super) struct MarkerVisitor;

impl<'de> Visitor<'de> for MarkerVisitor {
    type Value = Variant;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Variant (wsmp-scene's serde support)")
    }

    fn visit_newtype_struct<D: de::Deserializer<'de>>(self, d: D) -> Result<Variant, D::Error> {
        d.deserialize_byte_buf(self)
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Variant, E> {
        MARKER_CODEC.decode_exact(v).map_err(E::custom)
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Variant, E> {
        self.visit_bytes(&v)
    }
}
