//! A realm link's session on its own node's realm, attached to the realm task directly: the
//! realm's deliveries arrive as messages in the session's bounded queue and the link's
//! messages go to the realm as commands. No byte stream, no serialization, no router session
//! task and no client task between the link and its local realm; the realm sees an ordinary
//! session with role `rlink` (attached to the link channel and the invoke procedure at join),
//! so routing, authorization, meta events and the slow-consumer policy apply to it as before.

use std::future::Future;
use std::sync::Arc;

use super::calls::{
    channel_publication, LinkCaller, LinkInvocation, Outlet, Parked, RealmOutlet, Requests,
};
use crate::client::ClientError;
use crate::metrics::{Metrics, SessionGauge};
use crate::router::mesh::{CHANNEL_ID, INVOKE_ID, LINK_ROLE};
use crate::router::task::{RealmCommand, SessionOutbound};
use crate::router::types::Features;
use crate::router::SessionInfo;
use crate::session::SessionContext;
use crate::wamp::{Dict, Id, Message, Payload, SharedMessage, Value};

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
    outlet: RealmOutlet,
    /// Request ids of the link's PUBLISHes (unacknowledged, so never answered: they need not be
    /// distinct from the calls' ids).
    publications: u64,
    /// Calls and invocations in flight, made on first use: an idle link holds none.
    in_flight: Option<Arc<Shared>>,
    /// Killed by the realm when it closes the link session as a slow consumer.
    outbound: crate::queue::Receiver<Arc<SharedMessage>>,
    /// A RESULT for a call whose queue was full, delivered before anything else is taken.
    /// Boxed: rare, and inline it would size the task of every idle link.
    parked: Option<Box<Parked>>,
    metrics: Arc<Metrics>,
    left: bool,
    _gauge: SessionGauge,
}

type Shared = Requests<RealmOutlet>;

/// Places calls into the local realm (for invocations that arrive from the peer).
pub type LocalCaller = LinkCaller<RealmOutlet>;
/// An INVOCATION from the local realm the link must answer.
pub type LocalInvocation = LinkInvocation<RealmOutlet>;

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
            outlet: RealmOutlet {
                realm: handle,
                session,
            },
            publications: 0,
            in_flight: None,
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
            if let Some(parked) = &self.parked {
                let sender = parked.0.clone();
                // Cancel-safe: the answer stays parked until there is room for it. Boxed: rare,
                // and inline it would size the task of every idle link.
                let reserved = Box::pin(sender.reserve()).await;
                match reserved {
                    Ok(permit) => {
                        if let Some(parked) = self.parked.take() {
                            permit.send(parked.1);
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
                    let invocation = self.in_flight().invocation(request, details, payload);
                    return FromRealm::Invocation(invocation);
                }
                // INTERRUPT, RESULT, a call's ERROR; PUBLISHED and the like need nothing.
                other => {
                    if let Ok(Some(parked)) = Shared::route(self.in_flight.as_deref(), other) {
                        self.parked = Some(Box::new(parked));
                    }
                }
            }
        }
    }

    fn in_flight(&mut self) -> &Arc<Shared> {
        let RealmOutlet { realm, session } = &self.outlet;
        self.in_flight.get_or_insert_with(|| {
            Requests::new(RealmOutlet {
                realm: realm.clone(),
                session: *session,
            })
        })
    }

    /// A handle that places calls into the local realm.
    pub fn caller(&mut self) -> LocalCaller {
        LinkCaller(Arc::clone(self.in_flight()))
    }

    /// Publishes a link channel message (`_wampmesh` = `body`) into the local realm.
    pub fn publish_channel(
        &mut self,
        body: Value,
        payload: Payload,
    ) -> impl Future<Output = Result<(), ClientError>> + '_ {
        let message = channel_publication(&mut self.publications, body, payload);
        self.outlet.send(message)
    }

    /// Leaves the realm: it forgets the link (calls routed through it get an error) and the
    /// link's own calls in flight end with `Closed`.
    pub async fn leave(mut self) {
        self.left = true;
        let RealmOutlet { realm, session } = &self.outlet;
        let session = *session;
        let _ = realm.send(RealmCommand::Leave { session }).await;
        if let Some(in_flight) = &self.in_flight {
            in_flight.forget_calls();
        }
    }
}

impl Drop for LocalSide {
    /// Dropped without `leave` (the peer side failed to join): leave from a task.
    fn drop(&mut self) {
        if self.left {
            return;
        }
        let RealmOutlet { realm, session } = &self.outlet;
        let (realm, session) = (realm.clone(), *session);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { realm.send(RealmCommand::Leave { session }).await });
        }
    }
}

#[cfg(test)]
mod tests;
