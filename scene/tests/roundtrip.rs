//! proptest round trips for every Variant type: plain and compressed forms,
//! both `real_t` widths, RPC argument lists, RPC packets; and decoding
//! arbitrary bytes never panics and never reserves more than the input allows.
#![allow(missing_docs, clippy::unwrap_used)]

use proptest::prelude::*;
use wsmp_scene::packet::{NodeRef, RemoteCall};
use wsmp_scene::variant::*;

/// Reals exactly representable at the codec's width (finite: NaN != NaN).
fn real(wide: bool) -> BoxedStrategy<f64> {
    if wide {
        any::<f64>()
            .prop_filter("finite", |x| x.is_finite())
            .boxed()
    } else {
        any::<f32>()
            .prop_filter("finite", |x| x.is_finite())
            .prop_map(f64::from)
            .boxed()
    }
}

fn text() -> impl Strategy<Value = String> {
    // No NUL: the engine's strings end at one.
    "[^\u{0}]{0,12}"
}

fn f32s() -> impl Strategy<Value = f32> {
    any::<f32>().prop_filter("finite", |x| x.is_finite())
}

fn element_type() -> impl Strategy<Value = ElementType> {
    prop_oneof![
        Just(ElementType::Any),
        (0u32..39).prop_map(|t| ElementType::Builtin(VariantType::from_id(t).unwrap())),
        text().prop_map(|s| ElementType::ClassName(Box::new(s))),
        text().prop_map(|s| ElementType::Script(Box::new(s))),
    ]
}

fn leaf(wide: bool) -> BoxedStrategy<Variant> {
    let r = move || real(wide);
    let v2 = move || (r(), r()).prop_map(|(x, y)| Vector2 { x, y });
    let v3 = move || (r(), r(), r()).prop_map(|(x, y, z)| Vector3 { x, y, z });
    let v4 = move || (r(), r(), r(), r()).prop_map(|(x, y, z, w)| Vector4 { x, y, z, w });
    let color = || (f32s(), f32s(), f32s(), f32s()).prop_map(|(r, g, b, a)| Color { r, g, b, a });
    prop_oneof![
        Just(Variant::Nil),
        any::<bool>().prop_map(Variant::Bool),
        any::<i64>().prop_map(Variant::Int),
        any::<f64>()
            .prop_filter("finite", |x| x.is_finite())
            .prop_map(Variant::Float),
        text().prop_map(Variant::String),
        v2().prop_map(Variant::Vector2),
        any::<(i32, i32)>().prop_map(|(x, y)| Variant::Vector2i(Vector2i { x, y })),
        (v2(), v2()).prop_map(|(position, size)| Variant::Rect2(Rect2 { position, size })),
        any::<[i32; 4]>().prop_map(|a| Variant::Rect2i(Rect2i {
            position: Vector2i { x: a[0], y: a[1] },
            size: Vector2i { x: a[2], y: a[3] }
        })),
        v3().prop_map(Variant::Vector3),
        any::<(i32, i32, i32)>().prop_map(|(x, y, z)| Variant::Vector3i(Vector3i { x, y, z })),
        (v2(), v2(), v2()).prop_map(|(a, b, c)| Transform2D { columns: [a, b, c] }.into()),
        v4().prop_map(Variant::Vector4),
        any::<[i32; 4]>().prop_map(|a| Variant::Vector4i(Vector4i {
            x: a[0],
            y: a[1],
            z: a[2],
            w: a[3]
        })),
        (v3(), r()).prop_map(|(normal, d)| Variant::Plane(Plane { normal, d })),
        v4().prop_map(|v| Variant::Quaternion(Quaternion {
            x: v.x,
            y: v.y,
            z: v.z,
            w: v.w
        })),
        (v3(), v3()).prop_map(|(position, size)| Aabb { position, size }.into()),
        (v3(), v3(), v3()).prop_map(|(a, b, c)| Basis { rows: [a, b, c] }.into()),
        (v3(), v3(), v3(), v3()).prop_map(|(a, b, c, origin)| Transform3D {
            basis: Basis { rows: [a, b, c] },
            origin
        }
        .into()),
        (v4(), v4(), v4(), v4()).prop_map(|(a, b, c, d)| Projection {
            columns: [a, b, c, d]
        }
        .into()),
        color().prop_map(Variant::Color),
        text().prop_map(Variant::StringName),
        (
            prop::collection::vec(text(), 0..4),
            prop::collection::vec(text(), 0..3),
            any::<bool>()
        )
            .prop_map(|(names, subnames, absolute)| NodePath {
                names,
                subnames,
                absolute
            }
            .into()),
        any::<u64>().prop_map(Variant::Rid),
        Just(Variant::Callable),
        (text(), any::<u64>()).prop_map(|(name, object_id)| Variant::Signal { name, object_id }),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(Variant::PackedByteArray),
        prop::collection::vec(any::<i32>(), 0..10).prop_map(Variant::PackedInt32Array),
        prop::collection::vec(any::<i64>(), 0..10).prop_map(Variant::PackedInt64Array),
        prop::collection::vec(f32s(), 0..10).prop_map(Variant::PackedFloat32Array),
        prop::collection::vec(any::<f64>().prop_filter("finite", |x| x.is_finite()), 0..10)
            .prop_map(Variant::PackedFloat64Array),
        prop::collection::vec(text(), 0..6).prop_map(Variant::PackedStringArray),
        prop::collection::vec(v2(), 0..8).prop_map(Variant::PackedVector2Array),
        prop::collection::vec(v3(), 0..8).prop_map(Variant::PackedVector3Array),
        prop::collection::vec(color(), 0..8).prop_map(Variant::PackedColorArray),
        prop::collection::vec(v4(), 0..8).prop_map(Variant::PackedVector4Array),
    ]
    .boxed()
}

