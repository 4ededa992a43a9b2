//! The Prometheus endpoint (`[metrics] address`), scraped with a raw HTTP/1.1 GET over TCP:
//! sessions per realm, realms, connections, messages and bytes per transport, events dropped
//! for slow consumers, handshake failures by reason, router links up/down, and the process
//! gauges (resident memory, tokio tasks alive).

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use wampmesh::client::{ClientConfig, Session};
use wampmesh::config::Config;
use wampmesh::node::Node;
use wampmesh::wamp::{Dict, Message, Payload, Serializer, Value};

const WAIT: Duration = Duration::from_secs(5);

const REALM: &str = r#"
[[realm]]
name = "realm1"
[[realm.role]]
name = "anonymous"
permissions = [{ uri = "", match = "prefix", call = true, register = true, publish = true, subscribe = true }]
"#;

async fn start(extra: &str) -> Node {
    let text = format!(
        "[[listen]]\ntransport = \"tcp\"\naddress = \"127.0.0.1:0\"\n{REALM}\n[metrics]\naddress = \"127.0.0.1:0\"\n{extra}"
    );
    let config = Config::from_toml_str(&text).unwrap_or_else(|e| panic!("test config: {e}"));
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

/// `GET path` with a raw HTTP/1.1 request; returns the status line and the body.
async fn http_get(addr: &str, path: &str) -> (String, String) {
    let mut stream = timeout(WAIT, TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/plain\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send request");
    let mut response = Vec::new();
    timeout(WAIT, stream.read_to_end(&mut response))
        .await
        .expect("response in time")
        .expect("response");
    let text = String::from_utf8(response).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("header and body");
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .expect("Content-Length");
    assert_eq!(body.len(), length, "Content-Length matches the body");
    (
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    )
}

async fn scrape(node: &Node) -> String {
    let addr = node.metrics_addr().expect("metrics endpoint").to_owned();
    let (status, body) = http_get(&addr, "/metrics").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    body
}

/// The value of the sample `name{labels}` (exact text before the value), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .and_then(|v| v.trim().parse().ok())
}

fn value(text: &str, series: &str) -> f64 {
    sample(text, series).unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
}

/// Scrapes until `check` holds (values are read live, some move a moment after the traffic).
async fn eventually(node: &Node, what: &str, check: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = scrape(node).await;
        if check(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{what} never held; last scrape:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn client(node: &Node) -> Session {
    let addr = node.local_addr("tcp").expect("tcp").to_owned();
    timeout(
        WAIT,
        Session::connect_tcp(&addr, ClientConfig::new("realm1")),
    )
    .await
    .expect("join in time")
    .expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrape_shows_sessions_realms_and_traffic_moving() {
    let node = start("").await;
    let text = scrape(&node).await;
    assert!(text.contains("# TYPE wampmesh_sessions gauge"), "{text}");
    assert_eq!(value(&text, "wampmesh_sessions{realm=\"realm1\"}"), 0.0);
    assert_eq!(
        value(&text, "wampmesh_realms"),
        2.0,
        "realm1 and the control realm"
    );
    assert_eq!(value(&text, "wampmesh_links{state=\"up\"}"), 0.0);
    assert!(
        text.contains("# TYPE process_resident_memory_bytes gauge"),
        "{text}"
    );
    let rss = value(&text, "process_resident_memory_bytes");
    assert!(rss > 1e6 && rss < 1e10, "a plausible RSS: {rss}");
    let heap = value(&text, "wampmesh_heap_allocated_bytes");
    assert!(
        heap > 1e4 && heap < rss,
        "a plausible heap in use: {heap} (RSS {rss})"
    );
    // At least the realm tasks, the listener accept loop and the metrics responder.
    assert!(value(&text, "wampmesh_tasks_alive") >= 3.0, "{text}");
    let tcp_in = "wampmesh_messages_total{transport=\"tcp\",direction=\"in\"}";
    let tcp_out = "wampmesh_messages_total{transport=\"tcp\",direction=\"out\"}";
    let bytes_in = "wampmesh_bytes_total{transport=\"tcp\",direction=\"in\"}";
    assert_eq!(value(&text, tcp_in), 0.0);

    let publisher = client(&node).await;
    let subscriber = client(&node).await;
    let mut subscription = subscriber
        .subscribe("com.metrics", Dict::new())
        .await
        .expect("subscribe");
    for n in 0..10u64 {
        let ack = wampmesh::dict! { "acknowledge" => true };
        publisher
            .publish("com.metrics", Payload::args(vec![Value::UInt(n)]), ack)
            .await
            .expect("publish");
        timeout(WAIT, subscription.next())
            .await
            .expect("event in time")
            .expect("event");
    }
    let text = eventually(&node, "two sessions and the traffic", |t| {
        sample(t, "wampmesh_sessions{realm=\"realm1\"}") == Some(2.0)
            && sample(t, tcp_out).unwrap_or(0.0) >= 23.0
    })
    .await;
    // 2 HELLO + SUBSCRIBE + 10 PUBLISH in; 2 WELCOME + SUBSCRIBED + 10 PUBLISHED + 10 EVENT out.
    assert!(value(&text, tcp_in) >= 13.0, "{text}");
    assert!(
        value(&text, bytes_in) > value(&text, tcp_in) * 4.0,
        "bytes include payloads: {text}"
    );
    assert!(value(&text, "wampmesh_connections") >= 2.0, "{text}");

    publisher.leave("wamp.close.normal").await.expect("leave");
    eventually(&node, "the session that left is gone", |t| {
        sample(t, "wampmesh_sessions{realm=\"realm1\"}") == Some(1.0)
    })
    .await;
    stop(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_failures_are_counted_by_reason() {
    let node = start("").await;
    let addr = node.local_addr("tcp").expect("tcp").to_owned();
    // Serializer 5 (FlatBuffers) is not offered: 7F 10.
    let mut stream = TcpStream::connect(&addr).await.expect("connect");
    stream.write_all(&[0x7F, 0xF5, 0, 0]).await.expect("send");
    let mut reply = [0u8; 4];
    timeout(WAIT, stream.read_exact(&mut reply))
        .await
        .expect("reply in time")
        .expect("reply");
    assert_eq!(reply, [0x7F, 0x10, 0, 0]);
    // An unknown realm: ABORT wamp.error.no_such_realm.
    let error = Session::connect_tcp(&addr, ClientConfig::new("no.such.realm"))
        .await
        .expect_err("refused");
    assert_eq!(error.uri(), Some("wamp.error.no_such_realm"));
    let text = eventually(&node, "both failures counted", |t| {
        sample(
            t,
            "wampmesh_handshake_failures_total{reason=\"serializer_unsupported\"}",
        ) == Some(1.0)
            && sample(
                t,
                "wampmesh_handshake_failures_total{reason=\"wamp.error.no_such_realm\"}",
            ) == Some(1.0)
    })
    .await;
    assert!(
        text.contains("# TYPE wampmesh_handshake_failures_total counter"),
        "{text}"
    );
    stop(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_dropped_for_a_slow_consumer_are_counted() {
    let node = start("[limits]\noutbound_queue = 4\nslow_consumer = \"drop\"\n").await;
    let addr = node.local_addr("tcp").expect("tcp").to_owned();
    // A raw subscriber that never reads: its socket fills, then its queue, then events drop.
    let mut slow = TcpStream::connect(&addr).await.expect("connect");
    slow.write_all(&[0x7F, 0xF1, 0, 0])
        .await
        .expect("handshake");
    let mut reply = [0u8; 4];
    slow.read_exact(&mut reply).await.expect("handshake reply");
    let hello = Message::Hello {
        realm: "realm1".into(),
        details: wampmesh::dict! { "roles" => wampmesh::dict! { "subscriber" => Dict::new() } },
    };
    let subscribe = Message::Subscribe {
        request: wampmesh::wamp::Id::new(1).expect("id"),
        options: Dict::new(),
        topic: "com.flood".into(),
    };
    for message in [hello, subscribe] {
        let bytes = Serializer::Json.encode(&message).expect("encode");
        let len = bytes.len();
        slow.write_all(&[0, (len >> 16) as u8, (len >> 8) as u8, len as u8])
            .await
            .expect("frame header");
        slow.write_all(&bytes).await.expect("frame");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let publisher = client(&node).await;
    let big = Value::Str("x".repeat(64 * 1024));
    let text = timeout(Duration::from_secs(30), async {
        loop {
            for _ in 0..50 {
                publisher
                    .publish("com.flood", Payload::args(vec![big.clone()]), Dict::new())
                    .await
                    .expect("publish");
            }
            let text = scrape(&node).await;
            if sample(&text, "wampmesh_events_dropped_total").unwrap_or(0.0) > 0.0 {
                return text;
            }
        }
    })
    .await
    .expect("events are dropped for the slow consumer within 30 s");
    assert!(
        text.contains("# TYPE wampmesh_events_dropped_total counter"),
        "{text}"
    );
    drop(slow);
    stop(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_paths_and_methods_are_refused() {
    let node = start("").await;
    let addr = node.metrics_addr().expect("metrics endpoint").to_owned();
    let (status, _) = http_get(&addr, "/").await;
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    let (status, body) = http_get(&addr, "/metrics?x=1").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(body.contains("wampmesh_realms"));
    stop(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_port_is_freed_at_shutdown() {
    let node = start("").await;
    let addr = node.metrics_addr().expect("metrics endpoint").to_owned();
    stop(node).await;
    std::net::TcpListener::bind(&addr).expect("the metrics port is free after shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_links_up_and_down_are_gauges() {
    let certs = std::env::temp_dir().join(format!("wampmesh-metrics-certs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&certs);
    wampmesh::certs::write_mesh_certs(&certs, &["a".to_owned(), "b".to_owned()]).expect("certs");
    let port_b = std::net::UdpSocket::bind("127.0.0.1:0")
        .expect("udp")
        .local_addr()
        .expect("addr")
        .port();
    let node_toml = |id: &str, quic: u16, link: &str| {
        format!(
            "[node]\nid = \"{id}\"\n[tls]\nca = \"{d}/ca.pem\"\ncert = \"{d}/{id}.pem\"\nkey = \"{d}/{id}.key\"\n\
             [[listen]]\ntransport = \"tcp\"\naddress = \"127.0.0.1:0\"\n\
             [[listen]]\ntransport = \"quic\"\naddress = \"127.0.0.1:{quic}\"\nrequire_client_cert = true\n\
             {REALM}\n[metrics]\naddress = \"127.0.0.1:0\"\n{link}",
            d = certs.display()
        )
    };
    let b = Node::start(Config::from_toml_str(&node_toml("b", port_b, "")).expect("config b"))
        .await
        .expect("b starts");
    let link = format!(
        "[[link]]\npeer = \"b\"\naddress = \"127.0.0.1:{port_b}\"\nrealms = [\"realm1\"]\nreconnect = {{ initial_ms = 50, max_ms = 200 }}\n"
    );
    let a = Node::start(Config::from_toml_str(&node_toml("a", 0, &link)).expect("config a"))
        .await
        .expect("a starts");
    let text = eventually(&a, "the link is up", |t| {
        sample(t, "wampmesh_links{state=\"up\"}") == Some(1.0)
    })
    .await;
    assert_eq!(
        value(&text, "wampmesh_link_up{peer=\"b\",realm=\"realm1\"}"),
        1.0
    );
    assert_eq!(value(&text, "wampmesh_links{state=\"down\"}"), 0.0);
    // The link's session on b came over QUIC.
    eventually(&b, "the link session is counted on b", |t| {
        sample(
            t,
            "wampmesh_messages_total{transport=\"quic\",direction=\"in\"}",
        )
        .unwrap_or(0.0)
            >= 1.0
    })
    .await;

    stop(b).await;
    let text = eventually(&a, "the link is down", |t| {
        sample(t, "wampmesh_links{state=\"down\"}") == Some(1.0)
    })
    .await;
    assert_eq!(
        value(&text, "wampmesh_link_up{peer=\"b\",realm=\"realm1\"}"),
        0.0
    );
    stop(a).await;
    let _ = std::fs::remove_dir_all(&certs);
}
