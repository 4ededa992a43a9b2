//! The session state the connection task owns, and how it turns commands into messages.
//!
//! No I/O here: commands are encoded into a [`FrameWriter`]; deliveries to handles go through
//! `deliver.rs`.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Weak};

use super::command::{
    CallEvent, CallReply, Command, InterruptSignal, Link, RegistrationParts, Reply,
    SubscriptionParts,
};
use super::connection::FrameWriter;
use super::deliver::{deliver, LocalSubscriber, Parked};
use super::error::ClientError;
use super::rpc::Invocation;
use crate::dict;
use crate::wamp::message::code;
use crate::wamp::uri::reason;
use crate::wamp::{Dict, Id, IdSequence, Message, Payload};

/// Hashes ids with one multiply: they are small sequential or random integers, and the peer
/// that picks them is the router this session trusts anyway.
#[derive(Default, Clone, Copy)]
pub(super) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

pub(super) type IdMap<V> = HashMap<Id, V, BuildHasherDefault<IdHasher>>;

/// A request waiting for the router's answer, keyed by request id.
pub(super) enum Pending {
    Publish(Reply<Id>),
    Subscribe(Reply<SubscriptionParts>),
    Unsubscribe(Option<Reply<()>>),
    Call(CallReply),
    Register(Reply<RegistrationParts>),
    Unregister(Option<Reply<()>>),
}

impl Pending {
    /// The request message type an ERROR for this request must name.
    pub fn request_type(&self) -> u64 {
        match self {
            Pending::Publish(_) => code::PUBLISH,
            Pending::Subscribe(_) => code::SUBSCRIBE,
            Pending::Unsubscribe(_) => code::UNSUBSCRIBE,
            Pending::Call(_) => code::CALL,
            Pending::Register(_) => code::REGISTER,
            Pending::Unregister(_) => code::UNREGISTER,
        }
    }

    /// Answers the requester with `error`.
    pub fn fail(self, error: ClientError) -> Option<Parked> {
        match self {
            Pending::Publish(r) => drop(r.send(Err(error))),
            Pending::Subscribe(r) => drop(r.send(Err(error))),
            Pending::Register(r) => drop(r.send(Err(error))),
            Pending::Unsubscribe(r) | Pending::Unregister(r) => {
                if let Some(r) = r {
                    let _ = r.send(Err(error));
                }
            }
            Pending::Call(CallReply::Once(r)) => drop(r.send(Err(error))),
            Pending::Call(CallReply::Stream(tx)) => return deliver(&tx, CallEvent::Failed(error)),
        }
        None
    }
}

/// Everything the connection task knows about the session.
pub(super) struct SessionState {
    requests: IdSequence,
    pub(super) pending: IdMap<Pending>,
    /// Router subscription id → the handles (the router may hand out one id twice).
    pub(super) subscriptions: IdMap<Vec<LocalSubscriber>>,
    /// Event and invocation queues carry boxes: a queue holds the room of its largest burst
    /// until it is empty again, and a box is 8 bytes where an invocation is 120.
    pub(super) registrations: IdMap<crate::queue::Sender<Box<Invocation>>>,
    /// Invocations not answered yet, for INTERRUPT.
    pub(super) invocations: IdMap<Arc<InterruptSignal>>,
    next_local: u64,
    pub(super) queue_capacity: usize,
    /// To hand new `Invocation`s a way back; weak so the task does not keep itself alive.
    pub(super) link: Weak<Link>,
}

impl SessionState {
    pub fn new(link: Weak<Link>, queue_capacity: usize) -> Self {
        SessionState {
            requests: IdSequence::default(),
            pending: IdMap::default(),
            subscriptions: IdMap::default(),
            registrations: IdMap::default(),
            invocations: IdMap::default(),
            next_local: 0,
            queue_capacity: queue_capacity.max(1),
            link,
        }
    }

    /// Encodes a request with the next request id; the id is used up only if encoding works,
    /// so ids on the wire stay gapless.
    fn send_request(
        &mut self,
        out: &mut FrameWriter,
        build: impl FnOnce(Id) -> Message,
    ) -> Result<Id, ClientError> {
        let mut next = self.requests.clone();
        let request = next.next_id();
        out.push(&build(request))?;
        self.requests = next;
        Ok(request)
    }

    pub(super) fn next_local(&mut self) -> u64 {
        self.next_local += 1;
        self.next_local
    }

