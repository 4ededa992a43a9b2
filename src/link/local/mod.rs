//! A realm link's session on its own node's realm, attached to the realm task directly: the
//! realm's deliveries arrive as messages in the session's bounded queue and the link's
//! messages go to the realm as commands. No byte stream, no serialization, no router session
//! task and no client task between the link and its local realm; the realm sees an ordinary
//! session with role `rlink` (attached to the link channel and the invoke procedure at join),
//! so routing, authorization, meta events and the slow-consumer policy apply to it as before.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{mpsc, oneshot};

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

/// The transport facts of every link session on its local realm, shared by all of them.
fn link_transport() -> Arc<Dict> {
    static TRANSPORT: std::sync::LazyLock<Arc<Dict>> = std::sync::LazyLock::new(|| {
        Arc::new(crate::dict! { "type" => "local", "protocol" => "link" })
    });
    Arc::clone(&TRANSPORT)
}

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
    /// Killed by the realm when it closes the link session as a slow consumer.
    outbound: crate::queue::Receiver<Arc<SharedMessage>>,
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

    fn calls(&self) -> MutexGuard<'_, HashMap<u64, CallSender>> {
        self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn interrupts(&self) -> MutexGuard<'_, HashMap<u64, oneshot::Sender<String>>> {
        self.interrupts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
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
            transport: link_transport().into(),
            attach_link: true,
        };
        let (queue, outbound) = crate::queue::bounded(ctx.settings.outbound_queue);
        let link = SessionOutbound {
            queue,
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
                // Cancel-safe: the answer stays parked until there is room for it. Boxed: rare,
                // and inline it would size the task of every idle link.
                let reserved = Box::pin(sender.reserve()).await;
                match reserved {
                    Ok(permit) => {
                        if let Some((_, answer)) = self.parked.take() {
                            permit.send(answer);
                        }
                    }
                    Err(_) => self.parked = None, // the call is gone
                }
            }
            let Some(shared) = self.outbound.recv().await else {
                if self.outbound.is_killed() {
                    self.metrics.slow_consumer_closed();
                    return FromRealm::Ended(
                        "closed by the realm: outbound queue overflowed".into(),
                    );
                }
                return FromRealm::Ended("local realm stopped".into());
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
                    self.shared.interrupts().insert(request.get(), interrupt);
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
                    if let Some(interrupt) = self.shared.interrupts().remove(&request.get()) {
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

    /// Hands a RESULT or ERROR to its call (a final one ends the call). A call whose queue is
    /// full gets it parked: `next` then delivers it before it takes anything else, so the link
    /// stops taking from the realm, whose queue for this session is bounded (backpressure, as
    /// for any session that does not keep up).
    fn answer_call(&mut self, request: Id, answer: Result<CallResult, ClientError>) {
        let last = answer.as_ref().map_or(true, |r| !r.is_progress());
        let sender = {
            let mut calls = self.shared.calls();
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
        self.shared.calls().clear();
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
        self.0.calls().insert(request.get(), tx);
        // Made before sending: if the CALL cannot be sent, dropping it forgets the call.
        let call = LocalCall {
            shared: Arc::clone(&self.0),
            request,
            results,
        };
        let message = Message::Call {
            request,
            options,
            procedure: procedure.to_owned(),
            payload,
        };
        self.0.send(message).await?;
        Ok(call)
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
        self.shared.calls().remove(&self.request.get());
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
        self.shared.interrupts().remove(&self.request.get());
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
mod tests;
