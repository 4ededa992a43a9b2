//! Interop with autobahn-python over WebSocket: tests/interop/autobahn_scenarios.py (the same
//! scenarios as tests/interop_autobahn.rs runs over RawSocket) with `--transport websocket`,
//! once per subprotocol (wamp.2.json, wamp.2.msgpack, wamp.2.cbor), against a `wampmesh node`
//! whose only listener is `transport = "websocket"`; and tests/interop/autobahn_shared_port.py:
//! a RawSocket and a WebSocket autobahn session on that one port exchanging events and calls.
//!
//! The Python side is the pinned venv `target/interop-venv` (tests/common). A missing Python is
//! a failure, not a skip. Run: `cargo test --release --test interop_autobahn_ws`.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{
    free_port, interop_dir, localhost, python_venv, run_with_timeout, venv_python, NodeProcess,
};

const SCRIPT_TIMEOUT: Duration = Duration::from_secs(90);

fn node_config(port: u16) -> String {
    format!(
        r#"[node]
id = "interop-ws"

[[listen]]
transport = "websocket"
address = "127.0.0.1:{port}"
serializers = ["json", "msgpack", "cbor"]
[listen.auth.anonymous]
role = "anonymous"
[listen.auth.ticket.principals.alice]
ticket = "secret-ticket"
role = "user"
[listen.auth.wampcra.users.bob]
secret = "bob-secret"
role = "user"
[listen.auth.wampcra.users.carol]
secret = "carol-secret"
role = "user"
salt = "salt123"
iterations = 1000
keylen = 32

[[realm]]
name = "realm1"
[[realm.role]]
name = "anonymous"
permissions = [{{ uri = "", match = "prefix", call = true, register = true, publish = true, subscribe = true }}]
[[realm.role]]
name = "user"
permissions = [{{ uri = "", match = "prefix", call = true, register = true, publish = true, subscribe = true }}]
"#
    )
}

/// Runs one script against a fresh node; asserts it passed and printed its summary.
fn run_script(label: &str, script: &str, args: &[&str]) {
    let python = venv_python(&python_venv());
    let port = free_port();
    let mut node = NodeProcess::start(label, &node_config(port), localhost(port));
    let finished = run_with_timeout(
        Command::new(&python)
            .arg(interop_dir().join(script))
            .args(["--port", &port.to_string()])
            .args(args)
            .env("PYTHONUNBUFFERED", "1"),
        SCRIPT_TIMEOUT,
    );
    let failed: Vec<&str> = finished
        .stdout
        .lines()
        .filter(|line| line.starts_with("FAIL"))
        .collect();
    assert!(
        finished.success() && finished.stdout.contains("all checks passed"),
        "{label}: {} failed check(s)\n{}\n\n{}",
        failed.len(),
        failed.join("\n"),
        finished.report()
    );
    println!("{}", finished.stdout);
    assert!(node.is_running(), "the node exited during {label}");
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
