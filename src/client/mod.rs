//! A Rust WAMP client: connect over RawSocket, join a realm, publish, subscribe, call, register.
