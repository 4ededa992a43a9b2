//! RawSocket over TCP.

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::{Accept, TransportError};

/// Binds `address` and starts the accept loop.
pub async fn bind(
    address: &str,
    accept: Accept,
) -> Result<(&'static str, String, JoinHandle<()>), TransportError> {
    let fail = |source| TransportError::Bind {
        transport: "tcp",
        address: address.to_owned(),
        source,
    };
    let listener = TcpListener::bind(address).await.map_err(fail)?;
    let local = listener.local_addr().map_err(fail)?.to_string();
    let local_addr = local.clone();
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = accept.stop.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        let transport = crate::dict! { "type" => "rawsocket", "protocol" => "tcp", "peer" => peer.to_string(), "local" => local.clone() };
                        let (reader, writer) = stream.into_split();
                        accept.spawn_session(reader, writer, transport);
                    }
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "tcp accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                },
            }
        }
        drop(listener);
    });
    Ok(("tcp", local_addr, task))
}
