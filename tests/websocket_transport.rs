//! The `websocket` listener against a raw tokio-tungstenite peer: subprotocol negotiation and
//! frame types per serializer, RawSocket on the same port, TLS (wss and RawSocket-over-TLS on
//! one port), auth, the limits (`max_message_size`, connection limits, handshake timeout), the
//! hostile cases of tests/hostile.rs that matter on WebSocket (second HELLO, message before
//! HELLO, garbage), PING/PONG, and the listener lifecycle (unbind, node shutdown).

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};
use tokio_tungstenite::WebSocketStream;

use wampmesh::client::{ClientConfig, Session};
use wampmesh::config::Config;
use wampmesh::node::Node;
use wampmesh::wamp::{Dict, Message, Payload, Serializer, Value};

const WITHIN: Duration = Duration::from_secs(5);
const MAX_MESSAGE: usize = 65536;
const PROTOCOL_VIOLATION: &str = "wamp.error.protocol_violation";

fn config(listen_extra: &str, limits: &str) -> Config {
    let text = format!(
        r#"
[[listen]]
transport = "websocket"
address = "127.0.0.1:0"
max_message_size = {MAX_MESSAGE}
handshake_timeout_ms = 500
{listen_extra}

[[realm]]
name = "realm1"
[[realm.role]]
name = "anonymous"
permissions = [{{ uri = "", match = "prefix", call = true, register = true, publish = true, subscribe = true }}]
[[realm.role]]
name = "user"
permissions = [{{ uri = "", match = "prefix", call = true, register = true, publish = true, subscribe = true }}]

[limits]
{limits}
"#
    );
    Config::from_toml_str(&text).unwrap_or_else(|e| panic!("test config: {e}"))
}

async fn start(listen_extra: &str, limits: &str) -> (Node, String) {
    let node = Node::start(config(listen_extra, limits))
        .await
        .expect("node starts");
    let addr = node.local_addr("websocket").expect("listener").to_owned();
    (node, addr)
}

async fn stop(node: Node) {
    timeout(
        Duration::from_secs(10),
        node.shutdown(Duration::from_secs(2)),
    )
    .await
    .expect("node shuts down in time");
}

fn subprotocol(serializer: Serializer) -> &'static str {
    match serializer {
        Serializer::Json => "wamp.2.json",
        Serializer::MsgPack => "wamp.2.msgpack",
        Serializer::Cbor => "wamp.2.cbor",
    }
}

/// A WebSocket peer that speaks WAMP by hand.
struct Ws<S> {
    ws: WebSocketStream<S>,
    serializer: Serializer,
}

/// Upgrades `stream` offering `protocols`; the error is the router's refusal.
async fn upgrade<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    protocols: &[&str],
) -> Result<(WebSocketStream<S>, Option<String>), WsError> {
    let mut request = "ws://127.0.0.1/ws".into_client_request().expect("request");
    if !protocols.is_empty() {
        let offer = protocols.join(", ").parse().expect("header value");
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", offer);
    }
    let (ws, response) = timeout(WITHIN, tokio_tungstenite::client_async(request, stream))
        .await
        .expect("upgrade answered in time")?;
    let chosen = response
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok((ws, chosen))
}

