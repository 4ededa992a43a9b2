//! The shuttle of one realm link: the link's session on the local realm ([`LocalSide`], attached
//! to the realm task directly) and its session on the peer's realm ([`RemoteSide`], whose QUIC
//! stream or TCP connection this task reads and writes itself), and everything that crosses
//! between them, in both directions. One task per link, whatever its traffic.
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

use super::calls::{LinkCaller, LinkInvocation, Outlet};
use super::local::{FromRealm, LocalSide};
use super::remote::{FromPeer, RemoteSide, LEAVE_TIMEOUT};
use crate::client::ClientError;
use crate::router::mesh::MESH_KEY;
use crate::wamp::uri::reason;
use crate::wamp::{Dict, Payload, Value};

/// Counters of one link, as `wampmesh.link.list` reports them.
#[derive(Debug, Default)]
pub struct LinkCounters {
    /// Messages carried from the peer to this node.
    pub messages_in: AtomicU64,
    /// Messages carried from this node to the peer.
    pub messages_out: AtomicU64,
}

/// Local items taken in a row before the peer's side gets its turn.
const LOCAL_BURST: u32 = 128;

/// A message on its way to one side, awaited outside the select that produced it.
type Work<'a> = std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// Carries traffic until one side ends or `stop` fires; returns why it ended.
///
/// Not an `async fn`: its arguments would be kept twice in the future, as arguments and as the
/// locals they move into, and every idle link would pay for both.
#[allow(clippy::manual_async_fn)]
pub fn run(
    mut local: LocalSide,
    mut remote: RemoteSide,
    counters: Arc<LinkCounters>,
    forward: super::Forwarding,
    stop: CancellationToken,
) -> impl Future<Output = String> {
    async move {
        let calls = TaskTracker::new();
        // Items taken from the local realm since the peer's side last had its turn.
        let mut burst = 0;
        let reason = loop {
            if burst >= LOCAL_BURST {
                remote.take_turn();
            }
            // Each arm decides without waiting; what must be awaited comes back boxed and is
            // awaited after the select. Awaited inside an arm, it would keep the select's
            // output beside it, and every idle link's task would keep room for both.
            // Biased: what the local realm has ready is taken first, so that a burst leaves in
            // few writes (a QUIC stream pays for each in packets and wake-ups); after
            // `LOCAL_BURST` items the peer's side gets its turn (its writes and reads).
            let work: Work<'_> = tokio::select! {
                biased;
                _ = stop.cancelled() => break "link stopped".to_owned(),
                // Nothing more is taken from the realm while the peer's stream is behind.
                from = local.next(), if remote.has_room() && burst < LOCAL_BURST => {
                    burst += 1;
                    match from {
                        FromRealm::Channel { details, payload } => {
                            counters.messages_out.fetch_add(1, Ordering::Relaxed);
                            if let Some(body) = channel_body(&details, forward) {
                                remote.publish_channel(body, payload);
                            }
                            continue;
                        }
                        FromRealm::Invocation(invocation) => {
                            counters.messages_out.fetch_add(1, Ordering::Relaxed);
                            calls.spawn(relay_call(invocation, remote.caller(), forward));
                            continue;
                        }
                        FromRealm::Ended(why) => break format!("local session ended: {why}"),
                    }
                }
                from = remote.next() => {
                    burst = 0;
                    match from {
                        FromPeer::Channel { details, payload } => {
                            counters.messages_in.fetch_add(1, Ordering::Relaxed);
                            let Some(body) = channel_body(&details, forward) else { continue };
                            let publish = local.publish_channel(body, payload);
                            Box::pin(async move {
                                publish.await.map_err(|e| format!("local session failed: {e}"))
                            })
                        }
                        FromPeer::Invocation(invocation) => {
                            counters.messages_in.fetch_add(1, Ordering::Relaxed);
                            calls.spawn(relay_call(invocation, local.caller(), forward));
                            continue;
                        }
                        FromPeer::Room => continue,
                        FromPeer::Ended(why) => break why,
                    }
                }
            };
            if let Err(reason) = work.await {
                break reason;
            }
        };
        // Calls in flight end with an error from the closing sessions, not silence. A peer that
        // no longer answers must not hold the stop up (its QUIC idle timeout can be long).
        Box::pin(async move {
            local.leave().await;
            let _ = tokio::time::timeout(LEAVE_TIMEOUT, remote.leave()).await;
            calls.close();
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), calls.wait()).await;
        })
        .await;
        reason
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

/// An INVOCATION from one realm becomes a CALL into the other; answers flow back.
async fn relay_call<A: Outlet, B: Outlet>(
    mut invocation: LinkInvocation<A>,
    target: LinkCaller<B>,
    forward: super::Forwarding,
) {
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
    let payload = invocation.payload.clone();
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

async fn answer_error<O: Outlet>(invocation: LinkInvocation<O>, error: ClientError) {
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
