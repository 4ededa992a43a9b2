//! Unit tests for config parsing and validation: the DESIGN example, defaults, and errors that
//! name the key.

use super::*;
use crate::wamp::uri::MatchPolicy;
use crate::wamp::Serializer;

/// DESIGN.md §4, verbatim.
const DESIGN_EXAMPLE: &str = r#"
[node]
id = "node1"

[io]
threads = 0                 # 0 = one per core

[tls]                       # used by QUIC listeners/links and TLS over TCP
ca = "certs/ca.pem"
cert = "certs/node1.pem"
key = "certs/node1.key"

[[listen]]
transport = "tcp"           # tcp | tls | unix | quic | websocket
address = "127.0.0.1:8080"  # or a path for unix
serializers = ["json", "msgpack", "cbor"]
max_message_size = 16777216
[listen.auth.anonymous]
role = "anonymous"
[listen.auth.ticket.principals.alice]
ticket = "secret-ticket"
role = "user"
[listen.auth.wampcra.users.bob]
secret = "bob-secret"
role = "user"               # salt / iterations / keylen optional (salted WAMP-CRA)

[[listen]]
transport = "quic"
address = "127.0.0.1:8443"
max_streams = 100000        # concurrent bidirectional streams per connection
require_client_cert = false # true on listeners that accept router links

[[realm]]
name = "realm1"
[[realm.role]]
name = "anonymous"
permissions = [{ uri = "", match = "prefix", call = true, register = true, publish = true, subscribe = true }]

[[link]]
peer = "node2"              # the peer's node id (checked against its certificate)
address = "127.0.0.1:9443"
transport = "quic"          # quic: one connection, a stream per realm | tcp, tls: a connection per realm
realms = ["realm1"]
forward_events = true
forward_calls = true
reconnect = { initial_ms = 100, max_ms = 5000 }   # or reconnect = "manual"
"#;

/// A small valid file that the error tests break one key at a time.
const MINIMAL: &str = r#"
[[listen]]
transport = "tcp"
address = "127.0.0.1:8080"

[[realm]]
name = "realm1"
"#;

fn error_of(text: &str) -> ConfigError {
    match Config::from_toml_str(text) {
        Ok(config) => panic!("expected an error, got {config:?}"),
        Err(error) => error,
    }
}

/// Asserts that `text` fails at `key` and that the message starts with it and contains `words`.
fn assert_fails(text: &str, key: &str, words: &str) {
    let error = error_of(text);
    let shown = error.to_string();
    assert_eq!(error.key(), Some(key), "wrong key in: {shown}");
    assert!(shown.starts_with(&format!("{key}: ")), "{shown}");
    assert!(shown.contains(words), "{shown:?} lacks {words:?}");
}

#[test]
fn design_example_parses() {
    let config = Config::from_toml_str(DESIGN_EXAMPLE).expect("DESIGN example is valid");
    assert_eq!(config.node.id, "node1");
    assert_eq!(config.io.threads, 0);
    let tls = config.tls.as_ref().expect("tls");
    assert_eq!(
        tls.ca.as_deref(),
        Some(std::path::Path::new("certs/ca.pem"))
    );
    assert_eq!(config.listen.len(), 2);
    let tcp = &config.listen[0];
    assert_eq!(tcp.transport, TransportKind::Tcp);
    assert_eq!(tcp.serializers, Serializer::ALL.to_vec());
    assert_eq!(tcp.max_message_size, 16_777_216);
    assert!(tcp.auth.anonymous.is_some() && tcp.auth.ticket.is_some());
    assert!(tcp.auth.wampcra.is_some());
    let quic = &config.listen[1];
    assert_eq!(quic.transport, TransportKind::Quic);
    assert_eq!(quic.max_streams, 100_000);
    assert!(!quic.require_client_cert);
    let role = &config.realm("realm1").expect("realm1").roles[0];
    assert_eq!(role.name, "anonymous");
    assert_eq!(role.permissions[0].policy, MatchPolicy::Prefix);
    assert!(role.permissions[0].call && role.permissions[0].subscribe);
    let link = &config.link[0];
    assert_eq!(link.transport, LinkTransport::Quic);
    assert_eq!(link.realms, ["realm1"]);
    assert_eq!(
        link.reconnect,
        ReconnectPolicy::Backoff {
            initial_ms: 100,
            max_ms: 5000
        }
    );
}

#[test]
fn example_file_parses() {
    let text = include_str!("../../examples/node.toml");
    let config = Config::from_toml_str(text).expect("examples/node.toml is valid");
    assert_eq!(config.listen.len(), 2);
    assert_eq!(config.management.realm, "wampmesh.control");
}

#[test]
fn embedded_default_validates() {
    let config = Config::embedded_default();
    config.validate().expect("embedded default is valid");
    let kinds: Vec<_> = config.listen.iter().map(|l| l.transport).collect();
    assert_eq!(kinds, [TransportKind::Tcp, TransportKind::Quic]);
    assert_eq!(config.listen[0].address, "127.0.0.1:8080");
    assert_eq!(config.listen[1].address, "127.0.0.1:8443");
    assert_eq!(config.listen[0].auth.methods(), ["anonymous"]);
    let realm = config.realm("realm1").expect("realm1");
    assert_eq!(realm.role("anonymous").expect("role").permissions.len(), 1);
}

