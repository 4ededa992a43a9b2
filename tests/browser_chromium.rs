//! A browser client through the mesh: headless Chromium (Debian's `chromium`) loads a page that
//! uses autobahn-js (the prebuilt bundle of the npm package `autobahn-browser`, pinned in
//! tests/interop/js/) to subscribe over WebSocket on node A of a two-node QUIC mesh; a RawSocket
//! client (`wampmesh::client`) on node B publishes; the page reports what it received to the
//! small HTTP server of this test, which also serves the page and the bundle.
//!
//! Installs what it needs: the npm packages under `target/node-interop/` (tests/common/node_js),
//! and Chromium with `apt-get update` + `apt-get install -y chromium` when /usr/bin/chromium is
//! missing (as root). A missing browser that cannot be installed is a failure, not a skip.
//! Chromium runs in its own process group, killed at the end whatever happens.
//! Run: `cargo test --release --test browser_chromium`.

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};

use common::mesh::{link, mesh_certs, node_toml, wait_link_up, REALM};
use common::{node_interop_dir, run_with_timeout, scratch_dir, LockFile};
use wampmesh::client::{ClientConfig, Session};
use wampmesh::config::Config;
use wampmesh::node::Node;
use wampmesh::wamp::{Payload, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const TOPIC: &str = "browser.news";
const EVENTS: usize = 3;
/// From Chromium's start to the page's result.
const PAGE_TIMEOUT: Duration = Duration::from_secs(60);
const INSTALL_TIMEOUT: Duration = Duration::from_secs(900);

/// Installs Debian's chromium if it is not there (apt-get update once, then install).
fn ensure_chromium() {
    if Path::new(CHROMIUM).exists() {
        return;
    }
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target");
    let _lock = LockFile::acquire(&target.join("chromium-install.lock"), INSTALL_TIMEOUT);
    if Path::new(CHROMIUM).exists() {
        return;
    }
    for args in [&["update"][..], &["install", "-y", "chromium"][..]] {
        let finished = run_with_timeout(
            Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive"),
            INSTALL_TIMEOUT,
        );
        assert!(
            finished.success(),
            "`apt-get {}` failed: the browser test needs Debian's chromium (run as root)\n{}",
            args.join(" "),
            finished.report()
        );
    }
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} missing after install"
    );
}

/// Headless Chromium in its own process group; dropping it kills the whole group.
struct Chromium {
    child: Child,
    profile: PathBuf,
}

impl Chromium {
    fn open(url: &str) -> Chromium {
        let profile = scratch_dir("chromium-profile");
        let log = std::fs::File::create(profile.with_extension("log")).expect("chromium log");
        let child = Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMIUM}: {e}"));
        Chromium { child, profile }
    }

    fn log_tail(&self) -> String {
        common::file_tail(&self.profile.with_extension("log"), 30)
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
        let _ = std::fs::remove_file(self.profile.with_extension("log"));
    }
}

/// What the page POSTed: (path, body).
type Report = (String, String);

/// Serves the page and the bundle on 127.0.0.1:0 and forwards every POST to `reports`.
async fn serve_http(dir: PathBuf) -> (String, mpsc::Receiver<Report>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind http");
    let addr = listener.local_addr().expect("addr").to_string();
    let (reports, received) = mpsc::channel(64);
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (dir, reports) = (dir.clone(), reports.clone());
            tokio::spawn(async move {
                let _ = timeout(Duration::from_secs(10), answer(stream, &dir, &reports)).await;
            });
        }
    });
    (addr, received, task)
}

