//! The RawSocket opening of a router-side connection: the admission check (connection limits)
//! and the 4-byte handshake with its error replies.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{ListenerSettings, SessionContext, SessionEnd};
use crate::rawsocket::{self, HandshakeOutcome, HandshakeRefusal};
use crate::transport::admission::{AdmissionRefused, Slot};
use crate::wamp::{Dict, Serializer, Value};

/// Takes this connection's admission slot. The node's own in-process sessions are not limited;
/// peer nodes proven by their certificate and Unix sockets are not limited per address.
pub(crate) fn admit(
    ctx: &SessionContext,
    transport: &Dict,
) -> Result<Option<Slot>, AdmissionRefused> {
    if ctx.settings.trusted {
        return Ok(None);
    }
    let address = match transport.get("peer_cert_node_id") {
        Some(_) => None,
        None => transport
            .get("peer")
            .and_then(Value::as_str)
            .and_then(|p| p.parse::<std::net::SocketAddr>().ok())
            .map(|a| a.ip()),
    };
    ctx.admission.admit(address).map(Some)
}

/// The RawSocket handshake: reads the client's 4 bytes and answers them. A connection the
/// admission refused (`refused`) gets `7F 40`, a client announcing less than
/// `min_peer_message_size` gets `7F 20`. Errors carry the metrics reason.
pub(super) async fn open_rawsocket<R, W>(
    reader: &mut R,
    writer: &mut W,
    refused: Option<AdmissionRefused>,
    settings: &ListenerSettings,
) -> Result<(Serializer, usize), (&'static str, SessionEnd)>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut request = [0u8; 4];
    match tokio::time::timeout(settings.handshake_timeout, reader.read_exact(&mut request)).await {
        Err(_) => return Err(("handshake_timeout", SessionEnd::Timeout("handshake"))),
        Ok(Err(e)) => return Err(("transport", e.into())),
        Ok(Ok(_)) => {}
    }
    let refusal = match rawsocket::accept_handshake(request, &settings.serializers) {
        HandshakeOutcome::Fail => return Err(("not_rawsocket", SessionEnd::Handshake)),
        HandshakeOutcome::Refuse(refusal) => refusal,
        HandshakeOutcome::Accept { .. } if refused.is_some() => {
            HandshakeRefusal::MaxConnectionCountReached
        }
        HandshakeOutcome::Accept { peer_max, .. } if peer_max < settings.min_peer_message_size => {
            HandshakeRefusal::MaxLengthUnacceptable
        }
        HandshakeOutcome::Accept {
            serializer,
            peer_max,
        } => {
            let reply = rawsocket::handshake(serializer, settings.max_message_size);
            writer
                .write_all(&reply)
                .await
                .map_err(|e| ("transport", e.into()))?;
            return Ok((serializer, peer_max));
        }
    };
    let reason = match refusal {
        HandshakeRefusal::SerializerUnsupported => "serializer_unsupported",
        HandshakeRefusal::MaxLengthUnacceptable => "max_length_unacceptable",
        HandshakeRefusal::ReservedBitsUsed => "reserved_bits",
        HandshakeRefusal::MaxConnectionCountReached => "connection_limit",
    };
    let _ = writer.write_all(&refusal.reply()).await;
    let _ = writer.shutdown().await;
    let why = match refused {
        Some(why) if refusal == HandshakeRefusal::MaxConnectionCountReached => why.to_string(),
        _ => reason.replace('_', " "),
    };
    Err((reason, SessionEnd::Refused(why)))
}

/// After a refusal: reads (and drops) what the client still sends until it closes, for a short
/// while, so the close is a FIN and not a reset that could destroy the 4-byte reply in flight.
pub(super) async fn linger<R: AsyncRead + Unpin>(reader: &mut R) {
    let mut sink = [0u8; 1024];
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        let mut total = 0;
        while total < 64 * 1024 {
            match reader.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    })
    .await;
}
