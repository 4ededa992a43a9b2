//! The small config sections: `[node]`, `[io]`, `[tls]`, `[management]`, `[metrics]`, `[limits]`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

use super::{check_socket_address, deserialize_one_of, invalid, is_valid_node_id, ConfigError};
use crate::wamp::uri::is_valid_uri;

/// `[node]`: the node's identity. Links name their peer by this id and check it against the
/// peer's certificate, and it is recorded in forwarded messages to cut loops.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Non-empty `[A-Za-z0-9_-]+`: it goes into certificate names and link paths. Default `node1`.
    #[serde(default = "default_node_id")]
    pub id: String,
}

fn default_node_id() -> String {
    "node1".to_string()
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            id: default_node_id(),
        }
    }
}

impl NodeConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if is_valid_node_id(&self.id) {
            return Ok(());
        }
        Err(invalid(
            "node.id",
            format!(
                "invalid node id {:?}: use one or more of A-Z a-z 0-9 _ -",
                self.id
            ),
        ))
    }
}

/// `[io]`: the event-driven IO runtime (a few threads, no thread per connection).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IoConfig {
    /// Worker threads for sockets and sessions; 0 (the default) = one per core.
    #[serde(default)]
    pub threads: usize,
}

/// `[tls]`: the node's certificate, used by QUIC listeners and links and by TLS over TCP.
/// Without it QUIC and TLS listeners use a self-signed certificate made at start.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// CA certificate (PEM) that peers' and clients' certificates must chain to. Links need it
    /// to verify the peer; `require_client_cert` listeners need it to verify clients.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// This node's certificate chain (PEM).
    pub cert: PathBuf,
    /// This node's private key (PEM).
    pub key: PathBuf,
}

impl TlsConfig {
    /// Makes relative paths relative to `base` (the config file's directory).
    pub(crate) fn resolve_relative_to(&mut self, base: &Path) {
        let resolve = |path: &mut PathBuf| {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        };
        if let Some(ca) = &mut self.ca {
            resolve(ca);
        }
        resolve(&mut self.cert);
        resolve(&mut self.key);
    }
}

/// `[management]`: the built-in realm where `wampmesh.link.*` and `wampmesh.realm.*` live.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagementConfig {
    /// Name of the control realm. Default `wampmesh.control`.
    #[serde(default = "default_management_realm")]
    pub realm: String,
    /// Whether anonymous sessions from a loopback address may call the management procedures
    /// (role `admin` always may). Default true.
    #[serde(default = "default_true")]
    pub allow_local: bool,
}

fn default_management_realm() -> String {
    "wampmesh.control".to_string()
}

fn default_true() -> bool {
    true
}

impl Default for ManagementConfig {
    fn default() -> Self {
        ManagementConfig {
            realm: default_management_realm(),
            allow_local: true,
        }
    }
}

impl ManagementConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if is_valid_uri(&self.realm) {
            return Ok(());
        }
        Err(invalid(
            "management.realm",
            format!("invalid realm name {:?}", self.realm),
        ))
    }
}

/// `[metrics]`: where the node serves its metrics over HTTP; the section's absence turns it off.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Socket address to serve on, e.g. `127.0.0.1:9090`.
    pub address: String,
}

impl MetricsConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        check_socket_address("metrics.address", &self.address)
    }
}

/// What to do with a session whose outbound queue is full (it reads slower than it is sent to).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SlowConsumerPolicy {
    /// Drop the message for that session only (events are lost for it, others are unaffected).
    Drop,
    /// Close that session (ABORT/GOODBYE), so it reconnects and resynchronises.
    Close,
}

impl SlowConsumerPolicy {
    const NAMES: [(&'static str, SlowConsumerPolicy); 2] = [
        ("drop", SlowConsumerPolicy::Drop),
        ("close", SlowConsumerPolicy::Close),
    ];

    /// The config name: `drop` or `close`.
    pub fn as_str(self) -> &'static str {
        match self {
            SlowConsumerPolicy::Drop => "drop",
            SlowConsumerPolicy::Close => "close",
        }
    }
}

impl<'de> Deserialize<'de> for SlowConsumerPolicy {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_one_of(deserializer, "variant", &SlowConsumerPolicy::NAMES)
    }
}

/// `[limits]`: bounds that keep one client or a flood of clients from exhausting the node.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Connections (each one session) open at once on this node over all listeners: clients
    /// and incoming link sessions; the node's own in-process sessions are not counted. One
    /// over the limit is answered `7F 40 00 00` after its handshake request. Default 100000.
    #[serde(default = "default_max_sessions")]
    pub max_sessions: usize,
    /// Connections (QUIC: streams) open at once from one IP address; peer nodes proven by
    /// their certificate are not counted. Answered like `max_sessions`. Default 10000.
    #[serde(default = "default_max_connections_per_address")]
    pub max_connections_per_address: usize,
    /// Messages queued for one session before `slow_consumer` applies. Default 4096.
    #[serde(default = "default_outbound_queue")]
    pub outbound_queue: usize,
    /// What happens when a session's outbound queue is full. Default `drop`.
    #[serde(default = "default_slow_consumer")]
    pub slow_consumer: SlowConsumerPolicy,
    /// How long a new connection may take to send HELLO before it is closed. Default 10000.
    #[serde(default = "default_hello_timeout_ms")]
    pub hello_timeout_ms: u64,
}

fn default_max_sessions() -> usize {
    100_000
}
fn default_max_connections_per_address() -> usize {
    10_000
}
fn default_outbound_queue() -> usize {
    4096
}
fn default_slow_consumer() -> SlowConsumerPolicy {
    SlowConsumerPolicy::Drop
}
fn default_hello_timeout_ms() -> u64 {
    10_000
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_sessions: default_max_sessions(),
            max_connections_per_address: default_max_connections_per_address(),
            outbound_queue: default_outbound_queue(),
            slow_consumer: default_slow_consumer(),
            hello_timeout_ms: default_hello_timeout_ms(),
        }
    }
}

impl LimitsConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("limits.max_sessions", self.max_sessions as u64),
            (
                "limits.max_connections_per_address",
                self.max_connections_per_address as u64,
            ),
            ("limits.outbound_queue", self.outbound_queue as u64),
            ("limits.hello_timeout_ms", self.hello_timeout_ms),
        ];
        match positive.iter().find(|(_, value)| *value == 0) {
            Some((key, _)) => Err(invalid(*key, "must be greater than 0")),
            None => Ok(()),
        }
    }
}
