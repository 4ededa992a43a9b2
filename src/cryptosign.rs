//! Ed25519 keys for WAMP-Cryptosign (RFC 8032 through `ed25519-dalek`): the private key a client
//! or a router link signs challenges with, the public keys a router authorizes, their hex forms
//! and files. Shared by `router::auth` (verifying), `client` (signing), `link` and `certs`.
//!
//! Formats, as autobahn and Crossbar write them:
//! * a public key is 64 hex characters (32 bytes);
//! * a private key is its 32-byte seed, 64 hex characters; a seed file holds that one line;
//! * a signature answering a challenge is hex(signature(64 bytes) || challenge(32 bytes)), 192
//!   hex characters; routers also accept the bare 128-character signature.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand::RngCore;

/// Bytes of a challenge (and of a seed and a public key).
pub const CHALLENGE_LEN: usize = 32;

/// Why a key could not be read. Never carries the key material itself.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("not {0} hex characters")]
    NotHex(usize),
    #[error("not a valid Ed25519 public key (not a point on the curve)")]
    NotAPoint,
    #[error("environment variable {0:?} is not set or not UTF-8")]
    Env(String),
    #[error("environment variable {var:?}: {problem}")]
    EnvContent { var: String, problem: String },
    #[error("cannot read {}: {source}", path.display())]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {problem}", path.display())]
    FileContent { path: PathBuf, problem: String },
}

/// Decodes exactly `N` bytes from `2 * N` hex characters (either case).
pub fn decode_hex<const N: usize>(text: &str) -> Result<[u8; N], KeyError> {
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).map_err(|_| KeyError::NotHex(2 * N))?;
    Ok(out)
}

/// A public key a router authorizes. Built only from bytes that are a point on the curve.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Parses 64 hex characters.
    pub fn from_hex(text: &str) -> Result<PublicKey, KeyError> {
        let bytes = decode_hex::<32>(text)?;
        VerifyingKey::from_bytes(&bytes)
            .map(PublicKey)
            .map_err(|_| KeyError::NotAPoint)
    }

    /// 64 lowercase hex characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.as_bytes())
    }

    /// Checks `signature` over `message` with RFC 8032's strict rules (`verify_strict`: no
    /// small-order keys or malleable signatures).
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        let signature = Signature::from_bytes(signature);
        self.0.verify_strict(message, &signature).is_ok()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A private key for signing challenges. `Debug` shows the public key only. Shared, not copied:
/// every realm link of a peer holds the key (inline it is 232 bytes per link).
#[derive(Clone, PartialEq, Eq)]
pub struct CryptosignKey(Arc<SigningKey>);

impl CryptosignKey {
    /// The key whose RFC 8032 seed is `seed`.
    pub fn from_seed(seed: &[u8; 32]) -> CryptosignKey {
        CryptosignKey(Arc::new(SigningKey::from_bytes(seed)))
    }

    /// Parses a seed of 64 hex characters (surrounding whitespace ignored).
    pub fn from_seed_hex(text: &str) -> Result<CryptosignKey, KeyError> {
        decode_hex::<32>(text.trim()).map(|seed| CryptosignKey::from_seed(&seed))
    }

    /// A fresh key from the operating system's random source.
    pub fn generate() -> CryptosignKey {
        let mut seed = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut seed);
        CryptosignKey::from_seed(&seed)
    }

    /// Reads a seed file: 64 hex characters on one line (`wampmesh certs --ed25519` writes it).
    pub fn from_file(path: &Path) -> Result<CryptosignKey, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::File {
            path: path.to_owned(),
            source,
        })?;
        CryptosignKey::from_seed_hex(&text).map_err(|e| KeyError::FileContent {
            path: path.to_owned(),
            problem: format!("expected an Ed25519 seed: {e}"),
        })
    }

    /// Reads the seed from environment variable `var`.
    pub fn from_env(var: &str) -> Result<CryptosignKey, KeyError> {
        let text = std::env::var(var).map_err(|_| KeyError::Env(var.to_owned()))?;
        CryptosignKey::from_seed_hex(&text).map_err(|e| KeyError::EnvContent {
            var: var.to_owned(),
            problem: format!("expected an Ed25519 seed: {e}"),
        })
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// The seed as hex, for the one place that writes it to a key file.
    pub fn expose_seed_hex(&self) -> String {
        hex::encode(self.0.to_bytes())
    }

    /// The raw Ed25519 signature of `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }

    /// The AUTHENTICATE signature for a challenge, as autobahn sends it:
    /// hex(signature || challenge), 192 characters.
    pub fn sign_challenge(&self, challenge: &[u8; CHALLENGE_LEN]) -> String {
        let mut signed = self.sign(challenge).to_vec();
        signed.extend_from_slice(challenge);
        hex::encode(signed)
    }
}

