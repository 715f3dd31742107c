//! Tests of the [`Connection`](super::Connection) state machine.
//!
//! - [`harness`]: a deterministic client ↔ server rig (in-memory pipes,
//!   virtual clock, pinned RNG) plus raw-frame helpers.
//! - `mirror`: one named test per RFC 6455 rule, over hand-written bytes
//!   with a pinned mask (in the style of Python websockets'
//!   `tests/test_protocol.py`).
//! - `props`: property tests (round trips, chunking invariance, random
//!   operation sequences with memory bounds).

extern crate std;

mod config_checks;
#[cfg(feature = "deflate")]
mod deflate;
pub(crate) mod harness;
mod mirror;
mod props;
