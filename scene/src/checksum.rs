//! The RPC checksum of a node (modules/multiplayer/scene_rpc_interface.cpp
//! `get_rpc_md5`): the MD5, as 32 lowercase hex characters, of the node's RPC
//! method names concatenated in id order (their sorted order).

use alloc::string::String;
use alloc::vec::Vec;

use md5::{Digest, Md5};

/// Sorts RPC method names into id order: the engine sorts them with
/// `String <`, which compares code points, as `str`'s `Ord` does for UTF-8
/// (scene_rpc_interface.cpp `_sort_rpc_names`, "Ensure ID order").
pub fn sorted_method_names<S: AsRef<str>>(names: &[S]) -> Vec<String> {
    let mut v: Vec<String> = names.iter().map(|s| String::from(s.as_ref())).collect();
    v.sort();
    v
}

/// `get_rpc_md5` of a node whose RPC names, in id order, are `names`.
pub fn rpc_checksum<S: AsRef<str>>(names: &[S]) -> [u8; 32] {
    let mut md5 = Md5::new();
    for n in names {
        md5.update(n.as_ref().as_bytes());
    }
    let digest = md5.finalize();
    let mut hex = [0u8; 32];
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in digest.iter().enumerate() {
        hex[2 * i] = DIGITS[usize::from(b >> 4)];
        hex[2 * i + 1] = DIGITS[usize::from(b & 0xF)];
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_from_the_spec() {
        // spec/scene-rpc-vectors.md: md5("alphabetadeltagamma"), md5("applemangozed").
        let main = sorted_method_names(&["gamma", "alpha", "delta", "beta"]);
        assert_eq!(main, ["alpha", "beta", "delta", "gamma"]);
        assert_eq!(&rpc_checksum(&main), b"b3c6ef5f8971757532bd95d3cafa2975");
        let other = sorted_method_names(&["zed", "apple", "mango"]);
        assert_eq!(&rpc_checksum(&other), b"cacceca79bbc151c2bf86372f6189f44");
        // A node without RPCs: md5("").
        assert_eq!(
            &rpc_checksum::<&str>(&[]),
            b"d41d8cd98f00b204e9800998ecf8427e"
        );
    }

    #[test]
    fn sorting_is_by_code_point() {
        assert_eq!(
            sorted_method_names(&["b", "B", "é", "a"]),
            ["B", "a", "b", "é"]
        );
    }
}
