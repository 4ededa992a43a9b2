//! wampmesh: a WAMP router whose router-to-router links run over QUIC — one QUIC connection per
//! pair of nodes, one QUIC stream per linked realm, each stream an ordinary RawSocket-framed WAMP
//! session.
//!
//! # Where everything lives
//!
//! | module | owns |
//! |---|---|
//! | [`wamp`] | the protocol without I/O: [`wamp::Value`], [`wamp::Message`], ids, URIs, the JSON / MessagePack / CBOR serializers, [`wamp::SharedMessage`] (encode once per serializer, share the bytes) |
//! | [`rawsocket`] | the 4-byte handshake and the frame codec, without I/O |
//! | [`router`] | synchronous state machines fed with `handle_*` and the time: [`router::realm::Realm`] (dispatch, authorization), [`router::broker`], [`router::dealer`], [`router::meta`] (meta API), [`router::auth`] (anonymous, ticket, WAMP-CRA, WAMP-Cryptosign), [`router::mesh`] (interest routing between nodes), `router::small_map` (vec-backed maps for per-link tables); [`router::task`] is the one task that owns a realm |
//! | [`session`] | one connection on the router side: RawSocket handshake -> HELLO/auth/WELCOME -> message loop, the loop running over a `MessageWire` (RawSocket frames, batched by [`writer`], or WebSocket messages) |
//! | [`transport`] | listeners in the Bedrock shape (bind, accept, unbind, drain, abort): tcp, unix, tls, quic ([`transport::quic::QuicServerFactory`], [`transport::quic::QuicConnector`]), websocket ([`transport::websocket`]: ws/wss with RawSocket on the same port); TLS material in [`transport::tls`] |
//! | [`link`] | router links: a [`link::RealmLink`] per (peer, realm), one QUIC connection per peer ([`link::PeerConnection`]); one task per link (the shuttle) drives the link's session on its local realm (`link::local`, attached to the realm task, no socket) and its session on the peer's realm (`link::remote`, reading and writing the QUIC stream itself); `link::calls` is the call and invocation relay both sides share |
//! | [`node`] | composes realms, listeners, links and [`management`]; owns start and shutdown order |
//! | [`client`] | the Rust WAMP client used by links, tests, bench, demo and users |
//! | [`queue`] | the bounded queue of every session, link and client handle (nothing allocated until used); it also carries the realm's kill switch for a slow consumer |
//! | [`cryptosign`] | Ed25519 keys for WAMP-Cryptosign: signing (client, links), verifying (router), hex and key files |
//! | [`config`] | TOML -> validated [`config::Config`] |
//! | [`certs`], [`demo`], [`bench`] | the `certs`, `demo` and `bench` commands |
//!
//! # How a message flows
//!
//! A transport yields a byte stream; [`session::serve`] runs the RawSocket handshake and the
//! WAMP session over it and hands decoded messages to its realm's task over a bounded channel.
//! A WebSocket connection does its HTTP upgrade instead and runs the same session loop over
//! WebSocket messages.
//! The realm state machine decides who gets what and fills an [`router::Outbox`]; the task puts
//! each delivery into the receiving session's bounded queue without waiting. Each session's
//! writer asks the shared message for the bytes of its serializer (encoded on first use) and
//! writes whole batches at once. A router link is a session too, attached to its local realm's
//! task directly: the realm hands it advertisements, publications to forward and invocations to
//! relay as messages, and the link's task carries them to the peer's realm as an ordinary WAMP
//! session over a QUIC stream, which it reads and writes itself.

pub mod bench;
pub mod certs;
pub mod client;
pub mod config;
pub mod cryptosign;
pub mod demo;
pub mod link;
pub mod management;
pub mod metrics;
pub mod node;
pub mod queue;
pub mod rawsocket;
pub mod reader;
pub mod relay;
pub mod router;
pub mod session;
pub mod transport;
pub mod wamp;
pub mod writer;
