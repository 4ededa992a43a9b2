//! The client side of ticket, WAMP-CRA and WAMP-Cryptosign authentication: answering a
//! CHALLENGE.
//!
//! The WAMP-CRA primitives are the router's (`router/auth.rs`), re-exported here for users.

use super::error::ClientError;
use super::ClientAuth;
use crate::cryptosign::{decode_hex, CryptosignKey, CHALLENGE_LEN};
use crate::wamp::{Dict, Value};

pub use crate::router::auth::{compute_signature, derive_key};

/// PBKDF2 iterations above this are refused: a router must not make a client burn seconds.
const MAX_ITERATIONS: u64 = 1_000_000;
/// Derived key lengths above this are refused (allocation bound).
const MAX_KEYLEN: u64 = 1024;

/// The AUTHENTICATE signature for a CHALLENGE, or why we cannot answer it.
pub(super) fn answer_challenge(
    auth: &ClientAuth,
    method: &str,
    extra: &Dict,
) -> Result<String, ClientError> {
    match (auth, method) {
        (ClientAuth::Ticket { ticket, .. }, "ticket") => Ok(ticket.clone()),
        (ClientAuth::WampCra { secret, .. }, "wampcra") => wampcra_signature(secret, extra),
        (ClientAuth::Cryptosign { key, .. }, "cryptosign") => cryptosign_signature(key, extra),
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

/// hex(signature || challenge) of the router's 32-byte challenge. A challenge asking for channel
/// binding is refused: this client never asks for it.
fn cryptosign_signature(key: &CryptosignKey, extra: &Dict) -> Result<String, ClientError> {
    if extra
        .get("channel_binding")
        .is_some_and(|b| *b != Value::Null)
    {
        return Err(ClientError::Protocol(
            "cryptosign CHALLENGE asks for channel binding, which this client does not do".into(),
        ));
    }
    let challenge = extra
        .get("challenge")
        .and_then(Value::as_str)
        .and_then(|c| decode_hex::<CHALLENGE_LEN>(c).ok())
        .ok_or_else(|| {
            ClientError::Protocol(
                "cryptosign CHALLENGE without a 64-hex-character challenge".into(),
            )
        })?;
    Ok(key.sign_challenge(&challenge))
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

    #[test]
    fn cryptosign_signs_the_challenge_and_refuses_what_it_cannot_do() {
        let seed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
        let key = CryptosignKey::from_seed_hex(seed).unwrap();
        let auth = ClientAuth::Cryptosign {
            authid: None,
            key: key.clone(),
        };
        let challenge = [1u8; 32];
        let extra =
            dict! { "challenge" => hex::encode(challenge), "channel_binding" => Value::Null };
        let answer = answer_challenge(&auth, "cryptosign", &extra).unwrap();
        assert_eq!(answer, key.sign_challenge(&challenge));
        assert!(answer_challenge(&auth, "wampcra", &extra).is_err());
        for bad in [
            dict! { "challenge" => hex::encode(challenge), "channel_binding" => "tls-unique" },
            dict! { "challenge" => "abcd" },
            dict! { "challenge" => 5u64 },
            Dict::new(),
        ] {
            assert!(
                answer_challenge(&auth, "cryptosign", &bad).is_err(),
                "{bad:?}"
            );
        }
        let printed = format!("{auth:?}");
        assert!(!printed.contains(seed), "{printed}");
        assert!(printed.contains(&key.public_key().to_hex()), "{printed}");
    }
}
