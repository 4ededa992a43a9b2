//! Calls and invocations that cross a realm link, the same on both of its sides.
//!
//! A side places CALLs for invocations that arrive from the other side ([`LinkCaller`],
//! [`LinkCall`]) and answers the INVOCATIONs its realm routes through the link
//! ([`LinkInvocation`]). What differs between the sides is only where their messages go, the
//! [`Outlet`]: the local realm's task for the link's session there ([`RealmOutlet`]), the link's
//! own task, which writes them to the peer's stream, for the session on the peer's realm (a
//! [`crate::queue::Sender`]).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{mpsc, oneshot};

use crate::client::{CallResult, ClientError};
use crate::router::task::{RealmCommand, RealmHandle};
use crate::wamp::uri::reason;
use crate::wamp::{code, Dict, Id, Message, Payload, SessionId, Value};

/// A PUBLISH of a link channel message (`_wampmesh` = `body`), with the side's next publication
/// id (unacknowledged, so never answered: the ids need not be distinct from the calls').
pub fn channel_publication(publications: &mut u64, body: Value, payload: Payload) -> Message {
    *publications = *publications % crate::wamp::id::MAX_ID + 1;
    Message::Publish {
        request: Id::new(*publications).expect("1..=MAX_ID"),
        options: crate::dict! { crate::router::mesh::MESH_KEY => body },
        topic: crate::router::mesh::CHANNEL_TOPIC.to_owned(),
        payload,
    }
}

/// Results of one call the link placed, in order.
const CALL_RESULTS: usize = 64;

/// Where a side's CALL, CANCEL, YIELD and ERROR messages go.
pub trait Outlet: Send + Sync + 'static {
    fn send(&self, message: Message) -> impl Future<Output = Result<(), ClientError>> + Send;
}

/// The link's session on its local realm: messages are the session's commands to the realm.
pub struct RealmOutlet {
    pub realm: RealmHandle,
    pub session: SessionId,
}

impl Outlet for RealmOutlet {
    async fn send(&self, message: Message) -> Result<(), ClientError> {
        let session = self.session;
        self.realm
            .send(RealmCommand::Message { session, message })
            .await
            .map_err(|_| ClientError::Closed)
    }
}

/// The link's session on the peer's realm: the link's task takes them from this queue.
impl Outlet for crate::queue::Sender<Message> {
    async fn send(&self, message: Message) -> Result<(), ClientError> {
        crate::queue::Sender::send(self, message)
            .await
            .map_err(|_| ClientError::Closed)
    }
}

pub type CallSender = mpsc::Sender<Result<CallResult, ClientError>>;
/// An answer for a call whose queue is full, with where it goes once there is room.
pub type Parked = (CallSender, Result<CallResult, ClientError>);

/// What one side's calls and invocations in flight share with it.
pub struct Requests<O> {
    pub outlet: O,
    /// Request ids of the side's CALL messages (and PUBLISH, on the local side).
    requests: AtomicU64,
    /// Calls placed by this side, by request id.
    calls: Mutex<HashMap<u64, CallSender>>,
    /// Invocations this side must answer, by request id: where an INTERRUPT goes.
    interrupts: Mutex<HashMap<u64, oneshot::Sender<String>>>,
}

impl<O: Outlet> Requests<O> {
    pub fn new(outlet: O) -> Arc<Self> {
        Arc::new(Requests {
            outlet,
            requests: AtomicU64::new(0),
            calls: Mutex::default(),
            interrupts: Mutex::default(),
        })
    }

    pub fn next_request(&self) -> Id {
        let n = self.requests.fetch_add(1, Ordering::Relaxed) % crate::wamp::id::MAX_ID + 1;
        Id::new(n).expect("1..=MAX_ID")
    }

    fn calls(&self) -> MutexGuard<'_, HashMap<u64, CallSender>> {
        self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn interrupts(&self) -> MutexGuard<'_, HashMap<u64, oneshot::Sender<String>>> {
        self.interrupts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// An INVOCATION of the invoke procedure, to answer; an INTERRUPT for it reaches it.
    pub fn invocation(
        self: &Arc<Self>,
        request: Id,
        details: Dict,
        payload: Payload,
    ) -> LinkInvocation<O> {
        let (interrupt, interrupted) = oneshot::channel();
        self.interrupts().insert(request.get(), interrupt);
        LinkInvocation {
            shared: Arc::clone(self),
            request,
            details,
            payload,
            interrupted: Some(interrupted),
            answered: false,
        }
    }

