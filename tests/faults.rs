//! Faults (issue 6, point 4): a link cut and healed through the relay, and a 3-node mesh of
//! `wampmesh node` processes in which one node is killed with SIGKILL under traffic and
//! restarted, 20 times. After each fault the links come back, interest resyncs, no event is
//! delivered twice, every call ends with a result or an error within a bound, and at the end
//! the surviving nodes' task counts and memory are back at their baseline.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::time::timeout;

use common::mesh::{
    self, call_when_routed, client, kw, link_spec, link_state, links_of, probe_until_delivered,
    start_node, wait_link_up, wait_until, Collector, REALM,
};
use wampmesh::client::{ServeHandle, Session};
use wampmesh::node::Node;
use wampmesh::relay::{RelayConfig, TcpRelay, UdpRelay};
use wampmesh::wamp::{Dict, Payload, Value};

/// The longest any call may take to end, with a result or an error. A node that loses a peer
/// notices within the QUIC idle timeout of the test configs (1.5 s); the rest is slack for a
/// loaded 2-core machine. A call still open after this hangs.
const CALL_BOUND: Duration = Duration::from_secs(10);
/// The longest a link may take to be reported down, or up again.
const LINK_BOUND: Duration = Duration::from_secs(15);
/// Tasks may take this long to wind down after a fault before they are counted.
const SETTLE: Duration = Duration::from_secs(15);
/// The ticket n1 presents on a plain TCP link.
const TCP_LINK_TICKET: &str = "link-ticket";

/// Numbered events `{from, seq}` seen by one subscriber: every (from, seq) at most once.
fn assert_no_duplicates(what: &str, collector: &Collector) {
    let mut seen: HashMap<(String, u64), usize> = HashMap::new();
    for event in collector.events() {
        let kwargs = mesh::kwargs(&event.payload);
        let (Some(from), Some(seq)) = (
            kwargs.get("from").and_then(Value::as_str),
            kwargs.get("seq").and_then(Value::as_u64),
        ) else {
            continue;
        };
        *seen.entry((from.to_owned(), seq)).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "{what}: delivered more than once: {twice:?}"
    );
}

/// The seqs of events from `from` that `collector` has.
fn seqs_from(collector: &Collector, from: &str) -> Vec<u64> {
    collector
        .events()
        .iter()
        .filter_map(|e| {
            let kwargs = mesh::kwargs(&e.payload);
            (kwargs.get("from").and_then(Value::as_str) == Some(from))
                .then(|| kwargs.get("seq").and_then(Value::as_u64))
                .flatten()
        })
        .collect()
}

/// A procedure that answers with its arguments.
async fn echo(session: &Session, procedure: &str) -> ServeHandle {
    session
        .serve(procedure, Dict::new(), |invocation| async move {
            let payload = invocation.payload.clone();
            let _ = invocation.result(payload).await;
        })
        .await
        .unwrap_or_else(|e| panic!("register {procedure}: {e}"))
}

