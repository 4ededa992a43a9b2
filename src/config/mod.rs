//! TOML configuration -> validated `Config`; a bad file fails at start naming the key.
//!
//! Parsing happens in two steps. Serde (through `serde_path_to_error`, so that every error
//! carries the path of the key that failed, e.g. `listen[1].serializers[0]`) turns the text into
//! typed sections; names such as serializers, transports and match policies are parsed there.
//! Then [`Config::validate`] checks what a single value cannot know: addresses per transport,
//! ranges, unique names, links that point at configured realms, TLS material that links need.
//! Every error names the key, so an operator can fix the file without reading the source.
//! `examples/node.toml` shows every key with its default.

mod link;
mod listen;
mod realm;
mod sections;
pub mod templates;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use link::{CryptosignKeySource, LinkConfig, LinkTransport, ReconnectPolicy};
pub use listen::{ListenConfig, TransportKind, MAX_MESSAGE_SIZE_LIMIT, MIN_MESSAGE_SIZE};
pub use realm::{Permission, RealmConfig, RoleConfig};
pub use sections::{
    IoConfig, LimitsConfig, ManagementConfig, MetricsConfig, NodeConfig, SlowConsumerPolicy,
    TlsConfig,
};

/// Why a configuration could not be loaded. `Display` always starts with the key (or, for a
/// file that cannot be read, the file), so the first word of the message says where to look.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read; the reason is the error's source.
    #[error("{}: cannot read the config file", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The text is not TOML, a key is unknown, or a value has the wrong type or name.
    #[error("{key}: {message}")]
    Parse { key: String, message: String },
    /// Every value parsed, but the values do not make a working node together.
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
    /// A `Parse` or `Invalid` error from a file given to [`Config::load`]: names the file too.
    #[error("{error} (in {})", path.display())]
    InFile {
        path: PathBuf,
        error: Box<ConfigError>,
    },
}

impl ConfigError {
    /// The key that failed (looking through `InFile`); `None` for an unreadable file.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Io { .. } => None,
            ConfigError::Parse { key, .. } | ConfigError::Invalid { key, .. } => Some(key),
            ConfigError::InFile { error, .. } => error.key(),
        }
    }
}

/// Builds an `Invalid` error for `key`; validation code uses it everywhere.
pub(crate) fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// The whole node configuration: one field per TOML section (DESIGN.md §4).
/// Build it with [`Config::from_toml_str`], [`Config::load`] or [`Config::embedded_default`];
/// a value built by hand should go through [`Config::validate`] before use.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[node]`: who this node is.
    #[serde(default)]
    pub node: NodeConfig,
    /// `[io]`: how many IO threads drive the sockets.
    #[serde(default)]
    pub io: IoConfig,
    /// `[tls]`: certificates for QUIC, TLS listeners and links; absent = self-signed at start.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// `[[listen]]`: where clients (and peers' links) connect.
    #[serde(default)]
    pub listen: Vec<ListenConfig>,
    /// `[[realm]]`: realms that exist from the start, with their roles.
    #[serde(default)]
    pub realm: Vec<RealmConfig>,
    /// `[[link]]`: router links this node opens at start.
    #[serde(default)]
    pub link: Vec<LinkConfig>,
    /// `[management]`: the built-in control realm (DESIGN.md §5).
    #[serde(default)]
    pub management: ManagementConfig,
    /// `[metrics]`: where metrics are served; absent = not served.
    #[serde(default)]
    pub metrics: Option<MetricsConfig>,
    /// `[limits]`: protection against too many sessions and slow consumers.
    #[serde(default)]
    pub limits: LimitsConfig,
}

