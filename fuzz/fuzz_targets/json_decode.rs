//! Fuzz target: `Serializer::Json.decode` on arbitrary bytes; what decodes must encode and
//! decode back to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wampmesh::wamp::Serializer;

fuzz_target!(|data: &[u8]| wampmesh_fuzz::serializers::round_trip(Serializer::Json, data));
