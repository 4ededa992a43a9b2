//! PING/PONG, closing from either side, transport loss, protocol violations, batched writes.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};

use super::{joined, FakeRouter};
use crate::client::{ClientConfig, ClientError, CloseReason, Session};
use crate::dict;
use crate::rawsocket::FrameKind;
use crate::wamp::{Dict, Message, Payload};

#[tokio::test]
async fn ping_is_answered_with_an_identical_pong() {
    let (_session, mut router) = joined().await;
    router
        .send_frame(FrameKind::Ping, Bytes::from_static(b"are you there"))
        .await;
    let pong = router.frame().await;
    assert_eq!(pong.kind, FrameKind::Pong);
    assert_eq!(&pong.payload[..], b"are you there");
}

#[tokio::test]
async fn router_goodbye_is_answered_and_fails_pending_requests() {
    let (session, mut router) = joined().await;
    let call = tokio::spawn({
        let session = session.clone();
        async move {
            session
                .call("com.slow", Payload::default(), Dict::new())
                .await
        }
    });
    assert!(matches!(router.recv().await, Message::Call { .. }));
    let details = dict! { "message" => "maintenance" };
    let reason = "wamp.close.system_shutdown".to_owned();
    router.send(Message::Goodbye { details, reason }).await;
    let Message::Goodbye { reason, .. } = router.recv().await else {
        panic!("expected the GOODBYE reply")
    };
    assert_eq!(reason, "wamp.close.goodbye_and_out");
    router.expect_eof().await;
    assert!(matches!(call.await.unwrap(), Err(ClientError::Closed)));
    match session.closed().await {
        CloseReason::Goodbye { reason, details } => {
            assert_eq!(reason, "wamp.close.system_shutdown");
            assert_eq!(details["message"], "maintenance".into());
        }
        other => panic!("expected Goodbye, got {other:?}"),
    }
    assert!(session.is_closed());
    let error = session
        .publish("com.t", Payload::default(), Dict::new())
        .await;
    assert!(matches!(error, Err(ClientError::Closed)));
}

#[tokio::test]
async fn leave_says_goodbye_and_waits_for_the_reply() {
    let (session, mut router) = joined().await;
    let leave = tokio::spawn({
        let session = session.clone();
        async move { session.leave("wamp.close.normal").await }
    });
    let Message::Goodbye { reason, .. } = router.recv().await else {
        panic!("expected GOODBYE")
    };
    assert_eq!(reason, "wamp.close.normal");
    let reason = "wamp.close.goodbye_and_out".to_owned();
    router
        .send(Message::Goodbye {
            details: Dict::new(),
            reason,
        })
        .await;
    leave.await.unwrap().unwrap();
    let closed = session.closed().await;
    assert_eq!(closed.reason(), "wamp.close.goodbye_and_out");
    assert!(matches!(closed, CloseReason::Left { .. }));
    router.expect_eof().await;
}

#[tokio::test]
async fn dropping_every_handle_says_goodbye() {
    let (session, mut router) = joined().await;
    drop(session);
    let Message::Goodbye { reason, .. } = router.recv().await else {
        panic!("expected GOODBYE")
    };
    assert_eq!(reason, "wamp.close.normal");
    let reason = "wamp.close.goodbye_and_out".to_owned();
    router
        .send(Message::Goodbye {
            details: Dict::new(),
            reason,
        })
        .await;
    router.expect_eof().await;
}

#[tokio::test]
async fn transport_loss_and_abort_end_the_session() {
    let (session, router) = joined().await;
    drop(router);
    assert!(matches!(
        session.closed().await,
        CloseReason::TransportLost { .. }
    ));
    let call = session.call("com.x", Payload::default(), Dict::new()).await;
    assert!(matches!(call, Err(ClientError::Closed)));

    let (session, mut router) = joined().await;
    let reason = "wamp.close.killed".to_owned();
    router
        .send(Message::Abort {
            details: Dict::new(),
            reason,
        })
        .await;
    assert_eq!(session.closed().await.reason(), "wamp.close.killed");
}

#[tokio::test]
async fn garbage_and_unexpected_messages_are_protocol_violations() {
    let (session, mut router) = joined().await;
    router
        .send_frame(FrameKind::Message, Bytes::from_static(b"{not json"))
        .await;
    let Message::Abort { reason, .. } = router.recv().await else {
        panic!("expected ABORT")
    };
    assert_eq!(reason, "wamp.error.protocol_violation");
    assert!(matches!(
        session.closed().await,
        CloseReason::ProtocolViolation { .. }
    ));

    let (session, mut router) = joined().await;
    let hello = Message::Hello {
        realm: "realm1".into(),
        details: Dict::new(),
    };
    router.send(hello).await;
    assert!(matches!(router.recv().await, Message::Abort { .. }));
    assert!(matches!(
        session.closed().await,
        CloseReason::ProtocolViolation { .. }
    ));
}

/// A stream that counts `poll_write` calls that wrote something.
struct CountingStream {
    inner: DuplexStream,
    writes: Arc<AtomicUsize>,
}

impl AsyncRead for CountingStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountingStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
        written
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[tokio::test]
async fn queued_messages_leave_in_one_write() {
    let (client, server) = tokio::io::duplex(1 << 20);
    let writes = Arc::new(AtomicUsize::new(0));
    let client = CountingStream {
        inner: client,
        writes: writes.clone(),
    };
    let router = async {
        let mut router = FakeRouter::accept(server).await;
        router.welcome(42).await;
        router
    };
    let (session, mut router) =
        tokio::join!(Session::join(client, ClientConfig::new("realm1")), router);
    let session = session.unwrap();
    let before = writes.load(Ordering::Relaxed);
    // On this single-threaded runtime the connection task cannot run until we yield.
    for n in 0..200u64 {
        session
            .publish("com.burst", super::ints(&[n]), Dict::new())
            .await
            .unwrap();
    }
    for n in 0..200u64 {
        let Message::Publish {
            request, payload, ..
        } = router.recv().await
        else {
            panic!("expected PUBLISH")
        };
        assert_eq!((request.get(), payload), (n + 1, super::ints(&[n])));
    }
    let batched = writes.load(Ordering::Relaxed) - before;
    assert!(batched <= 2, "200 queued publishes took {batched} writes");
}
