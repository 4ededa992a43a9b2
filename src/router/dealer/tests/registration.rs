//! REGISTER, UNREGISTER, their meta events and the registration meta API queries.

use super::*;
use crate::wamp::uri::MatchPolicy;

const CREATED: &str = "2014-06-22T16:51:41.643Z";

#[test]
fn register_creates_registration_with_meta_events() {
    let mut f = Fixture::new();
    let callee = plain(7);
    f.register(&callee, 5, Dict::new(), "com.app.add");
    assert_eq!(
        f.sent(),
        vec![(
            7,
            Message::Registered {
                request: id(5),
                registration: id(1)
            }
        )]
    );
    let details = dict! {
        "id" => 1u64, "created" => CREATED, "uri" => "com.app.add",
        "match" => "exact", "invoke" => "single",
    };
    assert_eq!(
        f.meta(),
        vec![
            MetaEvent::RegistrationCreated {
                session: id(7),
                details
            },
            MetaEvent::RegistrationAdded {
                session: id(7),
                registration: id(1)
            },
        ]
    );
    assert_eq!(
        f.dealer.registration_get(id(1)).unwrap()["created"],
        CREATED.into()
    );
}

#[test]
fn registration_ids_are_sequential() {
    let mut f = Fixture::new();
    let a = f.registered(&plain(1), Dict::new(), "com.a");
    let b = f.registered(&plain(1), dict! { "match" => "prefix" }, "com.a");
    let c = f.registered(&plain(2), dict! { "match" => "wildcard" }, "com..a");
    assert_eq!((a.get(), b.get(), c.get()), (1, 2, 3));
}

#[test]
fn invalid_uris_are_refused() {
    let mut f = Fixture::new();
    let s = plain(1);
    f.register(&s, 1, Dict::new(), "com..add");
    f.register(&s, 2, dict! { "match" => "prefix" }, "com.#");
    f.register(&s, 3, dict! { "match" => "wildcard" }, "com. x");
    let text = "invalid procedure URI";
    assert_eq!(
        f.sent(),
        vec![
            refused(1, code::REGISTER, 1, reason::INVALID_URI, text),
            refused(1, code::REGISTER, 2, reason::INVALID_URI, text),
            refused(1, code::REGISTER, 3, reason::INVALID_URI, text),
        ]
    );
    assert!(f.meta().is_empty());
    // Wildcard patterns may have empty components; prefixes may end with a dot.
    f.registered(&s, dict! { "match" => "wildcard" }, "com..add");
    f.registered(&s, dict! { "match" => "prefix" }, "com.app.");
}

#[test]
fn unknown_policies_are_invalid_arguments() {
    let mut f = Fixture::new();
    let s = plain(1);
    f.register(&s, 1, dict! { "match" => "regex" }, "com.a");
    f.register(&s, 2, dict! { "invoke" => "all" }, "com.a");
    f.register(&s, 3, dict! { "match" => 1u64 }, "com.a");
    assert_eq!(
        f.sent(),
        vec![
            refused(
                1,
                code::REGISTER,
                1,
                reason::INVALID_ARGUMENT,
                "invalid value for option 'match'"
            ),
            refused(
                1,
                code::REGISTER,
                2,
                reason::INVALID_ARGUMENT,
                "invalid value for option 'invoke'"
            ),
            refused(
                1,
                code::REGISTER,
                3,
                reason::INVALID_ARGUMENT,
                "invalid value for option 'match'"
            ),
        ]
    );
}

#[test]
fn second_single_registration_is_refused() {
    let mut f = Fixture::new();
    f.registered(&plain(1), Dict::new(), "com.a");
    f.register(&plain(2), 9, Dict::new(), "com.a");
    f.register(&plain(2), 10, dict! { "invoke" => "roundrobin" }, "com.a");
    let text = "procedure already registered";
    assert_eq!(
        f.sent(),
        vec![
            refused(2, code::REGISTER, 9, reason::PROCEDURE_ALREADY_EXISTS, text),
            refused(
                2,
                code::REGISTER,
                10,
                reason::PROCEDURE_ALREADY_EXISTS,
                text
            ),
        ]
    );
    // The same URI with another match policy is a different registration.
    f.registered(&plain(2), dict! { "match" => "prefix" }, "com.a");
}

#[test]
fn shared_registration_joins_only_with_equal_policy() {
    let mut f = Fixture::new();
    let rr = dict! { "invoke" => "roundrobin" };
    let reg = f.registered(&plain(1), rr.clone(), "com.a");
    f.register(&plain(2), 4, rr.clone(), "com.a");
    assert_eq!(
        f.sent(),
        vec![(
            2,
            Message::Registered {
                request: id(4),
                registration: reg
            }
        )]
    );
    assert_eq!(
        f.meta(),
        vec![MetaEvent::RegistrationAdded {
            session: id(2),
            registration: reg
        }]
    );
    f.register(&plain(3), 5, dict! { "invoke" => "random" }, "com.a");
    f.register(&plain(1), 6, rr, "com.a"); // the same session twice
    let text = "procedure already registered";
    assert_eq!(
        f.sent(),
        vec![
            refused(3, code::REGISTER, 5, reason::PROCEDURE_ALREADY_EXISTS, text),
            refused(1, code::REGISTER, 6, reason::PROCEDURE_ALREADY_EXISTS, text),
        ]
    );
    assert_eq!(f.dealer.registration_callees(reg), Some(vec![id(1), id(2)]));
}

