//! Maps the attribute names of the WAMP test vectors onto the fields of a decoded `Message`.

use bytes::Bytes;
use serde_json::Value as Json;
use wampmesh::wamp::{Dict, Id, Message, Payload, Value};

/// Converts an expected attribute to our `Value`; non-negative integers become `UInt`, and the
/// transparent `payload`, given as hex, becomes bytes.
pub fn expected_value(name: &str, json: &Json) -> Value {
    match json {
        Json::String(hex) if name == "payload" => {
            Value::Bytes(Bytes::from(hex::decode(hex).expect("payload is hex")))
        }
        _ => json_to_value(json),
    }
}

fn json_to_value(json: &Json) -> Value {
    match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => Value::UInt(u),
            (None, Some(i), _) => Value::Int(i),
            (None, None, Some(f)) => Value::Float(f),
            _ => panic!("unrepresentable number {n}"),
        },
        Json::String(s) => Value::Str(s.clone()),
        Json::Array(items) => Value::List(items.iter().map(json_to_value).collect()),
        Json::Object(map) => Value::Dict(
            map.iter()
                .map(|(k, v)| (k.clone(), json_to_value(v)))
                .collect::<Dict>(),
        ),
    }
}

fn payload_of(m: &Message) -> Option<&Payload> {
    use Message as M;
    match m {
        M::Error { payload, .. }
        | M::Publish { payload, .. }
        | M::Event { payload, .. }
        | M::Call { payload, .. }
        | M::Result { payload, .. }
        | M::Invocation { payload, .. }
        | M::Yield { payload, .. } => Some(payload),
        _ => None,
    }
}

/// The decoded message's value for a vector attribute name; `None` if the name is unknown or
/// does not apply to this message type (both fail the test).
pub fn attribute(m: &Message, name: &str) -> Option<Value> {
    use Message as M;
    let id = |i: &Id| Value::UInt(i.get());
    let text = |s: &String| Value::Str(s.clone());
    let dict = |d: &Dict| Value::Dict(d.clone());
    Some(match (name, m) {
        ("message_type", _) => Value::UInt(m.code()),
        (
            "request_id",
            M::Error { request, .. }
            | M::Publish { request, .. }
            | M::Published { request, .. }
            | M::Subscribe { request, .. }
            | M::Subscribed { request, .. }
            | M::Unsubscribe { request, .. }
            | M::Call { request, .. }
            | M::Cancel { request, .. }
            | M::Result { request, .. }
            | M::Register { request, .. }
            | M::Registered { request, .. }
            | M::Unregister { request, .. }
            | M::Invocation { request, .. }
            | M::Interrupt { request, .. }
            | M::Yield { request, .. },
        ) => id(request),
        ("request_id", M::Unsubscribed { request, .. } | M::Unregistered { request, .. }) => {
            Value::UInt(request.map_or(0, Id::get))
        }
        (
            "options",
            M::Publish { options, .. }
            | M::Subscribe { options, .. }
            | M::Call { options, .. }
            | M::Cancel { options, .. }
            | M::Register { options, .. }
            | M::Interrupt { options, .. }
            | M::Yield { options, .. },
        ) => dict(options),
        (
            "details",
            M::Hello { details, .. }
            | M::Welcome { details, .. }
            | M::Abort { details, .. }
            | M::Goodbye { details, .. }
            | M::Error { details, .. }
            | M::Event { details, .. }
            | M::Result { details, .. }
            | M::Invocation { details, .. },
        ) => dict(details),
        ("details", M::Unsubscribed { details, .. } | M::Unregistered { details, .. }) => {
            details.as_ref().map_or(Value::Null, dict)
        }
        // Autobahn exposes HELLO/WELCOME `Details.roles` as the attribute `roles`.
        ("roles", M::Hello { details, .. } | M::Welcome { details, .. }) => {
            details.get("roles").cloned().unwrap_or(Value::Null)
        }
        ("realm", M::Hello { realm, .. }) => text(realm),
        ("session" | "session_id", M::Welcome { session, .. }) => id(session),
        ("reason", M::Abort { reason, .. } | M::Goodbye { reason, .. }) => text(reason),
        ("method", M::Challenge { method, .. }) => text(method),
        ("signature", M::Authenticate { signature, .. }) => text(signature),
        ("extra", M::Challenge { extra, .. } | M::Authenticate { extra, .. }) => dict(extra),
        ("request_type", M::Error { request_type, .. }) => Value::UInt(*request_type),
        ("error", M::Error { error, .. }) => text(error),
        ("topic", M::Publish { topic, .. } | M::Subscribe { topic, .. }) => text(topic),
        ("procedure", M::Call { procedure, .. } | M::Register { procedure, .. }) => text(procedure),
        (
            "subscription" | "subscription_id",
            M::Subscribed { subscription, .. }
            | M::Unsubscribe { subscription, .. }
            | M::Event { subscription, .. },
        ) => id(subscription),
        (
            "publication" | "publication_id",
            M::Published { publication, .. } | M::Event { publication, .. },
        ) => id(publication),
        (
            "registration" | "registration_id",
            M::Registered { registration, .. }
            | M::Unregister { registration, .. }
            | M::Invocation { registration, .. },
        ) => id(registration),
        ("args", _) => payload_of(m)?.args.clone().map_or(Value::Null, Value::List),
        ("kwargs", _) => payload_of(m)?
            .kwargs
            .clone()
            .map_or(Value::Null, Value::Dict),
        // The transparent payload; a decoded `Message` never has one (see `expected_refusal`).
        ("payload", _) => payload_of(m).map(|_| Value::Null)?,
        _ => return None,
    })
}
