//! Socket-free tests of the realm: fake sessions in, the exact messages of the outbox out.
//! This module owns the shared fixture (the realm config with its roles, the `session(n, role)`
//! builder, the fake clock, [`Fixture`] and the EVENT helpers); one file per area below:
//! pub/sub routing and black/white listing, refusals (URIs, authorization), the meta API's
//! events and procedures, the realm's dispatch to the dealer (which has its own tests),
//! session leave, and router links attached at join.

mod authorization;
mod leave;
mod links;
mod meta_events;
mod meta_procedures;
mod pubsub;
mod rpc;

use std::collections::BTreeSet;
use std::time::Instant;

use crate::config::{Permission, RealmConfig, RoleConfig};
use crate::dict;
use crate::router::authorize::Authorizer;
use crate::router::realm::Realm;
use crate::router::types::{Delivery, Features, Now, Outbox, SessionInfo};
use crate::wamp::uri::MatchPolicy;
use crate::wamp::{code, Dict, Id, Message, Payload, Value};

fn id(n: u64) -> Id {
    Id::new(n).expect("test ids are in range")
}

fn permission(uri: &str, policy: MatchPolicy, actions: &str) -> Permission {
    Permission {
        uri: uri.to_owned(),
        policy,
        call: actions.contains('c'),
        register: actions.contains('r'),
        publish: actions.contains('p'),
        subscribe: actions.contains('s'),
    }
}

/// Roles: `member` may do everything, `guest` too (a second role for role filters),
/// `reader` may subscribe and call, `nobody` may do nothing.
fn realm_config() -> RealmConfig {
    let role = |name: &str, permissions| RoleConfig {
        name: name.to_owned(),
        permissions,
    };
    RealmConfig {
        name: "realm1".into(),
        roles: vec![
            role("member", vec![Permission::everything()]),
            role("guest", vec![Permission::everything()]),
            role("reader", vec![permission("", MatchPolicy::Prefix, "cs")]),
            role("nobody", vec![]),
        ],
    }
}

/// A session with authid `user<n>`, announcing the callee features autobahn announces.
fn session(n: u64, role: &str) -> SessionInfo {
    let features = dict! { "call_canceling" => true, "progressive_call_results" => true };
    SessionInfo {
        id: id(n),
        authid: format!("user{n}"),
        authrole: role.to_owned(),
        authmethod: "anonymous".into(),
        authprovider: "static".into(),
        features: Features::from_roles(Some(
            &dict! { "callee" => dict! { "features" => features } },
        )),
        transport: dict! { "type" => "fake" }.into(),
        attach_link: false,
    }
}

const T0_UNIX_MS: u64 = 1_403_455_901_643;