#[test]
fn unregister_checks_ownership() {
    let mut f = Fixture::new();
    let reg = f.registered(&plain(1), Dict::new(), "com.a");
    f.dealer.handle_unregister(id(2), id(3), reg, &mut f.out);
    f.dealer.handle_unregister(id(1), id(4), id(99), &mut f.out);
    let text = "no such registration for this session";
    assert_eq!(
        f.sent(),
        vec![
            refused(2, code::UNREGISTER, 3, reason::NO_SUCH_REGISTRATION, text),
            refused(1, code::UNREGISTER, 4, reason::NO_SUCH_REGISTRATION, text),
        ]
    );
    assert!(f.meta().is_empty());
    f.dealer.handle_unregister(id(1), id(5), reg, &mut f.out);
    let unregistered = Message::Unregistered {
        request: Some(id(5)),
        details: None,
    };
    assert_eq!(f.sent(), vec![(1, unregistered)]);
    assert_eq!(
        f.meta(),
        vec![
            MetaEvent::RegistrationRemoved {
                session: id(1),
                registration: reg
            },
            MetaEvent::RegistrationDeleted {
                session: id(1),
                registration: reg
            },
        ]
    );
    assert_eq!(f.dealer.registration_get(reg), None);
    assert_eq!(
        f.dealer.registration_lookup("com.a", MatchPolicy::Exact),
        None
    );
    // The URI is free again.
    f.registered(&plain(2), Dict::new(), "com.a");
}

#[test]
fn unregister_of_shared_keeps_registration_until_last_callee() {
    let mut f = Fixture::new();
    let shared = dict! { "invoke" => "first" };
    let reg = f.registered(&plain(1), shared.clone(), "com.a");
    f.registered(&plain(2), shared, "com.a");
    f.dealer.handle_unregister(id(1), id(2), reg, &mut f.out);
    assert_eq!(
        f.meta(),
        vec![MetaEvent::RegistrationRemoved {
            session: id(1),
            registration: reg
        }]
    );
    assert_eq!(f.dealer.registration_callees(reg), Some(vec![id(2)]));
    f.dealer.handle_unregister(id(2), id(2), reg, &mut f.out);
    assert_eq!(f.meta().len(), 2);
    assert_eq!(f.dealer.registration_callees(reg), None);
}

#[test]
fn meta_api_queries() {
    let mut f = Fixture::new();
    let exact = f.registered(&plain(1), Dict::new(), "com.app.add");
    let prefix = f.registered(&plain(1), dict! { "match" => "prefix" }, "com.app");
    let wild = f.registered(
        &plain(2),
        dict! { "match" => "wildcard", "invoke" => "last" },
        "com..sub",
    );
    let list = |ids: &[Id]| Value::List(ids.iter().map(|i| Value::UInt(i.get())).collect());
    assert_eq!(
        f.dealer.registration_list(),
        dict! { "exact" => list(&[exact]), "prefix" => list(&[prefix]), "wildcard" => list(&[wild]) }
    );
    assert_eq!(
        f.dealer.registration_lookup("com.app", MatchPolicy::Prefix),
        Some(prefix)
    );
    assert_eq!(
        f.dealer.registration_lookup("com.app", MatchPolicy::Exact),
        None
    );
    assert_eq!(f.dealer.registration_match("com.app.add"), Some(exact));
    assert_eq!(f.dealer.registration_match("com.app.mul"), Some(prefix));
    assert_eq!(f.dealer.registration_match("com.x.sub"), Some(wild));
    assert_eq!(f.dealer.registration_match("org.x"), None);
    assert_eq!(f.dealer.registration_match("com..sub"), None, "invalid URI");
    assert_eq!(
        f.dealer.registration_get(wild),
        Some(dict! {
            "id" => wild.get(), "created" => CREATED, "uri" => "com..sub",
            "match" => "wildcard", "invoke" => "last",
        })
    );
    assert_eq!(f.dealer.registration_callees(prefix), Some(vec![id(1)]));
    assert_eq!(f.dealer.registration_callees(id(77)), None);
}

#[test]
fn callee_leave_removes_its_registrations() {
    let mut f = Fixture::new();
    let shared = dict! { "invoke" => "roundrobin" };
    let own = f.registered(&plain(1), Dict::new(), "com.own");
    let both = f.registered(&plain(1), shared.clone(), "com.both");
    f.registered(&plain(2), shared, "com.both");
    f.dealer.handle_session_leave(id(1), &mut f.out);
    assert!(f.sent().is_empty());
    assert_eq!(
        f.meta(),
        vec![
            MetaEvent::RegistrationRemoved {
                session: id(1),
                registration: own
            },
            MetaEvent::RegistrationDeleted {
                session: id(1),
                registration: own
            },
            MetaEvent::RegistrationRemoved {
                session: id(1),
                registration: both
            },
        ]
    );
    assert_eq!(f.dealer.registration_callees(both), Some(vec![id(2)]));
    assert_eq!(f.dealer.registration_match("com.own"), None);
}

#[test]
fn prefix_matching_edge_cases() {
    let mut f = Fixture::new();
    let prefix = dict! { "match" => "prefix" };
    let everything = f.registered(&plain(1), prefix.clone(), "");
    let accented = f.registered(&plain(1), prefix, "com.caf\u{e9}");
    assert_eq!(f.dealer.registration_match("org.any"), Some(everything));
    assert_eq!(
        f.dealer.registration_match("com.caf\u{e9}.x"),
        Some(accented)
    );
    // A byte length that falls inside a multi-byte character is skipped, not a panic.
    assert_eq!(
        f.dealer.registration_match("com.caf\u{e8}"),
        Some(everything)
    );
}
