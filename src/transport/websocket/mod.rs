//! The `transport = "websocket"` listener: WAMP over WebSocket (subprotocols `wamp.2.json`,
//! `wamp.2.msgpack`, `wamp.2.cbor`), optionally inside TLS (`tls = true` on the listen entry),
//! and RawSocket on the same port.
//!
//! Each accepted connection (after its TLS handshake, when `tls = true`) is told apart by its
//! first byte: `0x7F`, RawSocket's magic octet, is a RawSocket client and runs
//! [`crate::session::serve`] exactly as on a `tcp` (or `tls`) listener; anything else is an HTTP
//! request for a WebSocket upgrade. Both are bounded by the listener's `handshake_timeout_ms`,
//! take an admission slot (a full node answers the upgrade with 503), and then run the same
//! session loop (`crate::session::serve_wire`).

mod prefixed;
pub mod upgrade;
mod wire;

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Error as WsError;

pub use prefixed::Prefixed;
pub use wire::WebSocketWire;

use super::{Accept, TransportError};
use crate::rawsocket::MAGIC;
use crate::session::{handshake, SessionContext, SessionEnd};
use crate::wamp::{Dict, Serializer};

/// Read buffer of each WebSocket connection (tungstenite allocates it at once; its default of
/// 128 KiB would cost 6 GiB at 50k connections).
const READ_BUFFER: usize = 16 * 1024;
/// Bytes tungstenite collects before writing to the socket; a flush writes whatever is there.
const WRITE_BUFFER: usize = 64 * 1024;

/// The sessions of one listener: WebSocket ones counted as `websocket`, RawSocket ones on the
/// shared port as `tcp` (or `tls`) like on their own listener.
#[derive(Debug, Clone)]
struct Contexts {
    websocket: SessionContext,
    rawsocket: SessionContext,
}

/// Binds `address` and starts the accept loop. With `tls`, every connection does its TLS
/// handshake first.
pub async fn bind(
    address: &str,
    tls: Option<Arc<rustls::ServerConfig>>,
    accept: Accept,
) -> Result<(&'static str, String, JoinHandle<()>), TransportError> {
    let acceptor = tls.map(TlsAcceptor::from);
    let mut rawsocket = (*accept.ctx.settings).clone();
    rawsocket.transport = if acceptor.is_some() { "tls" } else { "tcp" };
    let contexts = Contexts {
        websocket: accept.ctx.clone(),
        rawsocket: SessionContext {
            settings: Arc::new(rawsocket),
            ..accept.ctx.clone()
        },
    };
    let stop = accept.stop.clone();
    super::tcp::listen("websocket", address, stop, move |stream, peer, local| {
        spawn_connection(&accept, &contexts, acceptor.clone(), stream, peer, local);
    })
    .await
}

