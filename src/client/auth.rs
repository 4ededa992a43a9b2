//! The client side of ticket and WAMP-CRA authentication: answering a CHALLENGE.
//!
//! `derive_key` and `compute_signature` duplicate the router's helpers in
//! `router/auth.rs` until those land; one copy should then go.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::error::ClientError;
use super::ClientAuth;
use crate::wamp::{Dict, Value};

/// PBKDF2 iterations above this are refused: a router must not make a client burn seconds.
const MAX_ITERATIONS: u64 = 1_000_000;
/// Derived key lengths above this are refused (allocation bound).
const MAX_KEYLEN: u64 = 1024;

/// WAMP-CRA salted key: `base64(PBKDF2-HMAC-SHA256(secret, salt, iterations, keylen))`.
/// The ASCII bytes of the returned string are the HMAC key, as in autobahn's `derive_key`.
pub fn derive_key(secret: &str, salt: &str, iterations: u32, keylen: usize) -> String {
    let mut key = vec![0u8; keylen];
    pbkdf2::pbkdf2_hmac::<Sha256>(secret.as_bytes(), salt.as_bytes(), iterations, &mut key);
    STANDARD.encode(key)
}

/// WAMP-CRA signature: `base64(HMAC-SHA256(key, challenge))`, standard base64 with padding.
pub fn compute_signature(key: &[u8], challenge: &str) -> String {
    // HMAC takes keys of any length (long keys are hashed), so this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC-SHA256 accepts keys of any length"),
    };
    mac.update(challenge.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// The AUTHENTICATE signature for a CHALLENGE, or why we cannot answer it.
pub(super) fn answer_challenge(
    auth: &ClientAuth,
    method: &str,
    extra: &Dict,
) -> Result<String, ClientError> {
    match (auth, method) {
        (ClientAuth::Ticket { ticket, .. }, "ticket") => Ok(ticket.clone()),
        (ClientAuth::WampCra { secret, .. }, "wampcra") => wampcra_signature(secret, extra),
        _ => Err(ClientError::Protocol(format!(
            "router challenged with {method:?}, but this client authenticates with {:?}",
            auth.method()
        ))),
    }
}

fn wampcra_signature(secret: &str, extra: &Dict) -> Result<String, ClientError> {
    let challenge = extra
        .get("challenge")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ClientError::Protocol("wampcra CHALLENGE without a challenge string".into())
        })?;
    let Some(salt) = extra.get("salt") else {
        return Ok(compute_signature(secret.as_bytes(), challenge));
    };
    let salt = salt
        .as_str()
        .ok_or_else(|| ClientError::Protocol("wampcra salt is not a string".into()))?;
    let iterations = bounded(extra, "iterations", 1000, MAX_ITERATIONS)?;
    let keylen = bounded(extra, "keylen", 32, MAX_KEYLEN)?;
    let key = derive_key(secret, salt, iterations as u32, keylen as usize);
    Ok(compute_signature(key.as_bytes(), challenge))
}

/// An optional positive integer from the challenge extra, refused above `max`.
fn bounded(extra: &Dict, key: &str, default: u64, max: u64) -> Result<u64, ClientError> {
    match extra.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => match v.as_u64() {
            Some(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ClientError::Protocol(format!(
                "wampcra {key} must be an integer in 1..={max}"
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dict;

    #[test]
    fn autobahn_vectors() {
        assert_eq!(
            derive_key("L3L1YUE8Txlw", "salt123", 1000, 32),
            "qzcdsr9uu/L5hnss3kjNTRe490ETgA70ZBaB5rvnJ5Y="
        );
        assert_eq!(
            compute_signature(b"L3L1YUE8Txlw", "[1, 2, 3]"),
            "1njQtmmeYO41N5EWEzD2kAjjEKRZ5kPZt/TzpYXOzR0="
        );
    }

    #[test]
    fn salted_challenge_uses_the_derived_key_text() {
        let auth = ClientAuth::WampCra {
            authid: "peter".into(),
            secret: "L3L1YUE8Txlw".into(),
        };
        let extra = dict! { "challenge" => "[1, 2, 3]", "salt" => "salt123", "iterations" => 1000u64, "keylen" => 32u64 };
        let key = "qzcdsr9uu/L5hnss3kjNTRe490ETgA70ZBaB5rvnJ5Y=";
        assert_eq!(
            answer_challenge(&auth, "wampcra", &extra).unwrap(),
            compute_signature(key.as_bytes(), "[1, 2, 3]")
        );
    }

    #[test]
    fn wrong_method_and_hostile_parameters_are_refused() {
        let ticket = ClientAuth::Ticket {
            authid: "joe".into(),
            ticket: "secret!!!".into(),
        };
        assert!(answer_challenge(&ticket, "wampcra", &Dict::new()).is_err());
        assert_eq!(
            answer_challenge(&ticket, "ticket", &Dict::new()).unwrap(),
            "secret!!!"
        );
        let cra = ClientAuth::WampCra {
            authid: "p".into(),
            secret: "s".into(),
        };
        let huge = dict! { "challenge" => "c", "salt" => "x", "iterations" => u64::MAX };
        assert!(answer_challenge(&cra, "wampcra", &huge).is_err());
        assert!(answer_challenge(&cra, "wampcra", &Dict::new()).is_err());
        let secretive = ClientAuth::WampCra {
            authid: "p".into(),
            secret: "topsecret".into(),
        };
        assert!(!format!("{secretive:?}").contains("topsecret"));
    }
}
