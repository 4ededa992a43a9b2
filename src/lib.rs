//! wampmesh: a WAMP router whose router-to-router links run over QUIC.

pub mod wamp;
pub mod rawsocket;
pub mod router;
pub mod client;
pub mod config;
