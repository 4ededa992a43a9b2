//! Authentication (ticket, WAMP-CRA unsalted and salted, WAMP-Cryptosign over TCP and QUIC) and
//! authorization (per-role URI permissions with exact, prefix and wildcard matching) end to end
//! with the Rust client.

use std::future::Future;
use std::time::Duration;

use tokio::time::timeout;

use wampmesh::client::{ClientAuth, ClientConfig, ClientError, Session};
use wampmesh::config::Config;
use wampmesh::cryptosign::CryptosignKey;
use wampmesh::dict;
use wampmesh::node::Node;
use wampmesh::transport::quic::{QuicConnection, QuicConnector, QuicSettings};
use wampmesh::transport::tls::{self, ServerTrust};
use wampmesh::wamp::{Dict, Payload, Serializer, Value};

/// Every wait in this file is bounded by this, so a hang fails fast.
const WAIT: Duration = Duration::from_secs(5);

const NOT_AUTHORIZED: &str = "wamp.error.not_authorized";

/// Listener 0: ticket + WAMP-CRA. Listener 1: ticket only. Listener 2: anonymous, role
/// `guest`. Roles: `user` (everything), `reader` (subscribe and call only), `writer` (publish
/// only), `scoped` (per-URI permissions).
const CONFIG: &str = r#"
[[listen]]
transport = "tcp"
address = "127.0.0.1:0"
[listen.auth.ticket.principals.alice]
ticket = "secret-ticket"
role = "user"
[listen.auth.ticket.principals.rita]
ticket = "reader-ticket"
role = "reader"
[listen.auth.ticket.principals.walt]
ticket = "writer-ticket"
role = "writer"
[listen.auth.ticket.principals.sam]
ticket = "scoped-ticket"
role = "scoped"
[listen.auth.wampcra.users.bob]
secret = "bob-secret"
role = "user"
[listen.auth.wampcra.users.carol]
secret = "carol-secret"
role = "reader"
salt = "carol-salt"
iterations = 100
keylen = 32

[[listen]]
transport = "tcp"
address = "127.0.0.1:0"
serializers = ["msgpack", "cbor"]
[listen.auth.ticket.principals.alice]
ticket = "secret-ticket"
role = "user"

[[listen]]
transport = "tcp"
address = "127.0.0.1:0"
[listen.auth.anonymous]
role = "guest"

[[realm]]
name = "realm1"

[[realm.role]]
name = "user"
permissions = [{ uri = "", match = "prefix", call = true, register = true, publish = true, subscribe = true }]

[[realm.role]]
name = "reader"
permissions = [{ uri = "", match = "prefix", call = true, subscribe = true }]

[[realm.role]]
name = "writer"
permissions = [{ uri = "", match = "prefix", publish = true }]

[[realm.role]]
name = "guest"
permissions = [{ uri = "com.public.", match = "prefix", subscribe = true }]

[[realm.role]]
name = "scoped"
permissions = [
    { uri = "com.exact.topic", match = "exact", call = true, register = true, publish = true, subscribe = true },
    { uri = "com.prefix.", match = "prefix", call = true, register = true, publish = true, subscribe = true },
    { uri = "com.prefix.secret", match = "exact" },
    { uri = "com.prefix.ro.", match = "prefix", subscribe = true, call = true },
    { uri = "com..wild", match = "wildcard", call = true, register = true, publish = true, subscribe = true },
]
"#;

/// The node and the address of each listener, in config order.
async fn start() -> (Node, Vec<String>) {
    let config = Config::from_toml_str(CONFIG).unwrap_or_else(|e| panic!("test config: {e}"));
    let node = Node::start(config).await.expect("node starts");
    let addrs = node
        .listeners()
        .iter()
        .filter(|l| l.transport == "tcp")
        .map(|l| l.local_addr.clone())
        .collect::<Vec<_>>();
    assert_eq!(addrs.len(), 3, "three tcp listeners");
    (node, addrs)
}

