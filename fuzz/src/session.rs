//! Harness for a router session: `session::serve` over an in-memory duplex against a fresh
//! realm, fed a valid handshake and HELLO, then the frames the input describes. A second,
//! passive session (the observer) shares the realm. Sessions may end or keep running; nothing
//! may panic, the realm task must survive, and everything the router sends must be a frame
//! within the client's limit holding a message its own serializer decodes.
//!
//! Input: one mode byte, then a script of lines separated by `\n`:
//! - mode `j`/`m`/`c`: client session over JSON/MessagePack/CBOR with anonymous auth; `J`/`M`/`C`:
//!   the same as a router-link session (trusted listener, role `rlink`); with the high bit set
//!   the client accepts only 512-byte frames and the router closes slow consumers; any other
//!   byte picks one of the six combinations;
//! - a line is sent as one message frame, except `!p…` (PING with the rest), `!o…` (PONG),
//!   `!r…` (the rest as raw bytes, no frame header), `!z` (let the router run) and `!s`
//!   (node shutdown: the session must say GOODBYE).
//!
//! `WAMPMESH_FUZZ_TRACE=1` prints what the router sends.

use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wampmesh::rawsocket::{self, FrameCodec, FrameKind, MAX_LENGTH};
use wampmesh::router::auth::{AnonymousConfig, AuthConfig};
use wampmesh::router::authorize::Authorizer;
use wampmesh::router::mesh::{CHANNEL_TOPIC, INVOKE_PROCEDURE};
use wampmesh::router::realm::Realm;
use wampmesh::router::task::{spawn_realm, RealmHandle, SlowConsumerPolicy};
use wampmesh::router::RealmRegistry;
use wampmesh::session::{ListenerSettings, SessionContext};
use wampmesh::wamp::{Dict, Id, Message, Serializer};

/// The realm the HELLO asks for.
const REALM: &str = "com.fuzz.realm";
/// Longest a run may take; a session still running then is left alone (it may keep running).
const RUN_LIMIT: Duration = Duration::from_secs(5);
/// Scheduler rounds without a new frame from the router after which it counts as idle.
const QUIET_ROUNDS: u32 = 16;
/// Most scheduler rounds one wait for the router may take.
const SETTLE_LIMIT: u32 = 4096;

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("cannot build a tokio runtime");
}

/// Runs one session on `data` (see the module docs for the format).
pub fn frames(data: &[u8]) {
    let Some((&mode, script)) = data.split_first() else {
        return;
    };
    RUNTIME.with(|runtime| runtime.block_on(run(Mode::from_byte(mode), script)));
}

/// How the client connects.
#[derive(Debug, Clone, Copy)]
struct Mode {
    serializer: Serializer,
    /// A router-link session on a trusted listener instead of an anonymous client.
    link: bool,
    /// 512-byte client frames, a tiny outbound queue and the `close` slow-consumer policy.
    tight: bool,
}

impl Mode {
    fn from_byte(byte: u8) -> Mode {
        use Serializer::{Cbor, Json, MsgPack};
        let (serializer, link) = match byte & 0x7F {
            b'j' => (Json, false),
            b'm' => (MsgPack, false),
            b'c' => (Cbor, false),
            b'J' => (Json, true),
            b'M' => (MsgPack, true),
            b'C' => (Cbor, true),
            other => (Serializer::ALL[usize::from(other % 3)], other % 2 == 1),
        };
        Mode {
            serializer,
            link,
            tight: byte & 0x80 != 0,
        }
    }

    fn client_max(self) -> usize {
        if self.tight {
            512
        } else {
            MAX_LENGTH
        }
    }

    fn settings(self) -> ListenerSettings {
        let (outbound_queue, slow_consumer) = if self.tight {
            (32, SlowConsumerPolicy::Close)
        } else {
            (64, SlowConsumerPolicy::Drop)
        };
        ListenerSettings {
            transport: "tcp",
            serializers: Serializer::ALL.to_vec(),
            max_message_size: 64 * 1024,
            min_peer_message_size: wampmesh::config::MIN_MESSAGE_SIZE,
            auth: AuthConfig {
                anonymous: Some(AnonymousConfig::default()),
                ..AuthConfig::default()
            },
            handshake_timeout: Duration::from_secs(1),
            hello_timeout: Duration::from_secs(1),
            outbound_queue,
            slow_consumer,
            trusted: self.link,
            management: (!self.link).then(|| ("wampmesh.management".to_owned(), false)),
        }
    }

