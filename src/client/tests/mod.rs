//! Client tests against a fake router written here, over in-memory streams.

mod join;
mod lifecycle;
mod pubsub;
mod rpc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio_util::codec::{Decoder, Encoder};

use super::{ClientConfig, Session};
use crate::dict;
use crate::rawsocket::{
    accept_handshake, handshake, Frame, FrameCodec, FrameKind, HandshakeOutcome,
};
use crate::wamp::{Dict, Id, Message, Serializer, Value};

/// Shorthand for a valid id.
pub(super) fn id(n: u64) -> Id {
    Id::new(n).unwrap()
}

/// The router end of one connection, driven step by step by a test.
pub(super) struct FakeRouter<S = DuplexStream> {
    pub stream: S,
    pub handshake: [u8; 4],
    read_buf: BytesMut,
    codec: FrameCodec,
    serializer: Serializer,
}

impl<S: AsyncRead + AsyncWrite + Unpin> FakeRouter<S> {
    /// Reads the client's handshake and accepts it, announcing `max` as our receive limit.
    pub async fn accept_with_max(mut stream: S, max: usize) -> Self {
        let mut request = [0u8; 4];
        stream.read_exact(&mut request).await.unwrap();
        let HandshakeOutcome::Accept {
            serializer,
            peer_max,
        } = accept_handshake(request, &Serializer::ALL)
        else {
            panic!("bad client handshake {request:?}");
        };
        stream.write_all(&handshake(serializer, max)).await.unwrap();
        FakeRouter {
            stream,
            handshake: request,
            read_buf: BytesMut::new(),
            codec: FrameCodec::new(1 << 24, peer_max),
            serializer,
        }
    }

    pub async fn accept(stream: S) -> Self {
        Self::accept_with_max(stream, 1 << 24).await
    }

    /// The next frame; `None` at end of stream.
    pub async fn try_frame(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) = self.codec.decode(&mut self.read_buf).unwrap() {
                return Some(frame);
            }
            if self.stream.read_buf(&mut self.read_buf).await.unwrap() == 0 {
                return None;
            }
        }
    }

    pub async fn frame(&mut self) -> Frame {
        self.try_frame()
            .await
            .expect("client closed the connection")
    }

    /// The next WAMP message (PONGs are not expected here).
    pub async fn recv(&mut self) -> Message {
        let frame = self.frame().await;
        assert_eq!(frame.kind, FrameKind::Message, "expected a message frame");
        self.serializer.decode(&frame.payload).unwrap()
    }

    pub async fn send_frame(&mut self, kind: FrameKind, payload: Bytes) {
        let mut buf = BytesMut::new();
        self.codec
            .encode(Frame { kind, payload }, &mut buf)
            .unwrap();
        self.stream.write_all(&buf).await.unwrap();
    }

    pub async fn send(&mut self, message: Message) {
        let bytes = self.serializer.encode(&message).unwrap();
        self.send_frame(FrameKind::Message, bytes).await;
    }

    /// Expects HELLO, answers WELCOME with session `session`; returns HELLO's details.
    pub async fn welcome(&mut self, session: u64) -> Dict {
        let Message::Hello { realm, details } = self.recv().await else {
            panic!("expected HELLO");
        };
        assert_eq!(realm, "realm1");
        self.send(Message::Welcome {
            session: id(session),
            details: welcome_details(),
        })
        .await;
        details
    }

    /// Expects the client to close the connection.
    pub async fn expect_eof(&mut self) {
        assert!(self.try_frame().await.is_none(), "expected end of stream");
    }
}

pub(super) fn welcome_details() -> Dict {
    let features = dict! { "features" => Dict::new() };
    dict! {
        "authid" => "anon-1",
        "authrole" => "anonymous",
        "authmethod" => "anonymous",
        "roles" => dict! { "broker" => features.clone(), "dealer" => features },
    }
}

/// A joined session and the fake router it talks to.
pub(super) async fn connect(config: ClientConfig) -> (Session, FakeRouter) {
    let (client, server) = tokio::io::duplex(1 << 16);
    let router = async {
        let mut router = FakeRouter::accept(server).await;
        router.welcome(42).await;
        router
    };
    let (session, router) = tokio::join!(Session::join(client, config), router);
    (session.unwrap(), router)
}

pub(super) async fn joined() -> (Session, FakeRouter) {
    connect(ClientConfig::new("realm1")).await
}

/// `[args...]` payload of unsigned integers.
pub(super) fn ints(values: &[u64]) -> crate::wamp::Payload {
    crate::wamp::Payload::args(values.iter().map(|v| Value::from(*v)).collect())
}
