//! Unit tests of the link's local side against a real realm task.

use std::collections::BTreeSet;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::config::{LimitsConfig, RealmConfig, SlowConsumerPolicy};
use crate::router::authorize::Authorizer;
use crate::router::mesh::{Advertisement, Interest};
use crate::router::realm::Realm;
use crate::router::task::{spawn_realm, RealmHandle};
use crate::router::RealmRegistry;
use crate::session::ListenerSettings;
use crate::wamp::uri::{reason, MatchPolicy};
use crate::wamp::SessionId;

const WAIT: Duration = Duration::from_secs(5);

/// Node "a" with realm1, as a link would find it.
fn node() -> (SessionContext, tokio_util::task::TaskTracker) {
    let tracker = tokio_util::task::TaskTracker::new();
    let realms = RealmRegistry::default();
    let authorizer = Authorizer::from_config(&RealmConfig::open("realm1"));
    let realm = Realm::on_node("realm1", authorizer, "a", 1);
    let cancel = CancellationToken::new();
    realms.insert(spawn_realm(
        realm,
        SlowConsumerPolicy::Drop,
        &tracker,
        cancel,
    ));
    let ctx = SessionContext {
        settings: Arc::new(ListenerSettings::trusted(64)),
        realms,
        shutdown: CancellationToken::new(),
        admission: Arc::new(crate::transport::admission::Admission::from_config(
            &LimitsConfig::default(),
        )),
        metrics: Arc::default(),
    };
    (ctx, tracker)
}

/// A plain session on realm1 driven by raw messages.
struct Raw {
    id: SessionId,
    realm: RealmHandle,
    outbound: crate::queue::Receiver<Arc<SharedMessage>>,
}

impl Raw {
    async fn join(ctx: &SessionContext) -> Raw {
        let realm = ctx.realms.get("realm1").unwrap();
        let id = Id::random();
        let info = SessionInfo {
            id,
            authid: "client".into(),
            authrole: "anonymous".into(),
            authmethod: "anonymous".into(),
            authprovider: "static".into(),
            features: Features {
                callee_call_canceling: true,
                callee_progressive_call_results: true,
            },
            transport: Default::default(),
            attach_link: false,
        };
        let (queue, outbound) = crate::queue::bounded(64);
        let link = SessionOutbound {
            queue,
            dropped: Arc::default(),
        };
        realm.join(info, link).await.unwrap().unwrap();
        Raw {
            id,
            realm,
            outbound,
        }
    }

    async fn send(&self, message: Message) {
        let session = self.id;
        let command = RealmCommand::Message { session, message };
        self.realm.send(command).await.unwrap();
    }

    async fn next(&mut self) -> Message {
        let shared = tokio::time::timeout(WAIT, self.outbound.recv()).await;
        shared
            .expect("a message in time")
            .expect("open")
            .message()
            .clone()
    }
}

fn id(n: u64) -> Id {
    Id::new(n).unwrap()
}

/// The link advertises that node b has a callee for `procedure`.
async fn advertise(side: &mut LocalSide, procedure: &str) {
    let interest = Interest {
        uri: procedure.to_owned(),
        policy: MatchPolicy::Exact,
        invoke: Some("single".into()),
    };
    let ad = Advertisement {
        origin: "b".into(),
        epoch: 1,
        seq: 1,
        interest: BTreeSet::from([interest]),
    };
    let body = Value::Dict(ad.to_dict(1));
    side.publish_channel(body, Payload::default())
        .await
        .unwrap();
}

async fn next_invocation(side: &mut LocalSide) -> LocalInvocation {
    loop {
        match tokio::time::timeout(WAIT, side.next())
            .await
            .expect("in time")
        {
            FromRealm::Invocation(invocation) => return invocation,
            FromRealm::Channel { .. } => continue, // the realm's own advertisements
            FromRealm::Ended(why) => panic!("ended: {why}"),
        }
    }
}

