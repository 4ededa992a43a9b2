//! The call path of the dealer: CALL to INVOCATION, YIELD and callee ERROR back to the caller,
//! CANCEL and call timeouts.

use std::time::Duration;

use super::registry::Callee;
use super::{
    interrupt, option_flag, refuse, CallKey, Dealer, DealerError, Invocation, InvocationKey,
};
use crate::router::types::{Now, Outbox, SessionInfo};
use crate::wamp::uri::reason::{CANCELED, TIMEOUT};
use crate::wamp::uri::{is_valid_uri, MatchPolicy};
use crate::wamp::{code, Dict, Id, Message, Payload, SessionId, Value};

/// How a CANCEL treats the callee and when the caller hears back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CancelMode {
    Skip,
    Kill,
    KillNoWait,
}

impl CancelMode {
    /// `CANCEL.Options.mode`; absent or unknown is `killnowait`.
    fn from_options(options: &Dict) -> CancelMode {
        match options.get("mode").and_then(Value::as_str) {
            Some("skip") => CancelMode::Skip,
            Some("kill") => CancelMode::Kill,
            _ => CancelMode::KillNoWait,
        }
    }
}

/// The CALL options the dealer acts on.
struct CallOptions {
    /// `timeout` in ms; 0 means none.
    timeout_ms: u64,
    receive_progress: bool,
    disclose_me: bool,
}

impl CallOptions {
    /// `timeout` absent, null or 0 means none; anything but a non-negative integer is an error.
    fn parse(options: &Dict) -> Result<CallOptions, DealerError> {
        let timeout_ms = match options.get("timeout") {
            None | Some(Value::Null) => 0,
            Some(Value::UInt(ms)) => *ms,
            Some(_) => return Err(DealerError::InvalidOption("timeout")),
        };
        Ok(CallOptions {
            timeout_ms,
            receive_progress: option_flag(options, "receive_progress"),
            disclose_me: option_flag(options, "disclose_me"),
        })
    }
}

/// INVOCATION.Details: `procedure` for pattern registrations, `receive_progress`, caller
/// disclosure and `timeout`.
fn invocation_details(
    options: &CallOptions,
    caller: &SessionInfo,
    pattern_match: Option<String>,
    callee: Callee,
    callee_progressive: bool,
) -> Dict {
    let mut details = Dict::new();
    if let Some(procedure) = pattern_match {
        details.insert("procedure".into(), Value::Str(procedure));
    }
    if options.receive_progress && callee_progressive {
        details.insert("receive_progress".into(), Value::Bool(true));
    }
    if callee.disclose_caller || options.disclose_me {
        details.insert("caller".into(), Value::UInt(caller.id.get()));
        details.insert("caller_authid".into(), caller.authid.clone().into());
        details.insert("caller_authrole".into(), caller.authrole.clone().into());
    }
    if options.timeout_ms > 0 {
        details.insert("timeout".into(), Value::UInt(options.timeout_ms));
    }
    details
}

impl Dealer {
    /// CALL: routes to the best-matching registration's chosen callee as INVOCATION, or
    /// answers ERROR (`invalid_uri`, `no_such_procedure`, `invalid_argument`).
    #[allow(clippy::too_many_arguments)] // the realm's interface: one argument per CALL field
    pub fn handle_call(
        &mut self,
        caller: &SessionInfo,
        request: Id,
        options: Dict,
        procedure: String,
        payload: Payload,
        now: &Now,
        out: &mut Outbox,
    ) {
        self.handle_call_avoiding(caller, request, options, procedure, payload, now, &[], out);
    }

