//! Mesh topologies in-process (full mesh of 3, chain of 4, star of 5, ring of 4): every matching
//! subscriber gets each publication exactly once, publisher exclusion and disclosure hold across
//! hops, and calls reach their callee once, with errors, progressive results, cancel, timeouts
//! and shared (roundrobin) registrations across two hops.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::mesh::{
    self, call_when_routed, client, first_arg, kw, kwargs, wait_procedure_routed, wait_until, REALM,
};
use tokio::sync::mpsc;
use wampmesh::client::{ClientError, Event, Session};
use wampmesh::dict;
use wampmesh::node::Node;
use wampmesh::wamp::{Dict, Payload, Value};

const TOPIC: &str = "com.example.ev";
/// Matched only by the prefix subscription.
const OTHER_TOPIC: &str = "com.example.x";
const EVENTS_PER_PUBLISHER: u64 = 30;

/// Starts nodes `names` and the links `edges` (initiator index, acceptor index), then waits
/// until every link is up.
async fn build(label: &str, names: &[&str], edges: &[(usize, usize)]) -> Vec<Node> {
    let certs = mesh::mesh_certs(label, names);
    let mut nodes = Vec::new();
    for name in names {
        nodes.push(mesh::start_node(&certs, name).await);
    }
    for &(from, to) in edges {
        mesh::link(&nodes[from], &nodes[to], REALM);
    }
    for &(from, to) in edges {
        mesh::wait_link_up(&nodes[from], names[to], REALM).await;
    }
    nodes
}

async fn shutdown(nodes: Vec<Node>) {
    for node in nodes {
        node.shutdown(Duration::from_secs(2)).await;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Exact,
    Prefix,
    Wildcard,
    /// The publisher's own exact subscription (publisher exclusion).
    Publisher,
}

impl Kind {
    fn subscription(self) -> (&'static str, Dict) {
        match self {
            Kind::Exact | Kind::Publisher => (TOPIC, Dict::new()),
            Kind::Prefix => ("com.example.", dict! { "match" => "prefix" }),
            Kind::Wildcard => ("com..ev", dict! { "match" => "wildcard" }),
        }
    }

    fn matches(self, topic: &str) -> bool {
        self == Kind::Prefix || topic == TOPIC
    }
}

/// One subscription and everything it received.
struct Subscriber {
    node: usize,
    kind: Kind,
    _session: Session,
    events: Arc<Mutex<Vec<Event>>>,
}

impl Subscriber {
    async fn start(node: &Node, index: usize, kind: Kind, session: Option<Session>) -> Subscriber {
        let session = match session {
            Some(s) => s,
            None => client(node, REALM).await,
        };
        let (topic, options) = kind.subscription();
        let mut subscription = session.subscribe(topic, options).await.expect("subscribe");
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&events);
        tokio::spawn(async move {
            while let Some(event) = subscription.next().await {
                sink.lock().unwrap().push(event);
            }
        });
        Subscriber {
            node: index,
            kind,
            _session: session,
            events,
        }
    }

    fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    /// Probe senders seen so far.
    fn probes_from(&self) -> BTreeSet<String> {
        let events = self.events();
        events
            .iter()
            .filter_map(|e| {
                let kw = kwargs(&e.payload);
                (kw.get("probe") == Some(&Value::Bool(true)))
                    .then(|| mesh::field(&kw, "from").unwrap_or("").to_owned())
            })
            .collect()
    }
}

/// A publication the test made and what every subscriber must see of it.
#[derive(Debug, Clone)]
struct Published {
    from: String,
    seq: u64,
    topic: &'static str,
    publication: u64,
    disclose: bool,
    exclude_me: bool,
    publisher_session: u64,
    publisher_authid: String,
}

struct Publisher {
    node: usize,
    name: String,
    session: Session,
    own: Subscriber,
}

