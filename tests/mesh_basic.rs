//! Two and three linked nodes in-process: events and calls cross QUIC links.

use std::time::Duration;

use wampmesh::client::{ClientConfig, Session};
use wampmesh::config::{templates, Config};
use wampmesh::node::Node;
use wampmesh::wamp::{Dict, Payload, Value};

fn cert_dir(name: &str, nodes: &[&str]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("wampmesh-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let nodes: Vec<String> = nodes.iter().map(|n| n.to_string()).collect();
    wampmesh::certs::write_mesh_certs(&dir, &nodes).expect("certs");
    dir
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn node_config(dir: &std::path::Path, id: &str, quic_port: u16, links: &[(&str, u16)]) -> Config {
    let mut text = templates::node_tls(dir, id);
    text.push_str(&format!(
        r#"[[listen]]
transport = "tcp"
address = "127.0.0.1:0"
[[listen]]
transport = "quic"
address = "127.0.0.1:{quic_port}"
require_client_cert = true
"#
    ));
    text.push_str(&templates::open_realm("realm1"));
    for (peer, port) in links {
        let address = format!("127.0.0.1:{port}");
        let reconnect = "{ initial_ms = 50, max_ms = 500 }";
        text.push_str(&templates::link(
            peer,
            &address,
            &["realm1"],
            Some(reconnect),
        ));
    }
    Config::from_toml_str(&text).expect("config")
}

async fn client(node: &Node) -> Session {
    let addr = node.local_addr("tcp").unwrap().to_owned();
    Session::connect_tcp(&addr, ClientConfig::new("realm1"))
        .await
        .expect("join")
}

async fn wait_until<F: Fn() -> bool>(what: &str, f: F) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_and_calls_cross_a_quic_link() {
    let dir = cert_dir("pair", &["a", "b"]);
    let (pa, pb) = (free_udp_port(), free_udp_port());
    let b = Node::start(node_config(&dir, "b", pb, &[])).await.unwrap();
    let a = Node::start(node_config(&dir, "a", pa, &[("b", pb)]))
        .await
        .unwrap();
    let links = a.links().unwrap().clone();
    wait_until("link up", || {
        links
            .list()
            .iter()
            .any(|l| l.get("state").and_then(Value::as_str) == Some("up"))
    })
    .await;

    let sub_b = client(&b).await;
    let mut sub = sub_b.subscribe("com.example.t", Dict::new()).await.unwrap();
    let callee_b = client(&b).await;
    let mut reg = callee_b
        .register("com.example.add", Dict::new())
        .await
        .unwrap();
    tokio::spawn(async move {
        while let Some(inv) = reg.next().await {
            let args = inv.payload.args.clone().unwrap_or_default();
            let sum: u64 = args.iter().filter_map(Value::as_u64).sum();
            let _ = inv.result(Payload::args(vec![sum.into()])).await;
        }
    });
    let pub_a = client(&a).await;
    // Interest travels to A asynchronously: retry the call until the procedure is known there.
    let mut result = None;
    for _ in 0..100 {
        match pub_a
            .call(
                "com.example.add",
                Payload::args(vec![2u64.into(), 3u64.into()]),
                Dict::new(),
            )
            .await
        {
            Ok(r) => {
                result = Some(r);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(25)).await,
        }
    }
    assert_eq!(
        result.expect("call crossed the link").payload.args,
        Some(vec![Value::UInt(5)])
    );
    pub_a
        .publish(
            "com.example.t",
            Payload::args(vec!["hello".into()]),
            Dict::new(),
        )
        .await
        .unwrap();
    let event = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("event in time")
        .expect("event");
    assert_eq!(event.payload.args, Some(vec![Value::from("hello")]));

    a.shutdown(Duration::from_secs(2)).await;
    b.shutdown(Duration::from_secs(2)).await;
}
