//! Router link lifecycle in-process: stop and start again on the same `LinkManager`, `on_down`
//! on the control realm and the `on_close` callback, interest resynchronised after a reconnect,
//! calls in flight erroring when their link dies, realm links started at runtime through the
//! management API on the peer's one QUIC connection, and many realms over one connection.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::mesh::{
    self, client, field, first_arg, link_list, links_of, manage, probe_until_delivered,
    wait_link_up, wait_listed_up, wait_procedure_routed, wait_until, Collector, CONTROL_REALM,
    REALM,
};
use tokio::sync::mpsc;
use wampmesh::client::Session;
use wampmesh::config::RealmConfig;
use wampmesh::dict;
use wampmesh::link::{LinkEvent, LinkState};
use wampmesh::node::{authorizer_like, Node};
use wampmesh::wamp::{Dict, Payload, Value};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Two nodes, `a` linked to `b` for realm1, link up.
async fn pair(label: &str) -> (Node, Node) {
    let certs = mesh::mesh_certs(label, &["a", "b"]);
    let b = mesh::start_node(&certs, "b").await;
    let a = mesh::start_node(&certs, "a").await;
    mesh::link(&a, &b, REALM);
    wait_link_up(&a, "b", REALM).await;
    (a, b)
}

/// Publishes numbered events `range` on `topic` (acknowledged) with kwargs `{seq}`.
async fn publish_numbered(publisher: &Session, topic: &str, range: std::ops::Range<u64>) {
    for seq in range {
        let payload = mesh::kw(vec![("seq", seq.into())]);
        publisher
            .publish(topic, payload, dict! { "acknowledge" => true })
            .await
            .expect("publish");
    }
}

/// Waits until `collector` has exactly the numbers `0..n` under `seq`, each once.
async fn expect_numbered_once(collector: &Collector, n: u64) {
    wait_until("numbered events delivered", TIMEOUT, || {
        collector.numbered("seq").len() as u64 >= n
    })
    .await;
    // A quiet window in which a duplicate would show up.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut got = collector.numbered("seq");
    got.sort_unstable();
    assert_eq!(got, (0..n).collect::<Vec<_>>(), "each event exactly once");
}

