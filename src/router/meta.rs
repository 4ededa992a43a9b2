//! The WAMP meta API: `wamp.session.*`, `wamp.subscription.*` and `wamp.registration.*`
//! procedures answered by the realm itself, and the meta events it publishes.

use crate::wamp::uri::{reason, MatchPolicy};
use crate::wamp::{Dict, Id, Message, Payload, SessionId, Value};

use super::realm::Realm;
use super::types::MetaEvent;

/// A meta procedure's answer: a result payload, or an error URI.
pub type Answer = Result<Value, &'static str>;

/// Answers `procedure` if it is a meta procedure; `None` lets the dealer route it.
pub fn call(realm: &Realm, procedure: &str, payload: &Payload) -> Option<Answer> {
    let args: &[Value] = payload.args.as_deref().unwrap_or(&[]);
    let id_arg = || args.first().and_then(Value::as_u64).and_then(Id::new);
    let str_arg = || args.first().and_then(Value::as_str);
    let policy_arg = || {
        let options = args.get(1).and_then(Value::as_dict);
        MatchPolicy::parse(options.and_then(|o| o.get("match")).and_then(Value::as_str))
    };
    let ids =
        |list: Vec<SessionId>| Value::List(list.into_iter().map(|s| s.get().into()).collect());
    let found = |id: Option<Id>| id.map_or(Value::Null, |i| i.get().into());
    Some(match procedure {
        "wamp.session.count" => Ok((sessions_with_roles(realm, args.first()).len() as u64).into()),
        "wamp.session.list" => Ok(ids(sessions_with_roles(realm, args.first()))),
        "wamp.session.get" => id_arg()
            .and_then(|id| realm.sessions.get(&id))
            .map(|s| s.meta_details().into())
            .ok_or(reason::NO_SUCH_SESSION),
        "wamp.subscription.list" => Ok(realm.broker.subscription_list().into()),
        "wamp.subscription.lookup" => match (str_arg(), policy_arg()) {
            (Some(topic), Some(policy)) => {
                Ok(found(realm.broker.subscription_lookup(topic, policy)))
            }
            _ => Err(reason::INVALID_ARGUMENT),
        },
        "wamp.subscription.match" => match str_arg() {
            Some(topic) => {
                let matched = realm.broker.matching(topic);
                Ok(if matched.is_empty() {
                    Value::Null
                } else {
                    Value::List(matched.into_iter().map(|i| i.get().into()).collect())
                })
            }
            None => Err(reason::INVALID_ARGUMENT),
        },
        "wamp.subscription.get" => id_arg()
            .and_then(|id| realm.broker.subscription_get(id))
            .map(Value::Dict)
            .ok_or(reason::NO_SUCH_SUBSCRIPTION),
        "wamp.subscription.list_subscribers" => id_arg()
            .and_then(|id| realm.broker.subscribers(id))
            .map(ids)
            .ok_or(reason::NO_SUCH_SUBSCRIPTION),
        "wamp.subscription.count_subscribers" => id_arg()
            .and_then(|id| realm.broker.subscribers(id))
            .map(|s| (s.len() as u64).into())
            .ok_or(reason::NO_SUCH_SUBSCRIPTION),
        "wamp.registration.list" => Ok(realm.dealer.registration_list().into()),
        "wamp.registration.lookup" => match (str_arg(), policy_arg()) {
            (Some(uri), Some(policy)) => Ok(found(realm.dealer.registration_lookup(uri, policy))),
            _ => Err(reason::INVALID_ARGUMENT),
        },
        "wamp.registration.match" => match str_arg() {
            Some(uri) => Ok(found(realm.dealer.registration_match(uri))),
            None => Err(reason::INVALID_ARGUMENT),
        },
        "wamp.registration.get" => id_arg()
            .and_then(|id| realm.dealer.registration_get(id))
            .map(Value::Dict)
            .ok_or(reason::NO_SUCH_REGISTRATION),
        "wamp.registration.list_callees" => id_arg()
            .and_then(|id| realm.dealer.registration_callees(id))
            .map(ids)
            .ok_or(reason::NO_SUCH_REGISTRATION),
        "wamp.registration.count_callees" => id_arg()
            .and_then(|id| realm.dealer.registration_callees(id))
            .map(|c| (c.len() as u64).into())
            .ok_or(reason::NO_SUCH_REGISTRATION),
        _ => return None,
    })
}

/// Sessions, optionally only those whose authrole is in the list given as first argument.
fn sessions_with_roles(realm: &Realm, roles: Option<&Value>) -> Vec<SessionId> {
    let roles: Option<Vec<&str>> = roles
        .and_then(Value::as_list)
        .map(|l| l.iter().filter_map(Value::as_str).collect());
    realm
        .sessions
        .values()
        .filter(|s| {
            roles
                .as_ref()
                .is_none_or(|r| r.contains(&s.authrole.as_str()))
        })
        .map(|s| s.id)
        .collect()
}

/// The RESULT or ERROR for a meta call.
pub fn reply(request: Id, answer: Answer) -> Message {
    match answer {
        Ok(value) => Message::Result {
            request,
            details: Dict::new(),
            payload: Payload::args(vec![value]),
        },
        Err(error) => Message::Error {
            request_type: crate::wamp::code::CALL,
            request,
            details: Dict::new(),
            error: error.to_owned(),
            payload: Payload::default(),
        },
    }
}

/// The topic and arguments of a meta event.
pub fn event_publication(event: MetaEvent) -> (&'static str, Vec<Value>) {
    let pair = |s: SessionId, id: Id| vec![s.get().into(), id.get().into()];
    match event {
        MetaEvent::SubscriptionCreated { session, details } => (
            "wamp.subscription.on_create",
            vec![session.get().into(), details.into()],
        ),
        MetaEvent::SubscriptionAdded {
            session,
            subscription,
        } => (
            "wamp.subscription.on_subscribe",
            pair(session, subscription),
        ),
        MetaEvent::SubscriptionRemoved {
            session,
            subscription,
        } => (
            "wamp.subscription.on_unsubscribe",
            pair(session, subscription),
        ),
        MetaEvent::SubscriptionDeleted {
            session,
            subscription,
        } => ("wamp.subscription.on_delete", pair(session, subscription)),
        MetaEvent::RegistrationCreated { session, details } => (
            "wamp.registration.on_create",
            vec![session.get().into(), details.into()],
        ),
        MetaEvent::RegistrationAdded {
            session,
            registration,
        } => ("wamp.registration.on_register", pair(session, registration)),
        MetaEvent::RegistrationRemoved {
            session,
            registration,
        } => (
            "wamp.registration.on_unregister",
            pair(session, registration),
        ),
        MetaEvent::RegistrationDeleted {
            session,
            registration,
        } => ("wamp.registration.on_delete", pair(session, registration)),
    }
}
