//! serde `Serializer` producing a [`Variant`].

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use serde::ser::{self, Serialize};

use super::{Error, MARKER_CODEC, VARIANT_MARKER};
use crate::variant::{Array, Dictionary, Variant};

/// Serializes into a [`Variant`] (see the [module docs](super) for the mapping).
#[derive(Debug, Clone, Copy, Default)]
pub struct VariantSerializer;

/// Serializes a byte slice with `serialize_bytes`.
pub(super) struct Bytes<'a>(pub(super) &'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

fn one_entry(name: &str, value: Variant) -> Variant {
    Dictionary::from_entries(alloc::vec![(Variant::String(name.to_string()), value)]).into()
}

impl ser::Serializer for VariantSerializer {
    type Ok = Variant;
    type Error = Error;
    type SerializeSeq = SeqBuilder;
    type SerializeTuple = SeqBuilder;
    type SerializeTupleStruct = SeqBuilder;
    type SerializeTupleVariant = SeqBuilder;
    type SerializeMap = MapBuilder;
    type SerializeStruct = MapBuilder;
    type SerializeStructVariant = MapBuilder;

    fn serialize_bool(self, v: bool) -> Result<Variant, Error> {
        Ok(Variant::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Variant, Error> {
        Ok(Variant::Int(v.into()))
    }
    fn serialize_i16(self, v: i16) -> Result<Variant, Error> {
        Ok(Variant::Int(v.into()))
    }
    fn serialize_i32(self, v: i32) -> Result<Variant, Error> {
        Ok(Variant::Int(v.into()))
    }
    fn serialize_i64(self, v: i64) -> Result<Variant, Error> {
        Ok(Variant::Int(v))
    }
    fn serialize_u8(self, v: u8) -> Result<Variant, Error> {
        Ok(Variant::Int(v.into()))
    }
    fn serialize_u16(self, v: u16) -> Result<Variant, Error> {
        Ok(Variant::Int(v.into()))
    }
    fn serialize_u32(self, v: u32) -> Result<Variant, Error> {
        Ok(Variant::Int(v.into()))
    }
    fn serialize_u64(self, v: u64) -> Result<Variant, Error> {
        i64::try_from(v)
            .map(Variant::Int)
            .map_err(|_| Error(String::from("u64 out of the int range")))
    }
    fn serialize_f32(self, v: f32) -> Result<Variant, Error> {
        Ok(Variant::Float(v.into()))
    }
    fn serialize_f64(self, v: f64) -> Result<Variant, Error> {
        Ok(Variant::Float(v))
    }
    fn serialize_char(self, v: char) -> Result<Variant, Error> {
        Ok(Variant::String(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> Result<Variant, Error> {
        Ok(Variant::String(v.to_string()))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Variant, Error> {
        Ok(Variant::PackedByteArray(v.to_vec()))
    }
    fn serialize_none(self) -> Result<Variant, Error> {
        Ok(Variant::Nil)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Variant, Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Variant, Error> {
        Ok(Variant::Nil)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<Variant, Error> {
        Ok(Variant::Nil)
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<Variant, Error> {
        Ok(Variant::String(variant.to_string()))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<Variant, Error> {
        let inner = value.serialize(self)?;
        if name == VARIANT_MARKER {
            // A Variant travelling as its own encoding.
            if let Variant::PackedByteArray(bytes) = &inner {
                return MARKER_CODEC
                    .decode_exact(bytes)
                    .map_err(|e| Error(e.to_string()));
            }
        }
        Ok(inner)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Variant, Error> {
        Ok(one_entry(variant, value.serialize(self)?))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<SeqBuilder, Error> {
        Ok(SeqBuilder::new(len.unwrap_or(0), None))
    }
    fn serialize_tuple(self, len: usize) -> Result<SeqBuilder, Error> {
        Ok(SeqBuilder::new(len, None))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<SeqBuilder, Error> {
        Ok(SeqBuilder::new(len, None))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<SeqBuilder, Error> {
        Ok(SeqBuilder::new(len, Some(variant)))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<MapBuilder, Error> {
        Ok(MapBuilder::new(None))
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<MapBuilder, Error> {
        Ok(MapBuilder::new(None))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<MapBuilder, Error> {
        Ok(MapBuilder::new(Some(variant)))
    }
}

/// Builds an `Array` (or `{variant: Array}`).
pub struct SeqBuilder {
    items: Vec<Variant>,
    variant: Option<&'static str>,
}

impl SeqBuilder {
    fn new(len: usize, variant: Option<&'static str>) -> Self {
        SeqBuilder {
            // serde's own size hint, capped: never trust it for megabytes.
            items: Vec::with_capacity(len.min(64)),
            variant,
        }
    }

    fn finish(self) -> Variant {
        let array = Array::new(self.items).into();
        match self.variant {
            Some(name) => one_entry(name, array),
            None => array,
        }
    }
}

macro_rules! seq_impl {
    ($($tr:ident :: $f:ident),*) => {$(
        impl ser::$tr for SeqBuilder {
            type Ok = Variant;
            type Error = Error;
            fn $f<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
                self.items.push(value.serialize(VariantSerializer)?);
                Ok(())
            }
            fn end(self) -> Result<Variant, Error> {
                Ok(self.finish())
            }
        }
    )*};
}

seq_impl!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

/// Builds a `Dictionary` (or `{variant: Dictionary}`).
pub struct MapBuilder {
    dict: Dictionary,
    key: Option<Variant>,
    variant: Option<&'static str>,
}

impl MapBuilder {
    fn new(variant: Option<&'static str>) -> Self {
        MapBuilder {
            dict: Dictionary::new(),
            key: None,
            variant,
        }
    }

    fn finish(self) -> Variant {
        let dict = self.dict.into();
        match self.variant {
            Some(name) => one_entry(name, dict),
            None => dict,
        }
    }
}

impl ser::SerializeMap for MapBuilder {
    type Ok = Variant;
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.key = Some(key.serialize(VariantSerializer)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        let key = self
            .key
            .take()
            .ok_or_else(|| Error(String::from("map value without a key")))?;
        self.dict.insert(key, value.serialize(VariantSerializer)?);
        Ok(())
    }
    fn end(self) -> Result<Variant, Error> {
        Ok(self.finish())
    }
}

macro_rules! struct_impl {
    ($($tr:ident),*) => {$(
        impl ser::$tr for MapBuilder {
            type Ok = Variant;
            type Error = Error;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), Error> {
                self.dict
                    .insert(Variant::String(key.to_string()), value.serialize(VariantSerializer)?);
                Ok(())
            }
            fn end(self) -> Result<Variant, Error> {
                Ok(self.finish())
            }
        }
    )*};
}

struct_impl!(SerializeStruct, SerializeStructVariant);