struct Fixture {
    realm: Realm,
    out: Outbox,
    now: Now,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            realm: Realm::new("realm1", Authorizer::from_config(&realm_config())),
            out: Outbox::default(),
            now: Now {
                instant: Instant::now(),
                unix_ms: T0_UNIX_MS,
            },
        }
    }

    /// Joins session `n` with `role` and clears the outbox.
    fn join(&mut self, n: u64, role: &str) {
        self.realm
            .join(session(n, role), &mut self.out)
            .expect("join");
        self.sent();
    }

    fn handle(&mut self, n: u64, message: Message) {
        let now = self.now;
        self.realm.handle(id(n), message, &now, &mut self.out);
    }

    fn leave(&mut self, n: u64) {
        self.realm.leave(id(n), &mut self.out);
    }

    /// Deliveries since the last call, as (session, message); clears the meta list too.
    fn sent(&mut self) -> Vec<(u64, Message)> {
        self.deliveries()
            .into_iter()
            .map(|d| (d.to.get(), d.message.message().clone()))
            .collect()
    }

    fn deliveries(&mut self) -> Vec<Delivery> {
        self.out.meta.clear();
        std::mem::take(&mut self.out.deliveries)
    }

    /// Subscribes and returns the subscription id.
    fn subscribe(&mut self, n: u64, topic: &str, policy: &str) -> Id {
        let options = match policy {
            "exact" => Dict::new(),
            other => dict! { "match" => other },
        };
        self.handle(
            n,
            Message::Subscribe {
                request: id(100),
                options,
                topic: topic.into(),
            },
        );
        match self.sent().as_slice() {
            [(
                to,
                Message::Subscribed {
                    request,
                    subscription,
                },
            )] if *to == n => {
                assert_eq!(request.get(), 100);
                *subscription
            }
            other => panic!("expected SUBSCRIBED to {n}, got {other:?}"),
        }
    }

    /// Subscribes and returns the subscription id, ignoring whatever else was delivered.
    fn subscribe_any(&mut self, n: u64, topic: &str) -> Id {
        let message = Message::Subscribe {
            request: id(101),
            options: Dict::new(),
            topic: topic.into(),
        };
        self.handle(n, message);
        self.sent()
            .into_iter()
            .find_map(|(to, m)| match m {
                Message::Subscribed { subscription, .. } if to == n => Some(subscription),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no SUBSCRIBED for {topic}"))
    }

    fn publish(&mut self, n: u64, request: u64, options: Dict, topic: &str, payload: Payload) {
        let message = Message::Publish {
            request: id(request),
            options,
            topic: topic.into(),
            payload,
        };
        self.handle(n, message);
    }

    /// Registers and returns the registration id.
    fn register(&mut self, n: u64, procedure: &str) -> Id {
        self.handle(
            n,
            Message::Register {
                request: id(200),
                options: Dict::new(),
                procedure: procedure.into(),
            },
        );
        match self.sent().as_slice() {
            [(to, Message::Registered { registration, .. })] if *to == n => *registration,
            other => panic!("expected REGISTERED to {n}, got {other:?}"),
        }
    }

    fn call(&mut self, n: u64, request: u64, procedure: &str, args: Vec<Value>) {
        let message = Message::Call {
            request: id(request),
            options: Dict::new(),
            procedure: procedure.into(),
            payload: Payload::args(args),
        };
        self.handle(n, message);
    }

    /// Calls a meta procedure as session `n`: the single RESULT argument, or the ERROR URI.
    fn meta(&mut self, n: u64, procedure: &str, args: Vec<Value>) -> Result<Value, String> {
        self.call(n, 300, procedure, args);
        match self.sent().as_slice() {
            [(
                to,
                Message::Result {
                    request, payload, ..
                },
            )] if *to == n => {
                assert_eq!(request.get(), 300);
                match payload.args.as_deref() {
                    Some([value]) => Ok(value.clone()),
                    other => panic!("{procedure}: expected one result argument, got {other:?}"),
                }
            }
            [(
                to,
                Message::Error {
                    request_type: code::CALL,
                    error,
                    ..
                },
            )] if *to == n => Err(error.clone()),
            other => panic!("{procedure}: expected RESULT or ERROR to {n}, got {other:?}"),
        }
    }
}

/// The sessions an EVENT went to, sorted.
fn receivers(sent: &[(u64, Message)]) -> Vec<u64> {
    let mut to: Vec<u64> = sent
        .iter()
        .filter(|(_, m)| matches!(m, Message::Event { .. }))
        .map(|(to, _)| *to)
        .collect();
    to.sort_unstable();
    to
}

fn event_parts(message: &Message) -> (Id, Id, &Dict, &Payload) {
    match message {
        Message::Event {
            subscription,
            publication,
            details,
            payload,
        } => (*subscription, *publication, details, payload),
        other => panic!("expected EVENT, got {other:?}"),
    }
}

fn ids(values: &Value) -> BTreeSet<u64> {
    values
        .as_list()
        .expect("a list")
        .iter()
        .map(|v| v.as_u64().expect("an id"))
        .collect()
}
