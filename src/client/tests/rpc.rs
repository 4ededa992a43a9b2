//! Calls (plain, progressive, canceled) and the callee side (invocations, interrupts, serve).

use super::{id, ints, joined, FakeRouter};
use crate::client::{ClientError, Registration, Session};
use crate::dict;
use crate::wamp::message::code;
use crate::wamp::{Dict, Id, Message, Payload, Value};

async fn expect_call(router: &mut FakeRouter) -> (Id, Dict) {
    match router.recv().await {
        Message::Call {
            request, options, ..
        } => (request, options),
        other => panic!("expected CALL, got {other:?}"),
    }
}

async fn register(session: &Session, router: &mut FakeRouter, registration: u64) -> Registration {
    let pending = tokio::spawn({
        let session = session.clone();
        async move { session.register("com.add2", Dict::new()).await }
    });
    let Message::Register {
        request, procedure, ..
    } = router.recv().await
    else {
        panic!("expected REGISTER")
    };
    assert_eq!(procedure, "com.add2");
    let registration = id(registration);
    router
        .send(Message::Registered {
            request,
            registration,
        })
        .await;
    pending.await.unwrap().unwrap()
}

fn invocation(request: u64, registration: u64, details: Dict, payload: Payload) -> Message {
    Message::Invocation {
        request: id(request),
        registration: id(registration),
        details,
        payload,
    }
}

async fn expect_yield(router: &mut FakeRouter) -> (Id, Dict, Payload) {
    match router.recv().await {
        Message::Yield {
            request,
            options,
            payload,
        } => (request, options, payload),
        other => panic!("expected YIELD, got {other:?}"),
    }
}

async fn expect_invocation_error(router: &mut FakeRouter) -> (Id, String) {
    match router.recv().await {
        Message::Error {
            request_type: code::INVOCATION,
            request,
            error,
            ..
        } => (request, error),
        other => panic!("expected ERROR for INVOCATION, got {other:?}"),
    }
}

#[tokio::test]
async fn call_returns_the_result_or_the_error() {
    let (session, mut router) = joined().await;
    let call = tokio::spawn({
        let session = session.clone();
        async move { session.call("com.add2", ints(&[2, 3]), Dict::new()).await }
    });
    let (request, _) = expect_call(&mut router).await;
    let details = Dict::new();
    router
        .send(Message::Result {
            request,
            details,
            payload: ints(&[5]),
        })
        .await;
    assert_eq!(call.await.unwrap().unwrap().payload, ints(&[5]));

    let call = tokio::spawn(async move {
        session
            .call("com.nope", Payload::default(), Dict::new())
            .await
    });
    let (request, _) = expect_call(&mut router).await;
    assert_eq!(request.get(), 2);
    router
        .send(Message::Error {
            request_type: code::CALL,
            request,
            details: Dict::new(),
            error: "wamp.error.no_such_procedure".into(),
            payload: ints(&[1]),
        })
        .await;
    match call.await.unwrap().unwrap_err() {
        ClientError::Wamp { error, payload, .. } => {
            assert_eq!(
                (error.as_str(), payload),
                ("wamp.error.no_such_procedure", ints(&[1]))
            )
        }
        other => panic!("expected a WAMP error, got {other:?}"),
    }
}

#[tokio::test]
async fn progressive_results_then_the_final_one() {
    let (session, mut router) = joined().await;
    let pending = tokio::spawn(async move {
        session
            .call_with_progress("com.count", Payload::default(), Dict::new())
            .await
    });
    let (request, options) = expect_call(&mut router).await;
    assert_eq!(options["receive_progress"], Value::Bool(true));
    let mut pending = pending.await.unwrap().unwrap();
    assert_eq!(pending.request(), request);
    for n in 1..=3 {
        let details = dict! { "progress" => true };
        router
            .send(Message::Result {
                request,
                details,
                payload: ints(&[n]),
            })
            .await;
    }
    router
        .send(Message::Result {
            request,
            details: Dict::new(),
            payload: ints(&[4]),
        })
        .await;
    for n in 1..=3 {
        let result = pending.next().await.unwrap().unwrap();
        assert!(result.is_progress());
        assert_eq!(result.payload, ints(&[n]));
    }
    let last = pending.next().await.unwrap().unwrap();
    assert!(!last.is_progress());
    assert_eq!(last.payload, ints(&[4]));
    assert!(pending.next().await.is_none());
}

#[tokio::test]
async fn cancel_sends_cancel_and_the_error_ends_the_call() {
    let (session, mut router) = joined().await;
    let pending = tokio::spawn(async move {
        session
            .call_cancellable("com.slow", Payload::default(), Dict::new())
            .await
    });
    let (request, options) = expect_call(&mut router).await;
    assert!(!options.contains_key("receive_progress"));
    let mut pending = pending.await.unwrap().unwrap();
    pending.cancel("kill").await.unwrap();
    let Message::Cancel {
        request: canceled,
        options,
    } = router.recv().await
    else {
        panic!("expected CANCEL")
    };
    assert_eq!(
        (canceled, &options["mode"]),
        (request, &Value::from("kill"))
    );
    router
        .send(Message::Error {
            request_type: code::CALL,
            request,
            details: Dict::new(),
            error: "wamp.error.canceled".into(),
            payload: Payload::default(),
        })
        .await;
    let error = pending.next().await.unwrap().unwrap_err();
    assert_eq!(error.uri(), Some("wamp.error.canceled"));
    assert!(pending.next().await.is_none());
}

