//! Interop with Node `ws` (both directions).
#![allow(missing_docs)]

wsmp_tests::interop_tests!(wsmp_tests::Peer::Node);
