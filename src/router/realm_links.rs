//! The realm's side of router links: the link channel, forwarded publications and calls,
//! interest advertisement, and the proxy subscriptions/registrations links hold.
//!
//! Wire conventions (the options/details key `_wampmesh`):
//! - a link session subscribes to `wampmesh.link.channel` and registers `wampmesh.link.invoke`;
//!   the realm answers with fixed ids and then talks to it through them;
//! - channel EVENT / PUBLISH bodies are `{type: "ia" | "unreachable" | "publish", ...}`;
//! - a forwarded publication: `{type: "publish", topic, publication, origin, path, options, publisher?}`;
//! - a forwarded call: CALL options `_wampmesh = {path, caller?, targets?}`; INVOCATION details
//!   to a link carry `procedure` and `_wampmesh = {path, caller?, targets}`. `targets` lists the
//!   origins behind that link which registered the procedure: the next node hands the call only
//!   to callees leading to them (its own, if it is one), so a call follows its sender's route
//!   and shared registrations are not skewed by detours through other nodes.
//!
//! `path` lists the node ids a message has visited, origin first.

use std::collections::{BTreeSet, HashSet};

use crate::wamp::uri::MatchPolicy;
use crate::wamp::{Dict, Id, Message, Payload, SessionId, Value};

use super::broker::Relay;
use super::mesh::{
    path_of, ChannelMessage, Interest, CHANNEL_ID, CHANNEL_TOPIC, INVOKE_ID, INVOKE_PROCEDURE,
    MESH_KEY,
};
use super::realm::Realm;
use super::types::{Now, Outbox, SessionInfo};

fn fixed(id: u64) -> Id {
    Id::new(id).unwrap_or_else(Id::random)
}

