//! The shuttle of one realm link: the link's session on the local realm ([`LocalSide`], attached
//! to the realm task directly) and its client session on the peer's realm (over the QUIC stream
//! or TCP connection), and everything that crosses between them, in both directions.
//!
//! Each realm sends its side's link session channel EVENTs (interest advertisements and
//! publications to forward) and INVOCATIONs of `wampmesh.link.invoke` (calls routed through the
//! link). The shuttle turns an EVENT on one side into a PUBLISH on the channel topic on the
//! other, and an INVOCATION into a CALL whose results, errors and cancellation it relays back.
//! All routing decisions are made by the realms; the shuttle only carries.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::client::{
    CallResult, ClientConfig, ClientError, Invocation, PendingCall, Registration, Session,
    Subscription,
};
use crate::router::mesh::{CHANNEL_ID, CHANNEL_TOPIC, INVOKE_ID, MESH_KEY};
use crate::wamp::uri::reason;
use crate::wamp::{Dict, Id, Payload, Value};

use super::local::{FromRealm, LocalCall, LocalCaller, LocalInvocation, LocalSide};

/// Counters of one link, as `wampmesh.link.list` reports them.
#[derive(Debug, Default)]
pub struct LinkCounters {
    /// Messages carried from the peer to this node.
    pub messages_in: AtomicU64,
    /// Messages carried from this node to the peer.
    pub messages_out: AtomicU64,
}

/// The peer's side of the link: a joined client session with its channel subscription and
/// invoke registration.
pub struct Side {
    pub session: Session,
    channel: Subscription,
    invoke: Registration,
}

impl Side {
    /// Joins as a link session attached at join (HELLO `_wampmesh.attach`): the realm makes
    /// the channel subscription and the invoke registration itself and says so in WELCOME, so
    /// the side is ready one round trip after the stream opens (the RawSocket handshake and
    /// HELLO travel together, see `client::join`).
    pub async fn join<S>(stream: S, config: ClientConfig) -> Result<Side, ClientError>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let config = config
            .with_hello_extra(MESH_KEY, crate::dict! { "attach" => true })
            .without_router_roles();
        let channel = Id::new(CHANNEL_ID).expect("a valid id");
        let invoke = Id::new(INVOKE_ID).expect("a valid id");
        let (session, mut channels, mut invokes) =
            Session::join_with(stream, config, &[channel], &[invoke]).await?;
        let attached = session
            .details()
            .get(MESH_KEY)
            .and_then(Value::as_dict)
            .and_then(|mesh| mesh.get("attached"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let (Some(channel), Some(invoke), true) = (channels.pop(), invokes.pop(), attached) else {
            let _ = session.leave(reason::CLOSE_NORMAL).await;
            let role = session.details().get("authrole").cloned();
            return Err(ClientError::Protocol(format!(
                "the realm did not attach the link (joined with role {role:?}, not as a link)"
            )));
        };
        Ok(Side {
            session,
            channel,
            invoke,
        })
    }
}

/// A message on its way to one side, awaited outside the select that produced it.
type Work<'a> = std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// Carries traffic until one side ends or `stop` fires; returns why it ended.
///
/// Not an `async fn`: its arguments would be kept twice in the future, as arguments and as the
/// locals they move into, and every idle link would pay for both.
#[allow(clippy::manual_async_fn)]
pub fn run(
    mut local: LocalSide,
    mut remote: Side,
    counters: Arc<LinkCounters>,
    forward: super::Forwarding,
    stop: CancellationToken,
) -> impl Future<Output = String> {
    async move {
        let calls = TaskTracker::new();
        let caller = local.caller();
        let reason = loop {
            // Each arm decides without waiting; what must be awaited comes back boxed and is
            // awaited after the select. Awaited inside an arm, it would keep the select's
            // output beside it, and every idle link's task would keep room for both.
            let work: Work<'_> = tokio::select! {
                _ = stop.cancelled() => break "link stopped".to_owned(),
                from = local.next() => match from {
                    FromRealm::Channel { details, payload } => {
                        counters.messages_out.fetch_add(1, Ordering::Relaxed);
                        let Some(body) = channel_body(&details, forward) else { continue };
                        let options = crate::dict! { MESH_KEY => body };
                        let publish = remote.session.publish(CHANNEL_TOPIC, payload, options);
                        Box::pin(async move {
                            publish.await.map(drop).map_err(|e| format!("peer session failed: {e}"))
                        })
                    }
                    FromRealm::Invocation(invocation) => {
                        counters.messages_out.fetch_add(1, Ordering::Relaxed);
                        calls.spawn(relay_call(invocation, remote.session.clone(), forward));
                        continue;
                    }
                    FromRealm::Ended(why) => break format!("local session ended: {why}"),
                },
                event = remote.channel.next() => match event {
                    Some(event) => {
                        counters.messages_in.fetch_add(1, Ordering::Relaxed);
                        let Some(body) = channel_body(&event.details, forward) else { continue };
                        let publish = local.publish_channel(body, event.payload);
                        Box::pin(async move {
                            publish.await.map_err(|e| format!("local session failed: {e}"))
                        })
                    }
                    None => break peer_ended(&remote.session),
                },
                invocation = remote.invoke.next() => match invocation {
                    Some(invocation) => {
                        counters.messages_in.fetch_add(1, Ordering::Relaxed);
                        calls.spawn(relay_call(invocation, caller.clone(), forward));
                        continue;
                    }
                    None => break peer_ended(&remote.session),
                },
                // The peer session's end shows as the end of its channel and invoke streams
                // (no arm of its own: every idle link's task would keep its future).
            };
            if let Err(reason) = work.await {
                break reason;
            }
        };
        // Calls in flight end with an error from the closing sessions, not silence. A peer that
        // no longer answers must not hold the stop up (its QUIC idle timeout can be long).
        Box::pin(async move {
            local.leave().await;
            let leave = std::time::Duration::from_secs(2);
            let _ = tokio::time::timeout(leave, remote.session.leave(reason::CLOSE_NORMAL)).await;
            calls.close();
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), calls.wait()).await;
        })
        .await;
        reason
    }
}