#[tokio::test]
async fn invocation_is_answered_with_progress_and_yield() {
    let (session, mut router) = joined().await;
    let mut registration = register(&session, &mut router, 9).await;
    assert_eq!(registration.id(), id(9));
    let details = dict! { "receive_progress" => true };
    router.send(invocation(1, 9, details, ints(&[2, 3]))).await;
    let inv = registration.next().await.unwrap();
    assert!(inv.receive_progress());
    assert_eq!((inv.request, &inv.payload), (id(1), &ints(&[2, 3])));
    inv.progress(ints(&[0])).await.unwrap();
    inv.result(ints(&[5])).await.unwrap();
    let (request, options, payload) = expect_yield(&mut router).await;
    assert_eq!(
        (request, &options["progress"], payload),
        (id(1), &Value::Bool(true), ints(&[0]))
    );
    let (request, options, payload) = expect_yield(&mut router).await;
    assert_eq!(
        (request, options, payload),
        (id(1), Dict::new(), ints(&[5]))
    );
}

#[tokio::test]
async fn invocation_errors_dropping_and_unknown_registrations() {
    let (session, mut router) = joined().await;
    let mut registration = register(&session, &mut router, 9).await;
    router
        .send(invocation(1, 9, Dict::new(), Payload::default()))
        .await;
    router
        .send(invocation(2, 9, Dict::new(), Payload::default()))
        .await;
    router
        .send(invocation(3, 77, Dict::new(), Payload::default()))
        .await;
    let first = registration.next().await.unwrap();
    first
        .error("com.example.oops", Payload::default())
        .await
        .unwrap();
    drop(registration.next().await.unwrap());
    let mut errors = Vec::new();
    for _ in 0..3 {
        errors.push(expect_invocation_error(&mut router).await);
    }
    errors.sort();
    assert_eq!(
        errors,
        vec![
            (id(1), "com.example.oops".into()),
            (id(2), "wamp.error.runtime_error".into()),
            (id(3), "wamp.error.no_such_registration".into())
        ]
    );
}

#[tokio::test]
async fn interrupt_wakes_the_invocation() {
    let (session, mut router) = joined().await;
    let mut registration = register(&session, &mut router, 9).await;
    router
        .send(invocation(1, 9, Dict::new(), Payload::default()))
        .await;
    let inv = registration.next().await.unwrap();
    assert_eq!(inv.interrupt_mode(), None);
    let options = dict! { "mode" => "kill" };
    router
        .send(Message::Interrupt {
            request: id(1),
            options,
        })
        .await;
    inv.interrupted().await;
    assert_eq!(inv.interrupt_mode().as_deref(), Some("kill"));
    drop(inv);
    assert_eq!(
        expect_invocation_error(&mut router).await,
        (id(1), "wamp.error.canceled".into())
    );
}

#[tokio::test]
async fn unregister_and_revocation() {
    let (session, mut router) = joined().await;
    let registration = register(&session, &mut router, 9).await;
    let unregister = tokio::spawn(registration.unregister());
    let Message::Unregister {
        request,
        registration,
    } = router.recv().await
    else {
        panic!("expected UNREGISTER")
    };
    assert_eq!(registration, id(9));
    router
        .send(Message::Unregistered {
            request: Some(request),
            details: None,
        })
        .await;
    unregister.await.unwrap().unwrap();

    let mut registration = register(&session, &mut router, 10).await;
    let details = Some(dict! { "registration" => 10u64, "reason" => "wamp.close.killed" });
    router
        .send(Message::Unregistered {
            request: None,
            details,
        })
        .await;
    assert!(registration.next().await.is_none());
}

#[tokio::test]
async fn serve_answers_each_invocation_and_unregisters_on_drop() {
    let (session, mut router) = joined().await;
    let serving = tokio::spawn({
        let session = session.clone();
        async move {
            session
                .serve("com.add2", Dict::new(), |inv| async move {
                    let sum: u64 = inv
                        .payload
                        .args
                        .iter()
                        .flatten()
                        .filter_map(Value::as_u64)
                        .sum();
                    let _ = inv.result(ints(&[sum])).await;
                })
                .await
        }
    });
    let Message::Register { request, .. } = router.recv().await else {
        panic!("expected REGISTER")
    };
    router
        .send(Message::Registered {
            request,
            registration: id(9),
        })
        .await;
    let handle = serving.await.unwrap().unwrap();
    assert_eq!(handle.id(), id(9));
    router
        .send(invocation(1, 9, Dict::new(), ints(&[1, 2])))
        .await;
    router
        .send(invocation(2, 9, Dict::new(), ints(&[3, 4])))
        .await;
    let mut answers = [
        expect_yield(&mut router).await,
        expect_yield(&mut router).await,
    ];
    answers.sort_by_key(|(request, ..)| *request);
    assert_eq!(answers[0].2, ints(&[3]));
    assert_eq!(answers[1].2, ints(&[7]));
    drop(handle);
    let Message::Unregister { registration, .. } = router.recv().await else {
        panic!("expected UNREGISTER")
    };
    assert_eq!(registration, id(9));
}
