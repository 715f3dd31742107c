//! The value types a [`Variant`](super::Variant) holds: Godot's math types,
//! `NodePath`, typed containers.
//!
//! Components of the `real_t` types (`Vector2`, `Rect2`, `Transform3D`, …) are
//! stored as `f64` whatever the wire width: a 32-bit value read from the wire
//! is exact in an `f64`, and the encoder writes the width the
//! [`Codec`](super::Codec) is set to (marshalls.cpp `encode_real`).

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use super::Variant;

/// Godot's `Variant::Type`, with the engine's numbering (core/variant/variant.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
#[allow(missing_docs)]
pub enum VariantType {
    Nil = 0,
    Bool = 1,
    Int = 2,
    Float = 3,
    String = 4,
    Vector2 = 5,
    Vector2i = 6,
    Rect2 = 7,
    Rect2i = 8,
    Vector3 = 9,
    Vector3i = 10,
    Transform2D = 11,
    Vector4 = 12,
    Vector4i = 13,
    Plane = 14,
    Quaternion = 15,
    Aabb = 16,
    Basis = 17,
    Transform3D = 18,
    Projection = 19,
    Color = 20,
    StringName = 21,
    NodePath = 22,
    Rid = 23,
    Object = 24,
    Callable = 25,
    Signal = 26,
    Dictionary = 27,
    Array = 28,
    PackedByteArray = 29,
    PackedInt32Array = 30,
    PackedInt64Array = 31,
    PackedFloat32Array = 32,
    PackedFloat64Array = 33,
    PackedStringArray = 34,
    PackedVector2Array = 35,
    PackedVector3Array = 36,
    PackedColorArray = 37,
    PackedVector4Array = 38,
}

impl VariantType {
    /// `Variant::VARIANT_MAX`: type ids are below this.
    pub const COUNT: u32 = 39;

    /// The type with engine id `id`, if there is one.
    pub const fn from_id(id: u32) -> Option<VariantType> {
        use VariantType::*;
        const ALL: [VariantType; 39] = [
            Nil,
            Bool,
            Int,
            Float,
            String,
            Vector2,
            Vector2i,
            Rect2,
            Rect2i,
            Vector3,
            Vector3i,
            Transform2D,
            Vector4,
            Vector4i,
            Plane,
            Quaternion,
            Aabb,
            Basis,
            Transform3D,
            Projection,
            Color,
            StringName,
            NodePath,
            Rid,
            Object,
            Callable,
            Signal,
            Dictionary,
            Array,
            PackedByteArray,
            PackedInt32Array,
            PackedInt64Array,
            PackedFloat32Array,
            PackedFloat64Array,
            PackedStringArray,
            PackedVector2Array,
            PackedVector3Array,
            PackedColorArray,
            PackedVector4Array,
        ];
        if id < Self::COUNT {
            Some(ALL[id as usize])
        } else {
            None
        }
    }

    /// The engine's id.
    pub const fn id(self) -> u32 {
        self as u32
    }
}

/// `Vector2` (`real_t` components).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[allow(missing_docs)]
pub struct Vector2 {
    pub x: f64,
    pub y: f64,
}

impl Vector2 {
    /// `Vector2(x, y)`.
    pub const fn new(x: f64, y: f64) -> Self {
        Vector2 { x, y }
    }
}

/// `Vector2i`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[allow(missing_docs)]
pub struct Vector2i {
    pub x: i32,
    pub y: i32,
}

/// `Vector3` (`real_t` components).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[allow(missing_docs)]
pub struct Vector3 {
    pub x: f64,
    pub y: f64,
    pub z: f64,
}

impl Vector3 {
    /// `Vector3(x, y, z)`.
    pub const fn new(x: f64, y: f64, z: f64) -> Self {
        Vector3 { x, y, z }
    }
}

/// `Vector3i`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[allow(missing_docs)]
pub struct Vector3i {
    pub x: i32,
    pub y: i32,
    pub z: i32,
}

/// `Vector4` (`real_t` components).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[allow(missing_docs)]
pub struct Vector4 {
    pub x: f64,
    pub y: f64,
    pub z: f64,
    pub w: f64,
}

/// `Vector4i`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[allow(missing_docs)]
pub struct Vector4i {
    pub x: i32,
    pub y: i32,
    pub z: i32,
    pub w: i32,
}

/// `Rect2`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[allow(missing_docs)]
pub struct Rect2 {
    pub position: Vector2,
    pub size: Vector2,
}

/// `Rect2i`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[allow(missing_docs)]
pub struct Rect2i {
    pub position: Vector2i,
    pub size: Vector2i,
}

/// `Transform2D`: columns `x`, `y` and `origin`, in wire order.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Transform2D {
    /// `columns[0]` = x axis, `columns[1]` = y axis, `columns[2]` = origin.
    pub columns: [Vector2; 3],
}

/// `Plane`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[allow(missing_docs)]
pub struct Plane {
    pub normal: Vector3,
    pub d: f64,
}

/// `Quaternion`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[allow(missing_docs)]
pub struct Quaternion {
    pub x: f64,
    pub y: f64,
    pub z: f64,
    pub w: f64,
}

/// `AABB`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[allow(missing_docs)]
pub struct Aabb {
    pub position: Vector3,
    pub size: Vector3,
}

