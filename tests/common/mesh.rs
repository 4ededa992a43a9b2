//! Helpers for router-mesh tests: certificates for a set of node ids, in-process nodes on port 0
//! with links started through their `LinkManager`, node configs for `wampmesh node` processes,
//! client sessions, bounded waits, and calls into a node's control realm.
#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wampmesh::client::{CallResult, ClientConfig, ClientError, Session};
use wampmesh::config::{templates, Config, LinkTransport, ReconnectPolicy};
use wampmesh::link::{LinkManager, LinkSpec};
use wampmesh::node::Node;
use wampmesh::wamp::{Dict, Payload, Value};

use super::scratch_dir;

/// The realm every mesh test node configures.
pub const REALM: &str = "realm1";
/// The management realm (DESIGN §5).
pub const CONTROL_REALM: &str = "wampmesh.control";
/// The reconnect policy of in-process test links: quick, so tests do not wait long.
pub const FAST_RECONNECT: ReconnectPolicy = ReconnectPolicy::Backoff {
    initial_ms: 50,
    max_ms: 500,
};

/// A CA and one certificate per node in a fresh scratch directory.
pub fn mesh_certs(label: &str, nodes: &[&str]) -> PathBuf {
    let dir = scratch_dir(label);
    let nodes: Vec<String> = nodes.iter().map(|n| n.to_string()).collect();
    wampmesh::certs::write_mesh_certs(&dir, &nodes).expect("write mesh certificates");
    dir
}

/// `count` distinct UDP ports on 127.0.0.1 that were free a moment ago (for QUIC listeners
/// whose address must be known before the node starts, as in `[[link]]` sections).
pub fn free_udp_ports(count: usize) -> Vec<u16> {
    let sockets: Vec<std::net::UdpSocket> = (0..count)
        .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").expect("bind udp 127.0.0.1:0"))
        .collect();
    sockets
        .iter()
        .map(|s| s.local_addr().expect("local_addr").port())
        .collect()
}

/// One `[[link]]` section of a node config.
#[derive(Debug, Clone)]
pub struct LinkTo {
    pub peer: String,
    pub quic_port: u16,
}

/// The TOML of a mesh node: TCP for clients, QUIC for links (client certificates required),
/// realm `realm1` open to anonymous clients, and `[[link]]` sections with a quick backoff.
/// QUIC keep-alive and idle timeout are short so that a killed peer is noticed within ~1.5 s.
pub fn node_toml(
    certs: &Path,
    id: &str,
    tcp_port: u16,
    quic_port: u16,
    links: &[LinkTo],
) -> String {
    let mut text = templates::node_tls(certs, id);
    text.push_str(&format!(
        r#"[[listen]]
transport = "tcp"
address = "127.0.0.1:{tcp_port}"
[[listen]]
transport = "quic"
address = "127.0.0.1:{quic_port}"
require_client_cert = true
keep_alive_ms = 200
idle_timeout_ms = 1500
"#
    ));
    text.push_str(&templates::open_realm(REALM));
    for link in links {
        let address = format!("127.0.0.1:{}", link.quic_port);
        let reconnect = Some("{ initial_ms = 50, max_ms = 500 }");
        text.push_str(&templates::link(&link.peer, &address, &[REALM], reconnect));
    }
    text
}

/// Starts an in-process node with TCP and QUIC listeners on port 0 and no configured links.
pub async fn start_node(certs: &Path, id: &str) -> Node {
    start_node_on(certs, id, 0).await
}

/// Like `start_node`, with QUIC on `quic_port` (so that a restarted node is found again).
pub async fn start_node_on(certs: &Path, id: &str, quic_port: u16) -> Node {
    start_from_toml(id, &node_toml(certs, id, 0, quic_port, &[])).await
}

/// Like `start_node`, with a 10 s QUIC idle timeout: for tests that load the machine so much
/// (thousands of links starting at once) that 1.5 s without an acknowledgement can happen
/// while the peer is alive, and that do not kill peers.
pub async fn start_patient_node(certs: &Path, id: &str) -> Node {
    let toml = node_toml(certs, id, 0, 0, &[]);
    let patient = toml.replace("idle_timeout_ms = 1500", "idle_timeout_ms = 10000");
    assert_ne!(toml, patient, "node_toml sets idle_timeout_ms");
    start_from_toml(id, &patient).await
}

async fn start_from_toml(id: &str, toml: &str) -> Node {
    let config = Config::from_toml_str(toml).expect("node config");
    Node::start(config)
        .await
        .unwrap_or_else(|e| panic!("node {id} failed to start: {e}"))
}

