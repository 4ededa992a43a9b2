//! The vector samples our `Message` cannot hold: the error they must be refused with, and a
//! check of their bytes as raw `Value` lists, so the bytes and our `Value` codec are verified.

use serde::de::DeserializeSeed;
use serde::Deserialize;
use serde_json::Value as Json;
use wampmesh::wamp::value::{ValueSeed, ValueSer};
use wampmesh::wamp::{ParseError, Serializer, Value};

use crate::attributes::expected_value;

/// The samples `Message` cannot hold, and the parse error each must give until it can.
///
/// - EVENT_RECEIVED (337) is a provisional message of acknowledged event delivery; `Message`
///   has no variant for it (the router does not offer `x_acknowledged_delivery`).
/// - A transparent payload (payload passthru / E2EE: `"payload"` given as bytes) puts one binary
///   element where `Arguments|list` goes; `Payload` only holds args and kwargs.
pub fn expected_refusal(code: u64, attrs: &serde_json::Map<String, Json>) -> Option<ParseError> {
    if code == 337 {
        return Some(ParseError::UnknownType(337));
    }
    if attrs.get("payload").is_some_and(Json::is_string) {
        let position = raw_layout(code).iter().position(|a| *a == "payload")?;
        return Some(ParseError::Element {
            code,
            index: position + 1,
            expected: "an arguments list",
        });
    }
    None
}

/// Wire positions (after the type code) of the attributes of the refused forms.
fn raw_layout(code: u64) -> &'static [&'static str] {
    match code {
        16 => &["request_id", "options", "topic", "payload"],
        36 => &["subscription", "publication", "details", "payload"],
        337 => &["publication_id"],
        _ => &[],
    }
}

/// Checks a refused sample's raw list against its attributes, by wire position.
pub fn check_raw(raw: &Value, attrs: &serde_json::Map<String, Json>, context: &str) {
    let list = raw.as_list().expect("a WAMP message is a list");
    let code = list.first().and_then(Value::as_u64).expect("type code");
    let layout = raw_layout(code);
    assert_eq!(list.len(), layout.len() + 1, "{context}: element count");
    for (name, expected) in attrs {
        let got = match name.as_str() {
            "message_type" => &list[0],
            // The layouts hold no arguments, and the element count is checked above.
            "args" | "kwargs" if expected.is_null() => continue,
            _ => match layout.iter().position(|a| a == name) {
                Some(position) => &list[position + 1],
                None => panic!("{context}: unknown attribute {name} for code {code}"),
            },
        };
        assert_eq!(*got, expected_value(name, expected), "{context}: {name}");
    }
}

/// Our codec minus `Message`: bytes <-> `Value`, for the refused samples.
pub fn decode_raw(serializer: Serializer, bytes: &[u8]) -> Value {
    struct Plain(Value);
    impl<'de> Deserialize<'de> for Plain {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            ValueSeed::new(false).deserialize(d).map(Plain)
        }
    }
    let mut rest = bytes;
    let value = match serializer {
        Serializer::Json => {
            let mut de = serde_json::Deserializer::from_slice(bytes);
            let v = ValueSeed::new(true).deserialize(&mut de).expect("json");
            de.end().expect("no trailing json");
            rest = &[];
            v
        }
        Serializer::MsgPack => {
            let mut de = rmp_serde::Deserializer::new(&mut rest);
            ValueSeed::new(false).deserialize(&mut de).expect("msgpack")
        }
        Serializer::Cbor => {
            ciborium::de::from_reader::<Plain, _>(&mut rest)
                .expect("cbor")
                .0
        }
    };
    assert!(rest.is_empty(), "trailing bytes");
    value
}

pub fn encode_raw(serializer: Serializer, value: &Value) -> Vec<u8> {
    let ser = ValueSer {
        value,
        json: serializer == Serializer::Json,
    };
    match serializer {
        Serializer::Json => serde_json::to_vec(&ser).expect("json"),
        Serializer::MsgPack => rmp_serde::to_vec(&ser).expect("msgpack"),
        Serializer::Cbor => {
            let mut out = Vec::new();
            ciborium::ser::into_writer(&ser, &mut out).expect("cbor");
            out
        }
    }
}