/// Publishes probes from every publisher until every subscriber (and every publisher's own
/// subscription, for the other publishers) has seen one from each: the interest has spread.
async fn wait_interest_spread(publishers: &[Publisher], subscribers: &[Subscriber]) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let everyone: BTreeSet<String> = publishers.iter().map(|p| p.name.clone()).collect();
    loop {
        for p in publishers {
            let payload = kw(vec![
                ("probe", true.into()),
                ("from", p.name.as_str().into()),
            ]);
            p.session
                .publish(TOPIC, payload, dict! { "acknowledge" => true })
                .await
                .expect("probe publish");
        }
        let spread = || {
            subscribers.iter().all(|s| s.probes_from() == everyone)
                && publishers.iter().all(|p| {
                    let mut others = everyone.clone();
                    others.remove(&p.name);
                    p.own.probes_from() == others
                })
        };
        let round_end = Instant::now() + Duration::from_millis(300);
        while Instant::now() < round_end && !spread() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if spread() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "interest did not spread to every node within 15 s"
        );
    }
}

/// The (publisher, seq) pairs a subscription must receive.
type Expected = BTreeSet<(String, u64)>;

/// What `subscriber` must receive of `published`.
fn expected_for(
    subscriber: &Subscriber,
    publisher_name: Option<&str>,
    published: &[Published],
) -> BTreeSet<(String, u64)> {
    published
        .iter()
        .filter(|p| subscriber.kind.matches(p.topic))
        .filter(|p| Some(p.from.as_str()) != publisher_name || !p.exclude_me)
        .map(|p| (p.from.clone(), p.seq))
        .collect()
}

/// Numbered events (probes and end markers left out), counted per (publisher, seq).
fn numbered(events: &[Event]) -> BTreeMap<(String, u64), Vec<Event>> {
    let mut out: BTreeMap<(String, u64), Vec<Event>> = BTreeMap::new();
    for e in events {
        let kw = kwargs(&e.payload);
        if let (Some(from), Some(seq)) = (
            mesh::field(&kw, "from"),
            kw.get("seq").and_then(Value::as_u64),
        ) {
            out.entry((from.to_owned(), seq))
                .or_default()
                .push(e.clone());
        }
    }
    out
}

/// Checks one received event against what was published.
fn check_event(label: &str, kind: Kind, event: &Event, p: &Published) {
    assert_eq!(
        event.publication.get(),
        p.publication,
        "{label}: publication id is kept across hops"
    );
    if kind == Kind::Prefix || kind == Kind::Wildcard {
        assert_eq!(
            mesh::field(&event.details, "topic"),
            Some(p.topic),
            "{label}: details.topic on a pattern subscription"
        );
    }
    if p.disclose {
        let d = &event.details;
        assert_eq!(
            d.get("publisher").and_then(Value::as_u64),
            Some(p.publisher_session),
            "{label}: original publisher id"
        );
        assert_eq!(
            mesh::field(d, "publisher_authid"),
            Some(p.publisher_authid.as_str()),
            "{label}: original authid"
        );
        assert_eq!(
            mesh::field(d, "publisher_authrole"),
            Some("anonymous"),
            "{label}: original authrole"
        );
    } else {
        assert!(
            !event.details.contains_key("publisher"),
            "{label}: publisher disclosed without disclose_me: {:?}",
            event.details
        );
    }
}