impl Ws<TcpStream> {
    async fn open(addr: &str, serializer: Serializer) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        Ws::over(stream, serializer).await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Ws<S> {
    async fn over(stream: S, serializer: Serializer) -> Self {
        let (ws, chosen) = upgrade(stream, &[subprotocol(serializer)])
            .await
            .expect("upgrade accepted");
        assert_eq!(chosen.as_deref(), Some(subprotocol(serializer)));
        Ws { ws, serializer }
    }

    async fn joined(stream: S, serializer: Serializer) -> Self {
        let mut ws = Ws::over(stream, serializer).await;
        ws.send(&hello(Dict::new())).await;
        match ws.recv().await {
            Some(Message::Welcome { .. }) => ws,
            other => panic!("expected WELCOME, got {other:?}"),
        }
    }

    async fn send(&mut self, message: &Message) {
        let bytes = self.serializer.encode(message).expect("encode");
        let frame = match self.serializer {
            Serializer::Json => WsMessage::text(String::from_utf8(bytes.to_vec()).unwrap()),
            _ => WsMessage::binary(bytes),
        };
        let _ = self.ws.send(frame).await;
    }

    /// The next WAMP message; `None` at the close. Checks the frame type of the serializer.
    async fn recv(&mut self) -> Option<Message> {
        loop {
            let frame = timeout(WITHIN, self.ws.next())
                .await
                .expect("a message in time")?
                .ok()?;
            let bytes = match (self.serializer, frame) {
                (Serializer::Json, WsMessage::Text(text)) => bytes::Bytes::from(text),
                (Serializer::MsgPack | Serializer::Cbor, WsMessage::Binary(bytes)) => bytes,
                (_, WsMessage::Close(_)) => return None,
                (_, WsMessage::Ping(_) | WsMessage::Pong(_)) => continue,
                (serializer, other) => panic!("{serializer:?} session got the frame {other:?}"),
            };
            return Some(
                self.serializer
                    .decode(&bytes)
                    .expect("router sends valid data"),
            );
        }
    }

    /// ABORT `reason`, then the close frame with `code`.
    async fn expect_abort(&mut self, reason: &str, code: CloseCode) {
        match self.recv().await {
            Some(Message::Abort { reason: got, .. }) => assert_eq!(got, reason),
            other => panic!("expected ABORT {reason}, got {other:?}"),
        }
        self.expect_close(code).await;
    }

    async fn expect_close(&mut self, code: CloseCode) {
        loop {
            match timeout(WITHIN, self.ws.next())
                .await
                .expect("close in time")
            {
                Some(Ok(WsMessage::Close(Some(frame)))) => {
                    assert_eq!(frame.code, code, "close code");
                    return;
                }
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => {}
                other => panic!("expected a close frame {code:?}, got {other:?}"),
            }
        }
    }
}

fn hello(details: Dict) -> Message {
    let mut all = wampmesh::dict! {
        "roles" => wampmesh::dict! {
            "publisher" => Dict::new(), "subscriber" => Dict::new(),
            "caller" => Dict::new(), "callee" => Dict::new(),
        },
    };
    all.extend(details);
    Message::Hello {
        realm: "realm1".into(),
        details: all,
    }
}

/// Subscribes `ws` to `topic` and returns once SUBSCRIBED.
async fn subscribe<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut Ws<S>, topic: &str) {
    ws.send(&Message::Subscribe {
        request: wampmesh::wamp::Id::new(1).unwrap(),
        options: Dict::new(),
        topic: topic.into(),
    })
    .await;
    match ws.recv().await {
        Some(Message::Subscribed { .. }) => {}
        other => panic!("expected SUBSCRIBED, got {other:?}"),
    }
}

async fn expect_event<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut Ws<S>, value: &str) {
    match ws.recv().await {
        Some(Message::Event { payload, .. }) => {
            assert_eq!(payload.args, Some(vec![Value::from(value)]));
        }
        other => panic!("expected EVENT {value:?}, got {other:?}"),
    }
}

