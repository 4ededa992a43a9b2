//! The fuzz harnesses: each takes arbitrary bytes and panics only when it finds a bug. The
//! cargo-fuzz targets call them, and `tests/fuzz_regressions.rs` includes the same files so
//! every crash found stays a test.

pub mod rawsocket;
pub mod serializers;
pub mod session;
