//! Replays every committed wsmp-scene fuzz seed (`fuzz/corpus/<target>/*`)
//! through the same drivers the libFuzzer targets use, so CI covers them on
//! stable.
#![allow(missing_docs, unreachable_pub, clippy::unwrap_used)]

#[path = "../../fuzz/src/scene_drivers.rs"]
mod scene_drivers;

use std::path::PathBuf;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus")
}

#[test]
fn every_corpus_file_replays_without_panicking() {
    for target in scene_drivers::TARGETS {
        let dir = corpus_dir().join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(files.len() >= 10, "too few seeds for {target}");
        for path in files {
            let data = std::fs::read(&path).unwrap();
            scene_drivers::run(target, &data);
        }
    }
}

#[test]
fn drivers_survive_simple_edge_inputs() {
    for target in scene_drivers::TARGETS {
        for data in [
            &b""[..],
            b"\x00",
            b"\xff\xff",
            &[0x1c; 64],
            &[0u8; 300],
            &[7, 3, 0, 0, 0, 0, 7],
        ] {
            scene_drivers::run(target, data);
        }
    }
}
