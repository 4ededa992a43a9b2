//! Meta procedures: `wamp.session.*`, `wamp.subscription.*` and `wamp.registration.*` as
//! called through the realm.

use std::collections::BTreeSet;

use super::{id, ids, session, Fixture};
use crate::dict;
use crate::wamp::uri::reason;
use crate::wamp::{Message, Value};

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
