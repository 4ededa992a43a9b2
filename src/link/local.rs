//! A realm link's session on its own node's realm, attached to the realm task directly: the
//! realm's deliveries arrive as messages in the session's bounded queue and the link's
//! messages go to the realm as commands. No byte stream, no serialization, no router session
//! task and no client task between the link and its local realm; the realm sees an ordinary
//! session with role `rlink` (attached to the link channel and the invoke procedure at join),
//! so routing, authorization, meta events and the slow-consumer policy apply to it as before.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::client::{CallResult, ClientError};
use crate::metrics::{Metrics, SessionGauge};
use crate::router::mesh::{CHANNEL_ID, CHANNEL_TOPIC, INVOKE_ID, LINK_ROLE, MESH_KEY};
use crate::router::task::{RealmCommand, RealmHandle, SessionOutbound};
use crate::router::types::Features;
use crate::router::SessionInfo;
use crate::session::SessionContext;
use crate::wamp::uri::reason;
use crate::wamp::{code, Dict, Id, Message, Payload, SessionId, SharedMessage, Value};

/// Results of one call the link placed into the local realm, in order.
const CALL_RESULTS: usize = 64;

/// What the local realm has for the link.
pub enum FromRealm {
    /// A link channel EVENT: an advertisement or a publication to forward.
    Channel { details: Dict, payload: Payload },
    /// An INVOCATION of the invoke procedure: a call routed through the link.
    Invocation(LocalInvocation),
    /// The session is over (realm stopped, or the realm closed it as a slow consumer).
    Ended(String),
}

/// The link's session on the local realm.
pub struct LocalSide {
    shared: Arc<Shared>,
    outbound: mpsc::Receiver<Arc<SharedMessage>>,
    kill: CancellationToken,
    /// A RESULT for a call whose queue was full, delivered before anything else is taken.
    parked: Option<(CallSender, Result<CallResult, ClientError>)>,
    metrics: Arc<Metrics>,
    left: bool,
    _gauge: SessionGauge,
}

type CallSender = mpsc::Sender<Result<CallResult, ClientError>>;

/// What calls and invocations in flight share with the side.
struct Shared {
    realm: RealmHandle,
    session: SessionId,
    /// Request ids of the link's PUBLISH and CALL messages (session scope).
    requests: AtomicU64,
    /// Calls placed into the realm, by request id.
    calls: Mutex<HashMap<u64, CallSender>>,
    /// Invocations from the realm not yet answered, by request id: where an INTERRUPT goes.
    interrupts: Mutex<HashMap<u64, oneshot::Sender<String>>>,
}

impl Shared {
    async fn send(&self, message: Message) -> Result<(), ClientError> {
        let session = self.session;
        self.realm
            .send(RealmCommand::Message { session, message })
            .await
            .map_err(|_| ClientError::Closed)
    }

    fn next_request(&self) -> Id {
        let n = self.requests.fetch_add(1, Ordering::Relaxed) % crate::wamp::id::MAX_ID + 1;
        Id::new(n).expect("1..=MAX_ID")
    }
}

impl LocalSide {
    /// Joins `realm` of this node as the link session for `peer` (authid = `peer`, role
    /// `rlink`, attached to the link channel and the invoke procedure at join).
    pub async fn join(ctx: &SessionContext, realm: &str, peer: &str) -> Result<LocalSide, String> {
        let handle = ctx
            .realms
            .get(realm)
            .ok_or_else(|| format!("no realm {realm:?} on this node"))?;
        let session = Id::random();
        let info = SessionInfo {
            id: session,
            authid: peer.to_owned(),
            authrole: LINK_ROLE.to_owned(),
            authmethod: "trusted".into(),
            authprovider: "node".into(),
            features: Features {
                callee_call_canceling: true,
                callee_progressive_call_results: true,
            },
            transport: crate::dict! { "type" => "local", "protocol" => "link" },
            attach_link: true,
        };
        let (queue, outbound) = mpsc::channel(ctx.settings.outbound_queue);
        let kill = CancellationToken::new();
        let link = SessionOutbound {
            queue,
            kill: kill.clone(),
            dropped: ctx.metrics.events_dropped(),
        };
        match handle.join(info, link).await {
            Err(_) => return Err("realm stopped".into()),
            Ok(Err(e)) => return Err(e.to_string()),
            Ok(Ok(())) => {}
        }
        tracing::debug!(%session, realm, peer, "link session joined its local realm");
        Ok(LocalSide {
            shared: Arc::new(Shared {
                realm: handle,
                session,
                requests: AtomicU64::new(0),
                calls: Mutex::default(),
                interrupts: Mutex::default(),
            }),
            outbound,
            kill,
            parked: None,
            metrics: Arc::clone(&ctx.metrics),
            left: false,
            _gauge: ctx.metrics.session_joined(realm),
        })
    }