/// Options that survive a hop (black/white lists, disclosure); the rest is local.
fn forwardable_options(options: &Dict) -> Dict {
    const KEEP: [&str; 7] = [
        "exclude",
        "eligible",
        "exclude_authid",
        "eligible_authid",
        "exclude_authrole",
        "eligible_authrole",
        "disclose_me",
    ];
    options
        .iter()
        .filter(|(k, _)| KEEP.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

impl Realm {
    /// Consumes link-channel traffic of a neighbor; other messages are returned for normal handling.
    pub(super) fn handle_link_message(
        &mut self,
        session: SessionId,
        message: Message,
        now: &Now,
        out: &mut Outbox,
    ) -> Option<Message> {
        match message {
            Message::Subscribe { request, topic, .. } if topic == CHANNEL_TOPIC => {
                out.send(
                    session,
                    Message::Subscribed {
                        request,
                        subscription: fixed(CHANNEL_ID),
                    },
                );
                self.open_channel(session, out);
                None
            }
            Message::Register {
                request, procedure, ..
            } if procedure == INVOKE_PROCEDURE => {
                out.send(
                    session,
                    Message::Registered {
                        request,
                        registration: fixed(INVOKE_ID),
                    },
                );
                self.mesh.invoke_ready(session, fixed(INVOKE_ID));
                None
            }
            Message::Publish {
                options,
                topic,
                payload,
                ..
            } if topic == CHANNEL_TOPIC => {
                let body = options
                    .get(MESH_KEY)
                    .and_then(Value::as_dict)
                    .cloned()
                    .unwrap_or_default();
                if body.get("type").and_then(Value::as_str) == Some("publish") {
                    self.relay_publication(session, &body, payload, out);
                } else {
                    let notices = self.mesh.handle_channel(session, &body);
                    self.send_channel(notices, out);
                    self.sync_proxies(out);
                }
                None
            }
            Message::Call {
                request,
                mut options,
                procedure,
                payload,
            } if options.contains_key(MESH_KEY) => {
                let mesh = options.remove(MESH_KEY).and_then(|v| {
                    if let Value::Dict(d) = v {
                        Some(d)
                    } else {
                        None
                    }
                });
                let info = self.sessions.get(&session)?.clone();
                self.call(&info, request, options, procedure, payload, mesh, now, out);
                None
            }
            other => Some(other),
        }
    }

    /// A neighbor that asked for it in HELLO is attached at join: its channel subscription
    /// ([`CHANNEL_ID`]) and invoke registration ([`INVOKE_ID`]) exist without SUBSCRIBE and
    /// REGISTER, and the interest table goes out right after WELCOME.
    pub(super) fn attach_link(&mut self, session: SessionId, out: &mut Outbox) {
        self.mesh.invoke_ready(session, fixed(INVOKE_ID));
        self.open_channel(session, out);
    }

    fn open_channel(&mut self, session: SessionId, out: &mut Outbox) {
        self.refresh_own_interest(out);
        let table = self.mesh.channel_ready(session, fixed(CHANNEL_ID));
        self.send_channel(table, out);
    }

    /// A publication a neighbor forwarded: deliver here once, forward further.
    fn relay_publication(
        &mut self,
        from: SessionId,
        body: &Dict,
        payload: Payload,
        out: &mut Outbox,
    ) {
        let (Some(topic), Some(publication), Some(origin)) = (
            body.get("topic").and_then(Value::as_str),
            body.get("publication")
                .and_then(Value::as_u64)
                .and_then(Id::new),
            body.get("origin").and_then(Value::as_str),
        ) else {
            return tracing::warn!(realm = %self.name, "malformed forwarded publication dropped");
        };
        if !self.mesh.first_sighting(origin, publication.get()) {
            return;
        }
        let Some(info) = self.sessions.get(&from).cloned() else {
            return;
        };
        let options = body
            .get("options")
            .and_then(Value::as_dict)
            .cloned()
            .unwrap_or_default();
        let relay = Relay {
            publication: Some(publication),
            disclosed: body.get("publisher").and_then(Value::as_dict).cloned(),
        };
        let (topic, origin) = (topic.to_owned(), origin.to_owned());
        self.publish(
            &info,
            fixed(1),
            &options,
            &topic,
            payload,
            Some((relay, path_of(Some(body)), origin)),
            out,
        );
    }

    /// Publishes locally, then forwards once to each link whose interest matched.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn publish(
        &mut self,
        publisher: &SessionInfo,
        request: Id,
        options: &Dict,
        topic: &str,
        payload: Payload,
        relayed: Option<(Relay, Vec<String>, String)>,
        out: &mut Outbox,
    ) {
        let first = out.deliveries.len();
        let (relay, mut path, origin) = match relayed {
            Some((relay, path, origin)) => (Some(relay), path, origin),
            None => (None, Vec::new(), self.mesh.node.clone()),
        };
        let disclosed = relay.as_ref().and_then(|r| r.disclosed.clone());
        let Some(publication) = self.broker.handle_publish(
            publisher,
            request,
            options,
            topic,
            payload.clone(),
            relay,
            &self.sessions,
            out,
        ) else {
            return;
        };
        let mut links = HashSet::new();
        let tail = out.deliveries.split_off(first);
        for delivery in tail {
            if self.mesh.is_neighbor(delivery.to)
                && matches!(delivery.message.message(), Message::Event { .. })
            {
                links.insert(delivery.to);
            } else {
                out.deliveries.push(delivery);
            }
        }
        if links.is_empty() {
            return;
        }
        path.push(self.mesh.node.clone());
        let mut body = crate::dict! {
            "type" => "publish", "topic" => topic, "publication" => publication.get(), "origin" => origin,
            "path" => path.iter().map(|p| Value::from(p.as_str())).collect::<Vec<_>>(),
            "options" => forwardable_options(options),
        };
        let disclose = options
            .get("disclose_me")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        match disclosed {
            Some(d) => {
                body.insert("publisher".into(), d.into());
            }
            None if disclose => {
                let d = crate::dict! {
                    "publisher" => publisher.id.get(), "publisher_authid" => publisher.authid.clone(),
                    "publisher_authrole" => publisher.authrole.clone(),
                };
                body.insert("publisher".into(), d.into());
            }
            None => {}
        }
        for link in links {
            let behind_path = self
                .mesh
                .neighbor(link)
                .is_none_or(|n| path.contains(&n.peer));
            if !behind_path {
                self.send_on_channel(link, body.clone(), payload.clone(), out);
            }
        }
    }

    /// Routes a call, never back along `mesh.path`; invocations to links carry the path.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn call(
        &mut self,
        caller: &SessionInfo,
        request: Id,
        options: Dict,
        procedure: String,
        payload: Payload,
        mesh: Option<Dict>,
        now: &Now,
        out: &mut Outbox,
    ) {
        let mut path = path_of(mesh.as_ref());
        path.push(self.mesh.node.clone());
        let original_caller = mesh
            .as_ref()
            .and_then(|m| m.get("caller"))
            .and_then(Value::as_dict)
            .cloned();
        let avoid = self.callees_to_avoid(&procedure, &path, mesh.as_ref());
        let first = out.deliveries.len();
        self.dealer.handle_call_avoiding(
            caller,
            request,
            options,
            procedure.clone(),
            payload,
            now,
            &avoid,
            out,
        );
        for delivery in &mut out.deliveries[first..] {
            let Message::Invocation {
                request,
                registration,
                details,
                payload,
            } = delivery.message.message()
            else {
                continue;
            };
            let mut details = details.clone();
            if let Some(original) = &original_caller {
                if details.contains_key("caller") {
                    details.extend(original.clone());
                }
            }
            let mut registration = *registration;
            if self.mesh.is_neighbor(delivery.to) {
                let caller_identity: Dict = ["caller", "caller_authid", "caller_authrole"]
                    .iter()
                    .filter_map(|k| details.get(*k).map(|v| (k.to_string(), v.clone())))
                    .collect();
                let mut mesh = crate::dict! {
                    "path" => path.iter().map(|p| Value::from(p.as_str())).collect::<Vec<_>>(),
                    "targets" => self.targets_via(delivery.to, registration),
                };
                if !caller_identity.is_empty() {
                    mesh.insert("caller".into(), caller_identity.into());
                }
                details.insert("procedure".into(), procedure.clone().into());
                details.insert(MESH_KEY.into(), mesh.into());
                registration = fixed(INVOKE_ID);
            } else if original_caller.is_none() {
                continue;
            }
            let rewritten = Message::Invocation {
                request: *request,
                registration,
                details,
                payload: payload.clone(),
            };
            delivery.message = crate::wamp::SharedMessage::new(rewritten);
        }
    }

    /// Callees a call must skip: links back along its path and, for a forwarded call, callees
    /// leading to none of the nodes its sender meant it for (`targets`). If no callee leads to
    /// a target (routes changed meanwhile), only the path is avoided.
    fn callees_to_avoid(
        &self,
        procedure: &str,
        path: &[String],
        mesh: Option<&Dict>,
    ) -> Vec<SessionId> {
        let mut avoid: Vec<SessionId> = self
            .mesh
            .neighbors()
            .filter(|(_, n)| path.contains(&n.peer))
            .map(|(s, _)| *s)
            .collect();
        let Some(targets) = mesh.and_then(|m| m.get("targets")).and_then(Value::as_list) else {
            return avoid;
        };
        let targets: Vec<&str> = targets.iter().filter_map(Value::as_str).collect();
        let Some(id) = self.dealer.registration_match(procedure) else {
            return avoid;
        };
        let callees = self.dealer.registration_callees(id).unwrap_or_default();
        let usable: Vec<SessionId> = callees.into_iter().filter(|s| !avoid.contains(s)).collect();
        let on_target = |s: SessionId| match self.mesh.is_neighbor(s) {
            true => targets.iter().any(|t| self.mesh.route_to(t) == Some(s)),
            false => targets.contains(&self.mesh.node.as_str()),
        };
        let off: Vec<SessionId> = usable.iter().copied().filter(|s| !on_target(*s)).collect();
        if off.len() < usable.len() {
            avoid.extend(off);
        }
        avoid
    }

    /// The origins behind `link` that registered what `registration` is: a call's targets there.
    fn targets_via(&self, link: SessionId, registration: Id) -> Vec<Value> {
        let Some(details) = self.dealer.registration_get(registration) else {
            return Vec::new();
        };
        let uri = details.get("uri").and_then(Value::as_str);
        let policy = MatchPolicy::parse(details.get("match").and_then(Value::as_str));
        let (Some(uri), Some(policy)) = (uri, policy) else {
            return Vec::new();
        };
        self.mesh
            .origins_via(link, uri, policy)
            .into_iter()
            .map(Value::from)
            .collect()
    }

    /// Meta events since `first` are published; interest changes are advertised.
    pub(super) fn after_change(&mut self, first: usize, out: &mut Outbox) {
        // Every meta event is a subscription or registration change.
        let interest_changed = out.meta.len() > first;
        self.publish_meta(first, out);
        if interest_changed && self.mesh.neighbors().next().is_some() {
            self.refresh_own_interest(out);
        }
    }

    /// Recomputes what our own clients are interested in and advertises a change.
    fn refresh_own_interest(&mut self, out: &mut Outbox) {
        {
            let mesh = &self.mesh;
            let is_link = |s: SessionId| mesh.is_neighbor(s);
            let mut own: BTreeSet<Interest> =
                self.broker.local_interest(is_link).into_iter().collect();
            own.extend(self.dealer.local_interest(is_link));
            let ads = self.mesh.set_own_interest(own);
            self.send_channel(ads, out);
        }
    }

    /// Makes each link's proxy subscriptions/registrations match what the mesh routes through it.
    ///
    /// Every link's stale proxies go before any new one is made: when a route moves from one
    /// link to another, the registration must be free before the new link registers it (a
    /// `single` registration refuses a second callee, and the old one's removal would then
    /// leave none).
    pub(super) fn sync_proxies(&mut self, out: &mut Outbox) {
        let wanted = self.mesh.routed_interest();
        let links: Vec<SessionId> = self.mesh.neighbors().map(|(s, _)| *s).collect();
        let first_meta = out.meta.len();
        let mut scratch = Outbox::default();
        let now = Now::read();
        let mut changes = Vec::new();
        for link in links {
            let Some(info) = self.sessions.get(&link).cloned() else {
                continue;
            };
            let want = wanted.get(&link).cloned().unwrap_or_default();
            let have = self.proxies.remove(&link).unwrap_or_default();
            for gone in have.difference(&want) {
                self.drop_proxy(link, gone, &mut scratch);
            }
            changes.push((info, want, have));
        }
        for (info, want, have) in changes {
            for new in want.difference(&have) {
                self.add_proxy(&info, new, &now, &mut scratch);
            }
            self.proxies.insert(info.id, want);
        }
        // Replies to the proxy requests are internal; their meta events are real.
        out.meta.append(&mut scratch.meta);
        self.publish_meta(first_meta, out);
    }

    fn add_proxy(&mut self, link: &SessionInfo, interest: &Interest, now: &Now, out: &mut Outbox) {
        let mut options = crate::dict! { "match" => interest.policy.as_str() };
        match &interest.invoke {
            None => {
                self.broker
                    .handle_subscribe(link.id, fixed(1), &options, &interest.uri, now, out)
            }
            Some(invoke) => {
                options.insert("invoke".into(), invoke.clone().into());
                self.dealer
                    .handle_register(link, fixed(1), &options, &interest.uri, now, out);
            }
        }
    }

    fn drop_proxy(&mut self, link: SessionId, interest: &Interest, out: &mut Outbox) {
        match &interest.invoke {
            None => {
                if let Some(id) = self
                    .broker
                    .subscription_lookup(&interest.uri, interest.policy)
                {
                    self.broker.handle_unsubscribe(link, fixed(1), id, out);
                }
            }
            Some(_) => {
                if let Some(id) = self
                    .dealer
                    .registration_lookup(&interest.uri, interest.policy)
                {
                    self.dealer.handle_unregister(link, fixed(1), id, out);
                }
            }
        }
    }

    pub(super) fn send_channel(&self, messages: Vec<ChannelMessage>, out: &mut Outbox) {
        for m in messages {
            self.send_on_channel(m.to, m.body, Payload::default(), out);
        }
    }

    fn send_on_channel(&self, link: SessionId, body: Dict, payload: Payload, out: &mut Outbox) {
        let Some(subscription) = self.mesh.neighbor(link).and_then(|n| n.channel) else {
            return;
        };
        let details = crate::dict! { MESH_KEY => body };
        out.send(
            link,
            Message::Event {
                subscription,
                publication: Id::random(),
                details,
                payload,
            },
        );
    }
}
