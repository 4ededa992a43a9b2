//! Authentication config: the `[listen.auth]` tables, secrets that never print, and
//! resolving `*_env` / `*_file` secret sources at start.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A credential; its `Debug` prints `***`, so printing a config never leaks it.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    /// The secret itself, for the one place that must compare or hash it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// `[listen.auth]`: the methods a listener accepts. None configured = every HELLO is refused.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub anonymous: Option<AnonymousConfig>,
    pub ticket: Option<TicketConfig>,
    pub wampcra: Option<WampCraConfig>,
    pub cryptosign: Option<super::CryptosignConfig>,
}

/// `[listen.auth.anonymous]`: anyone may join, under this role.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnonymousConfig {
    #[serde(default = "anonymous_role")]
    pub role: String,
}

fn anonymous_role() -> String {
    "anonymous".to_owned()
}

impl Default for AnonymousConfig {
    fn default() -> Self {
        AnonymousConfig {
            role: anonymous_role(),
        }
    }
}

/// `[listen.auth.ticket]`: principals by authid.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketConfig {
    #[serde(default)]
    pub principals: BTreeMap<String, TicketPrincipal>,
}

/// One ticket principal; the ticket comes from exactly one of the three sources.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketPrincipal {
    pub ticket: Option<Secret>,
    pub ticket_env: Option<String>,
    pub ticket_file: Option<PathBuf>,
    pub role: String,
}

/// `[listen.auth.wampcra]`: users by authid.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WampCraConfig {
    #[serde(default)]
    pub users: BTreeMap<String, WampCraUser>,
}

/// One WAMP-CRA user; with a `salt` the HMAC key is derived with PBKDF2 (salted WAMP-CRA).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WampCraUser {
    pub secret: Option<Secret>,
    pub secret_env: Option<String>,
    pub secret_file: Option<PathBuf>,
    pub role: String,
    pub salt: Option<String>,
    pub iterations: Option<u32>,
    pub keylen: Option<usize>,
}

/// A config mistake found at start. Names the principal and key, never the secret.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error(
        "auth.{method} principal '{principal}': set exactly one of {key}, {key}_env, {key}_file"
    )]
    SecretSource {
        method: &'static str,
        principal: String,
        key: &'static str,
    },
    #[error("auth.{method} principal '{principal}': {key}_env: variable '{var}' is not set or not UTF-8")]
    SecretEnv {
        method: &'static str,
        principal: String,
        key: &'static str,
        var: String,
    },
    #[error("auth.{method} principal '{principal}': {key}_file: cannot read {}: {source}", path.display())]
    SecretFile {
        method: &'static str,
        principal: String,
        key: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("auth.{method} principal '{principal}': {key} is empty")]
    EmptySecret {
        method: &'static str,
        principal: String,
        key: &'static str,
    },
    #[error("auth.wampcra principal '{principal}': {problem}")]
    Salting {
        principal: String,
        problem: &'static str,
    },
    #[error("auth.cryptosign principal '{principal}': {problem}")]
    Cryptosign { principal: String, problem: String },
}

impl AuthConfig {
    /// Anonymous only, role "anonymous": what the embedded default config uses.
    pub fn anonymous_default() -> AuthConfig {
        AuthConfig {
            anonymous: Some(AnonymousConfig::default()),
            ..AuthConfig::default()
        }
    }

    /// The configured method names, for logs and the ABORT message.
    pub fn methods(&self) -> Vec<&'static str> {
        let enabled = [
            ("anonymous", self.anonymous.is_some()),
            ("ticket", self.ticket.is_some()),
            ("wampcra", self.wampcra.is_some()),
            ("cryptosign", self.cryptosign.is_some()),
        ];
        enabled
            .into_iter()
            .filter(|(_, on)| *on)
            .map(|(m, _)| m)
            .collect()
    }

    /// Replaces every `*_env` / `*_file` source by the secret it names, checks salting options
    /// and parses cryptosign keys (`authorized_keys`, `authorized_keys_file`). The node calls it
    /// once at start (file paths are relative to the working dir).
    pub fn resolve_secrets(&mut self) -> Result<(), AuthConfigError> {
        if let Some(cryptosign) = &mut self.cryptosign {
            cryptosign.resolve_keys()?;
        }
        for (name, p) in self.ticket.iter_mut().flat_map(|t| t.principals.iter_mut()) {
            let at = SecretPlace {
                method: "ticket",
                principal: name,
                key: "ticket",
            };
            p.ticket = Some(at.resolve(&p.ticket, &p.ticket_env, &p.ticket_file)?);
            (p.ticket_env, p.ticket_file) = (None, None);
        }
        for (name, u) in self.wampcra.iter_mut().flat_map(|c| c.users.iter_mut()) {
            let at = SecretPlace {
                method: "wampcra",
                principal: name,
                key: "secret",
            };
            u.secret = Some(at.resolve(&u.secret, &u.secret_env, &u.secret_file)?);
            (u.secret_env, u.secret_file) = (None, None);
            let problem = match (&u.salt, u.iterations, u.keylen) {
                (None, Some(_), _) | (None, _, Some(_)) => "iterations and keylen need a salt",
                (_, Some(0), _) => "iterations must be at least 1",
                (_, _, Some(0)) => "keylen must be at least 1",
                _ => continue,
            };
            return Err(AuthConfigError::Salting {
                principal: name.clone(),
                problem,
            });
        }
        Ok(())
    }
}

/// Where a secret is configured, for resolving it and naming it in errors.
struct SecretPlace<'a> {
    method: &'static str,
    principal: &'a str,
    key: &'static str,
}

impl SecretPlace<'_> {
    fn resolve(
        &self,
        literal: &Option<Secret>,
        env: &Option<String>,
        file: &Option<PathBuf>,
    ) -> Result<Secret, AuthConfigError> {
        let (method, principal, key) = (self.method, self.principal.to_owned(), self.key);
        let value = match (literal, env, file) {
            (Some(secret), None, None) => secret.expose().to_owned(),
            (None, Some(var), None) => {
                std::env::var(var).map_err(|_| AuthConfigError::SecretEnv {
                    method,
                    principal: principal.clone(),
                    key,
                    var: var.clone(),
                })?
            }
            (None, None, Some(path)) => read_secret_file(path).map_err(|source| {
                let path = path.clone();
                AuthConfigError::SecretFile {
                    method,
                    principal: principal.clone(),
                    key,
                    path,
                    source,
                }
            })?,
            _ => {
                return Err(AuthConfigError::SecretSource {
                    method,
                    principal,
                    key,
                })
            }
        };
        if value.is_empty() {
            return Err(AuthConfigError::EmptySecret {
                method,
                principal,
                key,
            });
        }
        Ok(Secret(value))
    }
}

/// A secret file's content without its trailing line break (`echo secret > file`).
fn read_secret_file(path: &Path) -> std::io::Result<String> {
    let mut text = std::fs::read_to_string(path)?;
    text.truncate(text.trim_end_matches(['\r', '\n']).len());
    Ok(text)
}
