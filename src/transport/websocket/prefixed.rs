//! A stream with one byte put back in front: the shared-port listener reads the first byte to
//! tell RawSocket (0x7F) from an HTTP upgrade, then hands the whole stream on.

use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// `stream`, with `first` read again before anything else.
#[derive(Debug)]
pub struct Prefixed<S> {
    first: Option<u8>,
    stream: S,
}

impl<S> Prefixed<S> {
    pub fn new(first: u8, stream: S) -> Self {
        Prefixed {
            first: Some(first),
            stream,
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.stream
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if buf.remaining() > 0 {
            if let Some(first) = self.first.take() {
                buf.put_slice(&[first]);
                return Poll::Ready(Ok(()));
            }
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn the_first_byte_is_read_again_then_the_stream() {
        let (mut near, far) = tokio::io::duplex(64);
        near.write_all(b"ET /").await.unwrap();
        let mut stream = Prefixed::new(b'G', far);
        let mut read = [0u8; 5];
        stream.read_exact(&mut read).await.unwrap();
        assert_eq!(&read, b"GET /");
        stream.write_all(b"ok").await.unwrap();
        let mut echoed = [0u8; 2];
        near.read_exact(&mut echoed).await.unwrap();
        assert_eq!(&echoed, b"ok");
    }
}
