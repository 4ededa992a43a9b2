//! The broker: subscriptions (exact, prefix, wildcard) and publication fan-out, without I/O.
//!
//! One EVENT is built per matching subscription and shared (one `Arc`, bytes encoded once per
//! serializer) by all of that subscription's subscribers.

use std::collections::{HashMap, HashSet};

use crate::wamp::uri::{self, reason, MatchPolicy};
use crate::wamp::{code, Dict, Id, IdSequence, Message, Payload, SessionId, SharedMessage, Value};

use super::types::{MetaEvent, Now, Outbox, SessionInfo, Sessions};

/// One subscription: a (uri, match policy) pair and the sessions subscribed to it.
#[derive(Debug)]
struct Subscription {
    uri: String,
    policy: MatchPolicy,
    created: String,
    subscribers: HashSet<SessionId>,
}

/// A publication relayed from another node: its mesh-wide id and its original publisher.
#[derive(Debug, Clone, Default)]
pub struct Relay {
    pub publication: Option<Id>,
    /// `{publisher, publisher_authid, publisher_authrole}` as disclosed at the origin.
    pub disclosed: Option<Dict>,
}

/// Subscriptions and fan-out.
#[derive(Debug, Default)]
pub struct Broker {
    subscriptions: HashMap<Id, Subscription>,
    /// (policy, uri) -> subscription id.
    index: HashMap<(MatchPolicy, String), Id>,
    /// Pattern subscriptions, scanned on publish (exact ones are found through `index`).
    prefixes: HashMap<String, Id>,
    wildcards: HashMap<String, Id>,
    by_session: HashMap<SessionId, HashSet<Id>>,
    ids: IdSequence,
}

impl Broker {
    pub fn new() -> Broker {
        Broker::default()
    }

    pub fn handle_subscribe(
        &mut self,
        session: SessionId,
        request: Id,
        options: &Dict,
        topic: &str,
        now: &Now,
        out: &mut Outbox,
    ) {
        let Some(policy) = MatchPolicy::parse(options.get("match").and_then(Value::as_str)) else {
            return out.error(session, code::SUBSCRIBE, request, reason::INVALID_ARGUMENT);
        };
        if !uri::is_valid_pattern(topic, policy) {
            return out.error(session, code::SUBSCRIBE, request, reason::INVALID_URI);
        }
        let key = (policy, topic.to_owned());
        let id = match self.index.get(&key) {
            Some(id) => *id,
            None => {
                let id = self.ids.next_id();
                let created = now.iso8601();
                out.meta(MetaEvent::SubscriptionCreated {
                    session,
                    details: crate::dict! {
                        "id" => id.get(), "created" => created.clone(),
                        "uri" => topic, "match" => policy.as_str(),
                    },
                });
                self.subscriptions.insert(
                    id,
                    Subscription {
                        uri: topic.to_owned(),
                        policy,
                        created,
                        subscribers: HashSet::new(),
                    },
                );
                match policy {
                    MatchPolicy::Exact => {}
                    MatchPolicy::Prefix => {
                        self.prefixes.insert(topic.to_owned(), id);
                    }
                    MatchPolicy::Wildcard => {
                        self.wildcards.insert(topic.to_owned(), id);
                    }
                }
                self.index.insert(key, id);
                id
            }
        };
        let added = self
            .subscriptions
            .get_mut(&id)
            .is_some_and(|s| s.subscribers.insert(session));
        self.by_session.entry(session).or_default().insert(id);
        out.send(
            session,
            Message::Subscribed {
                request,
                subscription: id,
            },
        );
        if added {
            out.meta(MetaEvent::SubscriptionAdded {
                session,
                subscription: id,
            });
        }
    }

    pub fn handle_unsubscribe(
        &mut self,
        session: SessionId,
        request: Id,
        subscription: Id,
        out: &mut Outbox,
    ) {
        if self.remove_subscriber(session, subscription, out) {
            if let Some(ids) = self.by_session.get_mut(&session) {
                ids.remove(&subscription);
            }
            out.send(
                session,
                Message::Unsubscribed {
                    request: Some(request),
                    details: None,
                },
            );
        } else {
            out.error(
                session,
                code::UNSUBSCRIBE,
                request,
                reason::NO_SUCH_SUBSCRIPTION,
            );
        }
    }

    /// Drops every subscription of a session that left.
    pub fn handle_session_leave(&mut self, session: SessionId, out: &mut Outbox) {
        for id in self.by_session.remove(&session).unwrap_or_default() {
            self.remove_subscriber(session, id, out);
        }
    }