impl Config {
    /// Parses and validates a TOML document.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let deserializer = toml::Deserializer::new(text);
        let config: Config = serde_path_to_error::deserialize(deserializer)
            .map_err(|error| parse_error(text, error))?;
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and validates a file. TLS paths that are relative are resolved against the
    /// file's directory, so a config and its `certs/` can move together. Errors name the file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Config::from_toml_str(&text).map_err(|error| ConfigError::InFile {
            path: path.to_path_buf(),
            error: Box::new(error),
        })?;
        let base = path.parent().unwrap_or(Path::new(""));
        if let Some(tls) = &mut config.tls {
            tls.resolve_relative_to(base);
        }
        Ok(config)
    }

    /// What `wampmesh node` runs with no `--config` (DESIGN.md §3): RawSocket TCP on
    /// 127.0.0.1:8080 and QUIC on 127.0.0.1:8443 (self-signed certificate, no `[tls]`), realm
    /// `realm1` where anonymous clients may do everything, all three serializers.
    pub fn embedded_default() -> Config {
        Config {
            node: NodeConfig::default(),
            io: IoConfig::default(),
            tls: None,
            listen: vec![
                ListenConfig::new(TransportKind::Tcp, "127.0.0.1:8080"),
                ListenConfig::new(TransportKind::Quic, "127.0.0.1:8443"),
            ],
            realm: vec![RealmConfig::open("realm1")],
            link: Vec::new(),
            management: ManagementConfig::default(),
            metrics: None,
            limits: LimitsConfig::default(),
        }
    }

    /// The configured realm called `name`, if any.
    pub fn realm(&self, name: &str) -> Option<&RealmConfig> {
        self.realm.iter().find(|realm| realm.name == name)
    }

    /// Checks everything serde could not: values against each other and against their section.
    /// `from_toml_str` and `load` call it; call it on a `Config` built or edited in code.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.node.validate()?;
        for (index, listen) in self.listen.iter().enumerate() {
            listen.validate(&format!("listen[{index}]"), self.tls.as_ref())?;
        }
        listen::check_unique_addresses(&self.listen)?;
        self.management.validate()?;
        self.validate_realms()?;
        self.validate_links()?;
        if let Some(metrics) = &self.metrics {
            metrics.validate()?;
        }
        self.limits.validate()
    }

    fn validate_realms(&self) -> Result<(), ConfigError> {
        let mut seen = HashSet::new();
        for (index, realm) in self.realm.iter().enumerate() {
            let key = format!("realm[{index}]");
            realm.validate(&key)?;
            if !seen.insert(realm.name.as_str()) {
                return Err(invalid(
                    format!("{key}.name"),
                    format!("realm {:?} is configured twice", realm.name),
                ));
            }
            if realm.name == self.management.realm {
                return Err(invalid(
                    format!("{key}.name"),
                    format!(
                        "{:?} is the management realm (management.realm); it is built in",
                        realm.name
                    ),
                ));
            }
        }
        Ok(())
    }

    fn validate_links(&self) -> Result<(), ConfigError> {
        let mut linked: HashSet<(&str, &str)> = HashSet::new();
        for (index, link) in self.link.iter().enumerate() {
            let key = format!("link[{index}]");
            link.validate(&key, &self.node.id, self.tls.as_ref())?;
            for (position, realm) in link.realms.iter().enumerate() {
                let realm_key = format!("{key}.realms[{position}]");
                if self.realm(realm).is_none() {
                    return Err(invalid(
                        realm_key,
                        format!("realm {realm:?} is not configured"),
                    ));
                }
                if !linked.insert((link.peer.as_str(), realm.as_str())) {
                    return Err(invalid(
                        realm_key,
                        format!("realm {realm:?} is linked to {:?} twice", link.peer),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Turns a serde error into a `Parse` error keyed by the failing path.
fn parse_error(text: &str, error: serde_path_to_error::Error<toml::de::Error>) -> ConfigError {
    let path = error.path().to_string();
    let inner = error.into_inner();
    let message = inner.message().trim().replace('\n', "; ");
    if path == "." {
        // Not inside any key: a TOML syntax error. The position is the best key there is.
        let key = match inner.span() {
            Some(span) => line_and_column(text, span.start),
            None => "(document)".to_string(),
        };
        return ConfigError::Parse { key, message };
    }
    // serde reports a missing field at its table; name the field itself.
    if let Some(field) = missing_field(&message) {
        return ConfigError::Parse {
            key: format!("{path}.{field}"),
            message: "required key is missing".to_string(),
        };
    }
    ConfigError::Parse { key: path, message }
}

/// The field name in serde's "missing field `name`" message.
fn missing_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("missing field `")?
        .split('`')
        .next()
        .filter(|field| !field.is_empty())
}

/// "line L, column C" (both from 1) for a byte offset into `text`.
fn line_and_column(text: &str, offset: usize) -> String {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map_or(0, |tail| tail.chars().count())
        + 1;
    format!("line {line}, column {column}")
}

/// Deserializes a string that must be one of `choices`, with one message format for every
/// named value in the file: `unknown variant "regex", expected one of exact, prefix, wildcard`.
pub(crate) fn deserialize_one_of<'de, D, T>(
    deserializer: D,
    what: &str,
    choices: &[(&str, T)],
) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Copy,
{
    let text = String::deserialize(deserializer)?;
    match choices.iter().find(|(name, _)| *name == text) {
        Some((_, value)) => Ok(*value),
        None => {
            let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
            Err(serde::de::Error::custom(format!(
                "unknown {what} {text:?}, expected one of {}",
                names.join(", ")
            )))
        }
    }
}

/// A node id: non-empty `[A-Za-z0-9_-]+`, because it goes into certificate names and link paths.
pub(crate) fn is_valid_node_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Checks that `address` is an IP socket address such as `127.0.0.1:8080` or `[::1]:8443`.
pub(crate) fn check_socket_address(key: &str, address: &str) -> Result<(), ConfigError> {
    address
        .parse::<std::net::SocketAddr>()
        .map(|_| ())
        .map_err(|_| invalid(key, format!("invalid socket address {address:?}")))
}
