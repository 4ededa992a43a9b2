//! Socket-free tests of the realm: fake sessions in, the exact messages of the outbox out.
//! Pub/sub routing, black/white listing, authorization, the meta API and its events, session
//! leave, and the realm's dispatch to the dealer (which has its own tests).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::realm::{JoinError, Realm};
use super::types::{Delivery, Now, Outbox, SessionInfo};
use crate::config::{Permission, RealmConfig, RoleConfig};
use crate::dict;
use crate::router::authorize::Authorizer;
use crate::wamp::uri::{reason, MatchPolicy};
use crate::wamp::{code, Dict, Id, Message, Payload, Serializer, Value};

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
        roles: dict! { "callee" => dict! { "features" => features } },
        transport: dict! { "type" => "fake" },
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

// ---- pub/sub ----

#[test]
fn exact_prefix_and_wildcard_subscriptions_get_one_event_each_with_topic() {
    let mut f = Fixture::new();
    for n in 1..=6 {
        f.join(n, "member");
    }
    let exact = f.subscribe(1, "com.a.b", "exact");
    let prefix = f.subscribe(2, "com.a", "prefix");
    let wildcard = f.subscribe(3, "com..b", "wildcard");
    // Session 4 holds two matching subscriptions (the same ones as 2 and 3): two events.
    assert_eq!(f.subscribe(4, "com.a", "prefix"), prefix);
    assert_eq!(f.subscribe(4, "com..b", "wildcard"), wildcard);
    f.subscribe(5, "com.x", "prefix");
    let payload = Payload::new(vec![1u64.into()], dict! { "k" => "v" });
    f.publish(6, 1, Dict::new(), "com.a.b", payload.clone());
    let sent = f.sent();
    assert_eq!(receivers(&sent), vec![1, 2, 3, 4, 4]);
    let publications: BTreeSet<Id> = sent.iter().map(|(_, m)| event_parts(m).1).collect();
    assert_eq!(publications.len(), 1, "one publication id for all events");
    for (to, message) in &sent {
        let (subscription, _, details, got) = event_parts(message);
        assert_eq!(got, &payload);
        let expected = match *to {
            1 => exact,
            2 => prefix,
            3 => wildcard,
            4 => subscription,
            other => panic!("event to {other}"),
        };
        assert_eq!(subscription, expected);
        if subscription == exact {
            assert_eq!(details, &Dict::new(), "exact events carry no topic");
        } else {
            assert_eq!(details, &dict! { "topic" => "com.a.b" });
        }
    }
    let to_four: BTreeSet<Id> = sent
        .iter()
        .filter(|(to, _)| *to == 4)
        .map(|(_, m)| event_parts(m).0)
        .collect();
    assert_eq!(to_four, BTreeSet::from([prefix, wildcard]));
    // Only the matching patterns: a prefix matches on characters, not components.
    f.publish(6, 2, Dict::new(), "com.ab.c", Payload::default());
    assert_eq!(receivers(&f.sent()), vec![2, 4]);
    f.publish(6, 3, Dict::new(), "com.y.b", Payload::default());
    assert_eq!(receivers(&f.sent()), vec![3, 4]);
    f.publish(6, 4, Dict::new(), "com.a.b.c", Payload::default());
    assert_eq!(receivers(&f.sent()), vec![2, 4]);
    f.publish(6, 5, Dict::new(), "org.a.b", Payload::default());
    assert_eq!(receivers(&f.sent()), Vec::<u64>::new());
}

#[test]
fn subscribers_of_one_subscription_share_one_event() {
    let mut f = Fixture::new();
    for n in 1..=5 {
        f.join(n, "member");
    }
    let subscription = f.subscribe(1, "com.t", "exact");
    for n in 2..=4 {
        assert_eq!(
            f.subscribe(n, "com.t", "exact"),
            subscription,
            "same subscription"
        );
    }
    let prefix = f.subscribe(4, "com.", "prefix");
    f.publish(5, 1, Dict::new(), "com.t", Payload::args(vec!["x".into()]));
    let deliveries = f.deliveries();
    assert_eq!(deliveries.len(), 5);
    let (exact_events, prefix_events): (Vec<&Delivery>, Vec<&Delivery>) = deliveries
        .iter()
        .partition(|d| event_parts(d.message.message()).0 == subscription);
    assert_eq!(exact_events.len(), 4);
    assert_eq!(prefix_events.len(), 1);
    let first = &exact_events[0].message;
    for delivery in &exact_events {
        assert!(
            Arc::ptr_eq(first, &delivery.message),
            "serialize once: one Arc per subscription"
        );
    }
    // So the bytes are encoded once per serializer and shared.
    let a = exact_events[0]
        .message
        .encoded(Serializer::MsgPack)
        .expect("encode");
    let b = exact_events[3]
        .message
        .encoded(Serializer::MsgPack)
        .expect("encode");
    assert_eq!(a.as_ptr(), b.as_ptr());
    // The prefix subscription has its own EVENT (its details carry the topic).
    assert!(!Arc::ptr_eq(first, &prefix_events[0].message));
    assert_eq!(event_parts(prefix_events[0].message.message()).0, prefix);
}

