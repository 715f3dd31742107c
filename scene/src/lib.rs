//! # wsmp-scene
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;
#[cfg(any(test, feature = "tokio"))]
extern crate std;

pub mod checksum;
pub mod multiplayer;
pub mod packet;
#[cfg(feature = "serde")]
pub mod serde;
#[cfg(feature = "tokio")]
pub mod tokio;
pub mod variant;

pub use variant::{Codec, DecodeError, EncodeError, RealWidth, Variant, VariantType};
