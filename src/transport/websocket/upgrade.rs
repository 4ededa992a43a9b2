//! The router's answer to a WebSocket upgrade request, without I/O: WAMP subprotocol
//! negotiation (`wamp.2.json`, `wamp.2.msgpack`, `wamp.2.cbor`) and the HTTP errors of a
//! refused upgrade.

use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{header, HeaderValue, StatusCode};

use crate::transport::admission::AdmissionRefused;
use crate::wamp::Serializer;

/// The WebSocket subprotocol of each serializer.
pub fn subprotocol(serializer: Serializer) -> &'static str {
    match serializer {
        Serializer::Json => "wamp.2.json",
        Serializer::MsgPack => "wamp.2.msgpack",
        Serializer::Cbor => "wamp.2.cbor",
    }
}

fn serializer_of(subprotocol: &str) -> Option<Serializer> {
    Serializer::ALL
        .into_iter()
        .find(|s| self::subprotocol(*s) == subprotocol)
}

/// Why an upgrade was refused (the metrics reason and the HTTP answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpgradeRefusal {
    /// No subprotocol offered that this listener speaks: 400.
    NoSubprotocol {
        offered: String,
        spoken: Vec<&'static str>,
    },
    /// The node's connection limits: 503.
    ConnectionLimit(AdmissionRefused),
}

impl UpgradeRefusal {
    /// The HTTP answer: status and a one-line plain-text reason.
    pub fn response(&self) -> ErrorResponse {
        match self {
            UpgradeRefusal::NoSubprotocol { offered, spoken } => {
                let body = format!(
                    "no acceptable WAMP subprotocol in Sec-WebSocket-Protocol ({offered:?}); \
                     this listener speaks {}\n",
                    spoken.join(", ")
                );
                error(StatusCode::BAD_REQUEST, body)
            }
            UpgradeRefusal::ConnectionLimit(why) => error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("connection refused: {why}\n"),
            ),
        }
    }

    /// The reason counted in `wampmesh_handshake_failures_total`.
    pub fn metrics_reason(&self) -> &'static str {
        match self {
            UpgradeRefusal::NoSubprotocol { .. } => "serializer_unsupported",
            UpgradeRefusal::ConnectionLimit(_) => "connection_limit",
        }
    }
}

/// The first subprotocol of the client's list (its order of preference) that the listener
/// speaks. Several `Sec-WebSocket-Protocol` headers and comma-separated lists both count.
pub fn choose(request: &Request, serializers: &[Serializer]) -> Option<Serializer> {
    request
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|list| list.split(','))
        .filter_map(|name| serializer_of(name.trim()))
        .find(|serializer| serializers.contains(serializer))
}

/// Answers an upgrade request: the 101 response with the chosen subprotocol, or why it is
/// refused ([`UpgradeRefusal::response`] is the HTTP error: 503 when `refused` by the
/// connection limits, 400 when no subprotocol fits).
pub fn answer(
    request: &Request,
    mut response: Response,
    serializers: &[Serializer],
    refused: Option<AdmissionRefused>,
) -> Result<(Response, Serializer), UpgradeRefusal> {
    if let Some(why) = refused {
        return Err(UpgradeRefusal::ConnectionLimit(why));
    }
    let Some(serializer) = choose(request, serializers) else {
        let offered = request
            .headers()
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .collect::<Vec<_>>()
            .join(", ");
        let spoken = serializers.iter().map(|s| subprotocol(*s)).collect();
        return Err(UpgradeRefusal::NoSubprotocol { offered, spoken });
    };
    response.headers_mut().insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(subprotocol(serializer)),
    );
    Ok((response, serializer))
}

fn error(status: StatusCode, body: String) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(protocols: &[&str]) -> Request {
        let mut builder = Request::builder().uri("/ws");
        for p in protocols {
            builder = builder.header(header::SEC_WEBSOCKET_PROTOCOL, *p);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn the_clients_first_spoken_choice_wins() {
        let all = Serializer::ALL;
        let req = request(&["wamp.2.cbor, wamp.2.json"]);
        assert_eq!(choose(&req, &all), Some(Serializer::Cbor));
        let req = request(&["foo", "wamp.2.msgpack,wamp.2.json"]);
        assert_eq!(choose(&req, &all), Some(Serializer::MsgPack));
        let req = request(&["wamp.2.cbor, wamp.2.json"]);
        assert_eq!(choose(&req, &[Serializer::Json]), Some(Serializer::Json));
    }

    #[test]
    fn the_answer_names_the_subprotocol() {
        let req = request(&["wamp.2.json"]);
        let (response, serializer) =
            answer(&req, Response::new(()), &Serializer::ALL, None).unwrap();
        assert_eq!(serializer, Serializer::Json);
        assert_eq!(
            response.headers()[header::SEC_WEBSOCKET_PROTOCOL],
            "wamp.2.json"
        );
    }

    #[test]
    fn no_acceptable_subprotocol_is_a_400_naming_what_is_spoken() {
        for req in [request(&[]), request(&["wamp.2.json.batched", "mqtt"])] {
            let refusal = answer(&req, Response::new(()), &[Serializer::Cbor], None).unwrap_err();
            let response = refusal.response();
            assert_eq!(response.status(), StatusCode::BAD_REQUEST);
            assert!(response.body().as_deref().unwrap().contains("wamp.2.cbor"));
            assert_eq!(refusal.metrics_reason(), "serializer_unsupported");
        }
    }

    #[test]
    fn a_full_node_is_a_503() {
        let req = request(&["wamp.2.json"]);
        let full = AdmissionRefused::NodeFull(3);
        let refusal = answer(&req, Response::new(()), &Serializer::ALL, Some(full)).unwrap_err();
        assert_eq!(refusal.response().status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refusal, UpgradeRefusal::ConnectionLimit(full));
    }
}
