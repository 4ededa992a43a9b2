//! Node metrics: counters and gauges kept in atomics (one [`Metrics`] per node, shared through
//! `SessionContext`), and a minimal HTTP/1.1 responder that serves them in the Prometheus text
//! format at `GET /metrics` when `[metrics] address` is configured.
//!
//! Sessions count what they read and write per transport; the realm task counts events dropped
//! for slow consumers; the handshake counts its failures by reason. Gauges that other parts own
//! (realms, links, open connections) are read when a scrape comes in, and so are the process
//! gauges for leak checks (resident memory, tokio tasks alive; see `process`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub use http::MetricsServer;

use crate::link::LinkManager;
use crate::router::RealmRegistry;
use crate::transport::admission::Admission;
use crate::wamp::Value;

mod http;
pub mod process;

/// Transport names sessions are counted under (`ListenerSettings::transport`); anything else
/// is counted as `other`.
const TRANSPORTS: [&str; 7] = ["tcp", "tls", "unix", "quic", "websocket", "local", "other"];

/// Messages and bytes one transport carried, both ways. Bytes include the 4-byte frame headers.
#[derive(Debug, Default)]
pub struct TransportCounters {
    pub messages_in: AtomicU64,
    pub messages_out: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
}

impl TransportCounters {
    /// One frame read: `bytes` with its header; `message` false for PING/PONG.
    pub fn received(&self, bytes: usize, message: bool) {
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
        if message {
            self.messages_in.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `messages` frames of `bytes` in all were written.
    pub fn sent(&self, messages: u64, bytes: usize) {
        self.messages_out.fetch_add(messages, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

/// Every counter of a node. Cheap to update from any task: relaxed atomics, no locks on the
/// message path (the maps are touched once per session or per failed handshake).
#[derive(Debug)]
pub struct Metrics {
    transports: [Arc<TransportCounters>; TRANSPORTS.len()],
    realm_sessions: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
    events_dropped: Arc<AtomicU64>,
    slow_consumers_closed: AtomicU64,
    handshake_failures: Mutex<BTreeMap<String, u64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            transports: std::array::from_fn(|_| Arc::default()),
            realm_sessions: Mutex::default(),
            events_dropped: Arc::default(),
            slow_consumers_closed: AtomicU64::new(0),
            handshake_failures: Mutex::default(),
        }
    }
}

impl Metrics {
    /// The counters of `transport` (a session keeps the `Arc` for its lifetime).
    pub fn transport(&self, transport: &str) -> Arc<TransportCounters> {
        let index = TRANSPORTS
            .iter()
            .position(|t| *t == transport)
            .unwrap_or(TRANSPORTS.len() - 1);
        Arc::clone(&self.transports[index])
    }

    /// A session joined `realm`; the gauge goes down again when the guard is dropped.
    pub fn session_joined(&self, realm: &str) -> SessionGauge {
        let mut realms = self
            .realm_sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let gauge = Arc::clone(realms.entry(realm.to_owned()).or_default());
        gauge.fetch_add(1, Ordering::Relaxed);
        SessionGauge(gauge)
    }

    /// The counter the realm task adds events dropped for slow consumers to.
    pub fn events_dropped(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.events_dropped)
    }

    /// A session was closed because its outbound queue overflowed (ABORT
    /// `wampmesh.error.slow_consumer`).
    pub fn slow_consumer_closed(&self) {
        self.slow_consumers_closed.fetch_add(1, Ordering::Relaxed);
    }

    /// A RawSocket or WAMP opening handshake failed for `reason` (e.g. `connection_limit`,
    /// `handshake_timeout`, or the ABORT URI).
    pub fn handshake_failed(&self, reason: &str) {
        let mut failures = self
            .handshake_failures
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match failures.get_mut(reason) {
            Some(count) => *count += 1,
            None => {
                failures.insert(reason.to_owned(), 1);
            }
        }
    }

    /// Handshake failures so far for `reason`.
    pub fn handshake_failures(&self, reason: &str) -> u64 {
        let failures = self
            .handshake_failures
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        failures.get(reason).copied().unwrap_or(0)
    }

    /// Sessions joined to `realm` now.
    pub fn sessions(&self, realm: &str) -> u64 {
        let realms = self
            .realm_sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        realms.get(realm).map_or(0, |g| g.load(Ordering::Relaxed))
    }
}

/// One joined session in the per-realm gauge.
#[derive(Debug)]
pub struct SessionGauge(Arc<AtomicU64>);

impl Drop for SessionGauge {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a scrape reads: the counters plus the gauges owned elsewhere.
#[derive(Debug, Clone)]
pub struct Scrape {
    pub metrics: Arc<Metrics>,
    pub realms: RealmRegistry,
    pub links: Option<LinkManager>,
    pub admission: Arc<Admission>,
}

impl Scrape {
    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let m = &self.metrics;
        header(
            &mut out,
            "wampmesh_sessions",
            "gauge",
            "Sessions joined, per realm.",
        );
        let mut realms: BTreeMap<String, u64> =
            self.realms.names().into_iter().map(|n| (n, 0)).collect();
        for (name, gauge) in m
            .realm_sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            realms.insert(name.clone(), gauge.load(Ordering::Relaxed));
        }
        for (realm, count) in &realms {
            let _ = writeln!(
                out,
                "wampmesh_sessions{{realm=\"{}\"}} {count}",
                escape(realm)
            );
        }
        header(
            &mut out,
            "wampmesh_realms",
            "gauge",
            "Realms running on this node.",
        );
        let _ = writeln!(out, "wampmesh_realms {}", self.realms.names().len());
        header(
            &mut out,
            "wampmesh_connections",
            "gauge",
            "Connections holding an admission slot.",
        );
        let _ = writeln!(out, "wampmesh_connections {}", self.admission.open());
        self.render_links(&mut out);
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        header(
            &mut out,
            "wampmesh_messages_total",
            "counter",
            "WAMP messages per transport and direction.",
        );
        for (name, counters) in TRANSPORTS.iter().zip(&m.transports) {
            let _ = writeln!(
                out,
                "wampmesh_messages_total{{transport=\"{name}\",direction=\"in\"}} {}",
                load(&counters.messages_in)
            );
            let _ = writeln!(
                out,
                "wampmesh_messages_total{{transport=\"{name}\",direction=\"out\"}} {}",
                load(&counters.messages_out)
            );
        }
        header(
            &mut out,
            "wampmesh_bytes_total",
            "counter",
            "Bytes (frames with their headers) per transport and direction.",
        );
        for (name, counters) in TRANSPORTS.iter().zip(&m.transports) {
            let _ = writeln!(
                out,
                "wampmesh_bytes_total{{transport=\"{name}\",direction=\"in\"}} {}",
                load(&counters.bytes_in)
            );
            let _ = writeln!(
                out,
                "wampmesh_bytes_total{{transport=\"{name}\",direction=\"out\"}} {}",
                load(&counters.bytes_out)
            );
        }
        header(
            &mut out,
            "wampmesh_events_dropped_total",
            "counter",
            "Events dropped for slow consumers.",
        );
        let _ = writeln!(
            out,
            "wampmesh_events_dropped_total {}",
            m.events_dropped.load(Ordering::Relaxed)
        );
        header(
            &mut out,
            "wampmesh_slow_consumers_closed_total",
            "counter",
            "Sessions closed because their outbound queue overflowed.",
        );
        let _ = writeln!(
            out,
            "wampmesh_slow_consumers_closed_total {}",
            m.slow_consumers_closed.load(Ordering::Relaxed)
        );
        header(
            &mut out,
            "wampmesh_handshake_failures_total",
            "counter",
            "Failed RawSocket or WAMP opening handshakes, per reason.",
        );
        for (reason, count) in m
            .handshake_failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "wampmesh_handshake_failures_total{{reason=\"{}\"}} {count}",
                escape(reason)
            );
        }
        process::render(&mut out);
        out
    }

    fn render_links(&self, out: &mut String) {
        let rows = self
            .links
            .as_ref()
            .map(LinkManager::list)
            .unwrap_or_default();
        let text = |row: &crate::wamp::Dict, key: &str| {
            row.get(key)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        let up = rows.iter().filter(|row| text(row, "state") == "up").count();
        header(
            out,
            "wampmesh_links",
            "gauge",
            "Router links up, and down (any other state).",
        );
        let _ = writeln!(out, "wampmesh_links{{state=\"up\"}} {up}");
        let _ = writeln!(out, "wampmesh_links{{state=\"down\"}} {}", rows.len() - up);
        header(
            out,
            "wampmesh_link_up",
            "gauge",
            "1 while the router link to a peer for a realm is up.",
        );
        for row in &rows {
            let (peer, realm) = (escape(&text(row, "peer")), escape(&text(row, "realm")));
            let value = u8::from(text(row, "state") == "up");
            let _ = writeln!(
                out,
                "wampmesh_link_up{{peer=\"{peer}\",realm=\"{realm}\"}} {value}"
            );
        }
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Escapes a label value (backslash, double quote, newline).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn scrape() -> Scrape {
        Scrape {
            metrics: Arc::default(),
            realms: RealmRegistry::default(),
            links: None,
            admission: Arc::default(),
        }
    }

    #[test]
    fn counters_and_gauges_render() {
        let s = scrape();
        s.metrics.transport("tcp").received(40, true);
        s.metrics.transport("bogus").sent(2, 10);
        s.metrics.handshake_failed("connection_limit");
        let gauge = s.metrics.session_joined("realm\"1");
        let text = s.render();
        assert!(
            text.contains("wampmesh_messages_total{transport=\"tcp\",direction=\"in\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("wampmesh_bytes_total{transport=\"tcp\",direction=\"in\"} 40\n"),
            "{text}"
        );
        assert!(
            text.contains("wampmesh_messages_total{transport=\"other\",direction=\"out\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("wampmesh_handshake_failures_total{reason=\"connection_limit\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("wampmesh_sessions{realm=\"realm\\\"1\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("wampmesh_links{state=\"up\"} 0\n"), "{text}");
        drop(gauge);
        assert_eq!(s.metrics.sessions("realm\"1"), 0);
    }
}
