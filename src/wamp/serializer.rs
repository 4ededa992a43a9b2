//! JSON, MessagePack and CBOR behind one enum: bytes <-> `Message`.

use bytes::{BufMut, Bytes, BytesMut};
use serde::de::DeserializeSeed;

use super::message::{Message, ParseError};
use super::value::ValueSeed;

/// A WAMP serializer, numbered as in the RawSocket handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Serializer {
    Json = 1,
    MsgPack = 2,
    Cbor = 3,
}

/// Why bytes could not become a message, or a message bytes.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("cannot decode {serializer:?} message: {reason}")]
    Decode {
        serializer: Serializer,
        reason: String,
    },
    #[error("not a WAMP message: {0}")]
    Parse(#[from] ParseError),
    #[error("cannot encode message: {0}")]
    Encode(String),
}

/// A value decoded without the JSON binary convention (for decoders that want `Deserialize`).
struct PlainValue(crate::wamp::Value);

impl<'de> serde::Deserialize<'de> for PlainValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ValueSeed::new(false).deserialize(d).map(PlainValue)
    }
}

impl Serializer {
    pub const ALL: [Serializer; 3] = [Serializer::Json, Serializer::MsgPack, Serializer::Cbor];

    /// From the RawSocket serializer nibble.
    pub fn from_code(code: u8) -> Option<Serializer> {
        match code {
            1 => Some(Serializer::Json),
            2 => Some(Serializer::MsgPack),
            3 => Some(Serializer::Cbor),
            _ => None,
        }
    }
    pub fn code(self) -> u8 {
        self as u8
    }
    /// The config / WebSocket name: json, msgpack, cbor.
    pub fn name(self) -> &'static str {
        match self {
            Serializer::Json => "json",
            Serializer::MsgPack => "msgpack",
            Serializer::Cbor => "cbor",
        }
    }
    pub fn from_name(name: &str) -> Option<Serializer> {
        Serializer::ALL.into_iter().find(|s| s.name() == name)
    }
    /// Index 0..3, for per-serializer caches.
    pub fn index(self) -> usize {
        self as usize - 1
    }

    /// Decodes one message.
    pub fn decode(self, bytes: &[u8]) -> Result<Message, CodecError> {
        let fail = |reason: String| CodecError::Decode {
            serializer: self,
            reason,
        };
        let value = match self {
            Serializer::Json => {
                let mut de = serde_json::Deserializer::from_slice(bytes);
                let v = ValueSeed::new(true)
                    .deserialize(&mut de)
                    .map_err(|e| fail(e.to_string()))?;
                de.end().map_err(|e| fail(e.to_string()))?;
                v
            }
            Serializer::MsgPack => {
                let mut reader = bytes;
                let mut de = rmp_serde::Deserializer::new(&mut reader);
                let v = ValueSeed::new(false)
                    .deserialize(&mut de)
                    .map_err(|e| fail(e.to_string()))?;
                if !reader.is_empty() {
                    return Err(fail("trailing bytes".into()));
                }
                v
            }
            Serializer::Cbor => {
                let mut reader = bytes;
                let PlainValue(v) =
                    ciborium::de::from_reader(&mut reader).map_err(|e| fail(e.to_string()))?;
                if !reader.is_empty() {
                    return Err(fail("trailing bytes".into()));
                }
                v
            }
        };
        Ok(Message::from_value(value)?)
    }

    /// Encodes one message.
    pub fn encode(self, message: &Message) -> Result<Bytes, CodecError> {
        let mut buf = BytesMut::with_capacity(128).writer();
        self.encode_into(message, &mut buf)?;
        Ok(buf.into_inner().freeze())
    }

    /// Encodes one message onto the end of `out`.
    pub fn encode_into<W: std::io::Write>(
        self,
        message: &Message,
        out: &mut W,
    ) -> Result<(), CodecError> {
        let fail = |e: String| CodecError::Encode(e);
        match self {
            Serializer::Json => {
                serde_json::to_writer(out, &message.ser(true)).map_err(|e| fail(e.to_string()))
            }
            Serializer::MsgPack => {
                let mut se = rmp_serde::Serializer::new(out);
                serde::Serialize::serialize(&message.ser(false), &mut se)
                    .map_err(|e| fail(e.to_string()))
            }
            Serializer::Cbor => ciborium::ser::into_writer(&message.ser(false), out)
                .map_err(|e| fail(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wamp::{Id, Payload, Value};

    #[test]
    fn every_serializer_round_trips_binary_payload() {
        let msg = Message::Publish {
            request: Id::new(7).unwrap(),
            options: crate::dict! { "acknowledge" => true },
            topic: "com.example.t".into(),
            payload: Payload::args(vec![
                Value::Bytes(Bytes::from_static(&[0, 1, 2, 255])),
                Value::from(-3i64),
            ]),
        };
        for s in Serializer::ALL {
            let bytes = s.encode(&msg).unwrap();
            assert_eq!(s.decode(&bytes).unwrap(), msg, "{s:?}");
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for s in Serializer::ALL {
            assert!(s.decode(b"\xff\xfe\x00garbage").is_err());
            assert!(s.decode(b"").is_err());
        }
    }
}