/// Subscribers (exact, prefix, wildcard) on every node, publishers on `publisher_nodes`: every
/// matching subscription receives every numbered event exactly once.
async fn check_pubsub(nodes: &[Node], publisher_nodes: &[usize]) {
    let mut subscribers = Vec::new();
    for (index, node) in nodes.iter().enumerate() {
        for kind in [Kind::Exact, Kind::Prefix, Kind::Wildcard] {
            subscribers.push(Subscriber::start(node, index, kind, None).await);
        }
    }
    let mut publishers = Vec::new();
    for &index in publisher_nodes {
        let session = client(&nodes[index], REALM).await;
        let own =
            Subscriber::start(&nodes[index], index, Kind::Publisher, Some(session.clone())).await;
        publishers.push(Publisher {
            node: index,
            name: nodes[index].id.clone(),
            session,
            own,
        });
    }
    wait_interest_spread(&publishers, &subscribers).await;

    let started = Instant::now();
    let mut published = Vec::new();
    for seq in 0..EVENTS_PER_PUBLISHER {
        for p in &publishers {
            let topic = if seq % 3 == 2 { OTHER_TOPIC } else { TOPIC };
            let (disclose, exclude_me) = (seq % 4 == 1, seq % 5 != 3);
            let options = dict! { "acknowledge" => true, "disclose_me" => disclose, "exclude_me" => exclude_me };
            let payload = kw(vec![("from", p.name.as_str().into()), ("seq", seq.into())]);
            let id = p
                .session
                .publish(topic, payload, options)
                .await
                .expect("publish")
                .expect("acknowledged");
            let authid = mesh::field(&p.session.details(), "authid")
                .unwrap_or_default()
                .to_owned();
            published.push(Published {
                from: p.name.clone(),
                seq,
                topic,
                publication: id.get(),
                disclose,
                exclude_me,
                publisher_session: p.session.id().get(),
                publisher_authid: authid,
            });
        }
    }
    let by_key: BTreeMap<(String, u64), Published> = published
        .iter()
        .map(|p| ((p.from.clone(), p.seq), p.clone()))
        .collect();
    let mut all: Vec<(String, &Subscriber, Expected)> = Vec::new();
    for s in &subscribers {
        all.push((
            format!("node {} {:?}", nodes[s.node].id, s.kind),
            s,
            expected_for(s, None, &published),
        ));
    }
    for p in &publishers {
        all.push((
            format!("publisher on {}", p.name),
            &p.own,
            expected_for(&p.own, Some(&p.name), &published),
        ));
    }
    wait_until(
        "every numbered event delivered",
        Duration::from_secs(20),
        || {
            all.iter().all(|(_, s, expected)| {
                numbered(&s.events())
                    .keys()
                    .cloned()
                    .collect::<BTreeSet<_>>()
                    == *expected
            })
        },
    )
    .await;
    let delivery = started.elapsed();
    // A quiet window in which a duplicate taking a longer path would show up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut deliveries = 0;
    for (label, s, expected) in &all {
        let got = numbered(&s.events());
        let keys: BTreeSet<_> = got.keys().cloned().collect();
        assert_eq!(&keys, expected, "{label}: missing or unexpected events");
        for (key, events) in &got {
            assert_eq!(
                events.len(),
                1,
                "{label}: event {key:?} delivered {} times",
                events.len()
            );
            check_event(
                &format!("{label} {key:?}"),
                s.kind,
                &events[0],
                &by_key[key],
            );
            deliveries += 1;
        }
    }
    let publisher_nodes: Vec<&str> = publishers
        .iter()
        .map(|p| nodes[p.node].id.as_str())
        .collect();
    println!(
        "{} nodes, publishers on {publisher_nodes:?}: {} publications, {deliveries} deliveries checked in {delivery:?}",
        nodes.len(),
        published.len()
    );
}

/// Serves `procedure` on `node`, answering with the node's id and counting invocations; checks
/// that a disclosed caller is the original one.
async fn serve_where(node: &Node, procedure: &str, invocations: Arc<Mutex<Vec<Dict>>>) -> Session {
    let session = client(node, REALM).await;
    let name = node.id.clone();
    let mut registration = session
        .register(procedure, Dict::new())
        .await
        .expect("register");
    tokio::spawn(async move {
        while let Some(invocation) = registration.next().await {
            invocations.lock().unwrap().push(invocation.details.clone());
            let _ = invocation
                .result(Payload::args(vec![name.as_str().into()]))
                .await;
        }
    });
    session
}