/// `Basis`: three rows, in wire order.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Basis {
    /// The rows of the 3×3 matrix.
    pub rows: [Vector3; 3],
}

/// `Transform3D`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[allow(missing_docs)]
pub struct Transform3D {
    pub basis: Basis,
    pub origin: Vector3,
}

/// `Projection`: four columns, in wire order.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Projection {
    /// The columns of the 4×4 matrix.
    pub columns: [Vector4; 4],
}

/// `Color`: always single precision on the wire (marshalls.cpp, "Colors
/// should always be in single-precision").
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[allow(missing_docs)]
pub struct Color {
    pub r: f32,
    pub g: f32,
    pub b: f32,
    pub a: f32,
}

/// `NodePath`: node names, sub-names (property path after `:`), absolute flag.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct NodePath {
    /// Node names (`root`, `Main`, `Player` in `/root/Main/Player`).
    pub names: Vec<String>,
    /// Sub-names (`position`, `x` in `Player:position:x`).
    pub subnames: Vec<String>,
    /// Starts with `/`.
    pub absolute: bool,
}

impl NodePath {
    /// Parses the text form (`/root/Main`, `Main/Player:position:x`). Empty
    /// segments are dropped, as the engine does.
    pub fn parse(text: &str) -> NodePath {
        let absolute = text.starts_with('/');
        let mut parts = text.split(':');
        let path = parts.next().unwrap_or("");
        let names = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        let subnames = parts.filter(|s| !s.is_empty()).map(String::from).collect();
        NodePath {
            names,
            subnames,
            absolute,
        }
    }
}

impl fmt::Display for NodePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.absolute {
            f.write_str("/")?;
        }
        for (i, n) in self.names.iter().enumerate() {
            if i > 0 {
                f.write_str("/")?;
            }
            f.write_str(n)?;
        }
        for s in &self.subnames {
            write!(f, ":{s}")?;
        }
        Ok(())
    }
}

/// The declared element type of a typed `Array`, or the key or value type of a
/// typed `Dictionary` (marshalls.cpp `ContainerTypeKind`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum ElementType {
    /// Untyped (kind NONE).
    #[default]
    Any,
    /// A built-in type (kind BUILTIN), e.g. `Array[int]`.
    Builtin(VariantType),
    /// An object class (kind CLASS_NAME), e.g. `Array[Node]`. Engines that do
    /// not allow object decoding send `EncodedObjectAsID` here.
    ClassName(Box<String>),
    /// A script class by resource path (kind SCRIPT).
    Script(Box<String>),
}

/// An `Array`, untyped or typed (`Array[int]`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Array {
    /// The elements, in order.
    pub items: Vec<Variant>,
    /// The declared element type; the codec does not check elements against
    /// it (the engine's receiver does).
    pub element_type: ElementType,
}

impl Array {
    /// An untyped array.
    pub fn new(items: Vec<Variant>) -> Self {
        Array {
            items,
            element_type: ElementType::Any,
        }
    }

    /// A typed array (`Array[T]`).
    pub fn typed(element_type: ElementType, items: Vec<Variant>) -> Self {
        Array {
            items,
            element_type,
        }
    }
}

/// A `Dictionary`: entries in insertion order (the engine's order on the
/// wire), untyped or typed (`Dictionary[K, V]`).
///
/// The codec keeps entries as they arrive; [`Dictionary::insert`] replaces the
/// value of an existing key like the engine's `d[key] = value`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Dictionary {
    entries: Vec<(Variant, Variant)>,
    types: Option<Box<(ElementType, ElementType)>>,
}

impl Dictionary {
    /// An empty untyped dictionary.
    pub fn new() -> Self {
        Dictionary::default()
    }

    /// An untyped dictionary with these entries, in order.
    pub fn from_entries(entries: Vec<(Variant, Variant)>) -> Self {
        Dictionary {
            entries,
            types: None,
        }
    }

    /// A typed dictionary (`Dictionary[K, V]`).
    pub fn typed(key: ElementType, value: ElementType, entries: Vec<(Variant, Variant)>) -> Self {
        let types =
            (key != ElementType::Any || value != ElementType::Any).then(|| Box::new((key, value)));
        Dictionary { entries, types }
    }

    /// The declared key type.
    pub fn key_type(&self) -> &ElementType {
        self.types.as_ref().map_or(&ElementType::Any, |t| &t.0)
    }

    /// The declared value type.
    pub fn value_type(&self) -> &ElementType {
        self.types.as_ref().map_or(&ElementType::Any, |t| &t.1)
    }

    /// The entries, in order.
    pub fn entries(&self) -> &[(Variant, Variant)] {
        &self.entries
    }

    /// The entries, mutable.
    pub fn entries_mut(&mut self) -> &mut Vec<(Variant, Variant)> {
        &mut self.entries
    }

    /// Consumes the dictionary into its entries.
    pub fn into_entries(self) -> Vec<(Variant, Variant)> {
        self.entries
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value of the first entry whose key equals `key`.
    pub fn get(&self, key: &Variant) -> Option<&Variant> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// `d[key] = value`: replaces the value in place, or appends.
    pub fn insert(&mut self, key: Variant, value: Variant) {
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((key, value)),
        }
    }

    /// Removes `key`; returns its value.
    pub fn remove(&mut self, key: &Variant) -> Option<Variant> {
        let i = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.remove(i).1)
    }
}
