//! A realm as one synchronous state machine: joined sessions, authorization, the broker, the
//! dealer and the meta API. The realm task (`router::task`) feeds it and delivers its outbox.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use crate::wamp::uri::reason;
use crate::wamp::{code, Message, Payload, SessionId, Value};

use super::authorize::{Action, Authorizer};
use super::broker::Broker;
use super::dealer::Dealer;
use super::mesh::{Interest, Mesh, LINK_ROLE};
use super::meta;
use super::small_map::VecMap;
use super::types::{MetaEvent, Now, Outbox, SessionInfo, Sessions};

/// Why a session could not join.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    #[error("role {0:?} does not exist on this realm")]
    NoSuchRole(String),
    #[error("session id already joined")]
    DuplicateSession,
}

impl JoinError {
    pub fn reason(&self) -> &'static str {
        match self {
            JoinError::NoSuchRole(_) => reason::NO_SUCH_ROLE,
            JoinError::DuplicateSession => reason::PROTOCOL_VIOLATION,
        }
    }
}

/// One realm's routing state.
#[derive(Debug)]
pub struct Realm {
    pub name: String,
    pub(super) authorizer: Authorizer,
    pub(super) sessions: Sessions,
    pub(super) broker: Broker,
    pub(super) dealer: Dealer,
    /// Interest routing across router links.
    pub(super) mesh: Mesh,
    /// The proxy subscriptions/registrations each link session holds for routed interest (one
    /// entry per link, so a vec-backed map).
    pub(super) proxies: VecMap<SessionId, BTreeSet<Interest>>,
}

impl Realm {
    /// A realm on a node that is not linked to others.
    pub fn new(name: &str, authorizer: Authorizer) -> Realm {
        Realm::on_node(name, authorizer, "local", 0)
    }

    /// A realm on node `node`; `epoch` must grow across node restarts (start time in ms).
    pub fn on_node(name: &str, mut authorizer: Authorizer, node: &str, epoch: u64) -> Realm {
        authorizer.grant_all(LINK_ROLE);
        Realm {
            name: name.to_owned(),
            authorizer,
            sessions: HashMap::new(),
            broker: Broker::new(),
            dealer: Dealer::new(),
            mesh: Mesh::new(node, epoch),
            proxies: VecMap::new(),
        }
    }

    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    pub fn join(&mut self, info: SessionInfo, out: &mut Outbox) -> Result<(), JoinError> {
        if !self.authorizer.has_role(&info.authrole) {
            return Err(JoinError::NoSuchRole(info.authrole));
        }
        if self.sessions.contains_key(&info.id) {
            return Err(JoinError::DuplicateSession);
        }
        let details = info.meta_details();
        let (id, link, attach) = (info.id, info.authrole == LINK_ROLE, info.attach_link);
        if link {
            self.mesh.add_neighbor(id, &info.authid);
        }
        self.sessions.insert(id, Box::new(info));
        self.broker.publish_internal(
            "wamp.session.on_join",
            Payload::args(vec![details.into()]),
            out,
        );
        if link && attach {
            let first_meta = out.meta.len();
            self.attach_link(id, out);
            self.after_change(first_meta, out);
        }
        Ok(())
    }

    /// A session left (GOODBYE, ABORT, transport loss or kill): drop all its state.
    pub fn leave(&mut self, session: SessionId, out: &mut Outbox) {
        let Some(info) = self.sessions.remove(&session) else {
            return;
        };
        let first_meta = out.meta.len();
        self.dealer.handle_session_leave(session, out);
        self.broker.handle_session_leave(session, out);
        if self.mesh.is_neighbor(session) {
            self.proxies.remove(&session);
            let notices = self.mesh.remove_neighbor(session);
            self.send_channel(notices, out);
            self.sync_proxies(out);
        }
        self.after_change(first_meta, out);
        let args = vec![
            session.get().into(),
            info.authid.into(),
            info.authrole.into(),
        ];
        self.broker
            .publish_internal("wamp.session.on_leave", Payload::args(args), out);
    }

