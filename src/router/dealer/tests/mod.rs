//! Socket-free tests of the dealer: fake sessions in, exact messages out.

mod calls;
mod cancel;
mod registration;

use std::time::{Duration, Instant};

use super::Dealer;
use crate::dict;
use crate::router::types::{Features, MetaEvent, Now, Outbox, SessionInfo};
use crate::wamp::uri::reason;
use crate::wamp::{code, Dict, Id, Message, Payload, Value};

pub(super) fn id(n: u64) -> Id {
    Id::new(n).expect("test ids are in range")
}

/// A session announcing `features` for the callee role.
pub(super) fn session(n: u64, callee_features: &[&str]) -> SessionInfo {
    let mut features = Dict::new();
    for feature in callee_features {
        features.insert(feature.to_string(), Value::Bool(true));
    }
    SessionInfo {
        id: id(n),
        authid: format!("user{n}"),
        authrole: "member".into(),
        authmethod: "anonymous".into(),
        authprovider: "static".into(),
        features: Features::from_roles(Some(
            &dict! { "callee" => dict! { "features" => features } },
        )),
        transport: Default::default(),
        attach_link: false,
    }
}

/// A session announcing call canceling and progressive results, as autobahn does.
pub(super) fn full_callee(n: u64) -> SessionInfo {
    session(n, &["call_canceling", "progressive_call_results"])
}

/// A plain (Basic Profile) session.
pub(super) fn plain(n: u64) -> SessionInfo {
    session(n, &[])
}

pub(super) const T0_UNIX_MS: u64 = 1_403_455_901_643;

/// A dealer, an outbox and a fake clock.
pub(super) struct Fixture {
    pub dealer: Dealer,
    pub out: Outbox,
    pub t0: Instant,
}

impl Fixture {
    pub fn new() -> Fixture {
        Fixture {
            dealer: Dealer::new(),
            out: Outbox::default(),
            t0: Instant::now(),
        }
    }

    pub fn at(&self, ms: u64) -> Now {
        Now {
            instant: self.t0 + Duration::from_millis(ms),
            unix_ms: T0_UNIX_MS + ms,
        }
    }

    /// Deliveries since the last call, as (session, message).
    pub fn sent(&mut self) -> Vec<(u64, Message)> {
        self.out
            .deliveries
            .drain(..)
            .map(|d| (d.to.get(), d.message.message().clone()))
            .collect()
    }

    pub fn meta(&mut self) -> Vec<MetaEvent> {
        std::mem::take(&mut self.out.meta)
    }

    pub fn register(&mut self, s: &SessionInfo, request: u64, options: Dict, uri: &str) {
        let now = self.at(0);
        let (dealer, out) = (&mut self.dealer, &mut self.out);
        dealer.handle_register(s, id(request), &options, uri, &now, out);
    }

    /// Registers and returns the registration id, clearing the outbox.
    pub fn registered(&mut self, s: &SessionInfo, options: Dict, uri: &str) -> Id {
        self.register(s, 1, options, uri);
        let sent = self.sent();
        self.meta();
        match sent.as_slice() {
            [(_, Message::Registered { registration, .. })] => *registration,
            other => panic!("expected REGISTERED, got {other:?}"),
        }
    }

    pub fn call_at(&mut self, s: &SessionInfo, request: u64, options: Dict, uri: &str, ms: u64) {
        let now = self.at(ms);
        let payload = Payload::args(vec![Value::UInt(request)]);
        let (dealer, out) = (&mut self.dealer, &mut self.out);
        dealer.handle_call(s, id(request), options, uri.into(), payload, &now, out);
    }

    pub fn call(&mut self, s: &SessionInfo, request: u64, options: Dict, uri: &str) {
        self.call_at(s, request, options, uri, 0);
    }

    /// Calls and returns (callee, INVOCATION.Request, Details), clearing the outbox.
    pub fn invoked(
        &mut self,
        s: &SessionInfo,
        request: u64,
        options: Dict,
        uri: &str,
    ) -> (u64, Id, Dict) {
        self.call(s, request, options, uri);
        match self.sent().as_slice() {
            [(
                callee,
                Message::Invocation {
                    request, details, ..
                },
            )] => (*callee, *request, details.clone()),
            other => panic!("expected INVOCATION, got {other:?}"),
        }
    }

    pub fn yield_(&mut self, callee: u64, request: Id, options: Dict, payload: Payload) -> bool {
        self.dealer
            .handle_yield(id(callee), request, options, payload, &mut self.out)
    }

    pub fn cancel(&mut self, caller: u64, request: u64, mode: Option<&str>) {
        let options = match mode {
            Some(mode) => dict! { "mode" => mode },
            None => Dict::new(),
        };
        self.dealer
            .handle_cancel(id(caller), id(request), &options, &mut self.out);
    }
}

pub(super) fn error(to: u64, request_type: u64, request: u64, uri: &str) -> (u64, Message) {
    (
        to,
        Message::Error {
            request_type,
            request: id(request),
            details: Dict::new(),
            error: uri.into(),
            payload: Payload::default(),
        },
    )
}

/// An ERROR the dealer raises itself (it carries the reason text as its argument).
pub(super) fn refused(
    to: u64,
    request_type: u64,
    request: u64,
    uri: &str,
    text: &str,
) -> (u64, Message) {
    let (to, mut message) = error(to, request_type, request, uri);
    if let Message::Error { payload, .. } = &mut message {
        *payload = Payload::args(vec![text.into()]);
    }
    (to, message)
}

pub(super) fn interrupt(to: u64, request: Id, mode: &str) -> (u64, Message) {
    (
        to,
        Message::Interrupt {
            request,
            options: dict! { "mode" => mode },
        },
    )
}

pub(super) fn result(to: u64, request: u64, details: Dict, payload: Payload) -> (u64, Message) {
    (
        to,
        Message::Result {
            request: id(request),
            details,
            payload,
        },
    )
}

#[test]
fn error_uris_follow_the_spec() {
    use super::DealerError::*;
    assert_eq!(InvalidUri.uri(), reason::INVALID_URI);
    assert_eq!(InvalidOption("match").uri(), reason::INVALID_ARGUMENT);
    assert_eq!(
        ProcedureAlreadyExists.uri(),
        reason::PROCEDURE_ALREADY_EXISTS
    );
    assert_eq!(NoSuchRegistration.uri(), reason::NO_SUCH_REGISTRATION);
    assert_eq!(NoSuchProcedure.uri(), reason::NO_SUCH_PROCEDURE);
    assert_eq!(code::CALL, 48);
}
