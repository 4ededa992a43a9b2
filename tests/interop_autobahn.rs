//! Interop with a real third-party client: autobahn-python (asyncio, RawSocket over TCP) runs
//! tests/interop/autobahn_scenarios.py against a `wampmesh node`, once per serializer.
//!
//! The Python side comes from the pinned venv `target/interop-venv` (tests/common, built on
//! first use from tests/interop/requirements.txt; needs python3 with venv and PyPI access). A
//! missing Python is a failure, not a skip. Run: `cargo test --release --test interop_autobahn`.
//! `WAMPMESH_INTEROP_SCENARIOS=rpc,auth` runs only those scenarios; `RUST_LOG` sets the node's
//! log level (its stderr tail is printed when a test fails).

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{free_port, interop, interop_dir, python_venv, run_with_timeout, venv_python};

/// The whole script for one serializer; it normally takes a few seconds.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

fn script() -> PathBuf {
    interop_dir().join("autobahn_scenarios.py")
}

/// `--scenario` arguments from `WAMPMESH_INTEROP_SCENARIOS` (comma-separated); none = all.
fn scenario_args() -> Vec<String> {
    std::env::var("WAMPMESH_INTEROP_SCENARIOS")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .flat_map(|s| ["--scenario".to_owned(), s.to_owned()])
        .collect()
}

fn run_autobahn(serializer: &str) {
    let port = free_port();
    let mut args = vec!["--serializer".to_owned(), serializer.to_owned()];
    args.extend(scenario_args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    interop::run_script(
        &format!("interop-autobahn-{serializer}"),
        &interop::scenario_node_config("interop", "tcp", port),
        port,
        "autobahn_scenarios.py",
        &args,
        SCRIPT_TIMEOUT,
        false,
    );
}

#[test]
fn autobahn_python_json() {
    run_autobahn("json");
}

#[test]
fn autobahn_python_msgpack() {
    run_autobahn("msgpack");
}

#[test]
fn autobahn_python_cbor() {
    run_autobahn("cbor");
}

/// The Python side on its own (no node): pinned versions import, the serializers and the
/// wire-level additions the scenarios rely on behave, WAMP-CRA test vectors hold.
#[test]
fn autobahn_python_selftest() {
    let python = venv_python(&python_venv());
    let finished = run_with_timeout(
        Command::new(&python).arg(script()).arg("--selftest"),
        SCRIPT_TIMEOUT,
    );
    println!("{}", finished.stdout);
    assert!(
        finished.success(),
        "autobahn_scenarios.py --selftest failed\n{}",
        finished.report()
    );
}
