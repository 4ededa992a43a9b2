//! QUIC (ALPN `wamp.2.quic`): every client-initiated bidirectional stream is one RawSocket
//! connection carrying one WAMP session. `QuicServerFactory` binds an endpoint and accepts
//! `QuicServerConnection`s; `QuicConnector` opens connections and any number of sessions on each.
//!
//! Transport settings are ours, not quinn's defaults: concurrent streams (quinn allows 100),
//! keep-alive (quinn has none), idle timeout, bounded stream and connection receive windows.
//! Unbinding a QUIC listener refuses new connections at once (CONNECTION_REFUSED); the UDP
//! port is shared by the connections already accepted, so it is freed when they have drained.

use std::net::SocketAddr;

use std::sync::Arc;
use std::time::Duration;
use tokio_util::task::TaskTracker;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use tokio::task::JoinHandle;

use crate::config::ListenConfig;

use super::{Accept, TransportError};

/// The knobs we set on purpose (see the config reference for defaults and reasons).
#[derive(Debug, Clone)]
pub struct QuicSettings {
    pub max_streams: u64,
    pub keep_alive: Option<Duration>,
    pub idle_timeout: Duration,
    pub stream_receive_window: u64,
    pub receive_window: u64,
    pub send_window: u64,
    pub udp_send_buffer: Option<usize>,
    pub udp_recv_buffer: Option<usize>,
}

impl Default for QuicSettings {
    fn default() -> Self {
        QuicSettings {
            max_streams: 100_000,
            keep_alive: Some(Duration::from_secs(5)),
            idle_timeout: Duration::from_secs(30),
            stream_receive_window: 256 * 1024,
            receive_window: 16 * 1024 * 1024,
            send_window: 16 * 1024 * 1024,
            udp_send_buffer: Some(2 * 1024 * 1024),
            udp_recv_buffer: Some(2 * 1024 * 1024),
        }
    }
}

impl QuicSettings {
    pub fn from_listen(config: &ListenConfig) -> QuicSettings {
        QuicSettings {
            max_streams: config.max_streams,
            keep_alive: (config.keep_alive_ms > 0)
                .then(|| Duration::from_millis(config.keep_alive_ms)),
            idle_timeout: Duration::from_millis(config.idle_timeout_ms),
            stream_receive_window: config.stream_receive_window,
            receive_window: config.receive_window,
            send_window: config.send_window,
            udp_send_buffer: config.udp_send_buffer.or(Some(2 * 1024 * 1024)),
            udp_recv_buffer: config.udp_recv_buffer.or(Some(2 * 1024 * 1024)),
        }
    }

    /// quinn's transport config from these settings.
    pub fn transport_config(&self) -> quinn::TransportConfig {
        let var = |n: u64| quinn::VarInt::from_u64(n).unwrap_or(quinn::VarInt::MAX);
        let mut t = quinn::TransportConfig::default();
        t.max_concurrent_bidi_streams(var(self.max_streams))
            // We never use unidirectional streams.
            .max_concurrent_uni_streams(quinn::VarInt::from_u32(0))
            .stream_receive_window(var(self.stream_receive_window))
            .receive_window(var(self.receive_window))
            .send_window(self.send_window)
            .keep_alive_interval(self.keep_alive)
            .max_idle_timeout(quinn::IdleTimeout::try_from(self.idle_timeout).ok())
            // Round-robin between streams: a bulk realm must not starve the other realms of a
            // link (no head-of-line blocking between realms, also at the sender).
            .send_fairness(true)
            .datagram_receive_buffer_size(None);
        t
    }

    /// A UDP socket bound to `addr` with our buffer sizes.
    fn socket(&self, addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
        let domain = if addr.is_ipv4() {
            socket2::Domain::IPV4
        } else {
            socket2::Domain::IPV6
        };
        let socket =
            socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
        if let Some(size) = self.udp_send_buffer {
            let _ = socket.set_send_buffer_size(size);
        }
        if let Some(size) = self.udp_recv_buffer {
            let _ = socket.set_recv_buffer_size(size);
        }
        socket.bind(&addr.into())?;
        Ok(socket.into())
    }

    /// An endpoint on `addr`, server if `server` is given, with `client` as default client config.
    pub fn endpoint(
        &self,
        addr: SocketAddr,
        server: Option<quinn::ServerConfig>,
        client: Option<quinn::ClientConfig>,
    ) -> std::io::Result<quinn::Endpoint> {
        let socket = self.socket(addr)?;
        let runtime =
            quinn::default_runtime().ok_or_else(|| std::io::Error::other("no async runtime"))?;
        let mut endpoint =
            quinn::Endpoint::new(quinn::EndpointConfig::default(), server, socket, runtime)?;
        if let Some(client) = client {
            endpoint.set_default_client_config(client);
        }
        Ok(endpoint)
    }

