//! Faults (issue 6, point 4): a link cut and healed through the relay (QUIC over the UDP
//! relay, TCP over the TCP relay, 5 rounds each), and a 3-node full mesh of `wampmesh node`
//! processes in which n2 is killed with SIGKILL under traffic and restarted on the same ports,
//! 20 times after a warm-up round. After each fault the links come back, interest resyncs
//! (probes and calls between every pair of nodes), no event is delivered twice, every call ends
//! with a result or an error within a bound, and at the end the surviving nodes' tokio task
//! counts and sessions are back at their baseline, their heap in use (glibc mallinfo2) is too,
//! within a stated bound, and their RSS stays under a ceiling.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::time::timeout;

use common::mesh::{
    self, call_when_routed, client, kw, link_spec, link_state, links_of, probe_until_delivered,
    start_node, wait_link_up, wait_until, Collector, REALM,
};
use common::scrape::Footprint;
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
            // Right after a heal the far node may still hold the old link session for a
            // moment (its idle timer runs a little behind ours); a call routed into it ends
            // `wamp.error.canceled` when it goes, as calls on a dying link must. Resynced means
            // a call then gets through within the bound.
            let deadline = Instant::now() + LINK_BOUND;
            let answer = loop {
                let answer = call_when_routed(
                    caller,
                    procedure,
                    Payload::args(vec![1u64.into()]),
                    Dict::new(),
                    LINK_BOUND,
                )
                .await;
                match &answer {
                    Err(e)
                        if e.uri() == Some("wamp.error.canceled") && Instant::now() < deadline =>
                    {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    _ => break answer,
                }
            };
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
    spec.ticket = Some(wampmesh::router::auth::Secret::new(TCP_LINK_TICKET));
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

// ---------------------------------------------------------------------------------------------
// kill -9 in a 3-node mesh of processes

/// Rounds of kill -9 and restart.
const KILL_ROUNDS: usize = 20;
/// Node ids; links n1 -> n2, n1 -> n3, n2 -> n3 (one QUIC connection per pair, a full mesh).
const IDS: [&str; 3] = ["n1", "n2", "n3"];
/// The node killed in every round: n2. The other two must survive all rounds so that their
/// task counts and memory can be compared with their own baseline; and n2 is the one node that
/// is both dialed (by n1, which must reconnect by backoff) and a dialer (of n3, which must
/// clean up the dead incoming link and accept the new one), so the survivors see both sides.
const VICTIM: usize = 1;
/// Heap in live allocations a surviving node may end above its baseline after the rounds (glibc
/// `mallinfo2`, `wampmesh_heap_allocated_bytes`). This is the leak check: unlike RSS it does not
/// move with what glibc's arenas keep or return. Measured on this 2-core machine: +0.2 MiB (the
/// duplicate-suppression windows of the surviving origins filling up; they are bounded).
/// A leak of 200 KiB per restart breaks it.
const SURVIVOR_HEAP_BOUND: f64 = 4.0 * common::scrape::MIB;
/// Finer trend check: the lowest heap of the last five rounds may exceed the lowest of the first
/// five by this much (measured: +0.15 to +0.17 MiB). A leak of 100 KiB per restart (15 rounds
/// apart) breaks it.
const SURVIVOR_HEAP_TREND_BOUND: f64 = 1.5 * common::scrape::MIB;
/// RSS a surviving node may end above its baseline: a ceiling against gross growth, not the leak
/// check. RSS after the same round moves by 5-10 MiB here (glibc keeping freed arena memory or
/// returning it) and ended +1 to +13 MiB over the baseline on this machine, and once +29 MiB on
/// the CI machine (a run before the heap gauge existed; the heap there can only have grown by
/// the ~0.7 MiB the duplicate-suppression set then took); hence 64 MiB.
const SURVIVOR_RSS_BOUND: f64 = 64.0 * common::scrape::MIB;
const TOPIC: &str = "com.example.fault";

/// Ports and configs of the mesh (fixed, so a restarted node is found at the same address).
struct MeshPlan {
    tcp: Vec<u16>,
    metrics: Vec<u16>,
    configs: Vec<String>,
}

impl MeshPlan {
    fn new(certs: &std::path::Path) -> MeshPlan {
        let (tcp, metrics) = {
            let ports = common::free_ports(6);
            (ports[..3].to_vec(), ports[3..].to_vec())
        };
        let quic = mesh::free_udp_ports(3);
        let to = |i: usize| mesh::LinkTo {
            peer: IDS[i].to_owned(),
            quic_port: quic[i],
        };
        let links = [vec![to(1), to(2)], vec![to(2)], vec![]];
        let configs = (0..3)
            .map(|i| {
                let mut text = mesh::node_toml(certs, IDS[i], tcp[i], quic[i], &links[i]);
                text.push_str(&format!(
                    "\n[metrics]\naddress = \"127.0.0.1:{}\"\n",
                    metrics[i]
                ));
                text
            })
            .collect();
        MeshPlan {
            tcp,
            metrics,
            configs,
        }
    }

    fn start(&self, i: usize) -> common::NodeProcess {
        common::NodeProcess::start(
            &format!("faults-{}", IDS[i]),
            &self.configs[i],
            common::localhost(self.tcp[i]),
        )
    }

    fn addr(&self, i: usize) -> String {
        common::localhost(self.tcp[i]).to_string()
    }

    fn metrics(&self, i: usize) -> String {
        common::localhost(self.metrics[i]).to_string()
    }
}

/// The clients on one node: a publisher, a subscriber, a callee and a caller.
struct Parties {
    node: usize,
    /// Names this incarnation's publisher in event payloads (`n2.r7` after the 7th restart).
    label: String,
    publisher: Session,
    caller: Session,
    subscriber: Collector,
    control: Session,
    _sessions: Vec<Session>,
    _callee: ServeHandle,
    /// Numbered events this publisher had acknowledged: 0..acked.
    acked: u64,
}

impl Parties {
    async fn join(plan: &MeshPlan, node: usize, label: String) -> Parties {
        let addr = plan.addr(node);
        let subscriber_session = mesh::client_at(&addr, REALM).await;
        let subscriber = Collector::subscribe(&subscriber_session, TOPIC, Dict::new()).await;
        let callee_session = mesh::client_at(&addr, REALM).await;
        let callee = echo(&callee_session, &format!("com.example.rpc.{}", IDS[node])).await;
        Parties {
            node,
            label,
            publisher: mesh::client_at(&addr, REALM).await,
            caller: mesh::client_at(&addr, REALM).await,
            subscriber,
            control: mesh::client_at(&addr, mesh::CONTROL_REALM).await,
            _sessions: vec![subscriber_session, callee_session],
            _callee: callee,
            acked: 0,
        }
    }
}

/// What one node's traffic did while it ran.
#[derive(Debug, Default)]
struct TrafficOutcome {
    acked: u64,
    results: u64,
    errors: u64,
}

/// Publishes numbered events (acknowledged) and calls the other nodes' procedures in turn until
/// `stop`, or until the node's sessions are gone. Every call must end within `CALL_BOUND`.
fn traffic(
    parties: &Parties,
    stop: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<TrafficOutcome> {
    let (publisher, caller) = (parties.publisher.clone(), parties.caller.clone());
    let (label, mut seq) = (parties.label.clone(), parties.acked);
    let targets: Vec<String> = (0..3)
        .filter(|n| *n != parties.node)
        .map(|n| format!("com.example.rpc.{}", IDS[n]))
        .collect();
    tokio::spawn(async move {
        let mut outcome = TrafficOutcome::default();
        let mut publishing = true;
        for turn in 0.. {
            if stop.is_cancelled() {
                break;
            }
            if publishing {
                let payload = kw(vec![("from", label.as_str().into()), ("seq", seq.into())]);
                let ack = wampmesh::dict! { "acknowledge" => true };
                match timeout(CALL_BOUND, publisher.publish(TOPIC, payload, ack)).await {
                    Ok(Ok(_)) => seq += 1,
                    Ok(Err(_)) => publishing = false,
                    Err(_) => {
                        panic!("{label}: publication {seq} not acknowledged within {CALL_BOUND:?}")
                    }
                }
            }
            let target = &targets[turn % targets.len()];
            let args = Payload::args(vec![Value::UInt(turn as u64)]);
            match timeout(CALL_BOUND, caller.call(target, args, Dict::new())).await {
                Ok(Ok(_)) => outcome.results += 1,
                Ok(Err(_)) if caller.is_closed() => break,
                Ok(Err(_)) => outcome.errors += 1,
                Err(_) => panic!("{label}: a call to {target} still open after {CALL_BOUND:?}"),
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        outcome.acked = seq;
        outcome
    })
}

/// The state of `control`'s node's link to `peer`.
async fn listed_state(control: &Session, peer: &str) -> Option<String> {
    mesh::link_list(control)
        .await
        .iter()
        .find(|r| mesh::field(r, "peer") == Some(peer))
        .and_then(|r| mesh::field(r, "state").map(str::to_owned))
}

/// Every link of the mesh is listed up by the node that dials it.
async fn wait_mesh_links_up(parties: &[Parties]) {
    for (from, to) in [(0, 1), (0, 2), (1, 2)] {
        mesh::wait_listed_up(&parties[from].control, IDS[to], REALM, LINK_BOUND).await;
    }
}

/// Interest resynced: a probe published on each node reaches the subscribers on both other
/// nodes, and each node's caller reaches the callees of both other nodes.
async fn wait_mesh_resynced(parties: &[Parties], round: usize) {
    for p in parties {
        let others: Vec<&Parties> = parties.iter().filter(|o| o.node != p.node).collect();
        let reached = |o: &Parties| {
            o.subscriber.events().iter().any(|e| {
                let k = mesh::kwargs(&e.payload);
                k.get("probe").and_then(Value::as_str) == Some(p.label.as_str())
                    && k.get("round").and_then(Value::as_u64) == Some(round as u64)
            })
        };
        let deadline = Instant::now() + LINK_BOUND;
        while !others.iter().all(|o| reached(o)) {
            assert!(
                Instant::now() < deadline,
                "round {round}: probes from {} never reached every other node",
                p.label
            );
            let probe = kw(vec![
                ("probe", p.label.as_str().into()),
                ("round", (round as u64).into()),
            ]);
            let ack = wampmesh::dict! { "acknowledge" => true };
            p.publisher.publish(TOPIC, probe, ack).await.expect("probe");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for o in &others {
            let procedure = format!("com.example.rpc.{}", IDS[o.node]);
            let answer = timeout(
                CALL_BOUND + LINK_BOUND,
                call_when_routed(
                    &p.caller,
                    &procedure,
                    Payload::default(),
                    Dict::new(),
                    LINK_BOUND,
                ),
            )
            .await
            .expect("call ends");
            assert!(
                answer.is_ok(),
                "round {round}: {} -> {procedure}: {answer:?}",
                p.label
            );
        }
    }
}

/// No subscriber got any numbered event twice; between the two surviving nodes (whose direct
/// link never went down) every acknowledged event arrived.
async fn check_deliveries(parties: &[Parties], round: usize) {
    for p in parties {
        assert_no_duplicates(
            &format!("round {round}, subscriber on {}", p.label),
            &p.subscriber,
        );
    }
    for (from, to) in [(0, 2), (2, 0)] {
        let (publisher, subscriber) = (&parties[from], &parties[to]);
        let what = format!(
            "round {round}: every acknowledged event {} -> {}",
            publisher.label, subscriber.label
        );
        wait_until(&what, LINK_BOUND, || {
            seqs_from(&subscriber.subscriber, &publisher.label).len() as u64 >= publisher.acked
        })
        .await;
        let mut got = seqs_from(&subscriber.subscriber, &publisher.label);
        got.sort_unstable();
        assert_eq!(
            got,
            (0..publisher.acked).collect::<Vec<_>>(),
            "{what}, once"
        );
    }
}

fn kill_9(node: &common::NodeProcess) {
    let status = std::process::Command::new("kill")
        .arg("-KILL")
        .arg(node.pid().to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -KILL {}", node.pid());
}

/// Footprints of the survivors (n1, n3), once their task counts have stopped falling.
async fn survivors_settled(plan: &MeshPlan, baseline: Option<&[Footprint]>) -> Vec<Footprint> {
    let mut out = Vec::new();
    for (k, i) in [0usize, 2].into_iter().enumerate() {
        let metrics = plan.metrics(i);
        let deadline = Instant::now() + SETTLE;
        let mut last = common::scrape::footprint(&metrics).await;
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = common::scrape::footprint(&metrics).await;
            let target_met = baseline.is_some_and(|b| now.tasks <= b[k].tasks);
            let stable = now.tasks == last.tasks;
            last = now;
            if target_met || (baseline.is_none() && stable) || Instant::now() >= deadline {
                break;
            }
        }
        out.push(last);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn node_killed_and_restarted_twenty_times_under_traffic() {
    let started = Instant::now();
    let certs = mesh::mesh_certs("faults-kill", &IDS);
    let plan = MeshPlan::new(&certs);
    let mut processes: Vec<common::NodeProcess> = vec![plan.start(2), plan.start(1), plan.start(0)];
    processes.reverse(); // n1, n2, n3
    let mut parties = Vec::new();
    for (i, id) in IDS.iter().enumerate() {
        parties.push(Parties::join(&plan, i, (*id).to_owned()).await);
    }
    wait_mesh_links_up(&parties).await;
    wait_mesh_resynced(&parties, 0).await;

    // Round 0 is the warm-up: traffic and a kill as in every round; the survivors' baseline
    // is taken after it (the first restart allocates what every later one reuses).
    let (mut results, mut errors) = (0, 0);
    let mut curve: [Vec<Footprint>; 2] = [Vec::new(), Vec::new()];
    let sessions = "wampmesh_sessions{realm=\"realm1\"}";
    let (mut baseline, mut sessions_before) = (Vec::new(), Vec::new());

    for round in 0..=KILL_ROUNDS {
        if round == 1 {
            baseline = survivors_settled(&plan, None).await;
            for i in [0, 2] {
                sessions_before.push(common::scrape::read(&plan.metrics(i), sessions).await);
            }
        }
        let round_started = Instant::now();
        let stop = tokio_util::sync::CancellationToken::new();
        let running: Vec<_> = parties.iter().map(|p| traffic(p, stop.clone())).collect();
        tokio::time::sleep(Duration::from_millis(300)).await;
        kill_9(&processes[VICTIM]);
        let killed = Instant::now();
        mesh::wait_until_async("n1 to see n2 gone", LINK_BOUND, || async {
            listed_state(&parties[0].control, IDS[VICTIM])
                .await
                .as_deref()
                != Some("up")
        })
        .await;
        let seen_down = killed.elapsed();
        // The survivors go on a moment without n2, then everyone stops.
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.cancel();
        for (p, task) in parties.iter_mut().zip(running) {
            let outcome = task
                .await
                .unwrap_or_else(|e| panic!("round {round}: traffic on {}: {e}", p.label));
            p.acked = outcome.acked;
            results += outcome.results;
            errors += outcome.errors;
        }
        // Restart n2 on the same ports; new clients there (the old ones died with it).
        processes[VICTIM] = plan.start(VICTIM);
        let restarted = Instant::now();
        parties[VICTIM] = Parties::join(&plan, VICTIM, format!("n2.r{round}")).await;
        wait_mesh_links_up(&parties).await;
        wait_mesh_resynced(&parties, round).await;
        check_deliveries(&parties, round).await;
        for (k, i) in [0usize, 2].into_iter().enumerate().filter(|_| round > 0) {
            let metrics = plan.metrics(i);
            curve[k].push(common::scrape::footprint(&metrics).await);
        }
        eprintln!(
            "round {round}: n1 saw n2 down {seen_down:.1?} after kill -9; links up and interest resynced {:.1?} after the restart; round took {:.1?}",
            restarted.elapsed(),
            round_started.elapsed()
        );
    }
    let after = survivors_settled(&plan, Some(&baseline)).await;
    eprintln!("calls across the rounds: {results} results, {errors} errors, none open after {CALL_BOUND:?}");
    for (k, i) in [0usize, 2].into_iter().enumerate() {
        let (id, before, after, curve) = (IDS[i], baseline[k], after[k], &curve[k]);
        let mib = common::scrape::MIB;
        let round_mib = |f: fn(&Footprint) -> f64| -> String {
            let values: Vec<String> = curve.iter().map(|c| format!("{:.1}", f(c) / mib)).collect();
            values.join(" ")
        };
        eprintln!(
            "{id}: tasks {} -> {}; heap {:.1} -> {:.1} MiB ({:+.2} MiB, bound +{:.0}); RSS {:.1} -> {:.1} MiB ({:+.1} MiB, bound +{:.0})",
            before.tasks,
            after.tasks,
            before.heap / mib,
            after.heap / mib,
            (after.heap - before.heap) / mib,
            SURVIVOR_HEAP_BOUND / mib,
            before.rss / mib,
            after.rss / mib,
            (after.rss - before.rss) / mib,
            SURVIVOR_RSS_BOUND / mib
        );
        eprintln!(
            "{id}: heap after each round (MiB): {}",
            round_mib(|c| c.heap)
        );
        eprintln!("{id}: RSS after each round (MiB): {}", round_mib(|c| c.rss));
        let lowest_heap =
            |rounds: &[Footprint]| rounds.iter().map(|c| c.heap).fold(f64::MAX, f64::min);
        let (early, late) = (
            lowest_heap(&curve[..5]),
            lowest_heap(&curve[KILL_ROUNDS - 5..]),
        );
        eprintln!(
            "{id}: lowest heap of rounds 1-5 {:.2} MiB, of rounds {}-{KILL_ROUNDS} {:.2} MiB ({:+.2} MiB, bound +{:.1})",
            early / mib,
            KILL_ROUNDS - 4,
            late / mib,
            (late - early) / mib,
            SURVIVOR_HEAP_TREND_BOUND / mib
        );
        let sessions_after = common::scrape::read(&plan.metrics(i), sessions).await;
        assert_eq!(
            sessions_after, sessions_before[k],
            "{id}: sessions in realm1 (clients and links) back at the baseline"
        );
        assert_eq!(
            after.tasks, before.tasks,
            "{id}: tokio tasks back at the baseline after {KILL_ROUNDS} kills"
        );
        assert!(
            late - early <= SURVIVOR_HEAP_TREND_BOUND,
            "{id}: heap in use trends up over the rounds (a leak per restart)"
        );
        assert!(
            after.heap - before.heap <= SURVIVOR_HEAP_BOUND,
            "{id}: heap in use grew by {:.2} MiB over {KILL_ROUNDS} kills",
            (after.heap - before.heap) / mib
        );
        assert!(
            after.rss - before.rss <= SURVIVOR_RSS_BOUND,
            "{id}: RSS grew by {:.1} MiB over {KILL_ROUNDS} kills",
            (after.rss - before.rss) / mib
        );
    }
    assert!(results > 0, "calls were answered");
    eprintln!("{KILL_ROUNDS} kill -9 rounds in {:.1?}", started.elapsed());
}
