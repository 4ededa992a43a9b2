//! Two router nodes linked over QUIC in one process: an event and a call cross the link.
//!
//! `cargo run --example mesh`
//!
//! Each node gets a certificate from a throwaway mesh CA; node `b` listens for links on QUIC
//! (client certificates required) and node `a` links realm1 to it in its config.

use std::time::Duration;

use wampmesh::client::{ClientConfig, Session};
use wampmesh::config::{templates, Config};
use wampmesh::node::Node;
use wampmesh::wamp::{Dict, Payload, Value};

fn config(dir: &std::path::Path, id: &str, quic_port: u16, link_to: Option<u16>) -> Config {
    // The node's id and certificates, then its listeners, then realm1 open to anonymous
    // clients, then (node a) the link; `wampmesh::config::templates` writes the common parts.
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
    if let Some(port) = link_to {
        let address = format!("127.0.0.1:{port}");
        text.push_str(&templates::link("b", &address, &["realm1"], None));
    }
    Config::from_toml_str(&text).expect("valid config")
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap_or(9443)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let dir = std::env::temp_dir().join(format!("wampmesh-example-mesh-{}", std::process::id()));
    wampmesh::certs::write_mesh_certs(&dir, &["a".into(), "b".into()])?;
    let (port_a, port_b) = (free_udp_port(), free_udp_port());
    let b = Node::start(config(&dir, "b", port_b, None)).await?;
    let a = Node::start(config(&dir, "a", port_a, Some(port_b))).await?;

    let (addr_a, addr_b) = (
        a.local_addr("tcp").unwrap_or_default().to_owned(),
        b.local_addr("tcp").unwrap_or_default().to_owned(),
    );
    let on_b = Session::connect_tcp(&addr_b, ClientConfig::new("realm1")).await?;
    let mut events = on_b.subscribe("com.example.hello", Dict::new()).await?;
    let _callee = on_b
        .serve("com.example.double", Dict::new(), |inv| async move {
            let n = inv
                .payload
                .args
                .iter()
                .flatten()
                .find_map(Value::as_u64)
                .unwrap_or(0);
            let _ = inv.result(Payload::args(vec![(2 * n).into()])).await;
        })
        .await?;

    let on_a = Session::connect_tcp(&addr_a, ClientConfig::new("realm1")).await?;
    // The subscription and registration on b reach a as an interest advertisement; retry briefly.
    for attempt in 0.. {
        on_a.publish(
            "com.example.hello",
            Payload::args(vec!["hello from a".into()]),
            Dict::new(),
        )
        .await?;
        if let Ok(Some(event)) =
            tokio::time::timeout(Duration::from_millis(200), events.next()).await
        {
            println!("b received: {:?}", event.payload.args);
            break;
        }
        if attempt > 50 {
            return Err("the event did not cross the link".into());
        }
    }
    let result = on_a
        .call(
            "com.example.double",
            Payload::args(vec![21u64.into()]),
            Dict::new(),
        )
        .await?;
    println!(
        "a called com.example.double(21) on b: {:?}",
        result.payload.args
    );
    println!("links of a: {:?}", a.links().map(|l| l.list()));

    a.shutdown(Duration::from_secs(2)).await;
    b.shutdown(Duration::from_secs(2)).await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
