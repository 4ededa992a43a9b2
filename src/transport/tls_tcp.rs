//! RawSocket over TLS over TCP: the `transport = "tls"` listener and the connector that clients
//! and `transport = "tls"` links use. No ALPN is required (RawSocket over TLS has none).
//!
//! The TLS handshake runs in the connection's own task, bounded by the listener's
//! `handshake_timeout`, so a slow or silent peer never holds up the accept loop.

use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::ServerConnection;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::{Accept, TransportError};
use crate::session::{SessionContext, SessionEnd};
use crate::wamp::Dict;

/// Binds `address` and starts the accept loop; each connection does its TLS handshake, then
/// runs a session.
pub async fn bind(
    address: &str,
    tls: Arc<rustls::ServerConfig>,
    accept: Accept,
) -> Result<(&'static str, String, JoinHandle<()>), TransportError> {
    let acceptor = TlsAcceptor::from(tls);
    let stop = accept.stop.clone();
    super::tcp::listen("tls", address, stop, move |stream, peer, local| {
        spawn_connection(&accept, acceptor.clone(), stream, peer, local);
    })
    .await
}

/// One accepted connection, tracked with the listener's connections and ending early on abort,
/// like `Accept::spawn_session`, but with the TLS handshake inside the task.
fn spawn_connection(
    accept: &Accept,
    acceptor: TlsAcceptor,
    stream: TcpStream,
    peer: String,
    local: String,
) {
    let ctx = accept.ctx.clone();
    let abort = accept.abort.clone();
    accept.connections.spawn(async move {
        tokio::select! {
            result = serve_tls(acceptor, stream, &peer, local, ctx) => {
                if let Err(end) = result {
                    tracing::debug!(%peer, reason = %end, "connection ended");
                }
            }
            _ = abort.cancelled() => tracing::debug!(%peer, "connection aborted"),
        }
    });
}

async fn serve_tls(
    acceptor: TlsAcceptor,
    stream: TcpStream,
    peer: &str,
    local: String,
    ctx: SessionContext,
) -> Result<(), SessionEnd> {
    let stream =
        match tokio::time::timeout(ctx.settings.handshake_timeout, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::warn!(%peer, error = %e, "TLS handshake failed");
                return Err(SessionEnd::Handshake);
            }
            Err(_) => return Err(SessionEnd::Timeout("TLS handshake")),
        };
    let transport = transport_dict(peer, local, stream.get_ref().1);
    let (reader, writer) = tokio::io::split(stream);
    crate::session::serve(reader, writer, transport, ctx).await
}

/// What the session learns about its transport; `peer_cert_node_id` when the client presented a
/// certificate (listeners with `require_client_cert`).
pub(super) fn transport_dict(peer: &str, local: String, tls: &ServerConnection) -> Dict {
    let mut transport = crate::dict! { "type" => "rawsocket", "protocol" => "tls", "peer" => peer, "local" => local };
    let node_id = tls
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(super::tls::peer_node_id);
    if let Some(node_id) = node_id {
        transport.insert("peer_cert_node_id".to_owned(), node_id.into());
    }
    transport
}

