//! CANCEL modes and what happens to calls when their caller or callee leaves.

use super::*;

/// A callee (session 1, with `features`) serving `com.a`, and a pending call 5 from session 2.
fn pending(features: &[&str]) -> (Fixture, Id) {
    let mut f = Fixture::new();
    f.registered(&session(1, features), Dict::new(), "com.a");
    let (_, inv, _) = f.invoked(&plain(2), 5, dict! { "timeout" => 1000u64 }, "com.a");
    (f, inv)
}

const CANCELING: &[&str] = &["call_canceling"];

#[test]
fn skip_answers_caller_and_leaves_callee_alone() {
    let (mut f, inv) = pending(CANCELING);
    f.cancel(2, 5, Some("skip"));
    assert_eq!(f.sent(), vec![error(2, code::CALL, 5, reason::CANCELED)]);
    assert_eq!(f.dealer.poll_timeout(), None);
    assert!(!f.yield_(1, inv, Dict::new(), Payload::default()));
    assert!(f.sent().is_empty());
}

#[test]
fn kill_waits_for_callee_error() {
    let (mut f, inv) = pending(CANCELING);
    f.cancel(2, 5, Some("kill"));
    assert_eq!(f.sent(), vec![interrupt(1, inv, "kill")]);
    f.cancel(2, 5, Some("kill"));
    assert!(f.sent().is_empty(), "a second kill is ignored");
    let handled = f.dealer.handle_invocation_error(
        id(1),
        inv,
        Dict::new(),
        reason::CANCELED.into(),
        Payload::default(),
        &mut f.out,
    );
    assert!(handled);
    assert_eq!(f.sent(), vec![error(2, code::CALL, 5, reason::CANCELED)]);
    assert_eq!(f.dealer.pending_invocations(), 0);
}

#[test]
fn kill_lets_a_racing_result_through() {
    let (mut f, inv) = pending(CANCELING);
    f.cancel(2, 5, Some("kill"));
    f.sent();
    assert!(f.yield_(1, inv, Dict::new(), Payload::args(vec![1u64.into()])));
    let done = result(2, 5, Dict::new(), Payload::args(vec![1u64.into()]));
    assert_eq!(f.sent(), vec![done]);
}

#[test]
fn killnowait_after_kill_ends_call_without_second_interrupt() {
    let (mut f, inv) = pending(CANCELING);
    f.cancel(2, 5, Some("kill"));
    f.sent();
    f.cancel(2, 5, Some("killnowait"));
    assert_eq!(f.sent(), vec![error(2, code::CALL, 5, reason::CANCELED)]);
    assert!(!f.yield_(1, inv, Dict::new(), Payload::default()));
}

#[test]
fn killnowait_answers_caller_and_interrupts() {
    let (mut f, inv) = pending(CANCELING);
    f.cancel(2, 5, Some("killnowait"));
    assert_eq!(
        f.sent(),
        vec![
            error(2, code::CALL, 5, reason::CANCELED),
            interrupt(1, inv, "killnowait")
        ]
    );
    assert_eq!(f.dealer.pending_invocations(), 0);
    assert_eq!(f.dealer.poll_timeout(), None);
}

#[test]
fn default_and_unknown_modes_are_killnowait() {
    for mode in [None, Some("explode")] {
        let (mut f, inv) = pending(CANCELING);
        f.cancel(2, 5, mode);
        assert_eq!(
            f.sent(),
            vec![
                error(2, code::CALL, 5, reason::CANCELED),
                interrupt(1, inv, "killnowait")
            ]
        );
    }
}

#[test]
fn callee_without_canceling_gets_skip() {
    for mode in ["kill", "killnowait"] {
        let (mut f, inv) = pending(&[]);
        f.cancel(2, 5, Some(mode));
        assert_eq!(f.sent(), vec![error(2, code::CALL, 5, reason::CANCELED)]);
        assert!(!f.yield_(1, inv, Dict::new(), Payload::default()));
    }
}

#[test]
fn cancel_of_unknown_or_foreign_call_is_ignored() {
    let (mut f, _) = pending(CANCELING);
    f.cancel(2, 6, Some("kill"));
    f.cancel(3, 5, Some("kill"));
    assert!(f.sent().is_empty());
    assert_eq!(f.dealer.pending_invocations(), 1);
}

#[test]
fn caller_leaving_interrupts_canceling_callee() {
    let (mut f, inv) = pending(CANCELING);
    f.dealer.handle_session_leave(id(2), &mut f.out);
    assert_eq!(f.sent(), vec![interrupt(1, inv, "killnowait")]);
    assert_eq!(f.dealer.poll_timeout(), None);
    assert!(!f.yield_(1, inv, Dict::new(), Payload::default()));
    assert!(f.sent().is_empty());
}

#[test]
fn caller_leaving_is_silent_for_plain_callee() {
    let (mut f, _) = pending(&[]);
    f.dealer.handle_session_leave(id(2), &mut f.out);
    assert!(f.sent().is_empty());
    assert_eq!(f.dealer.pending_invocations(), 0);
}

#[test]
fn callee_leaving_cancels_its_calls() {
    let (mut f, _) = pending(CANCELING);
    f.invoked(&plain(3), 8, Dict::new(), "com.a");
    f.invoked(&plain(1), 9, Dict::new(), "com.a"); // calling itself
    f.dealer.handle_session_leave(id(1), &mut f.out);
    assert_eq!(
        f.sent(),
        vec![
            error(2, code::CALL, 5, reason::CANCELED),
            error(3, code::CALL, 8, reason::CANCELED)
        ]
    );
    assert_eq!(f.dealer.pending_invocations(), 0);
    assert_eq!(f.dealer.poll_timeout(), None);
    assert_eq!(f.meta().len(), 2, "Removed and Deleted");
    f.call(&plain(2), 10, Dict::new(), "com.a");
    let text = "no callee registered for the procedure";
    assert_eq!(
        f.sent(),
        vec![refused(2, code::CALL, 10, reason::NO_SUCH_PROCEDURE, text)]
    );
}

#[test]
fn timeout_while_kill_is_pending_answers_caller_only() {
    let (mut f, inv) = pending(CANCELING);
    f.cancel(2, 5, Some("kill"));
    f.sent();
    f.dealer.handle_timeout(&f.at(1000), &mut f.out);
    assert_eq!(
        f.sent(),
        vec![error(2, code::CALL, 5, reason::TIMEOUT)],
        "no second INTERRUPT"
    );
    let late = f.dealer.handle_invocation_error(
        id(1),
        inv,
        Dict::new(),
        reason::CANCELED.into(),
        Payload::default(),
        &mut f.out,
    );
    assert!(!late);
}

#[test]
fn caller_leaving_after_kill_sends_no_second_interrupt() {
    let (mut f, inv) = pending(CANCELING);
    f.cancel(2, 5, Some("kill"));
    assert_eq!(f.sent(), vec![interrupt(1, inv, "kill")]);
    f.dealer.handle_session_leave(id(2), &mut f.out);
    assert!(f.sent().is_empty());
    assert_eq!(f.dealer.pending_invocations(), 0);
}
