//! The QUIC transport of a node, in-process on 127.0.0.1, driven by the crate's own QUIC client
//! (`QuicConnector`): many sessions on one connection, mixed serializers on one connection, TCP
//! and QUIC clients in one realm, per-stream fault isolation, stream flow control
//! (`max_streams`), certificate pinning, mutual TLS and listener unbind.
//!
//! Every stream a client opens is one RawSocket connection with one WAMP session (DESIGN §2);
//! the raw-byte tests below open streams with quinn directly to misbehave on them.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::timeout;

use wampmesh::client::{ClientConfig, Session, Subscription};
use wampmesh::config::Config;
use wampmesh::node::Node;
use wampmesh::transport::quic::{QuicConnection, QuicConnector, QuicSettings};
use wampmesh::transport::tls::{self, Identity, ServerTrust, ALPN_QUIC};
use wampmesh::wamp::{Dict, Message, Payload, Serializer, Value};

/// Every single wait in this file is bounded by this, so a hang fails fast.
const WAIT: Duration = Duration::from_secs(5);
const TOPIC: &str = "com.example.quic.topic";

const REALM: &str = r#"
[[realm]]
name = "realm1"
[[realm.role]]
name = "anonymous"
permissions = [{ uri = "", match = "prefix", call = true, register = true, publish = true, subscribe = true }]
"#;

/// Node `node1`: `extra` top-level tables, one QUIC listener on 127.0.0.1:0 with `listen` keys,
/// realm `realm1` open to anonymous sessions.
fn config(listen: &str, extra: &str) -> Config {
    let text = format!(
        "[node]\nid = \"node1\"\n{extra}\n[[listen]]\ntransport = \"quic\"\n\
         address = \"127.0.0.1:0\"\n{listen}\n{REALM}"
    );
    Config::from_toml_str(&text).unwrap_or_else(|e| panic!("test config: {e}\n{text}"))
}

async fn start(config: Config) -> Node {
    Node::start(config).await.expect("node starts")
}

async fn stop(node: Node) {
    timeout(
        Duration::from_secs(10),
        node.shutdown(Duration::from_secs(2)),
    )
    .await
    .expect("node shuts down");
}

fn quic_addr(node: &Node) -> String {
    node.local_addr("quic").expect("quic listener").to_owned()
}

/// A client endpoint trusting the server as `trust` says, presenting `identity` if given.
fn connector(trust: &ServerTrust, identity: Option<&Identity>) -> QuicConnector {
    let tls = tls::client_config(trust, identity, &[ALPN_QUIC]).expect("client TLS config");
    QuicConnector::new(tls, &QuicSettings::default()).expect("client endpoint")
}

/// A client endpoint that pins the node's (self-signed) certificate.
fn pinned(node: &Node) -> QuicConnector {
    let fingerprint = node.tls().identity.fingerprint();
    connector(&ServerTrust::Fingerprint(fingerprint), None)
}

async fn connect(connector: &QuicConnector, node: &Node) -> QuicConnection {
    timeout(WAIT, connector.connect(&quic_addr(node), "localhost"))
        .await
        .expect("QUIC connect in time")
        .expect("QUIC connect")
}

/// A new stream on `connection`, joined to realm1 with `config`.
async fn join_with(connection: &QuicConnection, config: ClientConfig) -> Session {
    let stream = timeout(WAIT, connection.open_stream())
        .await
        .expect("stream opened in time")
        .expect("stream opened");
    timeout(WAIT, Session::join(stream, config))
        .await
        .expect("joined in time")
        .expect("joined")
}

async fn join(connection: &QuicConnection) -> Session {
    join_with(connection, ClientConfig::new("realm1")).await
}

async fn subscribe(session: &Session, topic: &str) -> Subscription {
    timeout(WAIT, session.subscribe(topic, Dict::new()))
        .await
        .expect("subscribed in time")
        .expect("subscribed")
}

async fn next_event(subscription: &mut Subscription, what: &str) -> wampmesh::client::Event {
    timeout(WAIT, subscription.next())
        .await
        .unwrap_or_else(|_| panic!("{what}: no event within {WAIT:?}"))
        .unwrap_or_else(|| panic!("{what}: subscription ended"))
}

