//! `[[link]]`: router links opened at start: peer, transport, realms, forwarding, reconnecting.

use std::fmt;
use std::path::PathBuf;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::{check_socket_address, deserialize_one_of, invalid, is_valid_node_id};
use super::{ConfigError, TlsConfig};

/// How a router link reaches its peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LinkTransport {
    /// One QUIC connection per peer, one stream per linked realm (the default).
    #[default]
    Quic,
    /// RawSocket over plain TCP, one connection per realm (the baseline QUIC is measured against).
    Tcp,
    /// RawSocket over TLS over TCP, one connection per realm.
    Tls,
}

impl LinkTransport {
    const NAMES: [(&'static str, LinkTransport); 3] = [
        ("quic", LinkTransport::Quic),
        ("tcp", LinkTransport::Tcp),
        ("tls", LinkTransport::Tls),
    ];

    /// The config name: quic, tcp, tls.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkTransport::Quic => "quic",
            LinkTransport::Tcp => "tcp",
            LinkTransport::Tls => "tls",
        }
    }

    /// Whether the peer is verified with a certificate (and so `tls.ca` is needed).
    pub fn uses_tls(self) -> bool {
        matches!(self, LinkTransport::Quic | LinkTransport::Tls)
    }
}

impl<'de> Deserialize<'de> for LinkTransport {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_one_of(deserializer, "variant", &LinkTransport::NAMES)
    }
}

/// What a link does after it is lost. Reconnecting is the user's choice, never hidden.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReconnectPolicy {
    /// `reconnect = "manual"`: stay stopped until `wampmesh.link.start`.
    Manual,
    /// `reconnect = { initial_ms, max_ms }`: retry after `initial_ms`, doubling up to `max_ms`.
    Backoff { initial_ms: u64, max_ms: u64 },
}

impl Default for ReconnectPolicy {
    /// Backoff from 100 ms up to 5000 ms.
    fn default() -> Self {
        ReconnectPolicy::Backoff {
            initial_ms: 100,
            max_ms: 5000,
        }
    }
}

/// The table form of `reconnect`; a missing key takes the default's value.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BackoffTable {
    #[serde(default = "default_initial_ms")]
    initial_ms: u64,
    #[serde(default = "default_max_ms")]
    max_ms: u64,
}

fn default_initial_ms() -> u64 {
    100
}
fn default_max_ms() -> u64 {
    5000
}

impl<'de> Deserialize<'de> for ReconnectPolicy {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ReconnectVisitor)
    }
}

/// Takes `"manual"` or a table; a hand-written visitor (not `untagged`) keeps key paths and
/// messages precise.
struct ReconnectVisitor;

