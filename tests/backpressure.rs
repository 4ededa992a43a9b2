//! Backpressure (issue 6, point 3): a subscriber that stops reading cannot grow a node's memory
//! without bound, under either `slow_consumer` policy, while a healthy subscriber gets every
//! event in order; and a realm stream that stops reading on a QUIC connection does not slow the
//! other realm's stream on that same connection.
//!
//! The nodes are `wampmesh node` processes, so that `process_resident_memory_bytes` on their
//! metrics endpoint is the router's memory alone. The tests take turns (one lock): each floods
//! the node, and two floods on 2 cores would only measure each other.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::timeout;

use common::mesh::{self, client_at};
use common::scrape::{self, MIB};
use common::{free_ports, localhost, NodeProcess};
use wampmesh::client::{ClientConfig, Session, Subscription};
use wampmesh::router::mesh::{CHANNEL_TOPIC, MESH_KEY};
use wampmesh::transport::quic::{QuicConnector, QuicSettings};
use wampmesh::transport::tls::{self, Identity, ServerTrust, ALPN_QUIC};
use wampmesh::wamp::{Dict, Id, Message, Payload, Serializer, Value};

/// Events in each flood, of `EVENT_BYTES` each: 200k x 1 KiB = 195 MiB, three times
/// `RSS_BOUND`, so a node that kept what a stalled subscriber does not read fails the bound.
const FLOOD: u64 = 200_000;
const EVENT_BYTES: usize = 1024;
/// Events the healthy subscriber may lag behind the publisher: far below `outbound_queue`
/// (4096), so the healthy session is never the slow consumer.
const WINDOW: u64 = 512;
/// Every `CHECKPOINT`-th publication asks for an acknowledgement: the node keeps answering its
/// publisher during the flood, in order with the unacknowledged ones.
const CHECKPOINT: u64 = 1000;
/// What the flood may add to the node's warmed-up RSS. A stalled session holds at most
/// `outbound_queue` (4096) messages -- 1 KiB payloads shared with the healthy subscriber plus
/// their JSON encoding, ~9 MiB -- and one 64-message write batch; socket buffers are kernel
/// memory. The rest of the allowance is allocator slack under a flood on two worker threads.
const RSS_BOUND: f64 = 64.0 * MIB;
/// Longest wait for any single step (a publication, an event, a drained socket).
const STEP: Duration = Duration::from_secs(10);
const TOPIC: &str = "com.example.flood";

/// One test at a time (see the module docs).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const OPEN_REALM: &str = r#"
[[realm.role]]
name = "anonymous"
permissions = [{ uri = "", match = "prefix", call = true, register = true, publish = true, subscribe = true }]
"#;

/// A node with RawSocket TCP for clients, a metrics endpoint and `realm1`; `extra` is appended.
fn node_toml(tcp: u16, metrics: u16, extra: &str) -> String {
    format!(
        "[node]\nid = \"bp\"\n[[listen]]\ntransport = \"tcp\"\naddress = \"127.0.0.1:{tcp}\"\n\
         [metrics]\naddress = \"127.0.0.1:{metrics}\"\n[[realm]]\nname = \"realm1\"\n{OPEN_REALM}\n{extra}"
    )
}

/// A RawSocket subscriber that joins, subscribes, and then never reads its socket again
/// (until `drain_to_end`).
struct StalledSubscriber {
    stream: TcpStream,
}

