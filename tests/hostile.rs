//! Hostile peers over TCP, each against a node where a healthy client keeps publishing and
//! receiving in the background: every attack gets its specified answer (handshake error reply,
//! ABORT with the right URI, ERROR, or a close) within a bounded time, and the healthy client
//! sees no error and no stall while it happens. Also: secrets never reach the logs.
//!
//! `tests/router_rawsocket.rs` checks several of these answers one by one; this file is about a
//! healthy client being unaffected while each attack happens.

use std::future::Future;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::time::timeout;

use wampmesh::client::{ClientAuth, ClientConfig, Session};
use wampmesh::config::Config;
use wampmesh::cryptosign::CryptosignKey;
use wampmesh::node::Node;
use wampmesh::wamp::{Dict, Message, Payload, Serializer, Value};

mod common;
use common::raw::{hello, Raw};

/// The longest an attack may take to get its answer (slowloris waits for the 500 ms timeout).
const ANSWER_WITHIN: Duration = Duration::from_secs(3);
/// The healthy client fails if one of its events takes longer than this.
const STALL: Duration = Duration::from_secs(1);
/// The hostile node's largest accepted message.
const MAX_MESSAGE: usize = 65536;
/// The hostile node's `max_connections_per_address`.
const PER_ADDRESS: usize = 16;
const PROTOCOL_VIOLATION: &str = "wamp.error.protocol_violation";
/// The handshake reply of the hostile node to a JSON client: 64 KiB (L = 7), JSON.
const ACCEPTED: [u8; 4] = [0x7F, 0x71, 0, 0];
/// The bound on each wait of a hand-written peer: longer than `ANSWER_WITHIN`, so inside an
/// attack that one decides; outside an attack it stops a hang.
const RAW_WAIT: Duration = Duration::from_secs(5);

fn config() -> Config {
    let text = format!(
        r#"
[[listen]]
transport = "tcp"
address = "127.0.0.1:0"
max_message_size = {MAX_MESSAGE}
handshake_timeout_ms = 500

[[realm]]
name = "realm1"
[[realm.role]]
name = "anonymous"
permissions = [{{ uri = "", match = "prefix", call = true, register = true, publish = true, subscribe = true }}]

[limits]
max_connections_per_address = {PER_ADDRESS}
"#
    );
    Config::from_toml_str(&text).unwrap_or_else(|e| panic!("test config: {e}"))
}

/// Runs `attack` against a fresh node while a healthy client exchanges events; the attack must
/// finish (its assertions included) within `ANSWER_WITHIN`, and the healthy client must keep
/// receiving before, during and after it.
async fn under_attack<F, Fut>(attack: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let node = Node::start(config()).await.expect("node starts");
    let addr = node.local_addr("tcp").expect("tcp listener").to_owned();
    let traffic = Traffic::start(&addr).await;
    traffic.keeps_receiving(5).await;
    let before = traffic.received();
    timeout(ANSWER_WITHIN, attack(addr))
        .await
        .expect("the attack got its answer in time");
    traffic.keeps_receiving(5).await;
    assert!(traffic.received() >= before + 5);
    traffic.finish().await;
    timeout(
        Duration::from_secs(10),
        node.shutdown(Duration::from_secs(2)),
    )
    .await
    .expect("node shuts down");
}