    pub fn server_config(&self, tls: rustls::ServerConfig) -> Result<quinn::ServerConfig, String> {
        let crypto = QuicServerConfig::try_from(tls).map_err(|e| e.to_string())?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        server.transport_config(Arc::new(self.transport_config()));
        Ok(server)
    }

    pub fn client_config(&self, tls: rustls::ClientConfig) -> Result<quinn::ClientConfig, String> {
        let crypto = QuicClientConfig::try_from(tls).map_err(|e| e.to_string())?;
        let mut client = quinn::ClientConfig::new(Arc::new(crypto));
        let mut transport = self.transport_config();
        // Only the connecting side opens streams (one per realm link or client session). quinn
        // keeps state for every stream the peer may open, so a connector allows none.
        transport.max_concurrent_bidi_streams(quinn::VarInt::from_u32(0));
        client.transport_config(Arc::new(transport));
        Ok(client)
    }
}

/// Binds QUIC listeners.
pub struct QuicServerFactory;

impl QuicServerFactory {
    /// Binds `address` and starts accepting connections; each stream runs a session.
    pub async fn bind(
        address: &str,
        tls: rustls::ServerConfig,
        settings: &QuicSettings,
        accept: Accept,
    ) -> Result<(&'static str, String, JoinHandle<()>), TransportError> {
        let fail = |e: std::io::Error| TransportError::Bind {
            transport: "quic",
            address: address.to_owned(),
            source: e,
        };
        let addr: SocketAddr = address
            .parse()
            .map_err(|e| fail(std::io::Error::new(std::io::ErrorKind::InvalidInput, e)))?;
        let server = settings
            .server_config(tls)
            .map_err(|e| fail(std::io::Error::other(e)))?;
        let endpoint = settings.endpoint(addr, Some(server), None).map_err(fail)?;
        let local = endpoint.local_addr().map_err(fail)?.to_string();
        let task = tokio::spawn(accept_loop(endpoint, accept));
        Ok(("quic", local, task))
    }
}

async fn accept_loop(endpoint: quinn::Endpoint, accept: Accept) {
    loop {
        tokio::select! {
            _ = accept.stop.cancelled() => break,
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                let accept = accept.clone();
                accept.connections.clone().spawn(async move {
                    let timeout = accept.ctx.settings.handshake_timeout;
                    let remote = incoming.remote_address();
                    match tokio::time::timeout(timeout, async { incoming.accept()?.await }).await {
                        Ok(Ok(connection)) => QuicServerConnection::new(connection).serve(accept).await,
                        Ok(Err(e)) => tracing::debug!(peer = %remote, error = %e, "quic handshake failed"),
                        Err(_) => tracing::debug!(peer = %remote, "quic handshake timed out"),
                    }
                });
            }
        }
    }
    // Unbound: refuse new connections at once (CONNECTION_REFUSED) while the accepted ones
    // keep the shared UDP socket; when the last one has ended, the socket (port) is freed.
    accept.connections.spawn(async move {
        loop {
            tokio::select! {
                _ = endpoint.wait_idle() => break,
                incoming = endpoint.accept() => match incoming {
                    Some(incoming) => incoming.refuse(),
                    None => break,
                },
            }
        }
    });
}

/// The application error code of a stream refused because the listener is unbound.
pub const STREAM_REFUSED: quinn::VarInt = quinn::VarInt::from_u32(1);

/// An accepted QUIC connection with its endpoint metadata.
#[derive(Debug, Clone)]
pub struct QuicServerConnection {
    pub connection: quinn::Connection,
    /// The node id from the client's certificate (mTLS), if it presented one.
    pub peer_node_id: Option<String>,
}

impl QuicServerConnection {
    pub fn new(connection: quinn::Connection) -> Self {
        let peer_node_id = peer_certificate_node_id(&connection);
        QuicServerConnection {
            connection,
            peer_node_id,
        }
    }

