//! The WAMP message set as one enum: type codes, parsing from a decoded list, and emitting.
//!
//! Parsing checks the shape the spec fixes (type code, arity, element types, id ranges) and
//! nothing more: URIs are checked by the router, which answers a bad one with
//! `wamp.error.invalid_uri` instead of dropping the session.

use serde::ser::SerializeSeq;
use serde::{Serialize, Serializer};

use super::id::Id;
use super::value::{Dict, DictSer, ListSer, Value};

/// Message type codes.
pub mod code {
    pub const HELLO: u64 = 1;
    pub const WELCOME: u64 = 2;
    pub const ABORT: u64 = 3;
    pub const CHALLENGE: u64 = 4;
    pub const AUTHENTICATE: u64 = 5;
    pub const GOODBYE: u64 = 6;
    pub const ERROR: u64 = 8;
    pub const PUBLISH: u64 = 16;
    pub const PUBLISHED: u64 = 17;
    pub const SUBSCRIBE: u64 = 32;
    pub const SUBSCRIBED: u64 = 33;
    pub const UNSUBSCRIBE: u64 = 34;
    pub const UNSUBSCRIBED: u64 = 35;
    pub const EVENT: u64 = 36;
    pub const CALL: u64 = 48;
    pub const CANCEL: u64 = 49;
    pub const RESULT: u64 = 50;
    pub const REGISTER: u64 = 64;
    pub const REGISTERED: u64 = 65;
    pub const UNREGISTER: u64 = 66;
    pub const UNREGISTERED: u64 = 67;
    pub const INVOCATION: u64 = 68;
    pub const INTERRUPT: u64 = 69;
    pub const YIELD: u64 = 70;
}

/// Application payload: optional positional and keyword arguments, always last on the wire.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Payload {
    pub args: Option<Vec<Value>>,
    pub kwargs: Option<Dict>,
}

impl Payload {
    pub fn new(args: Vec<Value>, kwargs: Dict) -> Self {
        Payload {
            args: Some(args),
            kwargs: Some(kwargs),
        }
    }
    pub fn args(args: Vec<Value>) -> Self {
        Payload {
            args: Some(args),
            kwargs: None,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.args.as_ref().is_none_or(|a| a.is_empty())
            && self.kwargs.as_ref().is_none_or(|k| k.is_empty())
    }
}

/// One WAMP message. Field names follow the spec.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Hello {
        realm: String,
        details: Dict,
    },
    Welcome {
        session: Id,
        details: Dict,
    },
    Abort {
        details: Dict,
        reason: String,
    },
    Challenge {
        method: String,
        extra: Dict,
    },
    Authenticate {
        signature: String,
        extra: Dict,
    },
    Goodbye {
        details: Dict,
        reason: String,
    },
    Error {
        request_type: u64,
        request: Id,
        details: Dict,
        error: String,
        payload: Payload,
    },
    Publish {
        request: Id,
        options: Dict,
        topic: String,
        payload: Payload,
    },
    Published {
        request: Id,
        publication: Id,
    },
    Subscribe {
        request: Id,
        options: Dict,
        topic: String,
    },
    Subscribed {
        request: Id,
        subscription: Id,
    },
    Unsubscribe {
        request: Id,
        subscription: Id,
    },
    /// `request` is `None` in the revocation form `[35, 0, Details]`.
    Unsubscribed {
        request: Option<Id>,
        details: Option<Dict>,
    },
    Event {
        subscription: Id,
        publication: Id,
        details: Dict,
        payload: Payload,
    },
    Call {
        request: Id,
        options: Dict,
        procedure: String,
        payload: Payload,
    },
    Cancel {
        request: Id,
        options: Dict,
    },
    Result {
        request: Id,
        details: Dict,
        payload: Payload,
    },
    Register {
        request: Id,
        options: Dict,
        procedure: String,
    },
    Registered {
        request: Id,
        registration: Id,
    },
    Unregister {
        request: Id,
        registration: Id,
    },
    /// `request` is `None` in the revocation form `[67, 0, Details]`.
    Unregistered {
        request: Option<Id>,
        details: Option<Dict>,
    },
    Invocation {
        request: Id,
        registration: Id,
        details: Dict,
        payload: Payload,
    },
    Interrupt {
        request: Id,
        options: Dict,
    },
    Yield {
        request: Id,
        options: Dict,
        payload: Payload,
    },
}

/// Why a decoded list is not a WAMP message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("message is not a non-empty list")]
    NotAList,
    #[error("unknown message type {0}")]
    UnknownType(u64),
    #[error("message type {0}: wrong number of elements ({1})")]
    Arity(u64, usize),
    #[error("message type {code}: element {index} must be {expected}")]
    Element {
        code: u64,
        index: usize,
        expected: &'static str,
    },
    #[error("ERROR for invalid request type {0}")]
    ErrorRequestType(u64),
}

/// Reads typed elements off a message list, naming the failing position.
struct Fields {
    code: u64,
    items: std::vec::IntoIter<Value>,
    index: usize,
}