async fn stop(node: Node) {
    timeout(
        Duration::from_secs(10),
        node.shutdown(Duration::from_secs(2)),
    )
    .await
    .expect("node shuts down");
}

async fn within<F: Future>(what: &str, future: F) -> F::Output {
    timeout(WAIT, future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

fn ticket(authid: &str, ticket: &str) -> ClientAuth {
    ClientAuth::Ticket {
        authid: authid.into(),
        ticket: ticket.into(),
    }
}

fn wampcra(authid: &str, secret: &str) -> ClientAuth {
    ClientAuth::WampCra {
        authid: authid.into(),
        secret: secret.into(),
    }
}

async fn try_join(addr: &str, realm: &str, auth: ClientAuth) -> Result<Session, ClientError> {
    let config = ClientConfig::new(realm).with_auth(auth);
    within("join", Session::connect_tcp(addr, config)).await
}

async fn join(addr: &str, auth: ClientAuth) -> Session {
    try_join(addr, "realm1", auth).await.expect("join")
}

/// The join fails with ABORT `reason`.
async fn refused(addr: &str, realm: &str, auth: ClientAuth, reason: &str) {
    match try_join(addr, realm, auth).await {
        Err(ClientError::Aborted { reason: got, .. }) => assert_eq!(got, reason),
        Err(other) => panic!("expected ABORT {reason}, got error {other}"),
        Ok(session) => panic!("expected ABORT {reason}, joined as {:?}", session.details()),
    }
}

fn detail(session: &Session, key: &str) -> Option<String> {
    session
        .details()
        .get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn ack() -> Dict {
    dict! { "acknowledge" => true }
}

/// Outcome of one action: Ok, or the error URI.
type Outcome = Result<(), String>;

fn outcome<T>(result: Result<T, ClientError>) -> Outcome {
    result.map(|_| ()).map_err(|e| {
        e.uri()
            .map_or_else(|| format!("not a WAMP error: {e}"), str::to_owned)
    })
}

async fn try_publish(session: &Session, topic: &str) -> Outcome {
    outcome(within("publish", session.publish(topic, Payload::default(), ack())).await)
}

async fn try_subscribe(session: &Session, topic: &str, policy: &str) -> Outcome {
    outcome(
        within(
            "subscribe",
            session.subscribe(topic, dict! { "match" => policy }),
        )
        .await,
    )
}

async fn try_register(session: &Session, procedure: &str) -> Outcome {
    outcome(within("register", session.register(procedure, Dict::new())).await)
}

/// Calls `procedure`; with nobody registered an authorized call gets `no_such_procedure`.
async fn try_call(session: &Session, procedure: &str) -> Outcome {
    outcome(
        within(
            "call",
            session.call(procedure, Payload::default(), Dict::new()),
        )
        .await,
    )
}

fn denied() -> Outcome {
    Err(NOT_AUTHORIZED.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticket_authentication() {
    let (node, addrs) = start().await;
    let alice = join(&addrs[0], ticket("alice", "secret-ticket")).await;
    assert_eq!(detail(&alice, "authid").as_deref(), Some("alice"));
    assert_eq!(detail(&alice, "authrole").as_deref(), Some("user"));
    assert_eq!(detail(&alice, "authmethod").as_deref(), Some("ticket"));
    refused(
        &addrs[0],
        "realm1",
        ticket("alice", "wrong-ticket"),
        NOT_AUTHORIZED,
    )
    .await;
    refused(&addrs[0], "realm1", ticket("alice", ""), NOT_AUTHORIZED).await;
    // Another principal's ticket is no good either.
    refused(
        &addrs[0],
        "realm1",
        ticket("alice", "reader-ticket"),
        NOT_AUTHORIZED,
    )
    .await;
    refused(
        &addrs[0],
        "realm1",
        ticket("mallory", "secret-ticket"),
        NOT_AUTHORIZED,
    )
    .await;
    stop(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wampcra_unsalted_and_salted() {
    let (node, addrs) = start().await;
    for serializer in Serializer::ALL {
        let config = |auth| {
            ClientConfig::new("realm1")
                .with_auth(auth)
                .with_serializer(serializer)
        };
        let bob = within(
            "join",
            Session::connect_tcp(&addrs[0], config(wampcra("bob", "bob-secret"))),
        )
        .await
        .expect("bob joins");
        assert_eq!(detail(&bob, "authid").as_deref(), Some("bob"));
        assert_eq!(detail(&bob, "authrole").as_deref(), Some("user"));
        assert_eq!(detail(&bob, "authmethod").as_deref(), Some("wampcra"));
        let carol = within(
            "join",
            Session::connect_tcp(&addrs[0], config(wampcra("carol", "carol-secret"))),
        )
        .await
        .expect("carol joins (salted)");
        assert_eq!(detail(&carol, "authid").as_deref(), Some("carol"));
        assert_eq!(detail(&carol, "authrole").as_deref(), Some("reader"));
    }
    refused(&addrs[0], "realm1", wampcra("bob", "wrong"), NOT_AUTHORIZED).await;
    refused(
        &addrs[0],
        "realm1",
        wampcra("carol", "wrong"),
        NOT_AUTHORIZED,
    )
    .await;
    // The salted user's unsalted secret used as if there were no salt fails too (the client
    // derives the key from whatever salt the challenge carries, so a wrong secret is the test).
    refused(
        &addrs[0],
        "realm1",
        wampcra("carol", "bob-secret"),
        NOT_AUTHORIZED,
    )
    .await;
    refused(
        &addrs[0],
        "realm1",
        wampcra("nobody", "bob-secret"),
        NOT_AUTHORIZED,
    )
    .await;
    stop(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn methods_the_listener_does_not_offer_are_refused() {
    let (node, addrs) = start().await;
    refused(
        &addrs[0],
        "realm1",
        ClientAuth::Anonymous,
        "wamp.error.no_auth_method",
    )
    .await;
    // Listener 1 has only ticket (and only msgpack/cbor).
    let config = |auth| {
        ClientConfig::new("realm1")
            .with_auth(auth)
            .with_serializer(Serializer::MsgPack)
    };
    for auth in [ClientAuth::Anonymous, wampcra("bob", "bob-secret")] {
        match within("join", Session::connect_tcp(&addrs[1], config(auth))).await {
            Err(ClientError::Aborted { reason, .. }) => {
                assert_eq!(reason, "wamp.error.no_auth_method")
            }
            other => panic!("expected ABORT no_auth_method, got {other:?}"),
        }
    }
    let alice = within(
        "join",
        Session::connect_tcp(&addrs[1], config(ticket("alice", "secret-ticket"))),
    )
    .await
    .expect("ticket works there");
    assert_eq!(detail(&alice, "authrole").as_deref(), Some("user"));
    stop(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_realm_is_refused_with_no_such_realm() {
    let (node, addrs) = start().await;
    refused(
        &addrs[0],
        "realm2",
        ticket("alice", "secret-ticket"),
        "wamp.error.no_such_realm",
    )
    .await;
    refused(
        &addrs[2],
        "com.nope",
        ClientAuth::Anonymous,
        "wamp.error.no_such_realm",
    )
    .await;
    stop(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_without_a_permission_get_not_authorized() {
    let (node, addrs) = start().await;
    let alice = join(&addrs[0], ticket("alice", "secret-ticket")).await;
    let reader = join(&addrs[0], ticket("rita", "reader-ticket")).await;
    let writer = join(&addrs[0], ticket("walt", "writer-ticket")).await;
    let guest = join(&addrs[2], ClientAuth::Anonymous).await;
    assert_eq!(detail(&guest, "authrole").as_deref(), Some("guest"));

    // user: everything.
    assert_eq!(try_publish(&alice, "com.t").await, Ok(()));
    assert_eq!(try_subscribe(&alice, "com.t", "exact").await, Ok(()));
    assert_eq!(try_register(&alice, "com.alice.proc").await, Ok(()));
    assert_eq!(
        try_call(&alice, "com.nobody").await,
        Err("wamp.error.no_such_procedure".into())
    );

    // reader: subscribe and call only.
    assert_eq!(try_publish(&reader, "com.t").await, denied());
    assert_eq!(try_register(&reader, "com.reader.proc").await, denied());
    assert_eq!(try_subscribe(&reader, "com.t", "exact").await, Ok(()));
    assert_eq!(
        try_call(&reader, "com.nobody").await,
        Err("wamp.error.no_such_procedure".into())
    );

    // writer: publish only.
    assert_eq!(try_publish(&writer, "com.t").await, Ok(()));
    assert_eq!(try_subscribe(&writer, "com.t", "exact").await, denied());
    assert_eq!(try_subscribe(&writer, "com.", "prefix").await, denied());
    assert_eq!(try_register(&writer, "com.writer.proc").await, denied());
    assert_eq!(try_call(&writer, "com.alice.proc").await, denied());
    assert_eq!(
        try_call(&writer, "wamp.session.count").await,
        denied(),
        "meta procedures too"
    );

    // guest (anonymous): subscribe under com.public. only.
    assert_eq!(
        try_subscribe(&guest, "com.public.news", "exact").await,
        Ok(())
    );
    assert_eq!(try_subscribe(&guest, "com.public.", "prefix").await, Ok(()));
    assert_eq!(
        try_subscribe(&guest, "com.private", "exact").await,
        denied()
    );
    assert_eq!(
        try_subscribe(&guest, "com.", "prefix").await,
        denied(),
        "wider than granted"
    );
    assert_eq!(try_publish(&guest, "com.public.news").await, denied());
    stop(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthorized_publications_are_not_delivered() {
    let (node, addrs) = start().await;
    let alice = join(&addrs[0], ticket("alice", "secret-ticket")).await;
    let reader = join(&addrs[0], ticket("rita", "reader-ticket")).await;
    let mut subscription = within("subscribe", alice.subscribe("com.t", Dict::new()))
        .await
        .expect("subscribe");
    // Without acknowledge the refusal is silent; the publication must not go out.
    within(
        "publish",
        reader.publish("com.t", Payload::args(vec![1u64.into()]), Dict::new()),
    )
    .await
    .expect("queued");
    // A round trip on the reader's session orders its publication before alice's.
    within(
        "sync",
        reader.call("wamp.session.count", Payload::default(), Dict::new()),
    )
    .await
    .expect("reader may call");
    let options = dict! { "acknowledge" => true, "exclude_me" => false };
    within(
        "publish",
        alice.publish("com.t", Payload::args(vec![2u64.into()]), options),
    )
    .await
    .expect("published");
    let event = within("event", subscription.next()).await.expect("open");
    assert_eq!(event.payload.args, Some(vec![Value::UInt(2)]));
    stop(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissions_match_exact_prefix_and_wildcard() {
    let (node, addrs) = start().await;
    let sam = join(&addrs[0], ticket("sam", "scoped-ticket")).await;
    let topics: [(&str, Outcome); 11] = [
        // exact
        ("com.exact.topic", Ok(())),
        ("com.exact.topic.sub", denied()),
        ("com.exact", denied()),
        // prefix
        ("com.prefix.a", Ok(())),
        ("com.prefix.a.b.c", Ok(())),
        ("com.prefixed", denied()),
        // an exact grant of nothing beats the prefix grant; a longer prefix beats a shorter one
        ("com.prefix.secret", denied()),
        ("com.prefix.ro.x", denied()),
        // wildcard
        ("com.x.wild", Ok(())),
        ("com.x.y.wild", denied()),
        ("org.x.wild", denied()),
    ];
    for (uri, expected) in topics {
        assert_eq!(try_publish(&sam, uri).await, expected, "publish {uri}");
        assert_eq!(try_register(&sam, uri).await, expected, "register {uri}");
        let subscribe = if uri == "com.prefix.ro.x" {
            Ok(())
        } else {
            expected.clone()
        };
        assert_eq!(
            try_subscribe(&sam, uri, "exact").await,
            subscribe,
            "subscribe {uri}"
        );
        let call = match (&expected, uri) {
            // Registered just above by sam itself: the call reaches it, and the client
            // answers the invocation nobody reads with an error once the registration drops.
            (Ok(()), _) => continue,
            (_, "com.prefix.ro.x") => Err("wamp.error.no_such_procedure".to_owned()),
            _ => expected.clone(),
        };
        assert_eq!(try_call(&sam, uri).await, call, "call {uri}");
    }
    // Pattern subscriptions are checked as patterns.
    assert_eq!(try_subscribe(&sam, "com.prefix.", "prefix").await, Ok(()));
    assert_eq!(try_subscribe(&sam, "com.prefix.a.", "prefix").await, Ok(()));
    assert_eq!(try_subscribe(&sam, "com.", "prefix").await, denied());
    assert_eq!(try_subscribe(&sam, "com..wild", "wildcard").await, Ok(()));
    stop(node).await;
}

/// Cryptosign on a TCP and a QUIC listener: `carla` (role user) with an inline key, `dave`
/// (role reader) with a key from an authorized-keys file.
fn cryptosign_config(carla: &CryptosignKey, dave_keys_file: &std::path::Path) -> Config {
    let principals = format!(
        "[listen.auth.cryptosign.principals.carla]\nauthorized_keys = [\"{}\"]\nrole = \"user\"\n\
         [listen.auth.cryptosign.principals.dave]\nauthorized_keys_file = {:?}\nrole = \"reader\"\n",
        carla.public_key(),
        dave_keys_file.display().to_string()
    );
    let text = format!(
        "[[listen]]\ntransport = \"tcp\"\naddress = \"127.0.0.1:0\"\n{principals}\n\
         [[listen]]\ntransport = \"quic\"\naddress = \"127.0.0.1:0\"\n{principals}\n\
         [[realm]]\nname = \"realm1\"\n\
         [[realm.role]]\nname = \"user\"\npermissions = [{{ uri = \"\", match = \"prefix\", call = true, register = true, publish = true, subscribe = true }}]\n\
         [[realm.role]]\nname = \"reader\"\npermissions = [{{ uri = \"\", match = \"prefix\", call = true, subscribe = true }}]\n"
    );
    Config::from_toml_str(&text).unwrap_or_else(|e| panic!("test config: {e}\n{text}"))
}

fn cryptosign(authid: Option<&str>, key: &CryptosignKey) -> ClientAuth {
    ClientAuth::Cryptosign {
        authid: authid.map(str::to_owned),
        key: key.clone(),
    }
}

/// A node with the cryptosign listeners; carla's and dave's keys; the QUIC connection to it.
struct CryptosignNode {
    node: Node,
    tcp: String,
    quic: QuicConnection,
    carla: CryptosignKey,
    dave: CryptosignKey,
}

async fn start_cryptosign() -> CryptosignNode {
    let (carla, dave) = (CryptosignKey::generate(), CryptosignKey::generate());
    let keys_file = std::env::temp_dir().join(format!(
        "wampmesh-router-auth-keys-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::write(
        &keys_file,
        format!("# dave's keys\n{} dave@laptop\n", dave.public_key()),
    )
    .expect("write keys file");
    let started = Node::start(cryptosign_config(&carla, &keys_file)).await;
    std::fs::remove_file(&keys_file).ok();
    let node = started.expect("node starts");
    let tcp = node.local_addr("tcp").expect("tcp").to_owned();
    let quic_addr = node.local_addr("quic").expect("quic").to_owned();
    let trust = ServerTrust::Fingerprint(node.tls().identity.fingerprint());
    let tls = tls::client_config(&trust, None, &[tls::ALPN_QUIC]).expect("client TLS");
    let connector = QuicConnector::new(tls, &QuicSettings::default()).expect("endpoint");
    let quic = within("QUIC connect", connector.connect(&quic_addr, "localhost"))
        .await
        .expect("QUIC connect");
    CryptosignNode {
        node,
        tcp,
        quic,
        carla,
        dave,
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

async fn try_join_quic(quic: &QuicConnection, auth: ClientAuth) -> Result<Session, ClientError> {
    let stream = within("stream", quic.open_stream())
        .await
        .expect("stream opened");
    let config = ClientConfig::new("realm1").with_auth(auth);
    within("join", Session::join(stream, config)).await
}

fn expect_not_authorized(result: Result<Session, ClientError>, what: &str) {
    match result {
        Err(ClientError::Aborted { reason, .. }) => assert_eq!(reason, NOT_AUTHORIZED, "{what}"),
        Err(other) => panic!("{what}: expected ABORT {NOT_AUTHORIZED}, got error {other}"),
        Ok(session) => panic!("{what}: expected ABORT, joined as {:?}", session.details()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cryptosign_over_tcp_and_quic() {
    let CryptosignNode {
        node,
        tcp,
        quic,
        carla,
        dave,
    } = start_cryptosign().await;
    // No authid in HELLO: the router names the key's principal.
    let over_tcp = join(&tcp, cryptosign(None, &carla)).await;
    let over_quic = try_join_quic(&quic, cryptosign(None, &carla))
        .await
        .expect("carla joins over QUIC");
    for session in [&over_tcp, &over_quic] {
        assert_eq!(detail(session, "authid").as_deref(), Some("carla"));
        assert_eq!(detail(session, "authrole").as_deref(), Some("user"));
        assert_eq!(detail(session, "authmethod").as_deref(), Some("cryptosign"));
        assert_eq!(detail(session, "authprovider").as_deref(), Some("static"));
    }
    assert_eq!(try_publish(&over_quic, "com.example.x").await, Ok(()));
    // dave's key comes from the authorized-keys file; his role may not publish.
    let dave_tcp = join(&tcp, cryptosign(Some("dave"), &dave)).await;
    let dave_quic = try_join_quic(&quic, cryptosign(Some("dave"), &dave))
        .await
        .expect("dave joins over QUIC");
    for session in [&dave_tcp, &dave_quic] {
        assert_eq!(detail(session, "authid").as_deref(), Some("dave"));
        assert_eq!(detail(session, "authrole").as_deref(), Some("reader"));
    }
    assert_eq!(try_publish(&dave_quic, "com.example.x").await, denied());
    stop(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cryptosign_wrong_key_is_refused() {
    let CryptosignNode {
        node,
        tcp,
        quic,
        carla,
        dave,
    } = start_cryptosign().await;
    let stranger = CryptosignKey::generate();
    let cases = [
        ("unknown key", cryptosign(None, &stranger)),
        (
            "unknown key claiming carla",
            cryptosign(Some("carla"), &stranger),
        ),
        (
            "dave's key claiming carla",
            cryptosign(Some("carla"), &dave),
        ),
        (
            "carla's key claiming dave",
            cryptosign(Some("dave"), &carla),
        ),
    ];
    for (what, auth) in cases {
        expect_not_authorized(try_join(&tcp, "realm1", auth.clone()).await, what);
        expect_not_authorized(try_join_quic(&quic, auth).await, what);
    }
    // A listener without cryptosign refuses the method itself.
    stop(node).await;
    let (node, addrs) = start().await;
    refused(
        &addrs[0],
        "realm1",
        cryptosign(None, &carla),
        "wamp.error.no_auth_method",
    )
    .await;
    stop(node).await;
}