async fn publish(session: &Session, topic: &str, value: &str) {
    session
        .publish(
            topic,
            Payload::args(vec![value.into()]),
            wampmesh::dict! { "acknowledge" => true },
        )
        .await
        .expect("published");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_serializer_over_websocket_with_rawsocket_on_the_same_port() {
    let (node, addr) = start("", "").await;
    // A RawSocket client on the websocket listener's own port (first byte 0x7F).
    let publisher = Session::connect_tcp(&addr, ClientConfig::new("realm1"))
        .await
        .expect("RawSocket client joins on the shared port");
    for serializer in Serializer::ALL {
        let stream = TcpStream::connect(&addr).await.unwrap();
        let mut ws = Ws::joined(stream, serializer).await;
        let topic = format!("ws.topic.{}", serializer.name());
        subscribe(&mut ws, &topic).await;
        publish(&publisher, &topic, serializer.name()).await;
        expect_event(&mut ws, serializer.name()).await;
        ws.send(&Message::Goodbye {
            details: Dict::new(),
            reason: "wamp.close.close_realm".into(),
        })
        .await;
        assert!(matches!(ws.recv().await, Some(Message::Goodbye { .. })));
        ws.expect_close(CloseCode::Normal).await;
    }
    let metrics = node.metrics().transport("websocket");
    assert!(
        metrics
            .messages_in
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 9
    );
    let rawsocket = node.metrics().transport("tcp");
    assert!(
        rawsocket
            .messages_in
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 3
    );
    stop(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_without_an_acceptable_subprotocol_is_a_400() {
    let (node, addr) = start(r#"serializers = ["cbor"]"#, "").await;
    for offer in [
        &[][..],
        &["wamp.2.json", "wamp.2.msgpack"][..],
        &["mqtt"][..],
    ] {
        let stream = TcpStream::connect(&addr).await.unwrap();
        match upgrade(stream, offer).await {
            Err(WsError::Http(response)) => {
                assert_eq!(response.status(), 400, "offer {offer:?}");
                let body =
                    String::from_utf8_lossy(response.body().as_deref().unwrap_or(&[])).into_owned();
                assert!(
                    body.contains("wamp.2.cbor"),
                    "body names what is spoken: {body}"
                );
            }
            Err(other) => panic!("offer {offer:?}: expected HTTP 400, got {other:?}"),
            Ok(_) => panic!("offer {offer:?} was accepted"),
        }
    }
    let stream = TcpStream::connect(&addr).await.unwrap();
    Ws::joined(stream, Serializer::Cbor).await;
    assert_eq!(
        node.metrics().handshake_failures("serializer_unsupported"),
        3
    );
    stop(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_max_message_size_aborts_and_closes_with_1009() {
    let (node, addr) = start("", "").await;
    let stream = TcpStream::connect(&addr).await.unwrap();
    let mut ws = Ws::joined(stream, Serializer::Json).await;
    let big = format!(r#"[16,1,{{}},"t",["{}"]]"#, "x".repeat(MAX_MESSAGE));
    let _ = ws.ws.send(WsMessage::text(big)).await;
    ws.expect_abort(PROTOCOL_VIOLATION, CloseCode::Size).await;
    // Just under the limit is fine.
    let stream = TcpStream::connect(&addr).await.unwrap();
    let mut ws = Ws::joined(stream, Serializer::Json).await;
    subscribe(&mut ws, "big").await;
    let fits = "y".repeat(MAX_MESSAGE - 64);
    let session = Session::connect_tcp(&addr, ClientConfig::new("realm1"))
        .await
        .unwrap();
    publish(&session, "big", &fits).await;
    expect_event(&mut ws, &fits).await;
    stop(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_sessions_get_abort_protocol_violation() {
    let (node, addr) = start("", "").await;
    // A second HELLO.
    let stream = TcpStream::connect(&addr).await.unwrap();
    let mut ws = Ws::joined(stream, Serializer::MsgPack).await;
    ws.send(&hello(Dict::new())).await;
    ws.expect_abort(PROTOCOL_VIOLATION, CloseCode::Policy).await;
    // A message before HELLO.
    let mut ws = Ws::open(&addr, Serializer::Json).await;
    ws.send(&Message::Goodbye {
        details: Dict::new(),
        reason: "wamp.close.close_realm".into(),
    })
    .await;
    ws.expect_abort(PROTOCOL_VIOLATION, CloseCode::Policy).await;
    // Not JSON at all, and a JSON nesting bomb.
    for garbage in ["not json".to_owned(), "[".repeat(10_000)] {
        let mut ws = Ws::open(&addr, Serializer::Json).await;
        let _ = ws.ws.send(WsMessage::text(garbage)).await;
        ws.expect_abort(PROTOCOL_VIOLATION, CloseCode::Policy).await;
    }
    // The node still serves.
    let stream = TcpStream::connect(&addr).await.unwrap();
    Ws::joined(stream, Serializer::Json).await;
    stop(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_gets_pong_with_the_same_payload() {
    let (node, addr) = start("", "").await;
    let stream = TcpStream::connect(&addr).await.unwrap();
    let mut ws = Ws::joined(stream, Serializer::Json).await;
    ws.ws
        .send(WsMessage::Ping("are you there".into()))
        .await
        .unwrap();
    let pong = timeout(WITHIN, ws.ws.next()).await.expect("pong in time");
    match pong {
        Some(Ok(WsMessage::Pong(payload))) => assert_eq!(&payload[..], b"are you there"),
        other => panic!("expected PONG, got {other:?}"),
    }
    stop(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticket_auth_works_over_websocket() {
    let auth = r#"
[listen.auth.ticket.principals.alice]
ticket = "secret-ticket"
role = "user"
"#;
    let (node, addr) = start(auth, "").await;
    for (ticket, welcomed) in [("secret-ticket", true), ("wrong", false)] {
        let mut ws = Ws::open(&addr, Serializer::Cbor).await;
        let details = wampmesh::dict! {
            "authmethods" => vec![Value::from("ticket")], "authid" => "alice",
        };
        ws.send(&hello(details)).await;
        assert!(matches!(ws.recv().await, Some(Message::Challenge { .. })));
        ws.send(&Message::Authenticate {
            signature: ticket.into(),
            extra: Dict::new(),
        })
        .await;
        match ws.recv().await {
            Some(Message::Welcome { details, .. }) if welcomed => {
                assert_eq!(
                    details.get("authrole").and_then(Value::as_str),
                    Some("user")
                );
            }
            Some(Message::Abort { reason, .. }) if !welcomed => {
                assert_eq!(reason, "wamp.error.not_authorized");
            }
            other => panic!("ticket {ticket:?}: got {other:?}"),
        }
    }
    // Anonymous is not configured on this listener.
    let mut ws = Ws::open(&addr, Serializer::Json).await;
    ws.send(&hello(Dict::new())).await;
    assert!(matches!(ws.recv().await, Some(Message::Abort { .. })));
    stop(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limits_answer_the_upgrade_with_503() {
    let (node, addr) = start("", "max_connections_per_address = 2").await;
    let first = Ws::joined(TcpStream::connect(&addr).await.unwrap(), Serializer::Json).await;
    let _second = Ws::joined(TcpStream::connect(&addr).await.unwrap(), Serializer::Json).await;
    let stream = TcpStream::connect(&addr).await.unwrap();
    match upgrade(stream, &["wamp.2.json"]).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 503),
        other => panic!("expected HTTP 503, got {:?}", other.map(|(_, p)| p)),
    }
    assert_eq!(node.metrics().handshake_failures("connection_limit"), 1);
    // A freed place is taken again.
    drop(first);
    let mut joined = false;
    for _ in 0..50 {
        let stream = TcpStream::connect(&addr).await.unwrap();
        if let Ok((ws, _)) = upgrade(stream, &["wamp.2.json"]).await {
            let mut ws = Ws {
                ws,
                serializer: Serializer::Json,
            };
            ws.send(&hello(Dict::new())).await;
            joined = matches!(ws.recv().await, Some(Message::Welcome { .. }));
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        joined,
        "a place freed by a closed connection is taken again"
    );
    stop(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_half_sent_upgrades_are_closed_after_the_handshake_timeout() {
    let (node, addr) = start("", "").await;
    let mut silent = TcpStream::connect(&addr).await.unwrap();
    let mut half = TcpStream::connect(&addr).await.unwrap();
    half.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    for stream in [&mut silent, &mut half] {
        let mut buf = [0u8; 64];
        let read = timeout(Duration::from_secs(3), stream.read(&mut buf))
            .await
            .expect("closed within the 500 ms handshake timeout (and some)");
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "closed without an answer: {read:?}"
        );
    }
    // A plain HTTP request (no upgrade) is closed too.
    let mut plain = TcpStream::connect(&addr).await.unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = timeout(Duration::from_secs(3), plain.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "a plain GET is answered or closed in time");
    stop(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_wss_and_rawsocket_over_tls_on_one_port() {
    let (node, addr) = start("tls = true", "").await;
    let trust =
        wampmesh::transport::tls::ServerTrust::Fingerprint(node.tls().identity.fingerprint());
    let client = wampmesh::transport::tls::client_config(&trust, None, &[]).expect("tls config");
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let connect = || async {
        let tcp = TcpStream::connect(&addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        connector.connect(name, tcp).await.expect("TLS handshake")
    };
    let mut ws = Ws::joined(connect().await, Serializer::MsgPack).await;
    subscribe(&mut ws, "secure").await;
    let session = Session::join(connect().await, ClientConfig::new("realm1"))
        .await
        .expect("RawSocket over TLS on the wss port");
    publish(&session, "secure", "sealed").await;
    expect_event(&mut ws, "sealed").await;
    // Plain WebSocket on a TLS port fails (no TLS handshake).
    let plain = TcpStream::connect(&addr).await.unwrap();
    assert!(upgrade(plain, &["wamp.2.json"]).await.is_err());
    stop(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbind_frees_the_port_and_shutdown_says_goodbye() {
    let (node, addr) = start("", "").await;
    let stream = TcpStream::connect(&addr).await.unwrap();
    let mut ws = Ws::joined(stream, Serializer::Json).await;
    subscribe(&mut ws, "lifecycle").await;
    let listener = &node.listeners()[0];
    listener.unbind().await;
    assert!(
        TcpStream::connect(&addr).await.is_err(),
        "the port is free after unbind"
    );
    assert_eq!(listener.connection_count(), 1, "the open session goes on");
    let shutdown = tokio::spawn(node.shutdown(Duration::from_secs(2)));
    match ws.recv().await {
        Some(Message::Goodbye { reason, .. }) => assert_eq!(reason, "wamp.close.system_shutdown"),
        other => panic!("expected GOODBYE system_shutdown, got {other:?}"),
    }
    timeout(Duration::from_secs(10), shutdown)
        .await
        .expect("shutdown in time")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_over_max_message_size_becomes_payload_size_exceeded() {
    // A RawSocket listener with the default 16 MiB next to the 64 KiB WebSocket one.
    let tcp = "[[listen]]\ntransport = \"tcp\"\naddress = \"127.0.0.1:0\"\n";
    let (node, addr) = start(tcp, "").await;
    let callee = Session::connect_tcp(node.local_addr("tcp").unwrap(), ClientConfig::new("realm1"))
        .await
        .expect("callee joins");
    let big = "z".repeat(MAX_MESSAGE + 1);
    let _served = callee
        .serve("big.result", Dict::new(), move |call| {
            let big = big.clone();
            async move {
                let _ = call.result(Payload::args(vec![big.into()])).await;
            }
        })
        .await
        .expect("register");
    let stream = TcpStream::connect(&addr).await.unwrap();
    let mut ws = Ws::joined(stream, Serializer::Cbor).await;
    let request = wampmesh::wamp::Id::new(7).unwrap();
    ws.send(&Message::Call {
        request,
        options: Dict::new(),
        procedure: "big.result".into(),
        payload: Payload::default(),
    })
    .await;
    match ws.recv().await {
        Some(Message::Error {
            request: r, error, ..
        }) => {
            assert_eq!(
                (r, error.as_str()),
                (request, "wamp.error.payload_size_exceeded")
            );
        }
        other => panic!("expected ERROR payload_size_exceeded, got {other:?}"),
    }
    stop(node).await;
}
