//! Joining: handshake, HELLO contents, ticket, WAMP-CRA and cryptosign challenges, refusals.

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{connect, ints, welcome_details, FakeRouter};
use crate::client::{compute_signature, ClientAuth, ClientConfig, ClientError, Session};
use crate::dict;
use crate::rawsocket::{FrameKind, RawSocketError};
use crate::wamp::{Dict, Message, Serializer, Value};

fn features(details: &Dict, role: &str) -> Vec<String> {
    let roles = details["roles"].as_dict().unwrap();
    let features = roles[role].as_dict().unwrap()["features"]
        .as_dict()
        .unwrap();
    assert!(features.values().all(|v| *v == Value::Bool(true)));
    features.keys().cloned().collect()
}

#[tokio::test]
async fn hello_announces_roles_and_features() {
    let (client, server) = tokio::io::duplex(1 << 16);
    let config = ClientConfig::new("realm1")
        .with_authrole("frontend")
        .with_hello_extra("_link", "node1");
    let router = async {
        let mut router = FakeRouter::accept(server).await;
        let hello = router.welcome(42).await;
        (router, hello)
    };
    let (session, (router, hello)) = tokio::join!(Session::join(client, config), router);
    let session = session.unwrap();
    assert_eq!(router.handshake, [0x7F, 0xF1, 0, 0]);
    assert_eq!(session.id().get(), 42);
    assert_eq!(session.details()["authrole"], Value::from("anonymous"));
    for feature in [
        "publisher_exclusion",
        "publisher_identification",
        "subscriber_blackwhite_listing",
    ] {
        assert!(features(&hello, "publisher").contains(&feature.to_owned()));
    }
    assert!(features(&hello, "subscriber").contains(&"pattern_based_subscription".to_owned()));
    for feature in [
        "progressive_call_results",
        "call_canceling",
        "caller_identification",
    ] {
        assert!(features(&hello, "caller").contains(&feature.to_owned()));
        assert!(features(&hello, "callee").contains(&feature.to_owned()));
    }
    for feature in ["pattern_based_registration", "shared_registration"] {
        assert!(features(&hello, "callee").contains(&feature.to_owned()));
    }
    assert_eq!(hello["authmethods"], Value::List(vec!["anonymous".into()]));
    assert_eq!(hello["authrole"], Value::from("frontend"));
    assert_eq!(hello["_link"], Value::from("node1"));
    assert!(hello["agent"].as_str().unwrap().starts_with("wampmesh"));
}

/// Joins with `auth`, letting `challenge` play the router between HELLO and WELCOME.
async fn join_with<F, Fut>(auth: ClientAuth, challenge: F) -> Result<Session, ClientError>
where
    F: FnOnce(FakeRouter, Dict) -> Fut,
    Fut: std::future::Future<Output = FakeRouter>,
{
    let (client, server) = tokio::io::duplex(1 << 16);
    let router = async {
        let mut router = FakeRouter::accept(server).await;
        let Message::Hello { details, .. } = router.recv().await else {
            panic!("expected HELLO")
        };
        challenge(router, details).await
    };
    let config = ClientConfig::new("realm1").with_auth(auth);
    let (session, _router) = tokio::join!(Session::join(client, config), router);
    session
}

async fn expect_authenticate(router: &mut FakeRouter) -> String {
    match router.recv().await {
        Message::Authenticate { signature, .. } => signature,
        other => panic!("expected AUTHENTICATE, got {other:?}"),
    }
}

#[tokio::test]
async fn ticket_challenge_is_answered_with_the_ticket() {
    let auth = ClientAuth::Ticket {
        authid: "joe".into(),
        ticket: "secret!!!".into(),
    };
    let session = join_with(auth, |mut router, hello| async move {
        assert_eq!(hello["authmethods"], Value::List(vec!["ticket".into()]));
        assert_eq!(hello["authid"], Value::from("joe"));
        router
            .send(Message::Challenge {
                method: "ticket".into(),
                extra: Dict::new(),
            })
            .await;
        assert_eq!(expect_authenticate(&mut router).await, "secret!!!");
        router
            .send(Message::Welcome {
                session: super::id(7),
                details: welcome_details(),
            })
            .await;
        router
    })
    .await
    .unwrap();
    assert_eq!(session.id().get(), 7);
}

#[tokio::test]
async fn cryptosign_hello_carries_the_pubkey_and_the_challenge_is_signed() {
    let key = crate::cryptosign::CryptosignKey::from_seed(&[3u8; 32]);
    let pubkey = key.public_key();
    for authid in [None, Some("client01")] {
        let auth = ClientAuth::Cryptosign {
            authid: authid.map(str::to_owned),
            key: key.clone(),
        };
        let session = join_with(auth, |mut router, hello| async move {
            assert_eq!(hello["authmethods"], Value::List(vec!["cryptosign".into()]));
            assert_eq!(hello.get("authid").and_then(Value::as_str), authid);
            let extra = hello["authextra"].as_dict().expect("authextra");
            assert_eq!(extra["pubkey"], Value::from(pubkey.to_hex()));
            let challenge = [0x5au8; 32];
            let extra =
                dict! { "challenge" => hex::encode(challenge), "channel_binding" => Value::Null };
            let method = "cryptosign".to_owned();
            router.send(Message::Challenge { method, extra }).await;
            let signature = expect_authenticate(&mut router).await;
            assert_eq!(signature.len(), 192);
            assert_eq!(&signature[128..], hex::encode(challenge));
            let raw = crate::cryptosign::decode_hex::<64>(&signature[..128]).expect("hex");
            assert!(pubkey.verify(&challenge, &raw));
            let session = super::id(7);
            let details = welcome_details();
            router.send(Message::Welcome { session, details }).await;
            router
        })
        .await;
        assert!(session.is_ok(), "authid = {authid:?}");
    }
}

