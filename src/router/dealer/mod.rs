//! The dealer: registrations, calls, invocations, results, cancel and timeouts, without I/O.
//!
//! A synchronous state machine. The realm checks authorization, then feeds it messages through
//! `handle_*`, hands it the time as [`Now`], and sends what lands in the [`Outbox`]. Timers are
//! deadlines the realm asks for with [`Dealer::poll_timeout`] and fires with
//! [`Dealer::handle_timeout`].
//!
//! Rules chosen where the spec leaves room:
//! * `CANCEL.Options.mode` defaults to `killnowait` (the spec names no default); an unknown mode
//!   is treated as the default. A callee without `call_canceling` always gets `skip`.
//! * After `kill`, the call stays open: the callee's ERROR (or a RESULT that raced the
//!   INTERRUPT) reaches the caller. A later `skip`/`killnowait` CANCEL ends it at once without a
//!   second INTERRUPT; a second `kill` is ignored. Timeout and caller leave do not send a
//!   second INTERRUPT either.
//! * Progressive YIELDs reach the caller only if it set `CALL.Options.receive_progress`; others
//!   are dropped and the call stays open for the final YIELD.
//! * A callee supports progressive results only with `call_canceling` too (spec rule), so only
//!   then does INVOCATION carry `receive_progress`.
//! * `timeout` (ms) starts a dealer timer unless the chosen callee registered with
//!   `forward_timeout: true`; the value is forwarded in INVOCATION.Details either way. The
//!   deadline covers the whole call: progressive YIELDs do not extend it (YIELD carries no time).
//! * A CALL reusing the request id of a pending call gets ERROR `wamp.error.invalid_argument`.
//! * Session leave is a scan over pending invocations (rare event; calls stay cheap).

mod calls;
mod registry;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Instant;

use crate::router::types::{MetaEvent, Now, Outbox, SessionInfo};
use crate::wamp::uri::{is_valid_pattern, is_valid_uri, MatchPolicy};
use crate::wamp::{code, Dict, Id, IdSequence, Message, Payload, SessionId, Value};

pub use registry::InvokePolicy;
use registry::{Callee, Registry, Removal};

/// Why the dealer refused a request; each maps to the ERROR URI the peer receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DealerError {
    #[error("invalid procedure URI")]
    InvalidUri,
    #[error("invalid value for option '{0}'")]
    InvalidOption(&'static str),
    #[error("procedure already registered")]
    ProcedureAlreadyExists,
    #[error("no such registration for this session")]
    NoSuchRegistration,
    #[error("no callee registered for the procedure")]
    NoSuchProcedure,
    #[error("request id already used by a pending call")]
    RequestInUse,
}

impl DealerError {
    /// The ERROR URI for this refusal.
    pub fn uri(self) -> &'static str {
        use crate::wamp::uri::reason::*;
        match self {
            DealerError::InvalidUri => INVALID_URI,
            DealerError::InvalidOption(_) | DealerError::RequestInUse => INVALID_ARGUMENT,
            DealerError::ProcedureAlreadyExists => PROCEDURE_ALREADY_EXISTS,
            DealerError::NoSuchRegistration => NO_SUCH_REGISTRATION,
            DealerError::NoSuchProcedure => NO_SUCH_PROCEDURE,
        }
    }
}

/// An invocation as the callee knows it: (callee session, INVOCATION.Request).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct InvocationKey {
    callee: SessionId,
    request: Id,
}

/// A call as the caller knows it: (caller session, CALL.Request).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct CallKey {
    caller: SessionId,
    request: Id,
}

/// A call forwarded to a callee and not yet answered.
#[derive(Debug)]
struct Invocation {
    call: CallKey,
    /// The caller set `receive_progress`: progressive YIELDs are forwarded.
    caller_wants_progress: bool,
    /// The callee announced `call_canceling`: it may be sent INTERRUPT.
    callee_cancels: bool,
    deadline: Option<Instant>,
    /// A `kill` INTERRUPT was sent; the callee's answer ends the call.
    kill_sent: bool,
}

impl Invocation {
    /// Whether a `killnowait` INTERRUPT should go out when the dealer gives up on this call:
    /// the callee supports canceling and has not already been sent a `kill`.
    fn may_interrupt(&self) -> bool {
        self.callee_cancels && !self.kill_sent
    }
}

