//! The single writer of a RawSocket byte stream: queues frames and writes a whole batch with
//! vectored I/O, sharing (not copying) large payloads.

use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::rawsocket::{FrameCodec, FrameKind, RawSocketError};

/// Payloads up to this size are copied next to their header; larger ones are written from
/// the shared buffer itself.
const COPY_BELOW: usize = 512;
/// Staging buffer taken for a batch of frames (it grows if the batch needs more).
const STAGING: usize = 4096;

/// Queues frames, then writes them all in as few syscalls as possible.
/// `flush` is cancel-safe: what was written is consumed, the rest stays queued.
#[derive(Debug)]
pub struct FrameWriter<W> {
    io: W,
    codec: FrameCodec,
    staging: BytesMut,
    chunks: Vec<Bytes>,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    pub fn new(io: W, codec: FrameCodec) -> Self {
        FrameWriter {
            io,
            codec,
            staging: BytesMut::new(),
            chunks: Vec::new(),
        }
    }

    /// Queues one frame; fails (and queues nothing) if it exceeds the peer's maximum.
    pub fn queue(&mut self, kind: FrameKind, payload: Bytes) -> Result<(), RawSocketError> {
        if self.staging.capacity() == 0 {
            self.staging.reserve(STAGING);
        }
        if payload.len() < COPY_BELOW {
            return self.codec.encode_parts(kind, &payload, &mut self.staging);
        }
        self.codec.encode_parts(kind, &[], &mut self.staging)?;
        let len = payload.len();
        if len > self.codec.max_send || len >= crate::rawsocket::MAX_LENGTH {
            self.staging.truncate(self.staging.len() - 4);
            return Err(RawSocketError::TooLong {
                size: len,
                max: self.codec.max_send,
            });
        }
        // Patch the header's length (written as 0 above).
        let at = self.staging.len() - 3;
        self.staging[at] = (len >> 16) as u8;
        self.staging[at + 1] = (len >> 8) as u8;
        self.staging[at + 2] = len as u8;
        self.chunks.push(self.staging.split().freeze());
        self.chunks.push(payload);
        Ok(())
    }

    /// The largest payload the peer accepts.
    pub fn max_send(&self) -> usize {
        self.codec.max_send
    }

    /// Bytes waiting to be written.
    pub fn pending(&self) -> usize {
        self.staging.len() + self.chunks.iter().map(Bytes::len).sum::<usize>()
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        if !self.staging.is_empty() {
            self.chunks.push(self.staging.split().freeze());
        }
        // A cancelled flush leaves the chunks it wrote in place, emptied; 64 of them in a row
        // would make an empty vectored write (0 bytes, seen as WriteZero).
        self.chunks.retain(|c| !c.is_empty());
        let mut first = 0;
        while first < self.chunks.len() {
            let slices: Vec<IoSlice<'_>> = self.chunks[first..]
                .iter()
                .take(64)
                .map(|c| IoSlice::new(c))
                .collect();
            let mut written = self.io.write_vectored(&slices).await?;
            if written == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            while written > 0 {
                let chunk = &mut self.chunks[first];
                let n = written.min(chunk.len());
                chunk.advance(n);
                written -= n;
                if chunk.is_empty() {
                    first += 1;
                }
            }
        }
        // Written: give the staging buffer and the chunk list back (an idle session holds
        // neither); the next batch takes new ones.
        self.chunks = Vec::new();
        self.staging = BytesMut::new();
        self.io.flush().await
    }

    /// Flushes and closes the write side.
    pub async fn shutdown(&mut self) -> std::io::Result<()> {
        self.flush().await?;
        self.io.shutdown().await
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.io
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::AsyncReadExt;

    use super::*;

    #[tokio::test]
    async fn flush_after_a_cancelled_flush_writes_the_rest() {
        // Room for about 80 of the 100 frames (two chunks each: header, shared payload).
        let (client, mut server) = tokio::io::duplex(48 * 1024);
        let mut writer = FrameWriter::new(client, FrameCodec::new(1 << 24, 1 << 24));
        let payload = Bytes::from(vec![7u8; 600]);
        for _ in 0..100 {
            writer.queue(FrameKind::Message, payload.clone()).unwrap();
        }
        let cancelled = tokio::time::timeout(Duration::from_millis(50), writer.flush()).await;
        assert!(cancelled.is_err(), "the reader takes nothing yet");
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            server.read_to_end(&mut all).await.unwrap();
            all
        });
        writer
            .queue(FrameKind::Message, Bytes::from_static(b"last"))
            .unwrap();
        writer.shutdown().await.expect("the rest is written");
        drop(writer);
        let all = reader.await.unwrap();
        assert_eq!(all.len(), 100 * 604 + 8);
        assert!(all.ends_with(b"last"));
    }
}
