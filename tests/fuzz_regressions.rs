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

/// A session script: the mode byte (`j` JSON client, `J` JSON router link), then one line each.
fn script(mode: u8, lines: &[&str]) -> Vec<u8> {
    let mut script = vec![mode];
    script.extend_from_slice(lines.join("\n").as_bytes());
    script
}

#[test]
fn harnesses_accept_their_seeds() {
    rawsocket_harness::frames(b"\x7f\xf1\x00\x00\xf7\x00\x00\x00\x03[1]\x01\x00\x00\x00");
    serializers_harness::round_trip(Serializer::Json, br#"[16,1,{},"com.t",[1,"\u0000AQI="]]"#);
    session_harness::frames(&script(
        b'j',
        &[
            r#"[32,1,{},"com.t"]"#,
            r#"[16,2,{"acknowledge":true,"exclude_me":false},"com.t",[1]]"#,
        ],
    ));
}

/// json_decode, found by fuzzing: serde_json's default float parser is not correctly rounded,
/// so a large number is read one ULP off, written back in its shortest form, and read as a
/// different float: the router alters numbers it forwards. Fix: `serde_json` feature
/// `float_roundtrip` in Cargo.toml.
#[test]
fn json_float_survives_round_trip() {
    serializers_harness::round_trip(Serializer::Json, b"[36,7,5,{},[184447074704763790551]]");
}

/// session_frames (found reading src/router/mesh.rs, confirmed through this harness): an
/// interest advertisement from a router link with `hops` = 2^64-1 overflowed `hops + 1` in
/// `Mesh::handle_ad`, killing the realm task in builds with overflow checks and advertising
/// 0 hops (a false shortest route) without them. Fixed by the `MAX_HOPS` bound.
#[test]
fn link_advertisement_with_maximal_hops() {
    let ad = |hops: &str| {
        format!(
            r#"[16,2,{{"_wampmesh":{{"type":"ia","origin":"nodeB","epoch":1,"seq":1,"hops":{hops},"interest":[]}}}},"wampmesh.link.channel"]"#
        )
    };
    let channel = r#"[32,1,{},"wampmesh.link.channel"]"#;
    let max = "18446744073709551615";
    session_harness::frames(&script(b'J', &[channel, &ad(max)]));
    // The same version again from the same link, first with a short route, then the longest.
    session_harness::frames(&script(b'J', &[channel, &ad("1"), &ad(max)]));
}