    /// A message from an established session. The session layer has already rejected the
    /// message types a client may not send.
    pub fn handle(&mut self, session: SessionId, message: Message, now: &Now, out: &mut Outbox) {
        if !self.sessions.contains_key(&session) {
            return;
        }
        let first_meta = out.meta.len();
        let message = match self.mesh.is_neighbor(session) {
            true => match self.handle_link_message(session, message, now, out) {
                Some(message) => message,
                None => return self.after_change(first_meta, out),
            },
            false => message,
        };
        let Some(info) = self.sessions.get(&session) else {
            return;
        };
        match message {
            Message::Publish {
                request,
                options,
                topic,
                payload,
            } => {
                if topic.starts_with("wamp.")
                    || (topic.starts_with("wampmesh.") && !privileged(info))
                {
                    if options.get("acknowledge").and_then(Value::as_bool) == Some(true) {
                        out.error(session, code::PUBLISH, request, reason::INVALID_URI);
                    }
                } else if !self
                    .authorizer
                    .allows(&info.authrole, Action::Publish, &topic)
                {
                    if options.get("acknowledge").and_then(Value::as_bool) == Some(true) {
                        out.error(session, code::PUBLISH, request, reason::NOT_AUTHORIZED);
                    }
                } else {
                    let info = info.clone();
                    self.publish(&info, request, &options, &topic, payload, None, out);
                }
            }
            Message::Subscribe {
                request,
                options,
                topic,
            } => {
                if self
                    .authorizer
                    .allows(&info.authrole, Action::Subscribe, &topic)
                {
                    self.broker
                        .handle_subscribe(session, request, &options, &topic, now, out);
                } else {
                    out.error(session, code::SUBSCRIBE, request, reason::NOT_AUTHORIZED);
                }
            }
            Message::Unsubscribe {
                request,
                subscription,
            } => self
                .broker
                .handle_unsubscribe(session, request, subscription, out),
            Message::Register {
                request,
                options,
                procedure,
            } => {
                if procedure.starts_with("wamp.")
                    || (procedure.starts_with("wampmesh.") && !privileged(info))
                {
                    out.error(session, code::REGISTER, request, reason::INVALID_URI);
                } else if self
                    .authorizer
                    .allows(&info.authrole, Action::Register, &procedure)
                {
                    self.dealer
                        .handle_register(info, request, &options, &procedure, now, out);
                } else {
                    out.error(session, code::REGISTER, request, reason::NOT_AUTHORIZED);
                }
            }
            Message::Unregister {
                request,
                registration,
            } => self
                .dealer
                .handle_unregister(session, request, registration, out),
            Message::Call {
                request,
                options,
                procedure,
                payload,
            } => {
                if !self
                    .authorizer
                    .allows(&info.authrole, Action::Call, &procedure)
                {
                    out.error(session, code::CALL, request, reason::NOT_AUTHORIZED);
                } else if let Some(answer) = meta::call(self, &procedure, &payload) {
                    out.send(session, meta::reply(request, answer));
                } else {
                    let info = info.clone();
                    self.call(&info, request, options, procedure, payload, None, now, out);
                }
            }
            Message::Cancel { request, options } => {
                self.dealer.handle_cancel(session, request, &options, out)
            }
            Message::Yield {
                request,
                options,
                payload,
            } => {
                self.dealer
                    .handle_yield(session, request, options, payload, out);
            }
            Message::Error {
                request_type: code::INVOCATION,
                request,
                details,
                error,
                payload,
            } => {
                self.dealer
                    .handle_invocation_error(session, request, details, error, payload, out);
            }
            other => {
                tracing::warn!(realm = %self.name, %session, message = other.name(), "unexpected message reached the realm")
            }
        }
        self.after_change(first_meta, out);
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.dealer.poll_timeout()
    }

    pub fn handle_timeout(&mut self, now: &Now, out: &mut Outbox) {
        self.dealer.handle_timeout(now, out);
    }

    /// Publishes the meta events raised since `first` on their `wamp.*` topics.
    pub(super) fn publish_meta(&mut self, first: usize, out: &mut Outbox) {
        if out.meta.len() == first {
            return;
        }
        let events: Vec<MetaEvent> = out.meta[first..].to_vec();
        for event in events {
            let (topic, args) = meta::event_publication(event);
            self.broker
                .publish_internal(topic, Payload::args(args), out);
        }
    }
}

/// Roles that may use the reserved `wampmesh.` namespace: the node's own sessions.
fn privileged(info: &SessionInfo) -> bool {
    info.authrole == "admin" || info.authrole == LINK_ROLE
}