#[test]
fn publisher_is_excluded_unless_exclude_me_is_false() {
    let mut f = Fixture::new();
    f.join(1, "member");
    f.join(2, "member");
    f.subscribe(1, "com.t", "exact");
    f.subscribe(2, "com.t", "exact");
    f.publish(1, 1, Dict::new(), "com.t", Payload::default());
    assert_eq!(receivers(&f.sent()), vec![2]);
    f.publish(
        1,
        2,
        dict! { "exclude_me" => true },
        "com.t",
        Payload::default(),
    );
    assert_eq!(receivers(&f.sent()), vec![2]);
    f.publish(
        1,
        3,
        dict! { "exclude_me" => false },
        "com.t",
        Payload::default(),
    );
    assert_eq!(receivers(&f.sent()), vec![1, 2]);
}

#[test]
fn disclose_me_adds_the_publisher_to_event_details() {
    let mut f = Fixture::new();
    f.join(1, "member");
    f.join(2, "guest");
    f.subscribe(1, "com.t", "exact");
    f.publish(
        2,
        1,
        dict! { "disclose_me" => true },
        "com.t",
        Payload::default(),
    );
    let sent = f.sent();
    let (_, _, details, _) = event_parts(&sent[0].1);
    let expected = dict! {
        "publisher" => 2u64, "publisher_authid" => "user2", "publisher_authrole" => "guest",
    };
    assert_eq!(details, &expected);
    f.publish(2, 2, Dict::new(), "com.t", Payload::default());
    let sent = f.sent();
    assert_eq!(
        event_parts(&sent[0].1).2,
        &Dict::new(),
        "not disclosed by default"
    );
}

#[test]
fn black_and_white_listing() {
    let mut f = Fixture::new();
    // 1, 2: member; 3, 4: guest; 9 publishes.
    for (n, role) in [
        (1, "member"),
        (2, "member"),
        (3, "guest"),
        (4, "guest"),
        (9, "member"),
    ] {
        f.join(n, role);
        if n != 9 {
            f.subscribe(n, "com.t", "exact");
        }
    }
    let list = |items: &[u64]| Value::List(items.iter().map(|n| Value::UInt(*n)).collect());
    let names = |items: &[&str]| Value::List(items.iter().map(|s| Value::from(*s)).collect());
    let cases: Vec<(Dict, Vec<u64>)> = vec![
        (Dict::new(), vec![1, 2, 3, 4]),
        (dict! { "exclude" => list(&[2]) }, vec![1, 3, 4]),
        (dict! { "eligible" => list(&[1, 3]) }, vec![1, 3]),
        (dict! { "eligible" => list(&[]) }, vec![]),
        (
            dict! { "exclude_authid" => names(&["user1", "user4"]) },
            vec![2, 3],
        ),
        (dict! { "eligible_authid" => names(&["user2"]) }, vec![2]),
        (
            dict! { "exclude_authrole" => names(&["guest"]) },
            vec![1, 2],
        ),
        (
            dict! { "eligible_authrole" => names(&["guest"]) },
            vec![3, 4],
        ),
        // Conditions combine with AND.
        (
            dict! { "eligible" => list(&[1, 2, 3]), "exclude_authrole" => names(&["member"]) },
            vec![3],
        ),
        (
            dict! { "exclude" => list(&[3]), "eligible_authrole" => names(&["guest"]) },
            vec![4],
        ),
        (
            dict! { "eligible_authid" => names(&["user1", "user3"]), "exclude_authid" => names(&["user3"]) },
            vec![1],
        ),
    ];
    for (request, (options, expected)) in cases.into_iter().enumerate() {
        let shown = format!("{options:?}");
        f.publish(9, request as u64 + 1, options, "com.t", Payload::default());
        assert_eq!(receivers(&f.sent()), expected, "{shown}");
    }
}