/// Tokio tasks alive in this test's runtime (both in-process nodes, the relay, the clients).
fn tasks_alive() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Waits until the task count is back at `baseline` or below; returns the count.
async fn settled_tasks(baseline: usize) -> usize {
    let deadline = Instant::now() + SETTLE;
    loop {
        let now = tasks_alive();
        if now <= baseline || Instant::now() >= deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two in-process nodes and the parties on each side of the link between them.
struct Pair {
    n1: Node,
    n2: Node,
    pub1: Session,
    pub2: Session,
    caller1: Session,
    caller2: Session,
    /// On n2, events from n1; on n1, events from n2.
    at2: Collector,
    at1: Collector,
    _sessions: Vec<Session>,
    _callees: Vec<ServeHandle>,
    /// Next seq per direction.
    seq: BTreeMap<&'static str, u64>,
}

impl Pair {
    async fn start(n1: Node, n2: Node) -> Pair {
        let (s1, s2) = (client(&n1, REALM).await, client(&n2, REALM).await);
        let at1 = Collector::subscribe(&s1, "com.example.to1", Dict::new()).await;
        let at2 = Collector::subscribe(&s2, "com.example.to2", Dict::new()).await;
        let callees = vec![
            echo(&s1, "com.example.echo1").await,
            echo(&s2, "com.example.echo2").await,
        ];
        Pair {
            pub1: client(&n1, REALM).await,
            pub2: client(&n2, REALM).await,
            caller1: client(&n1, REALM).await,
            caller2: client(&n2, REALM).await,
            n1,
            n2,
            at1,
            at2,
            _sessions: vec![s1, s2],
            _callees: callees,
            seq: BTreeMap::new(),
        }
    }

    /// Interest crossed the link both ways: probes are delivered and calls routed.
    async fn wait_resynced(&self) {
        probe_until_delivered(&self.pub1, "com.example.to2", &self.at2, LINK_BOUND).await;
        probe_until_delivered(&self.pub2, "com.example.to1", &self.at1, LINK_BOUND).await;
        for (caller, procedure) in [
            (&self.caller1, "com.example.echo2"),
            (&self.caller2, "com.example.echo1"),
        ] {
            let answer = call_when_routed(
                caller,
                procedure,
                Payload::args(vec![1u64.into()]),
                Dict::new(),
                LINK_BOUND,
            )
            .await;
            assert!(answer.is_ok(), "{procedure} across the link: {answer:?}");
        }
    }

    /// Publishes `count` numbered events each way (acknowledged) and waits until all arrived.
    async fn exchange(&mut self, count: u64) {
        for (from, publisher, topic) in [
            ("n1", &self.pub1, "com.example.to2"),
            ("n2", &self.pub2, "com.example.to1"),
        ] {
            let next = self.seq.entry(from).or_insert(0);
            for _ in 0..count {
                let payload = kw(vec![("from", from.into()), ("seq", (*next).into())]);
                let ack = wampmesh::dict! { "acknowledge" => true };
                publisher
                    .publish(topic, payload, ack)
                    .await
                    .expect("publish");
                *next += 1;
            }
        }
        let (to2, to1) = (self.seq["n1"], self.seq["n2"]);
        wait_until("numbered events across the link", LINK_BOUND, || {
            seqs_from(&self.at2, "n1").len() as u64 >= to2
                && seqs_from(&self.at1, "n2").len() as u64 >= to1
        })
        .await;
    }

    /// Every numbered event arrived exactly once (each was published while the link was up).
    fn assert_exactly_once(&self) {
        assert_no_duplicates("n2's subscriber", &self.at2);
        assert_no_duplicates("n1's subscriber", &self.at1);
        for (collector, from) in [(&self.at2, "n1"), (&self.at1, "n2")] {
            let mut got = seqs_from(collector, from);
            got.sort_unstable();
            let want: Vec<u64> = (0..self.seq.get(from).copied().unwrap_or(0)).collect();
            assert_eq!(got, want, "events from {from}: each exactly once");
        }
    }

    /// A call across the link made while it is cut ends with an error within `CALL_BOUND`.
    async fn call_during_cut(&self) -> Duration {
        let started = Instant::now();
        let answer = timeout(
            CALL_BOUND,
            self.caller1.call(
                "com.example.echo2",
                Payload::args(vec![2u64.into()]),
                Dict::new(),
            ),
        )
        .await
        .unwrap_or_else(|_| panic!("a call during the cut still open after {CALL_BOUND:?}"));
        assert!(answer.is_err(), "a call across a cut link: {answer:?}");
        started.elapsed()
    }

    async fn wait_link(&self, up: bool) {
        let links = links_of(&self.n1);
        let what = format!("n1's link to n2 {}", if up { "up" } else { "down" });
        wait_until(&what, LINK_BOUND, || {
            (link_state(links, "n2", REALM).as_deref() == Some("up")) == up
        })
        .await;
    }

    async fn stop(self) {
        for node in [self.n1, self.n2] {
            timeout(
                Duration::from_secs(15),
                node.shutdown(Duration::from_secs(2)),
            )
            .await
            .expect("node shuts down");
        }
    }
}

/// Cuts and heals `ROUNDS` times: `cut` / `heal` act on the relay between the nodes.
async fn cut_and_heal_rounds(pair: &mut Pair, cut: &dyn Fn(), heal: &dyn Fn(), label: &str) {
    const ROUNDS: usize = 5;
    pair.wait_resynced().await;
    pair.exchange(20).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let baseline = tasks_alive();
    for round in 1..=ROUNDS {
        cut();
        let call = pair.call_during_cut().await;
        let cut_at = Instant::now();
        pair.wait_link(false).await;
        let down = cut_at.elapsed() + call;
        // While the link is down, a call finds no route at once.
        let answer = timeout(
            CALL_BOUND,
            pair.caller1
                .call("com.example.echo2", Payload::default(), Dict::new()),
        )
        .await
        .expect("a call while the link is down ends");
        assert!(answer.is_err(), "a call while the link is down: {answer:?}");
        heal();
        let healed = Instant::now();
        pair.wait_link(true).await;
        pair.wait_resynced().await;
        pair.exchange(20).await;
        eprintln!(
            "{label} round {round}: the call during the cut failed after {call:.1?}, link down after {down:.1?}, up and resynced {:.1?} after the heal",
            healed.elapsed()
        );
    }
    pair.assert_exactly_once();
    let after = settled_tasks(baseline).await;
    eprintln!("{label}: tokio tasks {baseline} before the cuts, {after} after {ROUNDS} rounds");
    assert_eq!(
        after, baseline,
        "{label}: every task of the cut links ended"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_link_cut_and_healed_through_the_relay() {
    let certs = mesh::mesh_certs("faults-cut-quic", &["n1", "n2"]);
    let n2 = start_node(&certs, "n2").await;
    let n1 = start_node(&certs, "n1").await;
    let upstream: SocketAddr = n2.local_addr("quic").expect("quic").parse().expect("addr");
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let relay = UdpRelay::start(any, upstream, RelayConfig::default())
        .await
        .expect("relay");
    let mut spec = link_spec(&n2, REALM);
    spec.address = relay.local_addr().to_string();
    links_of(&n1).start(spec).expect("link through the relay");
    wait_link_up(&n1, "n2", REALM).await;
    let mut pair = Pair::start(n1, n2).await;
    cut_and_heal_rounds(&mut pair, &|| relay.cut(), &|| relay.heal(), "quic").await;
    assert!(relay.stats().dropped_cut > 0, "the relay did cut");
    pair.stop().await;
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_link_cut_and_healed_through_the_relay() {
    let certs = mesh::mesh_certs("faults-cut-tcp", &["n1", "n2"]);
    // n2's TCP listener takes anonymous clients and n1's link by ticket (role rlink).
    let tcp_listener = "transport = \"tcp\"\naddress = \"127.0.0.1:0\"\n";
    let text = mesh::node_toml(&certs, "n2", 0, 0, &[]).replacen(
        tcp_listener,
        &format!(
            "{tcp_listener}[listen.auth.anonymous]\nrole = \"anonymous\"\n\
             [listen.auth.ticket.principals.n1]\nticket = \"{TCP_LINK_TICKET}\"\nrole = \"rlink\"\n"
        ),
        1,
    );
    assert!(text.contains("principals.n1"), "{text}");
    let config = wampmesh::config::Config::from_toml_str(&text).expect("n2 config");
    let n2 = Node::start(config).await.expect("n2 starts");
    let n1 = start_node(&certs, "n1").await;
    let upstream: SocketAddr = n2.local_addr("tcp").expect("tcp").parse().expect("addr");
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let relay = TcpRelay::start(any, upstream, RelayConfig::default())
        .await
        .expect("relay");
    let mut spec = link_spec(&n2, REALM);
    spec.address = relay.local_addr().to_string();
    spec.transport = wampmesh::config::LinkTransport::Tcp;
    spec.ticket = Some(TCP_LINK_TICKET.to_owned());
    links_of(&n1).start(spec).expect("link through the relay");
    wait_link_up(&n1, "n2", REALM).await;
    let mut pair = Pair::start(n1, n2).await;
    cut_and_heal_rounds(&mut pair, &|| relay.cut(), &|| relay.heal(), "tcp").await;
    assert!(
        relay.stats().connections > 5,
        "a new TCP connection after each heal"
    );
    pair.stop().await;
    relay.stop().await;
}
