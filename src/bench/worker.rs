//! Measurements made in a child process (`wampmesh bench --scenario __worker:KIND:ARGS --out
//! DIR`), so that resident memory and file descriptors are counted in a process that holds
//! nothing else, and memory freed by one repetition cannot be reused by the next.
//!
//! `scale:TRANSPORT:N` links N realms from node a to node b; `sessions:TRANSPORT:N:CONNS`
//! joins N client sessions to one node (QUIC: spread over CONNS connections). The child writes
//! `DIR/result.json`; [`spawn`] runs one and reads it back.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinSet;

use super::fixture::{self, CertDir, Port, REALM};
use super::load::Background;
use super::system::{open_fds, rss_bytes};
use super::Error;
use crate::client::Session;
use crate::config::LinkTransport;
use crate::link::LinkEvent;
use crate::wamp::{Dict, Payload};

/// The `--scenario` prefix of a child-process run.
pub const PREFIX: &str = "__worker:";
/// Links started at once before waiting for them.
const LINK_BATCH: usize = 500;
/// Sessions connecting at once.
const CONNECT_CONCURRENCY: usize = 256;

/// Runs a child with `spec`, waits at most `timeout`, returns its result.json.
pub async fn spawn(spec: &str, timeout: Duration) -> Result<Json, Error> {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let n = RUNS.fetch_add(1, Ordering::Relaxed);
    let dir =
        std::env::temp_dir().join(format!("wampmesh-bench-worker-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let stderr = std::fs::File::create(dir.join("stderr.log"))?;
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args(["bench", "--scenario", &format!("{PREFIX}{spec}"), "--out"])
        .arg(&dir)
        .env(
            "RUST_LOG",
            std::env::var("WAMPMESH_BENCH_WORKER_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()?;
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => status?,
        Err(_) => {
            let _ = child.kill().await;
            return Err(format!("worker {spec} did not finish within {timeout:?}").into());
        }
    };
    let result = std::fs::read_to_string(dir.join("result.json"));
    let log = std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    match (status.success(), result) {
        (true, Ok(text)) => Ok(serde_json::from_str(&text)?),
        _ => {
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            Err(format!(
                "worker {spec} failed ({status}): {}",
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            )
            .into())
        }
    }
}

/// Runs one child-process measurement and writes its JSON into `out/result.json`.
pub async fn run(spec: &str, out: &Path) -> Result<(), Error> {
    let parts: Vec<&str> = spec.split(':').collect();
    let transport = |s: &str| match s {
        "quic" => Ok(LinkTransport::Quic),
        "tcp" => Ok(LinkTransport::Tcp),
        "tls" => Ok(LinkTransport::Tls),
        other => Err::<_, Error>(format!("unknown transport {other:?}").into()),
    };
    let number = |s: &str| {
        s.parse::<usize>()
            .map_err(|e| Error::from(format!("{s:?}: {e}")))
    };
    let result = match parts.as_slice() {
        ["scale", t, n] => scale(transport(t)?, number(n)?).await?,
        ["sessions", t, n, conns] => sessions(transport(t)?, number(n)?, number(conns)?).await?,
        _ => return Err(format!("unknown worker {spec:?}").into()),
    };
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("result.json"), serde_json::to_string(&result)?)?;
    Ok(())
}

/// Resident memory and fds after a moment of quiet.
async fn settled() -> (u64, u64) {
    tokio::time::sleep(Duration::from_millis(1000)).await;
    (rss_bytes(), open_fds())
}

/// Heap bytes in live allocations (0 where the C library cannot tell).
fn heap() -> u64 {
    crate::metrics::process::heap_allocated_bytes().unwrap_or(0)
}

/// Links `n` realms from a to b over `transport`, in batches, and measures time, memory, fds.
async fn scale(transport: LinkTransport, n: usize) -> Result<Json, Error> {
    let certs = CertDir::new("scale")?;
    let b = fixture::start_node(certs.path(), "b").await?;
    let a = fixture::start_node(certs.path(), "a").await?;
    let (rss_start, fds_start) = settled().await;
    let heap_start = heap();
    let names: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
    for node in [&a, &b] {
        let template = node.config().realm.first();
        for name in &names {
            node.realm_host()
                .start(name, crate::node::authorizer_like(template));
        }
    }
    let (rss_realms, fds_realms) = settled().await;
    let heap_realms = heap();
    let port = match transport {
        LinkTransport::Quic => Port::QuicLinks,
        LinkTransport::Tcp => Port::Tcp,
        LinkTransport::Tls => Port::Tls,
    };
    let address = fixture::address(&b, port);
    let links = a.links().ok_or("node a has no links")?;
    let mut events = links.events();
    let started = Instant::now();
    let (mut up, mut failed, mut first_error) = (0usize, 0usize, None::<String>);
    for batch in names.chunks(LINK_BATCH) {
        for realm in batch {
            links.start(fixture::link_spec(realm, transport, &address))?;
        }
        let mut pending: HashSet<&str> = batch.iter().map(String::as_str).collect();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while !pending.is_empty() {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Err(_) => break,
                Ok(Ok(LinkEvent::Up { realm, .. })) => {
                    up += usize::from(pending.remove(realm.as_str()))
                }
                Ok(Ok(LinkEvent::Down { realm, reason, .. })) => {
                    if pending.remove(realm.as_str()) {
                        failed += 1;
                        first_error.get_or_insert(reason);
                    }
                }
                Ok(Err(RecvError::Lagged(_))) => {
                    let now_up: Vec<&str> = pending
                        .iter()
                        .copied()
                        .filter(|r| {
                            links
                                .link("b", r)
                                .is_ok_and(|l| l.state() == crate::link::LinkState::Up)
                        })
                        .collect();
                    for r in now_up {
                        pending.remove(r);
                        up += 1;
                    }
                }
                Ok(Err(RecvError::Closed)) => break,
            }
        }
        failed += pending.len();
        if failed > 0 {
            break;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let (rss_links, fds_links) = settled().await;
    let heap_links = heap();
    let handshakes = links
        .list()
        .first()
        .and_then(|d| d.get("handshakes"))
        .and_then(crate::wamp::Value::as_u64)
        .unwrap_or(0);
    let result = json!({
        "transport": transport.as_str(), "requested": n, "up": up, "failed": failed, "first_error": first_error,
        "seconds": seconds, "rss_start": rss_start, "rss_realms": rss_realms, "rss_links": rss_links,
        "heap_start": heap_start, "heap_realms": heap_realms, "heap_links": heap_links,
        "fds_start": fds_start, "fds_realms": fds_realms, "fds_links": fds_links, "quic_handshakes": handshakes,
    });
    a.shutdown(Duration::from_secs(5)).await;
    b.shutdown(Duration::from_secs(5)).await;
    Ok(result)
}

/// Joined client sessions, each with a task counting its events into `delivered`.
#[derive(Default)]
struct Fleet {
    background: Background,
    delivered: Arc<AtomicU64>,
    sessions: Vec<Session>,
    first_error: Option<String>,
}

type Joined = Result<(Session, crate::client::Subscription), Error>;

impl Fleet {
    /// Takes the next finished join.
    async fn collect(&mut self, joining: &mut JoinSet<Joined>) {
        match joining.join_next().await {
            Some(Ok(Ok((session, mut subscription)))) => {
                let delivered = Arc::clone(&self.delivered);
                self.background.spawn(async move {
                    while subscription.next().await.is_some() {
                        delivered.fetch_add(1, Ordering::Relaxed);
                    }
                });
                self.sessions.push(session);
            }
            Some(Ok(Err(e))) => {
                self.first_error.get_or_insert(e.to_string());
            }
            Some(Err(e)) => {
                self.first_error.get_or_insert(e.to_string());
            }
            None => {}
        }
    }
}

/// Joins `n` sessions to one node, each subscribed to one topic, then fans events out to all.
async fn sessions(transport: LinkTransport, n: usize, connections: usize) -> Result<Json, Error> {
    let certs = CertDir::new("sessions")?;
    let node = fixture::start_node(certs.path(), "a").await?;
    let connector = fixture::client_connector(&node)?;
    let quic_address = fixture::address(&node, Port::QuicClients);
    let tcp_address = fixture::address(&node, Port::Tcp);
    let mut quic = Vec::new();
    if transport == LinkTransport::Quic {
        for _ in 0..connections.max(1) {
            quic.push(connector.connect(&quic_address, "a").await?);
        }
    }
    let (rss_start, fds_start) = settled().await;
    let started = Instant::now();
    let mut fleet = Fleet::default();
    let mut joining = JoinSet::new();
    for i in 0..n {
        while joining.len() >= CONNECT_CONCURRENCY {
            fleet.collect(&mut joining).await;
        }
        if fleet.first_error.is_some() {
            break;
        }
        let (connection, tcp_address) = (
            quic.get(i % quic.len().max(1)).cloned(),
            tcp_address.clone(),
        );
        joining.spawn(async move {
            let session = match connection {
                Some(c) => fixture::quic_session(&c, REALM).await?,
                None => Session::connect_tcp(&tcp_address, fixture::client_config(REALM)).await?,
            };
            let subscription = session.subscribe(FANOUT_TOPIC, Dict::new()).await?;
            Ok::<_, Error>((session, subscription))
        });
    }
    while !joining.is_empty() {
        fleet.collect(&mut joining).await;
    }
    let connect_seconds = started.elapsed().as_secs_f64();
    let (rss_sessions, fds_sessions) = settled().await;
    let joined = fleet.sessions.len();
    let (fanout_rate, events) = fan_out(&tcp_address, joined, &fleet.delivered).await?;
    let result = json!({
        "transport": transport.as_str(), "requested": n, "joined": joined, "connections": quic.len(),
        "first_error": fleet.first_error, "connect_seconds": connect_seconds,
        "rss_start": rss_start, "rss_sessions": rss_sessions, "fds_start": fds_start, "fds_sessions": fds_sessions,
        "fanout_deliveries_per_sec": fanout_rate, "fanout_events": events,
    });
    fleet.sessions.clear();
    fleet.background.stop().await;
    node.shutdown(Duration::from_secs(5)).await;
    Ok(result)
}

const FANOUT_TOPIC: &str = "bench.fanout";

/// Publishes events that every joined session receives; deliveries per second until all
/// arrived (at most 60 s), and the number of events.
async fn fan_out(
    tcp_address: &str,
    joined: usize,
    delivered: &AtomicU64,
) -> Result<(f64, u64), Error> {
    let publisher = Session::connect_tcp(tcp_address, fixture::client_config(REALM)).await?;
    let events = (1_000_000 / joined.max(1)).clamp(5, 500) as u64;
    let expected = events * joined as u64;
    let before = delivered.load(Ordering::Relaxed);
    let body = super::load::body(64);
    let started = Instant::now();
    for _ in 0..events {
        let payload = Payload::args(vec![crate::wamp::Value::Bytes(body.clone())]);
        publisher
            .publish(FANOUT_TOPIC, payload, Dict::new())
            .await?;
    }
    let deadline = started + Duration::from_secs(60);
    while delivered.load(Ordering::Relaxed) - before < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let got = delivered.load(Ordering::Relaxed) - before;
    Ok((got as f64 / started.elapsed().as_secs_f64(), events))
}
