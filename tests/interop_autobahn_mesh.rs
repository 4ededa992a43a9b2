//! Interop across a router link: autobahn-python runs tests/interop/autobahn_scenarios.py with
//! `--port2` against two linked `wampmesh node` processes, so that every scenario's parties are
//! split between the nodes (publishers and callers on node1, subscribers and callees on node2,
//! shared registrations on both; auth, meta, errors and Component run on each node). Once with
//! node1 linked to node2 over QUIC (certificates of a test CA), once over TCP (ticket, role
//! `rlink`); each pair of nodes serves json, msgpack and cbor runs in turn, which also checks that
//! the mesh forgets the interest of sessions that left. The checks must pass as on one node
//! (tests/interop_autobahn.rs); tests/interop/README.md says which ones run per node.
//!
//! Needs the pinned venv `target/interop-venv` (tests/common; a missing Python is a failure).
//! Run: `cargo test --release --test interop_autobahn_mesh`. `WAMPMESH_INTEROP_SCENARIOS=rpc,shared`
//! runs only those scenarios; `RUST_LOG` sets the nodes' log level (their stderr tails are
//! printed when a test fails).

mod common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::interop::{self, OPEN_REALM};
use common::mesh::{free_udp_ports, mesh_certs};
use common::{
    free_ports, interop_dir, localhost, python_venv, run_with_timeout, venv_python, Finished,
    NodeProcess,
};

/// The whole script for one serializer; it normally takes a few seconds.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(90);
const SERIALIZERS: [&str; 3] = ["json", "msgpack", "cbor"];
/// What node1 presents on a tcp link, as authid `node1`, to a ticket principal at node2.
const LINK_TICKET: &str = "link-ticket";

#[derive(Debug, Clone, Copy, PartialEq)]
enum LinkKind {
    Quic,
    Tcp,
}

impl LinkKind {
    fn name(self) -> &'static str {
        match self {
            LinkKind::Quic => "quic",
            LinkKind::Tcp => "tcp",
        }
    }
}

/// The client listener of tests/interop_autobahn.rs (anonymous, alice, bob, carol), plus the
/// `rlink` ticket principal of node1 on the node a tcp link dials.
fn client_listener(port: u16, accepts_tcp_link: bool) -> String {
    let mut text = interop::scenario_listener("tcp", &format!("127.0.0.1:{port}"));
    if accepts_tcp_link {
        text.push_str(&format!(
            "[listen.auth.ticket.principals.node1]\nticket = \"{LINK_TICKET}\"\nrole = \"rlink\"\n"
        ));
    }
    text
}

fn tls_section(certs: &Path, id: &str) -> String {
    format!(
        "[tls]\nca = \"{dir}/ca.pem\"\ncert = \"{dir}/{id}.pem\"\nkey = \"{dir}/{id}.key\"\n\n",
        dir = certs.display()
    )
}

/// node1's `[[link]]` to node2 (`address` is node2's QUIC listener or its client listener).
fn link_section(kind: LinkKind, address_port: u16) -> String {
    let ticket = match kind {
        LinkKind::Quic => String::new(),
        LinkKind::Tcp => format!("transport = \"tcp\"\nticket = \"{LINK_TICKET}\"\n"),
    };
    format!(
        "\n[[link]]\npeer = \"node2\"\naddress = \"127.0.0.1:{address_port}\"\n{ticket}realms = [\"realm1\"]\nreconnect = {{ initial_ms = 50, max_ms = 500 }}\n"
    )
}

/// Two linked nodes: node1 dials node2. Over tcp neither node has TLS or QUIC at all.
struct LinkedPair {
    node1: NodeProcess,
    node2: NodeProcess,
    port1: u16,
    port2: u16,
    certs: Option<PathBuf>,
}

impl LinkedPair {
    fn start(kind: LinkKind) -> LinkedPair {
        let ports = free_ports(2);
        let (port1, port2) = (ports[0], ports[1]);
        let (node1_toml, node2_toml, certs) = match kind {
            LinkKind::Quic => {
                let certs = mesh_certs("interop-mesh-certs", &["node1", "node2"]);
                let quic2 = free_udp_ports(1)[0];
                let node2 = format!(
                    "[node]\nid = \"node2\"\n\n{}{}[[listen]]\ntransport = \"quic\"\naddress = \"127.0.0.1:{quic2}\"\nrequire_client_cert = true\n{OPEN_REALM}",
                    tls_section(&certs, "node2"),
                    client_listener(port2, false)
                );
                let node1 = format!(
                    "[node]\nid = \"node1\"\n\n{}{}{OPEN_REALM}{}",
                    tls_section(&certs, "node1"),
                    client_listener(port1, false),
                    link_section(kind, quic2)
                );
                (node1, node2, Some(certs))
            }
            LinkKind::Tcp => {
                let node2 = format!(
                    "[node]\nid = \"node2\"\n\n{}{OPEN_REALM}",
                    client_listener(port2, true)
                );
                let node1 = format!(
                    "[node]\nid = \"node1\"\n\n{}{OPEN_REALM}{}",
                    client_listener(port1, false),
                    link_section(kind, port2)
                );
                (node1, node2, None)
            }
        };
        let label = format!("interop-mesh-{}", kind.name());
        let node2 = NodeProcess::start(&format!("{label}-node2"), &node2_toml, localhost(port2));
        let node1 = NodeProcess::start(&format!("{label}-node1"), &node1_toml, localhost(port1));
        LinkedPair {
            node1,
            node2,
            port1,
            port2,
            certs,
        }
    }
}