    /// An INTERRUPT: the caller of an invocation in flight canceled.
    fn interrupt(&self, request: Id, options: &Dict) {
        if let Some(interrupt) = self.interrupts().remove(&request.get()) {
            let mode = options.get("mode").and_then(Value::as_str);
            let _ = interrupt.send(mode.unwrap_or("killnowait").to_owned());
        }
    }

    /// Routes an answer from the side's realm to the call or invocation it is for: INTERRUPT,
    /// RESULT and a CALL's ERROR (see [`Requests::answer_call`] for what `Ok` holds). Any other
    /// message is given back.
    pub fn route(requests: Option<&Self>, message: Message) -> Result<Option<Parked>, Message> {
        let answer = match message {
            Message::Interrupt { request, options } => {
                if let Some(requests) = requests {
                    requests.interrupt(request, &options);
                }
                return Ok(None);
            }
            Message::Result {
                request,
                details,
                payload,
            } => (request, Ok(CallResult { details, payload })),
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
                (request, Err(error))
            }
            other => return Err(other),
        };
        Ok(requests.and_then(|requests| requests.answer_call(answer.0, answer.1)))
    }

    /// Hands a RESULT or ERROR to its call (a final one ends the call). Gives it back with its
    /// call's sender when that call's queue is full: the side then delivers it before it reads
    /// anything else (backpressure, as for any session that does not keep up).
    pub fn answer_call(
        &self,
        request: Id,
        answer: Result<CallResult, ClientError>,
    ) -> Option<Parked> {
        let last = answer.as_ref().map_or(true, |r| !r.is_progress());
        let sender = {
            let mut calls = self.calls();
            if last {
                calls.remove(&request.get())
            } else {
                calls.get(&request.get()).cloned()
            }
        }?;
        match sender.try_send(answer) {
            Err(mpsc::error::TrySendError::Full(answer)) => Some((sender, answer)),
            _ => None,
        }
    }

    /// The side is gone: its calls in flight end (with `None`, then the relay's `Closed`).
    pub fn forget_calls(&self) {
        self.calls().clear();
    }
}

/// Places calls through one side (for invocations that arrive from the other).
pub struct LinkCaller<O>(pub Arc<Requests<O>>);

impl<O> Clone for LinkCaller<O> {
    fn clone(&self) -> Self {
        LinkCaller(Arc::clone(&self.0))
    }
}

impl<O: Outlet> LinkCaller<O> {
    /// Sends CALL; results come from [`LinkCall::next`].
    pub async fn call(
        &self,
        procedure: &str,
        payload: Payload,
        options: Dict,
    ) -> Result<LinkCall<O>, ClientError> {
        let request = self.0.next_request();
        let (tx, results) = mpsc::channel(CALL_RESULTS);
        self.0.calls().insert(request.get(), tx);
        // Made before sending: if the CALL cannot be sent, dropping it forgets the call.
        let call = LinkCall {
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
        self.0.outlet.send(message).await?;
        Ok(call)
    }
}

/// A call the link placed through one side.
pub struct LinkCall<O: Outlet> {
    shared: Arc<Requests<O>>,
    request: Id,
    results: mpsc::Receiver<Result<CallResult, ClientError>>,
}

impl<O: Outlet> LinkCall<O> {
    /// The next result (progressive ones first), the final result or error, then `None`; also
    /// `None` if the side went away first.
    pub async fn next(&mut self) -> Option<Result<CallResult, ClientError>> {
        self.results.recv().await
    }

    /// Sends CANCEL with `mode`.
    pub async fn cancel(&self, mode: &str) -> Result<(), ClientError> {
        let message = Message::Cancel {
            request: self.request,
            options: crate::dict! { "mode" => mode },
        };
        self.shared.outlet.send(message).await
    }
}

impl<O: Outlet> Drop for LinkCall<O> {
    fn drop(&mut self) {
        self.shared.calls().remove(&self.request.get());
    }
}

/// An INVOCATION routed through the link, which the link must answer.
pub struct LinkInvocation<O: Outlet> {
    shared: Arc<Requests<O>>,
    request: Id,
    pub details: Dict,
    pub payload: Payload,
    interrupted: Option<oneshot::Receiver<String>>,
    answered: bool,
}

impl<O: Outlet> LinkInvocation<O> {
    async fn answer(&mut self, message: Message) -> Result<(), ClientError> {
        self.answered = true;
        self.forget();
        self.shared.outlet.send(message).await
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
        self.shared.outlet.send(message).await
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

    /// Resolves with the mode when an INTERRUPT comes (the caller canceled); never resolves
    /// otherwise. Cancel-safe, and resolves once.
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

impl<O: Outlet> Drop for LinkInvocation<O> {
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
            runtime.spawn(async move { shared.outlet.send(message).await });
        }
    }
}
