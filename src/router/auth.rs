//! Authentication (anonymous, ticket, WAMP-CRA, WAMP-Cryptosign) as a state machine without
//! I/O: HELLO in, WELCOME / CHALLENGE / ABORT out, then AUTHENTICATE checked against the pending
//! challenge.

mod config;
mod cryptosign;

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::router::Now;
use crate::wamp::{Dict, Id, Value};

/// ABORT reason when none of the client's `authmethods` is enabled (Crossbar's URI).
pub const NO_AUTH_METHOD: &str = "wamp.error.no_auth_method";
/// Reason for every failed authentication, including a HELLO without the authid a method needs.
pub const NOT_AUTHORIZED: &str = "wamp.error.not_authorized";
/// ABORT reason for HELLO details of the wrong type (`authmethods`, `authid`).
pub const PROTOCOL_VIOLATION: &str = "wamp.error.protocol_violation";
/// PBKDF2 rounds when a salt is set without `iterations` (autobahn's default).
pub const DEFAULT_ITERATIONS: u32 = 1000;
/// Derived key length in bytes when a salt is set without `keylen` (autobahn's default).
pub const DEFAULT_KEYLEN: usize = 32;

pub use config::{
    AnonymousConfig, AuthConfig, AuthConfigError, Secret, TicketConfig, TicketPrincipal,
    WampCraConfig, WampCraUser,
};
pub use cryptosign::{CryptosignConfig, CryptosignPrincipal};

impl AuthConfig {
    /// Handles HELLO: picks the first of the client's `authmethods` (absent or empty =
    /// `["anonymous"]`) that this listener has, as Crossbar does. `session` is the id WELCOME
    /// will carry (WAMP-CRA puts it in the challenge).
    pub fn hello(&self, details: &Dict, session: Id, now: &Now) -> AuthStep {
        let (requested, authid) = match parse_hello(details) {
            Ok(parsed) => parsed,
            Err(message) => {
                return AuthStep::Abort {
                    reason: PROTOCOL_VIOLATION,
                    message,
                }
            }
        };
        for method in &requested {
            let step = match *method {
                "anonymous" => self.anonymous.as_ref().map(|anonymous| {
                    AuthStep::Welcome(Identity::new(
                        &random_string(16),
                        &anonymous.role,
                        "anonymous",
                    ))
                }),
                "ticket" => self.ticket.as_ref().map(|ticket| match authid {
                    Some(authid) => ticket.challenge(authid),
                    None => missing_authid("ticket"),
                }),
                "wampcra" => self.wampcra.as_ref().map(|wampcra| match authid {
                    Some(authid) => wampcra.challenge(authid, session, now),
                    None => missing_authid("wampcra"),
                }),
                "cryptosign" => self
                    .cryptosign
                    .as_ref()
                    .map(|cryptosign| cryptosign.challenge(authid, details)),
                _ => None,
            };
            if let Some(step) = step {
                return step;
            }
        }
        let message = format!(
            "cannot authenticate using any of the offered authmethods {requested:?}; this listener accepts {:?}",
            self.methods()
        );
        AuthStep::Abort {
            reason: NO_AUTH_METHOD,
            message,
        }
    }
}

/// The outcome of HELLO.
#[derive(Debug)]
pub enum AuthStep {
    /// Authenticated: send WELCOME.
    Welcome(Identity),
    /// Send CHALLENGE(method, extra), then give the AUTHENTICATE to `pending`.
    Challenge {
        method: String,
        extra: Dict,
        pending: PendingAuth,
    },
    /// Send ABORT(reason, {message}) and close.
    Abort {
        reason: &'static str,
        message: String,
    },
}

/// Who a session is once authenticated: the WELCOME details and the session meta API fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub authid: String,
    pub authrole: String,
    pub authmethod: String,
    pub authprovider: String,
    pub authextra: Dict,
}

impl Identity {
    fn new(authid: &str, authrole: &str, authmethod: &str) -> Identity {
        Identity {
            authid: authid.to_owned(),
            authrole: authrole.to_owned(),
            authmethod: authmethod.to_owned(),
            authprovider: "static".to_owned(),
            authextra: Dict::new(),
        }
    }
}

/// A challenge sent and not yet answered. Timing out is the session layer's job.
#[derive(Debug)]
pub struct PendingAuth {
    method: &'static str,
    authid: String,
    /// `None` for an unknown principal: it was challenged anyway and fails whatever it sends.
    identity: Option<Identity>,
    /// What AUTHENTICATE must carry.
    expected: Expected,
}

/// What a pending challenge accepts.
#[derive(Debug)]
enum Expected {
    /// The ticket, or the WAMP-CRA signature, compared in constant time.
    Secret(Secret),
    /// An Ed25519 signature of `challenge` by `pubkey` (the key the HELLO announced; boxed,
    /// a parsed key is ~200 bytes).
    Cryptosign {
        challenge: [u8; crate::cryptosign::CHALLENGE_LEN],
        pubkey: Box<crate::cryptosign::PublicKey>,
    },
}

/// A refused AUTHENTICATE: send ABORT(reason, {message}). The same for a wrong secret and an
/// unknown principal, so the answer does not reveal which principals exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct AuthFailure {
    pub reason: &'static str,
    pub message: String,
}

