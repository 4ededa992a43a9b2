//! WAMP-Cryptosign interop with a real third-party client: autobahn-python's `AuthCryptoSign`
//! (signing with PyNaCl/libsodium) runs tests/interop/autobahn_cryptosign.py against a
//! `wampmesh node`, once per serializer.
//!
//! The Python side comes from the pinned venv `target/interop-venv` (tests/common, rebuilt when
//! tests/interop/requirements.txt changes; PyNaCl is pinned there). A missing Python or PyNaCl
//! is a failure, not a skip. Run: `cargo test --release --test interop_autobahn_cryptosign`.

mod common;

use std::time::Duration;

use common::{free_port, interop, scratch_dir};

const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

/// RFC 8032 TEST 1 / TEST 2 public keys; the script signs with their seeds.
const ALICE_PUBKEY: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
const BOB_PUBKEY: &str = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";

fn node_config(port: u16, bob_keys: &std::path::Path) -> String {
    format!(
        r#"[node]
id = "interop-cryptosign"

[[listen]]
transport = "tcp"
address = "127.0.0.1:{port}"
serializers = ["json", "msgpack", "cbor"]
[listen.auth.cryptosign.principals.alice]
authorized_keys = ["{ALICE_PUBKEY}"]
role = "user"
[listen.auth.cryptosign.principals.bob]
authorized_keys_file = {bob_keys:?}
role = "user"

[[realm]]
name = "realm1"
[[realm.role]]
name = "user"
permissions = [{{ uri = "", match = "prefix", call = true, register = true, publish = true, subscribe = true }}]
"#,
        bob_keys = bob_keys.display().to_string()
    )
}

fn run_autobahn(serializer: &str) {
    let dir = scratch_dir(&format!("interop-cryptosign-{serializer}"));
    let bob_keys = dir.join("bob.ed25519.pub");
    std::fs::write(&bob_keys, format!("# bob\n{BOB_PUBKEY} bob\n")).expect("write keys file");
    let port = free_port();
    let stdout = interop::run_script(
        &format!("interop-cryptosign-{serializer}"),
        &node_config(port, &bob_keys),
        port,
        "autobahn_cryptosign.py",
        &["--serializer", serializer],
        SCRIPT_TIMEOUT,
        false,
    );
    let passed = stdout.lines().filter(|l| l.starts_with("PASS")).count();
    assert!(passed >= 14, "fewer checks ran than expected:\n{stdout}");
}

#[test]
fn autobahn_cryptosign_json() {
    run_autobahn("json");
}

#[test]
fn autobahn_cryptosign_msgpack() {
    run_autobahn("msgpack");
}

#[test]
fn autobahn_cryptosign_cbor() {
    run_autobahn("cbor");
}
