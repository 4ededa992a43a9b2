//! Transports in the Bedrock shape: a `Listener` binds an endpoint and accepts connections,
//! `unbind` stops accepting and frees the port at once while existing connections go on,
//! `drain` waits for them up to a deadline, `abort` ends what is left.
//!
//! Connection limits are not checked here but in `session::serve`, which every RawSocket
//! transport (TCP, TLS, Unix, each QUIC stream) runs: it takes an [`admission::Slot`] and
//! answers the handshake with `7F 40 00 00` when the node or the peer's address is full. The
//! WebSocket listener takes its slot before the HTTP upgrade and answers 503 instead.

pub mod admission;
pub mod quic;
pub mod tcp;
pub mod tls;
pub mod tls_tcp;
pub mod unix;
pub mod websocket;

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{ListenConfig, TransportKind};
use crate::session::SessionContext;

/// Why a listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot bind {transport} listener on {address}: {source}")]
    Bind {
        transport: &'static str,
        address: String,
        source: std::io::Error,
    },
    #[error("tls: {0}")]
    Tls(String),
}

/// A bound listener and the connections it accepted.
#[derive(Debug)]
pub struct Listener {
    pub transport: &'static str,
    /// The bound address (with the real port when the config said port 0).
    pub local_addr: String,
    stop_accepting: CancellationToken,
    accept_task: tokio::sync::Mutex<Option<JoinHandle<()>>>,
    connections: TaskTracker,
    abort: CancellationToken,
}

impl Listener {
    /// Binds the endpoint of `config` and starts accepting; each connection runs a session.
    pub async fn bind(
        config: &ListenConfig,
        tls: &NodeTls,
        ctx: SessionContext,
    ) -> Result<Listener, TransportError> {
        let stop_accepting = CancellationToken::new();
        let connections = TaskTracker::new();
        let abort = CancellationToken::new();
        let accept = Accept {
            ctx,
            connections: connections.clone(),
            stop: stop_accepting.clone(),
            abort: abort.clone(),
        };
        let (transport, local_addr, task) = match config.transport {
            TransportKind::Tcp => tcp::bind(&config.address, accept).await?,
            TransportKind::Unix => unix::bind(&config.address, accept).await?,
            TransportKind::Tls => {
                let server = tls.server_config(config, &[])?;
                tls_tcp::bind(&config.address, std::sync::Arc::new(server), accept).await?
            }
            TransportKind::Quic => {
                let server = tls.server_config(config, &[tls::ALPN_QUIC])?;
                let settings = quic::QuicSettings::from_listen(config);
                quic::QuicServerFactory::bind(&config.address, server, &settings, accept).await?
            }
            TransportKind::Websocket => {
                let server = match config.tls {
                    true => Some(std::sync::Arc::new(tls.server_config(config, &[])?)),
                    false => None,
                };
                websocket::bind(&config.address, server, accept).await?
            }
        };
        tracing::info!(transport, address = %local_addr, "listening");
        Ok(Listener {
            transport,
            local_addr,
            stop_accepting,
            accept_task: tokio::sync::Mutex::new(Some(task)),
            connections,
            abort,
        })
    }

    /// Stops accepting and frees the port; returns once the socket is closed.
    pub async fn unbind(&self) {
        self.stop_accepting.cancel();
        if let Some(task) = self.accept_task.lock().await.take() {
            let _ = task.await;
        }
        self.connections.close();
    }

    /// Waits until every connection has ended, or the deadline passed (returns false then).
    pub async fn drain(&self, deadline: Duration) -> bool {
        self.connections.close();
        tokio::time::timeout(deadline, self.connections.wait())
            .await
            .is_ok()
    }

    /// Ends every remaining connection now.
    pub async fn abort(&self) {
        self.abort.cancel();
        self.connections.wait().await;
    }

    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }
}

/// What an accept loop needs: where to run connections and when to stop.
#[derive(Debug, Clone)]
pub struct Accept {
    pub ctx: SessionContext,
    pub connections: TaskTracker,
    pub stop: CancellationToken,
    pub abort: CancellationToken,
}

