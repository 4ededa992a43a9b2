//! Admission limits at the RawSocket handshake, checked with raw bytes over TCP: a connection
//! over `limits.max_connections_per_address` or `limits.max_sessions` is answered `7F 40 00 00`
//! and closed, a client announcing less than `min_peer_message_size` is answered `7F 20 00 00`,
//! and a healthy client keeps publishing and receiving while a flood of twice the limit is
//! refused.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::timeout;

use wampmesh::client::{ClientConfig, Session};
use wampmesh::config::Config;
use wampmesh::node::Node;
use wampmesh::wamp::{Dict, Payload, Value};

mod common;
use common::raw::Raw;

/// Every wait in this file is bounded by this.
const WAIT: Duration = Duration::from_secs(5);
const CONNECTION_LIMIT_REPLY: [u8; 4] = [0x7F, 0x40, 0, 0];
const MAX_LENGTH_REPLY: [u8; 4] = [0x7F, 0x20, 0, 0];

/// One TCP listener on port 0 with `listen` keys, realm `realm1` open to anonymous, `[limits]`.
async fn start(listen: &str, limits: &str) -> (Node, String) {
    let text = format!(
        r#"
[[listen]]
transport = "tcp"
address = "127.0.0.1:0"
{listen}

[[realm]]
name = "realm1"
[[realm.role]]
name = "anonymous"
permissions = [{{ uri = "", match = "prefix", call = true, register = true, publish = true, subscribe = true }}]

[limits]
{limits}
"#
    );
    let config = Config::from_toml_str(&text).unwrap_or_else(|e| panic!("test config: {e}"));
    let node = Node::start(config).await.expect("node starts");
    let addr = node.local_addr("tcp").expect("tcp listener").to_owned();
    (node, addr)
}

async fn stop(node: Node) {
    timeout(
        Duration::from_secs(10),
        node.shutdown(Duration::from_secs(2)),
    )
    .await
    .expect("node shuts down");
}

/// Connects and sends the handshake `7F octet1 00 00`; returns the peer and the reply.
async fn handshake(addr: &str, octet1: u8) -> (Raw, [u8; 4]) {
    let mut raw = Raw::connect(addr, WAIT).await;
    let reply = raw.handshake(octet1).await;
    (raw, reply)
}