impl StalledSubscriber {
    async fn subscribe(addr: &str, topic: &str) -> StalledSubscriber {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(&[0x7F, 0xF1, 0, 0])
            .await
            .expect("handshake");
        let mut reply = [0u8; 4];
        stream
            .read_exact(&mut reply)
            .await
            .expect("handshake reply");
        assert_eq!(reply[0], 0x7F, "RawSocket handshake accepted: {reply:?}");
        let mut me = StalledSubscriber { stream };
        let roles = wampmesh::dict! { "subscriber" => Dict::new() };
        me.send(&Message::Hello {
            realm: "realm1".into(),
            details: wampmesh::dict! { "roles" => roles },
        })
        .await;
        let welcome = me.next().await.expect("WELCOME");
        assert!(matches!(welcome, Message::Welcome { .. }), "{welcome:?}");
        me.send(&Message::Subscribe {
            request: Id::new(1).expect("id"),
            options: Dict::new(),
            topic: topic.into(),
        })
        .await;
        let subscribed = me.next().await.expect("SUBSCRIBED");
        assert!(
            matches!(subscribed, Message::Subscribed { .. }),
            "{subscribed:?}"
        );
        me
    }

    async fn send(&mut self, message: &Message) {
        let bytes = Serializer::Json.encode(message).expect("encode");
        let len = bytes.len();
        let header = [0, (len >> 16) as u8, (len >> 8) as u8, len as u8];
        self.stream.write_all(&header).await.expect("frame header");
        self.stream.write_all(&bytes).await.expect("frame");
    }

    /// The next message, `None` once the node closed the connection.
    async fn next(&mut self) -> Option<Message> {
        let mut header = [0u8; 4];
        timeout(STEP, self.stream.read_exact(&mut header))
            .await
            .expect("a frame or the end in time")
            .ok()?;
        let len =
            (usize::from(header[1]) << 16) | (usize::from(header[2]) << 8) | usize::from(header[3]);
        let mut payload = vec![0u8; len];
        timeout(STEP, self.stream.read_exact(&mut payload))
            .await
            .expect("a frame's payload in time")
            .ok()?;
        Some(Serializer::Json.decode(&payload).expect("valid message"))
    }

    /// Reads what the node still sends until it closes: (EVENTs read, the last message).
    async fn drain_to_end(&mut self) -> (u64, Option<Message>) {
        let (mut events, mut last) = (0, None);
        while let Some(message) = self.next().await {
            if matches!(message, Message::Event { .. }) {
                events += 1;
            }
            last = Some(message);
        }
        (events, last)
    }
}

/// A healthy subscriber checking that it gets `count` events numbered 0.. in order.
struct InOrder {
    received: Arc<AtomicU64>,
    progress: Arc<Notify>,
    task: JoinHandle<Result<(), String>>,
}

impl InOrder {
    fn start(mut subscription: Subscription, count: u64) -> InOrder {
        let (received, progress) = (Arc::new(AtomicU64::new(0)), Arc::new(Notify::new()));
        let (counter, notify) = (Arc::clone(&received), Arc::clone(&progress));
        let task = tokio::spawn(async move {
            for expected in 0..count {
                let event = timeout(STEP, subscription.next())
                    .await
                    .map_err(|_| format!("no event {expected} within {STEP:?}"))?
                    .ok_or_else(|| format!("subscription ended before event {expected}"))?;
                let seq = event
                    .payload
                    .args
                    .as_ref()
                    .and_then(|a| a.first())
                    .and_then(Value::as_u64);
                if seq != Some(expected) {
                    return Err(format!("expected event {expected}, got {seq:?}"));
                }
                counter.store(expected + 1, Ordering::Relaxed);
                notify.notify_one();
            }
            Ok(())
        });
        InOrder {
            received,
            progress,
            task,
        }
    }
}