/// One accepted connection, tracked with the listener's connections and ending early on abort.
fn spawn_connection(
    accept: &Accept,
    contexts: &Contexts,
    acceptor: Option<TlsAcceptor>,
    stream: TcpStream,
    peer: String,
    local: String,
) {
    let contexts = contexts.clone();
    let abort = accept.abort.clone();
    accept.connections.spawn(async move {
        let serving = async {
            match acceptor {
                None => {
                    let transport = crate::dict! { "peer" => peer.clone(), "local" => local };
                    serve_connection(stream, transport, "tcp", &contexts).await
                }
                Some(acceptor) => serve_tls(acceptor, stream, &peer, local, &contexts).await,
            }
        };
        tokio::select! {
            result = serving => {
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
    contexts: &Contexts,
) -> Result<(), SessionEnd> {
    let timeout = contexts.websocket.settings.handshake_timeout;
    let stream = match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::warn!(%peer, error = %e, "TLS handshake failed");
            return Err(SessionEnd::Handshake);
        }
        Err(_) => return Err(SessionEnd::Timeout("TLS handshake")),
    };
    let mut transport = super::tls_tcp::transport_dict(peer, local, stream.get_ref().1);
    transport.remove("type");
    serve_connection(stream, transport, "tls", contexts).await
}

/// Reads the first byte and serves RawSocket (0x7F) or WebSocket. `transport` has the peer's
/// address (and certificate); `protocol` is `tcp` or `tls`.
async fn serve_connection<S>(
    mut stream: S,
    mut transport: Dict,
    protocol: &'static str,
    contexts: &Contexts,
) -> Result<(), SessionEnd>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ctx = &contexts.websocket;
    let mut first = [0u8; 1];
    match tokio::time::timeout(
        ctx.settings.handshake_timeout,
        stream.read_exact(&mut first),
    )
    .await
    {
        Err(_) => {
            ctx.metrics.handshake_failed("handshake_timeout");
            return Err(SessionEnd::Timeout("first byte"));
        }
        Ok(Err(e)) => return Err(e.into()),
        Ok(Ok(_)) => {}
    }
    let stream = Prefixed::new(first[0], stream);
    if first[0] == MAGIC {
        transport.insert("type".into(), "rawsocket".into());
        transport.insert("protocol".into(), protocol.into());
        let (reader, writer) = tokio::io::split(stream);
        return crate::session::serve(reader, writer, transport, contexts.rawsocket.clone()).await;
    }
    transport.insert("type".into(), "websocket".into());
    transport.insert("tls".into(), (protocol == "tls").into());
    serve_websocket(stream, transport, ctx).await
}

/// The HTTP upgrade (subprotocol negotiation, connection limits), then the session.
async fn serve_websocket<S>(
    stream: S,
    mut transport: Dict,
    ctx: &SessionContext,
) -> Result<(), SessionEnd>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let settings = &ctx.settings;
    let slot = handshake::admit(ctx, &transport);
    let refused = slot.as_ref().err().copied();
    let mut outcome: Option<Result<Serializer, upgrade::UpgradeRefusal>> = None;
    let mut path = String::new();
    // The callback's error type (tungstenite's ErrorResponse, an http::Response) is not ours.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| {
        path = request.uri().path().to_owned();
        match upgrade::answer(request, response, &settings.serializers, refused) {
            Ok((response, serializer)) => {
                outcome = Some(Ok(serializer));
                Ok(response)
            }
            Err(refusal) => {
                let response = refusal.response();
                outcome = Some(Err(refusal));
                Err(response)
            }
        }
    };
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(Some(settings.max_message_size))
        .max_frame_size(Some(settings.max_message_size));
    let upgrading = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config));
    let upgraded = tokio::time::timeout(settings.handshake_timeout, upgrading).await;
    let ws = match (upgraded, outcome) {
        (Ok(Ok(ws)), Some(Ok(serializer))) => (ws, serializer),
        (Ok(Err(_)), Some(Err(refusal))) => {
            ctx.metrics.handshake_failed(refusal.metrics_reason());
            return Err(SessionEnd::Refused(format!("{refusal:?}")));
        }
        (Err(_), _) => {
            ctx.metrics.handshake_failed("handshake_timeout");
            return Err(SessionEnd::Timeout("WebSocket upgrade"));
        }
        (Ok(Err(e)), _) => {
            ctx.metrics.handshake_failed("not_websocket");
            return Err(upgrade_failed(e));
        }
        (Ok(Ok(_)), _) => return Err(SessionEnd::Handshake),
    };
    let (ws, serializer) = ws;
    transport.insert("protocol".into(), upgrade::subprotocol(serializer).into());
    transport.insert("http_path".into(), path.into());
    let counters = ctx.metrics.transport(settings.transport);
    let wire = WebSocketWire::new(ws, serializer, settings.max_message_size, counters);
    crate::session::serve_wire(
        wire,
        serializer,
        transport.into(),
        ctx.clone(),
        slot.ok().flatten(),
    )
    .await
}

fn upgrade_failed(error: WsError) -> SessionEnd {
    match error {
        WsError::Io(e) => SessionEnd::Transport(e.to_string()),
        other => SessionEnd::ProtocolViolation(format!("WebSocket upgrade: {other}")),
    }
}
