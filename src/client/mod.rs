//! A Rust WAMP client: connect over RawSocket, join a realm, publish, subscribe, call, register.
//!
//! The router's tests, the benchmark, the demo and router links all use this client, so it is
//! built to be cheap per message:
//!
//! * One background task owns the connection and all session state (request ids, pending
//!   requests, subscriptions, registrations). Handles ([`Session`], [`Subscription`],
//!   [`Registration`], [`PendingCall`], [`Invocation`]) talk to it over a bounded command queue.
//! * The task encodes every queued command straight into one write buffer and writes the whole
//!   buffer with one `write` call, so a burst of publishes costs one syscall. It keeps reading
//!   while it writes.
//! * Request ids are assigned by that task as it encodes, so they are sequential on the wire
//!   (1, 2, 3, … per session) whatever the number of concurrent callers.
//! * Router PINGs are answered with a PONG through the same writer; the client never pings.
//!
//! # Backpressure
//!
//! * Outgoing: the command queue holds [`COMMAND_QUEUE`] commands and the write buffer about
//!   [`WRITE_HIGH_WATER`] bytes. When both are full, `publish`, `call`, … wait: a publisher can
//!   never outrun the socket.
//! * Incoming: each subscription, registration and progressive call has its own queue of
//!   [`ClientConfig::queue_capacity`] items (default 4096). When one is full, the task stops
//!   reading the socket until that consumer takes an item (it keeps writing meanwhile, and
//!   keeps answering PINGs already received). Nothing is dropped and order is kept, but a
//!   consumer that stops reading for good stalls every other subscription of the session: drop
//!   (or unsubscribe) a subscription you no longer read. Do not wait on a reply from the same
//!   session while holding a full queue unread.
//!
//! # Lifetime
//!
//! The task ends when the router closes the session (GOODBYE, ABORT), when the transport is
//! lost, after [`Session::leave`], or when every handle is dropped (it then says GOODBYE
//! itself). [`Session::closed`] tells why. Dropping a [`Subscription`] or [`Registration`]
//! unsubscribes or unregisters it; dropping an unanswered [`Invocation`] answers it with an
//! ERROR.

mod auth;
mod command;
mod connection;
mod deliver;
mod error;
mod inbound;
mod join;
mod pubsub;
mod rpc;
mod serve;
mod session;
mod state;

#[cfg(test)]
mod tests;

use std::fmt;

use crate::wamp::{Dict, Serializer, Value};

pub use auth::{compute_signature, derive_key};
pub(crate) use connection::{FrameWriter, READ_CHUNK, READ_CHUNK_MIN};
pub use error::{ClientError, CloseReason};
pub(crate) use join::join;
pub use pubsub::{Event, Subscription};
pub use rpc::{CallResult, Invocation, PendingCall, Registration};
pub use serve::ServeHandle;
pub use session::Session;

/// Commands a session's handles may queue before `publish`, `call`, … start waiting.
pub const COMMAND_QUEUE: usize = 1024;
/// Bytes the writer buffers before it stops taking commands until the socket drains.
pub const WRITE_HIGH_WATER: usize = 1 << 20;
/// Default per-subscription / per-registration / per-progressive-call queue bound.
pub const DEFAULT_QUEUE_CAPACITY: usize = 4096;
/// Default largest message we accept from the router: 16 MiB, the RawSocket maximum.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 1 << 24;

/// How the client authenticates when it joins.
#[derive(Clone, PartialEq, Eq)]
pub enum ClientAuth {
    /// No credentials: HELLO announces `authmethods: ["anonymous"]`.
    Anonymous,
    /// Ticket: the ticket is sent in clear in AUTHENTICATE (use TLS or a Unix socket).
    Ticket { authid: String, ticket: String },
    /// WAMP-CRA: HMAC-SHA256 over the router's challenge; honours `salt`, `iterations` and
    /// `keylen` in the CHALLENGE extra (PBKDF2-derived key).
    WampCra { authid: String, secret: String },
    /// WAMP-Cryptosign: HELLO announces `authextra.pubkey`; the router's 32-byte challenge is
    /// signed with the Ed25519 key. `authid` may be left out: the router then names the
    /// principal the key belongs to. No channel binding.
    Cryptosign {
        authid: Option<String>,
        key: crate::cryptosign::CryptosignKey,
    },
}

