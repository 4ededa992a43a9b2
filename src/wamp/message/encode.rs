//! Emitting a [`Message`] as the WAMP list through serde, borrowing every field
//! ([`MessageSer`]); the JSON binary convention is selected per call.

use serde::ser::SerializeSeq;
use serde::{Serialize, Serializer};

use super::Message;
use crate::wamp::id::Id;
use crate::wamp::value::{Dict, DictSer, ListSer, Value};

impl Message {
    /// A serde view of this message; `json` selects the JSON binary convention.
    pub fn ser(&self, json: bool) -> MessageSer<'_> {
        MessageSer {
            message: self,
            json,
        }
    }
}

/// Serializes a message as the WAMP list, borrowing every field.
pub struct MessageSer<'a> {
    message: &'a Message,
    json: bool,
}

/// One element of the emitted list.
enum El<'a> {
    U(u64),
    S(&'a str),
    D(&'a Dict),
    L(&'a [Value]),
}

impl MessageSer<'_> {
    fn elements(&self) -> Vec<El<'_>> {
        use El::*;
        let m = self.message;
        let mut out = Vec::with_capacity(7);
        out.push(U(m.code()));
        let mut payload = None;
        match m {
            Message::Hello { realm, details } => out.extend([S(realm), D(details)]),
            Message::Welcome { session, details } => out.extend([U(session.get()), D(details)]),
            Message::Abort { details, reason } | Message::Goodbye { details, reason } => {
                out.extend([D(details), S(reason)])
            }
            Message::Challenge { method, extra } => out.extend([S(method), D(extra)]),
            Message::Authenticate { signature, extra } => out.extend([S(signature), D(extra)]),
            Message::Error {
                request_type,
                request,
                details,
                error,
                payload: p,
            } => {
                out.extend([U(*request_type), U(request.get()), D(details), S(error)]);
                payload = Some(p);
            }
            Message::Publish {
                request,
                options,
                topic,
                payload: p,
            }
            | Message::Call {
                request,
                options,
                procedure: topic,
                payload: p,
            } => {
                out.extend([U(request.get()), D(options), S(topic)]);
                payload = Some(p);
            }
            Message::Published {
                request,
                publication: b,
            }
            | Message::Subscribed {
                request,
                subscription: b,
            }
            | Message::Unsubscribe {
                request,
                subscription: b,
            }
            | Message::Registered {
                request,
                registration: b,
            }
            | Message::Unregister {
                request,
                registration: b,
            } => out.extend([U(request.get()), U(b.get())]),
            Message::Subscribe {
                request,
                options,
                topic,
            }
            | Message::Register {
                request,
                options,
                procedure: topic,
            } => out.extend([U(request.get()), D(options), S(topic)]),
            Message::Unsubscribed { request, details }
            | Message::Unregistered { request, details } => {
                out.push(U(request.map_or(0, Id::get)));
                if let Some(d) = details {
                    out.push(D(d));
                }
            }
            Message::Event {
                subscription: a,
                publication: b,
                details,
                payload: p,
            }
            | Message::Invocation {
                request: a,
                registration: b,
                details,
                payload: p,
            } => {
                out.extend([U(a.get()), U(b.get()), D(details)]);
                payload = Some(p);
            }
            Message::Cancel { request, options } | Message::Interrupt { request, options } => {
                out.extend([U(request.get()), D(options)])
            }
            Message::Result {
                request,
                details: d,
                payload: p,
            }
            | Message::Yield {
                request,
                options: d,
                payload: p,
            } => {
                out.extend([U(request.get()), D(d)]);
                payload = Some(p);
            }
        }
        if let Some(p) = payload {
            // Emit what is there: a router forwards payloads as it received them.
            match (&p.args, &p.kwargs) {
                (args, Some(k)) => {
                    out.push(L(args.as_deref().unwrap_or(&[])));
                    out.push(D(k));
                }
                (Some(a), None) => out.push(L(a)),
                (None, None) => {}
            }
        }
        out
    }
}

impl Serialize for MessageSer<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let elements = self.elements();
        let json = self.json;
        let mut seq = s.serialize_seq(Some(elements.len()))?;
        for el in &elements {
            match el {
                El::U(n) => seq.serialize_element(n)?,
                El::S(text) => seq.serialize_element(text)?,
                El::D(d) => seq.serialize_element(&DictSer { dict: d, json })?,
                El::L(l) => seq.serialize_element(&ListSer { items: l, json })?,
            }
        }
        seq.end()
    }
}