/// Publishes `FLOOD` numbered events of `EVENT_BYTES`, never more than `WINDOW` ahead of the
/// healthy subscriber, every `CHECKPOINT`-th acknowledged.
async fn flood(publisher: Session, healthy: (Arc<AtomicU64>, Arc<Notify>)) {
    let blob = Value::Str("x".repeat(EVENT_BYTES));
    let (received, progress) = healthy;
    for seq in 0..FLOOD {
        while seq - received.load(Ordering::Relaxed) >= WINDOW {
            timeout(STEP, progress.notified())
                .await
                .unwrap_or_else(|_| panic!("the healthy subscriber stalled at {seq}"));
        }
        let options = if seq % CHECKPOINT == CHECKPOINT - 1 {
            wampmesh::dict! { "acknowledge" => true }
        } else {
            Dict::new()
        };
        let payload = Payload::args(vec![Value::UInt(seq), blob.clone()]);
        timeout(STEP, publisher.publish(TOPIC, payload, options))
            .await
            .unwrap_or_else(|_| panic!("publication {seq} not accepted within {STEP:?}"))
            .unwrap_or_else(|e| panic!("publication {seq}: {e}"));
    }
}

/// Scrapes `metrics` every 100 ms until stopped; the highest RSS seen.
struct RssWatch {
    stop: Arc<AtomicBool>,
    task: JoinHandle<f64>,
}

impl RssWatch {
    fn start(metrics: String) -> RssWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let mut peak: f64 = 0.0;
            while !flag.load(Ordering::Relaxed) {
                let rss = scrape::read(&metrics, "process_resident_memory_bytes").await;
                peak = peak.max(rss);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            peak.max(scrape::read(&metrics, "process_resident_memory_bytes").await)
        });
        RssWatch { stop, task }
    }

    async fn peak(self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("rss watch")
    }
}

/// A node process with `policy`, its addresses, a publisher and a warmed-up healthy subscriber.
struct Bench {
    node: NodeProcess,
    addr: String,
    metrics: String,
    publisher: Session,
    healthy: Session,
}

impl Bench {
    async fn start(label: &str, policy: &str) -> Bench {
        let ports = free_ports(2);
        let toml = node_toml(
            ports[0],
            ports[1],
            &format!("[limits]\nslow_consumer = \"{policy}\"\n"),
        );
        let node = NodeProcess::start(label, &toml, localhost(ports[0]));
        let addr = localhost(ports[0]).to_string();
        let metrics = localhost(ports[1]).to_string();
        let publisher = client_at(&addr, "realm1").await;
        let healthy = client_at(&addr, "realm1").await;
        Bench {
            node,
            addr,
            metrics,
            publisher,
            healthy,
        }
    }

    /// A warm-up flood on another topic (allocator pools, buffers), then the baseline RSS.
    async fn warm_up(&self) -> f64 {
        let mut warm = self
            .healthy
            .subscribe("com.example.warm", Dict::new())
            .await
            .expect("subscribe");
        let blob = Value::Str("x".repeat(EVENT_BYTES));
        for n in 0..5_000u64 {
            let payload = Payload::args(vec![Value::UInt(n), blob.clone()]);
            self.publisher
                .publish("com.example.warm", payload, Dict::new())
                .await
                .expect("warm-up publish");
            if n % 256 == 255 {
                while warm
                    .next()
                    .await
                    .and_then(|e| e.payload.args?.first()?.as_u64())
                    != Some(n)
                {}
            }
        }
        drop(warm);
        tokio::time::sleep(Duration::from_millis(300)).await;
        scrape::read(&self.metrics, "process_resident_memory_bytes").await
    }

    /// Runs the flood with the healthy subscriber checking order; returns the peak RSS.
    async fn flood_checked(&self) -> f64 {
        let subscription = self
            .healthy
            .subscribe(TOPIC, Dict::new())
            .await
            .expect("subscribe");
        let in_order = InOrder::start(subscription, FLOOD);
        let watch = RssWatch::start(self.metrics.clone());
        let started = Instant::now();
        flood(
            self.publisher.clone(),
            (
                Arc::clone(&in_order.received),
                Arc::clone(&in_order.progress),
            ),
        )
        .await;
        let outcome = in_order.task.await.expect("healthy subscriber task");
        let peak = watch.peak().await;
        assert_eq!(
            outcome,
            Ok(()),
            "the healthy subscriber got every event in order"
        );
        let elapsed = started.elapsed();
        eprintln!(
            "flood: {FLOOD} events of {EVENT_BYTES} B in {elapsed:.1?} ({:.0} events/s)",
            FLOOD as f64 / elapsed.as_secs_f64()
        );
        peak
    }

