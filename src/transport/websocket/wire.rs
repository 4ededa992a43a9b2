//! WAMP messages as WebSocket messages: the session's [`MessageWire`] over a tungstenite
//! stream. JSON travels in text frames, MessagePack and CBOR in binary frames; tungstenite
//! answers PINGs and the close handshake.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::error::{CapacityError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use crate::metrics::TransportCounters;
use crate::session::wire::{MessageWire, TooLarge};
use crate::session::SessionEnd;
use crate::wamp::Serializer;

/// How long closing may take (our close frame out, the peer's answer).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// A session's WebSocket after the upgrade.
pub struct WebSocketWire<S> {
    ws: WebSocketStream<S>,
    /// JSON: text frames; otherwise binary.
    text: bool,
    max_send: usize,
    queue: VecDeque<WsMessage>,
    /// Messages and bytes queued since the last flush.
    queued: (u64, usize),
    counters: Arc<TransportCounters>,
    /// The close code of the failure `next_payload` reported, if it has one.
    failure: Option<CloseCode>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocketWire<S> {
    /// `max_send`: the largest message written (the listener's `max_message_size`: WebSocket
    /// has no way for a client to announce its own limit).
    pub fn new(
        ws: WebSocketStream<S>,
        serializer: Serializer,
        max_send: usize,
        counters: Arc<TransportCounters>,
    ) -> Self {
        WebSocketWire {
            ws,
            text: serializer == Serializer::Json,
            max_send,
            queue: VecDeque::new(),
            queued: (0, 0),
            counters,
            failure: None,
        }
    }

    /// A read error as the session's end, remembering the close code to send.
    fn failed(&mut self, error: WsError) -> SessionEnd {
        let (code, end) = match error {
            WsError::ConnectionClosed
            | WsError::AlreadyClosed
            | WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
                return SessionEnd::Closed
            }
            WsError::Io(e) => return SessionEnd::Transport(e.to_string()),
            WsError::Capacity(CapacityError::MessageTooLong { size, max_size }) => (
                CloseCode::Size,
                format!("message of {size} bytes exceeds max_message_size {max_size}"),
            ),
            WsError::Capacity(e) => (CloseCode::Size, e.to_string()),
            WsError::Utf8(e) => (CloseCode::Invalid, format!("text frame: {e}")),
            WsError::Protocol(e) => (CloseCode::Protocol, e.to_string()),
            other => return SessionEnd::Transport(other.to_string()),
        };
        self.failure = Some(code);
        SessionEnd::ProtocolViolation(end)
    }
}

/// Bytes of a frame header: 2, plus 2 or 8 for the extended length, plus 4 for a client's mask.
fn header_len(payload: usize, masked: bool) -> usize {
    let length = match payload {
        0..=125 => 0,
        126..=65535 => 2,
        _ => 8,
    };
    2 + length + if masked { 4 } else { 0 }
}

fn io_error(error: WsError) -> std::io::Error {
    match error {
        WsError::Io(e) => e,
        other => std::io::Error::other(other.to_string()),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> MessageWire for WebSocketWire<S> {
    async fn next_payload(&mut self) -> Result<Bytes, SessionEnd> {
        loop {
            let message = match self.ws.next().await {
                None => return Err(SessionEnd::Closed),
                Some(Err(e)) => return Err(self.failed(e)),
                Some(Ok(message)) => message,
            };
            let size = message.len();
            let is_data = matches!(message, WsMessage::Text(_) | WsMessage::Binary(_));
            self.counters
                .received(header_len(size, true) + size, is_data);
            // Either frame type is accepted: the serializer decides whether the bytes make sense.
            match message {
                WsMessage::Text(text) => return Ok(Bytes::from(text)),
                WsMessage::Binary(bytes) => return Ok(bytes),
                WsMessage::Close(_) => return Err(SessionEnd::Closed),
                WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_) => {}
            }
        }
    }

    fn queue(&mut self, payload: Bytes) -> Result<(), TooLarge> {
        let size = payload.len();
        if size > self.max_send {
            return Err(TooLarge {
                size,
                max: self.max_send,
            });
        }
        let message = match self.text {
            true => match Utf8Bytes::try_from(payload) {
                Ok(text) => WsMessage::Text(text),
                Err(e) => {
                    tracing::error!(error = %e, "JSON serializer produced invalid UTF-8");
                    return Err(TooLarge { size, max: 0 });
                }
            },
            false => WsMessage::Binary(payload),
        };
        self.queue.push_back(message);
        self.queued = (
            self.queued.0 + 1,
            self.queued.1 + header_len(size, false) + size,
        );
        Ok(())
    }

    fn max_send(&self) -> usize {
        self.max_send
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        // `feed` only appends to tungstenite's write buffer (written out when it passes
        // write_buffer_size); the one `flush` below writes the batch.
        while let Some(message) = self.queue.pop_front() {
            self.ws.feed(message).await.map_err(io_error)?;
        }
        self.ws.flush().await.map_err(io_error)?;
        let (messages, bytes) = std::mem::take(&mut self.queued);
        self.counters.sent(messages, bytes);
        Ok(())
    }

    async fn close(&mut self, violation: bool) -> std::io::Result<()> {
        let frame = match (violation, self.failure) {
            (false, _) => CloseFrame {
                code: CloseCode::Normal,
                reason: Utf8Bytes::from_static(""),
            },
            (true, code) => CloseFrame {
                code: code.unwrap_or(CloseCode::Policy),
                reason: Utf8Bytes::from_static("wamp.error.protocol_violation"),
            },
        };
        let closing = async {
            self.flush().await?;
            self.ws.close(Some(frame)).await.map_err(io_error)
        };
        match tokio::time::timeout(CLOSE_TIMEOUT, closing).await {
            Ok(result) => result,
            Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lengths_follow_rfc_6455() {
        assert_eq!(header_len(0, false), 2);
        assert_eq!(header_len(125, true), 6);
        assert_eq!(header_len(126, false), 4);
        assert_eq!(header_len(65536, false), 10);
        assert_eq!(header_len(65536, true), 14);
    }
}