impl PendingAuth {
    /// The method being challenged ("ticket", "wampcra" or "cryptosign").
    pub fn method(&self) -> &'static str {
        self.method
    }

    /// Checks AUTHENTICATE.Signature (secrets in constant time). `extra` is unused by these
    /// methods.
    pub fn authenticate(self, signature: &str, _extra: &Dict) -> Result<Identity, AuthFailure> {
        let matches = match &self.expected {
            Expected::Secret(expected) => signature
                .as_bytes()
                .ct_eq(expected.expose().as_bytes())
                .into(),
            Expected::Cryptosign { challenge, pubkey } => {
                cryptosign::signature_matches(challenge, pubkey, signature)
            }
        };
        match self.identity {
            Some(identity) if matches => Ok(identity),
            _ => Err(AuthFailure {
                reason: NOT_AUTHORIZED,
                message: format!(
                    "{} authentication failed for authid '{}'",
                    self.method, self.authid
                ),
            }),
        }
    }
}

impl TicketConfig {
    fn challenge(&self, authid: &str) -> AuthStep {
        let known = self
            .principals
            .get(authid)
            .and_then(|p| Some((p, p.ticket.as_ref()?)));
        let (identity, expected) = match known {
            Some((p, ticket)) => (
                Some(Identity::new(authid, &p.role, "ticket")),
                ticket.clone(),
            ),
            None => (None, Secret::new(random_string(32))),
        };
        let pending = PendingAuth {
            method: "ticket",
            authid: authid.to_owned(),
            identity,
            expected: Expected::Secret(expected),
        };
        AuthStep::Challenge {
            method: "ticket".to_owned(),
            extra: Dict::new(),
            pending,
        }
    }
}

impl WampCraConfig {
    fn challenge(&self, authid: &str, session: Id, now: &Now) -> AuthStep {
        let known = self
            .users
            .get(authid)
            .and_then(|u| Some((u, u.secret.as_ref()?)));
        let role = known.map_or_else(|| self.decoy_role(), |(u, _)| &u.role);
        let challenge = serde_json::json!({
            "authid": authid, "authrole": role, "authmethod": "wampcra", "authprovider": "static",
            "nonce": random_string(64), "timestamp": now.iso8601(), "session": session.get(),
        })
        .to_string();
        let mut extra = crate::dict! { "challenge" => challenge.clone() };
        let (identity, key) = match known {
            Some((user, secret)) => {
                let key = match &user.salt {
                    Some(salt) => {
                        let iterations = user.iterations.unwrap_or(DEFAULT_ITERATIONS);
                        let keylen = user.keylen.unwrap_or(DEFAULT_KEYLEN);
                        extra.insert("salt".into(), Value::from(salt.as_str()));
                        extra.insert("iterations".into(), Value::UInt(iterations.into()));
                        extra.insert("keylen".into(), Value::UInt(keylen as u64));
                        derive_key(secret.expose(), salt, iterations, keylen)
                    }
                    None => secret.expose().to_owned(),
                };
                (Some(Identity::new(authid, role, "wampcra")), key)
            }
            None => (None, random_string(32)),
        };
        let expected = Secret::new(compute_signature(key.as_bytes(), &challenge));
        let pending = PendingAuth {
            method: "wampcra",
            authid: authid.to_owned(),
            identity,
            expected: Expected::Secret(expected),
        };
        AuthStep::Challenge {
            method: "wampcra".to_owned(),
            extra,
            pending,
        }
    }

    /// The role shown to an unknown principal: the commonest configured one, so the challenge
    /// looks like a real user's. (A salted user's challenge still differs: it carries a salt.)
    fn decoy_role(&self) -> &str {
        let mut counts = BTreeMap::<&str, usize>::new();
        for user in self.users.values() {
            *counts.entry(&user.role).or_default() += 1;
        }
        counts
            .into_iter()
            .max_by_key(|(_, n)| *n)
            .map_or("user", |(role, _)| role)
    }
}

/// Salted WAMP-CRA key: base64(PBKDF2-HMAC-SHA256(secret, salt, iterations, keylen)). Its ASCII
/// bytes are the HMAC key. Shared with the client; bound peer-supplied `iterations`/`keylen`.
pub fn derive_key(secret: &str, salt: &str, iterations: u32, keylen: usize) -> String {
    let mut key = vec![0u8; keylen];
    pbkdf2::pbkdf2_hmac::<Sha256>(secret.as_bytes(), salt.as_bytes(), iterations, &mut key);
    BASE64.encode(key)
}

/// WAMP-CRA signature: base64(HMAC-SHA256(key, challenge)). Shared with the client.
pub fn compute_signature(key: &[u8], challenge: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(challenge.as_bytes());
    BASE64.encode(mac.finalize().into_bytes())
}

/// HELLO's `authmethods` (absent, null or empty = anonymous) and `authid`, type-checked.
fn parse_hello(details: &Dict) -> Result<(Vec<&str>, Option<&str>), String> {
    let methods = match details.get("authmethods") {
        None | Some(Value::Null) => vec![],
        Some(Value::List(items)) => items
            .iter()
            .map(Value::as_str)
            .collect::<Option<Vec<_>>>()
            .ok_or("HELLO.Details.authmethods must be a list of strings")?,
        Some(_) => return Err("HELLO.Details.authmethods must be a list of strings".to_owned()),
    };
    let methods = if methods.is_empty() {
        vec!["anonymous"]
    } else {
        methods
    };
    let authid = match details.get("authid") {
        None | Some(Value::Null) => None,
        Some(Value::Str(authid)) => Some(authid.as_str()),
        Some(_) => return Err("HELLO.Details.authid must be a string".to_owned()),
    };
    Ok((methods, authid))
}

/// Ticket and WAMP-CRA need an authid; refusing is Crossbar's answer too.
fn missing_authid(method: &str) -> AuthStep {
    AuthStep::Abort {
        reason: NOT_AUTHORIZED,
        message: format!("{method} authentication needs an authid in HELLO"),
    }
}

/// Random lowercase letters and digits from the thread's CSPRNG (authids, nonces, decoys).
fn random_string(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests;
