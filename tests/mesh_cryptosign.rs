//! Router links authenticated by WAMP-Cryptosign over plain TCP, between in-process nodes: the
//! key pair comes from `wampmesh certs --ed25519`'s writer, the dialing node reads its seed from
//! `cryptosign_key_file`, the listening node authorizes the `.pub` file for principal = the
//! dialer's node id with role `rlink`. Events cross the link; a wrong key never brings it up; the
//! runtime `wampmesh.link.start` takes the key file too; on QUIC the key is offered after the
//! certificate; `wampmesh certs --ed25519` writes matching key pairs.

mod common;

use std::path::Path;
use std::time::Duration;

use common::mesh::{
    client, field, link_state, links_of, probe_until_delivered, wait_link_up, wait_until,
    Collector, REALM,
};
use wampmesh::client::{ClientConfig, ClientError, Session};
use wampmesh::config::Config;
use wampmesh::node::Node;
use wampmesh::wamp::{Dict, Payload, Value};

const TOPIC: &str = "com.example.cryptosign.link";

/// Node `listener`: one TCP listener where clients join anonymously and `nodeA` authenticates
/// with the key in `authorized` (role `rlink`).
async fn start_listener(authorized: &Path) -> Node {
    let text = format!(
        r#"
[node]
id = "nodeB"
[[listen]]
transport = "tcp"
address = "127.0.0.1:0"
[listen.auth.anonymous]
[listen.auth.cryptosign.principals.nodeA]
authorized_keys_file = {authorized:?}
role = "rlink"
[[realm]]
name = "{REALM}"
[[realm.role]]
name = "anonymous"
permissions = [{{ uri = "", match = "prefix", call = true, register = true, publish = true, subscribe = true }}]
"#,
        authorized = authorized.display().to_string()
    );
    let config = Config::from_toml_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    Node::start(config).await.expect("nodeB starts")
}

/// The TOML of node `nodeA`, with a TCP link to `peer_addr` authenticated by `key_file` when
/// given (`link` = false: no `[[link]]`).
fn dialer_toml(peer_addr: &str, link: Option<&Path>) -> String {
    let mut text = format!(
        r#"
[node]
id = "nodeA"
[[listen]]
transport = "tcp"
address = "127.0.0.1:0"
[[realm]]
name = "{REALM}"
[[realm.role]]
name = "anonymous"
permissions = [{{ uri = "", match = "prefix", call = true, register = true, publish = true, subscribe = true }}]
"#
    );
    if let Some(key_file) = link {
        text.push_str(&format!(
            "[[link]]\npeer = \"nodeB\"\naddress = \"{peer_addr}\"\ntransport = \"tcp\"\n\
             realms = [\"{REALM}\"]\nreconnect = {{ initial_ms = 50, max_ms = 200 }}\n\
             cryptosign_key_file = {:?}\n",
            key_file.display().to_string()
        ));
    }
    text
}

async fn start_dialer(peer_addr: &str, key_file: Option<&Path>) -> Node {
    let text = dialer_toml(peer_addr, key_file);
    let config = Config::from_toml_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    Node::start(config).await.expect("nodeA starts")
}

/// `DIR/nodeA.ed25519(.pub)` and `DIR/other.ed25519(.pub)`.
fn keys(label: &str) -> std::path::PathBuf {
    let dir = common::scratch_dir(label);
    let ids = ["nodeA".to_owned(), "other".to_owned()];
    wampmesh::certs::write_ed25519_keys(&dir, &ids).expect("write key pairs");
    dir
}

async fn stop(node: Node) {
    tokio::time::timeout(
        Duration::from_secs(10),
        node.shutdown(Duration::from_secs(2)),
    )
    .await
    .expect("node shuts down");
}

/// Events published on `from` reach a subscriber on `to`.
async fn events_cross(from: &Node, to: &Node) {
    let subscriber = client(to, REALM).await;
    let collector = Collector::subscribe(&subscriber, TOPIC, Dict::new()).await;
    let publisher = client(from, REALM).await;
    probe_until_delivered(&publisher, TOPIC, &collector, Duration::from_secs(10)).await;
}