    fn hello(self, peer: &str) -> Message {
        let features = |names: &[&str]| -> Dict {
            wampmesh::dict! { "features" => names.iter().map(|n| (n.to_string(), true.into())).collect::<Dict>() }
        };
        let roles = wampmesh::dict! {
            "publisher" => features(&["publisher_exclusion", "publisher_identification"]),
            "subscriber" => features(&["pattern_based_subscription"]),
            "caller" => features(&["progressive_call_results", "call_canceling", "call_timeout"]),
            "callee" => features(&["progressive_call_results", "call_canceling", "caller_identification"]),
        };
        let mut details =
            wampmesh::dict! { "roles" => roles, "authmethods" => vec!["anonymous".into()] };
        if self.link {
            details.insert(
                "authextra".into(),
                wampmesh::dict! { "peer" => peer }.into(),
            );
        }
        Message::Hello {
            realm: REALM.into(),
            details,
        }
    }
}

async fn run(mode: Mode, script: &[u8]) {
    let tracker = TaskTracker::new();
    let stop_realm = CancellationToken::new();
    let mut authorizer = Authorizer::default();
    authorizer.grant_all("anonymous");
    let realm = Realm::on_node(REALM, authorizer, "fuzz-node", 1);
    let handle = spawn_realm(
        realm,
        SlowConsumerPolicy::Drop,
        &tracker,
        stop_realm.clone(),
    );
    let realms = RealmRegistry::default();
    realms.insert(handle.clone());
    let shutdown = CancellationToken::new();
    let ctx = SessionContext {
        settings: Arc::new(mode.settings()),
        realms,
        shutdown: shutdown.clone(),
        admission: Arc::default(),
        metrics: Arc::default(),
    };
    let (client, server) = tokio::io::duplex(64 * 1024);
    let (server_read, server_write) = tokio::io::split(server);
    let (client_read, client_write) = tokio::io::split(client);
    let session =
        wampmesh::session::serve(server_read, server_write, transport(40000), ctx.clone());
    let (received, done) = (Cell::new(0), CancellationToken::new());
    let everything = async {
        tokio::join!(
            observer(ctx, mode, &received, &done),
            session,
            feed(client_write, mode, script, &shutdown, &received, &done),
            read_replies(client_read, mode, &received)
        )
    };
    let _ = tokio::time::timeout(RUN_LIMIT, everything).await;
    assert_realm_alive(&handle).await;
    stop_realm.cancel();
    tracker.close();
    tracker.wait().await;
}

fn transport(port: u16) -> Dict {
    let peer = format!("127.0.0.1:{port}");
    wampmesh::dict! { "type" => "rawsocket", "protocol" => "tcp", "peer" => peer }
}

/// The handshake and HELLO of a client.
fn opening(mode: Mode, peer: &str) -> Vec<u8> {
    let mut out = rawsocket::handshake(mode.serializer, mode.client_max()).to_vec();
    let hello = mode
        .serializer
        .encode(&mode.hello(peer))
        .expect("HELLO encodes");
    push_frame(&mut out, FrameKind::Message, &hello);
    out
}

/// The second session of every run, joined before the script starts: it speaks the next
/// serializer, subscribes to and registers (shared) everything, never answers, and closes
/// when the fuzzed session is done. In link mode it is a second router link.
async fn observer(ctx: SessionContext, mode: Mode, received: &Cell<u64>, done: &CancellationToken) {
    let next = Serializer::ALL[(mode.serializer.index() + 1) % Serializer::ALL.len()];
    let mode = Mode {
        serializer: next,
        ..mode
    };
    let (client, server) = tokio::io::duplex(64 * 1024);
    let (server_read, server_write) = tokio::io::split(server);
    let (client_read, mut client_write) = tokio::io::split(client);
    let session = wampmesh::session::serve(server_read, server_write, transport(40001), ctx);
    let mut out = opening(mode, "observer-peer");
    for message in observer_requests(mode.link) {
        let bytes = mode
            .serializer
            .encode(&message)
            .expect("observer requests encode");
        push_frame(&mut out, FrameKind::Message, &bytes);
    }
    let feed = async {
        if client_write.write_all(&out).await.is_ok() {
            done.cancelled().await;
        }
        let _ = client_write.shutdown().await;
    };
    let _ = tokio::join!(session, feed, read_replies(client_read, mode, received));
}