/// A procedure on `callee` is called from every other node: each call reaches the one callee
/// exactly once, and a disclosed caller is the original one.
async fn check_calls_to(nodes: &[Node], callee: usize, calls_per_node: usize) {
    let procedure = format!("com.example.where.{}", nodes[callee].id);
    let invocations = Arc::new(Mutex::new(Vec::new()));
    let _callee = serve_where(&nodes[callee], &procedure, Arc::clone(&invocations)).await;
    let mut made = 0;
    let started = Instant::now();
    for (index, node) in nodes.iter().enumerate() {
        if index == callee {
            continue;
        }
        let caller = client(node, REALM).await;
        let first = call_when_routed(
            &caller,
            &procedure,
            Payload::default(),
            Dict::new(),
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(
            first.expect("call").payload.args,
            Some(vec![Value::from(nodes[callee].id.as_str())])
        );
        made += 1;
        for _ in 1..calls_per_node {
            let result = caller
                .call(
                    &procedure,
                    Payload::default(),
                    dict! { "disclose_me" => true },
                )
                .await
                .expect("call");
            assert_eq!(
                first_arg(&result).and_then(Value::as_str),
                Some(nodes[callee].id.as_str())
            );
            made += 1;
        }
        let disclosed: Vec<Dict> = invocations
            .lock()
            .unwrap()
            .iter()
            .rev()
            .take(calls_per_node - 1)
            .cloned()
            .collect();
        for details in disclosed {
            assert_eq!(
                details.get("caller").and_then(Value::as_u64),
                Some(caller.id().get()),
                "original caller disclosed"
            );
            assert_eq!(mesh::field(&details, "caller_authrole"), Some("anonymous"));
        }
    }
    // Every call answered, so every invocation was made before its result came back.
    assert_eq!(
        invocations.lock().unwrap().len(),
        made,
        "invocations == calls made (no loops, no duplicates)"
    );
    println!(
        "{made} calls to {} from {} nodes in {:?}",
        nodes[callee].id,
        nodes.len() - 1,
        started.elapsed()
    );
}

/// Callees of `com.example.rr` (invoke roundrobin) on `callees`; `calls` calls from `caller`
/// must alternate between them. `ready` is (node, callees) that must be registered there first.
async fn check_roundrobin(
    nodes: &[Node],
    caller: usize,
    callees: [usize; 2],
    ready: (usize, u64),
    calls: usize,
) -> Vec<String> {
    let procedure = "com.example.rr";
    let invocations = Arc::new(Mutex::new(Vec::new()));
    let mut sessions = Vec::new();
    for &c in &callees {
        let session = client(&nodes[c], REALM).await;
        let name = nodes[c].id.clone();
        let mut registration = session
            .register(procedure, dict! { "invoke" => "roundrobin" })
            .await
            .expect("register roundrobin");
        let seen = Arc::clone(&invocations);
        tokio::spawn(async move {
            while let Some(invocation) = registration.next().await {
                seen.lock().unwrap().push(name.clone());
                let _ = invocation
                    .result(Payload::args(vec![name.as_str().into()]))
                    .await;
            }
        });
        sessions.push(session);
    }
    // The node where the two callees' interest meets must have both callees (local or proxy).
    let probe = client(&nodes[ready.0], REALM).await;
    mesh::wait_until_async(
        "both roundrobin callees registered",
        Duration::from_secs(10),
        || async {
            let Ok(r) = probe
                .call(
                    "wamp.registration.match",
                    Payload::args(vec![procedure.into()]),
                    Dict::new(),
                )
                .await
            else {
                return false;
            };
            let Some(id) = first_arg(&r).and_then(Value::as_u64) else {
                return false;
            };
            let count = probe
                .call(
                    "wamp.registration.count_callees",
                    Payload::args(vec![id.into()]),
                    Dict::new(),
                )
                .await;
            count
                .ok()
                .and_then(|c| first_arg(&c).and_then(Value::as_u64))
                == Some(ready.1)
        },
    )
    .await;
    let session = client(&nodes[caller], REALM).await;
    wait_procedure_routed(&session, procedure).await;
    let mut answered = Vec::new();
    for _ in 0..calls {
        let result = session
            .call(procedure, Payload::default(), Dict::new())
            .await
            .expect("roundrobin call");
        answered.push(
            first_arg(&result)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        );
    }
    assert_eq!(
        invocations.lock().unwrap().len(),
        calls,
        "one invocation per call"
    );
    answered
}

fn assert_alternates(answered: &[String], names: [&str; 2]) {
    for pair in answered.windows(2) {
        assert_ne!(
            pair[0], pair[1],
            "roundrobin must alternate between {names:?}: {answered:?}"
        );
    }
    for name in names {
        assert!(
            answered.iter().any(|a| a == name),
            "{name} never called: {answered:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_mesh_of_three() {
    let nodes = build("mesh-full3", &["a", "b", "c"], &[(0, 1), (0, 2), (1, 2)]).await;
    check_pubsub(&nodes, &[0, 1, 2]).await;
    check_calls_to(&nodes, 2, 5).await;
    let answered = check_roundrobin(&nodes, 0, [1, 2], (0, 2), 10).await;
    assert_alternates(&answered, ["b", "c"]);
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chain_of_four() {
    let nodes = build(
        "mesh-chain4",
        &["a", "b", "c", "d"],
        &[(0, 1), (1, 2), (2, 3)],
    )
    .await;
    check_pubsub(&nodes, &[0, 2, 3]).await;
    check_calls_to(&nodes, 3, 5).await;
    check_calls_to(&nodes, 1, 5).await;
    // Callees on b and d, caller on a: a routes through b, where b's own callee and the proxy
    // for d (via c) share the registration.
    let answered = check_roundrobin(&nodes, 0, [1, 3], (1, 2), 10).await;
    assert_alternates(&answered, ["b", "d"]);
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn star_of_five() {
    // Links in both directions of initiative: spokes 1 and 3 dial the hub, the hub dials 2 and 4.
    let nodes = build(
        "mesh-star5",
        &["hub", "s1", "s2", "s3", "s4"],
        &[(1, 0), (0, 2), (3, 0), (0, 4)],
    )
    .await;
    check_pubsub(&nodes, &[0, 1, 4]).await;
    check_calls_to(&nodes, 2, 4).await;
    check_calls_to(&nodes, 0, 4).await;
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ring_of_four() {
    let nodes = build(
        "mesh-ring4",
        &["a", "b", "c", "d"],
        &[(0, 1), (1, 2), (2, 3), (3, 0)],
    )
    .await;
    check_pubsub(&nodes, &[0, 1, 2, 3]).await;
    check_calls_to(&nodes, 2, 5).await;
    shutdown(nodes).await;
}

/// Publishes `range` numbered events (`{seq}`) and waits until `collector` holds `0..range.end`,
/// each exactly once.
async fn publish_and_expect_once(
    publisher: &Session,
    collector: &mesh::Collector,
    range: std::ops::Range<u64>,
) {
    let end = range.end;
    for seq in range {
        let payload = kw(vec![("seq", seq.into())]);
        publisher
            .publish(TOPIC, payload, dict! { "acknowledge" => true })
            .await
            .expect("publish");
    }
    wait_until("numbered events delivered", Duration::from_secs(10), || {
        collector.numbered("seq").len() as u64 >= end
    })
    .await;
    // A quiet window in which a duplicate taking the other way round would show up.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut got = collector.numbered("seq");
    got.sort_unstable();
    assert_eq!(got, (0..end).collect::<Vec<_>>(), "each event exactly once");
}

/// Calls until a call succeeds: right after a route changes, a call may still be on its way
/// over the link that went away (it then fails; it is never silently lost).
async fn call_until_answered(caller: &Session, procedure: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match caller
            .call(procedure, Payload::default(), Dict::new())
            .await
        {
            Ok(result) => {
                return first_arg(&result)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            }
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "no answer from {procedure} within 10 s: {e}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// A ring reroutes around a stopped link and back when it is started again, without losing or
/// duplicating a publication that was published after the route settled.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ring_reroutes_around_a_stopped_link() {
    let nodes = build(
        "mesh-ring-reroute",
        &["a", "b", "c", "d"],
        &[(0, 1), (1, 2), (2, 3), (3, 0)],
    )
    .await;
    let subscriber = client(&nodes[1], REALM).await;
    let events = mesh::Collector::subscribe(&subscriber, TOPIC, Dict::new()).await;
    let invocations = Arc::new(Mutex::new(Vec::new()));
    let _callee = serve_where(&nodes[1], "com.example.where.b", Arc::clone(&invocations)).await;
    let publisher = client(&nodes[0], REALM).await;
    mesh::probe_until_delivered(&publisher, TOPIC, &events, Duration::from_secs(10)).await;
    publish_and_expect_once(&publisher, &events, 0..20).await;
    wait_procedure_routed(&publisher, "com.example.where.b").await;
    assert_eq!(
        call_until_answered(&publisher, "com.example.where.b").await,
        "b"
    );

    // a -> b stopped: a reaches b through d and c.
    let links = mesh::links_of(&nodes[0]);
    links.stop("b", REALM).await.expect("stop a -> b");
    let probes = events.numbered("probe").len();
    mesh::wait_until_async(
        "delivery a -> d -> c -> b",
        Duration::from_secs(10),
        || async {
            publisher
                .publish(
                    TOPIC,
                    kw(vec![("probe", 1000u64.into())]),
                    dict! { "acknowledge" => true },
                )
                .await
                .is_ok()
                && tokio::time::timeout(Duration::from_millis(200), async {
                    while events.numbered("probe").len() == probes {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                })
                .await
                .is_ok()
        },
    )
    .await;
    publish_and_expect_once(&publisher, &events, 20..40).await;
    assert_eq!(
        call_until_answered(&publisher, "com.example.where.b").await,
        "b"
    );

    // Started again: the direct route comes back, still exactly once.
    links
        .start(mesh::link_spec(&nodes[1], REALM))
        .expect("start a -> b");
    mesh::wait_link_up(&nodes[0], "b", REALM).await;
    publish_and_expect_once(&publisher, &events, 40..60).await;
    assert_eq!(
        call_until_answered(&publisher, "com.example.where.b").await,
        "b"
    );
    let calls_answered = invocations.lock().unwrap().len();
    assert!(
        calls_answered >= 3,
        "every answered call was invoked once on b: {calls_answered}"
    );
    shutdown(nodes).await;
}

/// Errors, progressive results, cancel and call timeouts across two hops (a -> b -> c).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn call_features_across_two_hops() {
    let nodes = build("mesh-calls2hop", &["a", "b", "c"], &[(0, 1), (1, 2)]).await;
    let callee = client(&nodes[2], REALM).await;
    let caller = client(&nodes[0], REALM).await;

    // Errors keep their URI, args and kwargs.
    let mut failing = callee
        .register("com.example.fail", Dict::new())
        .await
        .unwrap();
    tokio::spawn(async move {
        while let Some(invocation) = failing.next().await {
            let payload = Payload::new(vec![1u64.into(), "two".into()], dict! { "three" => 3u64 });
            let _ = invocation.error("com.example.error.custom", payload).await;
        }
    });
    let error = call_when_routed(
        &caller,
        "com.example.fail",
        Payload::default(),
        Dict::new(),
        Duration::from_secs(10),
    )
    .await
    .expect_err("the callee fails");
    match error {
        ClientError::Wamp { error, payload, .. } => {
            assert_eq!(error, "com.example.error.custom");
            assert_eq!(payload.args, Some(vec![Value::UInt(1), Value::from("two")]));
            assert_eq!(payload.kwargs, Some(dict! { "three" => 3u64 }));
        }
        other => panic!("expected a WAMP error, got {other:?}"),
    }

    // Progressive results: three progress results, then the final one, in order.
    let mut progressive = callee
        .register("com.example.progress", Dict::new())
        .await
        .unwrap();
    tokio::spawn(async move {
        while let Some(invocation) = progressive.next().await {
            assert!(
                invocation.receive_progress(),
                "receive_progress reaches the callee across two hops"
            );
            for i in 1..=3u64 {
                invocation
                    .progress(Payload::args(vec![i.into()]))
                    .await
                    .unwrap();
            }
            let _ = invocation.result(Payload::args(vec!["done".into()])).await;
        }
    });
    wait_procedure_routed(&caller, "com.example.progress").await;
    let mut pending = caller
        .call_with_progress("com.example.progress", Payload::default(), Dict::new())
        .await
        .unwrap();
    let mut results = Vec::new();
    while let Some(result) = tokio::time::timeout(Duration::from_secs(5), pending.next())
        .await
        .expect("results in time")
    {
        let result = result.expect("progressive call");
        results.push((result.is_progress(), first_arg(&result).cloned()));
    }
    let expected: Vec<(bool, Option<Value>)> = vec![
        (true, Some(Value::UInt(1))),
        (true, Some(Value::UInt(2))),
        (true, Some(Value::UInt(3))),
        (false, Some(Value::from("done"))),
    ];
    assert_eq!(results, expected);

    // A slow callee: reports each invocation and whether it was interrupted.
    let (got_tx, mut got_rx) = mpsc::unbounded_channel();
    let (interrupted_tx, mut interrupted_rx) = mpsc::unbounded_channel();
    let mut slow = callee
        .register("com.example.slow", Dict::new())
        .await
        .unwrap();
    tokio::spawn(async move {
        while let Some(invocation) = slow.next().await {
            let (got, interrupted) = (got_tx.clone(), interrupted_tx.clone());
            tokio::spawn(async move {
                let _ = got.send(());
                let was = tokio::time::timeout(Duration::from_secs(5), invocation.interrupted())
                    .await
                    .is_ok();
                let _ = interrupted.send(was);
                let _ = invocation
                    .error("wamp.error.canceled", Payload::default())
                    .await;
            });
        }
    });
    wait_procedure_routed(&caller, "com.example.slow").await;

    // Cancel (killnowait): the caller hears at once, the callee two hops away is interrupted.
    let pending = caller
        .call_cancellable("com.example.slow", Payload::default(), Dict::new())
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), got_rx.recv())
        .await
        .expect("invocation reached the callee");
    let canceled_at = Instant::now();
    pending.cancel("killnowait").await.unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(2), pending.result())
        .await
        .expect("cancel answered within 2 s");
    assert_eq!(
        outcome.expect_err("canceled").uri(),
        Some("wamp.error.canceled")
    );
    let interrupted = tokio::time::timeout(Duration::from_secs(2), interrupted_rx.recv())
        .await
        .expect("callee heard");
    assert_eq!(interrupted, Some(true), "the callee was interrupted");
    println!(
        "cancel across two hops answered in {:?}",
        canceled_at.elapsed()
    );

    // Call timeout: 200 ms.
    let started = Instant::now();
    let pending = caller
        .call_cancellable(
            "com.example.slow",
            Payload::default(),
            dict! { "timeout" => 200u64 },
        )
        .await
        .unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(2), pending.result())
        .await
        .expect("timeout answered within 2 s");
    let elapsed = started.elapsed();
    assert_eq!(
        outcome.expect_err("timed out").uri(),
        Some("wamp.error.timeout")
    );
    assert!(
        elapsed >= Duration::from_millis(190),
        "timed out too early: {elapsed:?}"
    );
    let interrupted = tokio::time::timeout(Duration::from_secs(2), interrupted_rx.recv())
        .await
        .expect("callee heard");
    assert_eq!(
        interrupted,
        Some(true),
        "the timed-out callee was interrupted"
    );
    println!("timeout=200 across two hops answered after {elapsed:?}");

    drop((callee, caller));
    shutdown(nodes).await;
}
