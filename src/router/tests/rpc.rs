//! The realm's dispatch to the dealer: calls, callee errors, reserved procedures and call
//! timeouts fired through the realm.

use std::time::Duration;

use super::{id, Fixture, T0_UNIX_MS};
use crate::dict;
use crate::router::types::Now;
use crate::wamp::uri::reason;
use crate::wamp::{code, Dict, Message, Payload, Value};

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
