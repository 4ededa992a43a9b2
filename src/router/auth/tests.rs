//! Tests for the authentication state machine: spec vectors, full flows, config and secrets.

use std::time::Instant;

use super::*;
use crate::dict;

const CONFIG: &str = r#"
[anonymous]
role = "guest"
[ticket.principals.alice]
ticket = "secret-ticket"
role = "user"
[wampcra.users.bob]
secret = "bob-secret"
role = "user"
[wampcra.users.carol]
secret = "L3L1YUE8Txlw"
role = "admin"
salt = "salt123"
iterations = 100
keylen = 16
"#;

fn config() -> AuthConfig {
    let mut config: AuthConfig = toml::from_str(CONFIG).expect("test config parses");
    config.resolve_secrets().expect("literal secrets resolve");
    config
}

fn now() -> Now {
    Now {
        instant: Instant::now(),
        unix_ms: 1_403_455_901_643,
    }
}

fn session() -> Id {
    Id::new(3_251_278_072_152_162).expect("valid id")
}

fn hello(config: &AuthConfig, details: Dict) -> AuthStep {
    config.hello(&details, session(), &now())
}

fn hello_as(methods: &[&str], authid: &str) -> Dict {
    let methods: Vec<Value> = methods.iter().map(|m| Value::from(*m)).collect();
    dict! { "authmethods" => methods, "authid" => authid }
}

fn expect_challenge(step: AuthStep) -> (String, Dict, PendingAuth) {
    match step {
        AuthStep::Challenge {
            method,
            extra,
            pending,
        } => (method, extra, pending),
        other => panic!("expected a challenge, got {other:?}"),
    }
}

fn expect_abort(step: AuthStep) -> (&'static str, String) {
    match step {
        AuthStep::Abort { reason, message } => (reason, message),
        other => panic!("expected an abort, got {other:?}"),
    }
}

/// What autobahn's client does with a WAMP-CRA challenge.
fn client_signature(secret: &str, extra: &Dict) -> String {
    let challenge = extra["challenge"].as_str().expect("challenge is a string");
    let key = match extra.get("salt").and_then(Value::as_str) {
        Some(salt) => {
            let iterations = extra
                .get("iterations")
                .and_then(Value::as_u64)
                .unwrap_or(1000);
            let keylen = extra.get("keylen").and_then(Value::as_u64).unwrap_or(32);
            derive_key(secret, salt, iterations as u32, keylen as usize)
        }
        None => secret.to_owned(),
    };
    compute_signature(key.as_bytes(), challenge)
}

#[test]
fn spec_vectors() {
    assert_eq!(
        derive_key(
            "L3L1YUE8Txlw",
            "salt123",
            DEFAULT_ITERATIONS,
            DEFAULT_KEYLEN
        ),
        "qzcdsr9uu/L5hnss3kjNTRe490ETgA70ZBaB5rvnJ5Y="
    );
    assert_eq!(
        compute_signature(b"L3L1YUE8Txlw", "[1, 2, 3]"),
        "1njQtmmeYO41N5EWEzD2kAjjEKRZ5kPZt/TzpYXOzR0="
    );
}

