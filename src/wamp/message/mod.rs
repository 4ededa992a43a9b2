//! The WAMP message set as one enum: type codes, the payload, and what a message is called.
//! Parsing from a decoded list lives in `decode`, emitting as the WAMP list in `encode`.
//!
//! Parsing checks the shape the spec fixes (type code, arity, element types, id ranges) and
//! nothing more: URIs are checked by the router, which answers a bad one with
//! `wamp.error.invalid_uri` instead of dropping the session.

mod decode;
mod encode;

pub use decode::ParseError;
pub use encode::MessageSer;

use super::id::Id;
use super::value::{Dict, Value};

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

impl Message {
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

    /// Convenience constructor for ABORT.
    pub fn abort(reason: &str, message: &str) -> Message {
        Message::Abort {
            details: crate::dict! { "message" => message },
            reason: reason.to_owned(),
        }
    }
}