    /// The next thing the link must carry; answers to the link's own calls and INTERRUPTs
    /// are routed to their call or invocation on the way. Cancel-safe.
    pub async fn next(&mut self) -> FromRealm {
        loop {
            if let Some((sender, _)) = &self.parked {
                let sender = sender.clone();
                // Cancel-safe: the answer stays parked until there is room for it.
                let reserved = sender.reserve().await;
                match reserved {
                    Ok(permit) => {
                        if let Some((_, answer)) = self.parked.take() {
                            permit.send(answer);
                        }
                    }
                    Err(_) => self.parked = None, // the call is gone
                }
            }
            let shared = tokio::select! {
                _ = self.kill.cancelled() => {
                    self.metrics.slow_consumer_closed();
                    return FromRealm::Ended("closed by the realm: outbound queue overflowed".into());
                }
                shared = self.outbound.recv() => match shared {
                    Some(shared) => shared,
                    None => return FromRealm::Ended("local realm stopped".into()),
                },
            };
            let message = Arc::try_unwrap(shared).map_or_else(
                |shared| shared.message().clone(),
                SharedMessage::into_message,
            );
            match message {
                Message::Event {
                    subscription,
                    details,
                    payload,
                    ..
                } if subscription.get() == CHANNEL_ID => {
                    return FromRealm::Channel { details, payload };
                }
                Message::Invocation {
                    request,
                    registration,
                    details,
                    payload,
                } if registration.get() == INVOKE_ID => {
                    let (interrupt, interrupted) = oneshot::channel();
                    self.interrupts().insert(request.get(), interrupt);
                    return FromRealm::Invocation(LocalInvocation {
                        shared: Arc::clone(&self.shared),
                        request,
                        details,
                        payload,
                        interrupted: Some(interrupted),
                        answered: false,
                    });
                }
                Message::Interrupt { request, options } => {
                    if let Some(interrupt) = self.interrupts().remove(&request.get()) {
                        let mode = options.get("mode").and_then(Value::as_str);
                        let _ = interrupt.send(mode.unwrap_or("killnowait").to_owned());
                    }
                }
                Message::Result {
                    request,
                    details,
                    payload,
                } => {
                    let result = CallResult { details, payload };
                    self.answer_call(request, Ok(result));
                }
                Message::Error {
                    request_type: code::CALL,
                    request,
                    details,
                    error,
                    payload,
                } => {
                    let error = ClientError::Wamp {
                        error,
                        details,
                        payload,
                    };
                    self.answer_call(request, Err(error));
                }
                // PUBLISHED and other answers the link does not wait for.
                _ => {}
            }
        }
    }

    fn interrupts(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<String>>> {
        self.shared
            .interrupts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Hands a RESULT or ERROR to its call (a final one ends the call). A call whose queue is
    /// full gets it parked: `next` then delivers it before it takes anything else, so the link
    /// stops taking from the realm, whose queue for this session is bounded (backpressure, as
    /// for any session that does not keep up).
    fn answer_call(&mut self, request: Id, answer: Result<CallResult, ClientError>) {
        let last = answer.as_ref().map_or(true, |r| !r.is_progress());
        let sender = {
            let mut calls = self.shared.calls.lock().unwrap_or_else(|p| p.into_inner());
            if last {
                calls.remove(&request.get())
            } else {
                calls.get(&request.get()).cloned()
            }
        };
        let Some(sender) = sender else { return };
        if let Err(mpsc::error::TrySendError::Full(answer)) = sender.try_send(answer) {
            self.parked = Some((sender, answer));
        }
    }

    /// A handle that places calls into the local realm.
    pub fn caller(&self) -> LocalCaller {
        LocalCaller(Arc::clone(&self.shared))
    }

    /// Publishes a link channel message (`_wampmesh` = `body`) into the local realm.
    pub async fn publish_channel(&self, body: Value, payload: Payload) -> Result<(), ClientError> {
        let message = Message::Publish {
            request: self.shared.next_request(),
            options: crate::dict! { MESH_KEY => body },
            topic: CHANNEL_TOPIC.to_owned(),
            payload,
        };
        self.shared.send(message).await
    }

    /// Leaves the realm: it forgets the link (calls routed through it get an error) and the
    /// link's own calls in flight end with `Closed`.
    pub async fn leave(mut self) {
        self.left = true;
        let session = self.shared.session;
        let _ = self
            .shared
            .realm
            .send(RealmCommand::Leave { session })
            .await;
        self.shared
            .calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

impl Drop for LocalSide {
    /// Dropped without `leave` (the peer side failed to join): leave from a task.
    fn drop(&mut self) {
        if self.left {
            return;
        }
        let (realm, session) = (self.shared.realm.clone(), self.shared.session);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { realm.send(RealmCommand::Leave { session }).await });
        }
    }
}

/// Places calls into the local realm (for invocations that arrive from the peer).
#[derive(Clone)]
pub struct LocalCaller(Arc<Shared>);

impl LocalCaller {
    /// Sends CALL; results come from [`LocalCall::next`].
    pub async fn call(
        &self,
        procedure: &str,
        payload: Payload,
        options: Dict,
    ) -> Result<LocalCall, ClientError> {
        let request = self.0.next_request();
        let (tx, results) = mpsc::channel(CALL_RESULTS);
        self.0
            .calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(request.get(), tx);
        let message = Message::Call {
            request,
            options,
            procedure: procedure.to_owned(),
            payload,
        };
        if let Err(e) = self.0.send(message).await {
            self.0
                .calls
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&request.get());
            return Err(e);
        }
        Ok(LocalCall {
            shared: Arc::clone(&self.0),
            request,
            results,
        })
    }
}

/// A call the link placed into the local realm.
pub struct LocalCall {
    shared: Arc<Shared>,
    request: Id,
    results: mpsc::Receiver<Result<CallResult, ClientError>>,
}

impl LocalCall {
    /// The next result (progressive ones first), the final result or error, then `None`; also
    /// `None` if the session left first.
    pub async fn next(&mut self) -> Option<Result<CallResult, ClientError>> {
        self.results.recv().await
    }

