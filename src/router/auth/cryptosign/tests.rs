//! WAMP-Cryptosign on the router side: key config, the CHALLENGE, and every way AUTHENTICATE
//! can be right or wrong, with fixed RFC 8032 keys.

use std::time::Instant;

use super::super::{AuthConfig, AuthStep, Identity, NOT_AUTHORIZED, PROTOCOL_VIOLATION};
use super::signature_matches;
use crate::cryptosign::{decode_hex, CryptosignKey, PublicKey};
use crate::dict;
use crate::router::Now;
use crate::wamp::{Dict, Id, Value};

/// RFC 8032 section 7.1 TEST 1 and TEST 2 keys: alice's and bob's.
const ALICE_SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const ALICE_PUBKEY: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
const BOB_SEED: &str = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb";
const BOB_PUBKEY: &str = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";

fn config() -> AuthConfig {
    let text = format!(
        "[cryptosign.principals.alice]\nauthorized_keys = [\"{ALICE_PUBKEY}\"]\nrole = \"user\"\n\
         [cryptosign.principals.bob]\nauthorized_keys = [\"{BOB_PUBKEY}\"]\nrole = \"admin\"\n"
    );
    let mut config: AuthConfig = toml::from_str(&text).expect("parses");
    config.resolve_secrets().expect("keys resolve");
    config
}

fn key(seed: &str) -> CryptosignKey {
    CryptosignKey::from_seed_hex(seed).expect("seed")
}

fn hello_with(authid: Option<&str>, authextra: Value) -> AuthStep {
    let mut details = dict! {
        "authmethods" => vec![Value::from("cryptosign")],
        "authextra" => authextra,
    };
    if let Some(authid) = authid {
        details.insert("authid".into(), authid.into());
    }
    let now = Now {
        instant: Instant::now(),
        unix_ms: 0,
    };
    config().hello(&details, Id::new(1).expect("id"), &now)
}

fn hello(authid: Option<&str>, pubkey: &str) -> AuthStep {
    hello_with(authid, Value::Dict(dict! { "pubkey" => pubkey }))
}

/// The challenge bytes and the pending authentication.
fn challenged(step: AuthStep) -> ([u8; 32], super::PendingAuth) {
    let AuthStep::Challenge {
        method,
        extra,
        pending,
    } = step
    else {
        panic!("expected a challenge, got {step:?}");
    };
    assert_eq!(method, "cryptosign");
    assert_eq!(extra.get("channel_binding"), Some(&Value::Null));
    let challenge = extra["challenge"].as_str().expect("challenge string");
    assert_eq!(challenge.len(), 64);
    (decode_hex::<32>(challenge).expect("hex"), pending)
}

fn refused(step: AuthStep) -> String {
    match step {
        AuthStep::Abort { reason, message } => {
            assert_eq!(reason, NOT_AUTHORIZED, "{message}");
            message
        }
        other => panic!("expected an abort, got {other:?}"),
    }
}

#[test]
fn good_signature_in_both_forms() {
    let (challenge, pending) = challenged(hello(None, ALICE_PUBKEY));
    let answer = key(ALICE_SEED).sign_challenge(&challenge);
    assert_eq!(answer.len(), 192);
    let identity = pending.authenticate(&answer, &Dict::new()).expect("good");
    assert_eq!(identity, Identity::new("alice", "user", "cryptosign"));
    assert_eq!(identity.authprovider, "static");

    // The bare 128-character signature, and the authid given in HELLO.
    let (challenge, pending) = challenged(hello(Some("bob"), BOB_PUBKEY));
    let bare = hex::encode(key(BOB_SEED).sign(&challenge));
    let identity = pending.authenticate(&bare, &Dict::new()).expect("good");
    assert_eq!(identity, Identity::new("bob", "admin", "cryptosign"));
}

#[test]
fn challenges_are_fresh() {
    let (first, _) = challenged(hello(None, ALICE_PUBKEY));
    let (second, _) = challenged(hello(None, ALICE_PUBKEY));
    assert_ne!(first, second);
}

#[test]
fn signature_by_another_key_is_refused() {
    let (challenge, pending) = challenged(hello(Some("alice"), ALICE_PUBKEY));
    let answer = key(BOB_SEED).sign_challenge(&challenge);
    let failure = pending.authenticate(&answer, &Dict::new()).unwrap_err();
    assert_eq!(failure.reason, NOT_AUTHORIZED);
    assert!(
        failure.message.contains("cryptosign"),
        "{}",
        failure.message
    );
}

