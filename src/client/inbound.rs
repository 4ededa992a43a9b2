//! How the connection task handles each message from the router once the session is open.

use std::sync::Arc;

use super::command::{CallEvent, CallReply, InterruptSignal, RegistrationParts, SubscriptionParts};
use super::connection::FrameWriter;
use super::deliver::{deliver, deliver_event, LocalSubscriber, Parked};
use super::error::ClientError;
use super::pubsub::Event;
use super::rpc::{CallResult, Invocation};
use super::state::{invocation_error, Pending, SessionState};
use crate::wamp::uri::reason;
use crate::wamp::{Dict, Id, Message, Payload, Value};

/// What the connection must do after a message.
pub(super) enum Inbound {
    Handled,
    /// Stop reading the socket until this delivery completes.
    Park(Parked),
    /// The router said GOODBYE (or answered ours).
    Goodbye {
        reason: String,
        details: Dict,
    },
    Abort {
        reason: String,
        details: Dict,
    },
    /// The router broke the protocol: ABORT and close.
    Violation(String),
}

impl From<Option<Parked>> for Inbound {
    fn from(parked: Option<Parked>) -> Self {
        parked.map_or(Inbound::Handled, Inbound::Park)
    }
}

impl SessionState {
    /// Handles one message from the router.
    pub fn handle_message(&mut self, message: Message, out: &mut FrameWriter) -> Inbound {
        match message {
            Message::Event {
                subscription,
                publication,
                details,
                payload,
            } => match self.subscriptions.get(&subscription) {
                Some(locals) => deliver_event(
                    locals,
                    Event {
                        publication,
                        details,
                        payload,
                    },
                )
                .into(),
                None => Inbound::Handled, // unsubscribed meanwhile
            },
            Message::Result {
                request,
                details,
                payload,
            } => self.on_result(request, CallResult { details, payload }),
            Message::Invocation {
                request,
                registration,
                details,
                payload,
            } => self.on_invocation(request, registration, details, payload, out),
            Message::Published {
                request,
                publication,
            } => match self.pending.remove(&request) {
                Some(Pending::Publish(reply)) => {
                    let _ = reply.send(Ok(publication));
                    Inbound::Handled
                }
                other => self.mismatch(request, other, "PUBLISHED"),
            },
            Message::Subscribed {
                request,
                subscription,
            } => match self.pending.remove(&request) {
                Some(Pending::Subscribe(reply)) => {
                    self.on_subscribed(subscription, reply, out);
                    Inbound::Handled
                }
                other => self.mismatch(request, other, "SUBSCRIBED"),
            },
            Message::Registered {
                request,
                registration,
            } => match self.pending.remove(&request) {
                Some(Pending::Register(reply)) => {
                    self.on_registered(registration, reply, out);
                    Inbound::Handled
                }
                other => self.mismatch(request, other, "REGISTERED"),
            },
            Message::Unsubscribed {
                request: Some(request),
                ..
            } => match self.pending.remove(&request) {
                Some(Pending::Unsubscribe(reply)) => answer_ok(reply),
                other => self.mismatch(request, other, "UNSUBSCRIBED"),
            },
            Message::Unregistered {
                request: Some(request),
                ..
            } => match self.pending.remove(&request) {
                Some(Pending::Unregister(reply)) => answer_ok(reply),
                other => self.mismatch(request, other, "UNREGISTERED"),
            },
            Message::Unsubscribed {
                request: None,
                details,
            } => {
                // Revocation: dropping the queues ends the `Subscription` streams.
                if let Some(id) = revoked_id(&details, "subscription") {
                    tracing::debug!(subscription = %id, "subscription revoked");
                    self.subscriptions.remove(&id);
                }
                Inbound::Handled
            }
            Message::Unregistered {
                request: None,
                details,
            } => {
                if let Some(id) = revoked_id(&details, "registration") {
                    tracing::debug!(registration = %id, "registration revoked");
                    self.registrations.remove(&id);
                }
                Inbound::Handled
            }
            Message::Interrupt { request, options } => {
                if let Some(signal) = self.invocations.get(&request) {
                    let mode = options
                        .get("mode")
                        .and_then(Value::as_str)
                        .unwrap_or("kill");
                    signal.interrupt(mode.to_owned());
                }
                Inbound::Handled
            }
            Message::Error {
                request_type,
                request,
                details,
                error,
                payload,
            } => self.on_error(request_type, request, details, error, payload),
            Message::Goodbye { details, reason } => Inbound::Goodbye { reason, details },
            Message::Abort { details, reason } => Inbound::Abort { reason, details },
            other => Inbound::Violation(format!("unexpected {} from the router", other.name())),
        }
    }