impl Drop for LinkedPair {
    fn drop(&mut self) {
        if let Some(certs) = &self.certs {
            let _ = std::fs::remove_dir_all(certs);
        }
    }
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

fn run_script(python: &Path, pair: &LinkedPair, serializer: &str) -> Finished {
    run_with_timeout(
        Command::new(python)
            .arg(interop_dir().join("autobahn_scenarios.py"))
            .args(["--port", &pair.port1.to_string()])
            .args(["--port2", &pair.port2.to_string()])
            .args(["--serializer", serializer])
            .args(scenario_args())
            .env("PYTHONUNBUFFERED", "1"),
        SCRIPT_TIMEOUT,
    )
}

fn summary_line(finished: &Finished) -> &str {
    finished
        .stdout
        .lines()
        .rfind(|line| line.starts_with("interop summary:"))
        .unwrap_or("no summary line")
}

/// The FAIL lines, exit status and stderr tail of a failed run.
fn failure_report(finished: &Finished) -> String {
    let fails: Vec<&str> = finished
        .stdout
        .lines()
        .filter(|line| line.starts_with("FAIL"))
        .collect();
    let status = match finished.status {
        Some(status) => status.to_string(),
        None => format!("killed at the {SCRIPT_TIMEOUT:?} deadline"),
    };
    let stderr: Vec<&str> = finished.stderr.lines().collect();
    let stderr_tail = stderr[stderr.len().saturating_sub(15)..].join("\n");
    format!(
        "{}\n{}\nstatus: {status} after {:.1?}\n--- script stderr (tail) ---\n{stderr_tail}",
        fails.join("\n"),
        summary_line(finished),
        finished.elapsed
    )
}

/// Problems with node1's link as `wampmesh link list --json` shows it after the runs: it must
/// be the configured kind, up, and never re-established (one handshake).
fn link_problems(pair: &LinkedPair, kind: LinkKind) -> Option<String> {
    let listed = run_with_timeout(
        Command::new(env!("CARGO_BIN_EXE_wampmesh")).args([
            "link",
            "list",
            "--node",
            &localhost(pair.port1).to_string(),
            "--json",
        ]),
        Duration::from_secs(20),
    );
    if !listed.success() {
        return Some(format!("wampmesh link list failed\n{}", listed.report()));
    }
    let rows: Vec<serde_json::Value> = match serde_json::from_str(&listed.stdout) {
        Ok(rows) => rows,
        Err(e) => return Some(format!("link list --json: {e}\n{}", listed.stdout)),
    };
    let row = rows
        .iter()
        .find(|row| row["peer"] == "node2" && row["realm"] == "realm1");
    let ok = row.is_some_and(|row| {
        row["transport"] == kind.name() && row["state"] == "up" && row["handshakes"] == 1
    });
    (!ok).then(|| {
        format!(
            "expected one {} link to node2, up, 1 handshake; link list: {}",
            kind.name(),
            listed.stdout
        )
    })
}

/// Starts a linked pair, runs the script once per serializer against it, then checks the link.
fn run_mesh_interop(kind: LinkKind) {
    let python = venv_python(&python_venv());
    let started = Instant::now();
    let mut pair = LinkedPair::start(kind);
    let mut summary = format!("autobahn-python across a {} link:\n", kind.name());
    let mut failures = String::new();
    for serializer in SERIALIZERS {
        let finished = run_script(&python, &pair, serializer);
        let verdict = if finished.success() { "ok" } else { "FAILED" };
        let _ = writeln!(
            summary,
            "  {serializer:<8} {verdict:<6} {:>5.1?}  {}",
            finished.elapsed,
            summary_line(&finished)
        );
        if !finished.success() {
            let _ = writeln!(
                failures,
                "\n=== {} link, {serializer} ===\n{}",
                kind.name(),
                failure_report(&finished)
            );
        }
    }
    for (name, node) in [("node1", &mut pair.node1), ("node2", &mut pair.node2)] {
        if !node.is_running() {
            let _ = writeln!(failures, "\n{name} exited during the runs");
        }
    }
    if let Some(problem) = link_problems(&pair, kind) {
        let _ = writeln!(failures, "\n=== {} link state ===\n{problem}", kind.name());
    }
    let _ = write!(summary, "  total {:.1?}", started.elapsed());
    assert!(failures.is_empty(), "{summary}\n{failures}");
    println!("{summary}");
}

#[test]
fn autobahn_python_across_a_quic_link() {
    run_mesh_interop(LinkKind::Quic);
}

#[test]
fn autobahn_python_across_a_tcp_link() {
    run_mesh_interop(LinkKind::Tcp);
}