#[test]
fn tampered_signature_is_refused() {
    for position in [0, 70, 127] {
        let (challenge, pending) = challenged(hello(None, ALICE_PUBKEY));
        let mut answer = key(ALICE_SEED).sign_challenge(&challenge).into_bytes();
        answer[position] = if answer[position] == b'0' { b'1' } else { b'0' };
        let answer = String::from_utf8(answer).expect("ascii");
        assert!(pending.authenticate(&answer, &Dict::new()).is_err());
    }
}

#[test]
fn wrong_appended_challenge_is_refused() {
    let (challenge, pending) = challenged(hello(None, ALICE_PUBKEY));
    let signature = hex::encode(key(ALICE_SEED).sign(&challenge));
    let mut other = challenge;
    other[31] ^= 0x80;
    let answer = format!("{signature}{}", hex::encode(other));
    assert!(pending.authenticate(&answer, &Dict::new()).is_err());
    // A valid signature of another message, with that message appended, is no better.
    let (challenge, pending) = challenged(hello(None, ALICE_PUBKEY));
    let mut replayed = challenge;
    replayed[0] ^= 1;
    let answer = key(ALICE_SEED).sign_challenge(&replayed);
    assert!(pending.authenticate(&answer, &Dict::new()).is_err());
}

#[test]
fn unknown_pubkey_is_challenged_then_refused_like_a_wrong_signature() {
    let stranger = CryptosignKey::from_seed(&[9u8; 32]);
    let pubkey = stranger.public_key().to_hex();
    let (challenge, pending) = challenged(hello(Some("mallory"), &pubkey));
    let unknown = pending
        .authenticate(&stranger.sign_challenge(&challenge), &Dict::new())
        .unwrap_err();
    let (challenge, pending) = challenged(hello(Some("alice"), ALICE_PUBKEY));
    let wrong = pending
        .authenticate(&key(BOB_SEED).sign_challenge(&challenge), &Dict::new())
        .unwrap_err();
    assert_eq!(unknown.reason, wrong.reason);
    assert_eq!(unknown.message.replace("mallory", "alice"), wrong.message);
}

#[test]
fn authid_must_name_the_keys_principal() {
    // alice's key, correctly signed, but claiming to be bob.
    let (challenge, pending) = challenged(hello(Some("bob"), ALICE_PUBKEY));
    let answer = key(ALICE_SEED).sign_challenge(&challenge);
    assert!(pending.authenticate(&answer, &Dict::new()).is_err());
    let (challenge, pending) = challenged(hello(Some("nobody"), ALICE_PUBKEY));
    let answer = key(ALICE_SEED).sign_challenge(&challenge);
    assert!(pending.authenticate(&answer, &Dict::new()).is_err());
}

#[test]
fn malformed_signatures_are_refused() {
    let (challenge, _) = challenged(hello(None, ALICE_PUBKEY));
    let good = key(ALICE_SEED).sign_challenge(&challenge);
    for bad in [
        String::new(),
        "zz".repeat(96),
        good[..191].to_owned(),
        format!("{good}00"),
        good[..160].to_owned(),
        format!("{}g", &good[..191]),
    ] {
        let (_, pending) = challenged(hello(None, ALICE_PUBKEY));
        assert!(
            pending.authenticate(&bad, &Dict::new()).is_err(),
            "accepted {bad:?}"
        );
    }
}

#[test]
fn malformed_hello_is_refused_before_any_challenge() {
    assert!(refused(hello(None, "abcd")).contains("pubkey"));
    assert!(refused(hello(None, &"zz".repeat(32))).contains("pubkey"));
    assert!(refused(hello_with(None, Value::Dict(Dict::new()))).contains("pubkey"));
    assert!(refused(hello_with(None, Value::Null)).contains("pubkey"));
    assert!(refused(hello_with(None, Value::Dict(dict! { "pubkey" => 5u64 }))).contains("pubkey"));
    match hello_with(None, Value::from("pubkey")) {
        AuthStep::Abort { reason, .. } => assert_eq!(reason, PROTOCOL_VIOLATION),
        other => panic!("expected an abort, got {other:?}"),
    }
}