impl Accept {
    /// Runs one session on a connection, tracked, ending early on abort.
    pub fn spawn_session<R, W>(&self, reader: R, writer: W, transport: crate::wamp::Dict)
    where
        R: tokio::io::AsyncRead + Unpin + Send + 'static,
        W: tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        self.spawn_session_on(reader, writer, transport, None);
    }

    /// Like [`Accept::spawn_session`], also tracked by `also` (e.g. the sessions of one QUIC
    /// connection, which closes once they have drained).
    pub fn spawn_session_on<R, W>(
        &self,
        reader: R,
        writer: W,
        transport: impl Into<crate::router::SessionTransport>,
        also: Option<&TaskTracker>,
    ) where
        R: tokio::io::AsyncRead + Unpin + Send + 'static,
        W: tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let transport = transport.into();
        let peer = transport
            .get("peer")
            .and_then(|p| p.as_str())
            .unwrap_or("")
            .to_owned();
        let session = crate::session::serve(reader, writer, transport, self.ctx.clone());
        self.connections.spawn(UntilAbort {
            session,
            abort: self.abort.clone().cancelled_owned(),
            peer,
            _token: also.map(TaskTracker::token),
        });
    }
}

pin_project_lite::pin_project! {
    /// A session that also ends when its listener aborts. A future of its own rather than an
    /// `async` block with a `select!`: the block would keep the session's arguments beside the
    /// session made of them (~0.15 KiB in each of tens of thousands of idle sessions).
    struct UntilAbort<F> {
        #[pin]
        session: F,
        #[pin]
        abort: tokio_util::sync::WaitForCancellationFutureOwned,
        peer: String,
        _token: Option<tokio_util::task::task_tracker::TaskTrackerToken>,
    }
}

impl<F> std::future::Future for UntilAbort<F>
where
    F: std::future::Future<Output = Result<(), crate::session::SessionEnd>>,
{
    type Output = ();

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        let this = self.project();
        if this.abort.poll(cx).is_ready() {
            tracing::debug!(peer = %this.peer, "connection aborted");
            return std::task::Poll::Ready(());
        }
        let result = std::task::ready!(this.session.poll(cx));
        if let Err(end) = result {
            tracing::debug!(peer = %this.peer, reason = %end, "connection ended");
        }
        std::task::Poll::Ready(())
    }
}

/// The node's TLS material: its identity (configured or self-signed at start) and the CA that
/// client certificates must chain to.
#[derive(Debug, Clone)]
pub struct NodeTls {
    pub identity: tls::Identity,
    pub ca: Option<Vec<rustls::pki_types::CertificateDer<'static>>>,
}

impl NodeTls {
    /// From `[tls]`, or a self-signed certificate for `node_id` when there is none.
    pub fn from_config(
        config: Option<&crate::config::TlsConfig>,
        node_id: &str,
    ) -> Result<NodeTls, TransportError> {
        let err = |e: tls::TlsError| TransportError::Tls(e.to_string());
        match config {
            Some(c) => Ok(NodeTls {
                identity: tls::Identity::load(&c.cert, &c.key).map_err(err)?,
                ca: c
                    .ca
                    .as_deref()
                    .map(tls::load_certs)
                    .transpose()
                    .map_err(err)?,
            }),
            None => Ok(NodeTls {
                identity: tls::Identity::self_signed(&[node_id, "localhost"]).map_err(err)?,
                ca: None,
            }),
        }
    }

    /// The rustls server config of a listener (client certificates required if it says so).
    pub fn server_config(
        &self,
        listen: &ListenConfig,
        alpn: &[&[u8]],
    ) -> Result<rustls::ServerConfig, TransportError> {
        let client_ca = match (listen.require_client_cert, &self.ca) {
            (false, _) => None,
            (true, Some(ca)) => Some(ca.as_slice()),
            (true, None) => {
                return Err(TransportError::Tls(
                    "require_client_cert needs [tls] ca".into(),
                ))
            }
        };
        tls::server_config(&self.identity, client_ca, alpn)
            .map_err(|e| TransportError::Tls(e.to_string()))
    }
}
