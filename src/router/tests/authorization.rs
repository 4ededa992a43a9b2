//! What the realm refuses: invalid URIs and match policies, and roles without permission
//! (including joining with a role the realm does not have).

use super::{id, session, Fixture};
use crate::dict;
use crate::router::realm::JoinError;
use crate::wamp::uri::reason;
use crate::wamp::{code, Dict, Message, Payload};

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