/// Connects to `address` and does the TLS handshake, checking the server against `server_name`
/// as the config's trust says (a CA checks the name; a pinned fingerprint ignores it).
pub async fn connect(
    address: &str,
    server_name: &str,
    tls: Arc<rustls::ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let name = ServerName::try_from(server_name.to_owned()).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("server name {server_name:?}: {e}"),
        )
    })?;
    let stream = TcpStream::connect(address).await?;
    let _ = stream.set_nodelay(true);
    TlsConnector::from(tls).connect(name, stream).await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_util::sync::CancellationToken;
    use tokio_util::task::TaskTracker;

    use super::*;
    use crate::session::ListenerSettings;
    use crate::transport::tls::{client_config, server_config, Identity, ServerTrust};

    fn accept(handshake_timeout: Duration) -> Accept {
        let settings = ListenerSettings {
            transport: "tls",
            serializers: vec![crate::wamp::Serializer::Json],
            max_message_size: 1 << 20,
            min_peer_message_size: 512,
            auth: Default::default(),
            handshake_timeout,
            hello_timeout: handshake_timeout,
            outbound_queue: 16,
            slow_consumer: crate::config::SlowConsumerPolicy::Close,
            trusted: false,
            management: None,
        };
        let ctx = SessionContext {
            settings: Arc::new(settings),
            realms: Default::default(),
            shutdown: CancellationToken::new(),
            admission: Default::default(),
            metrics: Default::default(),
        };
        Accept {
            ctx,
            connections: TaskTracker::new(),
            stop: CancellationToken::new(),
            abort: CancellationToken::new(),
        }
    }

    /// Sends a RawSocket handshake (JSON) and returns the router's 4-byte answer.
    async fn rawsocket_handshake<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
        stream: &mut S,
    ) -> [u8; 4] {
        stream.write_all(&[0x7F, 0xF1, 0, 0]).await.unwrap();
        let mut reply = [0u8; 4];
        stream.read_exact(&mut reply).await.unwrap();
        reply
    }

    #[tokio::test]
    async fn session_runs_over_tls_while_a_silent_peer_waits() {
        let id = Identity::self_signed(&["node1"]).unwrap();
        let server = Arc::new(server_config(&id, None, &[]).unwrap());
        let accept = accept(Duration::from_millis(300));
        let (stop, tracker) = (accept.stop.clone(), accept.connections.clone());
        let (transport, address, task) = bind("127.0.0.1:0", server, accept).await.unwrap();
        assert_eq!(transport, "tls");

        // A peer that never starts its TLS handshake does not block the next one...
        let mut silent = TcpStream::connect(&address).await.unwrap();
        let client = Arc::new(
            client_config(&ServerTrust::Fingerprint(id.fingerprint()), None, &[]).unwrap(),
        );
        let mut stream = connect(&address, "whatever", client).await.unwrap();
        let reply = rawsocket_handshake(&mut stream).await;
        assert_eq!((reply[0], reply[1] & 0x0F), (0x7F, 1));

        // ...and is dropped once the handshake timeout passes.
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf))
            .await
            .expect("closed");
        assert!(matches!(read, Ok(0) | Err(_)));

        stop.cancel();
        task.await.unwrap();
        drop(stream);
        tracker.close();
        tokio::time::timeout(Duration::from_secs(5), tracker.wait())
            .await
            .expect("connections end");
    }

    #[tokio::test]
    async fn client_certificate_node_id_reaches_the_transport_dict() {
        let server_id = Identity::self_signed(&["node1"]).unwrap();
        let client_id = Identity::self_signed(&["node2"]).unwrap();
        let server = server_config(&server_id, Some(&client_id.chain), &[]).unwrap();
        let trust = ServerTrust::Fingerprint(server_id.fingerprint());
        let client = client_config(&trust, Some(&client_id), &[]).unwrap();
        let (near, far) = tokio::io::duplex(64 * 1024);
        let name = ServerName::try_from("node1").unwrap();
        let (server, client) = tokio::join!(
            TlsAcceptor::from(Arc::new(server)).accept(far),
            TlsConnector::from(Arc::new(client)).connect(name, near),
        );
        let (server, _client) = (server.unwrap(), client.unwrap());
        let dict = transport_dict("127.0.0.1:1", "127.0.0.1:2".into(), server.get_ref().1);
        assert_eq!(dict.get("protocol").and_then(|v| v.as_str()), Some("tls"));
        assert_eq!(
            dict.get("peer_cert_node_id").and_then(|v| v.as_str()),
            Some("node2")
        );
    }

    #[tokio::test]
    async fn connect_refuses_a_server_with_another_fingerprint() {
        let id = Identity::self_signed(&["node1"]).unwrap();
        let other = Identity::self_signed(&["node1"]).unwrap();
        let accept = accept(Duration::from_secs(2));
        let stop = accept.stop.clone();
        let server = Arc::new(server_config(&id, None, &[]).unwrap());
        let (_, address, task) = bind("127.0.0.1:0", server, accept).await.unwrap();
        let client = Arc::new(
            client_config(&ServerTrust::Fingerprint(other.fingerprint()), None, &[]).unwrap(),
        );
        assert!(connect(&address, "node1", client).await.is_err());
        stop.cancel();
        task.await.unwrap();
    }
}
