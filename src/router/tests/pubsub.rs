//! Realm pub/sub: exact, prefix and wildcard matching, one shared EVENT per subscription,
//! exclude_me, disclose_me, black/white listing and acknowledged publications.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{event_parts, receivers, Fixture};
use crate::dict;
use crate::router::types::Delivery;
use crate::wamp::{Dict, Id, Message, Payload, Serializer, Value};

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