    /// CALL that must not be routed to the callees in `avoid` (links on a forwarded call's path).
    #[allow(clippy::too_many_arguments)]
    pub fn handle_call_avoiding(
        &mut self,
        caller: &SessionInfo,
        request: Id,
        options: Dict,
        procedure: String,
        payload: Payload,
        now: &Now,
        avoid: &[SessionId],
        out: &mut Outbox,
    ) {
        if let Err(error) = self.call(
            caller, request, &options, procedure, payload, now, avoid, out,
        ) {
            refuse(out, caller.id, code::CALL, request, error);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn call(
        &mut self,
        caller: &SessionInfo,
        request: Id,
        options: &Dict,
        procedure: String,
        payload: Payload,
        now: &Now,
        avoid: &[SessionId],
        out: &mut Outbox,
    ) -> Result<(), DealerError> {
        if !is_valid_uri(&procedure) {
            return Err(DealerError::InvalidUri);
        }
        let options = CallOptions::parse(options)?;
        let call = CallKey {
            caller: caller.id,
            request,
        };
        if self.calls.contains_key(&call) {
            return Err(DealerError::RequestInUse);
        }
        let id = self.registry.best_match(&procedure);
        let (registration, callee) = id
            .and_then(|id| self.registry.pick_callee(id, avoid))
            .ok_or(DealerError::NoSuchProcedure)?;
        let state = self
            .callees
            .get_mut(&callee.session)
            .ok_or(DealerError::NoSuchProcedure)?;
        let pattern_match = (registration.policy != MatchPolicy::Exact).then_some(procedure);
        let details = invocation_details(
            &options,
            caller,
            pattern_match,
            callee,
            state.progressive_results,
        );
        let key = InvocationKey {
            callee: callee.session,
            request: state.invocation_ids.next_id(),
        };
        let timeout = Duration::from_millis(options.timeout_ms);
        let deadline =
            (options.timeout_ms > 0 && !callee.forward_timeout).then(|| now.instant + timeout);
        out.send(
            key.callee,
            Message::Invocation {
                request: key.request,
                registration: registration.id,
                details,
                payload,
            },
        );
        let invocation = Invocation {
            call,
            caller_wants_progress: options.receive_progress,
            callee_cancels: state.call_canceling,
            deadline,
            kill_sent: false,
        };
        self.track(key, invocation);
        Ok(())
    }

    /// Indexes a new invocation by callee, by caller and by deadline.
    fn track(&mut self, key: InvocationKey, invocation: Invocation) {
        // Still pending after its request id wrapped around means the callee never answered
        // 2^53 invocations; drop the old one so the indexes stay consistent.
        self.forget(key);
        if let Some(deadline) = invocation.deadline {
            self.deadlines.insert((deadline, key));
        }
        self.calls.insert(invocation.call, key);
        self.invocations.insert(key, invocation);
    }

    /// YIELD: a result for the caller. Returns false when no invocation was pending for it (a
    /// late answer after cancel, timeout or caller leave), which the realm may log.
    pub fn handle_yield(
        &mut self,
        callee: SessionId,
        request: Id,
        options: Dict,
        payload: Payload,
        out: &mut Outbox,
    ) -> bool {
        let key = InvocationKey { callee, request };
        let Some(invocation) = self.invocations.get(&key) else {
            return false;
        };
        let call = invocation.call;
        if option_flag(&options, "progress") {
            if invocation.caller_wants_progress {
                let details = crate::dict! { "progress" => true };
                let result = Message::Result {
                    request: call.request,
                    details,
                    payload,
                };
                out.send(call.caller, result);
            }
            return true;
        }
        self.forget(key);
        let result = Message::Result {
            request: call.request,
            details: Dict::new(),
            payload,
        };
        out.send(call.caller, result);
        true
    }

    /// ERROR for an INVOCATION: passed to the caller as ERROR for its CALL, same URI, details
    /// and payload. Returns false when no invocation was pending for it.
    pub fn handle_invocation_error(
        &mut self,
        callee: SessionId,
        request: Id,
        details: Dict,
        error: String,
        payload: Payload,
        out: &mut Outbox,
    ) -> bool {
        let Some(invocation) = self.forget(InvocationKey { callee, request }) else {
            return false;
        };
        let call = invocation.call;
        let request_type = code::CALL;
        let message = Message::Error {
            request_type,
            request: call.request,
            details,
            error,
            payload,
        };
        out.send(call.caller, message);
        true
    }

    /// CANCEL: `skip`, `kill` or `killnowait` (default; see the module docs). Unknown or
    /// already finished calls are ignored.
    pub fn handle_cancel(
        &mut self,
        caller: SessionId,
        request: Id,
        options: &Dict,
        out: &mut Outbox,
    ) {
        let call = CallKey { caller, request };
        let Some(&key) = self.calls.get(&call) else {
            return;
        };
        let Some(invocation) = self.invocations.get_mut(&key) else {
            return;
        };
        let mut mode = CancelMode::from_options(options);
        if !invocation.callee_cancels {
            mode = CancelMode::Skip;
        }
        if invocation.kill_sent && mode == CancelMode::Kill {
            return;
        }
        if mode == CancelMode::Kill {
            invocation.kill_sent = true;
            return interrupt(out, key, "kill");
        }
        let interrupt_now = mode == CancelMode::KillNoWait && !invocation.kill_sent;
        self.forget(key);
        out.error(caller, code::CALL, request, CANCELED);
        if interrupt_now {
            interrupt(out, key, "killnowait");
        }
    }

    /// The earliest call deadline, for the realm's timer.
    pub fn poll_timeout(&self) -> Option<std::time::Instant> {
        self.deadlines.first().map(|(deadline, _)| *deadline)
    }

    /// Expires every call whose deadline is not after `now`: ERROR `wamp.error.timeout` to the
    /// caller, INTERRUPT `killnowait` to a callee that supports canceling.
    pub fn handle_timeout(&mut self, now: &Now, out: &mut Outbox) {
        while let Some(&(deadline, key)) = self.deadlines.first() {
            if deadline > now.instant {
                break;
            }
            self.deadlines.pop_first();
            let Some(invocation) = self.forget(key) else {
                continue;
            };
            out.error(
                invocation.call.caller,
                code::CALL,
                invocation.call.request,
                TIMEOUT,
            );
            if invocation.may_interrupt() {
                interrupt(out, key, "killnowait");
            }
        }
    }
}
