//! Fuzz drivers for wsmp-scene: the Variant decoders and the SceneMultiplayer
//! packet parser. Each takes arbitrary bytes, must never panic, and checks
//! the invariants it can. Shared by the libFuzzer targets (`fuzz_targets/`)
//! and by `scene/tests/fuzz_corpus.rs`, which replays the committed corpora
//! on stable (this file is included there with `#[path]`).

extern crate alloc;

use alloc::vec::Vec;

use bytes::Bytes;
use wsmp_core::Timestamp;
use wsmp_scene::multiplayer::{Config, SceneMultiplayer, Signature};
use wsmp_scene::packet::{self, ConfirmPath, Message, RemoteCall, SimplifyPath};
use wsmp_scene::variant::{Codec, RealWidth, Variant};

/// Target names, as used for `fuzz/corpus/<name>/`.
pub const TARGETS: &[&str] = &["variant_decode", "scene_packet"];

/// Runs the driver called `name` on `data`.
pub fn run(name: &str, data: &[u8]) {
    match name {
        "variant_decode" => variant_decode(data),
        "scene_packet" => scene_packet(data),
        other => panic!("unknown fuzz target {other}"),
    }
}

/// Re-encoding a decoded value and decoding that gives the same value (its
/// encoding is a fixed point).
fn stable(codec: &Codec, v: &Variant, compressed: bool) {
    let mut once = Vec::new();
    let r = if compressed {
        codec.encode_compressed(v, &mut once)
    } else {
        codec.encode(v, &mut once)
    };
    // Values from the decoder are always encodable (depth and sizes came
    // from an input of this size).
    assert!(r.is_ok(), "decoded value does not encode: {r:?}");
    let (again, used) = if compressed {
        codec.decode_compressed(&once)
    } else {
        codec.decode(&once)
    }
    .expect("re-encoded value decodes");
    assert_eq!(used, once.len());
    let mut twice = Vec::new();
    if compressed {
        codec
            .encode_compressed(&again, &mut twice)
            .expect("encodes");
    } else {
        codec.encode(&again, &mut twice).expect("encodes");
    }
    assert_eq!(once, twice, "encoding is not a fixed point");
}

/// Plain and compressed decoders, both `real_t` widths, and RPC argument lists.
pub fn variant_decode(data: &[u8]) {
    for real in [RealWidth::F32, RealWidth::F64] {
        let codec = Codec::with_real(real);
        if let Ok((v, used)) = codec.decode(data) {
            assert!(used <= data.len() && used >= 4);
            stable(&codec, &v, false);
        }
        if let Ok((v, used)) = codec.decode_compressed(data) {
            assert!(used <= data.len() && used >= 1);
            stable(&codec, &v, true);
        }
    }
    if let Some((&count, rest)) = data.split_first() {
        let codec = Codec::default();
        if let Ok(args) = codec.decode_args(false, count, rest) {
            assert_eq!(args.len(), usize::from(count));
            let enc = codec.encode_args(&args).expect("encodes");
            let back = codec
                .decode_args(enc.raw, enc.count, &enc.bytes)
                .expect("decodes");
            // multiplayer_api.cpp decode_and_decompress_variants: raw and
            // empty is no argument, so a single empty PackedByteArray (sent
            // raw, as the engine does) arrives as none.
            let empty_bytes = matches!(&args[..], [Variant::PackedByteArray(b)] if b.is_empty());
            if empty_bytes {
                assert!(back.is_empty());
            } else {
                assert_eq!(back.len(), args.len());
            }
        }
    }
}

/// The packet parsers, their re-encodings, and a SceneMultiplayer fed the
/// bytes directly and inside a RELAY.
pub fn scene_packet(data: &[u8]) {
    let _ = packet::parse(data);
    let _ = packet::simplify_path_cache_id(data);
    match packet::parse_command(data) {
        Ok(Message::RemoteCall(call)) => {
            let again = call.encode();
            let back = RemoteCall::parse(&again).expect("re-encoded RPC parses");
            assert_eq!(back, call);
        }
        // Flag bits of byte 0 are ignored for commands 1-3 (the engine masks
        // the command with CMD_MASK); the rest is read exactly.
        Ok(Message::SimplifyPath(sp)) => {
            assert_eq!(sp.encode()[1..], data[1..], "SIMPLIFY_PATH parse is exact");
            assert_eq!(SimplifyPath::parse(data), Ok(sp));
        }
        Ok(Message::ConfirmPath(cp)) => {
            assert_eq!(ConfirmPath::parse(&cp.encode()), Ok(cp));
        }
        Ok(Message::Raw(d)) => assert_eq!(packet::raw(d)[1..], data[1..]),
        Ok(Message::Replication(..)) | Err(_) => {}
    }
    // The state machine: peer 2 admitted with a registered node, peer 3 too.
    let mut scene = SceneMultiplayer::new(Config::default(), 0u32);
    let node = scene
        .register_node("/root/Main", &["alpha", "beta", "gamma", "delta"])
        .expect("registers");
    for m in ["alpha", "beta", "gamma"] {
        scene
            .on_rpc(node, m, Signature::any(), |n: &mut u32, ctx, call| {
                *n += 1;
                let _ = ctx.rpc(call.from, call.node, "delta", &call.args);
            })
            .expect("handler");
    }
    let now = Timestamp::ZERO;
    scene.peer_connected(now, 2);
    scene.peer_connected(now, 3);
    scene.packet(now, 2, Bytes::copy_from_slice(data));
    let mut relayed = Vec::from(&[7u8, 3, 0, 0, 0, 0][..]);
    relayed.extend_from_slice(data);
    scene.packet(now, 3, Bytes::from(relayed));
    while scene.poll_action().is_some() {}
    while scene.poll_event().is_some() {}
}