fn acknowledge() -> Dict {
    wampmesh::dict! { "acknowledge" => true }
}

/// `publisher` publishes `[n]` on TOPIC (acknowledged); `subscription` must receive it next.
async fn assert_delivers(publisher: &Session, subscription: &mut Subscription, n: u64, what: &str) {
    let payload = Payload::args(vec![n.into()]);
    timeout(
        WAIT,
        publisher.publish(TOPIC, payload.clone(), acknowledge()),
    )
    .await
    .unwrap_or_else(|_| panic!("{what}: PUBLISHED in time"))
    .unwrap_or_else(|e| panic!("{what}: publish: {e}"));
    let event = next_event(subscription, what).await;
    assert_eq!(event.payload, payload, "{what}: the event published");
}

/// `wamp.session.get` for `id`: Ok(details) or Err(error URI).
async fn session_get(session: &Session, id: u64) -> Result<Dict, String> {
    let payload = Payload::args(vec![id.into()]);
    let answer = timeout(WAIT, session.call("wamp.session.get", payload, Dict::new()))
        .await
        .expect("wamp.session.get answered in time");
    match answer {
        Ok(result) => {
            let args = result.payload.args.unwrap_or_default();
            Ok(args
                .first()
                .and_then(Value::as_dict)
                .cloned()
                .unwrap_or_default())
        }
        Err(e) => Err(e.uri().unwrap_or("?").to_owned()),
    }
}

