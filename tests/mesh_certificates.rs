//! Certificates at the link level (in-process nodes, QUIC links, listeners with
//! `require_client_cert = true`): a link whose node certificate comes from another CA never comes
//! up and says why; a dialer refuses a listener whose certificate names another node than the
//! link's `peer`; a listener takes the linking node's id from its certificate, whatever the
//! dialer's config calls itself. (Transport-level checks of the same rules: tests/quic_transport.rs
//! `mutual_tls_requires_a_certificate_from_the_mesh_ca`, src/transport/tls/tests.rs.)

mod common;

use std::path::Path;
use std::time::Duration;

use common::mesh::{
    client, field, free_udp_ports, link_state, links_of, mesh_certs, node_toml, wait_link_up,
    wait_until, LinkTo, REALM,
};
use wampmesh::config::Config;
use wampmesh::link::LinkEvent;
use wampmesh::node::Node;
use wampmesh::wamp::{Dict, Payload, Value};

/// Node `id` (TCP for clients, QUIC with client certificates required) whose `[tls]` uses
/// `ca` from `trust_dir` and the certificate `cert_id` from `cert_dir`, with `links`.
async fn start(
    id: &str,
    trust_dir: &Path,
    cert_dir: &Path,
    cert_id: &str,
    links: &[LinkTo],
) -> Node {
    let quic_port = free_udp_ports(1)[0];
    let text = node_toml(trust_dir, id, 0, quic_port, links);
    let own = |ext: &str| format!("{}/{cert_id}.{ext}", cert_dir.display());
    let text = text
        .replace(&format!("{}/{id}.pem", trust_dir.display()), &own("pem"))
        .replace(&format!("{}/{id}.key", trust_dir.display()), &own("key"));
    let config = Config::from_toml_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    Node::start(config)
        .await
        .unwrap_or_else(|e| panic!("node {id} starts: {e}"))
}

fn quic_port(node: &Node) -> u16 {
    let addr = node.local_addr("quic").expect("quic listener");
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port")
}

fn link_to(peer: &str, node: &Node) -> LinkTo {
    LinkTo {
        peer: peer.to_owned(),
        quic_port: quic_port(node),
    }
}

async fn stop(node: Node) {
    tokio::time::timeout(
        Duration::from_secs(10),
        node.shutdown(Duration::from_secs(2)),
    )
    .await
    .expect("node shuts down");
}

/// Waits for the link to `peer` to report an error; returns it. Asserts the link is not up.
async fn link_failure(node: &Node, peer: &str) -> String {
    let links = links_of(node);
    let last_error = || {
        links
            .list()
            .into_iter()
            .find(|row| field(row, "peer") == Some(peer))
            .and_then(|row| field(&row, "last_error").map(str::to_owned))
    };
    wait_until(
        &format!("link {} -> {peer} to report a failure", node.id),
        Duration::from_secs(10),
        || last_error().is_some(),
    )
    .await;
    assert_ne!(link_state(links, peer, REALM).as_deref(), Some("up"));
    last_error().unwrap_or_default()
}

/// The authids of `rlink` sessions in realm1 of `node`, by the session meta API.
async fn link_authids(node: &Node) -> Vec<String> {
    let observer = client(node, REALM).await;
    let list = observer
        .call("wamp.session.list", Payload::default(), Dict::new())
        .await
        .expect("session list");
    let ids = match list.payload.args.and_then(|a| a.into_iter().next()) {
        Some(Value::List(ids)) => ids,
        other => panic!("wamp.session.list returned {other:?}"),
    };
    let mut authids = Vec::new();
    for id in ids {
        let got = observer
            .call("wamp.session.get", Payload::args(vec![id]), Dict::new())
            .await
            .expect("session get");
        if let Some(Value::Dict(d)) = got.payload.args.and_then(|a| a.into_iter().next()) {
            if d.get("authrole").and_then(Value::as_str) == Some("rlink") {
                authids.push(d["authid"].as_str().unwrap_or_default().to_owned());
            }
        }
    }
    authids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_ca_never_brings_the_link_up() {
    let mesh = mesh_certs("cert-audit-mesh", &["node1", "node2"]);
    // A CA of its own, issuing a certificate with the right name: still not a mesh member.
    let foreign = mesh_certs("cert-audit-foreign", &["node1"]);
    let node2 = start("node2", &mesh, &mesh, "node2", &[]).await;
    let node1 = start(
        "node1",
        &mesh,
        &foreign,
        "node1",
        &[link_to("node2", &node2)],
    )
    .await;
    let mut events = links_of(&node1).events();
    let why = link_failure(&node1, "node2").await;
    println!("foreign-CA link failure: {why}");
    // The listener refuses at the TLS handshake; the dialer's last_error carries its reason
    // (same CA name, another key: "invalid peer certificate: BadSignature").
    assert!(why.contains("invalid peer certificate"), "{why}");
    // The loss is reported as an event with the reason too (a started link that fails to come
    // up may report it as Down before retrying, or only in last_error: either way never Up).
    tokio::time::sleep(Duration::from_millis(500)).await;
    while let Ok(event) = events.try_recv() {
        assert!(
            !matches!(event, LinkEvent::Up { .. }),
            "the foreign-CA link came up: {event:?}"
        );
        if let LinkEvent::Down { reason, .. } = event {
            assert!(!reason.is_empty());
        }
    }
    assert!(
        link_authids(&node2).await.is_empty(),
        "node2 has a link session"
    );
    stop(node1).await;

    // The same node with its mesh certificate links fine: the refusal was the certificate.
    let node1 = start("node1", &mesh, &mesh, "node1", &[link_to("node2", &node2)]).await;
    wait_link_up(&node1, "node2", REALM).await;
    stop(node1).await;
    stop(node2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dialer_refuses_a_listener_that_is_not_the_peer_it_named() {
    let mesh = mesh_certs("cert-audit-peer", &["node1", "node2", "node3"]);
    let node2 = start("node2", &mesh, &mesh, "node2", &[]).await;
    // node1 believes node3 listens at node2's address.
    let node1 = start("node1", &mesh, &mesh, "node1", &[link_to("node3", &node2)]).await;
    let why = link_failure(&node1, "node3").await;
    println!("wrong-peer link failure: {why}");
    assert!(
        why.contains("invalid peer certificate") && why.contains("not valid for name \"node3\""),
        "{why}"
    );
    assert!(
        link_authids(&node2).await.is_empty(),
        "node2 has a link session"
    );
    stop(node1).await;
    stop(node2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_names_the_link_after_the_certificate_not_the_config() {
    let mesh = mesh_certs("cert-audit-authid", &["node1", "node2"]);
    let node2 = start("node2", &mesh, &mesh, "node2", &[]).await;
    // A node calling itself "node3" but holding node1's certificate.
    let impostor = start("node3", &mesh, &mesh, "node1", &[link_to("node2", &node2)]).await;
    wait_link_up(&impostor, "node2", REALM).await;
    let authids = link_authids(&node2).await;
    assert_eq!(authids, ["node1"], "authid comes from the certificate");
    stop(impostor).await;
    stop(node2).await;
}
