//! Meta events: session join/leave and the subscription and registration lifecycle events, in
//! order, after the reply that caused them.

use super::{event_parts, id, session, Fixture};
use crate::dict;
use crate::wamp::{Dict, Id, Message, Value};

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