#[tokio::test]
async fn wampcra_challenge_uses_salted_key_and_unsalted_secret() {
    let challenge = r#"{"authid":"peter","nonce":"x","session":7}"#;
    for salted in [true, false] {
        let auth = ClientAuth::WampCra {
            authid: "peter".into(),
            secret: "L3L1YUE8Txlw".into(),
        };
        let session = join_with(auth, |mut router, hello| async move {
            assert_eq!(hello["authmethods"], Value::List(vec!["wampcra".into()]));
            let mut extra = dict! { "challenge" => challenge };
            let key = if salted {
                extra.insert("salt".into(), "salt123".into());
                extra.insert("iterations".into(), 1000u64.into());
                extra.insert("keylen".into(), 32u64.into());
                "qzcdsr9uu/L5hnss3kjNTRe490ETgA70ZBaB5rvnJ5Y="
            } else {
                "L3L1YUE8Txlw"
            };
            let method = "wampcra".to_owned();
            router.send(Message::Challenge { method, extra }).await;
            let expected = compute_signature(key.as_bytes(), challenge);
            assert_eq!(expect_authenticate(&mut router).await, expected);
            let session = super::id(7);
            let details = welcome_details();
            router.send(Message::Welcome { session, details }).await;
            router
        })
        .await;
        assert!(session.is_ok(), "salted = {salted}");
    }
}

#[tokio::test]
async fn abort_during_join_is_an_aborted_error() {
    let error = join_with(ClientAuth::Anonymous, |mut router, _| async move {
        let details = dict! { "message" => "no such realm here" };
        let reason = "wamp.error.no_such_realm".to_owned();
        router.send(Message::Abort { details, reason }).await;
        router
    })
    .await
    .unwrap_err();
    match error {
        ClientError::Aborted { reason, message } => {
            assert_eq!(reason, "wamp.error.no_such_realm");
            assert_eq!(message.as_deref(), Some("no such realm here"));
        }
        other => panic!("expected Aborted, got {other:?}"),
    }
}

#[tokio::test]
async fn challenge_for_another_method_is_refused_with_abort() {
    let error = join_with(ClientAuth::Anonymous, |mut router, _| async move {
        let method = "ticket".to_owned();
        router
            .send(Message::Challenge {
                method,
                extra: Dict::new(),
            })
            .await;
        match router.recv().await {
            Message::Abort { reason, .. } => assert_eq!(reason, "wamp.error.authentication_failed"),
            other => panic!("expected ABORT, got {other:?}"),
        }
        router
    })
    .await
    .unwrap_err();
    assert!(matches!(error, ClientError::Protocol(_)), "{error:?}");
}

#[tokio::test]
async fn refused_handshake_is_a_handshake_error() {
    let (client, mut server) = tokio::io::duplex(1024);
    let router = async move {
        let mut request = [0u8; 4];
        server.read_exact(&mut request).await.unwrap();
        server.write_all(&[0x7F, 0x10, 0, 0]).await.unwrap();
        server
    };
    let config = ClientConfig::new("realm1").with_serializer(Serializer::Cbor);
    let (session, _server) = tokio::join!(Session::join(client, config), router);
    assert!(matches!(
        session.unwrap_err(),
        ClientError::Handshake(RawSocketError::Refused(1))
    ));
}

#[tokio::test]
async fn ping_during_join_is_answered() {
    let session = join_with(ClientAuth::Anonymous, |mut router, _| async move {
        router
            .send_frame(FrameKind::Ping, Bytes::from_static(b"join"))
            .await;
        let pong = router.frame().await;
        assert_eq!(
            (pong.kind, &pong.payload[..]),
            (FrameKind::Pong, &b"join"[..])
        );
        let session = super::id(9);
        let details = welcome_details();
        router.send(Message::Welcome { session, details }).await;
        router
    })
    .await;
    assert!(session.is_ok());
}

#[tokio::test]
async fn every_serializer_joins_and_calls() {
    for serializer in Serializer::ALL {
        let config = ClientConfig::new("realm1").with_serializer(serializer);
        let (session, mut router) = connect(config).await;
        assert_eq!(router.handshake[1] & 0x0F, serializer.code());
        let call = tokio::spawn({
            let session = session.clone();
            async move { session.call("com.add", ints(&[1, 2]), Dict::new()).await }
        });
        let Message::Call {
            request, payload, ..
        } = router.recv().await
        else {
            panic!("expected CALL")
        };
        assert_eq!(payload, ints(&[1, 2]));
        let details = Dict::new();
        let payload = ints(&[3]);
        router
            .send(Message::Result {
                request,
                details,
                payload,
            })
            .await;
        assert_eq!(
            call.await.unwrap().unwrap().payload,
            ints(&[3]),
            "{serializer:?}"
        );
    }
}
