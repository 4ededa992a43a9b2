//! Interop with autobahn-js (npm `autobahn`, pinned in tests/interop/js/package-lock.json) in
//! Node.js over WebSocket: tests/interop/js/autobahn_node.js runs pub/sub, RPC, callee errors,
//! ticket and WAMP-CRA auth against an in-process node, once per serializer (autobahn-js ships
//! JSON, MessagePack and CBOR), and reaches a RawSocket client of this test across transports:
//! it calls `rust.echo` registered over RawSocket and publishes to `rust.from_js`, which the
//! RawSocket client must receive.
//!
//! The packages are installed under `target/node-interop/` with `npm ci` on first use
//! (tests/common/node_js.rs). A missing node/npm is a failure, not a skip.
//! Run: `cargo test --release --test interop_autobahn_js`.

mod common;

use std::time::Duration;

use common::{interop, node_command, node_interop_dir, run_with_timeout};
use tokio::time::timeout;
use wampmesh::client::{ClientConfig, Session};
use wampmesh::config::Config;
use wampmesh::node::Node;
use wampmesh::wamp::{Dict, Value};

const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

fn config() -> Config {
    let text = format!(
        "{}{}",
        interop::scenario_listener("websocket", "127.0.0.1:0"),
        interop::OPEN_REALM
    );
    Config::from_toml_str(&text).unwrap_or_else(|e| panic!("test config: {e}"))
}

async fn run_autobahn_js(serializer: &'static str) {
    let dir = tokio::task::spawn_blocking(node_interop_dir)
        .await
        .expect("npm install");
    let node = Node::start(config()).await.expect("node starts");
    let addr = node.local_addr("websocket").expect("listener").to_owned();
    // The RawSocket side, on the websocket listener's port (first byte 0x7F).
    let rust = Session::connect_tcp(&addr, ClientConfig::new("realm1"))
        .await
        .expect("RawSocket client joins");
    let _echo = rust
        .serve("rust.echo", Dict::new(), |call| async move {
            let payload = call.payload.clone();
            let _ = call.result(payload).await;
        })
        .await
        .expect("register rust.echo");
    let mut from_js = rust
        .subscribe("rust.from_js", Dict::new())
        .await
        .expect("subscribe");

    let url = format!("ws://{addr}/ws");
    let finished = tokio::task::spawn_blocking(move || {
        run_with_timeout(
            node_command()
                .arg(dir.join("autobahn_node.js"))
                .args(["--url", &url, "--serializer", serializer])
                .current_dir(&dir),
            SCRIPT_TIMEOUT,
        )
    })
    .await
    .expect("script runs");
    let failed: Vec<&str> = finished
        .stdout
        .lines()
        .filter(|line| line.starts_with("FAIL"))
        .collect();
    assert!(
        finished.success() && finished.stdout.contains("all checks passed"),
        "autobahn-js ({serializer}) against wampmesh: {} failed check(s)\n{}\n\n{}",
        failed.len(),
        failed.join("\n"),
        finished.report()
    );
    println!("{}", finished.stdout);
    let event = timeout(Duration::from_secs(5), from_js.next())
        .await
        .expect("the RawSocket subscriber got the autobahn-js publication in time")
        .expect("subscription open");
    assert_eq!(event.payload.args, Some(vec![Value::from(serializer)]));
    timeout(
        Duration::from_secs(10),
        node.shutdown(Duration::from_secs(2)),
    )
    .await
    .expect("node shuts down in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autobahn_js_node_json() {
    run_autobahn_js("json").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autobahn_js_node_msgpack() {
    run_autobahn_js("msgpack").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autobahn_js_node_cbor() {
    run_autobahn_js("cbor").await;
}