fn observer_requests(link: bool) -> Vec<Message> {
    let id = |n| Id::new(n).expect("small ids are valid");
    let prefix = wampmesh::dict! { "match" => "prefix" };
    let shared = wampmesh::dict! { "match" => "prefix", "invoke" => "roundrobin" };
    let mut requests = vec![
        Message::Subscribe {
            request: id(1),
            options: prefix,
            topic: String::new(),
        },
        Message::Register {
            request: id(2),
            options: shared,
            procedure: "com".into(),
        },
    ];
    if link {
        requests.extend([
            Message::Subscribe {
                request: id(3),
                options: Dict::new(),
                topic: CHANNEL_TOPIC.into(),
            },
            Message::Register {
                request: id(4),
                options: Dict::new(),
                procedure: INVOKE_PROCEDURE.into(),
            },
        ]);
    }
    requests
}

/// Once the observer has joined: writes the handshake, HELLO and the script, lets the router
/// answer, then closes our sending side (the session ends at once on end of stream).
async fn feed<W: AsyncWrite + Unpin>(
    mut writer: W,
    mode: Mode,
    script: &[u8],
    shutdown: &CancellationToken,
    received: &Cell<u64>,
    done: &CancellationToken,
) {
    let _done = done.clone().drop_guard();
    settle(received).await;
    let mut out = opening(mode, "fuzz-peer");
    for line in script.split(|&b| b == b'\n') {
        match line {
            [b'!', b'p', rest @ ..] => push_frame(&mut out, FrameKind::Ping, rest),
            [b'!', b'o', rest @ ..] => push_frame(&mut out, FrameKind::Pong, rest),
            [b'!', b'r', rest @ ..] => out.extend_from_slice(rest),
            [b'!', b'z', ..] | [b'!', b's', ..] => {
                if writer.write_all(&out).await.is_err() {
                    return;
                }
                out.clear();
                settle(received).await;
                if line[1] == b's' {
                    shutdown.cancel();
                }
            }
            _ => push_frame(&mut out, FrameKind::Message, line),
        }
    }
    if writer.write_all(&out).await.is_ok() {
        settle(received).await;
    }
    let _ = writer.shutdown().await;
}

/// Lets the session and the realm run until the router has sent nothing new for a while.
async fn settle(received: &Cell<u64>) {
    let (mut last, mut quiet) = (received.get(), 0);
    for _ in 0..SETTLE_LIMIT {
        tokio::task::yield_now().await;
        if received.get() != last {
            (last, quiet) = (received.get(), 0);
        } else if quiet == QUIET_ROUNDS {
            return;
        } else {
            quiet += 1;
        }
    }
}

fn push_frame(out: &mut Vec<u8>, kind: FrameKind, payload: &[u8]) {
    let len = payload.len().min(MAX_LENGTH - 1);
    out.extend_from_slice(&[kind as u8, (len >> 16) as u8, (len >> 8) as u8, len as u8]);
    out.extend_from_slice(&payload[..len]);
}

/// Reads everything the router sends until it closes, checking it on the way.
async fn read_replies<R: AsyncRead + Unpin>(mut reader: R, mode: Mode, received: &Cell<u64>) {
    let mut reply = [0u8; 4];
    if let Err(e) = reader.read_exact(&mut reply).await {
        panic!("router closed without answering a valid handshake: {e}");
    }
    let router_max = rawsocket::read_handshake_reply(reply, mode.serializer)
        .unwrap_or_else(|e| panic!("router refused a valid handshake: {e}"));
    let mut codec = FrameCodec::new(mode.client_max(), router_max);
    let mut buffer = BytesMut::new();
    let mut welcomed = false;
    loop {
        let frame = match codec.decode(&mut buffer) {
            Ok(Some(frame)) => frame,
            Ok(None) => match reader.read_buf(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(_) => continue,
            },
            Err(e) => panic!("router sent a frame we did not allow: {e}"),
        };
        received.set(received.get() + 1);
        if frame.kind != FrameKind::Message {
            continue;
        }
        let message = mode
            .serializer
            .decode(&frame.payload)
            .unwrap_or_else(|e| panic!("router sent a message it cannot decode itself: {e}"));
        if trace() {
            eprintln!("router -> {message:?}");
        }
        assert!(
            welcomed || matches!(message, Message::Welcome { .. }),
            "valid HELLO answered with {message:?}"
        );
        welcomed = true;
    }
    assert!(buffer.is_empty(), "router closed in the middle of a frame");
}

/// `WAMPMESH_FUZZ_TRACE=1` prints every message the router sends (to read a crash input).
fn trace() -> bool {
    static TRACE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("WAMPMESH_FUZZ_TRACE").is_some())
}

/// A panic in the realm task kills it quietly (tokio catches it): probe with QUIESCE, which the
/// realm answers after everything sent before it (and which makes every session leave).
async fn assert_realm_alive(realm: &RealmHandle) {
    assert!(
        realm.quiesce().await.is_ok(),
        "the realm task died: it panicked on this input"
    );
}
