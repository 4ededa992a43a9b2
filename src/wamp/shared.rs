//! A message shared by many receivers, serialized at most once per serializer.
//!
//! The broker builds one `SharedMessage` per EVENT and hands the same `Arc` to every
//! subscriber; each session's writer asks for the bytes of its own serializer, and the first
//! asker pays for the encoding.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use super::{CodecError, Message, Serializer};

#[derive(Debug)]
pub struct SharedMessage {
    message: Message,
    encoded: [OnceLock<Bytes>; 3],
}

impl SharedMessage {
    pub fn new(message: Message) -> Arc<SharedMessage> {
        Arc::new(SharedMessage {
            message,
            encoded: Default::default(),
        })
    }

    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The message itself, for a receiver that holds the only reference (no copy).
    pub fn into_message(self) -> Message {
        self.message
    }

    /// The bytes for `serializer`, encoded on first use and shared after.
    pub fn encoded(&self, serializer: Serializer) -> Result<Bytes, CodecError> {
        let slot = &self.encoded[serializer.index()];
        if let Some(bytes) = slot.get() {
            return Ok(bytes.clone());
        }
        let bytes = serializer.encode(&self.message)?;
        Ok(slot.get_or_init(|| bytes).clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wamp::Id;

    #[test]
    fn encodes_once_per_serializer() {
        let m = SharedMessage::new(Message::Published {
            request: Id::new(1).unwrap(),
            publication: Id::new(2).unwrap(),
        });
        let a = m.encoded(Serializer::Json).unwrap();
        let b = m.encoded(Serializer::Json).unwrap();
        assert_eq!(
            a.as_ptr(),
            b.as_ptr(),
            "second call must reuse the same buffer"
        );
        assert_eq!(&a[..], b"[17,1,2]");
    }
}
