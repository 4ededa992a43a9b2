//! Session leave: everything the session held is cleaned up, and one session cannot touch
//! what another holds.

use std::collections::BTreeSet;

use super::{id, ids, receivers, Fixture};
use crate::dict;
use crate::wamp::uri::reason;
use crate::wamp::{code, Dict, Message, Payload, Value};

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