/// A publisher and a subscriber exchanging acknowledged events in the background.
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
        let (failed, stop): (Arc<AtomicBool>, Arc<AtomicBool>) = Default::default();
        let (r, f, s) = (received.clone(), failed.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let _subscriber = subscriber;
            let mut n = 0u64;
            while !s.load(Ordering::Relaxed) {
                n += 1;
                let ack = wampmesh::dict! { "acknowledge" => true };
                let payload = Payload::args(vec![Value::UInt(n)]);
                let published =
                    timeout(STALL, publisher.publish("com.healthy", payload, ack)).await;
                let event = timeout(STALL, subscription.next()).await;
                match (published, event) {
                    (Ok(Ok(_)), Ok(Some(e))) if e.payload.args == Some(vec![Value::UInt(n)]) => {
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

    fn assert_healthy(&self) {
        assert!(
            !self.failed.load(Ordering::Relaxed),
            "the healthy client saw an error or a stall (see stderr)"
        );
    }

    async fn keeps_receiving(&self, more: u64) {
        let target = self.received() + more;
        let deadline = Instant::now() + STALL * (more as u32 + 1);
        while self.received() < target {
            self.assert_healthy();
            assert!(
                Instant::now() < deadline,
                "the healthy client stalled at {}",
                self.received()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.assert_healthy();
    }

    async fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        timeout(Duration::from_secs(5), self.task)
            .await
            .expect("traffic stops")
            .expect("traffic task");
        assert!(
            !self.failed.load(Ordering::Relaxed),
            "the healthy client failed"
        );
    }
}

async fn client(addr: &str) -> Session {
    timeout(
        Duration::from_secs(5),
        Session::connect_tcp(addr, ClientConfig::new("realm1")),
    )
    .await
    .expect("join in time")
    .expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_magic_is_closed_without_a_reply() {
    under_attack(|addr| async move {
        let mut raw = Raw::connect(&addr, RAW_WAIT).await;
        raw.write(b"GET / HTTP/1.1\r\n\r\n").await;
        raw.expect_closed_silently().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_handshake_bits_get_7f30() {
    under_attack(|addr| async move {
        let mut raw = Raw::connect(&addr, RAW_WAIT).await;
        assert_eq!(
            raw.handshake_bytes([0x7F, 0xF1, 0, 1]).await,
            [0x7F, 0x30, 0, 0]
        );
        raw.expect_closed_silently().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_frame_bits_abort_the_session() {
    under_attack(|addr| async move {
        let mut raw = Raw::joined(&addr, "realm1", RAW_WAIT).await;
        raw.write(&[0x10, 0, 0, 0]).await;
        raw.expect_abort_then_silence(PROTOCOL_VIOLATION).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_length_prefix_fails_the_connection() {
    under_attack(|addr| async move {
        let mut raw = Raw::joined(&addr, "realm1", RAW_WAIT).await;
        // 2^24 (the X bit): far over the 64 KiB the router announced. No payload follows.
        raw.write(&[0x08, 0, 0, 0]).await;
        raw.expect_abort_then_silence(PROTOCOL_VIOLATION).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_over_the_negotiated_maximum_fails_the_connection() {
    under_attack(|addr| async move {
        let mut raw = Raw::joined(&addr, "realm1", RAW_WAIT).await;
        let body = format!(
            "[16, 1, {{}}, \"com.big\", [\"{}\"]]",
            "x".repeat(MAX_MESSAGE)
        );
        raw.send_json(&body).await;
        raw.expect_abort_or_close(PROTOCOL_VIOLATION).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_message_type_is_a_protocol_violation() {
    under_attack(|addr| async move {
        let mut raw = Raw::joined(&addr, "realm1", RAW_WAIT).await;
        raw.send_json("[99, 1, {}]").await;
        raw.expect_abort_then_silence(PROTOCOL_VIOLATION).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_arity_is_a_protocol_violation() {
    under_attack(|addr| async move {
        let mut raw = Raw::joined(&addr, "realm1", RAW_WAIT).await;
        raw.send_json("[16, 1, {}]").await; // PUBLISH without its topic
        raw.expect_abort_then_silence(PROTOCOL_VIOLATION).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_integer_id_is_a_protocol_violation() {
    under_attack(|addr| async move {
        let mut raw = Raw::joined(&addr, "realm1", RAW_WAIT).await;
        raw.send_json("[32, \"one\", {}, \"com.topic\"]").await;
        raw.expect_abort_then_silence(PROTOCOL_VIOLATION).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_above_2_pow_53_is_a_protocol_violation() {
    under_attack(|addr| async move {
        let mut raw = Raw::joined(&addr, "realm1", RAW_WAIT).await;
        raw.send_json("[32, 9007199254740993, {}, \"com.topic\"]")
            .await;
        raw.expect_abort_then_silence(PROTOCOL_VIOLATION).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_uri_gets_error_invalid_uri_and_the_session_goes_on() {
    under_attack(|addr| async move {
        let mut raw = Raw::joined(&addr, "realm1", RAW_WAIT).await;
        raw.send_json("[32, 1, {}, \"com.#bad\"]").await;
        match raw.try_recv().await {
            Some(Message::Error {
                request_type: 32,
                request,
                error,
                ..
            }) => {
                assert_eq!(request.get(), 1);
                assert_eq!(error, "wamp.error.invalid_uri");
            }
            other => panic!("expected ERROR wamp.error.invalid_uri, got {other:?}"),
        }
        raw.send_json("[32, 2, {}, \"com.good\"]").await;
        match raw.try_recv().await {
            Some(Message::Subscribed { request, .. }) => assert_eq!(request.get(), 2),
            other => panic!("expected SUBSCRIBED, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_nesting_bomb_is_a_protocol_violation() {
    under_attack(|addr| async move {
        let mut raw = Raw::joined(&addr, "realm1", RAW_WAIT).await;
        let depth = 30_000; // 60 KB: under the frame limit, far over the nesting limit
        let bomb = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        raw.send_json(&format!("[16, 1, {{}}, \"com.bomb\", {bomb}]"))
            .await;
        raw.expect_abort_then_silence(PROTOCOL_VIOLATION).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_hello_is_a_protocol_violation() {
    under_attack(|addr| async move {
        let mut raw = Raw::joined(&addr, "realm1", RAW_WAIT).await;
        raw.send(&hello("realm1")).await;
        raw.expect_abort_then_silence(PROTOCOL_VIOLATION).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_before_hello_is_a_protocol_violation() {
    under_attack(|addr| async move {
        let mut raw = Raw::open(&addr, Serializer::Json, RAW_WAIT).await;
        raw.send_json("[16, 1, {}, \"com.topic\"]").await;
        raw.expect_abort_then_silence(PROTOCOL_VIOLATION).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_handshake_is_closed_after_the_handshake_timeout() {
    under_attack(|addr| async move {
        let mut raw = Raw::connect(&addr, RAW_WAIT).await;
        let started = Instant::now();
        raw.write(&[0x7F, 0xF1]).await; // slowloris: 2 of the 4 bytes, then nothing
        raw.expect_closed_silently().await;
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(400),
            "closed after {waited:?}, before the 500 ms timeout"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_flood_beyond_the_per_address_limit_gets_7f40() {
    under_attack(|addr| async move {
        // The healthy client holds 2 of the places; the flood asks for twice the limit.
        let attempts: Vec<_> = (0..2 * PER_ADDRESS)
            .map(|_| {
                let addr = addr.clone();
                tokio::spawn(async move {
                    let mut raw = Raw::connect(&addr, RAW_WAIT).await;
                    let reply = raw.handshake(0xF1).await;
                    (raw, reply)
                })
            })
            .collect();
        let (mut held, mut refused) = (Vec::new(), 0);
        for attempt in attempts {
            let (mut raw, reply) = attempt.await.expect("flood task");
            match reply {
                ACCEPTED => held.push(raw),
                [0x7F, 0x40, 0, 0] => {
                    refused += 1;
                    raw.expect_closed_silently().await;
                }
                other => panic!("unexpected handshake reply {other:?}"),
            }
        }
        assert_eq!(held.len(), PER_ADDRESS - 2);
        assert_eq!(refused, PER_ADDRESS + 2);
    })
    .await;
}

/// Everything logged in this test binary, at every level.
fn captured_logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<&'static Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs: &'static Mutex<Vec<u8>> = Box::leak(Box::new(Mutex::new(Vec::new())));
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || LogWriter(logs))
            .with_ansi(false)
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        logs
    })
}

struct LogWriter(&'static Mutex<Vec<u8>>);

impl Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_appear_in_logs() {
    let logs = captured_logs();
    // Cryptosign seeds: carol's (a client) and the dialer node's (a tcp link, seed from env).
    let carol = CryptosignKey::generate();
    let dialer = CryptosignKey::generate();
    let stranger = CryptosignKey::generate();
    let text = format!(
        r#"
[node]
id = "listener"
[[listen]]
transport = "tcp"
address = "127.0.0.1:0"
[listen.auth.ticket.principals.alice]
ticket = "TICKET-s3cr3t-alice"
role = "user"
[listen.auth.wampcra.users.bob]
secret = "CRA-s3cr3t-bob"
role = "user"
[listen.auth.cryptosign.principals.carol]
authorized_keys = ["{}"]
role = "user"
[listen.auth.cryptosign.principals.dialer]
authorized_keys = ["{}"]
role = "rlink"

[[realm]]
name = "realm1"
[[realm.role]]
name = "user"
permissions = [{{ uri = "", match = "prefix", call = true, register = true, publish = true, subscribe = true }}]
"#,
        carol.public_key(),
        dialer.public_key()
    );
    let node = Node::start(Config::from_toml_str(&text).expect("config"))
        .await
        .expect("node starts");
    let addr = node.local_addr("tcp").expect("tcp").to_owned();
    let join = |auth: ClientAuth| {
        let addr = addr.clone();
        async move {
            let config = ClientConfig::new("realm1").with_auth(auth);
            Session::connect_tcp(&addr, config).await
        }
    };
    let ticket = |t: &str| ClientAuth::Ticket {
        authid: "alice".into(),
        ticket: t.into(),
    };
    let cra = |s: &str| ClientAuth::WampCra {
        authid: "bob".into(),
        secret: s.into(),
    };
    let alice = join(ticket("TICKET-s3cr3t-alice"))
        .await
        .expect("right ticket");
    let bob = join(cra("CRA-s3cr3t-bob")).await.expect("right secret");
    let cryptosign = |key: &CryptosignKey| ClientAuth::Cryptosign {
        authid: Some("carol".into()),
        key: key.clone(),
    };
    let carol_session = join(cryptosign(&carol)).await.expect("right key");
    join(cryptosign(&stranger)).await.expect_err("wrong key");
    // A node linking over tcp with its seed from the environment (Debug-printed LinkSpecs,
    // link lifecycle logs), once with the right key and once, as "dialer" too, with a wrong one.
    let dialer_node = |var: &'static str| {
        let addr = addr.clone();
        async move {
            let text = format!(
                "[node]\nid = \"dialer\"\n[[listen]]\ntransport = \"tcp\"\naddress = \"127.0.0.1:0\"\n\
                 [[realm]]\nname = \"realm1\"\n\
                 [[link]]\npeer = \"listener\"\naddress = \"{addr}\"\ntransport = \"tcp\"\n\
                 realms = [\"realm1\"]\nreconnect = \"manual\"\ncryptosign_seed_env = \"{var}\"\n"
            );
            Node::start(Config::from_toml_str(&text).expect("dialer config"))
                .await
                .expect("dialer starts")
        }
    };
    std::env::set_var("WAMPMESH_HOSTILE_LINK_SEED", dialer.expose_seed_hex());
    std::env::set_var("WAMPMESH_HOSTILE_WRONG_SEED", stranger.expose_seed_hex());
    let linked = dialer_node("WAMPMESH_HOSTILE_LINK_SEED").await;
    let refused = dialer_node("WAMPMESH_HOSTILE_WRONG_SEED").await;
    let links_up = |node: &Node| {
        node.links()
            .map(|l| l.list())
            .unwrap_or_default()
            .iter()
            .filter(|row| row.get("state").and_then(Value::as_str) == Some("up"))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while links_up(&linked) == 0 {
        assert!(Instant::now() < deadline, "the cryptosign link came up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused_reported = || {
        refused.links().is_some_and(|l| {
            l.list()
                .iter()
                .any(|row| row.get("last_error").and_then(Value::as_str).is_some())
        })
    };
    while !refused_reported() {
        assert!(Instant::now() < deadline, "the wrong-key link failed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(links_up(&refused), 0);
    linked.shutdown(Duration::from_secs(2)).await;
    refused.shutdown(Duration::from_secs(2)).await;
    join(ticket("TICKET-wrong-guess"))
        .await
        .expect_err("wrong ticket");
    join(cra("CRA-wrong-guess"))
        .await
        .expect_err("wrong secret");
    // A malformed AUTHENTICATE carrying the ticket where a dict belongs.
    let mut raw = Raw::open(&addr, Serializer::Json, RAW_WAIT).await;
    let mut details = match hello("realm1") {
        Message::Hello { details, .. } => details,
        _ => unreachable!(),
    };
    details.insert("authmethods".into(), vec![Value::from("ticket")].into());
    details.insert("authid".into(), "alice".into());
    raw.send(&Message::Hello {
        realm: "realm1".into(),
        details,
    })
    .await;
    assert!(matches!(
        raw.try_recv().await,
        Some(Message::Challenge { .. })
    ));
    raw.send_json("[5, \"TICKET-s3cr3t-alice\", \"TICKET-malformed\"]")
        .await;
    raw.expect_abort_then_silence(PROTOCOL_VIOLATION).await;
    let _ = alice.leave("wamp.close.normal").await;
    let _ = bob.leave("wamp.close.normal").await;
    let _ = carol_session.leave("wamp.close.normal").await;
    node.shutdown(Duration::from_secs(2)).await;

    let logged =
        String::from_utf8_lossy(&logs.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
    assert!(
        logged.contains("session joined"),
        "the capture works: {logged}"
    );
    assert!(
        logged.contains("cryptosign"),
        "the cryptosign flows were logged about: {logged}"
    );
    let seeds = [&carol, &dialer, &stranger].map(|k| k.expose_seed_hex());
    let seeds_upper = seeds.clone().map(|s| s.to_uppercase());
    for secret in [
        "TICKET-s3cr3t-alice",
        "CRA-s3cr3t-bob",
        "TICKET-wrong-guess",
        "CRA-wrong-guess",
        "TICKET-malformed",
    ]
    .into_iter()
    .chain(seeds.iter().map(String::as_str))
    .chain(seeds_upper.iter().map(String::as_str))
    {
        assert!(!logged.contains(secret), "{secret} was logged:\n{logged}");
    }
}