/// Waits until the router no longer knows session `id` (it ended), or panics after WAIT.
async fn assert_session_gone(observer: &Session, id: u64, what: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        match session_get(observer, id).await {
            Err(uri) if uri == "wamp.error.no_such_session" => return,
            other => assert!(
                Instant::now() < deadline,
                "{what}: session {id} still known to the router: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_sessions_on_one_connection() {
    const SESSIONS: usize = 1000;
    let node = start(config("", "")).await;
    let connection = connect(&pinned(&node), &node).await;

    let started = Instant::now();
    let mut joining = JoinSet::new();
    for _ in 0..SESSIONS {
        let connection = connection.clone();
        joining.spawn(async move {
            let stream = connection.open_stream().await.expect("stream opened");
            let config = ClientConfig::new("realm1");
            let session = Session::join(stream, config).await.expect("joined");
            let subscription = session
                .subscribe(TOPIC, Dict::new())
                .await
                .expect("subscribed");
            (session, subscription)
        });
    }
    let mut subscribers = Vec::with_capacity(SESSIONS);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while let Some(joined) = tokio::time::timeout_at(deadline, joining.join_next())
        .await
        .expect("1000 sessions joined within 60 s")
    {
        subscribers.push(joined.expect("join task"));
    }
    let joined_in = started.elapsed();
    assert_eq!(subscribers.len(), SESSIONS);
    let mut ids: Vec<u64> = subscribers.iter().map(|(s, _)| s.id().get()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), SESSIONS, "every stream is its own session");

    let publisher = join(&connection).await;
    let count = timeout(
        WAIT,
        publisher.call("wamp.session.count", Payload::default(), Dict::new()),
    )
    .await
    .expect("count in time")
    .expect("wamp.session.count");
    let count = count.payload.args.unwrap_or_default();
    assert_eq!(
        count.first().and_then(Value::as_u64),
        Some(SESSIONS as u64 + 1)
    );

    let payload = Payload::args(vec!["to everyone".into()]);
    let started = Instant::now();
    publisher
        .publish(TOPIC, payload.clone(), acknowledge())
        .await
        .expect("published");
    let mut receiving = JoinSet::new();
    for (session, mut subscription) in subscribers {
        receiving.spawn(async move {
            let event = subscription.next().await.expect("event");
            (session, event)
        });
    }
    let mut received = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while let Some(done) = tokio::time::timeout_at(deadline, receiving.join_next())
        .await
        .expect("all 1000 events within 30 s")
    {
        let (_session, event) = done.expect("receive task");
        assert_eq!(event.payload, payload);
        received += 1;
    }
    let fan_out_in = started.elapsed();
    assert_eq!(received, SESSIONS);
    assert!(
        connection.connection.close_reason().is_none(),
        "connection still up"
    );
    println!(
        "{SESSIONS} sessions on one QUIC connection: open+join+subscribe {joined_in:.1?} \
         ({:.2?} per session, concurrently); one publish reached all {SESSIONS} in {fan_out_in:.1?}",
        joined_in / SESSIONS as u32
    );
    stop(node).await;
}

/// A payload with every kind of value the three serializers must carry alike.
fn rich_payload(from: &str) -> Payload {
    let kwargs = wampmesh::dict! {
        "from" => from,
        "nested" => Value::Dict(wampmesh::dict! { "list" => vec![Value::from(1u64), "two".into()] }),
        "flag" => false,
    };
    let args = vec![
        from.into(),
        42u64.into(),
        Value::from(-7i64),
        1.5f64.into(),
        true.into(),
        Value::Null,
        "unicode: ünïcødé ✓".into(),
    ];
    Payload::new(args, kwargs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_serializers_on_one_connection() {
    let node = start(config("", "")).await;
    let connection = connect(&pinned(&node), &node).await;
    let serializers = [Serializer::Json, Serializer::MsgPack, Serializer::Cbor];
    let mut peers = Vec::new();
    for serializer in serializers {
        let name = serializer.name();
        let config = ClientConfig::new("realm1").with_serializer(serializer);
        let session = join_with(&connection, config).await;
        let subscription = subscribe(&session, TOPIC).await;
        let callee = name.to_owned();
        let served = session
            .serve(
                &format!("com.example.echo.{name}"),
                Dict::new(),
                move |call| {
                    let callee = callee.clone();
                    async move {
                        let mut payload = call.payload.clone();
                        payload
                            .args
                            .get_or_insert_with(Vec::new)
                            .push(callee.into());
                        let _ = call.result(payload).await;
                    }
                },
            )
            .await
            .expect("registered");
        peers.push((name, session, subscription, served));
    }

    for from in 0..peers.len() {
        let (name, publisher) = (peers[from].0, peers[from].1.clone());
        let payload = rich_payload(name);
        publisher
            .publish(TOPIC, payload.clone(), acknowledge())
            .await
            .unwrap_or_else(|e| panic!("{name} publishes: {e}"));
        for (to, (receiver, _, subscription, _)) in peers.iter_mut().enumerate() {
            if to == from {
                continue; // the publisher is excluded by default
            }
            let event = next_event(subscription, &format!("{name} -> {receiver}")).await;
            assert_eq!(
                event.payload, payload,
                "{name} -> {receiver}: event payload"
            );
        }
    }

    for (caller_name, caller, _, _) in &peers {
        for (callee_name, _, _, _) in &peers {
            let payload = rich_payload(caller_name);
            let procedure = format!("com.example.echo.{callee_name}");
            let result = timeout(WAIT, caller.call(&procedure, payload.clone(), Dict::new()))
                .await
                .expect("result in time")
                .unwrap_or_else(|e| panic!("{caller_name} calls {procedure}: {e}"));
            let mut expected = payload;
            expected
                .args
                .as_mut()
                .expect("args")
                .push((*callee_name).into());
            assert_eq!(
                result.payload, expected,
                "{caller_name} -> {callee_name}: result"
            );
        }
    }
    assert!(connection.connection.close_reason().is_none());
    stop(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_and_quic_clients_share_a_realm() {
    let tcp = "[[listen]]\ntransport = \"tcp\"\naddress = \"127.0.0.1:0\"\n";
    let node = start(config("", tcp)).await;
    let tcp_addr = node.local_addr("tcp").expect("tcp listener").to_owned();
    let on_tcp = timeout(
        WAIT,
        Session::connect_tcp(&tcp_addr, ClientConfig::new("realm1")),
    )
    .await
    .expect("tcp join in time")
    .expect("tcp join");
    let connection = connect(&pinned(&node), &node).await;
    let on_quic = join(&connection).await;
    let mut tcp_events = subscribe(&on_tcp, TOPIC).await;
    let mut quic_events = subscribe(&on_quic, TOPIC).await;

    assert_delivers(&on_quic, &mut tcp_events, 1, "quic -> tcp").await;
    assert_delivers(&on_tcp, &mut quic_events, 2, "tcp -> quic").await;

    let quic_transport = session_get(&on_tcp, on_quic.id().get())
        .await
        .expect("quic session");
    let tcp_transport = session_get(&on_quic, on_tcp.id().get())
        .await
        .expect("tcp session");
    let protocol = |details: &Dict| {
        let transport = details.get("transport").and_then(Value::as_dict);
        transport
            .and_then(|t| t.get("protocol"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    assert_eq!(protocol(&quic_transport).as_deref(), Some("quic"));
    assert_ne!(protocol(&tcp_transport).as_deref(), Some("quic"));
    stop(node).await;
}

/// A stream opened with quinn directly, to send whatever bytes a test wants.
struct RawStream {
    send: quinn::SendStream,
    recv: quinn::RecvStream,
}

impl RawStream {
    async fn open(connection: &QuicConnection) -> RawStream {
        let (send, recv) = timeout(WAIT, connection.connection.open_bi())
            .await
            .expect("stream opened in time")
            .expect("stream opened");
        RawStream { send, recv }
    }

    /// Writes; an error is ignored (the router may have closed already).
    async fn write(&mut self, bytes: &[u8]) {
        let _ = timeout(WAIT, self.send.write_all(bytes)).await;
        let _ = self.send.flush().await;
    }

    async fn write_message(&mut self, message: &Message) {
        let payload = Serializer::Json.encode(message).expect("encode");
        let len = payload.len();
        let mut frame = vec![0, (len >> 16) as u8, (len >> 8) as u8, len as u8];
        frame.extend_from_slice(&payload);
        self.write(&frame).await;
    }

    /// Exactly `n` bytes, or None if the stream ends (FIN or reset) first.
    async fn read_exact(&mut self, n: usize) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; n];
        let read = timeout(WAIT, self.recv.read_exact(&mut buf))
            .await
            .expect("router answered or closed within WAIT");
        read.ok().map(|()| buf)
    }

    /// The next JSON message frame, skipping PINGs; None once the stream has ended.
    async fn read_message(&mut self) -> Option<Message> {
        loop {
            let header = self.read_exact(4).await?;
            let len = (usize::from(header[1]) << 16)
                | (usize::from(header[2]) << 8)
                | usize::from(header[3]);
            let payload = self.read_exact(len).await?;
            if header[0] & 0x07 == 0 {
                return Some(
                    Serializer::Json
                        .decode(&payload)
                        .expect("router sent valid JSON"),
                );
            }
        }
    }

    /// Reads until the router ends the stream (FIN or reset): true if it did within WAIT.
    async fn ends(&mut self) -> bool {
        let mut buf = [0u8; 4096];
        let ended = timeout(WAIT, async {
            loop {
                match self.recv.read(&mut buf).await {
                    Ok(Some(_)) => continue,
                    Ok(None) | Err(_) => return,
                }
            }
        });
        ended.await.is_ok()
    }

    /// JSON handshake (16 MiB) and HELLO realm1 -> WELCOME; the session id.
    async fn join_json(&mut self) -> u64 {
        self.write(&[0x7F, 0xF1, 0, 0]).await;
        let reply = self.read_exact(4).await.expect("handshake reply");
        assert!(
            reply[0] == 0x7F && reply[1] & 0x0F == 1,
            "JSON accepted: {reply:02x?}"
        );
        let hello = Message::Hello {
            realm: "realm1".into(),
            details: wampmesh::dict! { "roles" => Value::Dict(wampmesh::dict! {
                "subscriber" => Value::Dict(Dict::new()),
            }) },
        };
        self.write_message(&hello).await;
        match self.read_message().await {
            Some(Message::Welcome { session, .. }) => session.get(),
            other => panic!("expected WELCOME, got {other:?}"),
        }
    }
}

/// The router's answer to a misbehaving stream: an ABORT with `reason` (if any came) and the end
/// of the stream.
async fn assert_aborted_and_closed(raw: &mut RawStream, reason: &str, what: &str) {
    match raw.read_message().await {
        Some(Message::Abort { reason: got, .. }) => assert_eq!(got, reason, "{what}: ABORT reason"),
        None => panic!("{what}: stream ended without ABORT {reason}"),
        Some(other) => panic!("{what}: expected ABORT, got {other:?}"),
    }
    assert!(raw.ends().await, "{what}: the router ends the stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_stream_ends_only_its_session() {
    let node = start(config("max_message_size = 65536", "")).await;
    let connection = connect(&pinned(&node), &node).await;
    let subscriber = join(&connection).await;
    let mut events = subscribe(&subscriber, TOPIC).await;
    let publisher = join(&connection).await;
    assert_delivers(&publisher, &mut events, 0, "before any fault").await;

    // Bad handshake bytes: not the RawSocket magic. The router gives up without a reply.
    let mut raw = RawStream::open(&connection).await;
    raw.write(&[0x00, 0x11, 0x22, 0x33]).await;
    assert_eq!(
        raw.read_exact(1).await,
        None,
        "bad magic: no reply, stream ended"
    );
    assert_delivers(&publisher, &mut events, 1, "after bad magic").await;

    // A serializer nobody offers: refused with `7F 10 00 00`, then the stream ends.
    let mut raw = RawStream::open(&connection).await;
    raw.write(&[0x7F, 0xF5, 0, 0]).await;
    assert_eq!(
        raw.read_exact(4).await,
        Some(vec![0x7F, 0x10, 0, 0]),
        "serializer refused"
    );
    assert!(raw.ends().await, "refused handshake: stream ended");
    assert_delivers(&publisher, &mut events, 2, "after refused handshake").await;

    // An oversized frame (1 MiB announced; the listener takes 64 KiB) after WELCOME.
    let mut raw = RawStream::open(&connection).await;
    let oversized = raw.join_json().await;
    raw.write(&[0x00, 0x10, 0x00, 0x00]).await;
    raw.write(&[b' '; 1024]).await;
    assert!(raw.ends().await, "oversized frame: stream ended");
    assert_session_gone(&subscriber, oversized, "oversized frame").await;
    assert_delivers(&publisher, &mut events, 3, "after oversized frame").await;

    // A protocol violation: a client sends WELCOME.
    let mut raw = RawStream::open(&connection).await;
    let violator = raw.join_json().await;
    let welcome = Message::Welcome {
        session: wampmesh::wamp::Id::new(1).expect("id"),
        details: Dict::new(),
    };
    raw.write_message(&welcome).await;
    assert_aborted_and_closed(&mut raw, "wamp.error.protocol_violation", "client WELCOME").await;
    assert_session_gone(&subscriber, violator, "protocol violation").await;
    assert_delivers(&publisher, &mut events, 4, "after protocol violation").await;

    // Not JSON at all in a message frame.
    let mut raw = RawStream::open(&connection).await;
    let garbler = raw.join_json().await;
    raw.write(&[0, 0, 0, 5, b'{', b'{', b'{', b'x', b'!']).await;
    assert_aborted_and_closed(&mut raw, "wamp.error.protocol_violation", "undecodable").await;
    assert_session_gone(&subscriber, garbler, "undecodable frame").await;
    assert_delivers(&publisher, &mut events, 5, "after undecodable frame").await;

    // A stream reset by the client mid-session, while subscribed (the router holds state).
    let mut raw = RawStream::open(&connection).await;
    let reset = raw.join_json().await;
    let subscribe_message = Message::Subscribe {
        request: wampmesh::wamp::Id::new(1).expect("id"),
        options: Dict::new(),
        topic: TOPIC.into(),
    };
    raw.write_message(&subscribe_message).await;
    assert!(matches!(
        raw.read_message().await,
        Some(Message::Subscribed { .. })
    ));
    raw.send.reset(quinn::VarInt::from_u32(7)).expect("reset");
    raw.recv.stop(quinn::VarInt::from_u32(7)).expect("stop");
    assert_session_gone(&subscriber, reset, "stream reset").await;
    assert_delivers(&publisher, &mut events, 6, "after stream reset").await;

    assert!(
        connection.connection.close_reason().is_none(),
        "connection still up"
    );
    let late = join(&connection).await;
    let mut late_events = subscribe(&late, TOPIC).await;
    assert_delivers(
        &publisher,
        &mut late_events,
        7,
        "a new session after the faults",
    )
    .await;
    stop(node).await;
}

const STREAM_LIMIT: usize = 10;
const STREAMS_OPENED: usize = 15;

/// 15 tasks each open a stream with `open_bi` and join on it, on one connection to a listener
/// with `max_streams = 10`, and hand their sessions over in the order they got through.
struct StreamFlood {
    node: Node,
    connection: QuicConnection,
    joined: mpsc::Receiver<Session>,
    tasks: JoinSet<()>,
    /// Joined and not closed yet, oldest first.
    sessions: Vec<Session>,
    /// Sessions closed by `close_one`.
    closed: usize,
}

impl StreamFlood {
    async fn start() -> StreamFlood {
        let node = start(config(&format!("max_streams = {STREAM_LIMIT}"), "")).await;
        let connection = connect(&pinned(&node), &node).await;
        let (joined_tx, joined) = mpsc::channel(STREAMS_OPENED);
        let mut tasks = JoinSet::new();
        for _ in 0..STREAMS_OPENED {
            let (connection, joined_tx) = (connection.clone(), joined_tx.clone());
            tasks.spawn(async move {
                let (send, recv) = connection.connection.open_bi().await.expect("open_bi");
                let stream = tokio::io::join(recv, send);
                let session = Session::join(stream, ClientConfig::new("realm1")).await;
                let _ = joined_tx.send(session.expect("joined")).await;
            });
        }
        let mut flood = StreamFlood {
            node,
            connection,
            joined,
            tasks,
            sessions: Vec::new(),
            closed: 0,
        };
        assert_eq!(
            flood.collect(STREAM_LIMIT, WAIT).await,
            STREAM_LIMIT,
            "the first 10 join"
        );
        flood
            .assert_held("stream 11 before any stream closed")
            .await;
        flood
    }

    /// Takes up to `count` newly joined sessions, waiting at most `wait` for each.
    async fn collect(&mut self, count: usize, wait: Duration) -> usize {
        for got in 0..count {
            match timeout(wait, self.joined.recv()).await {
                Ok(Some(session)) => self.sessions.push(session),
                _ => return got,
            }
        }
        count
    }

    async fn assert_held(&mut self, what: &str) {
        let extra = self.collect(1, Duration::from_millis(500)).await;
        assert_eq!(extra, 0, "{what}: must wait for stream credit");
    }

    /// The oldest open session leaves (GOODBYE) and is dropped, which closes its stream.
    async fn close_one(&mut self) {
        let leaving = self.sessions.remove(0);
        timeout(WAIT, leaving.leave("wamp.close.normal"))
            .await
            .expect("left in time")
            .expect("left");
        self.closed += 1;
    }

    /// The two newest sessions exchange an event, and the connection is up.
    async fn assert_working(&self, n: u64, what: &str) {
        let newest = &self.sessions[self.sessions.len() - 1];
        let other = &self.sessions[self.sessions.len() - 2];
        let mut events = subscribe(newest, TOPIC).await;
        assert_delivers(other, &mut events, n, what).await;
        let closed = self.connection.connection.close_reason();
        assert!(
            closed.is_none(),
            "{what}: connection still up, not {closed:?}"
        );
    }

    /// Closes sessions until every one of the 15 streams has joined, then checks it all works.
    async fn finish(mut self) {
        while self.joined_so_far() < STREAMS_OPENED {
            self.close_one().await;
            self.collect(
                STREAMS_OPENED - self.joined_so_far(),
                Duration::from_millis(300),
            )
            .await;
        }
        while let Some(done) = timeout(WAIT, self.tasks.join_next())
            .await
            .expect("tasks end")
        {
            done.expect("no join task failed");
        }
        self.assert_working(99, "after all 15 streams joined").await;
        stop(self.node).await;
    }

    /// Streams that got through so far, closed or not.
    fn joined_so_far(&self) -> usize {
        self.sessions.len() + self.closed
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_beyond_max_streams_wait_for_flow_control() {
    let mut flood = StreamFlood::start().await;
    flood.assert_working(1, "within the limit").await;

    // Closing streams releases credit and the waiting streams proceed, one per closed stream
    // (quinn announces the credit once more than max_streams/8 streams closed: here two).
    let mut proceeded = 0;
    while proceeded == 0 {
        let closed = flood.closed;
        assert!(
            closed < 2,
            "no waiting stream proceeded after {closed} streams closed"
        );
        flood.close_one().await;
        proceeded = flood.collect(flood.closed, Duration::from_secs(1)).await;
        println!(
            "{} stream(s) closed: {proceeded} waiting stream(s) proceeded",
            flood.closed
        );
    }
    assert!(
        proceeded <= flood.closed,
        "at most one stream proceeds per closed stream"
    );
    flood
        .assert_held("after credit for the closed streams was used")
        .await;
    flood
        .assert_working(2, "the first stream beyond the limit")
        .await;
    flood.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_pinning_by_fingerprint() {
    let node = start(config("", "")).await;
    let fingerprint = node.tls().identity.fingerprint();

    let connection = connect(&pinned(&node), &node).await;
    let session = join(&connection).await;
    assert!(!session.is_closed());

    // Colons and upper case are accepted forms of the same pin.
    let colons = fingerprint
        .as_bytes()
        .chunks(2)
        .map(|pair| String::from_utf8_lossy(pair).to_uppercase())
        .collect::<Vec<_>>()
        .join(":");
    let connection = connect(&connector(&ServerTrust::Fingerprint(colons), None), &node).await;
    join(&connection).await;

    // Another certificate's fingerprint: the handshake fails.
    let other = Identity::self_signed(&["node1", "localhost"]).expect("other identity");
    let wrong = connector(&ServerTrust::Fingerprint(other.fingerprint()), None);
    let attempt = timeout(WAIT, wrong.connect(&quic_addr(&node), "localhost"))
        .await
        .expect("wrong pin answered in time");
    let error = attempt.expect_err("a wrong fingerprint must fail the handshake");
    println!("wrong fingerprint: {error}");

    // Not a SHA-256 at all: refused when building the config.
    let bad = ServerTrust::Fingerprint("abc123".into());
    assert!(tls::client_config(&bad, None, &[ALPN_QUIC]).is_err());
    stop(node).await;
}

/// `[tls]` from `dir` with `node`'s certificate.
fn tls_section(dir: &Path, node: &str) -> String {
    let file = |name: String| format!("{:?}", dir.join(name).display().to_string());
    format!(
        "[tls]\nca = {}\ncert = {}\nkey = {}\n",
        file("ca.pem".into()),
        file(format!("{node}.pem")),
        file(format!("{node}.key"))
    )
}

/// Tries a connection and a session with `connector`; Ok(why) when the node refused it (at
/// the handshake, or by closing the connection right after), Err if a session got through.
async fn refused(connector: &QuicConnector, node: &Node) -> Result<String, String> {
    let connection = match timeout(WAIT, connector.connect(&quic_addr(node), "localhost")).await {
        Err(_) => return Err("no answer within WAIT".into()),
        Ok(Err(e)) => return Ok(format!("connect: {e}")),
        Ok(Ok(connection)) => connection,
    };
    let attempt = async {
        let stream = connection.open_stream().await.map_err(|e| e.to_string())?;
        Session::join(stream, ClientConfig::new("realm1"))
            .await
            .map_err(|e| e.to_string())
    };
    match timeout(WAIT, attempt).await {
        Ok(Err(e)) => {
            let closed = connection.connection.close_reason();
            Ok(format!("session: {e}; connection: {closed:?}"))
        }
        Ok(Ok(session)) => Err(format!("session {} joined", session.id().get())),
        Err(_) => Err("join neither succeeded nor failed within WAIT".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_requires_a_certificate_from_the_mesh_ca() {
    let mesh = common::scratch_dir("quic-mtls-mesh");
    let names = ["node1", "node2"].map(str::to_owned);
    wampmesh::certs::write_mesh_certs(&mesh, &names).expect("mesh certs");
    let foreign = common::scratch_dir("quic-mtls-foreign");
    wampmesh::certs::write_mesh_certs(&foreign, &["node2".to_owned()]).expect("foreign certs");

    let node = start(config(
        "require_client_cert = true",
        &tls_section(&mesh, "node1"),
    ))
    .await;
    let ca = tls::load_certs(&mesh.join("ca.pem")).expect("mesh CA");
    let trust = ServerTrust::Ca(ca);

    let without = refused(&connector(&trust, None), &node).await;
    let why = without.expect("a client without a certificate is refused");
    println!("no client certificate: {why}");

    let intruder = Identity::load(&foreign.join("node2.pem"), &foreign.join("node2.key"))
        .expect("foreign identity");
    let other_ca = refused(&connector(&trust, Some(&intruder)), &node).await;
    let why = other_ca.expect("a certificate from another CA is refused");
    println!("certificate from another CA: {why}");

    let member =
        Identity::load(&mesh.join("node2.pem"), &mesh.join("node2.key")).expect("node2 identity");
    let connection = connect(&connector(&trust, Some(&member)), &node).await;
    let tls_hello = ClientConfig::new("realm1")
        .with_hello_extra("authmethods", Value::List(vec!["tls".into()]));
    let link = join_with(&connection, tls_hello).await;
    let detail = |key: &str| {
        link.details()
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    assert_eq!(
        detail("authid").as_deref(),
        Some("node2"),
        "authid = certificate node id"
    );
    assert_eq!(detail("authrole").as_deref(), Some("rlink"));
    assert_eq!(detail("authmethod").as_deref(), Some("tls"));

    // Without asking for "tls", the same certificate holder is an ordinary anonymous session.
    let anonymous = join(&connection).await;
    let details = anonymous.details();
    let role = details.get("authrole").and_then(Value::as_str);
    assert_eq!(role, Some("anonymous"));
    stop(node).await;
    let _ = std::fs::remove_dir_all(&mesh);
    let _ = std::fs::remove_dir_all(&foreign);
}

/// How a new connection attempt after `unbind` ended.
#[derive(Debug, PartialEq)]
enum AfterUnbind {
    /// The handshake failed within WAIT: the node answered with a refusal.
    Refused(String),
    /// No answer within WAIT (the client would wait for its idle timeout).
    Unanswered,
    Accepted,
}

/// A node, one connection with a subscriber and a publisher session on it, the QUIC listener
/// unbound; then a new connection attempt from a new endpoint and one from the old endpoint.
/// Checks that the existing sessions keep working both ways, and returns the two attempts.
async fn unbind_with_a_connection_open() -> Vec<(&'static str, AfterUnbind)> {
    let node = start(config("", "")).await;
    let client = pinned(&node);
    let connection = connect(&client, &node).await;
    let subscriber = join(&connection).await;
    let mut events = subscribe(&subscriber, TOPIC).await;
    let publisher = join(&connection).await;
    assert_delivers(&publisher, &mut events, 1, "before unbind").await;

    let listener = node.listeners().iter().find(|l| l.transport == "quic");
    let listener = listener.expect("quic listener");
    timeout(WAIT, listener.unbind())
        .await
        .expect("unbind in time");

    let fresh = pinned(&node);
    let attempts = [("new endpoint", &fresh), ("existing endpoint", &client)];
    let mut outcomes = Vec::new();
    for (label, connector) in attempts {
        let attempt = timeout(WAIT, connector.connect(&quic_addr(&node), "localhost")).await;
        let outcome = match attempt {
            Ok(Err(e)) => AfterUnbind::Refused(e.to_string()),
            Ok(Ok(_)) => AfterUnbind::Accepted,
            Err(_) => AfterUnbind::Unanswered,
        };
        println!("after unbind, {label}: {outcome:?}");
        outcomes.push((label, outcome));
    }

    // The existing connection's sessions keep working, both ways.
    assert_delivers(&publisher, &mut events, 2, "after unbind").await;
    let mut back = subscribe(&publisher, TOPIC).await;
    assert_delivers(&subscriber, &mut back, 3, "after unbind, other way").await;
    assert!(
        connection.connection.close_reason().is_none(),
        "connection still up"
    );
    stop(node).await;
    outcomes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbind_keeps_existing_sessions_and_takes_no_new_connection() {
    for (label, outcome) in unbind_with_a_connection_open().await {
        assert_ne!(outcome, AfterUnbind::Accepted, "after unbind, {label}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbind_refuses_new_connections_at_once() {
    for (label, outcome) in unbind_with_a_connection_open().await {
        assert!(
            matches!(outcome, AfterUnbind::Refused(_)),
            "after unbind, {label}: expected a refusal within {WAIT:?}, got {outcome:?}"
        );
    }
}