impl Fields {
    fn next(&mut self, expected: &'static str) -> Result<Value, ParseError> {
        self.index += 1;
        self.items.next().ok_or(ParseError::Element {
            code: self.code,
            index: self.index,
            expected,
        })
    }
    fn fail(&self, expected: &'static str) -> ParseError {
        ParseError::Element {
            code: self.code,
            index: self.index,
            expected,
        }
    }
    fn id(&mut self) -> Result<Id, ParseError> {
        let v = self.next("an id")?;
        v.as_u64()
            .and_then(Id::new)
            .ok_or_else(|| self.fail("an id in [1, 2^53]"))
    }
    fn id_or_zero(&mut self) -> Result<Option<Id>, ParseError> {
        match self.next("an id")? {
            Value::UInt(0) => Ok(None),
            Value::UInt(n) => Id::new(n)
                .map(Some)
                .ok_or_else(|| self.fail("an id in [0, 2^53]")),
            _ => Err(self.fail("an id")),
        }
    }
    fn uint(&mut self) -> Result<u64, ParseError> {
        self.next("an integer")?
            .as_u64()
            .ok_or_else(|| self.fail("an integer"))
    }
    fn string(&mut self) -> Result<String, ParseError> {
        match self.next("a string")? {
            Value::Str(s) => Ok(s),
            _ => Err(self.fail("a string")),
        }
    }
    fn dict(&mut self) -> Result<Dict, ParseError> {
        match self.next("a dict")? {
            Value::Dict(d) => Ok(d),
            _ => Err(self.fail("a dict")),
        }
    }
    fn payload(&mut self) -> Result<Payload, ParseError> {
        let args = match self.items.next() {
            None => return Ok(Payload::default()),
            Some(Value::List(l)) => Some(l),
            Some(_) => {
                self.index += 1;
                return Err(self.fail("an arguments list"));
            }
        };
        self.index += 1;
        let kwargs = match self.items.next() {
            None => None,
            Some(Value::Dict(d)) => Some(d),
            Some(_) => {
                self.index += 1;
                return Err(self.fail("a keyword arguments dict"));
            }
        };
        Ok(Payload { args, kwargs })
    }
}

/// The element counts a message type may have: (min, max).
fn arity(code: u64) -> Option<(usize, usize)> {
    use code::*;
    Some(match code {
        HELLO | WELCOME | CHALLENGE | AUTHENTICATE | GOODBYE => (3, 3),
        ABORT => (3, 5),
        ERROR => (5, 7),
        PUBLISH | CALL => (4, 6),
        PUBLISHED | SUBSCRIBED | UNSUBSCRIBE | REGISTERED | UNREGISTER => (3, 3),
        SUBSCRIBE | REGISTER => (4, 4),
        UNSUBSCRIBED | UNREGISTERED => (2, 3),
        EVENT | INVOCATION => (4, 6),
        CANCEL | INTERRUPT => (3, 3),
        RESULT | YIELD => (3, 5),
        _ => return None,
    })
}

impl Message {
    /// Parses a decoded list into a message.
    pub fn from_value(value: Value) -> Result<Message, ParseError> {
        let Value::List(items) = value else {
            return Err(ParseError::NotAList);
        };
        let code = match items.first() {
            Some(Value::UInt(c)) => *c,
            _ => return Err(ParseError::NotAList),
        };
        let (min, max) = arity(code).ok_or(ParseError::UnknownType(code))?;
        if items.len() < min || items.len() > max {
            return Err(ParseError::Arity(code, items.len()));
        }
        let mut f = Fields {
            code,
            items: items.into_iter(),
            index: 0,
        };
        f.items.next();
        use code::*;
        Ok(match code {
            HELLO => Message::Hello {
                realm: f.string()?,
                details: f.dict()?,
            },
            WELCOME => Message::Welcome {
                session: f.id()?,
                details: f.dict()?,
            },
            ABORT => Message::Abort {
                details: f.dict()?,
                reason: f.string()?,
            },
            CHALLENGE => Message::Challenge {
                method: f.string()?,
                extra: f.dict()?,
            },
            AUTHENTICATE => Message::Authenticate {
                signature: f.string()?,
                extra: f.dict()?,
            },
            GOODBYE => Message::Goodbye {
                details: f.dict()?,
                reason: f.string()?,
            },
            ERROR => {
                let request_type = f.uint()?;
                if !matches!(
                    request_type,
                    PUBLISH
                        | SUBSCRIBE
                        | UNSUBSCRIBE
                        | CALL
                        | REGISTER
                        | UNREGISTER
                        | INVOCATION
                        | CANCEL
                ) {
                    return Err(ParseError::ErrorRequestType(request_type));
                }
                Message::Error {
                    request_type,
                    request: f.id()?,
                    details: f.dict()?,
                    error: f.string()?,
                    payload: f.payload()?,
                }
            }
            PUBLISH => Message::Publish {
                request: f.id()?,
                options: f.dict()?,
                topic: f.string()?,
                payload: f.payload()?,
            },
            PUBLISHED => Message::Published {
                request: f.id()?,
                publication: f.id()?,
            },
            SUBSCRIBE => Message::Subscribe {
                request: f.id()?,
                options: f.dict()?,
                topic: f.string()?,
            },
            SUBSCRIBED => Message::Subscribed {
                request: f.id()?,
                subscription: f.id()?,
            },
            UNSUBSCRIBE => Message::Unsubscribe {
                request: f.id()?,
                subscription: f.id()?,
            },
            UNSUBSCRIBED => {
                let request = f.id_or_zero()?;
                let details = if f.items.len() > 0 {
                    Some(f.dict()?)
                } else {
                    None
                };
                Message::Unsubscribed { request, details }
            }
            EVENT => Message::Event {
                subscription: f.id()?,
                publication: f.id()?,
                details: f.dict()?,
                payload: f.payload()?,
            },
            CALL => Message::Call {
                request: f.id()?,
                options: f.dict()?,
                procedure: f.string()?,
                payload: f.payload()?,
            },
            CANCEL => Message::Cancel {
                request: f.id()?,
                options: f.dict()?,
            },
            RESULT => Message::Result {
                request: f.id()?,
                details: f.dict()?,
                payload: f.payload()?,
            },
            REGISTER => Message::Register {
                request: f.id()?,
                options: f.dict()?,
                procedure: f.string()?,
            },
            REGISTERED => Message::Registered {
                request: f.id()?,
                registration: f.id()?,
            },
            UNREGISTER => Message::Unregister {
                request: f.id()?,
                registration: f.id()?,
            },
            UNREGISTERED => {
                let request = f.id_or_zero()?;
                let details = if f.items.len() > 0 {
                    Some(f.dict()?)
                } else {
                    None
                };
                Message::Unregistered { request, details }
            }
            INVOCATION => Message::Invocation {
                request: f.id()?,
                registration: f.id()?,
                details: f.dict()?,
                payload: f.payload()?,
            },
            INTERRUPT => Message::Interrupt {
                request: f.id()?,
                options: f.dict()?,
            },
            YIELD => Message::Yield {
                request: f.id()?,
                options: f.dict()?,
                payload: f.payload()?,
            },
            other => return Err(ParseError::UnknownType(other)),
        })
    }

