//! Fuzz target: a router session (`session::serve` over an in-memory duplex, fresh realm per
//! run) fed a valid handshake and HELLO, then the frames the input describes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wampmesh_fuzz::session::frames(data));
