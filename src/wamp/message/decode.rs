//! Parsing a decoded list into a [`Message`]: arity per type code, typed elements, and the
//! [`ParseError`] naming the failing position.

use super::{code, Message, Payload};
use crate::wamp::id::Id;
use crate::wamp::value::{Dict, Value};

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
}