/// The session of authid `nodeA` on `node`'s realm, as the session meta API shows it.
async fn link_session_details(node: &Node) -> Dict {
    let observer = client(node, REALM).await;
    let call = |procedure: &'static str, args: Vec<Value>| {
        observer.call(procedure, Payload::args(args), Dict::new())
    };
    let ids = call("wamp.session.list", vec![])
        .await
        .expect("session list");
    let Some(Value::List(ids)) = ids.payload.args.and_then(|a| a.into_iter().next()) else {
        panic!("wamp.session.list returned no list");
    };
    for id in ids {
        let details = call("wamp.session.get", vec![id])
            .await
            .expect("session get");
        if let Some(Value::Dict(details)) = details.payload.args.and_then(|a| a.into_iter().next())
        {
            if details.get("authid").and_then(Value::as_str) == Some("nodeA") {
                return details;
            }
        }
    }
    panic!("no session with authid nodeA on {}", node.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_link_authenticated_by_cryptosign_carries_events() {
    let dir = keys("cryptosign-link");
    let node_b = start_listener(&dir.join("nodeA.ed25519.pub")).await;
    let b_addr = node_b.local_addr("tcp").expect("tcp").to_owned();
    let node_a = start_dialer(&b_addr, Some(&dir.join("nodeA.ed25519"))).await;
    wait_link_up(&node_a, "nodeB", REALM).await;

    let details = link_session_details(&node_b).await;
    assert_eq!(details["authmethod"], Value::from("cryptosign"));
    assert_eq!(details["authrole"], Value::from("rlink"));
    events_cross(&node_a, &node_b).await;
    events_cross(&node_b, &node_a).await;
    stop(node_a).await;
    stop(node_b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_never_brings_the_link_up() {
    let dir = keys("cryptosign-wrong");
    let node_b = start_listener(&dir.join("nodeA.ed25519.pub")).await;
    let b_addr = node_b.local_addr("tcp").expect("tcp").to_owned();
    // Our id, someone else's key.
    let node_a = start_dialer(&b_addr, Some(&dir.join("other.ed25519"))).await;
    let links = links_of(&node_a);
    let last_error = || {
        links
            .list()
            .into_iter()
            .find(|row| field(row, "peer") == Some("nodeB"))
            .and_then(|row| field(&row, "last_error").map(str::to_owned))
    };
    wait_until(
        "the link to report its failure",
        Duration::from_secs(10),
        || last_error().is_some(),
    )
    .await;
    let error = last_error().unwrap_or_default();
    assert!(error.contains("wamp.error.not_authorized"), "{error}");
    // Still not up after several retries.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_ne!(link_state(links, "nodeB", REALM).as_deref(), Some("up"));
    stop(node_a).await;

    // A missing key file stops the node at start, naming the link and the file.
    let missing = dir.join("missing.ed25519");
    let text = dialer_toml(&b_addr, Some(&missing));
    let config = Config::from_toml_str(&text).expect("config parses");
    let error = Node::start(config)
        .await
        .expect_err("no key file")
        .to_string();
    assert!(
        error.contains("link[0]") && error.contains("missing.ed25519"),
        "{error}"
    );
    // A seed file and a ticket at once are refused when the config is read.
    let both = format!("{text}ticket = \"t\"\n");
    let error = Config::from_toml_str(&both)
        .expect_err("ticket and key")
        .to_string();
    assert!(error.contains("ticket"), "{error}");
    stop(node_b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_link_start_takes_a_cryptosign_key_file() {
    let dir = keys("cryptosign-runtime");
    let node_b = start_listener(&dir.join("nodeA.ed25519.pub")).await;
    let b_addr = node_b.local_addr("tcp").expect("tcp").to_owned();
    let node_a = start_dialer(&b_addr, None).await;
    let control = Session::connect_tcp(
        node_a.local_addr("tcp").expect("tcp"),
        ClientConfig::new("wampmesh.control"),
    )
    .await
    .expect("control session");
    let start = |key_option: (&str, Value)| {
        let options = wampmesh::dict! { "transport" => "tcp", key_option.0 => key_option.1 };
        let args = vec![
            "nodeB".into(),
            b_addr.clone().into(),
            REALM.into(),
            Value::Dict(options),
        ];
        control.call("wampmesh.link.start", Payload::args(args), Dict::new())
    };
    let missing = dir.join("missing.ed25519").display().to_string();
    match start(("cryptosign_key_file", missing.into())).await {
        Err(ClientError::Wamp { error, payload, .. }) => {
            assert_eq!(error, "wamp.error.invalid_argument");
            let message = format!("{:?}", payload.args);
            assert!(message.contains("cryptosign key"), "{message}");
            assert!(message.contains("missing.ed25519"), "{message}");
        }
        other => panic!("expected invalid_argument, got {other:?}"),
    }
    let key_file = dir.join("nodeA.ed25519").display().to_string();
    start(("cryptosign_key_file", key_file.into()))
        .await
        .expect("link.start");
    wait_link_up(&node_a, "nodeB", REALM).await;
    events_cross(&node_b, &node_a).await;
    stop(node_a).await;
    stop(node_b).await;
}

/// `wampmesh certs --ed25519` writes the CA, the certificates and a key pair per node, and the
/// pair belongs together.
#[test]
fn certs_command_writes_ed25519_key_pairs() {
    let dir = common::scratch_dir("cli-certs-ed25519");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wampmesh"))
        .args(["certs", "--out"])
        .arg(&dir)
        .args(["--nodes", "n1,n2", "--ed25519"])
        .output()
        .expect("run wampmesh certs");
    assert!(out.status.success(), "{out:?}");
    let printed = String::from_utf8_lossy(&out.stdout);
    for file in [
        "ca.pem",
        "n1.pem",
        "n1.key",
        "n1.ed25519",
        "n1.ed25519.pub",
        "n2.ed25519",
    ] {
        assert!(
            dir.join(file).exists(),
            "{file} missing; printed:\n{printed}"
        );
    }
    let key =
        wampmesh::cryptosign::CryptosignKey::from_file(&dir.join("n1.ed25519")).expect("seed file");
    let public = std::fs::read_to_string(dir.join("n1.ed25519.pub")).expect("pub file");
    let authorized = wampmesh::cryptosign::parse_authorized_keys(&public).expect("pub parses");
    assert_eq!(authorized, [key.public_key()]);
    assert!(
        !printed.contains(&key.expose_seed_hex()),
        "the seed was printed"
    );
}

/// The TOML of a QUIC mesh node `id` with certificates from `dir`: TCP for clients, a QUIC
/// listener (`require_client_cert` as given) that also accepts `nodeA` by cryptosign, and
/// optionally a QUIC link to `nodeB` at `link_to` with nodeA's key file.
fn quic_node_toml(
    dir: &Path,
    id: &str,
    require_client_cert: bool,
    link_to: Option<&str>,
) -> String {
    let file = |name: &str| format!("{:?}", dir.join(name).display().to_string());
    let mut text = format!(
        r#"
[node]
id = "{id}"
[tls]
ca = {ca}
cert = {cert}
key = {key}
[[listen]]
transport = "tcp"
address = "127.0.0.1:0"
[[listen]]
transport = "quic"
address = "127.0.0.1:0"
require_client_cert = {require_client_cert}
[listen.auth.cryptosign.principals.nodeA]
authorized_keys_file = {public}
role = "rlink"
[[realm]]
name = "{REALM}"
[[realm.role]]
name = "anonymous"
permissions = [{{ uri = "", match = "prefix", call = true, register = true, publish = true, subscribe = true }}]
"#,
        ca = file("ca.pem"),
        cert = file(&format!("{id}.pem")),
        key = file(&format!("{id}.key")),
        public = file("nodeA.ed25519.pub"),
    );
    if let Some(address) = link_to {
        text.push_str(&format!(
            "[[link]]\npeer = \"nodeB\"\naddress = \"{address}\"\nrealms = [\"{REALM}\"]\n\
             reconnect = {{ initial_ms = 50, max_ms = 200 }}\ncryptosign_key_file = {}\n",
            file("nodeA.ed25519")
        ));
    }
    text
}

async fn start_toml(text: &str) -> Node {
    let config = Config::from_toml_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    Node::start(config).await.expect("node starts")
}

/// On a QUIC link a configured key is offered after the certificate: a listener that verifies
/// client certificates names the link by its certificate (authmethod tls); one that does not
/// falls back to cryptosign. Either way the link comes up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_link_offers_the_certificate_then_the_key() {
    let dir = common::mesh::mesh_certs("cryptosign-quic", &["nodeA", "nodeB"]);
    wampmesh::certs::write_ed25519_keys(&dir, &["nodeA".to_owned()]).expect("key pair");
    for (require_client_cert, method) in [(true, "tls"), (false, "cryptosign")] {
        let node_b = start_toml(&quic_node_toml(&dir, "nodeB", require_client_cert, None)).await;
        let b_quic = node_b.local_addr("quic").expect("quic").to_owned();
        let node_a = start_toml(&quic_node_toml(&dir, "nodeA", true, Some(b_quic.as_str()))).await;
        wait_link_up(&node_a, "nodeB", REALM).await;
        let details = link_session_details(&node_b).await;
        assert_eq!(
            details["authmethod"],
            Value::from(method),
            "require_client_cert = {require_client_cert}"
        );
        assert_eq!(details["authrole"], Value::from("rlink"));
        events_cross(&node_a, &node_b).await;
        stop(node_a).await;
        stop(node_b).await;
    }
}
