//! The WAMP opening of a router-side session: HELLO, authentication (or a router-link
//! identity), the management realm check, joining the realm, WELCOME.

use super::{Connection, Joined, ListenerSettings, SessionContext, SessionEnd};
use crate::router::auth::{AuthStep, Identity};
use crate::router::task::SessionOutbound;
use crate::router::{Now, SessionInfo, SessionTransport};
use crate::wamp::uri::{self, reason};
use crate::wamp::{Dict, Id, Message, Value};

/// A router-link identity, if this HELLO is one: a peer node proven by its TLS client
/// certificate (HELLO `authmethods` has "tls"), or any HELLO on the trusted in-process listener.
fn link_identity(
    details: &Dict,
    transport: &Dict,
    settings: &ListenerSettings,
) -> Option<Identity> {
    let asked_role = details.get("authrole").and_then(Value::as_str);
    if settings.trusted {
        let extra = details.get("authextra").and_then(Value::as_dict);
        let peer = extra
            .and_then(|e| e.get("peer"))
            .and_then(Value::as_str)
            .unwrap_or("local");
        return Some(Identity {
            authid: peer.to_owned(),
            authrole: asked_role
                .unwrap_or(crate::router::mesh::LINK_ROLE)
                .to_owned(),
            authmethod: "trusted".into(),
            authprovider: "node".into(),
            authextra: Dict::new(),
        });
    }
    let methods = details.get("authmethods").and_then(Value::as_list)?;
    let node = transport.get("peer_cert_node_id").and_then(Value::as_str)?;
    methods
        .iter()
        .any(|m| m.as_str() == Some("tls"))
        .then(|| Identity {
            authid: node.to_owned(),
            authrole: crate::router::mesh::LINK_ROLE.into(),
            authmethod: "tls".into(),
            authprovider: "mesh-ca".into(),
            authextra: Dict::new(),
        })
}

/// The WELCOME roles: exactly the features this router implements.
pub fn router_roles() -> Dict {
    let features = |names: &[&str]| {
        let f: Dict = names
            .iter()
            .map(|n| (n.to_string(), Value::Bool(true)))
            .collect();
        Value::Dict(crate::dict! { "features" => f })
    };
    crate::dict! {
        "broker" => features(&[
            "publisher_identification", "pattern_based_subscription", "subscriber_blackwhite_listing",
            "publisher_exclusion", "session_meta_api", "subscription_meta_api",
        ]),
        "dealer" => features(&[
            "progressive_call_results", "call_canceling", "call_timeout", "caller_identification",
            "pattern_based_registration", "shared_registration", "session_meta_api", "registration_meta_api",
        ]),
    }
}

impl<T: super::wire::MessageWire> Connection<T> {
    /// Sends ABORT and ends the session with it.
    async fn abort(&mut self, reason: &'static str, message: &str) -> Result<Joined, SessionEnd> {
        self.send(&Message::abort(reason, message)).await?;
        Err(SessionEnd::Aborted(reason.into()))
    }