    fn remove_subscriber(&mut self, session: SessionId, id: Id, out: &mut Outbox) -> bool {
        let Some(sub) = self.subscriptions.get_mut(&id) else {
            return false;
        };
        if !sub.subscribers.remove(&session) {
            return false;
        }
        out.meta(MetaEvent::SubscriptionRemoved {
            session,
            subscription: id,
        });
        if sub.subscribers.is_empty() {
            if let Some(sub) = self.subscriptions.remove(&id) {
                match sub.policy {
                    MatchPolicy::Exact => {}
                    MatchPolicy::Prefix => {
                        self.prefixes.remove(&sub.uri);
                    }
                    MatchPolicy::Wildcard => {
                        self.wildcards.remove(&sub.uri);
                    }
                }
                self.index.remove(&(sub.policy, sub.uri));
            }
            out.meta(MetaEvent::SubscriptionDeleted {
                session,
                subscription: id,
            });
        }
        true
    }

    /// PUBLISH from a session. `sessions` resolves authid/authrole for black/white lists;
    /// `relay` is set for publications forwarded by a router link (whose session is always
    /// excluded). Returns the publication id, `None` if refused.
    #[allow(clippy::too_many_arguments)]
    pub fn handle_publish(
        &mut self,
        publisher: &SessionInfo,
        request: Id,
        options: &Dict,
        topic: &str,
        payload: Payload,
        relay: Option<Relay>,
        sessions: &Sessions,
        out: &mut Outbox,
    ) -> Option<Id> {
        let acknowledge = options
            .get("acknowledge")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if !uri::is_valid_uri(topic) {
            if acknowledge {
                out.error(publisher.id, code::PUBLISH, request, reason::INVALID_URI);
            }
            return None;
        }
        let relay = relay.unwrap_or_default();
        let relayed = relay.disclosed.is_some() || relay.publication.is_some();
        let publication = relay.publication.unwrap_or_else(Id::random);
        let mut details = Dict::new();
        if options
            .get("disclose_me")
            .and_then(Value::as_bool)
            .unwrap_or(false)
        {
            match relay.disclosed {
                Some(disclosed) => details.extend(disclosed),
                None => {
                    details.insert("publisher".into(), publisher.id.get().into());
                    details.insert("publisher_authid".into(), publisher.authid.clone().into());
                    details.insert(
                        "publisher_authrole".into(),
                        publisher.authrole.clone().into(),
                    );
                }
            }
        }
        let exclude_me = relayed
            || options
                .get("exclude_me")
                .and_then(Value::as_bool)
                .unwrap_or(true);
        let filter = Filter::from_options(options, exclude_me.then_some(publisher.id));
        self.fan_out(
            topic,
            publication,
            details,
            &payload,
            &filter,
            sessions,
            out,
        );
        if acknowledge {
            out.send(
                publisher.id,
                Message::Published {
                    request,
                    publication,
                },
            );
        }
        Some(publication)
    }