impl fmt::Debug for CryptosignKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CryptosignKey(pubkey {}, <secret>)", self.public_key())
    }
}

/// Parses an authorized-keys text: one hex public key per line, optionally followed by
/// whitespace and a comment; blank lines and lines starting with `#` are skipped. Errors name
/// the line number.
pub fn parse_authorized_keys(text: &str) -> Result<Vec<PublicKey>, (usize, KeyError)> {
    let mut keys = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let token = line.split_whitespace().next().unwrap_or(line);
        keys.push(PublicKey::from_hex(token).map_err(|e| (index + 1, e))?);
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC8032_SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const RFC8032_PUBKEY: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    const RFC8032_EMPTY_SIGNATURE: &str = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";

    /// RFC 8032 section 7.1, TEST 1: the crate is used the way the RFC means.
    #[test]
    fn rfc8032_test_1() {
        let key = CryptosignKey::from_seed_hex(RFC8032_SEED).expect("seed");
        assert_eq!(key.public_key().to_hex(), RFC8032_PUBKEY);
        let signature = key.sign(b"");
        assert_eq!(hex::encode(signature), RFC8032_EMPTY_SIGNATURE);
        let public = PublicKey::from_hex(RFC8032_PUBKEY).expect("pubkey");
        assert!(public.verify(b"", &signature));
        assert!(!public.verify(b"x", &signature));
        let mut tampered = signature;
        tampered[10] ^= 1;
        assert!(!public.verify(b"", &tampered));
    }

    #[test]
    fn challenge_answer_is_signature_then_challenge() {
        let key = CryptosignKey::from_seed_hex(RFC8032_SEED).expect("seed");
        let challenge = [7u8; 32];
        let answer = key.sign_challenge(&challenge);
        assert_eq!(answer.len(), 192);
        assert_eq!(&answer[128..], hex::encode(challenge));
        let signature = decode_hex::<64>(&answer[..128]).expect("hex");
        assert!(key.public_key().verify(&challenge, &signature));
    }

    #[test]
    fn parsing_refuses_bad_input_and_debug_hides_the_seed() {
        assert!(matches!(
            PublicKey::from_hex("abcd"),
            Err(KeyError::NotHex(64))
        ));
        assert!(PublicKey::from_hex(&"zz".repeat(32)).is_err());
        assert!(CryptosignKey::from_seed_hex(&RFC8032_SEED[2..]).is_err());
        assert!(CryptosignKey::from_seed_hex(&format!(" {RFC8032_SEED}\n")).is_ok());
        let key = CryptosignKey::from_seed_hex(RFC8032_SEED).expect("seed");
        let printed = format!("{key:?}");
        assert!(printed.contains(RFC8032_PUBKEY), "{printed}");
        assert!(!printed.contains(RFC8032_SEED), "{printed}");
        assert_ne!(CryptosignKey::generate(), CryptosignKey::generate());
    }

    #[test]
    fn authorized_keys_text() {
        let text = format!(
            "# keys of alice\n\n{RFC8032_PUBKEY} alice@laptop\n  {}\n",
            CryptosignKey::generate().public_key()
        );
        let keys = parse_authorized_keys(&text).expect("parses");
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].to_hex(), RFC8032_PUBKEY);
        let (line, _) = parse_authorized_keys("# x\nnot-a-key\n").unwrap_err();
        assert_eq!(line, 2);
    }
}