/// The spec of a QUIC link from some node to `to` for `realm`.
pub fn link_spec(to: &Node, realm: &str) -> LinkSpec {
    LinkSpec {
        forward: Default::default(),
        peer: to.id.clone(),
        address: to.local_addr("quic").expect("quic listener").to_owned(),
        transport: LinkTransport::Quic,
        realm: realm.to_owned(),
        reconnect: FAST_RECONNECT,
        ticket: None,
        cryptosign: None,
    }
}

/// Starts the link `from` -> `to` for `realm`.
pub fn link(from: &Node, to: &Node, realm: &str) {
    links_of(from)
        .start(link_spec(to, realm))
        .unwrap_or_else(|e| panic!("link {} -> {}: {e}", from.id, to.id));
}

pub fn links_of(node: &Node) -> &LinkManager {
    node.links().expect("node has a link manager")
}

/// The `state` of the link to `peer` for `realm`, as `list()` shows it.
pub fn link_state(links: &LinkManager, peer: &str, realm: &str) -> Option<String> {
    links
        .list()
        .into_iter()
        .find(|row| field(row, "peer") == Some(peer) && field(row, "realm") == Some(realm))
        .and_then(|row| field(&row, "state").map(str::to_owned))
}

/// A string field of a dict.
pub fn field<'a>(row: &'a Dict, key: &str) -> Option<&'a str> {
    row.get(key).and_then(Value::as_str)
}

/// How many links of `links` are up.
pub fn links_up(links: &LinkManager) -> usize {
    links
        .list()
        .iter()
        .filter(|row| field(row, "state") == Some("up"))
        .count()
}

