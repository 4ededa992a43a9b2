//! CALL routing, INVOCATION details, results, callee errors, invoke policies and timeouts.

use super::*;

#[test]
fn call_is_invoked_and_result_returned() {
    let mut f = Fixture::new();
    let reg = f.registered(&plain(1), Dict::new(), "com.add");
    let payload = Payload::new(vec![1u64.into(), 2u64.into()], dict! { "x" => "y" });
    let now = f.at(0);
    let (caller, out) = (plain(2), &mut f.out);
    f.dealer.handle_call(
        &caller,
        id(40),
        Dict::new(),
        "com.add".into(),
        payload.clone(),
        &now,
        out,
    );
    let invocation = Message::Invocation {
        request: id(1),
        registration: reg,
        details: Dict::new(),
        payload: payload.clone(),
    };
    assert_eq!(f.sent(), vec![(1, invocation)]);
    assert_eq!(f.dealer.pending_invocations(), 1);
    let answer = Payload::args(vec![3u64.into()]);
    assert!(f.yield_(1, id(1), Dict::new(), answer.clone()));
    assert_eq!(f.sent(), vec![result(2, 40, Dict::new(), answer)]);
    assert_eq!(f.dealer.pending_invocations(), 0);
    // A second (late) YIELD is dropped and reported.
    assert!(!f.yield_(1, id(1), Dict::new(), Payload::default()));
    assert!(f.sent().is_empty());
}

#[test]
fn invocation_ids_are_sequential_per_callee() {
    let mut f = Fixture::new();
    f.registered(&plain(1), Dict::new(), "com.a");
    f.registered(&plain(2), Dict::new(), "com.b");
    let requests: Vec<(u64, u64)> = [("com.a", 10), ("com.b", 11), ("com.a", 12)]
        .into_iter()
        .map(|(uri, req)| {
            let (callee, request, _) = f.invoked(&plain(3), req, Dict::new(), uri);
            (callee, request.get())
        })
        .collect();
    assert_eq!(requests, vec![(1, 1), (2, 1), (1, 2)]);
    // The sequence survives unregistering and registering again.
    let reg = f.dealer.registration_match("com.a").unwrap();
    f.dealer.handle_unregister(id(1), id(2), reg, &mut f.out);
    f.sent();
    f.registered(&plain(1), Dict::new(), "com.a");
    let (_, request, _) = f.invoked(&plain(3), 13, Dict::new(), "com.a");
    assert_eq!(request.get(), 3);
}

#[test]
fn bad_uri_and_missing_procedure() {
    let mut f = Fixture::new();
    f.call(&plain(2), 1, Dict::new(), "com..a");
    f.call(&plain(2), 2, Dict::new(), "com.nothing");
    assert_eq!(
        f.sent(),
        vec![
            refused(
                2,
                code::CALL,
                1,
                reason::INVALID_URI,
                "invalid procedure URI"
            ),
            refused(
                2,
                code::CALL,
                2,
                reason::NO_SUCH_PROCEDURE,
                "no callee registered for the procedure"
            ),
        ]
    );
}

#[test]
fn precedence_exact_then_longest_prefix_then_wildcard() {
    let mut f = Fixture::new();
    let prefix = dict! { "match" => "prefix" };
    let wildcard = dict! { "match" => "wildcard" };
    let exact = f.registered(&plain(1), Dict::new(), "a1.b2.c3.d4.e55");
    let short = f.registered(&plain(1), prefix.clone(), "a1.b2.c3");
    let long = f.registered(&plain(1), prefix, "a1.b2.c3.d4");
    f.registered(&plain(1), wildcard.clone(), "a1.b2.c3.d4.");
    let wild = f.registered(&plain(1), wildcard, "x..z");
    f.registered(&plain(1), Dict::new(), "x.y.z");
    let m = |uri| f.dealer.registration_match(uri);
    assert_eq!(m("a1.b2.c3.d4.e55"), Some(exact));
    assert_eq!(m("a1.b2.c3.d98.e74"), Some(short));
    assert_eq!(
        m("a1.b2.c3.d4.e325"),
        Some(long),
        "longest prefix beats wildcard"
    );
    assert_eq!(
        m("a1.b2.c3.d4x"),
        Some(long),
        "prefixes match on characters"
    );
    assert_eq!(m("a1.b2.c3"), Some(short));
    assert_eq!(m("x.q.z"), Some(wild));
    assert_ne!(m("x.y.z"), Some(wild), "exact beats wildcard");
}