    /// The node still answers a call, and `wamp.session.count` is `sessions`.
    async fn assert_answers(&self, sessions: u64) {
        let result = timeout(
            STEP,
            self.publisher
                .call("wamp.session.count", Payload::default(), Dict::new()),
        )
        .await
        .expect("the node answers a call in time")
        .expect("wamp.session.count");
        let count = mesh::first_arg(&result).and_then(Value::as_u64);
        let text = scrape::scrape(&self.metrics).await;
        assert_eq!(
            count,
            Some(sessions),
            "sessions in realm1; metrics:\n{text}"
        );
    }
}

fn assert_rss_bounded(what: &str, baseline: f64, peak: f64) {
    eprintln!(
        "{what}: RSS baseline {:.1} MiB, peak {:.1} MiB (+{:.1} MiB; bound +{:.0} MiB)",
        baseline / MIB,
        peak / MIB,
        (peak - baseline) / MIB,
        RSS_BOUND / MIB
    );
    assert!(
        peak - baseline <= RSS_BOUND,
        "{what}: RSS grew by {:.1} MiB, more than {:.0} MiB",
        (peak - baseline) / MIB,
        RSS_BOUND / MIB
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_subscriber_has_events_dropped_and_memory_stays_bounded() {
    let _serial = SERIAL.lock().await;
    let bench = Bench::start("bp-drop", "drop").await;
    let baseline = bench.warm_up().await;
    let stalled = StalledSubscriber::subscribe(&bench.addr, TOPIC).await;
    let peak = bench.flood_checked().await;
    let text = scrape::scrape(&bench.metrics).await;
    let dropped = scrape::value(&text, "wampmesh_events_dropped_total");
    eprintln!("drop policy: {dropped} events dropped for the stalled subscriber");
    // It can hold `outbound_queue` events plus what its socket buffers take (a few MiB);
    // everything else must have been dropped, not kept.
    assert!(
        dropped >= (FLOOD - 50_000) as f64,
        "only {dropped} of {FLOOD} events dropped for a subscriber that reads nothing"
    );
    assert_eq!(
        scrape::value(&text, "wampmesh_slow_consumers_closed_total"),
        0.0
    );
    assert_rss_bounded("drop policy", baseline, peak);
    // The stalled session stays (policy drop), and the node answers.
    bench.assert_answers(3).await;
    drop(stalled);
    drop(bench.node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_subscriber_is_closed_with_the_reason_and_memory_stays_bounded() {
    let _serial = SERIAL.lock().await;
    let bench = Bench::start("bp-close", "close").await;
    let baseline = bench.warm_up().await;
    let mut stalled = StalledSubscriber::subscribe(&bench.addr, TOPIC).await;
    // As soon as the node gives up on the stalled session, it reads again (its own task, so
    // that it keeps up): what was queued for it, then ABORT with the documented reason, then
    // the end of the connection.
    let drain = {
        let metrics = bench.metrics.clone();
        tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while scrape::read(&metrics, "wampmesh_slow_consumers_closed_total").await < 1.0 {
                assert!(
                    Instant::now() < deadline,
                    "the stalled session was never closed"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            timeout(Duration::from_secs(30), stalled.drain_to_end())
                .await
                .expect("the node closes the connection")
        })
    };
    let peak = bench.flood_checked().await;
    let (events, last) = drain.await.expect("drain task");
    eprintln!("close policy: the stalled subscriber read {events} events, then {last:?}");
    match last {
        Some(Message::Abort { reason, .. }) => assert_eq!(reason, "wampmesh.error.slow_consumer"),
        other => panic!("expected ABORT wampmesh.error.slow_consumer last, got {other:?}"),
    }
    assert!(
        events < FLOOD,
        "the stalled session was closed before the flood ended"
    );
    let text = scrape::scrape(&bench.metrics).await;
    assert_eq!(
        scrape::value(&text, "wampmesh_slow_consumers_closed_total"),
        1.0,
        "only the stalled session"
    );
    assert_rss_bounded("close policy", baseline, peak);
    bench.assert_answers(2).await;
    drop(bench.node);
}

/// Latency percentile (`q` in 0..=1) of sorted samples.
fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// The longest a probe on the healthy realm may take, and the longest gap between two probes
/// arriving: generous, a stall bound rather than a performance claim.
const STALL_BOUND: Duration = Duration::from_secs(2);
/// Probes published on realm B while realm A is flooded, one every `PROBE_EVERY`.
const PROBES: u64 = 400;
const PROBE_EVERY: Duration = Duration::from_millis(5);

/// Node `x` with a QUIC listener for links (client certificates from the mesh CA), realms
/// `realm.a` and `realm.b`, TCP for local clients, metrics; outbound queues of 1024.
fn link_node_toml(certs: &std::path::Path, tcp: u16, quic: u16, metrics: u16) -> String {
    format!(
        "[node]\nid = \"x\"\n[tls]\nca = \"{dir}/ca.pem\"\ncert = \"{dir}/x.pem\"\nkey = \"{dir}/x.key\"\n\
         [[listen]]\ntransport = \"tcp\"\naddress = \"127.0.0.1:{tcp}\"\n\
         [[listen]]\ntransport = \"quic\"\naddress = \"127.0.0.1:{quic}\"\nrequire_client_cert = true\n\
         [metrics]\naddress = \"127.0.0.1:{metrics}\"\n[limits]\noutbound_queue = 1024\n\
         [[realm]]\nname = \"realm.a\"\n{OPEN_REALM}\n[[realm]]\nname = \"realm.b\"\n{OPEN_REALM}",
        dir = certs.display()
    )
}

/// A realm stream of a peer node, played by the test: a session on `connection` joined to
/// `realm` with the node's certificate (HELLO `authmethods: ["tls"]`, so the node takes it as
/// a router link, role `rlink`), subscribed to the link channel, advertising interest in
/// `topic` the way a peer node does (an IA on the channel). Returns the channel subscription:
/// forwarded publications arrive on it.
async fn link_stream(
    connection: &wampmesh::transport::quic::QuicConnection,
    realm: &str,
    topic: &str,
    queue: usize,
) -> (Session, Subscription) {
    let stream = timeout(STEP, connection.open_stream())
        .await
        .expect("stream in time")
        .expect("stream");
    let config = ClientConfig::new(realm)
        .with_serializer(Serializer::MsgPack)
        .with_hello_extra("authmethods", vec![Value::from("tls")])
        .with_queue_capacity(queue);
    let session = timeout(STEP, Session::join(stream, config))
        .await
        .expect("join in time")
        .expect("join as a link");
    let details = session.details();
    let role = details.get("authrole").and_then(Value::as_str);
    assert_eq!(role, Some("rlink"), "joined {realm} as a router link");
    let channel = session
        .subscribe(CHANNEL_TOPIC, Dict::new())
        .await
        .expect("subscribe to the link channel");
    let interest = vec![Value::List(vec![topic.into(), "exact".into(), Value::Null])];
    let ad = wampmesh::dict! {
        "type" => "ia", "origin" => "peer", "epoch" => 1u64, "seq" => 1u64, "hops" => 1u64,
        "interest" => interest,
    };
    session
        .publish(
            CHANNEL_TOPIC,
            Payload::default(),
            wampmesh::dict! { MESH_KEY => ad },
        )
        .await
        .expect("advertise interest");
    (session, channel)
}

/// The payload of the next publication forwarded on a link channel (other channel traffic,
/// such as the node's own advertisements, is skipped); `None` after `wait`.
async fn next_forwarded(channel: &mut Subscription, wait: Duration) -> Option<Payload> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let event = tokio::time::timeout_at(deadline, channel.next())
            .await
            .ok()??;
        let kind = event
            .details
            .get(MESH_KEY)
            .and_then(Value::as_dict)
            .and_then(|b| b.get("type"))
            .and_then(Value::as_str);
        if kind == Some("publish") {
            return Some(event.payload);
        }
    }
}

/// Publishes "ready" probes until one is forwarded on `channel`: the advertised interest is
/// in place on the node.
async fn wait_forwarding(prober: &Session, channel: &mut Subscription) {
    let deadline = Instant::now() + STEP;
    loop {
        let payload = Payload::args(vec![Value::from("ready")]);
        prober
            .publish(
                "com.example.probe",
                payload,
                wampmesh::dict! { "acknowledge" => true },
            )
            .await
            .expect("ready probe");
        if next_forwarded(channel, Duration::from_millis(200))
            .await
            .is_some()
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the peer's interest never reached the node"
        );
    }
}

/// Publishes 1 KiB events on realm A's topic as fast as the node takes them, until `stop`.
fn flood_until(publisher: Session, stop: Arc<AtomicBool>) -> JoinHandle<u64> {
    tokio::spawn(async move {
        let blob = Value::Str("x".repeat(EVENT_BYTES));
        let mut sent = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let options = if sent % CHECKPOINT == CHECKPOINT - 1 {
                wampmesh::dict! { "acknowledge" => true }
            } else {
                Dict::new()
            };
            let payload = Payload::args(vec![Value::UInt(sent), blob.clone()]);
            timeout(STEP, publisher.publish(TOPIC, payload, options))
                .await
                .expect("flood publication accepted in time")
                .expect("flood publication");
            sent += 1;
        }
        sent
    })
}