#[test]
fn acknowledge_answers_published_with_the_events_publication_id() {
    let mut f = Fixture::new();
    f.join(1, "member");
    f.join(2, "member");
    f.subscribe(1, "com.t", "exact");
    f.publish(
        2,
        7,
        dict! { "acknowledge" => true },
        "com.t",
        Payload::default(),
    );
    let sent = f.sent();
    assert_eq!(sent.len(), 2);
    let event_publication = sent
        .iter()
        .find(|(to, _)| *to == 1)
        .map(|(_, m)| event_parts(m).1)
        .expect("event");
    match sent.iter().find(|(to, _)| *to == 2) {
        Some((
            _,
            Message::Published {
                request,
                publication,
            },
        )) => {
            assert_eq!(request.get(), 7);
            assert_eq!(*publication, event_publication);
        }
        other => panic!("expected PUBLISHED, got {other:?}"),
    }
    // Also when nobody is subscribed.
    f.publish(
        2,
        8,
        dict! { "acknowledge" => true },
        "com.nobody",
        Payload::default(),
    );
    assert!(
        matches!(f.sent().as_slice(), [(2, Message::Published { request, .. })] if request.get() == 8)
    );
    // Without acknowledge the publisher hears nothing.
    f.publish(2, 9, Dict::new(), "com.nobody", Payload::default());
    assert!(f.sent().is_empty());
}

#[test]
fn invalid_uris_are_refused() {
    let mut f = Fixture::new();
    f.join(1, "member");
    let error = |request_type: u64, request: u64, uri: &str| {
        (
            1u64,
            Message::Error {
                request_type,
                request: id(request),
                details: Dict::new(),
                error: uri.to_owned(),
                payload: Payload::default(),
            },
        )
    };
    for (request, topic) in [
        (1, "com..t"),
        (2, "com.t "),
        (3, ""),
        (4, "com.#"),
        (5, "wamp.session.on_join"),
    ] {
        f.publish(
            1,
            request,
            dict! { "acknowledge" => true },
            topic,
            Payload::default(),
        );
        assert_eq!(
            f.sent(),
            vec![error(code::PUBLISH, request, reason::INVALID_URI)],
            "{topic:?}"
        );
        f.publish(1, request, Dict::new(), topic, Payload::default());
        assert!(f.sent().is_empty(), "silent without acknowledge: {topic:?}");
    }
    for (request, topic, options) in [
        (10, "com..t", Dict::new()),
        (11, "com.#", dict! { "match" => "prefix" }),
        (12, "", Dict::new()),
    ] {
        f.handle(
            1,
            Message::Subscribe {
                request: id(request),
                options,
                topic: topic.into(),
            },
        );
        assert_eq!(
            f.sent(),
            vec![error(code::SUBSCRIBE, request, reason::INVALID_URI)],
            "{topic:?}"
        );
    }
    f.handle(
        1,
        Message::Subscribe {
            request: id(13),
            options: dict! { "match" => "regex" },
            topic: "com.t".into(),
        },
    );
    assert_eq!(
        f.sent(),
        vec![error(code::SUBSCRIBE, 13, reason::INVALID_ARGUMENT)]
    );
    // Unsubscribing from what one does not hold.
    f.handle(
        1,
        Message::Unsubscribe {
            request: id(14),
            subscription: id(999),
        },
    );
    assert_eq!(
        f.sent(),
        vec![error(code::UNSUBSCRIBE, 14, reason::NO_SUCH_SUBSCRIPTION)]
    );
    // Subscribing to meta topics is allowed.
    f.subscribe(1, "wamp.session.on_join", "exact");
}

#[test]
fn roles_without_permission_get_not_authorized() {
    let mut f = Fixture::new();
    f.join(1, "reader");
    f.join(2, "nobody");
    f.join(3, "member");
    let not_authorized = |to: u64, request_type: u64, request: u64| {
        (
            to,
            Message::Error {
                request_type,
                request: id(request),
                details: Dict::new(),
                error: reason::NOT_AUTHORIZED.to_owned(),
                payload: Payload::default(),
            },
        )
    };
    f.subscribe(3, "com.t", "exact");
    // reader: no publish (an acknowledged one is refused, an unacknowledged one dropped).
    f.publish(
        1,
        1,
        dict! { "acknowledge" => true },
        "com.t",
        Payload::default(),
    );
    assert_eq!(f.sent(), vec![not_authorized(1, code::PUBLISH, 1)]);
    f.publish(1, 2, Dict::new(), "com.t", Payload::default());
    assert!(f.sent().is_empty(), "nothing delivered");
    // reader: no register, but subscribe and call.
    f.handle(
        1,
        Message::Register {
            request: id(3),
            options: Dict::new(),
            procedure: "com.p".into(),
        },
    );
    assert_eq!(f.sent(), vec![not_authorized(1, code::REGISTER, 3)]);
    f.subscribe(1, "com.t", "exact");
    assert!(f.meta(1, "wamp.session.count", vec![]).is_ok());
    // nobody: nothing at all, meta procedures included.
    f.handle(
        2,
        Message::Subscribe {
            request: id(4),
            options: Dict::new(),
            topic: "com.t".into(),
        },
    );
    assert_eq!(f.sent(), vec![not_authorized(2, code::SUBSCRIBE, 4)]);
    f.call(2, 5, "com.p", vec![]);
    assert_eq!(f.sent(), vec![not_authorized(2, code::CALL, 5)]);
    f.call(2, 6, "wamp.session.count", vec![]);
    assert_eq!(f.sent(), vec![not_authorized(2, code::CALL, 6)]);
    // A role the realm does not have cannot join.
    let refused = f.realm.join(session(4, "admin-ish"), &mut f.out);
    assert_eq!(refused, Err(JoinError::NoSuchRole("admin-ish".into())));
    assert_eq!(
        f.realm.join(session(3, "member"), &mut f.out),
        Err(JoinError::DuplicateSession)
    );
    assert_eq!(f.realm.session_count(), 3);
}