#[test]
fn wildcard_precedence_follows_spec_examples() {
    let mut f = Fixture::new();
    let w = dict! { "match" => "wildcard" };
    let r4 = f.registered(&plain(1), w.clone(), "a1.b2..d4.e5");
    let r5 = f.registered(&plain(1), w.clone(), "a1.b2.c33..e5");
    let r6 = f.registered(&plain(1), w.clone(), "a1.b2..d4.e5..g7");
    let r7 = f.registered(&plain(1), w.clone(), "a1.b2..d4..f6.g7");
    let any = f.registered(&plain(1), w, "....");
    let m = |uri| f.dealer.registration_match(uri);
    assert_eq!(m("a1.b2.c55.d4.e5"), Some(r4));
    assert_eq!(m("a1.b2.c33.d4.e5"), Some(r5));
    assert_eq!(m("a1.b2.c88.d4.e5.f6.g7"), Some(r6));
    assert_eq!(m("a1.b2.c88.d4.e6.f6.g7"), Some(r7));
    assert_eq!(m("x.y.z.w.v"), Some(any));
    assert_eq!(m("a2.b2.c2.d2"), None);
}

#[test]
fn pattern_invocation_carries_procedure() {
    let mut f = Fixture::new();
    f.registered(&plain(1), dict! { "match" => "prefix" }, "com.app");
    let (_, _, details) = f.invoked(&plain(2), 1, Dict::new(), "com.app.do");
    assert_eq!(details, dict! { "procedure" => "com.app.do" });
}

#[test]
fn caller_is_disclosed_on_request_or_by_registration() {
    let mut f = Fixture::new();
    f.registered(&plain(1), Dict::new(), "com.hidden");
    f.registered(&plain(1), dict! { "disclose_caller" => true }, "com.shown");
    let caller = plain(2);
    let disclosed =
        dict! { "caller" => 2u64, "caller_authid" => "user2", "caller_authrole" => "member" };
    let (_, _, details) = f.invoked(&caller, 1, Dict::new(), "com.hidden");
    assert_eq!(details, Dict::new());
    let (_, _, details) = f.invoked(&caller, 2, dict! { "disclose_me" => true }, "com.hidden");
    assert_eq!(details, disclosed);
    let (_, _, details) = f.invoked(&caller, 3, Dict::new(), "com.shown");
    assert_eq!(details, disclosed);
}

#[test]
fn progressive_results_reach_a_caller_that_asked() {
    let mut f = Fixture::new();
    f.registered(&full_callee(1), Dict::new(), "com.stream");
    let asks = dict! { "receive_progress" => true };
    let (_, inv, details) = f.invoked(&plain(2), 7, asks, "com.stream");
    assert_eq!(details, dict! { "receive_progress" => true });
    let chunk = Payload::args(vec!["part".into()]);
    assert!(f.yield_(1, inv, dict! { "progress" => true }, chunk.clone()));
    assert!(f.yield_(1, inv, dict! { "progress" => true }, Payload::default()));
    assert!(f.yield_(1, inv, Dict::new(), Payload::default()));
    let progress = dict! { "progress" => true };
    assert_eq!(
        f.sent(),
        vec![
            result(2, 7, progress.clone(), chunk),
            result(2, 7, progress, Payload::default()),
            result(2, 7, Dict::new(), Payload::default()),
        ]
    );
}

#[test]
fn progress_is_not_offered_to_callee_without_canceling() {
    let mut f = Fixture::new();
    f.registered(
        &session(1, &["progressive_call_results"]),
        Dict::new(),
        "com.a",
    );
    let (_, _, details) = f.invoked(&plain(2), 1, dict! { "receive_progress" => true }, "com.a");
    assert_eq!(details, Dict::new());
}