fn variant(wide: bool) -> impl Strategy<Value = Variant> {
    leaf(wide).prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            (element_type(), prop::collection::vec(inner.clone(), 0..6))
                .prop_map(|(t, items)| Array::typed(t, items).into()),
            (
                element_type(),
                element_type(),
                prop::collection::vec((inner.clone(), inner), 0..5)
            )
                .prop_map(|(k, v, e)| Dictionary::typed(k, v, e).into()),
        ]
    })
}

fn round_trip(codec: Codec, v: &Variant) {
    let bytes = codec.to_bytes(v).unwrap();
    assert_eq!(bytes.len() % 4, 0, "plain encodings are 4-byte aligned");
    assert_eq!(&codec.decode_exact(&bytes).unwrap(), v);
    let mut c = Vec::new();
    codec.encode_compressed(v, &mut c).unwrap();
    assert_eq!(codec.decode_compressed(&c).unwrap(), (v.clone(), c.len()));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_type_round_trips_with_32_bit_reals(v in variant(false)) {
        round_trip(Codec::default(), &v);
    }

    #[test]
    fn every_type_round_trips_with_64_bit_reals(v in variant(true)) {
        round_trip(Codec::with_real(RealWidth::F64), &v);
    }

    #[test]
    fn rpc_argument_lists_and_packets_round_trip(
        args in prop::collection::vec(variant(false), 0..5),
        cached in prop::option::of(any::<u32>().prop_map(|x| x & 0x7FFF_FFFF)),
        method in any::<u16>(),
    ) {
        let codec = Codec::default();
        let enc = codec.encode_args(&args).unwrap();
        let back = codec.decode_args(enc.raw, enc.count, &enc.bytes).unwrap();
        // One empty PackedByteArray is "no arguments" on the wire.
        if args == [Variant::PackedByteArray(vec![])] {
            prop_assert!(back.is_empty());
        } else {
            prop_assert_eq!(&back, &args);
        }
        let node = match cached { Some(id) => NodeRef::Cached(id), None => NodeRef::Path("Main/Other") };
        let bytes = RemoteCall::new(node, method, &enc).encode();
        let call = RemoteCall::parse(&bytes).unwrap();
        prop_assert_eq!(call.node, node);
        prop_assert_eq!(call.method, method);
        prop_assert_eq!(codec.decode_args(call.raw, call.count, call.args).unwrap(), back);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..256)) {
        let codec = Codec::default();
        if let Ok((_, used)) = codec.decode(&data) { prop_assert!(used <= data.len()); }
        if let Ok((_, used)) = codec.decode_compressed(&data) { prop_assert!(used <= data.len()); }
        let _ = RemoteCall::parse(&data);
        let _ = wsmp_scene::packet::parse_command(&data);
    }
}

#[test]
fn large_counts_in_tiny_inputs_are_errors_without_big_reservations() {
    let codec = Codec::default();
    // Arrays, dictionaries, packed arrays and strings claiming 2^31-1 entries.
    for header in [
        0x1cu8, 0x1b, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x04,
    ] {
        let bytes = [
            header, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert!(codec.decode(&bytes).is_err(), "type {header:#x}");
    }
    // Negative counts are refused.
    assert_eq!(
        codec.decode(&[0x1d, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]),
        Err(DecodeError::InvalidLength)
    );
    // NodePath with 2^31-1 names.
    assert!(codec
        .decode(&[0x16, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0])
        .is_err());
}

#[test]
fn nesting_is_bounded_in_both_directions() {
    let codec = Codec {
        max_depth: 64,
        ..Codec::default()
    };
    let mut v = Variant::Nil;
    for _ in 0..100 {
        v = Array::new(vec![v]).into();
    }
    assert_eq!(codec.to_bytes(&v), Err(EncodeError::TooDeep));
    let deep = Codec::default().to_bytes(&v).unwrap();
    assert_eq!(codec.decode(&deep), Err(DecodeError::TooDeep));
    // The engine's limit (1024) decodes (without recursion), re-encodes,
    // and drops on a 512 KiB thread stack, even in debug builds (derived
    // Clone, PartialEq and Debug recurse: they need more at that depth).
    let bytes: Vec<u8> = std::iter::repeat_n([0x1c, 0, 0, 0, 1, 0, 0, 0], 1024)
        .flatten()
        .chain([0, 0, 0, 0])
        .collect();
    let t = std::thread::Builder::new()
        .stack_size(512 << 10)
        .spawn(move || {
            let v = Codec::default().decode_exact(&bytes).unwrap();
            let again = Codec::default().to_bytes(&v).unwrap();
            again == bytes
        })
        .unwrap();
    assert!(t.join().unwrap());
    // One level more is refused.
    let deeper: Vec<u8> = std::iter::repeat_n([0x1c, 0, 0, 0, 1, 0, 0, 0], 1026)
        .flatten()
        .chain([0, 0, 0, 0])
        .collect();
    assert_eq!(Codec::default().decode(&deeper), Err(DecodeError::TooDeep));
}
