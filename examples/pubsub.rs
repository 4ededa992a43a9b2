//! Publish and subscribe: subscribe to `com.example.tick`, publish 5 events to it, print what
//! arrives.
//!
//! Start a node first (`cargo run -- node`), then:
//!
//! ```text
//! cargo run --example pubsub                  # node at 127.0.0.1:8080
//! cargo run --example pubsub -- host:port     # another node
//! ```

use std::time::Duration;

use wampmesh::client::{ClientConfig, Session};
use wampmesh::dict;
use wampmesh::wamp::{Dict, Payload, Value};

const TOPIC: &str = "com.example.tick";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let session = Session::connect_tcp(&addr, ClientConfig::new("realm1")).await?;
    println!("joined realm1 on {addr} as session {}", session.id());

    let mut ticks = session.subscribe(TOPIC, Dict::new()).await?;

    // A publisher does not receive its own events unless it asks (`exclude_me: false`);
    // `acknowledge: true` makes publish wait for the router's PUBLISHED.
    let options = dict! { "acknowledge" => true, "exclude_me" => false };
    for n in 1..=5u64 {
        let payload = Payload::args(vec![Value::from(n)]);
        if let Some(publication) = session.publish(TOPIC, payload, options.clone()).await? {
            println!("published tick {n} (publication {publication})");
        }
    }

    for _ in 1..=5 {
        match tokio::time::timeout(Duration::from_secs(5), ticks.next()).await {
            Ok(Some(event)) => println!("received tick {:?}", event.payload.args),
            Ok(None) => break,
            Err(_) => {
                println!("no event within 5 s");
                break;
            }
        }
    }

    ticks.unsubscribe().await?;
    session.leave("wamp.close.normal").await?;
    Ok(())
}