// ---- meta events ----

/// Session 1 subscribes to `topics`; returns (subscription, topic) pairs.
fn watch(f: &mut Fixture, topics: &[&'static str]) -> Vec<(Id, &'static str)> {
    let watched = topics.iter().map(|t| (f.subscribe_any(1, t), *t)).collect();
    // Those subscriptions raised meta events of their own; drop them.
    f.sent();
    watched
}

/// The meta events session 1 received in `sent`, as (topic, args).
fn meta_events(
    sent: &[(u64, Message)],
    watched: &[(Id, &'static str)],
) -> Vec<(&'static str, Vec<Value>)> {
    sent.iter()
        .filter(|(to, m)| *to == 1 && matches!(m, Message::Event { .. }))
        .map(|(_, message)| {
            let (subscription, _, _, payload) = event_parts(message);
            let topic = watched
                .iter()
                .find(|(id, _)| *id == subscription)
                .map(|(_, topic)| *topic)
                .expect("a watched topic");
            (topic, payload.args.clone().unwrap_or_default())
        })
        .collect()
}

/// The SUBSCRIBED id for session `n` in `sent`.
fn subscribed(sent: &[(u64, Message)], n: u64) -> Id {
    sent.iter()
        .find_map(|(to, m)| match m {
            Message::Subscribed { subscription, .. } if *to == n => Some(*subscription),
            _ => None,
        })
        .expect("SUBSCRIBED")
}

#[test]
fn meta_events_for_sessions_and_subscriptions() {
    let mut f = Fixture::new();
    f.join(1, "member");
    let watched = watch(
        &mut f,
        &[
            "wamp.session.on_join",
            "wamp.session.on_leave",
            "wamp.subscription.on_create",
            "wamp.subscription.on_subscribe",
            "wamp.subscription.on_unsubscribe",
            "wamp.subscription.on_delete",
        ],
    );

    f.realm.join(session(2, "guest"), &mut f.out).expect("join");
    let events = meta_events(&f.sent(), &watched);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, "wamp.session.on_join");
    assert_eq!(
        events[0].1,
        vec![Value::Dict(session(2, "guest").meta_details())]
    );
    let details = events[0].1[0].as_dict().expect("details");
    assert_eq!(details.get("session"), Some(&Value::UInt(2)));
    assert_eq!(details.get("authid"), Some(&Value::from("user2")));
    assert_eq!(details.get("authrole"), Some(&Value::from("guest")));
    f.join(3, "member");

    // First subscriber: on_create, then on_subscribe, after the SUBSCRIBED.
    let prefix = dict! { "match" => "prefix" };
    f.handle(
        2,
        Message::Subscribe {
            request: id(1),
            options: prefix.clone(),
            topic: "com.t".into(),
        },
    );
    let sent = f.sent();
    assert!(
        matches!(sent[0], (2, Message::Subscribed { .. })),
        "SUBSCRIBED first: {sent:?}"
    );
    let subscription = subscribed(&sent, 2);
    let sub = Value::UInt(subscription.get());
    let events = meta_events(&sent, &watched);
    assert_eq!(events.len(), 2, "{events:?}");
    let created = dict! {
        "id" => subscription.get(), "created" => "2014-06-22T16:51:41.643Z",
        "uri" => "com.t", "match" => "prefix",
    };
    assert_eq!(
        events[0],
        (
            "wamp.subscription.on_create",
            vec![Value::UInt(2), Value::Dict(created)]
        )
    );
    assert_eq!(
        events[1],
        (
            "wamp.subscription.on_subscribe",
            vec![Value::UInt(2), sub.clone()]
        )
    );

    // Second subscriber: on_subscribe only.
    f.handle(
        3,
        Message::Subscribe {
            request: id(2),
            options: prefix.clone(),
            topic: "com.t".into(),
        },
    );
    let sent = f.sent();
    assert_eq!(subscribed(&sent, 3), subscription);
    assert_eq!(
        meta_events(&sent, &watched),
        vec![(
            "wamp.subscription.on_subscribe",
            vec![Value::UInt(3), sub.clone()]
        )]
    );
    // An idempotent re-subscribe raises nothing.
    f.handle(
        3,
        Message::Subscribe {
            request: id(3),
            options: prefix.clone(),
            topic: "com.t".into(),
        },
    );
    let sent = f.sent();
    assert!(
        matches!(sent.as_slice(), [(3, Message::Subscribed { .. })]),
        "{sent:?}"
    );

    // Not the last subscriber: on_unsubscribe only.
    f.handle(
        2,
        Message::Unsubscribe {
            request: id(4),
            subscription,
        },
    );
    let sent = f.sent();
    assert_eq!(
        sent[0],
        (
            2,
            Message::Unsubscribed {
                request: Some(id(4)),
                details: None
            }
        )
    );
    assert_eq!(
        meta_events(&sent, &watched),
        vec![(
            "wamp.subscription.on_unsubscribe",
            vec![Value::UInt(2), sub.clone()]
        )]
    );

    // The last subscriber leaves the realm: on_unsubscribe, on_delete, then on_leave.
    f.leave(3);
    assert_eq!(
        meta_events(&f.sent(), &watched),
        vec![
            (
                "wamp.subscription.on_unsubscribe",
                vec![Value::UInt(3), sub.clone()]
            ),
            (
                "wamp.subscription.on_delete",
                vec![Value::UInt(3), sub.clone()]
            ),
            (
                "wamp.session.on_leave",
                vec![Value::UInt(3), "user3".into(), "member".into()]
            ),
        ]
    );
    // A new subscription to the same topic gets a new id.
    f.handle(
        2,
        Message::Subscribe {
            request: id(5),
            options: prefix,
            topic: "com.t".into(),
        },
    );
    assert_ne!(subscribed(&f.sent(), 2), subscription);
}

#[test]
fn meta_events_for_registrations() {
    let mut f = Fixture::new();
    f.join(1, "member");
    f.join(2, "member");
    let watched = watch(
        &mut f,
        &[
            "wamp.registration.on_create",
            "wamp.registration.on_register",
            "wamp.registration.on_unregister",
            "wamp.registration.on_delete",
        ],
    );
    f.handle(
        2,
        Message::Register {
            request: id(1),
            options: Dict::new(),
            procedure: "com.p".into(),
        },
    );
    let sent = f.sent();
    let registration = match sent[0] {
        (2, Message::Registered { registration, .. }) => registration,
        ref other => panic!("expected REGISTERED first, got {other:?}"),
    };
    let reg = Value::UInt(registration.get());
    let events = meta_events(&sent, &watched);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0].0, "wamp.registration.on_create");
    assert_eq!(events[0].1[0], Value::UInt(2));
    assert_eq!(
        events[0].1[1].as_dict().and_then(|d| d.get("uri")),
        Some(&Value::from("com.p"))
    );
    assert_eq!(
        events[1],
        (
            "wamp.registration.on_register",
            vec![Value::UInt(2), reg.clone()]
        )
    );
    f.handle(
        2,
        Message::Unregister {
            request: id(2),
            registration,
        },
    );
    assert_eq!(
        meta_events(&f.sent(), &watched),
        vec![
            (
                "wamp.registration.on_unregister",
                vec![Value::UInt(2), reg.clone()]
            ),
            ("wamp.registration.on_delete", vec![Value::UInt(2), reg]),
        ]
    );
}