    /// Accepts streams until the connection ends; each one is a RawSocket session. Once the
    /// listener is unbound, new streams are refused (STOP_SENDING and RESET_STREAM, code
    /// [`STREAM_REFUSED`]) like new connections are, and the connection closes as soon as its
    /// sessions have drained, so a peer learns at once instead of at the abort deadline.
    async fn serve(self, accept: Accept) {
        let conn = &self.connection;
        let peer = conn.remote_address().to_string();
        // One map for all the connection's sessions; each adds its stream (see `SessionTransport`).
        let mut transport = crate::dict! {
            "type" => "rawsocket", "protocol" => "quic", "peer" => peer.clone(),
            "connection" => conn.stable_id() as u64,
        };
        if let Some(node) = &self.peer_node_id {
            transport.insert("peer_cert_node_id".into(), node.clone().into());
        }
        let transport = std::sync::Arc::new(transport);
        tracing::debug!(%peer, id = conn.stable_id(), node = ?self.peer_node_id, "quic connection accepted");
        let sessions = TaskTracker::new();
        let mut draining = false;
        loop {
            tokio::select! {
                _ = accept.abort.cancelled() => {
                    conn.close(quinn::VarInt::from_u32(0), b"node shutting down");
                    break;
                }
                _ = accept.stop.cancelled(), if !draining => {
                    draining = true;
                    sessions.close();
                }
                _ = sessions.wait(), if draining => {
                    conn.close(quinn::VarInt::from_u32(0), b"listener unbound");
                    break;
                }
                stream = conn.accept_bi() => match stream {
                    Ok((mut send, mut recv)) if draining => {
                        let _ = recv.stop(STREAM_REFUSED);
                        let _ = send.reset(STREAM_REFUSED);
                    }
                    Ok((send, recv)) => {
                        let transport = crate::router::SessionTransport {
                            stream: Some(send.id().index()),
                            ..std::sync::Arc::clone(&transport).into()
                        };
                        accept.spawn_session_on(recv, send, transport, Some(&sessions));
                    }
                    Err(e) => {
                        tracing::debug!(%peer, reason = %e, "quic connection ended");
                        break;
                    }
                },
            }
        }
    }
}

/// The node id in the peer's TLS certificate, if any.
pub fn peer_certificate_node_id(connection: &quinn::Connection) -> Option<String> {
    let identity = connection.peer_identity()?;
    let chain = identity
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .ok()?;
    chain.first().and_then(super::tls::peer_node_id)
}

/// The client side: one endpoint, connections to peers, sessions as streams.
#[derive(Debug, Clone)]
pub struct QuicConnector {
    endpoint: quinn::Endpoint,
}

/// Why a QUIC connection or stream could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum QuicConnectError {
    #[error("quic endpoint: {0}")]
    Endpoint(std::io::Error),
    #[error("quic config: {0}")]
    Config(String),
    #[error("quic connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    #[error("quic connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    #[error("invalid address {0:?}")]
    Address(String),
}

impl QuicConnector {
    /// A client endpoint on an ephemeral local port.
    pub fn new(
        tls: rustls::ClientConfig,
        settings: &QuicSettings,
    ) -> Result<QuicConnector, QuicConnectError> {
        let client = settings
            .client_config(tls)
            .map_err(QuicConnectError::Config)?;
        let bind: SocketAddr = ([127, 0, 0, 1], 0).into();
        let endpoint = settings
            .endpoint(bind, None, Some(client))
            .map_err(QuicConnectError::Endpoint)?;
        Ok(QuicConnector { endpoint })
    }

    /// Uses an existing endpoint (e.g. the node's listener endpoint) for outgoing connections.
    pub fn from_endpoint(endpoint: quinn::Endpoint) -> QuicConnector {
        QuicConnector { endpoint }
    }

    /// One handshake; then `open_stream` as often as needed.
    pub async fn connect(
        &self,
        address: &str,
        server_name: &str,
    ) -> Result<QuicConnection, QuicConnectError> {
        let addr: SocketAddr = address
            .parse()
            .map_err(|_| QuicConnectError::Address(address.to_owned()))?;
        let connection = self.endpoint.connect(addr, server_name)?.await?;
        Ok(QuicConnection { connection })
    }

    pub fn endpoint(&self) -> &quinn::Endpoint {
        &self.endpoint
    }
}

/// An open QUIC connection to a node.
#[derive(Debug, Clone)]
pub struct QuicConnection {
    pub connection: quinn::Connection,
}

impl QuicConnection {
    /// A new bidirectional stream joined into one byte stream, ready for `client::Session::join`.
    pub async fn open_stream(
        &self,
    ) -> Result<tokio::io::Join<quinn::RecvStream, quinn::SendStream>, quinn::ConnectionError> {
        let (send, recv) = self.connection.open_bi().await?;
        Ok(tokio::io::join(recv, send))
    }

    /// Stable id of this connection (the same for every stream on it).
    pub fn id(&self) -> usize {
        self.connection.stable_id()
    }
}
