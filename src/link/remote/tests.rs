//! Unit tests of the link's remote side against a scripted peer router over an in-memory stream.

use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;
use crate::rawsocket::handshake;
use crate::router::mesh::CHANNEL_TOPIC;
use crate::wamp::Id;

const WAIT: Duration = Duration::from_secs(5);
const SERIALIZER: Serializer = Serializer::MsgPack;

/// The peer router's end of the stream, scripted by each test.
struct Peer {
    stream: DuplexStream,
    buf: BytesMut,
}

impl Peer {
    /// Answers the RawSocket handshake announcing `max_receive`, reads HELLO.
    async fn accept(mut stream: DuplexStream, max_receive: usize) -> (Peer, Dict) {
        let mut request = [0u8; 4];
        stream.read_exact(&mut request).await.unwrap();
        stream
            .write_all(&handshake(SERIALIZER, max_receive))
            .await
            .unwrap();
        let mut peer = Peer {
            stream,
            buf: BytesMut::new(),
        };
        let Message::Hello { details, .. } = peer.recv().await else {
            panic!("HELLO expected");
        };
        (peer, details)
    }

    async fn recv(&mut self) -> Message {
        loop {
            if self.buf.len() >= 4 {
                let header = u32::from_be_bytes(self.buf[..4].try_into().unwrap());
                let (kind, len) = (header >> 24, (header & 0xFF_FFFF) as usize);
                if self.buf.len() >= 4 + len {
                    self.buf.advance(4);
                    let payload = self.buf.split_to(len);
                    if kind == 0 {
                        return SERIALIZER.decode(&payload).unwrap();
                    }
                    continue; // PONG: not a message
                }
            }
            let read = tokio::time::timeout(WAIT, self.stream.read_buf(&mut self.buf));
            assert!(
                read.await.unwrap().unwrap() > 0,
                "the link closed the stream"
            );
        }
    }

    async fn send(&mut self, message: &Message) {
        let bytes = SERIALIZER.encode(message).unwrap();
        self.stream
            .write_all(&(bytes.len() as u32).to_be_bytes())
            .await
            .unwrap();
        self.stream.write_all(&bytes).await.unwrap();
    }

    async fn welcome(&mut self, attached: bool) {
        let mut details = crate::dict! { "authrole" => "rlink" };
        if attached {
            details.insert(MESH_KEY.into(), crate::dict! { "attached" => true }.into());
        }
        let session = Id::new(7).unwrap();
        self.send(&Message::Welcome { session, details }).await;
    }
}

/// A joined side and its scripted peer, which allows messages of `max_receive` bytes.
async fn joined(max_receive: usize) -> (RemoteSide, Peer) {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let config = ClientConfig::new("realm1").with_serializer(SERIALIZER);
    let side = tokio::spawn(RemoteSide::join(Box::new(ours), config));
    let (mut peer, hello) = Peer::accept(theirs, max_receive).await;
    let asked = hello.get(MESH_KEY).and_then(Value::as_dict);
    assert_eq!(
        asked.and_then(|m| m.get("attach")),
        Some(&Value::Bool(true))
    );
    peer.welcome(true).await;
    (side.await.unwrap().unwrap(), peer)
}

async fn next(side: &mut RemoteSide) -> FromPeer {
    tokio::time::timeout(WAIT, side.next()).await.unwrap()
}

fn id(n: u64) -> Id {
    Id::new(n).unwrap()
}

#[tokio::test]
async fn carries_channel_events_publishes_and_answers_goodbye() {
    let (mut side, mut peer) = joined(1 << 16).await;
    let details = crate::dict! { MESH_KEY => crate::dict! { "type" => "ia" } };
    peer.send(&Message::Event {
        subscription: id(CHANNEL_ID),
        publication: id(1),
        details: details.clone(),
        payload: Payload::args(vec![1u64.into()]),
    })
    .await;
    let FromPeer::Channel {
        details: got,
        payload,
    } = next(&mut side).await
    else {
        panic!("a channel event expected");
    };
    assert_eq!((got, payload.args), (details, Some(vec![1u64.into()])));

    side.publish_channel(Value::from("body"), Payload::default());
    peer.send(&Message::Goodbye {
        details: Dict::new(),
        reason: "wamp.close.system_shutdown".into(),
    })
    .await;
    // The PUBLISH goes out while the side waits; then the GOODBYE ends it.
    let FromPeer::Ended(why) = next(&mut side).await else {
        panic!("the end expected");
    };
    assert_eq!(why, "peer session closed: wamp.close.system_shutdown");
    let Message::Publish { topic, options, .. } = peer.recv().await else {
        panic!("PUBLISH expected");
    };
    assert_eq!(
        (topic.as_str(), options.get(MESH_KEY)),
        (CHANNEL_TOPIC, Some(&Value::from("body")))
    );
    side.leave().await;
    let Message::Goodbye { reason, .. } = peer.recv().await else {
        panic!("GOODBYE reply expected");
    };
    assert_eq!(reason, reason::GOODBYE_AND_OUT);
}

