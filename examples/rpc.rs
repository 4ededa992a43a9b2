//! Remote procedure calls: register `com.example.add2` and call it, then a progressive call
//! to `com.example.countdown`, which sends each number as a progressive result.
//!
//! Start a node first (`cargo run -- node`), then:
//!
//! ```text
//! cargo run --example rpc                  # node at 127.0.0.1:8080
//! cargo run --example rpc -- host:port     # another node
//! ```

use std::time::Duration;

use wampmesh::client::{ClientConfig, Invocation, Session};
use wampmesh::wamp::{Dict, Payload, Value};

/// A WAMP integer as i64 (non-negative integers decode as `UInt`).
fn int(value: &Value) -> Option<i64> {
    match value {
        Value::UInt(n) => i64::try_from(*n).ok(),
        Value::Int(n) => Some(*n),
        _ => None,
    }
}

/// The integer positional arguments of an invocation, if they all are integers.
fn int_args(invocation: &Invocation) -> Option<Vec<i64>> {
    let args = invocation.payload.args.as_deref().unwrap_or_default();
    args.iter().map(int).collect()
}

async fn add2(invocation: Invocation) {
    let outcome = match int_args(&invocation).as_deref() {
        Some([a, b]) => {
            let sum = Value::from(a + b);
            invocation.result(Payload::args(vec![sum])).await
        }
        _ => {
            let error = "wamp.error.invalid_argument";
            let message = Value::from("add2 takes two integers");
            invocation.error(error, Payload::args(vec![message])).await
        }
    };
    if let Err(e) = outcome {
        eprintln!("could not answer: {e}");
    }
}

/// Sends n, n-1, …, 1 as progressive results (when the caller asked for them), then "liftoff".
async fn countdown(invocation: Invocation) {
    let from = int_args(&invocation)
        .and_then(|args| args.first().copied())
        .unwrap_or(3);
    if invocation.receive_progress() {
        for n in (1..=from).rev() {
            if invocation
                .progress(Payload::args(vec![Value::from(n)]))
                .await
                .is_err()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let _ = invocation
        .result(Payload::args(vec![Value::from("liftoff")]))
        .await;
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let session = Session::connect_tcp(&addr, ClientConfig::new("realm1")).await?;
    println!("joined realm1 on {addr} as session {}", session.id());

    // Each handle keeps its procedure registered; dropping it unregisters.
    let add = session.serve("com.example.add2", Dict::new(), add2).await?;
    let count = session
        .serve("com.example.countdown", Dict::new(), countdown)
        .await?;

    let args = Payload::args(vec![Value::from(2u64), Value::from(3u64)]);
    let sum = session.call("com.example.add2", args, Dict::new()).await?;
    println!("add2(2, 3) = {:?}", sum.payload.args);

    let args = Payload::args(vec![Value::from(3u64)]);
    let mut call = session
        .call_with_progress("com.example.countdown", args, Dict::new())
        .await?;
    while let Some(result) = call.next().await {
        let result = result?;
        let kind = if result.is_progress() {
            "progress"
        } else {
            "final"
        };
        println!("countdown {kind}: {:?}", result.payload.args);
    }

    add.stop().await;
    count.stop().await;
    session.leave("wamp.close.normal").await?;
    Ok(())
}