/// Publishes `PROBES` numbered probes on realm B and receives them on the peer's realm-B
/// stream; checks order and the stall bound; returns the latencies.
async fn probe(prober: &Session, probes: &mut Subscription) -> Vec<Duration> {
    let start = Instant::now();
    let sender = {
        let prober = prober.clone();
        tokio::spawn(async move {
            for seq in 0..PROBES {
                let sent_us = start.elapsed().as_micros() as u64;
                let payload = Payload::args(vec![Value::UInt(seq), Value::UInt(sent_us)]);
                let ack = wampmesh::dict! { "acknowledge" => true };
                timeout(STEP, prober.publish("com.example.probe", payload, ack))
                    .await
                    .expect("probe accepted in time")
                    .expect("probe");
                tokio::time::sleep(PROBE_EVERY).await;
            }
        })
    };
    let mut latencies = Vec::with_capacity(PROBES as usize);
    let mut last_arrival = Instant::now();
    let mut expected = 0;
    while expected < PROBES {
        let payload = next_forwarded(probes, STALL_BOUND)
            .await
            .unwrap_or_else(|| {
                panic!("probe {expected} did not arrive within {STALL_BOUND:?} of the one before")
            });
        let args = payload.args.unwrap_or_default();
        if args.first().and_then(Value::as_str) == Some("ready") {
            continue;
        }
        let seq = args.first().and_then(Value::as_u64);
        assert_eq!(seq, Some(expected), "probes arrive in order, none lost");
        let sent = Duration::from_micros(args.get(1).and_then(Value::as_u64).expect("send time"));
        let latency = start.elapsed().saturating_sub(sent);
        assert!(latency < STALL_BOUND, "probe {expected} took {latency:?}");
        assert!(
            last_arrival.elapsed() < STALL_BOUND,
            "a gap of {:?} before probe {expected}",
            last_arrival.elapsed()
        );
        last_arrival = Instant::now();
        latencies.push(latency);
        expected += 1;
    }
    sender.await.expect("probe sender");
    latencies.sort_unstable();
    latencies
}

