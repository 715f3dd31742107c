//! Fuzz drivers for wsmp-core (`drivers.rs`) and wsmp-scene (`scene_drivers.rs`).
#![forbid(unsafe_code)]

pub mod drivers;
pub mod scene_drivers;
pub mod host_ops;
