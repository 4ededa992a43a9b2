//! Router features end to end with the Rust client, JSON, MessagePack and CBOR sessions mixed in
//! one realm: pub/sub with patterns, RPC with payloads, errors, progressive results, cancel,
//! timeouts, caller identification, shared registrations, the meta API over the wire, the
//! WELCOME roles, and a slow subscriber that must not stall the others.

use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use tokio::time::timeout;

use wampmesh::client::{
    ClientConfig, ClientError, Invocation, Registration, Session, Subscription,
};
use wampmesh::config::Config;
use wampmesh::dict;
use wampmesh::node::Node;
use wampmesh::wamp::{Dict, Payload, Serializer, Value};

/// Every wait in this file is bounded by this, so a hang fails fast.
const WAIT: Duration = Duration::from_secs(5);

fn config(extra: &str) -> Config {
    let text = format!(
        r#"
[[listen]]
transport = "tcp"
address = "127.0.0.1:0"

[[realm]]
name = "realm1"
[[realm.role]]
name = "anonymous"
permissions = [{{ uri = "", match = "prefix", call = true, register = true, publish = true, subscribe = true }}]

{extra}
"#
    );
    Config::from_toml_str(&text).unwrap_or_else(|e| panic!("test config: {e}"))
}

async fn start(extra: &str) -> (Node, String) {
    let node = Node::start(config(extra)).await.expect("node starts");
    let addr = node.local_addr("tcp").expect("tcp listener").to_owned();
    (node, addr)
}

async fn stop(node: Node) {
    timeout(
        Duration::from_secs(10),
        node.shutdown(Duration::from_secs(2)),
    )
    .await
    .expect("node shuts down");
}