fn report_latencies(what: &str, sorted: &[Duration]) {
    eprintln!(
        "{what}: {} probes, p50 {:?}, p99 {:?}, max {:?}",
        sorted.len(),
        percentile(sorted, 0.5),
        percentile(sorted, 0.99),
        sorted.last().copied().unwrap_or_default()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_realm_stream_does_not_slow_the_other_realm_on_the_connection() {
    let _serial = SERIAL.lock().await;
    let certs = mesh::mesh_certs("bp-link-certs", &["x", "peer"]);
    let ports = free_ports(2);
    let quic_port = mesh::free_udp_ports(1)[0];
    let toml = link_node_toml(&certs, ports[0], quic_port, ports[1]);
    let node = NodeProcess::start("bp-link", &toml, localhost(ports[0]));
    let (addr, metrics) = (
        localhost(ports[0]).to_string(),
        localhost(ports[1]).to_string(),
    );

    // The test is the peer node: its certificate, one QUIC connection, a stream per realm.
    let identity =
        Identity::load(&certs.join("peer.pem"), &certs.join("peer.key")).expect("peer identity");
    let ca = tls::load_certs(&certs.join("ca.pem")).expect("ca");
    let client_tls =
        tls::client_config(&ServerTrust::Ca(ca), Some(&identity), &[ALPN_QUIC]).expect("tls");
    let connector = QuicConnector::new(client_tls, &QuicSettings::default()).expect("endpoint");
    let connection = timeout(
        STEP,
        connector.connect(&localhost(quic_port).to_string(), "x"),
    )
    .await
    .expect("connect in time")
    .expect("QUIC connection to x");
    // Stream A is never read: its client stops reading the stream once 16 events wait unread.
    let (_stream_a, _unread) = link_stream(&connection, "realm.a", TOPIC, 16).await;
    let (_stream_b, mut probes) =
        link_stream(&connection, "realm.b", "com.example.probe", 4096).await;

    let flooder = client_at(&addr, "realm.a").await;
    let prober = client_at(&addr, "realm.b").await;
    wait_forwarding(&prober, &mut probes).await;
    let quiet = probe(&prober, &mut probes).await;
    report_latencies("realm B before the flood", &quiet);
    let baseline = scrape::read(&metrics, "process_resident_memory_bytes").await;

    let stop = Arc::new(AtomicBool::new(false));
    let flood = flood_until(flooder, Arc::clone(&stop));
    let stalled = Instant::now();
    while scrape::read(&metrics, "wampmesh_events_dropped_total").await < 1.0 {
        assert!(
            stalled.elapsed() < Duration::from_secs(30),
            "stream A never stalled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "stream A stalled (x drops its events) {:?} into the flood",
        stalled.elapsed()
    );
    let watch = RssWatch::start(metrics.clone());
    let dropped_before = scrape::read(&metrics, "wampmesh_events_dropped_total").await;
    let loaded = probe(&prober, &mut probes).await;
    let dropped_after = scrape::read(&metrics, "wampmesh_events_dropped_total").await;
    stop.store(true, Ordering::Relaxed);
    let flooded = timeout(STEP, flood)
        .await
        .expect("flood stops")
        .expect("flood task");
    let peak = watch.peak().await;
    report_latencies("realm B while stream A is stalled", &loaded);
    eprintln!("realm A flood: {flooded} events; {dropped_after} dropped for stream A");
    assert!(
        dropped_after > dropped_before,
        "stream A stayed stalled (events kept being dropped) while B was probed"
    );
    assert_rss_bounded("stalled link stream", baseline, peak);
    assert_eq!(
        scrape::read(&metrics, "wampmesh_sessions{realm=\"realm.b\"}").await,
        2.0,
        "the peer's stream B and the prober are still joined"
    );
    drop(connection);
    drop(node);
}