    /// HELLO -> (CHALLENGE -> AUTHENTICATE) -> join the realm -> WELCOME.
    pub(super) async fn open(
        &mut self,
        mut transport: SessionTransport,
        ctx: &SessionContext,
    ) -> Result<Joined, SessionEnd> {
        let settings = &ctx.settings;
        let hello = tokio::time::timeout(settings.hello_timeout, self.next_message())
            .await
            .map_err(|_| SessionEnd::Timeout("HELLO"))??;
        let Message::Hello { realm, details } = hello else {
            return Err(SessionEnd::ProtocolViolation(format!(
                "expected HELLO, got {}",
                hello.name()
            )));
        };
        let Some(handle) = uri::is_valid_uri(&realm)
            .then(|| ctx.realms.get(&realm))
            .flatten()
        else {
            return self
                .abort(
                    reason::NO_SUCH_REALM,
                    &format!("no realm {realm:?} on this node"),
                )
                .await;
        };
        let session = Id::random();
        let identity = match self
            .authenticate(&details, &transport, session, settings)
            .await?
        {
            Ok(identity) => identity,
            Err((reason, message)) => return self.abort(reason, &message).await,
        };
        if let Some((management, allow_local)) = &settings.management {
            let loopback = transport
                .get("peer")
                .and_then(Value::as_str)
                .and_then(|p| p.parse::<std::net::SocketAddr>().ok())
                .is_some_and(|a| a.ip().is_loopback());
            if &realm == management
                && identity.authrole == "anonymous"
                && !(*allow_local && loopback)
            {
                let why = "management needs role admin (or allow_local from loopback)";
                return self.abort(reason::NOT_AUTHORIZED, why).await;
            }
        }
        transport.serializer = Some(self.serializer.name());
        let info = SessionInfo {
            id: session,
            authid: identity.authid,
            authrole: identity.authrole,
            authmethod: identity.authmethod,
            authprovider: identity.authprovider,
            features: crate::router::types::Features::from_roles(
                details.get("roles").and_then(Value::as_dict),
            ),
            transport,
            attach_link: details
                .get(crate::router::mesh::MESH_KEY)
                .and_then(Value::as_dict)
                .and_then(|mesh| mesh.get("attach"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
        };
        let welcome = crate::dict! {
            "realm" => realm.clone(),
            "authid" => info.authid.clone(),
            "authrole" => info.authrole.clone(),
            "authmethod" => info.authmethod.clone(),
            "authprovider" => info.authprovider.clone(),
            "roles" => router_roles(),
            "agent" => concat!("wampmesh/", env!("CARGO_PKG_VERSION")),
        };
        let mut welcome = welcome;
        if info.attach_link && info.authrole == crate::router::mesh::LINK_ROLE {
            let attached = crate::dict! { "attached" => true };
            welcome.insert(crate::router::mesh::MESH_KEY.into(), attached.into());
        }
        let (queue, outbound) = crate::queue::bounded(settings.outbound_queue);
        let dropped = ctx.metrics.events_dropped();
        let link = SessionOutbound { queue, dropped };
        match handle.join(info, link).await {
            Err(_) => return self.abort(reason::SYSTEM_SHUTDOWN, "realm stopped").await,
            Ok(Err(e)) => return self.abort(e.reason(), &e.to_string()).await,
            Ok(Ok(())) => {}
        }
        let joined = Joined {
            session,
            realm: handle,
            outbound,
            _gauge: ctx.metrics.session_joined(&realm),
        };
        let mut welcome = Message::Welcome {
            session,
            details: welcome,
        };
        let fits = self
            .serializer
            .encode(&welcome)
            .is_ok_and(|b| b.len() <= self.wire.max_send());
        if let (false, Message::Welcome { details, .. }) = (fits, &mut welcome) {
            // A client that accepts only tiny messages gets the roles without feature lists.
            let bare = crate::dict! { "features" => Dict::new() };
            details.insert(
                "roles".into(),
                Value::Dict(crate::dict! { "broker" => bare.clone(), "dealer" => bare }),
            );
            details.remove("agent");
        }
        self.send(&welcome).await?;
        tracing::debug!(%session, realm = %realm, "session joined");
        Ok(joined)
    }

    /// Who the HELLO is: a router link, or what the listener's auth methods make of it.
    /// `Ok(Err((reason, message)))` is a refusal to answer with ABORT.
    async fn authenticate(
        &mut self,
        details: &Dict,
        transport: &Dict,
        session: Id,
        settings: &ListenerSettings,
    ) -> Result<Result<Identity, (&'static str, String)>, SessionEnd> {
        let link = link_identity(details, transport, settings);
        match link
            .map(AuthStep::Welcome)
            .unwrap_or_else(|| settings.auth.hello(details, session, &Now::read()))
        {
            AuthStep::Welcome(identity) => Ok(Ok(identity)),
            AuthStep::Abort { reason, message } => Ok(Err((reason, message))),
            AuthStep::Challenge {
                method,
                extra,
                pending,
            } => {
                self.send(&Message::Challenge { method, extra }).await?;
                let answer = tokio::time::timeout(settings.hello_timeout, self.next_message())
                    .await
                    .map_err(|_| SessionEnd::Timeout("AUTHENTICATE"))??;
                let Message::Authenticate { signature, extra } = answer else {
                    return Err(SessionEnd::ProtocolViolation(format!(
                        "expected AUTHENTICATE, got {}",
                        answer.name()
                    )));
                };
                Ok(pending
                    .authenticate(&signature, &extra)
                    .map_err(|failure| (failure.reason, failure.message)))
            }
        }
    }
}

/// The metrics reason of a session that ended before WELCOME.
pub(super) fn opening_failure(end: &SessionEnd) -> &str {
    match end {
        SessionEnd::Timeout(_) => "hello_timeout",
        SessionEnd::Aborted(reason) => reason,
        SessionEnd::ProtocolViolation(_) => reason::PROTOCOL_VIOLATION,
        SessionEnd::Handshake
        | SessionEnd::Refused(_)
        | SessionEnd::Transport(_)
        | SessionEnd::Closed => "transport",
    }
}