    /// Runs one command from a handle.
    pub fn handle_command(&mut self, command: Command, out: &mut FrameWriter) {
        match command {
            Command::Publish {
                topic,
                options,
                payload,
                ack,
            } => {
                let sent = self.send_request(out, |request| Message::Publish {
                    request,
                    options,
                    topic,
                    payload,
                });
                match (sent, ack) {
                    (Ok(request), Some(ack)) => {
                        self.pending.insert(request, Pending::Publish(ack));
                    }
                    (Ok(_), None) => {}
                    (Err(e), Some(ack)) => drop(ack.send(Err(e))),
                    (Err(e), None) => tracing::warn!(error = %e, "unacknowledged publish not sent"),
                }
            }
            Command::Subscribe {
                topic,
                options,
                reply,
            } => {
                let sent = self.send_request(out, |request| Message::Subscribe {
                    request,
                    options,
                    topic,
                });
                self.track(sent, Pending::Subscribe(reply));
            }
            Command::Unsubscribe {
                subscription,
                local,
                reply,
            } => self.unsubscribe(subscription, local, reply, out),
            Command::Call {
                procedure,
                options,
                payload,
                reply,
            } => {
                let sent = self.send_request(out, |request| Message::Call {
                    request,
                    options,
                    procedure,
                    payload,
                });
                if let (Ok(request), CallReply::Stream(tx)) = (&sent, &reply) {
                    // A fresh queue has room: this cannot be `Full`.
                    let _ = tx.try_send(CallEvent::Sent(*request));
                }
                self.track(sent, Pending::Call(reply));
            }
            Command::Cancel { request, mode } => {
                if matches!(self.pending.get(&request), Some(Pending::Call(_))) {
                    let options = dict! { "mode" => mode };
                    if let Err(e) = out.push(&Message::Cancel { request, options }) {
                        tracing::warn!(error = %e, "CANCEL not sent");
                    }
                }
            }
            Command::Register {
                procedure,
                options,
                reply,
            } => {
                let sent = self.send_request(out, |request| Message::Register {
                    request,
                    options,
                    procedure,
                });
                self.track(sent, Pending::Register(reply));
            }
            Command::Unregister {
                registration,
                reply,
            } => self.unregister(registration, reply, out),
            Command::Yield {
                request,
                payload,
                last,
            } => self.yield_result(request, payload, last, out),
            Command::InvocationError {
                request,
                error,
                payload,
            } => {
                if self.invocations.remove(&request).is_some() {
                    invocation_error(out, request, error, payload);
                }
            }
            Command::InvocationDropped { request } => {
                if let Some(signal) = self.invocations.remove(&request) {
                    let error = match signal.mode() {
                        Some(_) => reason::CANCELED,
                        None => UNANSWERED,
                    };
                    invocation_error(out, request, error.to_owned(), Payload::default());
                }
            }
            // The connection handles leaving itself.
            Command::Leave { reply, .. } => drop(reply),
        }
    }

    /// Records a sent request, or tells the requester why it was not sent.
    fn track(&mut self, sent: Result<Id, ClientError>, pending: Pending) {
        match sent {
            Ok(request) => {
                self.pending.insert(request, pending);
            }
            Err(e) => {
                // Only a `Stream` call can park, and its queue is fresh: nothing to wait for.
                let _ = pending.fail(e);
            }
        }
    }

    pub(super) fn unsubscribe(
        &mut self,
        subscription: Id,
        local: u64,
        reply: Option<Reply<()>>,
        out: &mut FrameWriter,
    ) {
        let Some(locals) = self.subscriptions.get_mut(&subscription) else {
            // Already revoked by the router, or the session is ending.
            if let Some(reply) = reply {
                let _ = reply.send(Ok(()));
            }
            return;
        };
        locals.retain(|l| l.local != local);
        if !locals.is_empty() {
            if let Some(reply) = reply {
                let _ = reply.send(Ok(()));
            }
            return;
        }
        self.subscriptions.remove(&subscription);
        let sent = self.send_request(out, |request| Message::Unsubscribe {
            request,
            subscription,
        });
        self.track(sent, Pending::Unsubscribe(reply));
    }

    pub(super) fn unregister(
        &mut self,
        registration: Id,
        reply: Option<Reply<()>>,
        out: &mut FrameWriter,
    ) {
        if self.registrations.remove(&registration).is_none() {
            if let Some(reply) = reply {
                let _ = reply.send(Ok(()));
            }
            return;
        }
        let sent = self.send_request(out, |request| Message::Unregister {
            request,
            registration,
        });
        self.track(sent, Pending::Unregister(reply));
    }

    fn yield_result(&mut self, request: Id, payload: Payload, last: bool, out: &mut FrameWriter) {
        let outstanding = if last {
            self.invocations.remove(&request).is_some()
        } else {
            self.invocations.contains_key(&request)
        };
        if !outstanding {
            return;
        }
        let options = if last {
            Dict::new()
        } else {
            dict! { "progress" => true }
        };
        let message = Message::Yield {
            request,
            options,
            payload,
        };
        if let Err(e) = out.push(&message) {
            // The caller must not wait forever: answer with an error instead.
            tracing::warn!(error = %e, "YIELD not sent; answering with an ERROR");
            self.invocations.remove(&request);
            let error = match e {
                ClientError::MessageTooLarge { .. } => reason::PAYLOAD_SIZE_EXCEEDED,
                _ => reason::INVALID_ARGUMENT,
            };
            invocation_error(out, request, error.to_owned(), Payload::default());
        }
    }
}

/// The ERROR URI for an invocation whose `Invocation` was dropped without an answer.
pub(super) const UNANSWERED: &str = "wamp.error.runtime_error";

/// Sends ERROR for an INVOCATION (small enough that it cannot fail for size).
pub(super) fn invocation_error(
    out: &mut FrameWriter,
    request: Id,
    error: String,
    payload: Payload,
) {
    let message = Message::Error {
        request_type: code::INVOCATION,
        request,
        details: Dict::new(),
        error,
        payload,
    };
    if let Err(e) = out.push(&message) {
        tracing::warn!(error = %e, "invocation ERROR not sent");
        let _ = out.push(&Message::Error {
            request_type: code::INVOCATION,
            request,
            details: Dict::new(),
            error: reason::PAYLOAD_SIZE_EXCEEDED.to_owned(),
            payload: Payload::default(),
        });
    }
}