#[tokio::test]
async fn a_yield_too_large_for_the_peer_becomes_payload_size_exceeded() {
    let (mut side, mut peer) = joined(1024).await;
    peer.send(&Message::Invocation {
        request: id(5),
        registration: id(INVOKE_ID),
        details: crate::dict! { "procedure" => "com.example.big" },
        payload: Payload::default(),
    })
    .await;
    let FromPeer::Invocation(invocation) = next(&mut side).await else {
        panic!("an invocation expected");
    };
    let big = Payload::args(vec!["x".repeat(4096).into()]);
    let answer = tokio::spawn(invocation.result(big));
    // The side writes the answer while it waits for more from the peer.
    let message = tokio::select! {
        from = side.next() => panic!("nothing expected from the peer, got {}", matches!(from, FromPeer::Ended(_))),
        message = peer.recv() => message,
    };
    answer.await.unwrap().unwrap();
    let Message::Error {
        request_type,
        request,
        error,
        ..
    } = message
    else {
        panic!("ERROR expected, got {}", message.name());
    };
    assert_eq!(
        (request_type, request, error.as_str()),
        (code::INVOCATION, id(5), reason::PAYLOAD_SIZE_EXCEEDED)
    );
}

#[tokio::test]
async fn a_call_through_the_peer_gets_its_results_in_order() {
    let (mut side, mut peer) = joined(1 << 16).await;
    let caller = side.caller();
    let options = crate::dict! { "receive_progress" => true };
    let call = tokio::spawn(async move {
        let mut call = caller
            .call("com.example.count", Payload::default(), options)
            .await
            .unwrap();
        let mut got = Vec::new();
        while let Some(result) = call.next().await {
            got.push(result.unwrap().payload.args.unwrap_or_default());
        }
        got
    });
    let driven = tokio::spawn(async move {
        let ended = next(&mut side).await;
        (side, matches!(ended, FromPeer::Ended(_)))
    });
    let Message::Call {
        request, procedure, ..
    } = peer.recv().await
    else {
        panic!("CALL expected");
    };
    assert_eq!(procedure, "com.example.count");
    for (n, progress) in [(1u64, true), (2, false)] {
        let details = if progress {
            crate::dict! { "progress" => true }
        } else {
            Dict::new()
        };
        let payload = Payload::args(vec![n.into()]);
        peer.send(&Message::Result {
            request,
            details,
            payload,
        })
        .await;
    }
    let got = tokio::time::timeout(WAIT, call).await.unwrap().unwrap();
    assert_eq!(got, vec![vec![Value::from(1u64)], vec![Value::from(2u64)]]);
    // The peer's ABORT ends the side.
    peer.send(&Message::abort("wamp.close.killed", "bye")).await;
    let (_side, ended) = driven.await.unwrap();
    assert!(ended);
}

#[tokio::test]
async fn a_realm_that_does_not_attach_the_link_is_refused() {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let config = ClientConfig::new("realm1").with_serializer(SERIALIZER);
    let side = tokio::spawn(RemoteSide::join(Box::new(ours), config));
    let (mut peer, _) = Peer::accept(theirs, 1 << 16).await;
    peer.welcome(false).await;
    let Message::Goodbye { .. } = peer.recv().await else {
        panic!("GOODBYE expected from a link refusing the session");
    };
    peer.send(&Message::Goodbye {
        details: Dict::new(),
        reason: reason::GOODBYE_AND_OUT.into(),
    })
    .await;
    let Err(e) = side.await.unwrap() else {
        panic!("joining must fail");
    };
    assert!(e.to_string().contains("did not attach the link"), "{e}");
}

#[tokio::test]
async fn a_full_write_buffer_says_when_it_has_room_again() {
    // A small pipe and a peer that does not read yet: the buffer fills.
    let (ours, theirs) = tokio::io::duplex(4096);
    let config = ClientConfig::new("realm1").with_serializer(SERIALIZER);
    let side = tokio::spawn(RemoteSide::join(Box::new(ours), config));
    let (mut peer, _) = Peer::accept(theirs, 1 << 20).await;
    peer.welcome(true).await;
    let mut side = side.await.unwrap().unwrap();
    let body = Payload::args(vec!["x".repeat(60_000).into()]);
    let mut published = 0;
    while side.has_room() {
        side.publish_channel(Value::from("bulk"), body.clone());
        published += 1;
    }
    // Nothing comes from the peer; the side must still end its wait once the peer has read
    // enough (the shuttle takes nothing from its realm until then).
    let reader = tokio::spawn(async move {
        for _ in 0..published {
            let Message::Publish { .. } = peer.recv().await else {
                panic!("PUBLISH expected");
            };
        }
        peer
    });
    let FromPeer::Room = next(&mut side).await else {
        panic!("room expected");
    };
    assert!(side.has_room());
    // The rest is written as the side keeps being polled; the peer gets every publication.
    let drain = async {
        loop {
            let _ = side.next().await;
        }
    };
    tokio::select! {
        _ = drain => {}
        peer = reader => drop(peer.unwrap()),
    }
}
