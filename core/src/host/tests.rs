//! Host tests: an in-memory network of one server [`Host`] and many client
//! hosts, wired by byte pipes and stepped on a virtual clock.

mod adopt;
mod close_code;
#[cfg(feature = "deflate")]
mod deflate;
mod harness;
mod lifecycle;
mod limits;
mod prop;
mod released;
mod routing;
