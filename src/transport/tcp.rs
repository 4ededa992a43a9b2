//! RawSocket over TCP.

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Accept, TransportError};

/// Binds `address` and starts the accept loop.
pub async fn bind(
    address: &str,
    accept: Accept,
) -> Result<(&'static str, String, JoinHandle<()>), TransportError> {
    let stop = accept.stop.clone();
    listen("tcp", address, stop, move |stream, peer, local| {
        let transport = crate::dict! { "type" => "rawsocket", "protocol" => "tcp", "peer" => peer, "local" => local };
        let (reader, writer) = stream.into_split();
        accept.spawn_session(reader, writer, transport);
    })
    .await
}

/// The accept loop every TCP-based listener (tcp, tls, websocket) shares: binds `address`,
/// then hands each accepted connection (TCP_NODELAY on) to `on_connection` with its peer and
/// local address until `stop` fires; a failed accept (EMFILE and friends) backs off instead
/// of spinning. Returns `transport`, the bound address and the loop's task.
pub async fn listen<F>(
    transport: &'static str,
    address: &str,
    stop: CancellationToken,
    mut on_connection: F,
) -> Result<(&'static str, String, JoinHandle<()>), TransportError>
where
    F: FnMut(TcpStream, String, String) + Send + 'static,
{
    let fail = |source| TransportError::Bind {
        transport,
        address: address.to_owned(),
        source,
    };
    let listener = TcpListener::bind(address).await.map_err(fail)?;
    let local = listener.local_addr().map_err(fail)?.to_string();
    let local_addr = local.clone();
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        on_connection(stream, peer.to_string(), local.clone());
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, transport, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                },
            }
        }
        drop(listener);
    });
    Ok((transport, local_addr, task))
}
