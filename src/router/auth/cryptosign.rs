//! WAMP-Cryptosign on the router side: `[listen.auth.cryptosign]` principals and their
//! authorized Ed25519 public keys, the CHALLENGE for a HELLO carrying `authextra.pubkey`, and the
//! check of the signature that answers it. Channel binding and router authentication (the
//! client's `authextra.challenge`) are not supported and refused with a clear message.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use rand::RngCore;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::{AuthConfigError, AuthStep, Expected, Identity, PendingAuth};
use super::{NOT_AUTHORIZED, PROTOCOL_VIOLATION};
use crate::cryptosign::{parse_authorized_keys, PublicKey, CHALLENGE_LEN};
use crate::wamp::{Dict, Value};

/// `[listen.auth.cryptosign]`: principals by authid.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CryptosignConfig {
    #[serde(default)]
    pub principals: BTreeMap<String, CryptosignPrincipal>,
}

/// One cryptosign principal: the public keys it may sign with (inline, from a file, or both),
/// and its role. A key belongs to one principal only.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CryptosignPrincipal {
    /// Hex Ed25519 public keys (64 characters each).
    #[serde(default)]
    pub authorized_keys: Vec<String>,
    /// A file with one hex public key per line (`#` comments and blank lines skipped; text after
    /// the key on a line is a comment), e.g. a `.ed25519.pub` written by `wampmesh certs`.
    pub authorized_keys_file: Option<PathBuf>,
    pub role: String,
    /// The parsed keys of both sources, filled by `AuthConfig::resolve_secrets`.
    #[serde(skip)]
    pub keys: Vec<PublicKey>,
}

impl CryptosignConfig {
    /// Parses every principal's keys (inline and file) into `keys`. Refuses a principal without
    /// keys, a malformed key, and a key authorized for two principals.
    pub(super) fn resolve_keys(&mut self) -> Result<(), AuthConfigError> {
        let mut owners: HashMap<PublicKey, String> = HashMap::new();
        for (name, principal) in &mut self.principals {
            let refuse = |problem: String| AuthConfigError::Cryptosign {
                principal: name.clone(),
                problem,
            };
            let mut keys = Vec::new();
            for (index, text) in principal.authorized_keys.iter().enumerate() {
                let key = PublicKey::from_hex(text)
                    .map_err(|e| refuse(format!("authorized_keys[{index}]: {e}")))?;
                keys.push(key);
            }
            if let Some(path) = &principal.authorized_keys_file {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    refuse(format!(
                        "authorized_keys_file: cannot read {}: {e}",
                        path.display()
                    ))
                })?;
                let from_file = parse_authorized_keys(&text).map_err(|(line, e)| {
                    refuse(format!(
                        "authorized_keys_file {} line {line}: {e}",
                        path.display()
                    ))
                })?;
                keys.extend(from_file);
            }
            if keys.is_empty() {
                return Err(refuse(
                    "no keys: set authorized_keys or authorized_keys_file".into(),
                ));
            }
            for key in &keys {
                match owners.get(key) {
                    Some(owner) if owner != name => {
                        return Err(refuse(format!(
                            "key {key} is also authorized for principal '{owner}'"
                        )))
                    }
                    _ => owners.insert(*key, name.clone()),
                };
            }
            principal.keys = keys;
        }
        Ok(())
    }

    /// Handles a HELLO asking for cryptosign: `authextra.pubkey` picks the principal (the HELLO's
    /// authid, if any, must be its name). An unknown key or a mismatched authid is challenged
    /// like a known one and fails at AUTHENTICATE the same way.
    pub(super) fn challenge(&self, authid: Option<&str>, details: &Dict) -> AuthStep {
        let extra = match details.get("authextra") {
            None | Some(Value::Null) => None,
            Some(Value::Dict(extra)) => Some(extra),
            Some(_) => {
                return AuthStep::Abort {
                    reason: PROTOCOL_VIOLATION,
                    message: "HELLO.Details.authextra must be a dict".into(),
                }
            }
        };
        let pubkey = match hello_pubkey(extra) {
            Ok(pubkey) => pubkey,
            Err(message) => {
                return AuthStep::Abort {
                    reason: NOT_AUTHORIZED,
                    message,
                }
            }
        };
        let principal = self
            .principals
            .iter()
            .find(|(_, p)| p.keys.contains(&pubkey));
        let identity = match (principal, authid) {
            (Some((name, p)), None) => Some(Identity::new(name, &p.role, "cryptosign")),
            (Some((name, p)), Some(asked)) if asked == name => {
                Some(Identity::new(name, &p.role, "cryptosign"))
            }
            _ => None,
        };
        let mut challenge = [0u8; CHALLENGE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut challenge);
        let extra = crate::dict! {
            "challenge" => hex::encode(challenge),
            "channel_binding" => Value::Null,
        };
        let pending = PendingAuth {
            method: "cryptosign",
            authid: authid.map_or_else(|| pubkey.to_hex(), str::to_owned),
            identity,
            expected: Expected::Cryptosign {
                challenge,
                pubkey: Box::new(pubkey),
            },
        };
        AuthStep::Challenge {
            method: "cryptosign".to_owned(),
            extra,
            pending,
        }
    }
}

/// The client's public key from `authextra`, after refusing what this router does not do.
fn hello_pubkey(extra: Option<&Dict>) -> Result<PublicKey, String> {
    let field = |key: &str| {
        extra
            .and_then(|e| e.get(key))
            .filter(|v| **v != Value::Null)
    };
    if let Some(binding) = field("channel_binding") {
        let binding = binding.as_str().unwrap_or("?");
        return Err(format!(
            "cryptosign channel binding ({binding}) is not supported by this router; \
             connect without authextra.channel_binding"
        ));
    }
    if field("challenge").is_some() {
        return Err(
            "cryptosign router authentication (authextra.challenge) is not supported \
                    by this router"
                .into(),
        );
    }
    let text = match field("pubkey") {
        Some(Value::Str(text)) => text,
        Some(_) => return Err("cryptosign authextra.pubkey must be a string".into()),
        None => {
            return Err("cryptosign authentication needs authextra.pubkey (hex Ed25519 key)".into())
        }
    };
    PublicKey::from_hex(text).map_err(|e| format!("cryptosign authextra.pubkey: {e}"))
}

/// Checks AUTHENTICATE.Signature for `challenge`: hex of a 64-byte Ed25519 signature, optionally
/// followed by the 32 challenge bytes (autobahn sends both, 192 hex characters), which must then
/// be ours. Verified with RFC 8032's strict rules.
pub(super) fn signature_matches(
    challenge: &[u8; CHALLENGE_LEN],
    pubkey: &PublicKey,
    signature: &str,
) -> bool {
    if signature.len() != 128 && signature.len() != 192 {
        return false;
    }
    let Ok(bytes) = hex::decode(signature) else {
        return false;
    };
    let (signature, appended) = bytes.split_at(64);
    if !appended.is_empty() && !bool::from(appended.ct_eq(challenge)) {
        return false;
    }
    let Ok(signature) = <&[u8; 64]>::try_from(signature) else {
        return false;
    };
    pubkey.verify(challenge, signature)
}

#[cfg(test)]
mod tests;