/// What the dealer remembers about a session that registered something.
#[derive(Debug)]
struct CalleeSession {
    /// INVOCATION request ids, sequential per session for its whole life.
    invocation_ids: IdSequence,
    call_canceling: bool,
    /// `progressive_call_results` and `call_canceling` both announced.
    progressive_results: bool,
    registrations: HashSet<Id>,
}

impl CalleeSession {
    fn new(info: &SessionInfo) -> CalleeSession {
        let call_canceling = info.features.callee_call_canceling;
        CalleeSession {
            invocation_ids: IdSequence::default(),
            call_canceling,
            progressive_results: call_canceling && info.features.callee_progressive_call_results,
            registrations: HashSet::new(),
        }
    }
}

/// The RPC routing state of one realm.
#[derive(Debug, Default)]
pub struct Dealer {
    registry: Registry,
    callees: HashMap<SessionId, CalleeSession>,
    invocations: HashMap<InvocationKey, Invocation>,
    calls: HashMap<CallKey, InvocationKey>,
    deadlines: BTreeSet<(Instant, InvocationKey)>,
}

/// A string option: absent or null is `None`, any other non-string is an error.
fn option_str<'a>(options: &'a Dict, key: &'static str) -> Result<Option<&'a str>, DealerError> {
    match options.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Str(text)) => Ok(Some(text)),
        Some(_) => Err(DealerError::InvalidOption(key)),
    }
}

/// A boolean option: only `true` turns it on.
fn option_flag(options: &Dict, key: &str) -> bool {
    matches!(options.get(key), Some(Value::Bool(true)))
}

/// Sends ERROR for a refused request, with the reason as the single argument.
fn refuse(out: &mut Outbox, to: SessionId, request_type: u64, request: Id, error: DealerError) {
    out.send(
        to,
        Message::Error {
            request_type,
            request,
            details: Dict::new(),
            error: error.uri().to_owned(),
            payload: Payload::args(vec![Value::Str(error.to_string())]),
        },
    );
}

impl Dealer {
    pub fn new() -> Dealer {
        Dealer::default()
    }

    /// REGISTER: creates or joins a registration; answers REGISTERED or ERROR.
    pub fn handle_register(
        &mut self,
        callee: &SessionInfo,
        request: Id,
        options: &Dict,
        procedure: &str,
        now: &Now,
        out: &mut Outbox,
    ) {
        match self.register(callee, options, procedure, now, out) {
            Ok(registration) => out.send(
                callee.id,
                Message::Registered {
                    request,
                    registration,
                },
            ),
            Err(error) => refuse(out, callee.id, code::REGISTER, request, error),
        }
    }

    fn register(
        &mut self,
        info: &SessionInfo,
        options: &Dict,
        procedure: &str,
        now: &Now,
        out: &mut Outbox,
    ) -> Result<Id, DealerError> {
        let policy = MatchPolicy::parse(option_str(options, "match")?)
            .ok_or(DealerError::InvalidOption("match"))?;
        let invoke = InvokePolicy::parse(option_str(options, "invoke")?)
            .ok_or(DealerError::InvalidOption("invoke"))?;
        if !is_valid_pattern(procedure, policy) {
            return Err(DealerError::InvalidUri);
        }
        let callee = Callee {
            session: info.id,
            disclose_caller: option_flag(options, "disclose_caller"),
            forward_timeout: option_flag(options, "forward_timeout"),
        };
        let session = info.id;
        let (id, created) = self
            .registry
            .add(procedure, policy, invoke, now.iso8601(), callee)
            .ok_or(DealerError::ProcedureAlreadyExists)?;
        if let Some(registration) = self.registry.get(id).filter(|_| created) {
            let details = registration.details();
            out.meta(MetaEvent::RegistrationCreated { session, details });
        }
        out.meta(MetaEvent::RegistrationAdded {
            session,
            registration: id,
        });
        let state = self
            .callees
            .entry(session)
            .or_insert_with(|| CalleeSession::new(info));
        state.registrations.insert(id);
        tracing::debug!(session = %session, registration = %id, procedure, "registered");
        Ok(id)
    }

    /// UNREGISTER: only a callee of the registration may leave it.
    pub fn handle_unregister(
        &mut self,
        callee: SessionId,
        request: Id,
        registration: Id,
        out: &mut Outbox,
    ) {
        if !self.remove_callee(callee, registration, out) {
            let error = DealerError::NoSuchRegistration;
            return refuse(out, callee, code::UNREGISTER, request, error);
        }
        if let Some(state) = self.callees.get_mut(&callee) {
            state.registrations.remove(&registration);
        }
        out.send(
            callee,
            Message::Unregistered {
                request: Some(request),
                details: None,
            },
        );
    }