#[test]
fn defaults_fill_an_almost_empty_file() {
    let config = Config::from_toml_str(MINIMAL).expect("valid");
    let listen = &config.listen[0];
    assert_eq!(listen.serializers.len(), 3);
    assert_eq!(listen.handshake_timeout_ms, 10_000);
    assert_eq!(listen.min_peer_message_size, 512);
    assert_eq!(config.limits.max_sessions, 100_000);
    assert_eq!(config.limits.max_connections_per_address, 10_000);
    assert_eq!(listen.stream_receive_window, 256 * 1024);
    assert_eq!(listen.auth.methods(), ["anonymous"]);
    assert_eq!(config.node.id, "node1");
    assert!(config.management.allow_local);
    assert_eq!(config.limits.outbound_queue, 4096);
    assert_eq!(config.limits.slow_consumer, SlowConsumerPolicy::Drop);
    assert!(config.metrics.is_none() && config.tls.is_none());
}

#[test]
fn manual_reconnect_parses() {
    let text = format!(
        "{MINIMAL}\n[[link]]\npeer = \"node2\"\naddress = \"127.0.0.1:9000\"\n\
         transport = \"tcp\"\nrealms = [\"realm1\"]\nreconnect = \"manual\"\n"
    );
    let config = Config::from_toml_str(&text).expect("valid");
    assert_eq!(config.link[0].reconnect, ReconnectPolicy::Manual);
}

#[test]
fn unknown_key_is_named() {
    assert_fails(
        &format!("{MINIMAL}\n[node]\nname = \"x\"\n"),
        "node.name",
        "unknown field",
    );
    let text = MINIMAL.replace("transport = \"tcp\"", "transport = \"tcp\"\nport = 1");
    assert_fails(&text, "listen[0].port", "unknown field");
    assert_fails(&format!("colour = 1\n{MINIMAL}"), "colour", "unknown field");
}

#[test]
fn bad_listen_address_is_named() {
    let text = format!("{MINIMAL}\n[[listen]]\ntransport = \"quic\"\naddress = \"x\"\n");
    assert_fails(&text, "listen[1].address", "invalid socket address \"x\"");
}

#[test]
fn missing_key_is_named() {
    let text = MINIMAL.replace("address = \"127.0.0.1:8080\"", "");
    assert_fails(&text, "listen[0].address", "required");
}

#[test]
fn bad_serializer_name_is_named() {
    let text = MINIMAL.replace(
        "transport = \"tcp\"",
        "transport = \"tcp\"\nserializers = [\"json\", \"xml\"]",
    );
    assert_fails(
        &text,
        "listen[0].serializers[1]",
        "unknown serializer \"xml\", expected one of json, msgpack, cbor",
    );
}

#[test]
fn bad_match_policy_is_named() {
    let text = format!(
        "{MINIMAL}[[realm.role]]\nname = \"a\"\n[[realm.role]]\nname = \"b\"\n\
         [[realm.role]]\nname = \"c\"\npermissions = [{{ uri = \"a.b\", match = \"regex\" }}]\n"
    );
    assert_fails(
        &text,
        "realm[0].role[2].permissions[0].match",
        "unknown variant \"regex\", expected one of exact, prefix, wildcard",
    );
}

#[test]
fn duplicate_realm_is_named() {
    let text = format!("{MINIMAL}\n[[realm]]\nname = \"realm1\"\n");
    assert_fails(&text, "realm[1].name", "configured twice");
}

#[test]
fn link_to_unconfigured_realm_is_named() {
    let text = format!(
        "{MINIMAL}\n[[link]]\npeer = \"node2\"\naddress = \"127.0.0.1:9000\"\n\
         transport = \"tcp\"\nrealms = [\"realm1\", \"foo\"]\n"
    );
    assert_fails(
        &text,
        "link[0].realms[1]",
        "realm \"foo\" is not configured",
    );
}

#[test]
fn reconnect_max_below_initial_is_named() {
    let text = format!(
        "{MINIMAL}\n[[link]]\npeer = \"node2\"\naddress = \"127.0.0.1:9000\"\n\
         transport = \"tcp\"\nreconnect = {{ initial_ms = 500, max_ms = 100 }}\n"
    );
    assert_fails(&text, "link[0].reconnect.max_ms", "less than initial_ms");
}

#[test]
fn bad_node_id_is_named() {
    assert_fails(
        &format!("[node]\nid = \"node 1\"\n{MINIMAL}"),
        "node.id",
        "invalid node id",
    );
    assert_fails(
        &format!("[node]\nid = \"\"\n{MINIMAL}"),
        "node.id",
        "invalid node id",
    );
}

#[test]
fn quic_link_without_ca_is_named() {
    let text = format!("{MINIMAL}\n[[link]]\npeer = \"node2\"\naddress = \"127.0.0.1:9000\"\n");
    assert_fails(&text, "link[0].transport", "tls.ca");
}