    /// Sends CANCEL with `mode`.
    pub async fn cancel(&self, mode: &str) -> Result<(), ClientError> {
        let message = Message::Cancel {
            request: self.request,
            options: crate::dict! { "mode" => mode },
        };
        self.shared.send(message).await
    }
}

impl Drop for LocalCall {
    fn drop(&mut self) {
        self.shared
            .calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.request.get());
    }
}

/// An INVOCATION from the local realm the link must answer.
pub struct LocalInvocation {
    shared: Arc<Shared>,
    request: Id,
    pub details: Dict,
    pub payload: Payload,
    interrupted: Option<oneshot::Receiver<String>>,
    answered: bool,
}

impl LocalInvocation {
    async fn answer(&mut self, message: Message) -> Result<(), ClientError> {
        self.answered = true;
        self.forget();
        self.shared.send(message).await
    }

    fn forget(&self) {
        self.shared
            .interrupts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.request.get());
    }

    /// Sends a progressive result (YIELD with `progress: true`).
    pub async fn progress(&self, payload: Payload) -> Result<(), ClientError> {
        let message = Message::Yield {
            request: self.request,
            options: crate::dict! { "progress" => true },
            payload,
        };
        self.shared.send(message).await
    }

    /// Sends the final result.
    pub async fn result(mut self, payload: Payload) -> Result<(), ClientError> {
        let message = Message::Yield {
            request: self.request,
            options: Dict::new(),
            payload,
        };
        self.answer(message).await
    }

    /// Answers with ERROR `error`.
    pub async fn error(mut self, error: &str, payload: Payload) -> Result<(), ClientError> {
        let message = Message::Error {
            request_type: code::INVOCATION,
            request: self.request,
            details: Dict::new(),
            error: error.to_owned(),
            payload,
        };
        self.answer(message).await
    }

    /// Resolves with the mode when the realm sends INTERRUPT (the caller canceled); never
    /// resolves otherwise. Cancel-safe, and resolves once.
    pub async fn interrupted(&mut self) -> String {
        match self.interrupted.as_mut() {
            Some(rx) => match rx.await {
                Ok(mode) => {
                    self.interrupted = None;
                    mode
                }
                // The side is gone; its leaving answers the caller.
                Err(_) => {
                    self.interrupted = None;
                    std::future::pending().await
                }
            },
            None => std::future::pending().await,
        }
    }
}

impl Drop for LocalInvocation {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        self.forget();
        // Never leave the caller hanging: answer from a task (Drop cannot wait).
        let shared = Arc::clone(&self.shared);
        let message = Message::Error {
            request_type: code::INVOCATION,
            request: self.request,
            details: Dict::new(),
            error: reason::CANCELED.into(),
            payload: Payload::default(),
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { shared.send(message).await });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use super::*;
    use crate::config::{LimitsConfig, RealmConfig, SlowConsumerPolicy};
    use crate::router::authorize::Authorizer;
    use crate::router::mesh::{Advertisement, Interest};
    use crate::router::realm::Realm;
    use crate::router::task::spawn_realm;
    use crate::router::RealmRegistry;
    use crate::session::ListenerSettings;
    use crate::wamp::uri::MatchPolicy;

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
        outbound: mpsc::Receiver<Arc<SharedMessage>>,
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
                transport: Dict::new(),
                attach_link: false,
            };
            let (queue, outbound) = mpsc::channel(64);
            let link = SessionOutbound {
                queue,
                kill: CancellationToken::new(),
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
    async fn advertise(side: &LocalSide, procedure: &str) {
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
        advertise(&side, "com.example.remote").await;
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
        advertise(&side, "com.example.slow").await;
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
        let side = LocalSide::join(&ctx, "realm1", "b").await.unwrap();
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
}
