//! Fuzz target: the RawSocket handshake on the first 4 bytes, then the frame codec on the rest
//! in arbitrary chunk splits.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wampmesh_fuzz::rawsocket::frames(data));