// ---- meta procedures ----

#[test]
fn session_meta_procedures() {
    let mut f = Fixture::new();
    f.join(1, "member");
    f.join(2, "guest");
    f.join(3, "guest");
    assert_eq!(f.meta(1, "wamp.session.count", vec![]), Ok(Value::UInt(3)));
    let guests = Value::List(vec!["guest".into()]);
    assert_eq!(
        f.meta(1, "wamp.session.count", vec![guests.clone()]),
        Ok(Value::UInt(2))
    );
    let list = f.meta(1, "wamp.session.list", vec![]).expect("list");
    assert_eq!(ids(&list), BTreeSet::from([1, 2, 3]));
    let list = f.meta(1, "wamp.session.list", vec![guests]).expect("list");
    assert_eq!(ids(&list), BTreeSet::from([2, 3]));
    let got = f
        .meta(1, "wamp.session.get", vec![Value::UInt(2)])
        .expect("get");
    assert_eq!(got, Value::Dict(session(2, "guest").meta_details()));
    assert_eq!(
        f.meta(1, "wamp.session.get", vec![Value::UInt(9)]),
        Err(reason::NO_SUCH_SESSION.into())
    );
    assert_eq!(
        f.meta(1, "wamp.session.get", vec![]),
        Err(reason::NO_SUCH_SESSION.into())
    );
    f.leave(3);
    assert_eq!(f.meta(1, "wamp.session.count", vec![]), Ok(Value::UInt(2)));
}