#[test]
fn progressive_yield_to_caller_that_did_not_ask_is_dropped() {
    let mut f = Fixture::new();
    f.registered(&full_callee(1), Dict::new(), "com.a");
    let (_, inv, details) = f.invoked(&plain(2), 3, Dict::new(), "com.a");
    assert_eq!(details, Dict::new());
    assert!(f.yield_(
        1,
        inv,
        dict! { "progress" => true },
        Payload::args(vec![1u64.into()])
    ));
    assert!(f.sent().is_empty());
    assert_eq!(f.dealer.pending_invocations(), 1, "the call stays open");
    assert!(f.yield_(1, inv, Dict::new(), Payload::default()));
    assert_eq!(
        f.sent(),
        vec![result(2, 3, Dict::new(), Payload::default())]
    );
}

#[test]
fn callee_error_is_passed_to_caller() {
    let mut f = Fixture::new();
    f.registered(&plain(1), Dict::new(), "com.a");
    let (_, inv, _) = f.invoked(&plain(2), 9, Dict::new(), "com.a");
    let details = dict! { "extra" => 1u64 };
    let payload = Payload::new(vec!["bad".into()], dict! { "why" => "x" });
    let handled = f.dealer.handle_invocation_error(
        id(1),
        inv,
        details.clone(),
        "com.app.error".into(),
        payload.clone(),
        &mut f.out,
    );
    assert!(handled);
    let error = Message::Error {
        request_type: code::CALL,
        request: id(9),
        details,
        error: "com.app.error".into(),
        payload,
    };
    assert_eq!(f.sent(), vec![(2, error)]);
    let late = f.dealer.handle_invocation_error(
        id(1),
        inv,
        Dict::new(),
        "x.y".into(),
        Payload::default(),
        &mut f.out,
    );
    assert!(!late);
}

#[test]
fn yield_from_another_session_is_dropped() {
    let mut f = Fixture::new();
    f.registered(&plain(1), Dict::new(), "com.a");
    let (_, inv, _) = f.invoked(&plain(2), 1, Dict::new(), "com.a");
    assert!(!f.yield_(3, inv, Dict::new(), Payload::default()));
    assert!(f.sent().is_empty());
    assert_eq!(f.dealer.pending_invocations(), 1);
}

#[test]
fn pending_request_id_cannot_be_reused() {
    let mut f = Fixture::new();
    f.registered(&plain(1), Dict::new(), "com.a");
    f.invoked(&plain(2), 5, Dict::new(), "com.a");
    f.call(&plain(2), 5, Dict::new(), "com.a");
    let text = "request id already used by a pending call";
    assert_eq!(
        f.sent(),
        vec![refused(2, code::CALL, 5, reason::INVALID_ARGUMENT, text)]
    );
}

/// Which callee each of `n` calls goes to.
fn targets(f: &mut Fixture, uri: &str, n: u64) -> Vec<u64> {
    (1..=n)
        .map(|req| {
            let (callee, inv, _) = f.invoked(&plain(9), req, Dict::new(), uri);
            assert!(f.yield_(callee, inv, Dict::new(), Payload::default()));
            f.sent();
            callee
        })
        .collect()
}

#[test]
fn invoke_policies_choose_callees() {
    let mut f = Fixture::new();
    for (uri, policy) in [
        ("rr", "roundrobin"),
        ("first", "first"),
        ("last", "last"),
        ("rand", "random"),
    ] {
        for callee in 1..=3 {
            f.registered(&plain(callee), dict! { "invoke" => policy }, uri);
        }
    }
    assert_eq!(targets(&mut f, "rr", 5), vec![1, 2, 3, 1, 2]);
    assert_eq!(targets(&mut f, "first", 2), vec![1, 1]);
    assert_eq!(targets(&mut f, "last", 2), vec![3, 3]);
    assert!(targets(&mut f, "rand", 20)
        .iter()
        .all(|c| (1..=3).contains(c)));
}