impl ClientAuth {
    /// The `authmethods` value HELLO announces.
    pub fn method(&self) -> &'static str {
        match self {
            ClientAuth::Anonymous => "anonymous",
            ClientAuth::Ticket { .. } => "ticket",
            ClientAuth::WampCra { .. } => "wampcra",
            ClientAuth::Cryptosign { .. } => "cryptosign",
        }
    }

    /// The `authid` HELLO announces, if any.
    pub fn authid(&self) -> Option<&str> {
        match self {
            ClientAuth::Anonymous => None,
            ClientAuth::Ticket { authid, .. } | ClientAuth::WampCra { authid, .. } => Some(authid),
            ClientAuth::Cryptosign { authid, .. } => authid.as_deref(),
        }
    }

    /// The `authextra` HELLO announces, if any (cryptosign: the public key).
    pub fn authextra(&self) -> Option<Dict> {
        match self {
            ClientAuth::Cryptosign { key, .. } => {
                Some(crate::dict! { "pubkey" => key.public_key().to_hex() })
            }
            _ => None,
        }
    }
}

/// Secrets never reach logs: `Debug` shows the method and authid (and a cryptosign public key)
/// only.
impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self, self.authid()) {
            (ClientAuth::Cryptosign { key, .. }, authid) => {
                write!(f, "cryptosign({authid:?}, {key:?})")
            }
            (_, Some(authid)) => write!(f, "{}({authid:?}, <secret>)", self.method()),
            (_, None) => f.write_str(self.method()),
        }
    }
}

/// Everything [`Session::join`] needs besides the byte stream.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub realm: String,
    pub serializer: Serializer,
    pub auth: ClientAuth,
    /// The largest message we accept from the router (announced in the RawSocket handshake,
    /// rounded down to a power of two, at most 16 MiB).
    pub max_message_size: usize,
    /// The role we ask for, sent as HELLO `authrole`.
    pub authrole: Option<String>,
    /// Extra HELLO details keys (e.g. for router links). They are added last and override the
    /// keys the client sets itself (`roles`, `agent`, `authmethods`, `authid`, `authrole`).
    pub hello_extra: Dict,
    /// Bound of each subscription's, registration's and progressive call's queue (see the
    /// module docs for what happens when one is full). At least 1.
    pub queue_capacity: usize,
    /// Keep the router's `roles` in [`Session::details`] (default). Sessions that never look
    /// at them (realm links, tens of thousands of them) save the memory.
    pub keep_router_roles: bool,
}

impl ClientConfig {
    /// JSON, anonymous, 16 MiB, no requested role, no extra HELLO keys.
    pub fn new(realm: &str) -> Self {
        ClientConfig {
            realm: realm.to_owned(),
            serializer: Serializer::Json,
            auth: ClientAuth::Anonymous,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            authrole: None,
            hello_extra: Dict::new(),
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            keep_router_roles: true,
        }
    }

    pub fn with_serializer(mut self, serializer: Serializer) -> Self {
        self.serializer = serializer;
        self
    }

    pub fn with_auth(mut self, auth: ClientAuth) -> Self {
        self.auth = auth;
        self
    }

    pub fn with_authrole(mut self, authrole: &str) -> Self {
        self.authrole = Some(authrole.to_owned());
        self
    }

    pub fn with_max_message_size(mut self, max: usize) -> Self {
        self.max_message_size = max;
        self
    }

    /// Adds one HELLO details key.
    pub fn with_hello_extra(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.hello_extra.insert(key.to_owned(), value.into());
        self
    }

    pub fn with_queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity;
        self
    }

    /// Drops WELCOME `roles` from [`Session::details`] (see `keep_router_roles`).
    pub fn without_router_roles(mut self) -> Self {
        self.keep_router_roles = false;
        self
    }
}
