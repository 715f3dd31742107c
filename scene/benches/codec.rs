//! Codec throughput: a typical RPC (one Dictionary argument with 8 mixed
//! entries, encoded and parsed as a whole REMOTE_CALL packet) and a
//! 1,000-element PackedVector2Array (plain `var_to_bytes` form). serde_json on
//! the same data is measured in the same run as a familiar reference point.
//!
//!     cargo bench -p wsmp-scene --bench codec
#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use wsmp_scene::packet::{NodeRef, RemoteCall};
use wsmp_scene::variant::{Array, Codec, Dictionary, Variant, Vector2, Vector3};

fn dict8() -> Variant {
    Dictionary::from_entries(vec![
        ("id".into(), Variant::Int(1_234_567)),
        ("name".into(), "player one".into()),
        ("pos".into(), Vector2::new(12.5, -3.25).into()),
        ("vel".into(), Vector3::new(0.5, 0.0, -1.0).into()),
        ("hp".into(), Variant::Float(87.5)),
        ("alive".into(), Variant::Bool(true)),
        (
            "tags".into(),
            Array::new(vec!["a".into(), "bb".into(), Variant::Int(3)]).into(),
        ),
        (
            "inv".into(),
            Variant::PackedInt32Array(vec![1, 2, 3, 4, 5, 6, 7, 8]),
        ),
    ])
    .into()
}

fn json8() -> serde_json::Value {
    serde_json::json!({
        "id": 1_234_567, "name": "player one", "pos": [12.5, -3.25], "vel": [0.5, 0.0, -1.0],
        "hp": 87.5, "alive": true, "tags": ["a", "bb", 3], "inv": [1, 2, 3, 4, 5, 6, 7, 8]
    })
}

fn rpc(c: &mut Criterion) {
    let codec = Codec::default();
    let args = vec![dict8()];
    let packet =
        RemoteCall::new(NodeRef::Cached(1), 4, &codec.encode_args(&args).unwrap()).encode();
    let mut g = c.benchmark_group("rpc_dict8");
    g.throughput(Throughput::Bytes(packet.len() as u64));
    g.bench_function("encode", |b| {
        b.iter(|| {
            let enc = codec.encode_args(black_box(&args)).unwrap();
            RemoteCall::new(NodeRef::Cached(1), 4, &enc).encode()
        })
    });
    g.bench_function("decode", |b| {
        b.iter(|| {
            let call = RemoteCall::parse(black_box(&packet)).unwrap();
            codec.decode_args(call.raw, call.count, call.args).unwrap()
        })
    });
    let json = json8();
    let text = serde_json::to_vec(&json).unwrap();
    g.bench_function("serde_json_encode", |b| {
        b.iter(|| serde_json::to_vec(black_box(&json)).unwrap())
    });
    g.bench_function("serde_json_decode", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(&text)).unwrap())
    });
    g.finish();
}

fn packed_vector2(c: &mut Criterion) {
    let codec = Codec::default();
    let v = Variant::PackedVector2Array(
        (0..1000)
            .map(|i| Vector2::new(i as f64 * 0.5, -(i as f64)))
            .collect(),
    );
    let bytes = codec.to_bytes(&v).unwrap();
    let mut g = c.benchmark_group("packed_vector2_1000");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("encode", |b| {
        b.iter(|| codec.to_bytes(black_box(&v)).unwrap())
    });
    g.bench_function("decode", |b| {
        b.iter(|| codec.decode_exact(black_box(&bytes)).unwrap())
    });
    let json: Vec<[f32; 2]> = (0..1000).map(|i| [i as f32 * 0.5, -(i as f32)]).collect();
    let text = serde_json::to_vec(&json).unwrap();
    g.bench_function("serde_json_encode", |b| {
        b.iter(|| serde_json::to_vec(black_box(&json)).unwrap())
    });
    g.bench_function("serde_json_decode", |b| {
        b.iter(|| serde_json::from_slice::<Vec<[f32; 2]>>(black_box(&text)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, rpc, packed_vector2);
criterion_main!(benches);
