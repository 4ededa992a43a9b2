//! Link a realm at runtime through the management API of a running node.
//!
//! `cargo run --example dynamic_link -- NODE_TCP_ADDR PEER_ID PEER_QUIC_ADDR REALM`
//!
//! For example, with two nodes configured as in README "Linking nodes":
//! `cargo run --example dynamic_link -- 127.0.0.1:8080 node2 127.0.0.1:9442 realm2`
//! (the realm must exist on both nodes: `wampmesh.realm.start` makes it at runtime, as below).
//! Over QUIC the new realm link is a new stream on the existing connection to the peer: the
//! listing shows the same connection id and handshake count before and after.

use wampmesh::client::{ClientConfig, Session};
use wampmesh::wamp::{Dict, Payload, Value};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [node, peer, address, realm] = args.as_slice() else {
        eprintln!("usage: dynamic_link NODE_TCP_ADDR PEER_ID PEER_QUIC_ADDR REALM");
        std::process::exit(2);
    };
    // Anonymous sessions from loopback may manage the node while [management] allow_local = true.
    let control = Session::connect_tcp(node, ClientConfig::new("wampmesh.control")).await?;
    let list = || control.call("wampmesh.link.list", Payload::default(), Dict::new());
    println!("before: {:?}", list().await?.payload.args);

    control
        .call(
            "wampmesh.realm.start",
            Payload::args(vec![realm.as_str().into()]),
            Dict::new(),
        )
        .await?;
    let options = Value::Dict(wampmesh::dict! { "transport" => "quic", "reconnect" => "manual" });
    let start = vec![
        peer.as_str().into(),
        address.as_str().into(),
        realm.as_str().into(),
        options,
    ];
    control
        .call("wampmesh.link.start", Payload::args(start), Dict::new())
        .await?;
    println!("linked {realm} to {peer}");

    let mut events = control
        .subscribe("wampmesh.link.on_up", Dict::new())
        .await?;
    if let Ok(Some(up)) =
        tokio::time::timeout(std::time::Duration::from_secs(5), events.next()).await
    {
        println!("on_up: {:?}", up.payload.args);
    }
    println!("after: {:?}", list().await?.payload.args);
    control.leave("wamp.close.normal").await?;
    Ok(())
}
