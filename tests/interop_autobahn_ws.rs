//! Interop with autobahn-python over WebSocket: tests/interop/autobahn_scenarios.py (the same
//! scenarios as tests/interop_autobahn.rs runs over RawSocket) with `--transport websocket`,
//! once per subprotocol (wamp.2.json, wamp.2.msgpack, wamp.2.cbor), against a `wampmesh node`
//! whose only listener is `transport = "websocket"`; and tests/interop/autobahn_shared_port.py:
//! a RawSocket and a WebSocket autobahn session on that one port exchanging events and calls.
//!
//! The Python side is the pinned venv `target/interop-venv` (tests/common). A missing Python is
//! a failure, not a skip. Run: `cargo test --release --test interop_autobahn_ws`.

mod common;

use std::time::Duration;

use common::{free_port, interop};

const SCRIPT_TIMEOUT: Duration = Duration::from_secs(90);

/// Runs one script against a fresh node whose only listener is `websocket`.
fn run_script(label: &str, script: &str, args: &[&str]) {
    let port = free_port();
    let config = interop::scenario_node_config("interop-ws", "websocket", port);
    interop::run_script(label, &config, port, script, args, SCRIPT_TIMEOUT, true);
}

fn run_scenarios(serializer: &str) {
    let args = ["--transport", "websocket", "--serializer", serializer];
    run_script(
        &format!("interop-autobahn-ws-{serializer}"),
        "autobahn_scenarios.py",
        &args,
    );
}

#[test]
fn autobahn_python_websocket_json() {
    run_scenarios("json");
}

#[test]
fn autobahn_python_websocket_msgpack() {
    run_scenarios("msgpack");
}

#[test]
fn autobahn_python_websocket_cbor() {
    run_scenarios("cbor");
}

#[test]
fn autobahn_python_rawsocket_and_websocket_share_one_port() {
    run_script(
        "interop-autobahn-shared-port",
        "autobahn_shared_port.py",
        &[],
    );
}