    /// A publication the router itself makes (meta events).
    pub fn publish_internal(&mut self, topic: &str, payload: Payload, out: &mut Outbox) {
        let filter = Filter::default();
        let sessions = HashMap::new();
        self.fan_out(
            topic,
            Id::random(),
            Dict::new(),
            &payload,
            &filter,
            &sessions,
            out,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn fan_out(
        &self,
        topic: &str,
        publication: Id,
        details: Dict,
        payload: &Payload,
        filter: &Filter,
        sessions: &Sessions,
        out: &mut Outbox,
    ) {
        for id in self.matching(topic) {
            let Some(sub) = self.subscriptions.get(&id) else {
                continue;
            };
            let mut receivers = sub
                .subscribers
                .iter()
                .filter(|s| filter.admits(**s, sessions))
                .peekable();
            if receivers.peek().is_none() {
                continue;
            }
            let mut details = details.clone();
            if sub.policy != MatchPolicy::Exact {
                details.insert("topic".into(), topic.into());
            }
            let event = SharedMessage::new(Message::Event {
                subscription: id,
                publication,
                details,
                payload: payload.clone(),
            });
            for session in receivers {
                out.send_shared(*session, &event);
            }
        }
    }

    /// Every subscription whose pattern matches `topic`, each once.
    pub fn matching(&self, topic: &str) -> Vec<Id> {
        let mut found = Vec::new();
        if let Some(id) = self.index.get(&(MatchPolicy::Exact, topic.to_owned())) {
            found.push(*id);
        }
        if self.prefixes.len() <= topic.len() {
            found.extend(
                self.prefixes
                    .iter()
                    .filter(|(p, _)| topic.starts_with(p.as_str()))
                    .map(|(_, id)| *id),
            );
        } else {
            let cuts = topic.char_indices().map(|(i, _)| i).chain([topic.len()]);
            found.extend(cuts.filter_map(|i| self.prefixes.get(&topic[..i])).copied());
        }
        found.extend(
            self.wildcards
                .iter()
                .filter(|(p, _)| uri::matches(MatchPolicy::Wildcard, p, topic))
                .map(|(_, id)| *id),
        );
        found
    }

    /// Subscriptions with at least one subscriber for which `is_link` is false, as mesh
    /// interest (router-internal `wamp.` and `wampmesh.` topics are never advertised).
    pub fn local_interest(
        &self,
        is_link: impl Fn(SessionId) -> bool,
    ) -> Vec<crate::router::mesh::Interest> {
        self.subscriptions
            .values()
            .filter(|s| !s.uri.starts_with("wamp.") && !s.uri.starts_with("wampmesh."))
            .filter(|s| s.subscribers.iter().any(|m| !is_link(*m)))
            .map(|s| crate::router::mesh::Interest {
                uri: s.uri.clone(),
                policy: s.policy,
                invoke: None,
            })
            .collect()
    }

    // ---- meta API queries ----

    pub fn subscription_list(&self) -> Dict {
        let mut lists: [Vec<Value>; 3] = Default::default();
        for (id, sub) in &self.subscriptions {
            lists[sub.policy as usize].push(id.get().into());
        }
        let [exact, prefix, wildcard] = lists;
        crate::dict! { "exact" => exact, "prefix" => prefix, "wildcard" => wildcard }
    }

    pub fn subscription_lookup(&self, topic: &str, policy: MatchPolicy) -> Option<Id> {
        self.index.get(&(policy, topic.to_owned())).copied()
    }

    pub fn subscription_get(&self, id: Id) -> Option<Dict> {
        self.subscriptions.get(&id).map(|s| {
            crate::dict! {
                "id" => id.get(), "created" => s.created.clone(),
                "uri" => s.uri.clone(), "match" => s.policy.as_str(),
            }
        })
    }

    pub fn subscribers(&self, id: Id) -> Option<Vec<SessionId>> {
        self.subscriptions
            .get(&id)
            .map(|s| s.subscribers.iter().copied().collect())
    }
}

/// Subscriber black/white listing (all conditions ANDed) plus publisher exclusion.
#[derive(Debug, Default)]
struct Filter {
    exclude_session: Option<SessionId>,
    exclude: Option<HashSet<u64>>,
    eligible: Option<HashSet<u64>>,
    exclude_authid: Option<HashSet<String>>,
    eligible_authid: Option<HashSet<String>>,
    exclude_authrole: Option<HashSet<String>>,
    eligible_authrole: Option<HashSet<String>>,
}

impl Filter {
    fn from_options(options: &Dict, exclude_session: Option<SessionId>) -> Filter {
        let ids = |key: &str| {
            options
                .get(key)
                .and_then(Value::as_list)
                .map(|l| l.iter().filter_map(Value::as_u64).collect())
        };
        let names = |key: &str| {
            options.get(key).and_then(Value::as_list).map(|l| {
                l.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
        };
        Filter {
            exclude_session,
            exclude: ids("exclude"),
            eligible: ids("eligible"),
            exclude_authid: names("exclude_authid"),
            eligible_authid: names("eligible_authid"),
            exclude_authrole: names("exclude_authrole"),
            eligible_authrole: names("eligible_authrole"),
        }
    }

    fn admits(&self, session: SessionId, sessions: &Sessions) -> bool {
        if self.exclude_session == Some(session) {
            return false;
        }
        let by_id = self.exclude.is_some() || self.eligible.is_some();
        let by_auth = self.exclude_authid.is_some()
            || self.eligible_authid.is_some()
            || self.exclude_authrole.is_some()
            || self.eligible_authrole.is_some();
        if !by_id && !by_auth {
            return true;
        }
        let Some(info) = sessions.get(&session) else {
            return false;
        };
        // A router link carries the lists onward: the node where the subscribers are applies them.
        if info.authrole == crate::router::mesh::LINK_ROLE {
            return true;
        }
        let id = session.get();
        if self.exclude.as_ref().is_some_and(|s| s.contains(&id))
            || self.eligible.as_ref().is_some_and(|s| !s.contains(&id))
        {
            return false;
        }
        let listed =
            |set: &Option<HashSet<String>>, value: &str| set.as_ref().map(|s| s.contains(value));
        listed(&self.exclude_authid, &info.authid) != Some(true)
            && listed(&self.eligible_authid, &info.authid) != Some(false)
            && listed(&self.exclude_authrole, &info.authrole) != Some(true)
            && listed(&self.eligible_authrole, &info.authrole) != Some(false)
    }
}