#[tokio::test]
async fn a_call_routed_through_the_link_gets_progress_and_its_result() {
    let (ctx, _tracker) = node();
    let mut side = LocalSide::join(&ctx, "realm1", "b").await.unwrap();
    advertise(&mut side, "com.example.remote").await;
    let mut caller = Raw::join(&ctx).await;
    caller
        .send(Message::Call {
            request: id(7),
            options: crate::dict! { "receive_progress" => true },
            procedure: "com.example.remote".into(),
            payload: Payload::args(vec![1u64.into()]),
        })
        .await;
    let invocation = next_invocation(&mut side).await;
    assert_eq!(
        invocation.details.get("procedure").and_then(Value::as_str),
        Some("com.example.remote")
    );
    assert_eq!(invocation.payload, Payload::args(vec![1u64.into()]));
    invocation
        .progress(Payload::args(vec![2u64.into()]))
        .await
        .unwrap();
    invocation
        .result(Payload::args(vec![3u64.into()]))
        .await
        .unwrap();
    let Message::Result {
        request,
        details,
        payload,
    } = caller.next().await
    else {
        panic!("progressive RESULT expected");
    };
    assert_eq!(
        (request, details.get("progress")),
        (id(7), Some(&Value::Bool(true)))
    );
    assert_eq!(payload, Payload::args(vec![2u64.into()]));
    let Message::Result {
        details, payload, ..
    } = caller.next().await
    else {
        panic!("final RESULT expected");
    };
    assert!(!details.contains_key("progress"));
    assert_eq!(payload, Payload::args(vec![3u64.into()]));
}

#[tokio::test]
async fn a_canceled_caller_interrupts_the_link_and_a_dropped_invocation_still_answers() {
    let (ctx, _tracker) = node();
    let mut side = LocalSide::join(&ctx, "realm1", "b").await.unwrap();
    advertise(&mut side, "com.example.slow").await;
    let mut caller = Raw::join(&ctx).await;
    let call = |request| Message::Call {
        request: id(request),
        options: Dict::new(),
        procedure: "com.example.slow".into(),
        payload: Payload::default(),
    };
    caller.send(call(1)).await;
    let mut invocation = next_invocation(&mut side).await;
    let cancel = crate::dict! { "mode" => "kill" };
    caller
        .send(Message::Cancel {
            request: id(1),
            options: cancel,
        })
        .await;
    // The INTERRUPT arrives through `next`, which the shuttle keeps polling.
    let mode = loop {
        tokio::select! {
            mode = invocation.interrupted() => break mode,
            from = side.next() => assert!(matches!(from, FromRealm::Channel { .. })),
        }
    };
    assert_eq!(mode, "kill");
    invocation
        .error(reason::CANCELED, Payload::default())
        .await
        .unwrap();
    let Message::Error { request, error, .. } = caller.next().await else {
        panic!("ERROR expected");
    };
    assert_eq!((request, error.as_str()), (id(1), reason::CANCELED));

    caller.send(call(2)).await;
    drop(next_invocation(&mut side).await);
    let Message::Error { request, error, .. } = caller.next().await else {
        panic!("ERROR expected for the dropped invocation");
    };
    assert_eq!((request, error.as_str()), (id(2), reason::CANCELED));
}

#[tokio::test]
async fn the_link_calls_into_its_realm_and_leaving_forgets_it() {
    let (ctx, _tracker) = node();
    let mut side = LocalSide::join(&ctx, "realm1", "b").await.unwrap();
    let mut callee = Raw::join(&ctx).await;
    callee
        .send(Message::Register {
            request: id(1),
            options: Dict::new(),
            procedure: "com.example.local".into(),
        })
        .await;
    let Message::Registered { .. } = callee.next().await else {
        panic!("REGISTERED expected");
    };
    let mut call = side
        .caller()
        .call(
            "com.example.local",
            Payload::args(vec![5u64.into()]),
            Dict::new(),
        )
        .await
        .unwrap();
    let Message::Invocation {
        request, payload, ..
    } = callee.next().await
    else {
        panic!("INVOCATION expected");
    };
    assert_eq!(payload, Payload::args(vec![5u64.into()]));
    let answer = Payload::args(vec![6u64.into()]);
    callee
        .send(Message::Yield {
            request,
            options: Dict::new(),
            payload: answer.clone(),
        })
        .await;
    // Results reach the call through the side's `next`, as in the shuttle's loop (which also
    // carries the realm's advertisements, here that b's node now has a callee).
    let mut side = side;
    let result = loop {
        tokio::select! {
            result = call.next() => break result,
            from = side.next() => assert!(matches!(from, FromRealm::Channel { .. })),
        }
    };
    assert_eq!(result.unwrap().unwrap().payload, answer);
    let scrape = crate::metrics::Scrape {
        metrics: ctx.metrics.clone(),
        realms: ctx.realms.clone(),
        links: None,
        admission: ctx.admission.clone(),
    };
    let sessions = |n: u32| format!("wampmesh_sessions{{realm=\"realm1\"}} {n}");
    assert!(scrape.render().contains(&sessions(1)), "the link counts");
    side.leave().await;
    assert!(scrape.render().contains(&sessions(0)), "and is gone");
}