/// A subscription's id on `session`'s node for `topic` (exact), if any (`wamp.subscription.lookup`).
async fn lookup(session: &Session, topic: &str) -> Option<u64> {
    let result = session
        .call(
            "wamp.subscription.lookup",
            Payload::args(vec![topic.into()]),
            Dict::new(),
        )
        .await;
    first_arg(&result.expect("lookup")).and_then(Value::as_u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stop_then_start_again_on_the_same_manager() {
    let (a, b) = pair("life-restart").await;
    let links = links_of(&a).clone();
    let subscriber = client(&b, REALM).await;
    let events = Collector::subscribe(&subscriber, "com.example.t", Dict::new()).await;
    let publisher = client(&a, REALM).await;
    for round in 0..3 {
        probe_until_delivered(&publisher, "com.example.t", &events, TIMEOUT).await;
        let started = Instant::now();
        links.stop("b", REALM).await.expect("stop");
        assert_eq!(
            mesh::link_state(&links, "b", REALM).as_deref(),
            Some("stopped"),
            "round {round}: stopped after stop()"
        );
        // Stopping made the link sessions leave: a holds no proxy for b's interest any more.
        let what = format!("round {round}: a's proxy for b's subscription gone after stop");
        mesh::wait_until_async(&what, Duration::from_secs(2), || async {
            lookup(&publisher, "com.example.t").await.is_none()
        })
        .await;
        links
            .start(mesh::link_spec(&b, REALM))
            .expect("start again");
        wait_link_up(&a, "b", REALM).await;
        println!(
            "round {round}: stop + start + up in {:?}",
            started.elapsed()
        );
    }
    probe_until_delivered(&publisher, "com.example.t", &events, TIMEOUT).await;
    let row = links
        .list()
        .into_iter()
        .find(|r| field(r, "peer") == Some("b"))
        .expect("listed");
    assert_eq!(
        row.get("handshakes").and_then(Value::as_u64),
        Some(1),
        "restarts reuse the QUIC connection: {row:?}"
    );
    a.shutdown(Duration::from_secs(2)).await;
    b.shutdown(Duration::from_secs(2)).await;
}

/// The `details` dict of a `wampmesh.link.on_*` event.
fn event_details(event: &wampmesh::client::Event) -> Dict {
    event
        .payload
        .args
        .as_ref()
        .and_then(|a| a.first())
        .and_then(Value::as_dict)
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn link_loss_is_published_and_reported() {
    let certs = mesh::mesh_certs("life-ondown", &["a", "b"]);
    let b_port = mesh::free_udp_ports(1)[0];
    let b = mesh::start_node_on(&certs, "b", b_port).await;
    let a = mesh::start_node(&certs, "a").await;
    let links = links_of(&a).clone();
    let closed = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&closed);
    links.on_close(move |event| sink.lock().unwrap().push(event.clone()));
    let control = client(&a, CONTROL_REALM).await;
    let downs = Collector::subscribe(&control, "wampmesh.link.on_down", Dict::new()).await;
    let ups = Collector::subscribe(&control, "wampmesh.link.on_up", Dict::new()).await;

    mesh::link(&a, &b, REALM);
    wait_link_up(&a, "b", REALM).await;
    wait_until("on_up published", TIMEOUT, || ups.events().len() == 1).await;
    assert_eq!(
        event_details(&ups.events()[0]),
        dict! { "peer" => "b", "realm" => REALM }
    );

    // 1. Stopped by the user.
    links.stop("b", REALM).await.unwrap();
    wait_until("on_down published", TIMEOUT, || downs.events().len() == 1).await;
    let details = event_details(&downs.events()[0]);
    assert_eq!(
        (field(&details, "peer"), field(&details, "realm")),
        (Some("b"), Some(REALM))
    );
    assert_eq!(field(&details, "reason"), Some("link stopped"));
    wait_until("on_close called", TIMEOUT, || {
        closed.lock().unwrap().len() == 1
    })
    .await;
    let expected = LinkEvent::Down {
        peer: "b".into(),
        realm: REALM.into(),
        reason: "link stopped".into(),
    };
    assert_eq!(closed.lock().unwrap()[0], expected);

    // 2. Lost because the peer shut down: reported with the reason, then reconnected by backoff.
    links.start(mesh::link_spec(&b, REALM)).unwrap();
    wait_link_up(&a, "b", REALM).await;
    b.shutdown(Duration::from_secs(2)).await;
    wait_until("second on_down", TIMEOUT, || downs.events().len() >= 2).await;
    let details = event_details(&downs.events()[1]);
    let reason = field(&details, "reason").unwrap_or_default().to_owned();
    println!("peer shutdown reported as: {reason:?}");
    assert!(
        !reason.is_empty() && reason != "link stopped",
        "a reason for the loss: {details:?}"
    );
    wait_until("on_close for the loss", TIMEOUT, || {
        closed.lock().unwrap().len() >= 2
    })
    .await;
    let state = mesh::link_state(&links, "b", REALM);
    assert!(
        matches!(state.as_deref(), Some("down" | "connecting")),
        "reconnecting, not stopped: {state:?}"
    );

    let freed = mesh::wait_udp_port_free(b_port, TIMEOUT).await;
    println!("b's QUIC port free {freed:?} after its shutdown returned");
    let b = mesh::start_node_on(&certs, "b", b_port).await;
    let started = Instant::now();
    wait_link_up(&a, "b", REALM).await;
    println!("reconnected {:?} after b came back", started.elapsed());
    wait_until("on_up after the reconnect", TIMEOUT, || {
        ups.events().len() >= 3
    })
    .await;
    let subscriber = client(&b, REALM).await;
    let events = Collector::subscribe(&subscriber, "com.example.back", Dict::new()).await;
    probe_until_delivered(
        &client(&a, REALM).await,
        "com.example.back",
        &events,
        TIMEOUT,
    )
    .await;
    a.shutdown(Duration::from_secs(2)).await;
    b.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn interest_is_resynchronised_after_a_reconnect() {
    let (a, b) = pair("life-resync").await;
    let links = links_of(&a).clone();
    let (on_a, on_b) = (client(&a, REALM).await, client(&b, REALM).await);
    let gone = Collector::subscribe(&on_b, "com.example.gone", Dict::new()).await;
    let kept = Collector::subscribe(&on_b, "com.example.kept", Dict::new()).await;
    probe_until_delivered(&on_a, "com.example.gone", &gone, TIMEOUT).await;
    probe_until_delivered(&on_a, "com.example.kept", &kept, TIMEOUT).await;
    assert!(
        lookup(&on_a, "com.example.gone").await.is_some(),
        "a holds a proxy for b's subscription"
    );

    links.stop("b", REALM).await.unwrap();
    // While the link is down: b drops one subscription and makes a new one; a makes one too.
    gone.unsubscribe().await;
    let new_on_b = Collector::subscribe(&on_b, "com.example.new", Dict::new()).await;
    let new_on_a = Collector::subscribe(&on_a, "com.example.from_b", Dict::new()).await;
    links.start(mesh::link_spec(&b, REALM)).unwrap();
    wait_link_up(&a, "b", REALM).await;

    probe_until_delivered(&on_a, "com.example.new", &new_on_b, TIMEOUT).await;
    probe_until_delivered(&on_b, "com.example.from_b", &new_on_a, TIMEOUT).await;
    // b's interest arrived in one advertisement, so the stale proxy is gone by now.
    assert_eq!(
        lookup(&on_a, "com.example.gone").await,
        None,
        "no stale proxy for the dropped subscription"
    );
    let list = on_a
        .call("wamp.subscription.list", Payload::default(), Dict::new())
        .await
        .unwrap();
    println!(
        "subscriptions on a after the resync: {:?}",
        first_arg(&list)
    );

    let before = kept.numbered("seq").len();
    assert_eq!(before, 0);
    publish_numbered(&on_a, "com.example.kept", 0..20).await;
    expect_numbered_once(&kept, 20).await;
    a.shutdown(Duration::from_secs(2)).await;
    b.shutdown(Duration::from_secs(2)).await;
}

/// A callee on `b` that reports each invocation and then holds it for 5 s.
async fn sleepy_callee(b: &Node) -> (Session, mpsc::UnboundedReceiver<()>) {
    let callee = client(b, REALM).await;
    let (got, got_rx) = mpsc::unbounded_channel();
    let mut registration = callee
        .register("com.example.sleep", Dict::new())
        .await
        .unwrap();
    tokio::spawn(async move {
        while let Some(invocation) = registration.next().await {
            let got = got.clone();
            tokio::spawn(async move {
                let _ = got.send(());
                tokio::time::sleep(Duration::from_secs(5)).await;
                let _ = invocation.result(Payload::args(vec!["late".into()])).await;
            });
        }
    });
    (callee, got_rx)
}

/// Calls the sleepy callee from `a`, kills the link with `kill` once the callee has the call,
/// and expects an ERROR at the caller within 2 s.
async fn call_in_flight_errors(
    a: &Node,
    got: &mut mpsc::UnboundedReceiver<()>,
    kill: impl std::future::Future<Output = ()>,
) {
    let caller = client(a, REALM).await;
    wait_procedure_routed(&caller, "com.example.sleep").await;
    let pending = caller
        .call_cancellable("com.example.sleep", Payload::default(), Dict::new())
        .await
        .unwrap();
    tokio::time::timeout(TIMEOUT, got.recv())
        .await
        .expect("the call reached the callee");
    let killed = Instant::now();
    kill.await;
    let outcome = tokio::time::timeout(Duration::from_secs(2), pending.result()).await;
    let elapsed = killed.elapsed();
    let error = outcome
        .expect("an answer within 2 s, not silence")
        .expect_err("an ERROR, not a result");
    println!(
        "call in flight answered {:?} after the link died: {error}",
        elapsed
    );
    assert!(error.uri().is_some(), "a WAMP error: {error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_in_flight_error_when_the_link_is_stopped() {
    let (a, b) = pair("life-inflight-stop").await;
    let (_callee, mut got) = sleepy_callee(&b).await;
    let links = links_of(&a).clone();
    call_in_flight_errors(&a, &mut got, async move {
        links.stop("b", REALM).await.unwrap()
    })
    .await;
    a.shutdown(Duration::from_secs(2)).await;
    b.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_in_flight_error_when_the_peer_shuts_down() {
    let (a, b) = pair("life-inflight-shutdown").await;
    let (_callee, mut got) = sleepy_callee(&b).await;
    let (done_tx, done) = tokio::sync::oneshot::channel();
    let kill = async move {
        // The shutdown itself may wait for the callee (grace period); the caller must not.
        tokio::spawn(async move {
            b.shutdown(Duration::from_secs(6)).await;
            let _ = done_tx.send(());
        });
    };
    call_in_flight_errors(&a, &mut got, kill).await;
    let _ = tokio::time::timeout(Duration::from_secs(10), done).await;
    a.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn realm_linked_at_runtime_through_the_management_api() {
    let (a, b) = pair("life-runtime").await;
    let (control_a, control_b) = (
        client(&a, CONTROL_REALM).await,
        client(&b, CONTROL_REALM).await,
    );
    assert_eq!(
        manage(&control_a, "wampmesh.realm.start", vec!["realm2".into()]).await,
        Value::Bool(true)
    );
    assert_eq!(
        manage(&control_b, "wampmesh.realm.start", vec!["realm2".into()]).await,
        Value::Bool(true)
    );
    let address = b.local_addr("quic").unwrap();
    let options = dict! { "reconnect" => dict! { "initial_ms" => 50u64, "max_ms" => 500u64 } };
    let started = Instant::now();
    let args = vec!["b".into(), address.into(), "realm2".into(), options.into()];
    assert_eq!(
        manage(&control_a, "wampmesh.link.start", args).await,
        Value::Bool(true)
    );
    wait_listed_up(&control_a, "b", "realm2", TIMEOUT).await;
    println!("runtime realm link up in {:?}", started.elapsed());

    let rows: Vec<Dict> = link_list(&control_a)
        .await
        .into_iter()
        .filter(|r| field(r, "peer") == Some("b"))
        .collect();
    assert_eq!(rows.len(), 2, "both realms listed: {rows:?}");
    let connection = rows[0].get("connection").cloned();
    assert!(
        matches!(connection, Some(Value::UInt(_))),
        "a live connection id: {rows:?}"
    );
    for row in &rows {
        assert_eq!(
            row.get("connection").cloned(),
            connection,
            "one QUIC connection for both realms: {rows:?}"
        );
        assert_eq!(
            row.get("handshakes").and_then(Value::as_u64),
            Some(1),
            "one handshake: {row:?}"
        );
        assert_eq!(
            row.get("streams").and_then(Value::as_u64),
            Some(2),
            "one stream per realm: {row:?}"
        );
        assert_eq!(field(row, "transport"), Some("quic"));
    }

    // Traffic on the runtime realm, and only there.
    let subscriber = client(&b, "realm2").await;
    let events = Collector::subscribe(&subscriber, "com.example.r2", Dict::new()).await;
    probe_until_delivered(
        &client(&a, "realm2").await,
        "com.example.r2",
        &events,
        TIMEOUT,
    )
    .await;
    let on_realm1 = client(&a, REALM).await;
    assert_eq!(
        lookup(&on_realm1, "com.example.r2").await,
        None,
        "realm2 interest stays in realm2"
    );

    // Stopped at runtime too; realm1 is untouched.
    assert_eq!(
        manage(
            &control_a,
            "wampmesh.link.stop",
            vec!["b".into(), "realm2".into()]
        )
        .await,
        Value::Bool(true)
    );
    let rows = link_list(&control_a).await;
    let state = |realm: &str| {
        rows.iter()
            .find(|r| field(r, "realm") == Some(realm))
            .and_then(|r| field(r, "state"))
            .map(str::to_owned)
    };
    assert_eq!(state("realm2").as_deref(), Some("stopped"));
    assert_eq!(state(REALM).as_deref(), Some("up"));
    a.shutdown(Duration::from_secs(2)).await;
    b.shutdown(Duration::from_secs(2)).await;
}

/// `count` realms on both nodes, each linked: one QUIC connection, one handshake, a stream each.
async fn many_realms_over_one_connection(count: usize) {
    let certs = mesh::mesh_certs(&format!("life-realms-{count}"), &["a", "b"]);
    let b = mesh::start_patient_node(&certs, "b").await;
    let a = mesh::start_patient_node(&certs, "a").await;
    mesh::link(&a, &b, REALM);
    wait_link_up(&a, "b", REALM).await;
    let template = RealmConfig::open("template");
    let names: Vec<String> = (0..count)
        .map(|i| format!("com.example.realm{i}"))
        .collect();
    let started = Instant::now();
    for name in &names {
        assert!(a.realm_host().start(name, authorizer_like(Some(&template))));
        assert!(b.realm_host().start(name, authorizer_like(Some(&template))));
    }
    let realms_made = started.elapsed();
    let links = links_of(&a).clone();
    let started = Instant::now();
    for name in &names {
        links.start(mesh::link_spec(&b, name)).expect("link start");
    }
    let links_started = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut last_report = Instant::now();
    // Polled through each link's state (cheap), not `list()`, which builds and sorts 10,000
    // status rows and would itself load the node being measured.
    let realm_links: Vec<_> = names
        .iter()
        .map(|name| links.link("b", name).expect("link exists"))
        .collect();
    let count_up = || {
        realm_links
            .iter()
            .filter(|l| l.state() == LinkState::Up)
            .count()
    };
    let mut up = count_up();
    while up < count {
        assert!(
            Instant::now() < deadline,
            "only {up} of {count} links up after 600 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        up = count_up();
        if last_report.elapsed() > Duration::from_secs(2) {
            println!("{up} links up after {:?}", started.elapsed());
            last_report = Instant::now();
        }
    }
    let all_up = started.elapsed();
    println!(
        "{count} realms: created on both nodes in {realms_made:?}, {count} link starts in {links_started:?}, all up after {all_up:?}"
    );

    let rows = links.list();
    let connection = rows[0].get("connection").cloned();
    assert!(
        matches!(connection, Some(Value::UInt(_))),
        "a live connection: {:?}",
        rows[0]
    );
    for row in &rows {
        assert_eq!(
            row.get("connection").cloned(),
            connection,
            "one connection: {row:?}"
        );
        assert_eq!(
            row.get("handshakes").and_then(Value::as_u64),
            Some(1),
            "one handshake: {row:?}"
        );
        assert_eq!(
            row.get("streams").and_then(Value::as_u64),
            Some(count as u64 + 1),
            "a stream per realm: {row:?}"
        );
    }
    for name in [&names[0], &names[count / 2], &names[count - 1]] {
        let subscriber = client(&b, name).await;
        let events = Collector::subscribe(&subscriber, "com.example.t", Dict::new()).await;
        probe_until_delivered(&client(&a, name).await, "com.example.t", &events, TIMEOUT).await;
    }
    let started = Instant::now();
    a.shutdown(Duration::from_secs(10)).await;
    b.shutdown(Duration::from_secs(10)).await;
    println!("both nodes shut down in {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thousand_realms_over_one_connection() {
    many_realms_over_one_connection(1_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_realms_over_one_connection() {
    many_realms_over_one_connection(10_000).await;
}
