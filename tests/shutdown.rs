//! Graceful shutdown of a real `wampmesh node --config` process on SIGTERM (DESIGN §6): the
//! listener port is free at once, every session gets GOODBYE `wamp.close.system_shutdown`, a
//! call in flight to a slow callee is answered with an ERROR (not silence), and the process
//! exits 0 within the grace period (5 s); a second SIGTERM during a stuck shutdown exits at once.

mod common;

use std::net::SocketAddr;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use common::NodeProcess;
use wampmesh::client::{ClientConfig, ClientError, CloseReason, Session};
use wampmesh::wamp::{Dict, Message, Payload, Serializer, Value};

/// The shutdown grace period of `wampmesh node`.
const GRACE: Duration = Duration::from_secs(5);
const WAIT: Duration = Duration::from_secs(5);

fn node_toml(port: u16) -> String {
    format!(
        r#"
[node]
id = "shutdown"
[[listen]]
transport = "tcp"
address = "127.0.0.1:{port}"
[[realm]]
name = "realm1"
[[realm.role]]
name = "anonymous"
permissions = [{{ uri = "", match = "prefix", call = true, register = true, publish = true, subscribe = true }}]
"#
    )
}

fn start(label: &str) -> NodeProcess {
    let port = common::free_port();
    NodeProcess::start(label, &node_toml(port), common::localhost(port))
}

async fn client(addr: SocketAddr) -> Session {
    timeout(
        WAIT,
        Session::connect_tcp(&addr.to_string(), ClientConfig::new("realm1")),
    )
    .await
    .expect("join in time")
    .expect("join")
}

/// Sends SIGTERM without waiting (NodeProcess::terminate waits, and would signal again).
fn sigterm(node: &NodeProcess) {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(node.pid().to_string())
        .status();
    assert!(
        status.is_ok_and(|s| s.success()),
        "kill -TERM {}",
        node.pid()
    );
}