#[test]
fn channel_binding_and_router_authentication_are_refused_clearly() {
    let extra = dict! { "pubkey" => ALICE_PUBKEY, "channel_binding" => "tls-unique" };
    let message = refused(hello_with(None, Value::Dict(extra)));
    assert!(message.contains("channel binding"), "{message}");
    assert!(message.contains("not supported"), "{message}");
    let extra = dict! { "pubkey" => ALICE_PUBKEY, "challenge" => "00".repeat(32) };
    let message = refused(hello_with(None, Value::Dict(extra)));
    assert!(message.contains("not supported"), "{message}");
    // An explicit null is no request.
    let extra = dict! { "pubkey" => ALICE_PUBKEY, "channel_binding" => Value::Null };
    challenged(hello_with(None, Value::Dict(extra)));
}

/// A signature made by libsodium (PyNaCl 1.6.2) with the RFC 8032 TEST 1 key over the
/// challenge 00 01 .. 1f: an independent implementation agrees with ours.
#[test]
fn known_answer_from_libsodium() {
    let challenge: [u8; 32] = std::array::from_fn(|i| i as u8);
    let libsodium = "00c1db988bb12fd7351a6054ae3fac90fab7e4fc56b1651c7181f5f55f896f66\
                     3933d3a90605d9058e9d0ac45950ee2d3c9c9b14857415587179fe0ccac35f09";
    assert_eq!(hex::encode(key(ALICE_SEED).sign(&challenge)), libsodium);
    let alice = PublicKey::from_hex(ALICE_PUBKEY).expect("pubkey");
    assert!(signature_matches(&challenge, &alice, libsodium));
    let with_challenge = format!("{libsodium}{}", hex::encode(challenge));
    assert!(signature_matches(&challenge, &alice, &with_challenge));
    let bob = PublicKey::from_hex(BOB_PUBKEY).expect("pubkey");
    assert!(!signature_matches(&challenge, &bob, libsodium));
}

#[test]
fn key_config_errors_name_the_principal() {
    let path = std::env::temp_dir().join(format!("wampmesh-cs-keys-{}", std::process::id()));
    std::fs::write(&path, format!("# alice\n{ALICE_PUBKEY} laptop\n")).expect("write");
    let file = path.display().to_string();
    let cases = [
        ("[cryptosign.principals.a]\nrole = \"u\"\n".to_owned(), "no keys"),
        (
            "[cryptosign.principals.a]\nauthorized_keys = [\"abc\"]\nrole = \"u\"\n".to_owned(),
            "authorized_keys[0]",
        ),
        (
            format!(
                "[cryptosign.principals.a]\nauthorized_keys = [\"{ALICE_PUBKEY}\"]\nrole = \"u\"\n\
                 [cryptosign.principals.b]\nauthorized_keys_file = {file:?}\nrole = \"u\"\n"
            ),
            "also authorized for principal 'a'",
        ),
        (
            "[cryptosign.principals.a]\nauthorized_keys_file = \"/nonexistent/keys\"\nrole = \"u\"\n"
                .to_owned(),
            "cannot read",
        ),
    ];
    for (text, mentions) in cases {
        let mut config: AuthConfig = toml::from_str(&text).expect("parses");
        let error = config.resolve_secrets().unwrap_err().to_string();
        assert!(error.contains(mentions), "{error}");
        assert!(error.contains("principal '"), "{error}");
    }
    // Inline and file keys add up; resolving twice is harmless.
    let text = format!(
        "[cryptosign.principals.a]\nauthorized_keys = [\"{BOB_PUBKEY}\"]\n\
         authorized_keys_file = {file:?}\nrole = \"u\"\n"
    );
    let mut config: AuthConfig = toml::from_str(&text).expect("parses");
    let resolved = config.resolve_secrets();
    config.resolve_secrets().expect("again");
    std::fs::remove_file(&path).ok();
    resolved.expect("resolves");
    let keys = &config.cryptosign.as_ref().expect("cryptosign").principals["a"].keys;
    assert_eq!(keys.len(), 2);
    assert_eq!(config.methods(), ["cryptosign"]);
    assert!(toml::from_str::<AuthConfig>(
        "[cryptosign.principals.a]\nrole = \"u\"\nprivkey = \"x\"\n"
    )
    .is_err());
}