/// Awaits `future` for at most `WAIT`, naming `what` if it does not finish.
async fn within<F: Future>(what: &str, future: F) -> F::Output {
    timeout(WAIT, future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

async fn join_with(addr: &str, config: ClientConfig) -> Session {
    within("join", Session::connect_tcp(addr, config))
        .await
        .expect("join")
}

async fn join(addr: &str, serializer: Serializer) -> Session {
    join_with(
        addr,
        ClientConfig::new("realm1").with_serializer(serializer),
    )
    .await
}

fn ack() -> Dict {
    dict! { "acknowledge" => true }
}

fn args(values: Vec<Value>) -> Payload {
    Payload::args(values)
}

async fn publish(session: &Session, topic: &str, payload: Payload) {
    within("PUBLISHED", session.publish(topic, payload, ack()))
        .await
        .expect("publish acknowledged");
}

async fn subscribe(session: &Session, topic: &str, options: Dict) -> Subscription {
    within("SUBSCRIBED", session.subscribe(topic, options))
        .await
        .expect("subscribe")
}

async fn register(session: &Session, procedure: &str, options: Dict) -> Registration {
    within("REGISTERED", session.register(procedure, options))
        .await
        .expect("register")
}

async fn next_event(subscription: &mut Subscription) -> wampmesh::client::Event {
    within("EVENT", subscription.next())
        .await
        .expect("subscription open")
}

async fn next_invocation(registration: &mut Registration) -> Invocation {
    within("INVOCATION", registration.next())
        .await
        .expect("registration open")
}

/// A round trip through the router on `session`: everything the router sent it before the
/// answer has been read by its client once this returns.
async fn sync(session: &Session) {
    within(
        "wamp.session.count",
        session.call("wamp.session.count", Payload::default(), Dict::new()),
    )
    .await
    .expect("meta call");
}

fn binary_payload(tag: &str) -> Payload {
    let blob: Vec<u8> = (0..=255u8).rev().collect();
    Payload::new(
        vec![
            Value::Bytes(Bytes::from(blob)),
            Value::Bytes(Bytes::from_static(&[0])),
            Value::Bytes(Bytes::new()),
            Value::from(tag),
            Value::from(-3i64),
            Value::Float(1.5),
        ],
        dict! {
            "bin" => Bytes::from_static(b"\x00\xff\x00binary"),
            "nested" => vec![Value::Bytes(Bytes::from_static(&[7, 8, 9]))],
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_across_serializers_keeps_binary_payloads() {
    let (node, addr) = start("").await;
    let mut sessions = Vec::new();
    let mut subscriptions = Vec::new();
    for serializer in Serializer::ALL {
        let session = join(&addr, serializer).await;
        subscriptions.push(subscribe(&session, "com.mixed", Dict::new()).await);
        sessions.push(session);
    }
    for (p, from) in Serializer::ALL.into_iter().enumerate() {
        let payload = binary_payload(from.name());
        publish(&sessions[p], "com.mixed", payload.clone()).await;
        for (s, to) in Serializer::ALL.into_iter().enumerate() {
            if s == p {
                continue; // publisher exclusion is the default
            }
            let event = next_event(&mut subscriptions[s]).await;
            assert_eq!(event.payload, payload, "{} -> {}", from.name(), to.name());
        }
    }
    // The publishers did not get their own events: after a marker from the last session,
    // the first session's next event is the marker, the last session's is the JSON one.
    publish(&sessions[2], "com.mixed", binary_payload("marker")).await;
    let tag = |event: wampmesh::client::Event| event.payload.args.map(|a| a[3].clone());
    assert_eq!(
        tag(next_event(&mut subscriptions[0]).await),
        Some(Value::from("marker"))
    );
    publish(&sessions[0], "com.mixed", binary_payload("marker2")).await;
    assert_eq!(
        tag(next_event(&mut subscriptions[2]).await),
        Some(Value::from("marker2"))
    );
    stop(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_exclusion_can_be_turned_off_and_disclosure_works() {
    let (node, addr) = start("").await;
    let session = join(&addr, Serializer::MsgPack).await;
    let mut subscription = subscribe(&session, "com.self", Dict::new()).await;
    let options = dict! { "acknowledge" => true, "exclude_me" => false, "disclose_me" => true };
    within(
        "PUBLISHED",
        session.publish("com.self", args(vec![1u64.into()]), options),
    )
    .await
    .expect("published");
    let event = next_event(&mut subscription).await;
    assert_eq!(event.payload, args(vec![1u64.into()]));
    assert_eq!(
        event.details.get("publisher"),
        Some(&Value::UInt(session.id().get()))
    );
    assert!(event.details.contains_key("publisher_authid"));
    assert_eq!(
        event.details.get("publisher_authrole"),
        Some(&Value::from("anonymous"))
    );
    stop(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix_and_wildcard_subscriptions_receive_matching_topics() {
    let (node, addr) = start("").await;
    let subscriber = join(&addr, Serializer::Cbor).await;
    let publisher = join(&addr, Serializer::Json).await;
    let mut prefix = subscribe(&subscriber, "com.app.", dict! { "match" => "prefix" }).await;
    let mut wildcard = subscribe(&subscriber, "com..event", dict! { "match" => "wildcard" }).await;
    let mut exact = subscribe(&subscriber, "com.app.event", Dict::new()).await;
    // Only the wildcard matches, then only the prefix, then all three.
    for (n, topic) in ["com.other.event", "com.app.x", "com.app.event"]
        .into_iter()
        .enumerate()
    {
        publish(&publisher, topic, args(vec![Value::UInt(n as u64)])).await;
    }
    let event = next_event(&mut wildcard).await;
    assert_eq!(
        event.details.get("topic"),
        Some(&Value::from("com.other.event"))
    );
    assert_eq!(event.payload, args(vec![Value::UInt(0)]));
    let event = next_event(&mut prefix).await;
    assert_eq!(event.details.get("topic"), Some(&Value::from("com.app.x")));
    assert_eq!(event.payload, args(vec![Value::UInt(1)]));
    let event = next_event(&mut prefix).await;
    assert_eq!(
        event.details.get("topic"),
        Some(&Value::from("com.app.event"))
    );
    let event = next_event(&mut wildcard).await;
    assert_eq!(
        event.details.get("topic"),
        Some(&Value::from("com.app.event"))
    );
    let event = next_event(&mut exact).await;
    assert_eq!(
        event.details.get("topic"),
        None,
        "exact subscriptions carry no topic"
    );
    assert_eq!(event.payload, args(vec![Value::UInt(2)]));
    // Nothing else is queued: a marker on the exact topic is the next event everywhere.
    publish(&publisher, "com.app.event", args(vec![Value::UInt(9)])).await;
    for subscription in [&mut prefix, &mut wildcard, &mut exact] {
        assert_eq!(
            next_event(subscription).await.payload,
            args(vec![Value::UInt(9)])
        );
    }
    stop(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_with_args_and_kwargs_across_serializers() {
    let (node, addr) = start("").await;
    let callee = join(&addr, Serializer::MsgPack).await;
    let mut registration = register(&callee, "com.add", Dict::new()).await;
    for serializer in Serializer::ALL {
        let caller = join(&addr, serializer).await;
        let payload = Payload::new(
            vec![2u64.into(), 3u64.into()],
            dict! { "bin" => Bytes::from_static(&[0, 255]), "who" => serializer.name() },
        );
        let call = caller.call("com.add", payload.clone(), Dict::new());
        let serve = async {
            let invocation = next_invocation(&mut registration).await;
            assert_eq!(invocation.payload, payload);
            assert_eq!(
                invocation.details.get("caller"),
                None,
                "caller not disclosed by default"
            );
            let sum: u64 = invocation
                .payload
                .args
                .iter()
                .flatten()
                .filter_map(Value::as_u64)
                .sum();
            let kwargs = invocation.payload.kwargs.clone().unwrap_or_default();
            invocation
                .result(Payload::new(vec![sum.into()], kwargs))
                .await
                .expect("yield");
        };
        let (result, ()) = within("RESULT", async { tokio::join!(call, serve) }).await;
        let result = result.expect("call succeeds");
        assert_eq!(result.payload.args, Some(vec![Value::UInt(5)]));
        assert_eq!(result.payload.kwargs, payload.kwargs);
    }
    stop(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pattern_registrations_tell_the_callee_the_procedure() {
    let (node, addr) = start("").await;
    let callee = join(&addr, Serializer::Cbor).await;
    let caller = join(&addr, Serializer::Json).await;
    let mut prefix = register(&callee, "com.math.", dict! { "match" => "prefix" }).await;
    let mut wildcard = register(&callee, "com..get", dict! { "match" => "wildcard" }).await;
    let mut exact = register(&callee, "com.math.get", Dict::new()).await;
    // Exact beats prefix beats wildcard.
    let cases: [(&str, &mut Registration, Option<&str>); 3] = [
        ("com.math.add", &mut prefix, Some("com.math.add")),
        ("com.user.get", &mut wildcard, Some("com.user.get")),
        ("com.math.get", &mut exact, None),
    ];
    for (procedure, registration, shown) in cases {
        let call = caller.call(procedure, Payload::default(), Dict::new());
        let serve = async {
            let invocation = next_invocation(registration).await;
            let seen = invocation.details.get("procedure").cloned();
            invocation.result(Payload::default()).await.expect("yield");
            seen
        };
        let (result, seen) = within("RESULT", async { tokio::join!(call, serve) }).await;
        result.expect("call succeeds");
        assert_eq!(seen, shown.map(Value::from), "{procedure}");
    }
    stop(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribed_topics_stop_delivering() {
    let (node, addr) = start("").await;
    let subscriber = join(&addr, Serializer::MsgPack).await;
    let publisher = join(&addr, Serializer::Cbor).await;
    let gone = subscribe(&subscriber, "com.t", Dict::new()).await;
    let mut kept = subscribe(&subscriber, "com.", dict! { "match" => "prefix" }).await;
    within("UNSUBSCRIBED", gone.unsubscribe())
        .await
        .expect("unsubscribed");
    publish(&publisher, "com.t", args(vec![1u64.into()])).await;
    assert_eq!(next_event(&mut kept).await.payload, args(vec![1u64.into()]));
    let count = within(
        "count",
        publisher.call(
            "wamp.subscription.lookup",
            args(vec!["com.t".into()]),
            Dict::new(),
        ),
    )
    .await
    .expect("lookup");
    assert_eq!(
        count.payload.args,
        Some(vec![Value::Null]),
        "the subscription is gone"
    );
    stop(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callee_error_with_args_and_kwargs_reaches_the_caller() {
    let (node, addr) = start("").await;
    let callee = join(&addr, Serializer::Cbor).await;
    let caller = join(&addr, Serializer::Json).await;
    let mut registration = register(&callee, "com.fail", Dict::new()).await;
    let error_payload = Payload::new(
        vec![
            "bad input".into(),
            Value::Bytes(Bytes::from_static(&[1, 2])),
        ],
        dict! { "code" => 42u64 },
    );
    let call = caller.call("com.fail", Payload::default(), Dict::new());
    let serve = async {
        let invocation = next_invocation(&mut registration).await;
        invocation
            .error("com.app.error.invalid", error_payload.clone())
            .await
            .expect("error sent");
    };
    let (result, ()) = within("ERROR", async { tokio::join!(call, serve) }).await;
    match result {
        Err(ClientError::Wamp { error, payload, .. }) => {
            assert_eq!(error, "com.app.error.invalid");
            assert_eq!(payload, error_payload);
        }
        other => panic!("expected ERROR, got {other:?}"),
    }
    // No callee: wamp.error.no_such_procedure.
    let error = within(
        "ERROR",
        caller.call("com.nobody", Payload::default(), Dict::new()),
    )
    .await
    .expect_err("no callee");
    assert_eq!(error.uri(), Some("wamp.error.no_such_procedure"));
    stop(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progressive_results_arrive_in_order_before_the_final_one() {
    let (node, addr) = start("").await;
    let callee = join(&addr, Serializer::Json).await;
    let caller = join(&addr, Serializer::MsgPack).await;
    let mut registration = register(&callee, "com.progress", Dict::new()).await;
    let mut pending = within(
        "CALL sent",
        caller.call_with_progress("com.progress", Payload::default(), Dict::new()),
    )
    .await
    .expect("call sent");
    let invocation = next_invocation(&mut registration).await;
    assert!(invocation.receive_progress());
    for n in 0..3u64 {
        invocation
            .progress(args(vec![n.into()]))
            .await
            .expect("progress");
    }
    invocation
        .result(args(vec!["done".into()]))
        .await
        .expect("result");
    for n in 0..3u64 {
        let result = within("progressive RESULT", pending.next())
            .await
            .expect("a result")
            .expect("not an error");
        assert!(result.is_progress());
        assert_eq!(result.payload, args(vec![n.into()]));
    }
    let last = within("final RESULT", pending.next())
        .await
        .expect("a result")
        .expect("ok");
    assert!(!last.is_progress());
    assert_eq!(last.payload, args(vec!["done".into()]));
    assert!(within("end", pending.next()).await.is_none());
    stop(node).await;
}

/// A caller and a callee of `com.slow`, with one call in flight.
struct CancelFixture {
    caller: Session,
    callee: Session,
    _registration: Registration,
    pending: wampmesh::client::PendingCall,
    invocation: Invocation,
}

impl CancelFixture {
    async fn new(addr: &str) -> CancelFixture {
        let callee = join(addr, Serializer::Cbor).await;
        let caller = join(addr, Serializer::Json).await;
        let mut registration = register(&callee, "com.slow", Dict::new()).await;
        let pending = within(
            "CALL sent",
            caller.call_cancellable("com.slow", Payload::default(), Dict::new()),
        )
        .await
        .expect("call sent");
        let invocation = next_invocation(&mut registration).await;
        CancelFixture {
            caller,
            callee,
            _registration: registration,
            pending,
            invocation,
        }
    }
}

fn expect_canceled(outcome: Option<Result<wampmesh::client::CallResult, ClientError>>) {
    match outcome {
        Some(Err(error)) => assert_eq!(error.uri(), Some("wamp.error.canceled")),
        other => panic!("expected ERROR wamp.error.canceled, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_skip_answers_the_caller_and_leaves_the_callee_alone() {
    let (node, addr) = start("").await;
    let mut f = CancelFixture::new(&addr).await;
    f.pending.cancel("skip").await.expect("cancel sent");
    expect_canceled(within("canceled", f.pending.next()).await);
    // Anything the router sent the callee before this round trip has been read by now.
    sync(&f.callee).await;
    assert_eq!(
        f.invocation.interrupt_mode(),
        None,
        "skip sends no INTERRUPT"
    );
    // The callee's late answer is dropped; both sessions stay healthy.
    f.invocation
        .result(args(vec!["late".into()]))
        .await
        .expect("yield");
    assert!(within("end", f.pending.next()).await.is_none());
    sync(&f.caller).await;
    sync(&f.callee).await;
    stop(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_kill_interrupts_and_waits_for_the_callee() {
    let (node, addr) = start("").await;
    let mut f = CancelFixture::new(&addr).await;
    f.pending.cancel("kill").await.expect("cancel sent");
    within("INTERRUPT", f.invocation.interrupted()).await;
    assert_eq!(f.invocation.interrupt_mode().as_deref(), Some("kill"));
    // The caller has heard nothing yet: kill waits for the callee's answer.
    sync(&f.caller).await;
    assert!(
        f.pending.next().now_or_never().is_none(),
        "kill must wait for the callee"
    );
    f.invocation
        .error("wamp.error.canceled", args(vec!["stopped".into()]))
        .await
        .expect("error sent");
    match within("ERROR", f.pending.next()).await {
        Some(Err(ClientError::Wamp { error, payload, .. })) => {
            assert_eq!(error, "wamp.error.canceled");
            assert_eq!(payload, args(vec!["stopped".into()]));
        }
        other => panic!("expected the callee's ERROR, got {other:?}"),
    }
    stop(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_killnowait_answers_at_once_and_interrupts() {
    let (node, addr) = start("").await;
    let mut f = CancelFixture::new(&addr).await;
    f.pending.cancel("killnowait").await.expect("cancel sent");
    expect_canceled(within("canceled", f.pending.next()).await);
    within("INTERRUPT", f.invocation.interrupted()).await;
    assert_eq!(f.invocation.interrupt_mode().as_deref(), Some("killnowait"));
    stop(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_timeout_answers_wamp_error_timeout() {
    let (node, addr) = start("").await;
    let callee = join(&addr, Serializer::MsgPack).await;
    let caller = join(&addr, Serializer::Cbor).await;
    let mut registration = register(&callee, "com.never", Dict::new()).await;
    let call = caller.call(
        "com.never",
        Payload::default(),
        dict! { "timeout" => 200u64 },
    );
    let serve = async {
        let invocation = next_invocation(&mut registration).await;
        assert_eq!(invocation.details.get("timeout"), Some(&Value::UInt(200)));
        // Never answered: the router gives up and interrupts the callee.
        within("INTERRUPT", invocation.interrupted()).await;
        assert_eq!(invocation.interrupt_mode().as_deref(), Some("killnowait"));
        invocation
    };
    let (result, _invocation) = within("timeout", async { tokio::join!(call, serve) }).await;
    assert_eq!(
        result.expect_err("timed out").uri(),
        Some("wamp.error.timeout")
    );
    stop(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_identification() {
    let (node, addr) = start("").await;
    let callee = join(&addr, Serializer::Json).await;
    let caller = join(&addr, Serializer::MsgPack).await;
    let mut plain = register(&callee, "com.who", Dict::new()).await;
    let mut disclosing = register(
        &callee,
        "com.who.always",
        dict! { "disclose_caller" => true },
    )
    .await;
    let cases = [
        ("com.who", dict! { "disclose_me" => true }, true),
        ("com.who", Dict::new(), false),
        ("com.who.always", Dict::new(), true),
    ];
    for (procedure, options, disclosed) in cases {
        let registration = if procedure == "com.who" {
            &mut plain
        } else {
            &mut disclosing
        };
        let call = caller.call(procedure, Payload::default(), options);
        let serve = async {
            let invocation = next_invocation(registration).await;
            let details = invocation.details.clone();
            invocation.result(Payload::default()).await.expect("yield");
            details
        };
        let (result, details) = within("RESULT", async { tokio::join!(call, serve) }).await;
        result.expect("call succeeds");
        let expected = disclosed.then(|| Value::UInt(caller.id().get()));
        assert_eq!(details.get("caller").cloned(), expected, "{procedure}");
        if disclosed {
            assert_eq!(
                details.get("caller_authrole"),
                Some(&Value::from("anonymous"))
            );
        }
    }
    stop(node).await;
}

/// Joins `n` callees registering `procedure` with `invoke`, in order; each answers with its
/// index for as long as the test runs.
async fn shared_callees(addr: &str, procedure: &str, invoke: &str, n: usize) -> Vec<Session> {
    let mut sessions = Vec::new();
    for index in 0..n {
        let session = join(addr, Serializer::ALL[index % 3]).await;
        let options = dict! { "invoke" => invoke };
        let mut registration = register(&session, procedure, options).await;
        tokio::spawn(async move {
            while let Some(invocation) = registration.next().await {
                let _ = invocation
                    .result(args(vec![Value::UInt(index as u64)]))
                    .await;
            }
        });
        sessions.push(session);
    }
    sessions
}

async fn who_answers(caller: &Session, procedure: &str, calls: usize) -> Vec<u64> {
    let mut answers = Vec::new();
    for _ in 0..calls {
        let result = within(
            "RESULT",
            caller.call(procedure, Payload::default(), Dict::new()),
        )
        .await
        .expect("call succeeds");
        let index = result
            .payload
            .args
            .as_ref()
            .and_then(|a| a.first())
            .and_then(Value::as_u64);
        answers.push(index.expect("callee index"));
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_registrations_pick_callees_by_policy() {
    let (node, addr) = start("").await;
    let caller = join(&addr, Serializer::Json).await;

    let _rr = shared_callees(&addr, "com.rr", "roundrobin", 2).await;
    let answers = who_answers(&caller, "com.rr", 10).await;
    assert!(
        answers.windows(2).all(|w| w[0] != w[1]),
        "roundrobin alternates: {answers:?}"
    );

    let _first = shared_callees(&addr, "com.first", "first", 3).await;
    assert_eq!(who_answers(&caller, "com.first", 5).await, vec![0; 5]);

    let _last = shared_callees(&addr, "com.last", "last", 3).await;
    assert_eq!(who_answers(&caller, "com.last", 5).await, vec![2; 5]);

    let _random = shared_callees(&addr, "com.random", "random", 2).await;
    let hit: HashSet<u64> = who_answers(&caller, "com.random", 50)
        .await
        .into_iter()
        .collect();
    assert_eq!(
        hit,
        HashSet::from([0, 1]),
        "random reaches both callees in 50 calls"
    );

    let _single = shared_callees(&addr, "com.single", "single", 1).await;
    let other = join(&addr, Serializer::Cbor).await;
    for options in [
        Dict::new(),
        dict! { "invoke" => "single" },
        dict! { "invoke" => "roundrobin" },
    ] {
        let error = within("ERROR", other.register("com.single", options))
            .await
            .expect_err("procedure taken");
        assert_eq!(error.uri(), Some("wamp.error.procedure_already_exists"));
    }
    stop(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_procedures_over_the_wire() {
    let (node, addr) = start("").await;
    let mut sessions = Vec::new();
    for serializer in Serializer::ALL {
        sessions.push(join(&addr, serializer).await);
    }
    for session in &sessions {
        let count = within(
            "count",
            session.call("wamp.session.count", Payload::default(), Dict::new()),
        )
        .await
        .expect("wamp.session.count");
        assert_eq!(count.payload.args, Some(vec![Value::UInt(3)]));
        let list = within(
            "list",
            session.call("wamp.session.list", Payload::default(), Dict::new()),
        )
        .await
        .expect("wamp.session.list");
        let ids: HashSet<u64> = list
            .payload
            .args
            .as_ref()
            .and_then(|a| a.first())
            .and_then(Value::as_list)
            .into_iter()
            .flatten()
            .filter_map(Value::as_u64)
            .collect();
        let expected: HashSet<u64> = sessions.iter().map(|s| s.id().get()).collect();
        assert_eq!(ids, expected);
    }
    let error = within(
        "get",
        sessions[0].call("wamp.session.get", args(vec![Value::UInt(1)]), Dict::new()),
    )
    .await
    .expect_err("no such session");
    assert_eq!(error.uri(), Some("wamp.error.no_such_session"));
    // Meta procedures cannot be registered by clients.
    let error = within(
        "register",
        sessions[0].register("wamp.session.count", Dict::new()),
    )
    .await
    .expect_err("reserved");
    assert_eq!(error.uri(), Some("wamp.error.invalid_uri"));
    stop(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_left_is_gone_once_its_goodbye_is_answered() {
    let (node, addr) = start("").await;
    let staying = join(&addr, Serializer::Json).await;
    for round in 0..1000 {
        let leaving = join(&addr, Serializer::MsgPack).await;
        within("GOODBYE", leaving.leave("wamp.close.normal"))
            .await
            .expect("left");
        let count = within(
            "count",
            staying.call("wamp.session.count", Payload::default(), Dict::new()),
        )
        .await
        .expect("wamp.session.count");
        assert_eq!(
            count.payload.args,
            Some(vec![Value::UInt(1)]),
            "round {round}"
        );
    }
    stop(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn welcome_announces_exactly_the_router_roles() {
    let (node, addr) = start("").await;
    let expected = Value::Dict(wampmesh::session::router_roles());
    for serializer in Serializer::ALL {
        let session = join(&addr, serializer).await;
        assert_eq!(
            session.details().get("roles"),
            Some(&expected),
            "{}",
            serializer.name()
        );
        assert_eq!(
            session.details().get("authrole"),
            Some(&Value::from("anonymous"))
        );
        assert_eq!(
            session.details().get("authmethod"),
            Some(&Value::from("anonymous"))
        );
    }
    stop(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_reading_does_not_stall_the_others() {
    const QUEUE: usize = 64;
    const WINDOW: usize = QUEUE / 2;
    const EVENTS: usize = 20_000;
    let (node, addr) = start(&format!(
        "[limits]\noutbound_queue = {QUEUE}\nslow_consumer = \"drop\""
    ))
    .await;
    // The stalled subscriber takes nothing from its 1-event queue, so its client stops reading
    // the socket; with 1 KiB events the kernel buffers fill and the router's queue for it too.
    let stalled = join_with(
        &addr,
        ClientConfig::new("realm1")
            .with_serializer(Serializer::MsgPack)
            .with_queue_capacity(1),
    )
    .await;
    let mut stalled_subscription = subscribe(&stalled, "com.flood", Dict::new()).await;
    let healthy = join(&addr, Serializer::Cbor).await;
    let mut subscription = subscribe(&healthy, "com.flood", Dict::new()).await;
    let publisher = join(&addr, Serializer::Json).await;
    let filler = Value::Str("x".repeat(1024));
    let mut next = 0u64;
    // Windows smaller than the healthy session's queue: the healthy subscriber is never the
    // slow one, so it must see every event, in order, however far the stalled one falls behind.
    for window_start in (0..EVENTS).step_by(WINDOW) {
        let window_end = (window_start + WINDOW).min(EVENTS);
        for n in window_start..window_end {
            let payload = args(vec![Value::UInt(n as u64), filler.clone()]);
            within(
                "publish",
                publisher.publish("com.flood", payload, Dict::new()),
            )
            .await
            .expect("publish queued");
        }
        while next < window_end as u64 {
            let event = next_event(&mut subscription).await;
            let n = event
                .payload
                .args
                .as_ref()
                .and_then(|a| a.first())
                .and_then(Value::as_u64);
            assert_eq!(n, Some(next), "events arrive complete and in order");
            next += 1;
        }
    }
    assert_eq!(next, EVENTS as u64);
    // Under the drop policy the stalled session is still there, and nothing else stalled.
    assert!(!stalled.is_closed());
    sync(&publisher).await;
    sync(&healthy).await;
    // Once it reads again it gets what was not dropped for it, in order, with gaps: proof
    // that it really fell behind. (The idle timeout only ends the drain.)
    let mut received = 0usize;
    let mut last = None;
    while let Ok(Some(event)) =
        timeout(Duration::from_millis(500), stalled_subscription.next()).await
    {
        let n = event
            .payload
            .args
            .as_ref()
            .and_then(|a| a.first())
            .and_then(Value::as_u64);
        let n = n.expect("event number");
        assert!(last.is_none_or(|l| n > l), "in order: {n} after {last:?}");
        last = Some(n);
        received += 1;
    }
    assert!(received > 0, "the stalled subscriber was not cut off");
    assert!(
        received < EVENTS,
        "the stalled subscriber lost events ({received} of {EVENTS})"
    );
    stop(node).await;
}