impl<'de> Visitor<'de> for ReconnectVisitor {
    type Value = ReconnectPolicy;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("\"manual\" or a table { initial_ms, max_ms }")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<ReconnectPolicy, E> {
        match text {
            "manual" => Ok(ReconnectPolicy::Manual),
            other => Err(E::custom(format!(
                "unknown variant {other:?}, expected \"manual\" or a table {{ initial_ms, max_ms }}"
            ))),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ReconnectPolicy, A::Error> {
        let table = BackoffTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(ReconnectPolicy::Backoff {
            initial_ms: table.initial_ms,
            max_ms: table.max_ms,
        })
    }
}

/// `[[link]]`: a router link to one peer, carrying the listed realms.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkConfig {
    /// The peer's node id (checked against its certificate on quic and tls links).
    pub peer: String,
    /// The peer's socket address, e.g. `127.0.0.1:9443`.
    pub address: String,
    /// quic (default) | tcp | tls.
    #[serde(default)]
    pub transport: LinkTransport,
    /// Realms linked at start; each must be configured in `[[realm]]`. More can be started at
    /// runtime through the management API. Default: none.
    #[serde(default)]
    pub realms: Vec<String>,
    /// Forward publications across the link. Default true.
    #[serde(default = "default_true")]
    pub forward_events: bool,
    /// Forward calls across the link. Default true.
    #[serde(default = "default_true")]
    pub forward_calls: bool,
    /// What to do when the link is lost. Default backoff 100 ms .. 5000 ms.
    #[serde(default)]
    pub reconnect: ReconnectPolicy,
    /// Plain tcp links only (no certificate to prove who we are): the ticket this node
    /// presents, as authid = our node id, to a ticket principal with role `rlink` at the peer.
    #[serde(default)]
    pub ticket: Option<crate::router::auth::Secret>,
    /// A file holding this node's Ed25519 seed (64 hex characters; `wampmesh certs --ed25519`
    /// writes one). The link then answers a WAMP-Cryptosign challenge as authid = our node id,
    /// to a cryptosign principal with role `rlink` at the peer. Any transport: on quic and tls
    /// links HELLO offers the certificate first and cryptosign second. Read at node start.
    #[serde(default)]
    pub cryptosign_key_file: Option<PathBuf>,
    /// Like `cryptosign_key_file`, the seed taken from this environment variable.
    #[serde(default)]
    pub cryptosign_seed_env: Option<String>,
}

fn default_true() -> bool {
    true
}

impl LinkConfig {
    /// Checks what one link can know alone; `key` is its place in the file, e.g. `link[0]`.
    /// (That its realms are configured is checked by `Config::validate`.)
    pub(crate) fn validate(
        &self,
        key: &str,
        node_id: &str,
        tls: Option<&TlsConfig>,
    ) -> Result<(), ConfigError> {
        let peer_key = format!("{key}.peer");
        if !is_valid_node_id(&self.peer) {
            return Err(invalid(
                peer_key,
                format!(
                    "invalid node id {:?}: use one or more of A-Z a-z 0-9 _ -",
                    self.peer
                ),
            ));
        }
        if self.peer == node_id {
            return Err(invalid(
                peer_key,
                format!("{:?} is this node's own id (node.id)", self.peer),
            ));
        }
        check_socket_address(&format!("{key}.address"), &self.address)?;
        if self.transport.uses_tls() && tls.and_then(|tls| tls.ca.as_ref()).is_none() {
            return Err(invalid(
                format!("{key}.transport"),
                format!(
                    "a {:?} link needs [tls] with ca (tls.ca) to verify the peer",
                    self.transport.as_str()
                ),
            ));
        }
        if self.cryptosign_key_file.is_some() && self.cryptosign_seed_env.is_some() {
            return Err(invalid(
                format!("{key}.cryptosign_seed_env"),
                "set one of cryptosign_key_file and cryptosign_seed_env",
            ));
        }
        if self.ticket.is_some() && self.cryptosign_key().is_some() {
            return Err(invalid(
                format!("{key}.ticket"),
                "a link authenticates with a ticket or a cryptosign key, not both",
            ));
        }
        for (index, realm) in self.realms.iter().enumerate() {
            if self.realms[..index].contains(realm) {
                return Err(invalid(
                    format!("{key}.realms[{index}]"),
                    format!("realm {realm:?} is listed twice"),
                ));
            }
        }
        self.validate_reconnect(key)
    }

    /// Where the cryptosign seed comes from, if configured.
    pub fn cryptosign_key(&self) -> Option<CryptosignKeySource> {
        match (&self.cryptosign_key_file, &self.cryptosign_seed_env) {
            (Some(path), _) => Some(CryptosignKeySource::File(path.clone())),
            (None, Some(var)) => Some(CryptosignKeySource::Env(var.clone())),
            (None, None) => None,
        }
    }

    fn validate_reconnect(&self, key: &str) -> Result<(), ConfigError> {
        let ReconnectPolicy::Backoff { initial_ms, max_ms } = self.reconnect else {
            return Ok(());
        };
        if initial_ms == 0 {
            return Err(invalid(
                format!("{key}.reconnect.initial_ms"),
                "must be greater than 0",
            ));
        }
        if max_ms < initial_ms {
            return Err(invalid(
                format!("{key}.reconnect.max_ms"),
                format!("{max_ms} is less than initial_ms ({initial_ms})"),
            ));
        }
        Ok(())
    }
}

/// Where a link's cryptosign seed is read from (never inline: a config file is often shared).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CryptosignKeySource {
    File(PathBuf),
    Env(String),
}

impl CryptosignKeySource {
    /// Reads the seed. The error names the file or variable, never its content.
    pub fn load(&self) -> Result<crate::cryptosign::CryptosignKey, crate::cryptosign::KeyError> {
        match self {
            CryptosignKeySource::File(path) => crate::cryptosign::CryptosignKey::from_file(path),
            CryptosignKeySource::Env(var) => crate::cryptosign::CryptosignKey::from_env(var),
        }
    }
}
