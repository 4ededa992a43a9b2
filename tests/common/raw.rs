//! A RawSocket peer written by hand over TCP, for the tests that check the router's answers
//! byte by byte (`router_rawsocket.rs`, `limits.rs`, `hostile.rs`): connect, the 4-byte
//! handshake, frames out and in, messages encoded and decoded with one serializer, and the
//! ways a connection may end (ABORT, a close after frames, a close without a byte).

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use wampmesh::wamp::{Dict, Message, Serializer};

/// RawSocket frame type of a PING.
pub const PING: u8 = 1;
/// RawSocket frame type of a PONG.
pub const PONG: u8 = 2;

/// A peer that speaks RawSocket byte by byte.
pub struct Raw {
    pub stream: TcpStream,
    /// The serializer of `send` and `recv` (JSON until a handshake chose another).
    pub serializer: Serializer,
    /// Largest frame we announced; a bigger one from the router fails the test.
    pub max_receive: usize,
    /// Every wait of this peer (connect, handshake reply, write, frame, close) is bounded by it.
    pub wait: Duration,
}

impl Raw {
    /// Connects to `addr` within `wait`; `wait` then bounds every later wait of this peer.
    pub async fn connect(addr: &str, wait: Duration) -> Raw {
        let stream = timeout(wait, TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Raw {
            stream,
            serializer: Serializer::Json,
            max_receive: 1 << 24,
            wait,
        }
    }

    /// Connects and completes a handshake for `serializer` announcing 16 MiB.
    pub async fn open(addr: &str, serializer: Serializer, wait: Duration) -> Raw {
        let mut raw = Raw::connect(addr, wait).await;
        let reply = raw.handshake(0xF0 | serializer.code()).await;
        assert_eq!(reply[0], 0x7F, "magic in the reply");
        assert_eq!(reply[1] & 0x0F, serializer.code(), "serializer echoed");
        raw.serializer = serializer;
        raw
    }

    /// Connects, completes a JSON handshake announcing 16 MiB and joins `realm`.
    pub async fn joined(addr: &str, realm: &str, wait: Duration) -> Raw {
        let mut raw = Raw::open(addr, Serializer::Json, wait).await;
        raw.join(realm).await;
        raw
    }

    /// Sends `7F octet1 00 00` and reads the 4-byte reply.
    pub async fn handshake(&mut self, octet1: u8) -> [u8; 4] {
        self.handshake_bytes([0x7F, octet1, 0, 0]).await
    }

    /// Sends the 4 handshake bytes `request` as they are and reads the 4-byte reply.
    pub async fn handshake_bytes(&mut self, request: [u8; 4]) -> [u8; 4] {
        self.write(&request).await;
        let mut reply = [0u8; 4];
        timeout(self.wait, self.stream.read_exact(&mut reply))
            .await
            .expect("handshake reply in time")
            .expect("handshake reply");
        self.max_receive = 1 << (9 + (request[1] >> 4));
        reply
    }

    /// Writes bytes; a write error is ignored (the router may already have closed).
    pub async fn write(&mut self, bytes: &[u8]) {
        let _ = timeout(self.wait, self.stream.write_all(bytes)).await;
    }

    pub async fn write_frame(&mut self, kind: u8, payload: &[u8]) {
        let len = payload.len();
        let mut frame = vec![kind, (len >> 16) as u8, (len >> 8) as u8, len as u8];
        frame.extend_from_slice(payload);
        self.write(&frame).await;
    }

    pub async fn send(&mut self, message: &Message) {
        let bytes = self.serializer.encode(message).expect("encode");
        self.write_frame(0, &bytes).await;
    }

    pub async fn send_json(&mut self, text: &str) {
        self.write_frame(0, text.as_bytes()).await;
    }

    /// The next frame, `Ok(None)` once the router closed the connection, `Err` on timeout.
    pub async fn try_frame(&mut self, wait: Duration) -> Result<Option<(u8, Vec<u8>)>, ()> {
        let mut header = [0u8; 4];
        match timeout(wait, self.stream.read_exact(&mut header)).await {
            Err(_) => return Err(()),
            Ok(Err(_)) => return Ok(None),
            Ok(Ok(_)) => {}
        }
        let len = ((header[1] as usize) << 16) | ((header[2] as usize) << 8) | header[3] as usize;
        assert_eq!(
            header[0] & 0xF8,
            0,
            "router set reserved frame bits: {header:?}"
        );
        assert!(
            len <= self.max_receive,
            "router sent a {len}-byte frame; we announced {}",
            self.max_receive
        );
        let mut payload = vec![0u8; len];
        match timeout(wait, self.stream.read_exact(&mut payload)).await {
            Err(_) => Err(()),
            Ok(Err(_)) => Ok(None),
            Ok(Ok(_)) => Ok(Some((header[0], payload))),
        }
    }

    /// The next frame; the connection must be open and the frame arrive within `wait`.
    pub async fn frame(&mut self) -> (u8, Vec<u8>) {
        self.try_frame(self.wait)
            .await
            .expect("a frame in time")
            .expect("connection open")
    }

    /// The next WAMP message; `None` once the router closed (EOF or reset). A frame other than
    /// a message frame (a PONG) fails the test.
    pub async fn try_recv(&mut self) -> Option<Message> {
        let (kind, payload) = self.try_frame(self.wait).await.expect("a frame in time")?;
        assert_eq!(kind, 0, "expected a message frame");
        Some(
            self.serializer
                .decode(&payload)
                .expect("router sends valid messages"),
        )
    }

    /// The next WAMP message; the connection must be open.
    pub async fn recv(&mut self) -> Message {
        self.try_recv().await.expect("connection open")
    }

    /// HELLO for `realm` -> WELCOME; returns the session id.
    pub async fn join(&mut self, realm: &str) -> u64 {
        self.send(&hello(realm)).await;
        match self.recv().await {
            Message::Welcome { session, .. } => session.get(),
            other => panic!("expected WELCOME, got {other:?}"),
        }
    }

    /// The next message is ABORT with `reason`, then the connection closes (frames before the
    /// close are skipped).
    pub async fn expect_abort(&mut self, reason: &str) {
        self.expect_abort_message(reason).await;
        self.expect_closed().await;
    }

    /// The next message is ABORT with `reason`, then the connection closes without another
    /// byte.
    pub async fn expect_abort_then_silence(&mut self, reason: &str) {
        self.expect_abort_message(reason).await;
        self.expect_closed_silently().await;
    }

    /// ABORT `reason` then a close without another byte, or the close at once: when the router
    /// fails the connection with our bytes still unread, its close may be a reset that drops
    /// the ABORT.
    pub async fn expect_abort_or_close(&mut self, reason: &str) {
        if let Some(message) = self.try_recv().await {
            match message {
                Message::Abort { reason: got, .. } => assert_eq!(got, reason),
                other => panic!("expected ABORT {reason} or the close, got {other:?}"),
            }
            self.expect_closed_silently().await;
        }
    }

    async fn expect_abort_message(&mut self, reason: &str) {
        match self.try_recv().await {
            Some(Message::Abort { reason: got, .. }) => assert_eq!(got, reason),
            other => panic!("expected ABORT {reason}, got {other:?}"),
        }
    }

    /// The router closes the connection within `wait` (frames before the close are skipped).
    pub async fn expect_closed(&mut self) {
        let deadline = Instant::now() + self.wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.try_frame(left).await {
                Err(()) => panic!("connection still open after {:?}", self.wait),
                Ok(None) => return,
                Ok(Some(_)) => {}
            }
        }
    }

    /// The router closes the connection (EOF or reset) within `wait` without sending a byte.
    pub async fn expect_closed_silently(&mut self) {
        let mut buf = [0u8; 256];
        match timeout(self.wait, self.stream.read(&mut buf)).await {
            Err(_) => panic!("connection still open after {:?}", self.wait),
            Ok(Ok(0)) | Ok(Err(_)) => {}
            Ok(Ok(n)) => panic!("expected no reply, got {:?}", &buf[..n]),
        }
    }
}

/// HELLO for `realm` announcing the four client roles without features.
pub fn hello(realm: &str) -> Message {
    let roles = wampmesh::dict! {
        "publisher" => Dict::new(), "subscriber" => Dict::new(),
        "caller" => Dict::new(), "callee" => Dict::new(),
    };
    Message::Hello {
        realm: realm.into(),
        details: wampmesh::dict! { "roles" => roles },
    }
}
