//! Every row of ../shared/spec/scene-rpc-vectors.md (RPC, SIMPLIFY_PATH and
//! RAW packets captured from a Godot 4.6 engine) as a named test: the packet
//! parses to the expected fields and arguments, and encoding those gives the
//! engine's bytes again.
#![allow(missing_docs, clippy::unwrap_used)]

use wsmp_scene::checksum::{rpc_checksum, sorted_method_names};
use wsmp_scene::packet::{self, Message, NodeRef, Packet, RemoteCall, SimplifyPath};
use wsmp_scene::variant::{Array, Codec, Dictionary, Variant, Vector2};

/// The caller, peer 0x0451fd26.
const SOURCE: i32 = 0x0451_fd26;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The RELAY header B received, then the inner packet.
fn inner(row: &str) -> Vec<u8> {
    let bytes = hex(row);
    match packet::parse(&bytes).unwrap() {
        Packet::Relay { target, inner } => {
            assert_eq!(target, SOURCE, "relay header carries the source");
            inner.to_vec()
        }
        other => panic!("not a relay: {other:?}"),
    }
}

/// The RPC parses to (node, method, args) and re-encodes to the same bytes.
fn rpc(row: &str, node: NodeRef<'_>, method: u16, args: &[Variant]) {
    let bytes = inner(row);
    let call = RemoteCall::parse(&bytes).unwrap();
    assert_eq!(call.node, node);
    assert_eq!(call.method, method);
    let codec = Codec::default();
    let decoded = codec.decode_args(call.raw, call.count, call.args).unwrap();
    assert_eq!(decoded, args);
    // Encode from the values, not from the parsed bytes.
    let encoded = codec.encode_args(args).unwrap();
    assert_eq!(RemoteCall::new(node, method, &encoded).encode(), bytes);
    assert_eq!(
        packet::parse_command(&bytes).unwrap(),
        Message::RemoteCall(call)
    );
}

fn offer(row: &str, names: &[&str], cache_id: u32, path: &str) {
    let bytes = inner(row);
    let sp = SimplifyPath::parse(&bytes).unwrap();
    let checksum = rpc_checksum(&sorted_method_names(names));
    assert_eq!(sp.checksum, checksum);
    assert_eq!(sp.cache_id, cache_id);
    assert_eq!(sp.path, path);
    let built = SimplifyPath {
        checksum: &checksum,
        cache_id,
        path,
    };
    assert_eq!(built.encode(), bytes);
}

const MAIN: &[&str] = &["alpha", "beta", "gamma", "delta"];
const OTHER: &[&str] = &["zed", "apple", "mango"];

#[test]
fn row_1a_simplify_path_main() {
    offer(
        "070326fd5104 01 6233633665663566383937313735373533326264393564336361666132393735 00 01000000 4d61696e00",
        MAIN,
        1,
        "Main",
    );
}

#[test]
fn row_1b_alpha_with_inline_path() {
    rpc(
        "070326fd5104 a006000080004d61696e00",
        NodeRef::Path("Main"),
        0,
        &[],
    );
}

#[test]
fn row_2_beta_1() {
    rpc(
        "070326fd5104 000101010201",
        NodeRef::Cached(1),
        1,
        &[Variant::Int(1)],
    );
}

#[test]
fn row_3_beta_str_vector2() {
    rpc(
        "070326fd5104 00010102040000000300000073747200050000000000803f00000040",
        NodeRef::Cached(1),
        1,
        &["str".into(), Vector2::new(1.0, 2.0).into()],
    );
}

#[test]
fn row_4_gamma_byte_only() {
    rpc(
        "070326fd5104 800103010203",
        NodeRef::Cached(1),
        3,
        &[Variant::PackedByteArray(vec![1, 2, 3])],
    );
}

#[test]
fn row_5_delta_dictionary() {
    let dict = Dictionary::from_entries(vec![(
        "k".into(),
        Array::new(vec![Variant::Int(1), Variant::Float(2.5)]).into(),
    )]);
    rpc(
        "070326fd5104 000102011b0000000100000004000000010000006b0000001c0000000200000002000000010000000300000000002040",
        NodeRef::Cached(1),
        2,
        &[dict.into()],
    );
}

#[test]
fn row_6a_simplify_path_main_other() {
    offer(
        "070326fd5104 01 6361636365636137396262633135316332626638363337326636313839663434 00 02000000 4d61696e2f4f7468657200",
        OTHER,
        2,
        "Main/Other",
    );
}

#[test]
fn row_6b_zed_minus_5_with_inline_path() {
    rpc(
        "070326fd5104 2009000080020102fb4d61696e2f4f7468657200",
        NodeRef::Path("Main/Other"),
        2,
        &[Variant::Int(-5)],
    );
}

#[test]
fn row_7_mango_3000000000() {
    rpc(
        "070326fd5104 00020101c2005ed0b200000000",
        NodeRef::Cached(2),
        1,
        &[Variant::Int(3_000_000_000)],
    );
}

#[test]
fn row_8_alpha_no_arguments() {
    rpc("070326fd5104 800100", NodeRef::Cached(1), 0, &[]);
}

#[test]
fn row_9_beta_true_null() {
    rpc(
        "070326fd5104 000101028100000000",
        NodeRef::Cached(1),
        1,
        &[Variant::Bool(true), Variant::Nil],
    );
}

#[test]
fn row_10_zed_x() {
    rpc(
        "070326fd5104 00020201040000000100000078000000",
        NodeRef::Cached(2),
        2,
        &["x".into()],
    );
}

#[test]
fn row_11_send_bytes() {
    let bytes = inner("070326fd5104 03090807");
    assert_eq!(
        packet::parse_command(&bytes).unwrap(),
        Message::Raw(&[9, 8, 7])
    );
    assert_eq!(packet::raw(&[9, 8, 7]), bytes);
}

#[test]
fn confirm_path_answers_b_sent() {
    // After each offer B answered 07 03 <source> 02 01 <cache id>.
    for id in [1u32, 2] {
        let answer = packet::ConfirmPath {
            valid: true,
            cache_id: id,
        }
        .encode();
        let relayed = packet::relay(SOURCE, &answer);
        let mut expected = hex("070326fd5104 0201");
        expected.extend_from_slice(&id.to_le_bytes());
        assert_eq!(&relayed[..], &expected[..]);
    }
}
