//! serde support: RPC arguments into user types and back; handlers typed with
//! serde drop calls that do not deserialize.
#![allow(missing_docs, clippy::unwrap_used)]

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use wsmp_core::Timestamp;
use wsmp_scene::multiplayer::{Action, Config, DropReason, SceneMultiplayer};
use wsmp_scene::serde::{from_args, from_variant, to_args, to_variant};
use wsmp_scene::variant::{Array, Codec, Dictionary, Variant, Vector2};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Player {
    id: i64,
    name: String,
    pos: Vector2,
    tags: Vec<String>,
    hp: Option<f32>,
    kind: Kind,
    raw: Variant,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Kind {
    Human,
    Bot { level: u8 },
}

#[test]
fn structs_round_trip_through_variants_and_bytes() {
    let p = Player {
        id: 7,
        name: "ann".into(),
        pos: Vector2::new(1.5, -2.0),
        tags: vec!["a".into(), "b".into()],
        hp: None,
        kind: Kind::Bot { level: 3 },
        raw: Variant::PackedVector2Array(vec![Vector2::new(0.25, 4.0)]),
    };
    let v = to_variant(&p).unwrap();
    let Variant::Dictionary(d) = &v else {
        panic!("{v:?}")
    };
    assert_eq!(d.get(&"name".into()), Some(&Variant::String("ann".into())));
    assert_eq!(
        d.get(&"pos".into()),
        Some(&Variant::Vector2(Vector2::new(1.5, -2.0)))
    );
    assert_eq!(d.get(&"hp".into()), Some(&Variant::Nil));
    // Through the wire form and back.
    let bytes = Codec::default().to_bytes(&v).unwrap();
    let back: Player = from_variant(&Codec::default().decode_exact(&bytes).unwrap()).unwrap();
    assert_eq!(back, p);
    assert_eq!(from_variant::<Kind>(&"Human".into()).unwrap(), Kind::Human);
}

#[test]
fn argument_lists_as_tuples() {
    let args = vec![Variant::Int(3), "x".into(), Vector2::new(1.0, 2.0).into()];
    let (n, s, v): (u8, String, Vector2) = from_args(&args).unwrap();
    assert_eq!((n, s.as_str(), v), (3, "x", Vector2::new(1.0, 2.0)));
    // A Vector2 also reads as two floats; packed arrays as sequences.
    let (_, _, xy): (u8, String, [f64; 2]) = from_args(&args).unwrap();
    assert_eq!(xy, [1.0, 2.0]);
    let (ints,): (Vec<i32>,) = from_args(&[Variant::PackedInt32Array(vec![1, 2])]).unwrap();
    assert_eq!(ints, [1, 2]);
    // Counts and types are checked.
    assert!(from_args::<(u8, String)>(&args).is_err(), "extra argument");
    assert!(
        from_args::<(u8, String, Vector2, u8)>(&args).is_err(),
        "missing argument"
    );
    assert!(from_args::<(String,)>(&[Variant::Int(1)]).is_err());
    assert!(
        from_args::<(u8,)>(&[Variant::Int(300)]).is_err(),
        "out of range"
    );
    assert_eq!(to_args(&(3u8, "x", Vector2::new(1.0, 2.0))).unwrap(), args);
    assert_eq!(to_args(&()).unwrap(), Vec::<Variant>::new());
    let nested = to_args(&(vec![1, 2],)).unwrap();
    assert_eq!(
        nested,
        vec![Variant::Array(Array::new(vec![1.into(), 2.into()]))]
    );
}

#[test]
fn serde_handlers_get_typed_arguments_and_drop_the_rest() {
    let mut scene = SceneMultiplayer::new(Config::default(), Vec::<(i32, String, Vector2)>::new());
    let node = scene
        .register_node("/root/Main", &["spawn", "spawned"])
        .unwrap();
    scene
        .on_rpc_serde(
            node,
            "spawn",
            move |log: &mut Vec<_>, ctx, from, (name, at): (String, Vector2)| {
                log.push((from, name.clone(), at));
                ctx.rpc_serde(from, node, "spawned", &(name, at)).unwrap();
            },
        )
        .unwrap();
    let now = Timestamp::ZERO;
    scene.peer_connected(now, 5);
    // spawn("a", Vector2(1, 2)) with the inline path; method id 0.
    let mut call = vec![0x20, 0, 0, 0, 0, 0, 2];
    call.extend([4, 0, 0, 0, 1, 0, 0, 0, b'a', 0, 0, 0]);
    call.extend([5, 0, 0, 0, 0, 0, 0x80, 0x3f, 0, 0, 0, 0x40]);
    let ofs = (call.len() as u32 | 0x8000_0000).to_le_bytes();
    call[1..5].copy_from_slice(&ofs);
    call.extend(b"Main\0");
    scene.packet(now, 5, Bytes::from(call.clone()));
    assert_eq!(
        scene.state(),
        &vec![(5, "a".to_string(), Vector2::new(1.0, 2.0))]
    );
    let sent: Vec<Action> = std::iter::from_fn(|| scene.poll_action()).collect();
    assert_eq!(sent.len(), 2, "path offer + spawned call: {sent:?}");
    // spawn(5): does not deserialize → dropped and counted.
    let mut bad = vec![0xa0, 0, 0, 0, 0, 0];
    bad[0] = 0x20;
    bad.extend([1, 2, 5]);
    let ofs = (bad.len() as u32 | 0x8000_0000).to_le_bytes();
    bad[1..5].copy_from_slice(&ofs);
    bad.extend(b"Main\0");
    scene.packet(now, 5, Bytes::from(bad));
    assert_eq!(scene.state().len(), 1);
    assert_eq!(scene.stats().dropped(DropReason::WrongArgType), 1);
    assert_eq!(scene.stats().rpcs_handled, 1);
    let _ = Dictionary::new();
}
