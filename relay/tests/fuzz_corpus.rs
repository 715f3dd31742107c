//! Replays every committed seed of the relay fuzz target
//! (`fuzz/corpus/relay_packets/*`) through the same driver the libFuzzer
//! target uses, so CI covers them on stable.

#![allow(missing_docs, unreachable_pub, clippy::unwrap_used)]

#[path = "../../fuzz/src/relay_drivers.rs"]
mod relay_drivers;

use std::path::PathBuf;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus")
}

#[test]
fn every_corpus_file_replays_without_panicking() {
    let mut total = 0;
    for target in relay_drivers::TARGETS {
        let dir = corpus_dir().join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("dir entry").path())
            .collect();
        files.sort();
        assert!(files.len() >= 8, "too few seeds for {target}");
        for path in files {
            let data = std::fs::read(&path).expect("read seed");
            relay_drivers::run(target, &data);
            total += 1;
        }
    }
    assert!(total >= relay_drivers::TARGETS.len());
}

#[test]
fn driver_survives_simple_edge_inputs() {
    for target in relay_drivers::TARGETS {
        for data in [
            &b""[..],
            b"\x00",
            b"\xff\xff",
            &[0x81; 64],
            &[0u8; 300],
            &[0x01; 300],
        ] {
            relay_drivers::run(target, data);
        }
    }
}

/// A deterministic pseudo-random sweep (xorshift), so a plain `cargo test`
/// explores more than the seeds.
#[test]
fn driver_survives_a_pseudo_random_sweep() {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..2000 {
        let mut data = Vec::with_capacity(256);
        for _ in 0..256 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            data.push((x >> 24) as u8);
        }
        relay_drivers::run("relay_packets", &data);
    }
}