#[test]
fn anonymous_welcomes_with_random_authid() {
    let Identity {
        authid,
        authrole,
        authmethod,
        authprovider,
        ..
    } = match hello(&config(), Dict::new()) {
        AuthStep::Welcome(identity) => identity,
        other => panic!("expected welcome, got {other:?}"),
    };
    assert_eq!(
        (
            authrole.as_str(),
            authmethod.as_str(),
            authprovider.as_str()
        ),
        ("guest", "anonymous", "static")
    );
    assert_eq!(authid.len(), 16);
    assert!(authid
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
    let AuthStep::Welcome(other) = hello(&AuthConfig::anonymous_default(), hello_as(&[], "x"))
    else {
        panic!("an empty authmethods list means anonymous");
    };
    assert_ne!(other.authid, authid);
    assert_eq!(other.authrole, "anonymous");
}

#[test]
fn ticket_flow() {
    let config = config();
    let (method, extra, pending) = expect_challenge(hello(&config, hello_as(&["ticket"], "alice")));
    assert_eq!((method.as_str(), extra), ("ticket", Dict::new()));
    let identity = pending
        .authenticate("secret-ticket", &Dict::new())
        .expect("good ticket");
    assert_eq!(identity, Identity::new("alice", "user", "ticket"));

    let (_, _, pending) = expect_challenge(hello(&config, hello_as(&["ticket"], "alice")));
    let failure = pending
        .authenticate("secret-ticket!", &Dict::new())
        .unwrap_err();
    assert_eq!(failure.reason, NOT_AUTHORIZED);

    // An unknown principal is challenged like a known one and fails the same way.
    let (method, extra, pending) =
        expect_challenge(hello(&config, hello_as(&["ticket"], "mallory")));
    assert_eq!((method.as_str(), extra), ("ticket", Dict::new()));
    let unknown = pending
        .authenticate("secret-ticket", &Dict::new())
        .unwrap_err();
    assert_eq!(unknown.reason, failure.reason);
    assert_eq!(unknown.message.replace("mallory", "alice"), failure.message);

    let (reason, _) = expect_abort(hello(
        &config,
        dict! { "authmethods" => vec![Value::from("ticket")] },
    ));
    assert_eq!(reason, NOT_AUTHORIZED);
}

#[test]
fn wampcra_unsalted_flow() {
    let config = config();
    let (method, extra, pending) = expect_challenge(hello(&config, hello_as(&["wampcra"], "bob")));
    assert_eq!(method, "wampcra");
    assert_eq!(extra.keys().collect::<Vec<_>>(), ["challenge"]);
    let challenge: serde_json::Value =
        serde_json::from_str(extra["challenge"].as_str().expect("string"))
            .expect("challenge is JSON");
    assert_eq!(challenge["authid"], "bob");
    assert_eq!(challenge["authrole"], "user");
    assert_eq!(challenge["authmethod"], "wampcra");
    assert_eq!(challenge["authprovider"], "static");
    assert_eq!(challenge["session"], 3_251_278_072_152_162u64);
    assert_eq!(challenge["timestamp"], "2014-06-22T16:51:41.643Z");
    assert_eq!(challenge["nonce"].as_str().map(str::len), Some(64));

    let signature = client_signature("bob-secret", &extra);
    let identity = pending
        .authenticate(&signature, &Dict::new())
        .expect("good signature");
    assert_eq!(identity, Identity::new("bob", "user", "wampcra"));

    let (_, extra, pending) = expect_challenge(hello(&config, hello_as(&["wampcra"], "bob")));
    let failure = pending
        .authenticate(&client_signature("wrong", &extra), &Dict::new())
        .unwrap_err();
    assert_eq!(failure.reason, NOT_AUTHORIZED);
}

#[test]
fn wampcra_salted_flow() {
    let config = config();
    let (_, extra, pending) = expect_challenge(hello(&config, hello_as(&["wampcra"], "carol")));
    assert_eq!(extra["salt"], Value::from("salt123"));
    assert_eq!(extra["iterations"], Value::UInt(100));
    assert_eq!(extra["keylen"], Value::UInt(16));
    let identity = pending.authenticate(&client_signature("L3L1YUE8Txlw", &extra), &Dict::new());
    assert_eq!(identity.expect("good signature").authrole, "admin");

    let (_, extra, pending) = expect_challenge(hello(&config, hello_as(&["wampcra"], "carol")));
    let mut unsalted = extra.clone();
    unsalted.remove("salt");
    let signature = client_signature("L3L1YUE8Txlw", &unsalted);
    assert_eq!(
        pending
            .authenticate(&signature, &Dict::new())
            .unwrap_err()
            .reason,
        NOT_AUTHORIZED
    );
}

#[test]
fn wampcra_salt_defaults() {
    let mut config: AuthConfig =
        toml::from_str("[wampcra.users.dave]\nsecret = \"s\"\nrole = \"r\"\nsalt = \"pepper\"\n")
            .expect("parses");
    config.resolve_secrets().expect("resolves");
    let (_, extra, pending) = expect_challenge(hello(&config, hello_as(&["wampcra"], "dave")));
    assert_eq!(extra["iterations"], Value::UInt(1000));
    assert_eq!(extra["keylen"], Value::UInt(32));
    assert!(pending
        .authenticate(&client_signature("s", &extra), &Dict::new())
        .is_ok());
}

#[test]
fn wampcra_unknown_principal_is_challenged_then_refused() {
    let config = config();
    let (method, extra, pending) =
        expect_challenge(hello(&config, hello_as(&["wampcra"], "mallory")));
    assert_eq!(method, "wampcra");
    let challenge: serde_json::Value =
        serde_json::from_str(extra["challenge"].as_str().expect("string")).expect("JSON");
    assert_eq!(challenge["authrole"], "user"); // the commonest configured role
    let failure = pending
        .authenticate(&client_signature("bob-secret", &extra), &Dict::new())
        .unwrap_err();
    assert_eq!(failure.reason, NOT_AUTHORIZED);
}

#[test]
fn method_negotiation() {
    let config = config();
    // The client's order wins; unknown and unconfigured methods are skipped.
    let step = hello(
        &config,
        hello_as(&["cryptosign", "wampcra", "ticket"], "bob"),
    );
    assert_eq!(expect_challenge(step).0, "wampcra");
    let step = hello(&config, hello_as(&["ticket", "anonymous"], "alice"));
    assert_eq!(expect_challenge(step).0, "ticket");
    let ticket_only = AuthConfig {
        anonymous: None,
        wampcra: None,
        ..config.clone()
    };
    assert_eq!(ticket_only.methods(), ["ticket"]);
    let (reason, message) = expect_abort(hello(
        &ticket_only,
        hello_as(&["wampcra", "anonymous"], "bob"),
    ));
    assert_eq!(reason, NO_AUTH_METHOD);
    assert!(message.contains("ticket"), "{message}");
    assert_eq!(
        expect_abort(hello(&ticket_only, Dict::new())).0,
        NO_AUTH_METHOD
    );
    assert_eq!(
        expect_abort(hello(&AuthConfig::default(), Dict::new())).0,
        NO_AUTH_METHOD
    );
    assert_eq!(config.methods(), ["anonymous", "ticket", "wampcra"]);
}

#[test]
fn malformed_hello_is_a_protocol_violation() {
    let config = config();
    for details in [
        dict! { "authmethods" => "ticket" },
        dict! { "authmethods" => vec![Value::UInt(1)] },
        dict! { "authmethods" => vec![Value::from("ticket")], "authid" => 7u64 },
    ] {
        assert_eq!(expect_abort(hello(&config, details)).0, PROTOCOL_VIOLATION);
    }
}

#[test]
fn secrets_from_env_and_file() {
    let path = std::env::temp_dir().join(format!("wampmesh-auth-test-{}", std::process::id()));
    std::fs::write(&path, "file-secret\n").expect("write temp file");
    std::env::set_var("WAMPMESH_AUTH_TEST_TICKET", "env-ticket");
    let text = format!(
        "[ticket.principals.alice]\nticket_env = \"WAMPMESH_AUTH_TEST_TICKET\"\nrole = \"user\"\n\
         [wampcra.users.bob]\nsecret_file = {:?}\nrole = \"user\"\n",
        path.display().to_string()
    );
    let mut config: AuthConfig = toml::from_str(&text).expect("parses");
    let resolved = config.resolve_secrets();
    std::fs::remove_file(&path).ok();
    resolved.expect("env and file resolve");
    config
        .resolve_secrets()
        .expect("resolving twice is harmless");

    let (_, _, pending) = expect_challenge(hello(&config, hello_as(&["ticket"], "alice")));
    assert!(pending.authenticate("env-ticket", &Dict::new()).is_ok());
    let (_, extra, pending) = expect_challenge(hello(&config, hello_as(&["wampcra"], "bob")));
    assert!(pending
        .authenticate(&client_signature("file-secret", &extra), &Dict::new())
        .is_ok());
}

#[test]
fn secret_source_errors_name_the_principal_not_the_secret() {
    let cases = [
        ("[ticket.principals.alice]\nrole = \"u\"\n", "alice"),
        (
            "[ticket.principals.alice]\nticket = \"hunter2\"\nticket_env = \"X\"\nrole = \"u\"\n",
            "ticket_env",
        ),
        (
            "[wampcra.users.bob]\nsecret_env = \"WAMPMESH_AUTH_TEST_UNSET\"\nrole = \"u\"\n",
            "WAMPMESH_AUTH_TEST_UNSET",
        ),
        (
            "[wampcra.users.bob]\nsecret_file = \"/nonexistent/wampmesh\"\nrole = \"u\"\n",
            "secret_file",
        ),
        (
            "[wampcra.users.bob]\nsecret = \"\"\nrole = \"u\"\n",
            "empty",
        ),
        (
            "[wampcra.users.bob]\nsecret = \"hunter2\"\nrole = \"u\"\niterations = 5\n",
            "salt",
        ),
        (
            "[wampcra.users.bob]\nsecret = \"hunter2\"\nrole = \"u\"\nsalt = \"s\"\nkeylen = 0\n",
            "keylen",
        ),
    ];
    for (text, mentions) in cases {
        let mut config: AuthConfig = toml::from_str(text).expect("parses");
        let error = config.resolve_secrets().unwrap_err().to_string();
        assert!(error.contains(mentions), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }
    assert!(toml::from_str::<AuthConfig>(
        "[ticket.principals.a]\nrole = \"u\"\npassword = \"x\"\n"
    )
    .is_err());
    assert!(toml::from_str::<AuthConfig>("[kerberos]\n").is_err());
}

#[test]
fn debug_output_hides_secrets() {
    let config = config();
    let printed = format!("{config:?}");
    assert!(
        !printed.contains("secret-ticket") && !printed.contains("bob-secret"),
        "{printed}"
    );
    assert!(printed.contains("***"));
    let step = hello(&config, hello_as(&["ticket"], "alice"));
    assert!(!format!("{step:?}").contains("secret-ticket"));
}
