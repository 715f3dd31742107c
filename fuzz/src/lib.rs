//! Fuzz drivers for wsmp-core (see `drivers.rs`).
#![forbid(unsafe_code)]

pub mod drivers;
pub mod host_ops;