/// Why the peer's session ended, once its streams did.
fn peer_ended(session: &Session) -> String {
    match session.close_reason() {
        Some(closed) => format!("peer session closed: {}", closed.reason()),
        None => "peer session ended".to_owned(),
    }
}

/// The `_wampmesh` body of a channel EVENT, if it is to be carried: advertisements always,
/// publications only when the link forwards events.
fn channel_body(details: &Dict, forward: super::Forwarding) -> Option<Value> {
    let body = details.get(MESH_KEY)?;
    let is_publication = body
        .as_dict()
        .and_then(|b| b.get("type"))
        .and_then(Value::as_str)
        == Some("publish");
    (!is_publication || forward.events).then(|| body.clone())
}

/// An INVOCATION the link answers: from the local realm or from the peer's.
trait Answer: Send + 'static {
    fn details(&self) -> &Dict;
    fn payload(&self) -> &Payload;
    fn progress(&self, payload: Payload) -> impl Future<Output = Result<(), ClientError>> + Send;
    fn result(self, payload: Payload) -> impl Future<Output = Result<(), ClientError>> + Send;
    fn error(
        self,
        error: &str,
        payload: Payload,
    ) -> impl Future<Output = Result<(), ClientError>> + Send;
    /// Resolves with the INTERRUPT mode once the caller canceled.
    fn interrupted(&mut self) -> impl Future<Output = String> + Send;
}

/// Where the link places the CALL for an invocation: the other realm.
trait Target: Send + 'static {
    type Call: Pending;
    fn call(
        &self,
        procedure: &str,
        payload: Payload,
        options: Dict,
    ) -> impl Future<Output = Result<Self::Call, ClientError>> + Send;
}

/// A CALL in flight.
trait Pending: Send {
    fn next(&mut self) -> impl Future<Output = Option<Result<CallResult, ClientError>>> + Send;
    fn cancel(&self, mode: &str) -> impl Future<Output = Result<(), ClientError>> + Send;
}

impl Answer for Invocation {
    fn details(&self) -> &Dict {
        &self.details
    }
    fn payload(&self) -> &Payload {
        &self.payload
    }
    async fn progress(&self, payload: Payload) -> Result<(), ClientError> {
        Invocation::progress(self, payload).await
    }
    async fn result(self, payload: Payload) -> Result<(), ClientError> {
        Invocation::result(self, payload).await
    }
    async fn error(self, error: &str, payload: Payload) -> Result<(), ClientError> {
        Invocation::error(self, error, payload).await
    }
    async fn interrupted(&mut self) -> String {
        Invocation::interrupted(self).await;
        self.interrupt_mode().unwrap_or_else(|| "killnowait".into())
    }
}