#[test]
fn subscription_meta_procedures() {
    let mut f = Fixture::new();
    for n in 1..=3 {
        f.join(n, "member");
    }
    let exact = f.subscribe(1, "com.a.b", "exact");
    f.subscribe(2, "com.a.b", "exact");
    let prefix = f.subscribe(2, "com.a", "prefix");
    let wildcard = f.subscribe(3, "com..b", "wildcard");
    let prefix_options = Value::Dict(dict! { "match" => "prefix" });
    assert_eq!(
        f.meta(3, "wamp.subscription.lookup", vec!["com.a.b".into()]),
        Ok(Value::UInt(exact.get()))
    );
    assert_eq!(
        f.meta(
            3,
            "wamp.subscription.lookup",
            vec!["com.a".into(), prefix_options]
        ),
        Ok(Value::UInt(prefix.get()))
    );
    assert_eq!(
        f.meta(3, "wamp.subscription.lookup", vec!["com.a".into()]),
        Ok(Value::Null)
    );
    let matched = f
        .meta(3, "wamp.subscription.match", vec!["com.a.b".into()])
        .expect("match");
    assert_eq!(
        ids(&matched),
        BTreeSet::from([exact.get(), prefix.get(), wildcard.get()])
    );
    assert_eq!(
        f.meta(3, "wamp.subscription.match", vec!["org.x".into()]),
        Ok(Value::Null)
    );
    let got = f
        .meta(
            3,
            "wamp.subscription.get",
            vec![Value::UInt(wildcard.get())],
        )
        .expect("get");
    let expected = dict! {
        "id" => wildcard.get(), "created" => "2014-06-22T16:51:41.643Z",
        "uri" => "com..b", "match" => "wildcard",
    };
    assert_eq!(got, Value::Dict(expected));
    let subscribers = f
        .meta(
            3,
            "wamp.subscription.list_subscribers",
            vec![Value::UInt(exact.get())],
        )
        .expect("list");
    assert_eq!(ids(&subscribers), BTreeSet::from([1, 2]));
    assert_eq!(
        f.meta(
            3,
            "wamp.subscription.count_subscribers",
            vec![Value::UInt(exact.get())]
        ),
        Ok(Value::UInt(2))
    );
    let list = f.meta(3, "wamp.subscription.list", vec![]).expect("list");
    let list = list.as_dict().expect("dict");
    assert_eq!(ids(&list["exact"]), BTreeSet::from([exact.get()]));
    assert_eq!(ids(&list["prefix"]), BTreeSet::from([prefix.get()]));
    assert_eq!(ids(&list["wildcard"]), BTreeSet::from([wildcard.get()]));
    for procedure in [
        "wamp.subscription.get",
        "wamp.subscription.list_subscribers",
        "wamp.subscription.count_subscribers",
    ] {
        assert_eq!(
            f.meta(3, procedure, vec![Value::UInt(999)]),
            Err(reason::NO_SUCH_SUBSCRIPTION.into()),
            "{procedure}"
        );
    }
}

#[test]
fn registration_meta_procedures() {
    let mut f = Fixture::new();
    for n in 1..=3 {
        f.join(n, "member");
    }
    let exact = f.register(1, "com.p.q");
    f.handle(
        2,
        Message::Register {
            request: id(1),
            options: dict! { "match" => "prefix" },
            procedure: "com.p".into(),
        },
    );
    let prefix = match f.sent().as_slice() {
        [(2, Message::Registered { registration, .. })] => *registration,
        other => panic!("expected REGISTERED, got {other:?}"),
    };
    let options = |policy: &str| Value::Dict(dict! { "match" => policy });
    assert_eq!(
        f.meta(3, "wamp.registration.lookup", vec!["com.p.q".into()]),
        Ok(Value::UInt(exact.get()))
    );
    assert_eq!(
        f.meta(
            3,
            "wamp.registration.lookup",
            vec!["com.p".into(), options("prefix")]
        ),
        Ok(Value::UInt(prefix.get()))
    );
    assert_eq!(
        f.meta(3, "wamp.registration.lookup", vec!["com.p".into()]),
        Ok(Value::Null)
    );
    // match: the registration a call would use (exact beats prefix).
    assert_eq!(
        f.meta(3, "wamp.registration.match", vec!["com.p.q".into()]),
        Ok(Value::UInt(exact.get()))
    );
    assert_eq!(
        f.meta(3, "wamp.registration.match", vec!["com.p.r".into()]),
        Ok(Value::UInt(prefix.get()))
    );
    assert_eq!(
        f.meta(3, "wamp.registration.match", vec!["org.p".into()]),
        Ok(Value::Null)
    );
    let got = f
        .meta(3, "wamp.registration.get", vec![Value::UInt(prefix.get())])
        .expect("get");
    let got = got.as_dict().expect("dict");
    assert_eq!(got.get("uri"), Some(&Value::from("com.p")));
    assert_eq!(got.get("match"), Some(&Value::from("prefix")));
    assert_eq!(got.get("invoke"), Some(&Value::from("single")));
    let callees = f
        .meta(
            3,
            "wamp.registration.list_callees",
            vec![Value::UInt(exact.get())],
        )
        .expect("callees");
    assert_eq!(ids(&callees), BTreeSet::from([1]));
    assert_eq!(
        f.meta(
            3,
            "wamp.registration.count_callees",
            vec![Value::UInt(prefix.get())]
        ),
        Ok(Value::UInt(1))
    );
    for procedure in [
        "wamp.registration.get",
        "wamp.registration.list_callees",
        "wamp.registration.count_callees",
    ] {
        assert_eq!(
            f.meta(3, procedure, vec![Value::UInt(999)]),
            Err(reason::NO_SUCH_REGISTRATION.into()),
            "{procedure}"
        );
    }
}

