//! How a session's WAMP messages travel: the [`MessageWire`] the message loop runs over, and its
//! RawSocket implementation (frames over a byte stream, PINGs answered here). The WebSocket one
//! lives in `crate::transport::websocket`.
//!
//! A wire carries already serialized messages: the session encodes (or takes the shared bytes
//! of a fan-out message), queues any number of them, and flushes once per batch.

use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};

use super::SessionEnd;
use crate::metrics::TransportCounters;
use crate::rawsocket::{FrameCodec, FrameKind};
use crate::reader::FrameReader;
use crate::writer::FrameWriter;

/// Bytes of a RawSocket frame header, counted with every frame in the metrics.
const FRAME_HEADER: usize = 4;

/// A message did not fit what the peer accepts; nothing was queued.
#[derive(Debug, thiserror::Error)]
#[error("message of {size} bytes exceeds the peer's maximum of {max}")]
pub struct TooLarge {
    pub size: usize,
    pub max: usize,
}

/// The transport under a session's message loop: reads whole messages, queues and flushes
/// batches of them. Implemented for RawSocket ([`RawSocketWire`]) and WebSocket.
pub(crate) trait MessageWire {
    /// The payload of the next WAMP message; transport control (PING/PONG) is handled inside.
    /// `Err(SessionEnd::Closed)` when the peer closed. Must be cancel-safe: the session loop
    /// calls it in `select!`.
    async fn next_payload(&mut self) -> Result<Bytes, SessionEnd>;

    /// Queues one serialized message.
    fn queue(&mut self, payload: Bytes) -> Result<(), TooLarge>;

    /// The largest message the peer accepts.
    fn max_send(&self) -> usize;

    /// Writes everything queued, then counts it in the transport's metrics.
    async fn flush(&mut self) -> std::io::Result<()>;

    /// Flushes and closes the connection (a protocol violation closes with that reason where
    /// the transport can say so).
    async fn close(&mut self, violation: bool) -> std::io::Result<()>;
}

/// RawSocket frames over a byte stream; answers PINGs through the single writer.
pub(crate) struct RawSocketWire<R, W> {
    frames: FrameReader<R>,
    out: FrameWriter<W>,
    counters: Arc<TransportCounters>,
    /// Messages and bytes queued since the last flush.
    queued: (u64, usize),
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> RawSocketWire<R, W> {
    pub(crate) fn new(
        reader: R,
        writer: W,
        codec: FrameCodec,
        counters: Arc<TransportCounters>,
    ) -> Self {
        RawSocketWire {
            frames: FrameReader::new(reader, codec.clone()),
            out: FrameWriter::new(writer, codec),
            counters,
            queued: (0, 0),
        }
    }
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> MessageWire for RawSocketWire<R, W> {
    async fn next_payload(&mut self) -> Result<Bytes, SessionEnd> {
        loop {
            let frame = match self.frames.next().await {
                Ok(None) => return Err(SessionEnd::Closed),
                Err(e) => return Err(SessionEnd::ProtocolViolation(e.to_string())),
                Ok(Some(frame)) => frame,
            };
            let size = FRAME_HEADER + frame.payload.len();
            self.counters
                .received(size, frame.kind == FrameKind::Message);
            match frame.kind {
                FrameKind::Ping => {
                    self.out
                        .queue(FrameKind::Pong, frame.payload)
                        .map_err(|e| SessionEnd::Transport(e.to_string()))?;
                    self.out.flush().await?;
                    self.counters.sent(0, size);
                }
                FrameKind::Pong => {}
                FrameKind::Message => return Ok(frame.payload),
            }
        }
    }

    fn queue(&mut self, payload: Bytes) -> Result<(), TooLarge> {
        let size = payload.len();
        self.out
            .queue(FrameKind::Message, payload)
            .map_err(|_| TooLarge {
                size,
                max: self.out.max_send(),
            })?;
        self.queued = (self.queued.0 + 1, self.queued.1 + FRAME_HEADER + size);
        Ok(())
    }

    fn max_send(&self) -> usize {
        self.out.max_send()
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush().await?;
        let (messages, bytes) = std::mem::take(&mut self.queued);
        self.counters.sent(messages, bytes);
        Ok(())
    }

    async fn close(&mut self, _violation: bool) -> std::io::Result<()> {
        self.flush().await?;
        self.out.shutdown().await
    }
}
