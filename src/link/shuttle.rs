//! The shuttle of one realm link: two client sessions (one joined to the local realm, one to
//! the peer's) and everything that crosses between them, in both directions.
//!
//! Each realm sends its side's link session channel EVENTs (interest advertisements and
//! publications to forward) and INVOCATIONs of `wampmesh.link.invoke` (calls routed through the
//! link). The shuttle turns an EVENT on one side into a PUBLISH on the channel topic on the
//! other, and an INVOCATION into a CALL whose results, errors and cancellation it relays back.
//! All routing decisions are made by the realms; the shuttle only carries.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::client::{
    ClientConfig, ClientError, Event, Invocation, Registration, Session, Subscription,
};
use crate::router::mesh::{CHANNEL_ID, CHANNEL_TOPIC, INVOKE_ID, MESH_KEY};
use crate::wamp::uri::reason;
use crate::wamp::{Dict, Id, Payload, Value};

/// Counters of one link, as `wampmesh.link.list` reports them.
#[derive(Debug, Default)]
pub struct LinkCounters {
    /// Messages carried from the peer to this node.
    pub messages_in: AtomicU64,
    /// Messages carried from this node to the peer.
    pub messages_out: AtomicU64,
}

/// One side of the link: a joined session with its channel subscription and invoke registration.
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

/// Carries traffic until one side ends or `stop` fires; returns why it ended.
pub async fn run(
    mut local: Side,
    mut remote: Side,
    counters: Arc<LinkCounters>,
    forward: super::Forwarding,
    stop: CancellationToken,
) -> String {
    let calls = TaskTracker::new();
    let reason = loop {
        tokio::select! {
            _ = stop.cancelled() => break "link stopped".to_owned(),
            event = local.channel.next() => match event {
                Some(event) => {
                    counters.messages_out.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = relay_event(&remote.session, event, forward).await {
                        break format!("peer session failed: {e}");
                    }
                }
                None => break "local session ended".to_owned(),
            },
            event = remote.channel.next() => match event {
                Some(event) => {
                    counters.messages_in.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = relay_event(&local.session, event, forward).await {
                        break format!("local session failed: {e}");
                    }
                }
                None => break "peer session ended".to_owned(),
            },
            invocation = local.invoke.next() => match invocation {
                Some(invocation) => {
                    counters.messages_out.fetch_add(1, Ordering::Relaxed);
                    calls.spawn(relay_call(invocation, remote.session.clone(), forward));
                }
                None => break "local session ended".to_owned(),
            },
            invocation = remote.invoke.next() => match invocation {
                Some(invocation) => {
                    counters.messages_in.fetch_add(1, Ordering::Relaxed);
                    calls.spawn(relay_call(invocation, local.session.clone(), forward));
                }
                None => break "peer session ended".to_owned(),
            },
            closed = remote.session.closed() => break format!("peer session closed: {}", closed.reason()),
        }
    };
    // Calls in flight end with an error from the closing sessions, not silence. A peer that
    // no longer answers must not hold the stop up (its QUIC idle timeout can be long).
    let leave = std::time::Duration::from_secs(2);
    let _ = tokio::time::timeout(leave, local.session.leave(reason::CLOSE_NORMAL)).await;
    let _ = tokio::time::timeout(leave, remote.session.leave(reason::CLOSE_NORMAL)).await;
    calls.close();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), calls.wait()).await;
    reason
}

/// A channel EVENT from one realm becomes a channel PUBLISH into the other.
async fn relay_event(
    target: &Session,
    event: Event,
    forward: super::Forwarding,
) -> Result<(), ClientError> {
    let Some(body) = event.details.get(MESH_KEY).cloned() else {
        return Ok(());
    };
    let is_publication = body
        .as_dict()
        .and_then(|b| b.get("type"))
        .and_then(Value::as_str)
        == Some("publish");
    if is_publication && !forward.events {
        return Ok(());
    }
    let options = crate::dict! { MESH_KEY => body };
    target
        .publish(CHANNEL_TOPIC, event.payload, options)
        .await
        .map(|_| ())
}

/// An INVOCATION from one realm becomes a CALL into the other; answers flow back.
async fn relay_call(invocation: Invocation, target: Session, forward: super::Forwarding) {
    if !forward.calls {
        let _ = invocation
            .error(reason::NO_SUCH_PROCEDURE, Payload::default())
            .await;
        return;
    }
    let details = &invocation.details;
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
    let mut pending = match target
        .call_cancellable(&procedure, invocation.payload.clone(), options)
        .await
    {
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
            _ = invocation.interrupted(), if !interrupted => {
                interrupted = true;
                let mode = invocation.interrupt_mode().unwrap_or_else(|| "killnowait".into());
                let _ = pending.cancel(&mode).await;
            }
        }
    }
}

async fn answer_error(invocation: Invocation, error: ClientError) {
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
