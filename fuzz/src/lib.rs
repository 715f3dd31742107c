//! Fuzz drivers for wsmp-core (`drivers.rs`), wsmp-scene (`scene_drivers.rs`)
//! and the relay's per-room logic (`relay_drivers.rs`).
#![forbid(unsafe_code)]

pub mod drivers;
pub mod relay_drivers;
pub mod scene_drivers;
pub mod host_ops;
