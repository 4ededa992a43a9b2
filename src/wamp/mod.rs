//! The WAMP protocol without I/O: values, messages, ids, URIs and the three serializers.

pub mod id;
pub mod message;
pub mod serializer;
pub mod shared;
pub mod uri;
pub mod value;

pub use id::{Id, IdSequence, SessionId};
pub use message::{code, Message, ParseError, Payload};
pub use serializer::{CodecError, Serializer};
pub use shared::SharedMessage;
pub use value::{Dict, Value};