    /// Removes one callee from one registration with its meta events; false if it was none.
    fn remove_callee(&mut self, session: SessionId, registration: Id, out: &mut Outbox) -> bool {
        let removal = self.registry.remove_callee(registration, session);
        if removal == Removal::NotACallee {
            return false;
        }
        out.meta(MetaEvent::RegistrationRemoved {
            session,
            registration,
        });
        if removal == Removal::Deleted {
            out.meta(MetaEvent::RegistrationDeleted {
                session,
                registration,
            });
        }
        true
    }

    /// A session left the realm: drops its registrations, cancels the calls it made (INTERRUPT
    /// `killnowait` to callees that support it) and fails the calls it was serving (ERROR
    /// `wamp.error.canceled` to their callers).
    pub fn handle_session_leave(&mut self, session: SessionId, out: &mut Outbox) {
        if let Some(state) = self.callees.remove(&session) {
            let mut registrations: Vec<Id> = state.registrations.into_iter().collect();
            registrations.sort_unstable();
            for registration in registrations {
                self.remove_callee(session, registration, out);
            }
        }
        let mut gone: Vec<InvocationKey> = self
            .invocations
            .iter()
            .filter(|(key, inv)| key.callee == session || inv.call.caller == session)
            .map(|(key, _)| *key)
            .collect();
        gone.sort_unstable();
        for key in gone {
            let Some(invocation) = self.forget(key) else {
                continue;
            };
            let caller = invocation.call.caller;
            if key.callee == session && caller != session {
                let canceled = crate::wamp::uri::reason::CANCELED;
                out.error(caller, code::CALL, invocation.call.request, canceled);
            } else if key.callee != session && invocation.may_interrupt() {
                interrupt(out, key, "killnowait");
            }
        }
    }

    /// Removes an invocation from every index.
    fn forget(&mut self, key: InvocationKey) -> Option<Invocation> {
        let invocation = self.invocations.remove(&key)?;
        self.calls.remove(&invocation.call);
        if let Some(deadline) = invocation.deadline {
            self.deadlines.remove(&(deadline, key));
        }
        Some(invocation)
    }

    /// Calls forwarded to callees and not yet answered (for metrics and tests).
    pub fn pending_invocations(&self) -> usize {
        self.invocations.len()
    }

    /// `wamp.registration.list`: `{"exact": [ids], "prefix": [ids], "wildcard": [ids]}`.
    /// Registrations with at least one callee for which `is_link` is false, as mesh interest.
    pub fn local_interest(
        &self,
        is_link: impl Fn(SessionId) -> bool,
    ) -> Vec<crate::router::mesh::Interest> {
        self.registry
            .all()
            .filter(|r| r.callees.iter().any(|c| !is_link(c.session)))
            .map(|r| crate::router::mesh::Interest {
                uri: r.uri.clone(),
                policy: r.policy,
                invoke: Some(r.invoke.as_str().to_owned()),
            })
            .collect()
    }

    pub fn registration_list(&self) -> Dict {
        self.registry.list()
    }

    /// `wamp.registration.lookup`: the registration for exactly this URI and match policy.
    pub fn registration_lookup(&self, uri: &str, policy: MatchPolicy) -> Option<Id> {
        self.registry.lookup(uri, policy)
    }

    /// `wamp.registration.match`: the registration a call to `uri` would use.
    pub fn registration_match(&self, uri: &str) -> Option<Id> {
        if !is_valid_uri(uri) {
            return None;
        }
        self.registry.best_match(uri)
    }

    /// `wamp.registration.get`: `{id, created, uri, match, invoke}`.
    pub fn registration_get(&self, id: Id) -> Option<Dict> {
        self.registry.get(id).map(|r| r.details())
    }

    /// `wamp.registration.list_callees` (and `count_callees` by its length), in join order.
    pub fn registration_callees(&self, id: Id) -> Option<Vec<SessionId>> {
        let registration = self.registry.get(id)?;
        Some(registration.callees.iter().map(|c| c.session).collect())
    }
}

/// Sends INTERRUPT for an invocation.
fn interrupt(out: &mut Outbox, key: InvocationKey, mode: &str) {
    out.send(
        key.callee,
        Message::Interrupt {
            request: key.request,
            options: crate::dict! { "mode" => mode },
        },
    );
}