impl Answer for LocalInvocation {
    fn details(&self) -> &Dict {
        &self.details
    }
    fn payload(&self) -> &Payload {
        &self.payload
    }
    async fn progress(&self, payload: Payload) -> Result<(), ClientError> {
        LocalInvocation::progress(self, payload).await
    }
    async fn result(self, payload: Payload) -> Result<(), ClientError> {
        LocalInvocation::result(self, payload).await
    }
    async fn error(self, error: &str, payload: Payload) -> Result<(), ClientError> {
        LocalInvocation::error(self, error, payload).await
    }
    async fn interrupted(&mut self) -> String {
        LocalInvocation::interrupted(self).await
    }
}

impl Target for Session {
    type Call = PendingCall;
    async fn call(
        &self,
        procedure: &str,
        payload: Payload,
        options: Dict,
    ) -> Result<PendingCall, ClientError> {
        self.call_cancellable(procedure, payload, options).await
    }
}

impl Target for LocalCaller {
    type Call = LocalCall;
    async fn call(
        &self,
        procedure: &str,
        payload: Payload,
        options: Dict,
    ) -> Result<LocalCall, ClientError> {
        LocalCaller::call(self, procedure, payload, options).await
    }
}

impl Pending for PendingCall {
    async fn next(&mut self) -> Option<Result<CallResult, ClientError>> {
        PendingCall::next(self).await
    }
    async fn cancel(&self, mode: &str) -> Result<(), ClientError> {
        PendingCall::cancel(self, mode).await
    }
}

impl Pending for LocalCall {
    async fn next(&mut self) -> Option<Result<CallResult, ClientError>> {
        LocalCall::next(self).await
    }
    async fn cancel(&self, mode: &str) -> Result<(), ClientError> {
        LocalCall::cancel(self, mode).await
    }
}

/// An INVOCATION from one realm becomes a CALL into the other; answers flow back.
async fn relay_call(mut invocation: impl Answer, target: impl Target, forward: super::Forwarding) {
    if !forward.calls {
        let _ = invocation
            .error(reason::NO_SUCH_PROCEDURE, Payload::default())
            .await;
        return;
    }
    let details = invocation.details();
    let Some(procedure) = details
        .get("procedure")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        let _ = invocation
            .error(reason::INVALID_ARGUMENT, Payload::default())
            .await;
        return;
    };
    let mut options = Dict::new();
    for key in ["receive_progress", "timeout"] {
        if let Some(v) = details.get(key) {
            options.insert(key.into(), v.clone());
        }
    }
    if details.contains_key("caller") {
        options.insert("disclose_me".into(), true.into());
    }
    if let Some(mesh) = details.get(MESH_KEY) {
        options.insert(MESH_KEY.into(), mesh.clone());
    }
    let payload = invocation.payload().clone();
    let mut pending = match target.call(&procedure, payload, options).await {
        Ok(pending) => pending,
        Err(e) => return answer_error(invocation, e).await,
    };
    let mut interrupted = false;
    loop {
        tokio::select! {
            result = pending.next() => match result {
                Some(Ok(result)) if result.is_progress() => {
                    if invocation.progress(result.payload).await.is_err() {
                        return;
                    }
                }
                Some(Ok(result)) => {
                    let _ = invocation.result(result.payload).await;
                    return;
                }
                Some(Err(e)) => return answer_error(invocation, e).await,
                None => return answer_error(invocation, ClientError::Closed).await,
            },
            mode = invocation.interrupted(), if !interrupted => {
                interrupted = true;
                let _ = pending.cancel(&mode).await;
            }
        }
    }
}

async fn answer_error(invocation: impl Answer, error: ClientError) {
    match error {
        ClientError::Wamp { error, payload, .. } => {
            let _ = invocation.error(&error, payload).await;
        }
        other => {
            let payload = Payload::args(vec![other.to_string().into()]);
            let _ = invocation.error(reason::CANCELED, payload).await;
        }
    }
}
