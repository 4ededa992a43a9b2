//! Inputs the fuzz targets (fuzz/, `scripts/fuzz.sh`) once crashed on, replayed through the very
//! same harnesses as ordinary tests, plus one seed per harness so the harnesses stay in step
//! with the crate.

#[path = "../fuzz/src/rawsocket.rs"]
mod rawsocket_harness;
#[path = "../fuzz/src/serializers.rs"]
mod serializers_harness;
#[path = "../fuzz/src/session.rs"]
mod session_harness;

use wampmesh::wamp::Serializer;

/// A JSON session script: mode byte `j`, then one message per line.
fn json_script(lines: &[&str]) -> Vec<u8> {
    let mut script = b"j".to_vec();
    script.extend_from_slice(lines.join("\n").as_bytes());
    script
}

#[test]
fn harnesses_accept_their_seeds() {
    rawsocket_harness::frames(b"\x7f\xf1\x00\x00\xf7\x00\x00\x00\x03[1]\x01\x00\x00\x00");
    serializers_harness::round_trip(Serializer::Json, br#"[16,1,{},"com.t",[1,"\u0000AQI="]]"#);
    session_harness::frames(&json_script(&[r#"[32,1,{},"com.t"]"#, r#"[16,2,{"acknowledge":true,"exclude_me":false},"com.t",[1]]"#]));
}