// ---- dispatch to the dealer ----

#[test]
fn calls_are_routed_through_the_dealer() {
    let mut f = Fixture::new();
    f.join(1, "member");
    f.join(2, "member");
    let registration = f.register(1, "com.add");
    f.call(2, 5, "com.add", vec![2u64.into(), 3u64.into()]);
    let invocation = match f.sent().as_slice() {
        [(
            1,
            Message::Invocation {
                request,
                registration: r,
                payload,
                ..
            },
        )] => {
            assert_eq!(*r, registration);
            assert_eq!(payload.args, Some(vec![Value::UInt(2), Value::UInt(3)]));
            *request
        }
        other => panic!("expected INVOCATION to 1, got {other:?}"),
    };
    f.handle(
        1,
        Message::Yield {
            request: invocation,
            options: Dict::new(),
            payload: Payload::args(vec![5u64.into()]),
        },
    );
    assert_eq!(
        f.sent(),
        vec![(
            2,
            Message::Result {
                request: id(5),
                details: Dict::new(),
                payload: Payload::args(vec![5u64.into()])
            }
        )]
    );
    // A callee ERROR goes back to the caller as ERROR for its CALL.
    f.call(2, 6, "com.add", vec![]);
    let invocation = match f.sent().as_slice() {
        [(1, Message::Invocation { request, .. })] => *request,
        other => panic!("expected INVOCATION, got {other:?}"),
    };
    f.handle(
        1,
        Message::Error {
            request_type: code::INVOCATION,
            request: invocation,
            details: Dict::new(),
            error: "com.error.bad".into(),
            payload: Payload::args(vec!["why".into()]),
        },
    );
    assert_eq!(
        f.sent(),
        vec![(
            2,
            Message::Error {
                request_type: code::CALL,
                request: id(6),
                details: Dict::new(),
                error: "com.error.bad".into(),
                payload: Payload::args(vec!["why".into()]),
            }
        )]
    );
    // No callee.
    f.call(2, 7, "com.nobody", vec![]);
    assert!(
        matches!(f.sent().as_slice(), [(2, Message::Error { error, .. })] if error == reason::NO_SUCH_PROCEDURE)
    );
}

#[test]
fn reserved_procedures_cannot_be_registered() {
    let mut f = Fixture::new();
    f.join(1, "member");
    for (request, procedure) in [(1, "wamp.session.count"), (2, "wamp.my.proc")] {
        f.handle(
            1,
            Message::Register {
                request: id(request),
                options: Dict::new(),
                procedure: procedure.into(),
            },
        );
        match f.sent().as_slice() {
            [(
                1,
                Message::Error {
                    request_type: code::REGISTER,
                    request: r,
                    error,
                    ..
                },
            )] => {
                assert_eq!(
                    (r.get(), error.as_str()),
                    (request, reason::INVALID_URI),
                    "{procedure}"
                );
            }
            other => panic!("expected ERROR for {procedure}, got {other:?}"),
        }
    }
    // The meta procedure still answers.
    assert_eq!(f.meta(1, "wamp.session.count", vec![]), Ok(Value::UInt(1)));
}

#[test]
fn call_timeouts_fire_through_the_realm() {
    let mut f = Fixture::new();
    f.join(1, "member");
    f.join(2, "member");
    f.register(1, "com.slow");
    f.handle(
        2,
        Message::Call {
            request: id(1),
            options: dict! { "timeout" => 100u64 },
            procedure: "com.slow".into(),
            payload: Payload::default(),
        },
    );
    f.sent();
    let deadline = f.realm.poll_timeout().expect("a deadline");
    assert_eq!(deadline, f.now.instant + Duration::from_millis(100));
    let later = Now {
        instant: deadline,
        unix_ms: T0_UNIX_MS + 100,
    };
    f.realm.handle_timeout(&later, &mut f.out);
    let sent = f.sent();
    assert!(
        sent.iter().any(|(to, m)| *to == 2
            && matches!(m, Message::Error { error, .. } if error == reason::TIMEOUT)),
        "{sent:?}"
    );
    assert!(
        sent.iter()
            .any(|(to, m)| *to == 1 && matches!(m, Message::Interrupt { .. })),
        "{sent:?}"
    );
    assert_eq!(f.realm.poll_timeout(), None);
}