/// Waits until the process has exited and returns its status, `None` after `limit`.
fn wait_exit(node: &mut NodeProcess, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    while node.is_running() {
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // The child is reaped; `terminate` now returns the status std keeps for it (its extra
    // `kill` goes to a process that no longer exists).
    node.terminate(Duration::from_millis(100))
}

/// Binding the listener's port succeeds within 1 s of SIGTERM.
fn assert_port_freed(addr: SocketAddr, since: Instant) {
    loop {
        match std::net::TcpListener::bind(addr) {
            Ok(_) => return,
            Err(e) if since.elapsed() > Duration::from_secs(1) => {
                panic!(
                    "{addr} still bound {:?} after SIGTERM: {e}",
                    since.elapsed()
                )
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn assert_system_shutdown(what: &str, reason: CloseReason) {
    match reason {
        CloseReason::Goodbye { reason, .. } => {
            assert_eq!(
                reason, "wamp.close.system_shutdown",
                "{what}: GOODBYE reason"
            )
        }
        other => panic!("{what}: expected GOODBYE wamp.close.system_shutdown, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_frees_the_port_says_goodbye_answers_calls_and_exits_0() {
    let mut node = start("shutdown-graceful");
    let callee = client(node.addr).await;
    let caller = client(node.addr).await;
    let subscriber = client(node.addr).await;
    let _subscription = subscriber
        .subscribe("com.topic", Dict::new())
        .await
        .expect("subscribe");
    let mut registration = callee
        .register("com.slow", Dict::new())
        .await
        .expect("register");
    let call = {
        let caller = caller.clone();
        tokio::spawn(async move {
            caller
                .call("com.slow", Payload::args(vec![Value::UInt(1)]), Dict::new())
                .await
        })
    };
    // The slow callee holds the invocation and never answers.
    let _invocation = timeout(WAIT, registration.next())
        .await
        .expect("invocation in time")
        .expect("invocation");

    let signalled = Instant::now();
    sigterm(&node);
    let addr = node.addr;
    tokio::task::spawn_blocking(move || assert_port_freed(addr, signalled))
        .await
        .expect("port check");

    let answer = timeout(WAIT, call)
        .await
        .expect("the call in flight is answered")
        .expect("call task");
    match answer {
        Err(ClientError::Wamp { error, .. }) => {
            assert!(
                error.starts_with("wamp."),
                "an ERROR with a WAMP URI: {error}"
            )
        }
        Ok(result) => panic!("the slow callee never answered, yet got {result:?}"),
        Err(other) => panic!("expected an ERROR for the call in flight, got {other:?}"),
    }
    for (what, session) in [
        ("caller", &caller),
        ("callee", &callee),
        ("subscriber", &subscriber),
    ] {
        let reason = timeout(WAIT, session.closed())
            .await
            .expect("closed in time");
        assert_system_shutdown(what, reason);
    }
    let status = tokio::task::spawn_blocking(move || {
        let status = wait_exit(&mut node, GRACE + Duration::from_secs(1));
        (status, node)
    })
    .await
    .expect("exit wait");
    let (status, node) = status;
    let status = status.unwrap_or_else(|| panic!("still running {GRACE:?} after SIGTERM"));
    assert!(
        status.success(),
        "exit status {status}\n{}",
        node.logs_tail()
    );
    assert!(
        signalled.elapsed() < GRACE + Duration::from_secs(1),
        "exited within the grace period"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_node_exits_0_quickly_on_sigterm() {
    let mut node = start("shutdown-idle");
    let session = client(node.addr).await;
    let signalled = Instant::now();
    sigterm(&node);
    assert_system_shutdown(
        "session",
        timeout(WAIT, session.closed())
            .await
            .expect("closed in time"),
    );
    let (status, node) = tokio::task::spawn_blocking(move || (wait_exit(&mut node, GRACE), node))
        .await
        .expect("exit wait");
    let status = status.expect("exited within the grace period");
    assert!(
        status.success(),
        "exit status {status}\n{}",
        node.logs_tail()
    );
    assert!(
        signalled.elapsed() < Duration::from_secs(2),
        "no connection to wait for: {:?}",
        signalled.elapsed()
    );
}

/// A raw subscriber that never reads, so its session blocks writing once the socket is full.
async fn stuck_subscriber(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(&[0x7F, 0xF1, 0, 0])
        .await
        .expect("handshake");
    let mut reply = [0u8; 4];
    stream
        .read_exact(&mut reply)
        .await
        .expect("handshake reply");
    let roles = wampmesh::dict! { "subscriber" => Dict::new() };
    let hello = Message::Hello {
        realm: "realm1".into(),
        details: wampmesh::dict! { "roles" => roles },
    };
    let request = wampmesh::wamp::Id::new(1).expect("id");
    let subscribe = Message::Subscribe {
        request,
        options: Dict::new(),
        topic: "com.flood".into(),
    };
    for message in [hello, subscribe] {
        let bytes = Serializer::Json.encode(&message).expect("encode");
        let len = bytes.len();
        stream
            .write_all(&[0, (len >> 16) as u8, (len >> 8) as u8, len as u8])
            .await
            .expect("header");
        stream.write_all(&bytes).await.expect("frame");
    }
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_sigterm_during_a_stuck_shutdown_exits_at_once() {
    let mut node = start("shutdown-stuck");
    let _stuck = stuck_subscriber(node.addr).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let publisher = client(node.addr).await;
    let big = Value::Str("x".repeat(64 * 1024));
    // 32 MiB of events: far more than the socket buffers hold, so the session's writer blocks.
    for _ in 0..512 {
        let ack = wampmesh::dict! { "acknowledge" => true };
        publisher
            .publish("com.flood", Payload::args(vec![big.clone()]), ack)
            .await
            .expect("publish");
    }
    sigterm(&node);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        node.is_running(),
        "the stuck session holds the shutdown (drain until the grace period)"
    );
    let second = Instant::now();
    sigterm(&node);
    let (status, node) =
        tokio::task::spawn_blocking(move || (wait_exit(&mut node, Duration::from_secs(1)), node))
            .await
            .expect("exit wait");
    let status = status.unwrap_or_else(|| {
        panic!(
            "still running 1 s after the second SIGTERM\n{}",
            node.logs_tail()
        )
    });
    assert!(
        second.elapsed() < Duration::from_secs(1),
        "{:?}",
        second.elapsed()
    );
    assert!(
        !status.success(),
        "an aborted shutdown is not a clean exit: {status}"
    );
}
