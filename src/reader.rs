//! The reader of a RawSocket byte stream: decodes frames from a buffer that grows with the
//! traffic and is given back whenever the stream has nothing more to read, so that an idle
//! session (thousands of idle realm links, 50k quiet clients) holds no read buffer at all.
//! `tokio_util`'s `FramedRead` would keep its 8 KiB (or whatever a burst grew it to) forever.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::AsyncRead;
use tokio_util::codec::Decoder;

use crate::rawsocket::{Frame, FrameCodec, RawSocketError};

/// First read size.
const CHUNK_MIN: usize = 4 * 1024;
/// Largest read size: reads that fill the room they had double it up to this.
const CHUNK_MAX: usize = 64 * 1024;

#[derive(Debug)]
pub struct FrameReader<R> {
    io: R,
    codec: FrameCodec,
    buf: BytesMut,
    chunk: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(io: R, codec: FrameCodec) -> Self {
        FrameReader {
            io,
            codec,
            buf: BytesMut::new(),
            chunk: CHUNK_MIN,
        }
    }

    /// The next frame; `Ok(None)` when the stream ended between frames, an error when it
    /// ended inside one. Cancel-safe: bytes read stay in the reader.
    pub async fn next(&mut self) -> Result<Option<Frame>, RawSocketError> {
        poll_fn(|cx| self.poll_next(cx)).await
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Frame>, RawSocketError>> {
        loop {
            if let Some(frame) = self.codec.decode(&mut self.buf)? {
                return Poll::Ready(Ok(Some(frame)));
            }
            // `decode` reserved room for the rest of a partial frame; otherwise read a chunk.
            if self.buf.capacity() - self.buf.len() < self.chunk / 4 {
                self.buf.reserve(self.chunk);
            }
            let room = self.buf.capacity() - self.buf.len();
            match tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.buf) {
                Poll::Ready(Ok(0)) if self.buf.is_empty() => return Poll::Ready(Ok(None)),
                Poll::Ready(Ok(0)) => {
                    let eof = std::io::ErrorKind::UnexpectedEof;
                    let e = std::io::Error::new(eof, "stream ended inside a frame");
                    return Poll::Ready(Err(e.into()));
                }
                Poll::Ready(Ok(n)) => {
                    if n == room {
                        self.chunk = (self.chunk * 2).min(CHUNK_MAX);
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
                Poll::Pending => {
                    // The read size learned from the traffic is kept; only the memory goes.
                    if self.buf.is_empty() && self.buf.capacity() > 0 {
                        self.buf = BytesMut::new();
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    /// Bytes of read buffer held now (0 while idle).
    pub fn buffered_capacity(&self) -> usize {
        self.buf.capacity()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;
    use crate::rawsocket::FrameKind;

    fn frame(payload: &[u8]) -> Vec<u8> {
        let n = payload.len();
        let mut out = vec![0, (n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(payload);
        out
    }

    #[tokio::test]
    async fn frames_split_anywhere_are_reassembled_and_the_buffer_is_given_back() {
        let (mut tx, rx) = tokio::io::duplex(1 << 20);
        let mut reader = FrameReader::new(rx, FrameCodec::new(1 << 20, 1 << 20));
        let big = vec![7u8; 200_000];
        let mut bytes = frame(b"hello");
        bytes.extend(frame(&big));
        bytes.extend(frame(b""));
        let writer = tokio::spawn(async move {
            for piece in bytes.chunks(3001) {
                tx.write_all(piece).await.unwrap();
                tokio::task::yield_now().await;
            }
            tx
        });
        let first = reader.next().await.unwrap().unwrap();
        assert_eq!(
            (first.kind, &first.payload[..]),
            (FrameKind::Message, &b"hello"[..])
        );
        assert_eq!(reader.next().await.unwrap().unwrap().payload, big);
        assert!(reader.next().await.unwrap().unwrap().payload.is_empty());
        let mut tx = writer.await.unwrap();
        // Nothing more to read: the next poll is pending and gives the buffer back.
        let idle = tokio::time::timeout(std::time::Duration::from_millis(20), reader.next()).await;
        assert!(idle.is_err(), "no frame while the stream is quiet");
        assert_eq!(
            reader.buffered_capacity(),
            0,
            "an idle reader holds no buffer"
        );
        tx.write_all(&frame(b"again")).await.unwrap();
        assert_eq!(&reader.next().await.unwrap().unwrap().payload[..], b"again");
        drop(tx);
        assert!(
            reader.next().await.unwrap().is_none(),
            "clean end between frames"
        );
    }

    #[tokio::test]
    async fn a_stream_ending_inside_a_frame_is_an_error() {
        let (mut tx, rx) = tokio::io::duplex(1024);
        let mut reader = FrameReader::new(rx, FrameCodec::new(1024, 1024));
        tx.write_all(&frame(b"truncated")[..6]).await.unwrap();
        drop(tx);
        assert!(reader.next().await.is_err());
    }

    #[tokio::test]
    async fn an_oversized_frame_is_refused_before_it_is_read() {
        let (mut tx, rx) = tokio::io::duplex(1024);
        let mut reader = FrameReader::new(rx, FrameCodec::new(16, 1024));
        tx.write_all(&[0, 0, 0, 17]).await.unwrap();
        assert!(matches!(
            reader.next().await,
            Err(RawSocketError::TooLong { size: 17, max: 16 })
        ));
    }
}
