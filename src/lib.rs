//! wampmesh: a WAMP router whose router-to-router links run over QUIC.

pub mod client;
pub mod bench;
pub mod certs;
pub mod config;
pub mod demo;
pub mod link;
pub mod management;
pub mod node;
pub mod rawsocket;
pub mod router;
pub mod session;
pub mod transport;
pub mod wamp;
pub mod writer;