/// One HTTP/1.1 request, answered with `Connection: close`.
async fn answer(mut stream: TcpStream, dir: &Path, reports: &mpsc::Sender<Report>) {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&request[..head_end]).into_owned();
    let mut words = head.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("").to_owned();
    let length: usize = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    while request.len() < head_end + length {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let (status, kind, body) = match (method, path.as_str()) {
        ("GET", "/") => ("200 OK", "text/html", read(&dir.join("browser_page.html"))),
        ("GET", "/autobahn.min.js") => (
            "200 OK",
            "application/javascript",
            read(&dir.join("node_modules/autobahn-browser/autobahn.min.js")),
        ),
        ("POST", _) => {
            let body = String::from_utf8_lossy(&request[head_end..head_end + length]);
            let _ = reports.send((path.clone(), body.into_owned())).await;
            ("204 No Content", "text/plain", Vec::new())
        }
        _ => ("404 Not Found", "text/plain", b"not found".to_vec()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(&body).await;
    let _ = stream.shutdown().await;
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Node A: the mesh node of tests/common/mesh.rs plus a `websocket` listener.
async fn start_node_with_websocket(certs: &Path, id: &str) -> Node {
    let mut text = node_toml(certs, id, 0, 0, &[]);
    text.push_str("[[listen]]\ntransport = \"websocket\"\naddress = \"127.0.0.1:0\"\n");
    let config = Config::from_toml_str(&text).expect("node config");
    Node::start(config).await.expect("node a starts")
}

/// The next report of the page, with `path`; a `/result` with an error fails the test.
async fn next_report(
    reports: &mut mpsc::Receiver<Report>,
    path: &str,
    deadline: Instant,
    browser: &Chromium,
) -> serde_json::Value {
    loop {
        let report = tokio::time::timeout_at(deadline, reports.recv()).await;
        let Ok(Some((got, body))) = report else {
            panic!(
                "the page sent no {path} within {PAGE_TIMEOUT:?}\n--- chromium stderr ---\n{}",
                browser.log_tail()
            );
        };
        let value: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        if let Some(error) = value.get("error") {
            panic!(
                "the page failed: {error}\n--- chromium stderr ---\n{}",
                browser.log_tail()
            );
        }
        if got == path {
            return value;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_page_receives_events_published_on_the_other_node() {
    let dir = tokio::task::spawn_blocking(node_interop_dir)
        .await
        .expect("npm install");
    tokio::task::spawn_blocking(ensure_chromium)
        .await
        .expect("chromium install");
    let certs = mesh_certs("browser-mesh", &["a", "b"]);
    let a = start_node_with_websocket(&certs, "a").await;
    let b = common::mesh::start_node(&certs, "b").await;
    link(&a, &b, REALM);
    wait_link_up(&a, "b", REALM).await;
    let publisher =
        Session::connect_tcp(b.local_addr("tcp").expect("tcp"), ClientConfig::new(REALM))
            .await
            .expect("RawSocket publisher joins node b");

    let (http, mut reports, server) = serve_http(dir).await;
    let ws = format!(
        "ws://{}/ws",
        a.local_addr("websocket").expect("websocket listener")
    );
    let page = format!("http://{http}/?ws={ws}&topic={TOPIC}&count={EVENTS}");
    let browser = Chromium::open(&page);
    let deadline = Instant::now() + PAGE_TIMEOUT;
    let ready = next_report(&mut reports, "/ready", deadline, &browser).await;
    assert!(
        ready.get("session").is_some_and(|s| s.is_u64()),
        "ready: {ready}"
    );

    // Probes until the page's subscription has crossed the link to node b.
    let mut probe = 0u64;
    loop {
        probe += 1;
        let payload = Payload::new(vec![], wampmesh::dict! { "probe" => probe });
        publisher
            .publish(TOPIC, payload, wampmesh::dict! { "acknowledge" => true })
            .await
            .expect("probe");
        match timeout(Duration::from_millis(200), reports.recv()).await {
            Ok(Some((path, _))) if path == "/probe" => break,
            Ok(Some((path, body))) => panic!("unexpected report {path}: {body}"),
            Ok(None) => panic!("http server stopped"),
            Err(_) => assert!(Instant::now() < deadline, "no probe reached the page"),
        }
    }
    for n in 1..=EVENTS as u64 {
        let payload = Payload::new(
            vec![Value::from("news"), n.into()],
            wampmesh::dict! { "from" => "node b" },
        );
        publisher
            .publish(TOPIC, payload, wampmesh::dict! { "acknowledge" => true })
            .await
            .expect("publish");
    }
    let result = next_report(&mut reports, "/result", deadline, &browser).await;
    drop(browser);
    let events = result["events"].as_array().expect("events").clone();
    let numbers: Vec<u64> = events
        .iter()
        .filter_map(|e| e["args"][1].as_u64())
        .collect();
    assert_eq!(
        numbers,
        vec![1, 2, 3],
        "the page got the events in order: {result}"
    );
    assert!(events
        .iter()
        .all(|e| e["args"][0] == "news" && e["kwargs"]["from"] == "node b"));
    assert_eq!(result["protocol"], "wamp.2.json", "{result}");
    assert!(
        result["agent"]
            .as_str()
            .is_some_and(|a| a.contains("Chrome")),
        "the client was Chromium: {result}"
    );
    println!("browser result: {result}");

    server.abort();
    for node in [a, b] {
        timeout(
            Duration::from_secs(10),
            node.shutdown(Duration::from_secs(2)),
        )
        .await
        .expect("node shuts down in time");
    }
}