#[test]
fn link_to_self_is_named() {
    let text = format!(
        "{MINIMAL}\n[[link]]\npeer = \"node1\"\naddress = \"127.0.0.1:9000\"\ntransport = \"tcp\"\n"
    );
    assert_fails(&text, "link[0].peer", "own id");
}

#[test]
fn value_errors_are_named() {
    let big = MINIMAL.replace(
        "transport = \"tcp\"",
        "transport = \"tcp\"\nmax_message_size = 100",
    );
    assert_fails(&big, "listen[0].max_message_size", "out of range");
    let min_peer = MINIMAL.replace(
        "transport = \"tcp\"",
        "transport = \"tcp\"\nmin_peer_message_size = 256",
    );
    assert_fails(&min_peer, "listen[0].min_peer_message_size", "out of range");
    let twice = MINIMAL.replace(
        "transport = \"tcp\"",
        "transport = \"tcp\"\nserializers = [\"cbor\", \"cbor\"]",
    );
    assert_fails(&twice, "listen[0].serializers[1]", "listed twice");
    let kind = MINIMAL.replace("\"tcp\"", "\"sctp\"");
    assert_fails(
        &kind,
        "listen[0].transport",
        "expected one of tcp, tls, unix, quic, websocket",
    );
    let pattern =
        format!("{MINIMAL}[[realm.role]]\nname = \"a\"\npermissions = [{{ uri = \"a..b\" }}]\n");
    assert_fails(
        &pattern,
        "realm[0].role[0].permissions[0].uri",
        "invalid URI",
    );
    let clash =
        format!("{MINIMAL}\n[[listen]]\ntransport = \"tls\"\naddress = \"127.0.0.1:8080\"\n");
    assert_fails(&clash, "listen[1].address", "already used by listen[0]");
    let slow = format!("{MINIMAL}\n[limits]\nslow_consumer = \"wait\"\n");
    assert_fails(&slow, "limits.slow_consumer", "expected one of drop, close");
    let typed = MINIMAL.replace("\"127.0.0.1:8080\"", "8080");
    assert_fails(&typed, "listen[0].address", "invalid type");
}

#[test]
fn toml_syntax_error_names_the_line() {
    let error = error_of("[node]\nid = \n");
    assert!(error.to_string().starts_with("line 2"), "{error}");
}

#[test]
fn load_names_the_file_and_resolves_tls_paths() {
    let dir = std::env::temp_dir().join(format!("wampmesh-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("node.toml");
    std::fs::write(&path, DESIGN_EXAMPLE).expect("write");
    let config = Config::load(&path).expect("valid");
    let tls = config.tls.expect("tls");
    assert_eq!(tls.cert, dir.join("certs/node1.pem"));
    assert_eq!(tls.ca, Some(dir.join("certs/ca.pem")));

    std::fs::write(&path, "[node]\nid = \"a b\"\n").expect("write");
    let shown = Config::load(&path).expect_err("invalid").to_string();
    assert!(shown.starts_with("node.id: "), "{shown}");
    assert!(shown.contains("node.toml"), "{shown}");

    let missing = dir.join("absent.toml");
    let error = Config::load(&missing).expect_err("missing");
    assert!(matches!(error, ConfigError::Io { .. }), "{error}");
    assert!(error.to_string().contains("absent.toml"), "{error}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn websocket_tls_key_is_checked() {
    let ws = "[[listen]]\ntransport = \"websocket\"\naddress = \"127.0.0.1:8090\"\n";
    let config = Config::from_toml_str(&format!("{MINIMAL}\n{ws}tls = true\n")).expect("valid");
    let listener = config.listen.last().expect("listener");
    assert_eq!(
        (listener.transport, listener.tls),
        (TransportKind::Websocket, true)
    );
    let tcp = "[[listen]]\ntransport = \"tcp\"\naddress = \"127.0.0.1:8091\"\ntls = true\n";
    assert_fails(&format!("{MINIMAL}\n{tcp}"), "listen[1].tls", "websocket");
    let text = format!("{MINIMAL}\n{ws}tls = true\nrequire_client_cert = true\n");
    assert_fails(&text, "listen[1].require_client_cert", "tls.ca");
    let clash = "[[listen]]\ntransport = \"websocket\"\naddress = \"127.0.0.1:8080\"\n";
    assert_fails(
        &format!("{MINIMAL}\n{clash}"),
        "listen[1].address",
        "already used",
    );
}

#[test]
fn a_link_ticket_never_prints() {
    let text = r#"
[[listen]]
transport = "tcp"
address = "127.0.0.1:0"
[[realm]]
name = "realm1"
[[link]]
peer = "node2"
address = "127.0.0.1:9000"
transport = "tcp"
realms = ["realm1"]
ticket = "link-ticket-value"
"#;
    let config = Config::from_toml_str(text).expect("valid");
    let ticket = config.link[0].ticket.as_ref().expect("a ticket");
    assert_eq!(ticket.expose(), "link-ticket-value");
    let printed = format!("{config:?}");
    assert!(!printed.contains("link-ticket-value"), "{printed}");
}