async fn client(addr: &str) -> Session {
    timeout(
        WAIT,
        Session::connect_tcp(addr, ClientConfig::new("realm1")),
    )
    .await
    .expect("join in time")
    .expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_over_the_per_address_limit_gets_7f40_then_close() {
    let (node, addr) = start("", "max_connections_per_address = 3").await;
    let mut open = Vec::new();
    for _ in 0..3 {
        let (stream, reply) = handshake(&addr, 0xF1).await;
        assert_eq!(reply, [0x7F, 0xF1, 0, 0], "within the limit: accepted");
        open.push(stream);
    }
    let (mut refused, reply) = handshake(&addr, 0xF1).await;
    assert_eq!(reply, CONNECTION_LIMIT_REPLY);
    refused.expect_closed_silently().await;
    assert_eq!(node.metrics().handshake_failures("connection_limit"), 1);

    // A place frees up when a connection ends.
    drop(open.pop());
    let mut accepted = None;
    for _ in 0..50 {
        let (stream, reply) = handshake(&addr, 0xF1).await;
        if reply == [0x7F, 0xF1, 0, 0] {
            accepted = Some(stream);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        accepted.is_some(),
        "a freed place is given to the next connection"
    );
    stop(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_over_max_sessions_gets_7f40_then_close() {
    let (node, addr) = start("", "max_sessions = 2").await;
    let first = client(&addr).await;
    let _second = client(&addr).await;
    let (mut refused, reply) = handshake(&addr, 0xF2).await;
    assert_eq!(reply, CONNECTION_LIMIT_REPLY);
    refused.expect_closed_silently().await;
    let error = Session::connect_tcp(&addr, ClientConfig::new("realm1"))
        .await
        .expect_err("the client library sees the refusal");
    assert!(error.to_string().contains("error code 4"), "{error}");

    // The node's own in-process sessions (management, links) do not take places.
    first.leave("wamp.close.normal").await.expect("leave");
    drop(first);
    let mut joined = None;
    for _ in 0..50 {
        if let Ok(session) = Session::connect_tcp(&addr, ClientConfig::new("realm1")).await {
            joined = Some(session);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(joined.is_some(), "a session that left frees its place");
    stop(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_announcing_less_than_min_peer_message_size_gets_7f20() {
    let (node, addr) = start("min_peer_message_size = 4096", "").await;
    // L = 2: the client receives at most 2^11 = 2048 bytes.
    let (mut refused, reply) = handshake(&addr, 0x21).await;
    assert_eq!(reply, MAX_LENGTH_REPLY);
    refused.expect_closed_silently().await;
    assert_eq!(
        node.metrics().handshake_failures("max_length_unacceptable"),
        1
    );
    // L = 3 (4096 bytes) is enough.
    let (_accepted, reply) = handshake(&addr, 0x31).await;
    assert_eq!(reply, [0x7F, 0xF1, 0, 0]);
    stop(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_min_peer_message_size_refuses_no_one() {
    let (node, addr) = start("", "").await;
    let (_accepted, reply) = handshake(&addr, 0x01).await;
    assert_eq!(
        reply,
        [0x7F, 0xF1, 0, 0],
        "512 bytes (L = 0) is accepted by default"
    );
    stop(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_stream_over_the_limit_gets_7f40_on_the_stream() {
    use wampmesh::transport::quic::{QuicConnector, QuicSettings};
    use wampmesh::transport::tls::{self, ServerTrust, ALPN_QUIC};
    let text = "[[listen]]\ntransport = \"quic\"\naddress = \"127.0.0.1:0\"\n\
         [[realm]]\nname = \"realm1\"\n[[realm.role]]\nname = \"anonymous\"\n\
         permissions = [{ uri = \"\", match = \"prefix\", call = true, register = true, publish = true, subscribe = true }]\n\
         [limits]\nmax_connections_per_address = 2\n";
    let node = Node::start(Config::from_toml_str(text).expect("config"))
        .await
        .expect("node starts");
    let trust = ServerTrust::Fingerprint(node.tls().identity.fingerprint());
    let client_tls = tls::client_config(&trust, None, &[ALPN_QUIC]).expect("client TLS");
    let connector = QuicConnector::new(client_tls, &QuicSettings::default()).expect("endpoint");
    let addr = node.local_addr("quic").expect("quic listener").to_owned();
    let connection = timeout(WAIT, connector.connect(&addr, "localhost"))
        .await
        .expect("in time")
        .expect("connect");
    // Each stream is one RawSocket connection: two sessions fill the places of 127.0.0.1.
    let mut sessions = Vec::new();
    for _ in 0..2 {
        let stream = connection.open_stream().await.expect("stream");
        sessions.push(
            timeout(WAIT, Session::join(stream, ClientConfig::new("realm1")))
                .await
                .expect("in time")
                .expect("join"),
        );
    }
    let (mut send, mut recv) = connection.connection.open_bi().await.expect("open_bi");
    send.write_all(&[0x7F, 0xF1, 0, 0])
        .await
        .expect("handshake");
    let mut reply = [0u8; 4];
    timeout(WAIT, recv.read_exact(&mut reply))
        .await
        .expect("reply in time")
        .expect("reply");
    assert_eq!(reply, CONNECTION_LIMIT_REPLY);
    // Then the stream ends (FIN, or a reset when the router drops it).
    let rest = timeout(WAIT, recv.read_to_end(1024))
        .await
        .expect("the stream ends");
    assert!(
        rest.as_ref().map_or(true, Vec::is_empty),
        "nothing after the refusal: {rest:?}"
    );
    // The connection and its sessions are unaffected.
    let subscribed = sessions[0].subscribe("com.after", Dict::new()).await;
    assert!(subscribed.is_ok(), "{subscribed:?}");
    stop(node).await;
}

/// A publisher and a subscriber exchanging events in a background task until stopped.
struct Traffic {
    received: Arc<AtomicU64>,
    failed: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Traffic {
    async fn start(addr: &str) -> Traffic {
        let publisher = client(addr).await;
        let subscriber = client(addr).await;
        let mut subscription = subscriber
            .subscribe("com.healthy", Dict::new())
            .await
            .expect("subscribe");
        let received: Arc<AtomicU64> = Arc::default();
        let (failed, stop): (Arc<AtomicBool>, Arc<AtomicBool>) = (Arc::default(), Arc::default());
        let (r, f, s) = (
            Arc::clone(&received),
            Arc::clone(&failed),
            Arc::clone(&stop),
        );
        let task = tokio::spawn(async move {
            let _subscriber = subscriber;
            let mut n = 0u64;
            while !s.load(Ordering::Relaxed) {
                n += 1;
                let ack = wampmesh::dict! { "acknowledge" => true };
                let payload = Payload::args(vec![Value::UInt(n)]);
                let published = timeout(WAIT, publisher.publish("com.healthy", payload, ack)).await;
                let event = timeout(WAIT, subscription.next()).await;
                match (published, event) {
                    (Ok(Ok(_)), Ok(Some(event)))
                        if event.payload.args == Some(vec![Value::UInt(n)]) =>
                    {
                        r.fetch_add(1, Ordering::Relaxed);
                    }
                    other => {
                        eprintln!("healthy client failed at event {n}: {other:?}");
                        f.store(true, Ordering::Relaxed);
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
        Traffic {
            received,
            failed,
            stop,
            task,
        }
    }

    fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Waits until `more` further events arrived; fails on a stall or an error.
    async fn keeps_receiving(&self, more: u64) {
        let target = self.received() + more;
        let waited = timeout(WAIT, async {
            while self.received() < target && !self.failed.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert!(
            !self.failed.load(Ordering::Relaxed),
            "the healthy client saw an error"
        );
        assert!(
            waited.is_ok(),
            "the healthy client stalled at {} events",
            self.received()
        );
    }

    async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        timeout(WAIT, self.task)
            .await
            .expect("traffic stops")
            .expect("traffic task");
        assert!(
            !self.failed.load(Ordering::Relaxed),
            "the healthy client saw an error"
        );
        self.received.load(Ordering::Relaxed)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_client_keeps_working_while_a_flood_of_twice_the_limit_is_refused() {
    const LIMIT: usize = 20;
    let (node, addr) = start("", &format!("max_connections_per_address = {LIMIT}")).await;
    let traffic = Traffic::start(&addr).await; // two connections of the limit
    traffic.keeps_receiving(10).await;

    let before = traffic.received();
    let flood: Vec<_> = (0..2 * LIMIT)
        .map(|_| tokio::spawn(handshake_and_hold(addr.clone())))
        .collect();
    let mut streams = Vec::new();
    let (mut accepted, mut refused) = (0, 0);
    for attempt in flood {
        let (stream, reply) = attempt.await.expect("flood task");
        match reply {
            [0x7F, 0xF1, 0, 0] => accepted += 1,
            CONNECTION_LIMIT_REPLY => refused += 1,
            other => panic!("unexpected handshake reply {other:?}"),
        }
        streams.push(stream);
    }
    assert_eq!(accepted, LIMIT - 2, "the places left were given out");
    assert_eq!(
        refused,
        LIMIT + 2,
        "everything beyond the limit was refused"
    );
    traffic.keeps_receiving(20).await;
    assert!(
        traffic.received() > before,
        "events kept flowing during the flood"
    );
    assert_eq!(
        node.metrics().handshake_failures("connection_limit"),
        (LIMIT + 2) as u64
    );

    drop(streams);
    traffic.keeps_receiving(10).await;
    let total = traffic.finish().await;
    assert!(total >= 40, "{total} events");
    stop(node).await;
}

/// One flood connection: handshake, then the connection is kept (accepted ones hold a place).
async fn handshake_and_hold(addr: String) -> (Raw, [u8; 4]) {
    handshake(&addr, 0xF1).await
}
