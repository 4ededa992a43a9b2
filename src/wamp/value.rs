//! The dynamic value carried in WAMP messages (arguments, options, details), and its serde glue.
//!
//! One `Value` type serves all three serializers. JSON has no binary type, so the WAMP rule
//! applies there: bytes travel as the string `"\u0000" + base64(bytes)`. The `json` flag of
//! [`ValueSeed`] and [`ValueSer`] switches that conversion on.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use bytes::Bytes;
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserializer, Serialize, Serializer};

/// A WAMP dictionary: string keys, any values.
pub type Dict = BTreeMap<String, Value>;

/// Deepest nesting accepted when decoding; deeper input is refused (nesting bombs).
pub const MAX_DEPTH: usize = 64;

/// Any value a WAMP message can carry.
///
/// Non-negative integers are always `UInt`, negative ones `Int`, so equal numbers compare equal
/// whichever serializer produced them.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Bytes(Bytes),
    List(Vec<Value>),
    Dict(Dict),
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::UInt(n) => Some(*n),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
    pub fn as_list(&self) -> Option<&Vec<Value>> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }
    pub fn as_dict(&self) -> Option<&Dict> {
        match self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}
impl From<u64> for Value {
    fn from(n: u64) -> Self {
        Value::UInt(n)
    }
}
impl From<i64> for Value {
    fn from(n: i64) -> Self {
        if n >= 0 {
            Value::UInt(n as u64)
        } else {
            Value::Int(n)
        }
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Float(f)
    }
}
impl From<Vec<Value>> for Value {
    fn from(l: Vec<Value>) -> Self {
        Value::List(l)
    }
}
impl From<Dict> for Value {
    fn from(d: Dict) -> Self {
        Value::Dict(d)
    }
}
impl From<Bytes> for Value {
    fn from(b: Bytes) -> Self {
        Value::Bytes(b)
    }
}

/// Builds a [`Dict`] from `key => value` pairs: `dict! { "a" => 1u64, "b" => "x" }`.
#[macro_export]
macro_rules! dict {
    () => { $crate::wamp::Dict::new() };
    ($($k:expr => $v:expr),+ $(,)?) => {{
        let mut d = $crate::wamp::Dict::new();
        $( d.insert(::std::string::String::from($k), $crate::wamp::Value::from($v)); )+
        d
    }};
}

/// Serializes a value; `json` turns bytes into `"\0" + base64`.
pub struct ValueSer<'a> {
    pub value: &'a Value,
    pub json: bool,
}

impl Serialize for ValueSer<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let json = self.json;
        match self.value {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(n) => s.serialize_i64(*n),
            Value::UInt(n) => s.serialize_u64(*n),
            Value::Float(f) => s.serialize_f64(*f),
            Value::Str(v) => s.serialize_str(v),
            Value::Bytes(b) if json => {
                let mut text = String::with_capacity(1 + b.len().div_ceil(3) * 4);
                text.push('\0');
                base64::engine::general_purpose::STANDARD.encode_string(b, &mut text);
                s.serialize_str(&text)
            }
            Value::Bytes(b) => s.serialize_bytes(b),
            Value::List(l) => ListSer { items: l, json }.serialize(s),
            Value::Dict(d) => DictSer { dict: d, json }.serialize(s),
        }
    }
}

/// Serializes a list of values.
pub struct ListSer<'a> {
    pub items: &'a [Value],
    pub json: bool,
}

impl Serialize for ListSer<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.items.len()))?;
        for v in self.items {
            seq.serialize_element(&ValueSer {
                value: v,
                json: self.json,
            })?;
        }
        seq.end()
    }
}

/// Serializes a dictionary.
pub struct DictSer<'a> {
    pub dict: &'a Dict,
    pub json: bool,
}

impl Serialize for DictSer<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.dict.len()))?;
        for (k, v) in self.dict {
            map.serialize_entry(
                k,
                &ValueSer {
                    value: v,
                    json: self.json,
                },
            )?;
        }
        map.end()
    }
}

/// Deserializes a value; `json` turns `"\0" + base64` strings back into bytes. Nesting deeper
/// than [`MAX_DEPTH`] is an error.
#[derive(Clone, Copy)]
pub struct ValueSeed {
    pub json: bool,
    pub depth: usize,
}

impl ValueSeed {
    pub fn new(json: bool) -> Self {
        ValueSeed { json, depth: 0 }
    }
    fn deeper<E: serde::de::Error>(self) -> Result<Self, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom("nesting too deep"));
        }
        Ok(ValueSeed {
            json: self.json,
            depth: self.depth + 1,
        })
    }
}

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a WAMP value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::UInt(v))
    }
    fn visit_i128<E: serde::de::Error>(self, v: i128) -> Result<Value, E> {
        if let Ok(n) = u64::try_from(v) {
            Ok(Value::UInt(n))
        } else if let Ok(n) = i64::try_from(v) {
            Ok(Value::Int(n))
        } else {
            Err(E::custom("integer out of range"))
        }
    }
    fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<Value, E> {
        u64::try_from(v)
            .map(Value::UInt)
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
        match v.strip_prefix('\0') {
            Some(b64) if self.json => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map(|b| Value::Bytes(Bytes::from(b)))
                .map_err(|_| E::custom("invalid base64 in binary string")),
            _ => Ok(Value::Str(v.to_owned())),
        }
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Value, E> {
        if self.json && v.starts_with('\0') {
            return self.visit_str(&v);
        }
        Ok(Value::Str(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Bytes(Bytes::copy_from_slice(v)))
    }
    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Bytes(Bytes::from(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.deeper()?;
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(v) = seq.next_element_seed(inner)? {
            out.push(v);
        }
        Ok(Value::List(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.deeper()?;
        let mut out = Dict::new();
        while let Some(key) = map.next_key::<String>()? {
            let v = map.next_value_seed(inner)?;
            out.insert(key, v);
        }
        Ok(Value::Dict(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_bytes_round_trip_as_nul_base64() {
        let v = Value::List(vec![Value::Bytes(Bytes::from_static(b"\x01\x02\xff"))]);
        let text = serde_json::to_string(&ValueSer {
            value: &v,
            json: true,
        })
        .unwrap();
        assert_eq!(text, "[\"\\u0000AQL/\"]");
        let mut de = serde_json::Deserializer::from_str(&text);
        let back = ValueSeed::new(true).deserialize(&mut de).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn nesting_bomb_is_refused() {
        let text = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let mut de = serde_json::Deserializer::from_str(&text);
        assert!(ValueSeed::new(true).deserialize(&mut de).is_err());
    }
}