// ---- leave ----

#[test]
fn leave_cleans_everything() {
    let mut f = Fixture::new();
    for n in 1..=3 {
        f.join(n, "member");
    }
    // Session 2 subscribes, registers, serves a call from 1 and makes a call to 3.
    f.subscribe(2, "com.t", "exact");
    let shared = f.subscribe(3, "com.t", "exact");
    f.subscribe(2, "com.only2.", "prefix");
    f.register(2, "com.two");
    f.register(3, "com.three");
    f.call(1, 1, "com.two", vec![]);
    f.call(2, 2, "com.three", vec![]);
    f.sent();
    assert_eq!(f.realm.dealer.pending_invocations(), 2);

    f.leave(2);
    let sent = f.sent();
    // The call 2 was serving fails for its caller; the call 2 made is interrupted at its callee.
    assert!(
        sent.contains(&(
            1,
            Message::Error {
                request_type: code::CALL,
                request: id(1),
                details: Dict::new(),
                error: reason::CANCELED.into(),
                payload: Payload::default(),
            }
        )),
        "{sent:?}"
    );
    assert!(
        sent.iter()
            .any(|(to, m)| *to == 3 && matches!(m, Message::Interrupt { .. })),
        "{sent:?}"
    );
    assert!(
        sent.iter().all(|(to, _)| *to != 2),
        "nothing goes to the session that left"
    );
    assert_eq!(f.realm.dealer.pending_invocations(), 0);

    assert_eq!(f.realm.session_count(), 2);
    assert_eq!(
        f.meta(1, "wamp.session.get", vec![Value::UInt(2)]),
        Err(reason::NO_SUCH_SESSION.into())
    );
    assert_eq!(
        f.meta(
            1,
            "wamp.subscription.lookup",
            vec![
                "com.only2.".into(),
                Value::Dict(dict! { "match" => "prefix" })
            ]
        ),
        Ok(Value::Null)
    );
    let subscribers = f
        .meta(
            1,
            "wamp.subscription.list_subscribers",
            vec![Value::UInt(shared.get())],
        )
        .expect("still there");
    assert_eq!(ids(&subscribers), BTreeSet::from([3]));
    assert_eq!(
        f.meta(1, "wamp.registration.lookup", vec!["com.two".into()]),
        Ok(Value::Null)
    );
    f.call(1, 3, "com.two", vec![]);
    assert!(
        matches!(f.sent().as_slice(), [(1, Message::Error { error, .. })] if error == reason::NO_SUCH_PROCEDURE)
    );
    // Publications reach only who is left.
    f.publish(1, 4, Dict::new(), "com.t", Payload::default());
    assert_eq!(receivers(&f.sent()), vec![3]);
    f.publish(1, 5, Dict::new(), "com.only2.x", Payload::default());
    assert!(f.sent().is_empty());
    // The same id may join again, and a second leave is a no-op.
    f.leave(2);
    assert!(f.sent().is_empty());
    f.join(2, "member");
    assert_eq!(f.realm.session_count(), 3);
    // Messages from a session that is not joined are ignored.
    f.leave(2);
    f.sent();
    f.publish(
        2,
        6,
        dict! { "acknowledge" => true },
        "com.t",
        Payload::default(),
    );
    assert!(f.sent().is_empty());
}

#[test]
fn session_ids_are_not_confused_across_sessions() {
    // A session may only unsubscribe / unregister what it holds itself.
    let mut f = Fixture::new();
    f.join(1, "member");
    f.join(2, "member");
    let subscription = f.subscribe(1, "com.t", "exact");
    let registration = f.register(1, "com.p");
    f.handle(
        2,
        Message::Unsubscribe {
            request: id(1),
            subscription,
        },
    );
    assert!(
        matches!(f.sent().as_slice(), [(2, Message::Error { error, .. })] if error == reason::NO_SUCH_SUBSCRIPTION)
    );
    f.handle(
        2,
        Message::Unregister {
            request: id(2),
            registration,
        },
    );
    assert!(
        matches!(f.sent().as_slice(), [(2, Message::Error { error, .. })] if error == reason::NO_SUCH_REGISTRATION)
    );
    let subscribers = f
        .meta(
            2,
            "wamp.subscription.list_subscribers",
            vec![Value::UInt(subscription.get())],
        )
        .expect("list");
    assert_eq!(ids(&subscribers), BTreeSet::from([1]));
}
