//! Replays every committed fuzz seed (`fuzz/corpus/<target>/*`) through the
//! same drivers the libFuzzer targets use, so CI covers them on stable.

#![allow(missing_docs, unreachable_pub)]

#[path = "../../fuzz/src/drivers.rs"]
mod drivers;
#[path = "../../fuzz/src/host_ops.rs"]
mod host_ops;

use std::path::PathBuf;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus")
}

#[test]
fn every_corpus_file_replays_without_panicking() {
    let mut total = 0;
    for target in drivers::TARGETS {
        let dir = corpus_dir().join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("dir entry").path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no seeds for {target}");
        for path in files {
            let data = std::fs::read(&path).expect("read seed");
            drivers::run(target, &data);
            total += 1;
        }
    }
    assert!(total >= drivers::TARGETS.len());
}

#[test]
fn drivers_survive_simple_edge_inputs() {
    for target in drivers::TARGETS {
        for data in [&b""[..], b"\x00", b"\xff\xff", &[0x81; 64], &[0u8; 300]] {
            drivers::run(target, data);
        }
    }
}
