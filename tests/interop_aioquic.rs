//! Interop with an independent QUIC stack: `tests/interop/aioquic_client.py` (aioquic, from the
//! pinned venv `target/interop-venv`) connects to an in-process node's QUIC listener with ALPN
//! `wamp.2.quic`, verifies the node's certificate against a CA file, opens two bidirectional
//! streams on one connection, runs a RawSocket handshake and a WAMP session on each, subscribes
//! on one and publishes 100 acknowledged events from the other, and checks they arrive in order.
//!
//! The node's certificate and CA are the files `wampmesh certs` writes
//! (`wampmesh::certs::write_mesh_certs`), so this also checks that they are strict DER that
//! Python's `cryptography` (aioquic's verifier) accepts: a node certificate encoding the DEFAULT
//! `cA: FALSE` in BasicConstraints is refused there ("Certificate extensions could not be
//! parsed") although rustls takes it.
//!
//! A missing Python or aioquic is a test failure, never a skip.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use wampmesh::config::Config;
use wampmesh::node::Node;

/// The script's own deadline: venv creation happens before it and is bounded separately.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

/// A node named `node1`: `[tls]` from `cert_dir` (ca.pem, node1.pem, node1.key), one QUIC
/// listener on 127.0.0.1 with a free UDP port, realm `realm1` open to anonymous sessions.
fn node_config(cert_dir: &Path) -> Config {
    let file = |name: &str| cert_dir.join(name).display().to_string();
    let text = format!(
        r#"
[node]
id = "node1"

[tls]
ca = {ca:?}
cert = {cert:?}
key = {key:?}

[[listen]]
transport = "quic"
address = "127.0.0.1:0"

[[realm]]
name = "realm1"
[[realm.role]]
name = "anonymous"
permissions = [{{ uri = "", match = "prefix", call = true, register = true, publish = true, subscribe = true }}]
"#,
        ca = file("ca.pem"),
        cert = file("node1.pem"),
        key = file("node1.key"),
    );
    Config::from_toml_str(&text).unwrap_or_else(|e| panic!("test config: {e}"))
}

/// Starts a node on the certificates in `cert_dir`, runs the aioquic script against its QUIC
/// port with `cert_dir/ca.pem` as the trust anchor, and fails with the script's output unless
/// it exits 0.
async fn run_script_against_node(cert_dir: PathBuf) {
    // Building the venv can take a while the first time: do it before the node starts.
    let venv = tokio::task::spawn_blocking(common::python_venv)
        .await
        .expect("venv task");
    let node = Node::start(node_config(&cert_dir))
        .await
        .expect("node starts");
    let addr: std::net::SocketAddr = node
        .local_addr("quic")
        .expect("quic listener")
        .parse()
        .expect("quic address");
    let mut command = Command::new(common::venv_python(&venv));
    command
        .arg(common::interop_dir().join("aioquic_client.py"))
        .args(["--host", "127.0.0.1", "--server-name", "localhost"])
        .arg("--port")
        .arg(addr.port().to_string())
        .arg("--cafile")
        .arg(cert_dir.join("ca.pem"))
        .args(["--events", "100"]);
    let finished =
        tokio::task::spawn_blocking(move || common::run_with_timeout(&mut command, SCRIPT_TIMEOUT))
            .await
            .expect("script task");
    tokio::time::timeout(
        Duration::from_secs(10),
        node.shutdown(Duration::from_secs(2)),
    )
    .await
    .expect("node shuts down");
    println!("{}", finished.stdout);
    assert!(
        finished.success(),
        "aioquic_client.py failed\n{}",
        finished.report()
    );
    assert!(
        finished.stdout.contains("OK: 0 check(s) failed") && !finished.stdout.contains("FAIL:"),
        "aioquic_client.py exited 0 without passing every check\n{}",
        finished.report()
    );
    let _ = std::fs::remove_dir_all(&cert_dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aioquic_two_sessions_on_one_connection() {
    let dir = common::scratch_dir("aioquic-mesh-certs");
    wampmesh::certs::write_mesh_certs(&dir, &["node1".to_owned()]).expect("write mesh certs");
    run_script_against_node(dir).await;
}