    fn on_result(&mut self, request: Id, result: CallResult) -> Inbound {
        if result.is_progress() {
            return match self.pending.get(&request) {
                Some(Pending::Call(CallReply::Stream(tx))) => {
                    deliver(tx, CallEvent::Result(result)).into()
                }
                // Progress we did not ask for (plain call): only the final result counts.
                Some(Pending::Call(CallReply::Once(_))) | None => Inbound::Handled,
                Some(_) => Inbound::Violation(format!("RESULT for request {request}, not a call")),
            };
        }
        match self.pending.remove(&request) {
            Some(Pending::Call(CallReply::Once(reply))) => {
                let _ = reply.send(Ok(result));
                Inbound::Handled
            }
            Some(Pending::Call(CallReply::Stream(tx))) => {
                deliver(&tx, CallEvent::Result(result)).into()
            }
            other => self.mismatch(request, other, "RESULT"),
        }
    }

    fn on_error(
        &mut self,
        request_type: u64,
        request: Id,
        details: Dict,
        error: String,
        payload: Payload,
    ) -> Inbound {
        let Some(pending) = self.pending.remove(&request) else {
            return Inbound::Handled; // late, e.g. after a canceled call's caller went away
        };
        if pending.request_type() != request_type {
            return Inbound::Violation(format!(
                "ERROR names request type {request_type} for request {request}"
            ));
        }
        pending
            .fail(ClientError::Wamp {
                error,
                details,
                payload,
            })
            .into()
    }

    fn on_invocation(
        &mut self,
        request: Id,
        registration: Id,
        details: Dict,
        payload: Payload,
        out: &mut FrameWriter,
    ) -> Inbound {
        let (Some(tx), Some(link)) = (self.registrations.get(&registration), self.link.upgrade())
        else {
            // Unregistered meanwhile (or every handle is gone): the caller must not hang.
            let error = reason::NO_SUCH_REGISTRATION.to_owned();
            invocation_error(out, request, error, Payload::default());
            return Inbound::Handled;
        };
        let signal = Arc::new(InterruptSignal::default());
        self.invocations.insert(request, signal.clone());
        let invocation = Invocation::new(request, registration, details, payload, link, signal);
        deliver(tx, Box::new(invocation)).into()
    }

    /// A local handle for router subscription `subscription`, after SUBSCRIBED.
    fn add_subscription(&mut self, subscription: Id) -> SubscriptionParts {
        let local = self.next_local();
        let (tx, events) = crate::queue::bounded(self.queue_capacity);
        self.subscriptions
            .entry(subscription)
            .or_default()
            .push(LocalSubscriber { local, events: tx });
        SubscriptionParts {
            id: subscription,
            local,
            events,
        }
    }

    /// A local handle for router registration `registration`, after REGISTERED.
    fn add_registration(&mut self, registration: Id) -> RegistrationParts {
        let (tx, invocations) = crate::queue::bounded(self.queue_capacity);
        self.registrations.insert(registration, tx);
        RegistrationParts {
            id: registration,
            invocations,
        }
    }

    fn on_subscribed(
        &mut self,
        subscription: Id,
        reply: super::command::Reply<SubscriptionParts>,
        out: &mut FrameWriter,
    ) {
        let parts = self.add_subscription(subscription);
        let local = parts.local;
        if reply.send(Ok(parts)).is_err() {
            // The subscriber stopped waiting: undo, so the router stops sending.
            self.unsubscribe(subscription, local, None, out);
        }
    }

    fn on_registered(
        &mut self,
        registration: Id,
        reply: super::command::Reply<RegistrationParts>,
        out: &mut FrameWriter,
    ) {
        let parts = self.add_registration(registration);
        if reply.send(Ok(parts)).is_err() {
            self.unregister(registration, None, out);
        }
    }

    /// A reply to an unknown request is ignored (the requester may have gone); a reply of
    /// the wrong kind is a protocol violation.
    fn mismatch(&mut self, request: Id, pending: Option<Pending>, what: &str) -> Inbound {
        match pending {
            None => Inbound::Handled,
            Some(pending) => {
                let _ = pending.fail(ClientError::Protocol(format!("unexpected {what}")));
                Inbound::Violation(format!("{what} for request {request} of another kind"))
            }
        }
    }
}

fn answer_ok(reply: Option<super::command::Reply<()>>) -> Inbound {
    if let Some(reply) = reply {
        let _ = reply.send(Ok(()));
    }
    Inbound::Handled
}

/// The id in a revocation's details (`subscription` / `registration`).
fn revoked_id(details: &Option<Dict>, key: &str) -> Option<Id> {
    details.as_ref()?.get(key)?.as_u64().and_then(Id::new)
}
