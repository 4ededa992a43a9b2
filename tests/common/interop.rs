//! What the autobahn-python interop tests share: the node config their scenarios expect
//! (anonymous, ticket `alice`, WAMP-CRA `bob` and salted `carol`, realm `realm1`) on any
//! listener transport, and the runner that starts a node, runs one script from
//! tests/interop against it and fails with the script's FAIL lines.

use std::process::Command;
use std::time::Duration;

use super::{interop_dir, localhost, python_venv, run_with_timeout, venv_python, NodeProcess};

/// `[[realm]] realm1` with roles `anonymous` and `user` allowed everything.
pub const OPEN_REALM: &str = r#"
[[realm]]
name = "realm1"
[[realm.role]]
name = "anonymous"
permissions = [{ uri = "", match = "prefix", call = true, register = true, publish = true, subscribe = true }]
[[realm.role]]
name = "user"
permissions = [{ uri = "", match = "prefix", call = true, register = true, publish = true, subscribe = true }]
"#;

/// A node `id` with one `transport` listener on `port` and the principals the scenarios use.
pub fn scenario_node_config(id: &str, transport: &str, port: u16) -> String {
    let listener = scenario_listener(transport, &format!("127.0.0.1:{port}"));
    format!("[node]\nid = \"{id}\"\n\n{listener}{OPEN_REALM}")
}

/// A `[[listen]]` section (`transport` on `address`, every serializer) with the principals the
/// scenarios use: anonymous, ticket `alice`, WAMP-CRA `bob` and salted `carol`.
pub fn scenario_listener(transport: &str, address: &str) -> String {
    format!(
        r#"[[listen]]
transport = "{transport}"
address = "{address}"
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
"#
    )
}

/// Starts a node from `node_config` listening on `port`, runs tests/interop/`script` with
/// `--port PORT` and `args` in the pinned venv, and asserts that it exited 0 (and printed
/// `all checks passed`, if `summary`) and that the node is still running. Prints the script's
/// output and returns it.
pub fn run_script(
    label: &str,
    node_config: &str,
    port: u16,
    script: &str,
    args: &[&str],
    timeout: Duration,
    summary: bool,
) -> String {
    let python = venv_python(&python_venv());
    let mut node = NodeProcess::start(label, node_config, localhost(port));
    let finished = run_with_timeout(
        Command::new(&python)
            .arg(interop_dir().join(script))
            .args(["--port", &port.to_string()])
            .args(args)
            .env("PYTHONUNBUFFERED", "1"),
        timeout,
    );
    let failed: Vec<&str> = finished
        .stdout
        .lines()
        .filter(|line| line.starts_with("FAIL"))
        .collect();
    assert!(
        finished.success() && (!summary || finished.stdout.contains("all checks passed")),
        "{label}: {} failed check(s)\n{}\n\n{}",
        failed.len(),
        failed.join("\n"),
        finished.report()
    );
    println!("{}", finished.stdout);
    assert!(node.is_running(), "the node exited during {label}");
    finished.stdout
}