/// Polls `condition` every 20 ms until it holds; panics naming `what` after `timeout`.
pub async fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Like `wait_until`, for an async condition.
pub async fn wait_until_async<F, Fut>(what: &str, timeout: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !condition().await {
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the link `from` -> `peer` for `realm` is up.
pub async fn wait_link_up(from: &Node, peer: &str, realm: &str) {
    let links = links_of(from);
    let what = format!("link {} -> {peer} ({realm}) up", from.id);
    wait_until(&what, Duration::from_secs(15), || {
        link_state(links, peer, realm).as_deref() == Some("up")
    })
    .await;
}

/// A client session on `realm` of `node`, over TCP.
pub async fn client(node: &Node, realm: &str) -> Session {
    client_at(node.local_addr("tcp").expect("tcp listener"), realm).await
}

/// A client session on `realm` at the TCP address `addr`.
pub async fn client_at(addr: &str, realm: &str) -> Session {
    Session::connect_tcp(addr, ClientConfig::new(realm))
        .await
        .unwrap_or_else(|e| panic!("joining {realm} at {addr}: {e}"))
}

/// Calls `procedure` until it no longer fails with `wamp.error.no_such_procedure` (the interest
/// of a remote callee may still be on its way), at most `timeout`.
pub async fn call_when_routed(
    session: &Session,
    procedure: &str,
    payload: Payload,
    options: Dict,
    timeout: Duration,
) -> Result<CallResult, ClientError> {
    let deadline = Instant::now() + timeout;
    loop {
        match session
            .call(procedure, payload.clone(), options.clone())
            .await
        {
            Err(e)
                if e.uri() == Some("wamp.error.no_such_procedure") && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => return other,
        }
    }
}

/// Waits until a call to `procedure` made on `session`'s node would be routed somewhere
/// (`wamp.registration.match` is not null there).
pub async fn wait_procedure_routed(session: &Session, procedure: &str) {
    let what = format!("{procedure} routed at session {}", session.id());
    wait_until_async(&what, Duration::from_secs(10), || async {
        let args = Payload::args(vec![procedure.into()]);
        match session
            .call("wamp.registration.match", args, Dict::new())
            .await
        {
            Ok(r) => !matches!(first_arg(&r), None | Some(Value::Null)),
            Err(_) => false,
        }
    })
    .await;
}

/// The first positional argument of a result.
pub fn first_arg(result: &CallResult) -> Option<&Value> {
    result.payload.args.as_ref().and_then(|a| a.first())
}

/// Calls a management procedure and returns its first result argument.
pub async fn manage(control: &Session, procedure: &str, args: Vec<Value>) -> Value {
    let result = control
        .call(procedure, Payload::args(args), Dict::new())
        .await
        .unwrap_or_else(|e| panic!("{procedure} failed: {e}"));
    first_arg(&result).cloned().unwrap_or(Value::Null)
}

/// `wampmesh.link.list` through a control session.
pub async fn link_list(control: &Session) -> Vec<Dict> {
    match manage(control, "wampmesh.link.list", Vec::new()).await {
        Value::List(rows) => rows
            .into_iter()
            .filter_map(|r| {
                if let Value::Dict(d) = r {
                    Some(d)
                } else {
                    None
                }
            })
            .collect(),
        other => panic!("wampmesh.link.list returned {other:?}"),
    }
}

/// Waits until `wampmesh.link.list` (through `control`) shows the link to `peer` for `realm` up.
pub async fn wait_listed_up(control: &Session, peer: &str, realm: &str, timeout: Duration) {
    let what = format!("wampmesh.link.list showing {peer}/{realm} up");
    wait_until_async(&what, timeout, || async {
        link_list(control).await.iter().any(|row| {
            field(row, "peer") == Some(peer)
                && field(row, "realm") == Some(realm)
                && field(row, "state") == Some("up")
        })
    })
    .await;
}

/// An `Option<Value>`'s string form for messages.
pub fn show(value: Option<&Value>) -> String {
    format!("{value:?}")
}

/// kwargs of an event or result as a dict (empty if none).
pub fn kwargs(payload: &Payload) -> Dict {
    payload.kwargs.clone().unwrap_or_default()
}

/// `Payload` with only keyword arguments.
pub fn kw(pairs: Vec<(&str, Value)>) -> Payload {
    Payload {
        args: None,
        kwargs: Some(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()),
    }
}

/// A subscription whose events are collected in the background.
pub struct Collector {
    events: std::sync::Arc<std::sync::Mutex<Vec<wampmesh::client::Event>>>,
    stop:
        Option<tokio::sync::oneshot::Sender<tokio::sync::oneshot::Sender<Result<(), ClientError>>>>,
}

impl Collector {
    pub async fn subscribe(session: &Session, topic: &str, options: Dict) -> Collector {
        let mut subscription = session
            .subscribe(topic, options)
            .await
            .unwrap_or_else(|e| panic!("subscribe {topic}: {e}"));
        let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = std::sync::Arc::clone(&events);
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<
            tokio::sync::oneshot::Sender<Result<(), ClientError>>,
        >();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    event = subscription.next() => match event {
                        Some(event) => sink.lock().unwrap_or_else(|p| p.into_inner()).push(event),
                        None => return,
                    },
                    reply = &mut stopped => {
                        let outcome = subscription.unsubscribe().await;
                        if let Ok(reply) = reply {
                            let _ = reply.send(outcome);
                        }
                        return;
                    }
                }
            }
        });
        Collector {
            events,
            stop: Some(stop),
        }
    }

    pub fn events(&self) -> Vec<wampmesh::client::Event> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Events whose kwargs have `key`, by that value (`u64`).
    pub fn numbered(&self, key: &str) -> Vec<u64> {
        self.events()
            .iter()
            .filter_map(|e| kwargs(&e.payload).get(key).and_then(Value::as_u64))
            .collect()
    }

    /// Unsubscribes and waits for the router's answer.
    pub async fn unsubscribe(mut self) {
        let (reply, answer) = tokio::sync::oneshot::channel();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(reply);
        }
        answer
            .await
            .expect("collector task alive")
            .expect("unsubscribe");
    }
}

/// Publishes `{probe: n}` on `topic` from `publisher` until `collector` has a probe: the
/// subscription's interest has reached the publisher's node. Panics after `timeout`.
pub async fn probe_until_delivered(
    publisher: &Session,
    topic: &str,
    collector: &Collector,
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    let mut n: u64 = 0;
    loop {
        n += 1;
        let payload = kw(vec![("probe", n.into())]);
        publisher
            .publish(topic, payload, wampmesh::dict! { "acknowledge" => true })
            .await
            .expect("probe publish");
        let round = Instant::now() + Duration::from_millis(200);
        while Instant::now() < round {
            if !collector.numbered("probe").is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            Instant::now() < deadline,
            "no probe on {topic} delivered within {timeout:?}"
        );
    }
}

/// Waits until UDP `port` on 127.0.0.1 can be bound again (a stopped QUIC endpoint releases
/// its socket once its connections are closed); returns how long that took.
pub async fn wait_udp_port_free(port: u16, timeout: Duration) -> Duration {
    let started = Instant::now();
    wait_until(&format!("udp port {port} free"), timeout, || {
        std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
    })
    .await;
    started.elapsed()
}