#[test]
fn roundrobin_keeps_turn_when_a_callee_leaves() {
    let mut f = Fixture::new();
    let rr = dict! { "invoke" => "roundrobin" };
    let reg = f.registered(&plain(1), rr.clone(), "rr");
    f.registered(&plain(2), rr.clone(), "rr");
    f.registered(&plain(3), rr, "rr");
    assert_eq!(targets(&mut f, "rr", 2), vec![1, 2]);
    f.dealer.handle_unregister(id(1), id(5), reg, &mut f.out);
    f.sent();
    assert_eq!(targets(&mut f, "rr", 3), vec![3, 2, 3]);
}

#[test]
fn timeout_fails_call_and_interrupts_callee() {
    let mut f = Fixture::new();
    f.registered(&full_callee(1), Dict::new(), "com.slow");
    f.call_at(&plain(2), 4, dict! { "timeout" => 500u64 }, "com.slow", 100);
    let (inv, details) = match f.sent().as_slice() {
        [(
            1,
            Message::Invocation {
                request, details, ..
            },
        )] => (*request, details.clone()),
        other => panic!("expected INVOCATION, got {other:?}"),
    };
    assert_eq!(details, dict! { "timeout" => 500u64 });
    assert_eq!(f.dealer.poll_timeout(), Some(f.at(600).instant));
    f.dealer.handle_timeout(&f.at(599), &mut f.out);
    assert!(f.sent().is_empty());
    f.dealer.handle_timeout(&f.at(600), &mut f.out);
    assert_eq!(
        f.sent(),
        vec![
            error(2, code::CALL, 4, reason::TIMEOUT),
            interrupt(1, inv, "killnowait")
        ]
    );
    assert_eq!(f.dealer.poll_timeout(), None);
    assert!(
        !f.yield_(1, inv, Dict::new(), Payload::default()),
        "late YIELD is dropped"
    );
    assert!(f.sent().is_empty());
}

#[test]
fn timeout_without_canceling_callee_sends_no_interrupt() {
    let mut f = Fixture::new();
    f.registered(&plain(1), Dict::new(), "com.slow");
    f.call(&plain(2), 4, dict! { "timeout" => 10u64 }, "com.slow");
    f.sent();
    f.dealer.handle_timeout(&f.at(1000), &mut f.out);
    assert_eq!(f.sent(), vec![error(2, code::CALL, 4, reason::TIMEOUT)]);
}

#[test]
fn answered_call_clears_its_deadline() {
    let mut f = Fixture::new();
    f.registered(&plain(1), Dict::new(), "com.a");
    let (_, early, _) = f.invoked(&plain(2), 1, dict! { "timeout" => 100u64 }, "com.a");
    f.invoked(&plain(2), 2, dict! { "timeout" => 300u64 }, "com.a");
    f.invoked(&plain(2), 3, dict! { "timeout" => 0u64 }, "com.a");
    assert_eq!(f.dealer.poll_timeout(), Some(f.at(100).instant));
    assert!(f.yield_(1, early, Dict::new(), Payload::default()));
    assert_eq!(f.dealer.poll_timeout(), Some(f.at(300).instant));
}

#[test]
fn forward_timeout_leaves_timing_to_callee() {
    let mut f = Fixture::new();
    f.registered(
        &full_callee(1),
        dict! { "forward_timeout" => true },
        "com.a",
    );
    let (_, _, details) = f.invoked(&plain(2), 1, dict! { "timeout" => 50u64 }, "com.a");
    assert_eq!(details, dict! { "timeout" => 50u64 });
    assert_eq!(f.dealer.poll_timeout(), None);
}

#[test]
fn malformed_timeout_is_invalid_argument() {
    let mut f = Fixture::new();
    f.registered(&plain(1), Dict::new(), "com.a");
    f.call(&plain(2), 1, dict! { "timeout" => -5i64 }, "com.a");
    f.call(&plain(2), 2, dict! { "timeout" => "soon" }, "com.a");
    let text = "invalid value for option 'timeout'";
    assert_eq!(
        f.sent(),
        vec![
            refused(2, code::CALL, 1, reason::INVALID_ARGUMENT, text),
            refused(2, code::CALL, 2, reason::INVALID_ARGUMENT, text),
        ]
    );
}