    /// The message type code.
    pub fn code(&self) -> u64 {
        use code::*;
        match self {
            Message::Hello { .. } => HELLO,
            Message::Welcome { .. } => WELCOME,
            Message::Abort { .. } => ABORT,
            Message::Challenge { .. } => CHALLENGE,
            Message::Authenticate { .. } => AUTHENTICATE,
            Message::Goodbye { .. } => GOODBYE,
            Message::Error { .. } => ERROR,
            Message::Publish { .. } => PUBLISH,
            Message::Published { .. } => PUBLISHED,
            Message::Subscribe { .. } => SUBSCRIBE,
            Message::Subscribed { .. } => SUBSCRIBED,
            Message::Unsubscribe { .. } => UNSUBSCRIBE,
            Message::Unsubscribed { .. } => UNSUBSCRIBED,
            Message::Event { .. } => EVENT,
            Message::Call { .. } => CALL,
            Message::Cancel { .. } => CANCEL,
            Message::Result { .. } => RESULT,
            Message::Register { .. } => REGISTER,
            Message::Registered { .. } => REGISTERED,
            Message::Unregister { .. } => UNREGISTER,
            Message::Unregistered { .. } => UNREGISTERED,
            Message::Invocation { .. } => INVOCATION,
            Message::Interrupt { .. } => INTERRUPT,
            Message::Yield { .. } => YIELD,
        }
    }

    /// A short name for logs.
    pub fn name(&self) -> &'static str {
        use code::*;
        match self.code() {
            HELLO => "HELLO",
            WELCOME => "WELCOME",
            ABORT => "ABORT",
            CHALLENGE => "CHALLENGE",
            AUTHENTICATE => "AUTHENTICATE",
            GOODBYE => "GOODBYE",
            ERROR => "ERROR",
            PUBLISH => "PUBLISH",
            PUBLISHED => "PUBLISHED",
            SUBSCRIBE => "SUBSCRIBE",
            SUBSCRIBED => "SUBSCRIBED",
            UNSUBSCRIBE => "UNSUBSCRIBE",
            UNSUBSCRIBED => "UNSUBSCRIBED",
            EVENT => "EVENT",
            CALL => "CALL",
            CANCEL => "CANCEL",
            RESULT => "RESULT",
            REGISTER => "REGISTER",
            REGISTERED => "REGISTERED",
            UNREGISTER => "UNREGISTER",
            UNREGISTERED => "UNREGISTERED",
            INVOCATION => "INVOCATION",
            INTERRUPT => "INTERRUPT",
            _ => "YIELD",
        }
    }

    /// A serde view of this message; `json` selects the JSON binary convention.
    pub fn ser(&self, json: bool) -> MessageSer<'_> {
        MessageSer {
            message: self,
            json,
        }
    }

    /// Convenience constructor for ABORT.
    pub fn abort(reason: &str, message: &str) -> Message {
        Message::Abort {
            details: crate::dict! { "message" => message },
            reason: reason.to_owned(),
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
