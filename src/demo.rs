//! `wampmesh demo`: three nodes on 127.0.0.1 linked over QUIC (one connection per node pair,
//! one stream per realm), live events and calls across the mesh, a realm linked at runtime on
//! the existing connection, a link stopped and restarted, and a short QUIC-vs-TCP comparison.
//! Every step is checked; the demo exits 0 only if all of them held.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::client::{ClientConfig, Session};
use crate::config::Config;
use crate::node::Node;
use crate::wamp::{Dict, Payload, Value};

type DemoError = Box<dyn std::error::Error + Send + Sync>;

const NODES: [&str; 3] = ["alpha", "beta", "gamma"];

/// Tallies the checks.
struct Steps {
    passed: usize,
    failed: usize,
}

impl Steps {
    fn check(&mut self, ok: bool, what: &str) {
        if ok {
            self.passed += 1;
            println!("   ✓ {what}");
        } else {
            self.failed += 1;
            println!("   ✗ {what}");
        }
    }
}

fn section(title: &str) {
    println!("\n== {title}");
}

/// Runs the demo; `Ok(true)` when every step checked out.
pub async fn run() -> Result<bool, DemoError> {
    let dir = std::env::temp_dir().join(format!("wampmesh-demo-{}", std::process::id()));
    let result = run_in(&dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn free_port_udp() -> Result<u16, DemoError> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn free_port_tcp() -> Result<u16, DemoError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The config of one demo node: a TCP listener for clients (and TCP links, ticket `demo`),
/// a QUIC listener for links (client certificates required), realm1.
fn node_config(
    dir: &Path,
    id: &str,
    tcp: u16,
    quic: u16,
    links: &[(&str, u16)],
) -> Result<Config, DemoError> {
    use crate::config::templates;
    let mut text = templates::node_tls(dir, id);
    text.push_str(&format!(
        r#"[[listen]]
transport = "tcp"
address = "127.0.0.1:{tcp}"
[listen.auth.anonymous]
role = "anonymous"
[listen.auth.ticket.principals.alpha]
ticket = "demo"
role = "rlink"
[[listen]]
transport = "quic"
address = "127.0.0.1:{quic}"
require_client_cert = true
"#
    ));
    text.push_str(&templates::open_realm("realm1"));
    for (peer, port) in links {
        let address = format!("127.0.0.1:{port}");
        text.push_str(&templates::link(
            peer,
            &address,
            &["realm1"],
            Some("\"manual\""),
        ));
    }
    Ok(Config::from_toml_str(&text)?)
}

async fn run_in(dir: &Path) -> Result<bool, DemoError> {
    let mut steps = Steps {
        passed: 0,
        failed: 0,
    };
    section("1. Certificates: one CA, one certificate per node (what `wampmesh certs` writes)");
    let names: Vec<String> = NODES.iter().map(|s| s.to_string()).collect();
    crate::certs::write_mesh_certs(dir, &names)?;
    println!(
        "   wrote {}/{{ca,alpha,beta,gamma}}.{{pem,key}}",
        dir.display()
    );

    section("2. Three nodes, linked in a triangle over QUIC (alpha→beta, alpha→gamma, beta→gamma)");
    let tcp: Vec<u16> = (0..3).map(|_| free_port_tcp()).collect::<Result<_, _>>()?;
    let quic: Vec<u16> = (0..3).map(|_| free_port_udp()).collect::<Result<_, _>>()?;
    let gamma = Node::start(node_config(dir, "gamma", tcp[2], quic[2], &[])?).await?;
    let beta = Node::start(node_config(
        dir,
        "beta",
        tcp[1],
        quic[1],
        &[("gamma", quic[2])],
    )?)
    .await?;
    let alpha = Node::start(node_config(
        dir,
        "alpha",
        tcp[0],
        quic[0],
        &[("beta", quic[1]), ("gamma", quic[2])],
    )?)
    .await?;
    for (node, t, q) in [
        (&alpha, tcp[0], quic[0]),
        (&beta, tcp[1], quic[1]),
        (&gamma, tcp[2], quic[2]),
    ] {
        println!(
            "   node {:<5}  clients: rs://127.0.0.1:{t}   links: quic://127.0.0.1:{q}",
            node.id
        );
    }
    let up = wait_links_up(&alpha, 2).await && wait_links_up(&beta, 1).await;
    steps.check(
        up,
        "all three realm links are up (each a QUIC stream on its node pair's connection)",
    );

    section("3. Events and calls cross the mesh");
    let client = |node: &Node| {
        let addr = node.local_addr("tcp").unwrap_or_default().to_owned();
        async move { Session::connect_tcp(&addr, ClientConfig::new("realm1")).await }
    };
    let subscriber = client(&gamma).await?;
    let mut sub = subscriber
        .subscribe("demo.", crate::dict! { "match" => "prefix" })
        .await?;
    let callee = client(&beta).await?;
    let _serving = callee
        .serve("demo.add", Dict::new(), |inv| async move {
            let sum: i64 = inv
                .payload
                .args
                .iter()
                .flatten()
                .filter_map(|v| v.as_u64())
                .map(|n| n as i64)
                .sum();
            let _ = inv.result(Payload::args(vec![Value::from(sum)])).await;
        })
        .await?;
    println!(
        "   a subscriber on gamma listens to prefix \"demo.\"; a callee on beta registers demo.add"
    );
    let publisher = client(&alpha).await?;
    let got =
        publish_until_received(&publisher, &mut sub, "demo.greeting", "hello from alpha").await;
    steps.check(
        got.is_some(),
        "alpha publishes demo.greeting → the subscriber on gamma receives it",
    );
    if let Some(topic) = got {
        println!("     received on gamma with details.topic = {topic:?}");
    }
    let caller = client(&gamma).await?;
    let answer = call_until_known(&caller, "demo.add", vec![20u64.into(), 22u64.into()]).await;
    println!("     gamma calls demo.add(20, 22) on beta → {answer:?}");
    steps.check(
        answer == Some(Value::UInt(42)),
        "a call from gamma reaches the callee on beta and returns 42",
    );

    section("4. Link a new realm at runtime over the existing connection");
    let control = Session::connect_tcp(
        alpha.local_addr("tcp").unwrap_or_default(),
        ClientConfig::new("wampmesh.control"),
    )
    .await?;
    let beta_control = Session::connect_tcp(
        beta.local_addr("tcp").unwrap_or_default(),
        ClientConfig::new("wampmesh.control"),
    )
    .await?;
    let before = link_row(&control, "beta", "realm1").await;
    beta_control
        .call(
            "wampmesh.realm.start",
            Payload::args(vec!["realm2".into()]),
            Dict::new(),
        )
        .await?;
    control
        .call(
            "wampmesh.realm.start",
            Payload::args(vec!["realm2".into()]),
            Dict::new(),
        )
        .await?;
    let started = Instant::now();
    let args = vec![
        "beta".into(),
        format!("127.0.0.1:{}", quic[1]).into(),
        "realm2".into(),
        Value::Dict(crate::dict! { "reconnect" => "manual" }),
    ];
    control
        .call("wampmesh.link.start", Payload::args(args), Dict::new())
        .await?;
    let linked = wait_links_up(&alpha, 3).await;
    let link_time = started.elapsed();
    let after = link_row(&control, "beta", "realm2").await;
    let same = |key: &str| {
        before.as_ref().and_then(|d| d.get(key)) == after.as_ref().and_then(|d| d.get(key))
    };
    println!(
        "     wampmesh.link.list: realm1 {} | realm2 {}",
        brief(&before),
        brief(&after)
    );
    steps.check(
        linked,
        &format!(
            "wampmesh.link.start(beta, realm2) is up in {:.1} ms",
            link_time.as_secs_f64() * 1e3
        ),
    );
    steps.check(
        same("connection") && same("handshakes"),
        "realm2 uses the same QUIC connection: same connection id, no new handshake",
    );
    let sub2_session = Session::connect_tcp(
        beta.local_addr("tcp").unwrap_or_default(),
        ClientConfig::new("realm2"),
    )
    .await?;
    let mut sub2 = sub2_session.subscribe("demo.r2", Dict::new()).await?;
    let pub2 = Session::connect_tcp(
        alpha.local_addr("tcp").unwrap_or_default(),
        ClientConfig::new("realm2"),
    )
    .await?;
    steps.check(
        publish_until_received(&pub2, &mut sub2, "demo.r2", "realm2 works")
            .await
            .is_some(),
        "an event crosses on realm2",
    );

    section("5. Stop and restart a link (restartable: stop resets it, start works again)");
    let mut downs = control
        .subscribe("wampmesh.link.on_down", Dict::new())
        .await?;
    control
        .call(
            "wampmesh.link.stop",
            Payload::args(vec!["beta".into(), "realm2".into()]),
            Dict::new(),
        )
        .await?;
    let down = tokio::time::timeout(Duration::from_secs(5), downs.next())
        .await
        .ok()
        .flatten();
    let reason = down.as_ref().and_then(|e| {
        e.payload
            .args
            .as_ref()?
            .first()?
            .as_dict()?
            .get("reason")?
            .as_str()
            .map(str::to_owned)
    });
    steps.check(
        reason.is_some(),
        &format!("wampmesh.link.on_down published with reason {reason:?}"),
    );
    let args = vec![
        "beta".into(),
        format!("127.0.0.1:{}", quic[1]).into(),
        "realm2".into(),
        Value::Dict(crate::dict! { "reconnect" => "manual" }),
    ];
    control
        .call("wampmesh.link.start", Payload::args(args), Dict::new())
        .await?;
    steps.check(
        wait_links_up(&alpha, 3).await,
        "the same link started again",
    );
    steps.check(
        publish_until_received(&pub2, &mut sub2, "demo.r2", "after restart")
            .await
            .is_some(),
        "events cross again after the restart",
    );

    section("6. QUIC stream vs new TCP connection: linking 20 more realms to beta");
    let quic_time = link_many(
        &alpha,
        &beta,
        "q",
        20,
        quic[1],
        crate::config::LinkTransport::Quic,
    )
    .await?;
    let tcp_time = link_many(
        &alpha,
        &beta,
        "t",
        20,
        tcp[1],
        crate::config::LinkTransport::Tcp,
    )
    .await?;
    let row = link_row(&control, "beta", "q0").await;
    println!("     QUIC: {:.1} ms, handshakes to beta so far {}   TCP: {:.1} ms, one handshake per realm", quic_time * 1e3, brief_handshakes(&row), tcp_time * 1e3);
    println!("     (loopback has ~0 RTT, so this shows handshake counts more than time; see `wampmesh bench --scenario setup`)");
    steps.check(
        quic_time > 0.0 && tcp_time > 0.0,
        "both kinds of link came up",
    );

    section("Shutting down");
    for node in [alpha, beta, gamma] {
        node.shutdown(Duration::from_secs(3)).await;
    }
    println!("\n{} steps passed, {} failed", steps.passed, steps.failed);
    Ok(steps.failed == 0)
}

async fn wait_links_up(node: &Node, count: usize) -> bool {
    let Some(links) = node.links() else {
        return false;
    };
    for _ in 0..400 {
        let up = links
            .list()
            .iter()
            .filter(|l| l.get("state").and_then(Value::as_str) == Some("up"))
            .count();
        if up >= count {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

/// Publishes until the subscription receives it (interest needs a moment to cross the mesh).
async fn publish_until_received(
    publisher: &Session,
    sub: &mut crate::client::Subscription,
    topic: &str,
    text: &str,
) -> Option<String> {
    for _ in 0..100 {
        publisher
            .publish(topic, Payload::args(vec![text.into()]), Dict::new())
            .await
            .ok()?;
        if let Ok(Some(event)) = tokio::time::timeout(Duration::from_millis(100), sub.next()).await
        {
            return Some(
                event
                    .details
                    .get("topic")
                    .and_then(Value::as_str)
                    .unwrap_or(topic)
                    .to_owned(),
            );
        }
    }
    None
}

async fn call_until_known(caller: &Session, procedure: &str, args: Vec<Value>) -> Option<Value> {
    for _ in 0..100 {
        match caller
            .call(procedure, Payload::args(args.clone()), Dict::new())
            .await
        {
            Ok(result) => return result.payload.args.and_then(|a| a.into_iter().next()),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    None
}

async fn link_row(control: &Session, peer: &str, realm: &str) -> Option<Dict> {
    let rows = control
        .call("wampmesh.link.list", Payload::default(), Dict::new())
        .await
        .ok()?;
    let list = rows.payload.args?.into_iter().next()?;
    list.as_list()?
        .iter()
        .filter_map(Value::as_dict)
        .find(|d| {
            d.get("peer").and_then(Value::as_str) == Some(peer)
                && d.get("realm").and_then(Value::as_str) == Some(realm)
        })
        .cloned()
}

fn brief(row: &Option<Dict>) -> String {
    match row {
        Some(d) => format!(
            "connection {} handshakes {} streams {}",
            d.get("connection")
                .and_then(Value::as_u64)
                .map_or("-".into(), |c| c.to_string()),
            d.get("handshakes").and_then(Value::as_u64).unwrap_or(0),
            d.get("streams").and_then(Value::as_u64).unwrap_or(0)
        ),
        None => "missing".into(),
    }
}

fn brief_handshakes(row: &Option<Dict>) -> u64 {
    row.as_ref()
        .and_then(|d| d.get("handshakes"))
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// Creates `count` realms on both nodes and links them; seconds until all are up.
async fn link_many(
    from: &Node,
    to: &Node,
    prefix: &str,
    count: usize,
    port: u16,
    transport: crate::config::LinkTransport,
) -> Result<f64, DemoError> {
    let links = from.links().ok_or("links missing")?;
    let before = links
        .list()
        .iter()
        .filter(|l| l.get("state").and_then(Value::as_str) == Some("up"))
        .count();
    let template = from.config().realm.first();
    for i in 0..count {
        let name = format!("{prefix}{i}");
        to.realm_host()
            .start(&name, crate::node::authorizer_like(template));
        from.realm_host()
            .start(&name, crate::node::authorizer_like(template));
    }
    let started = Instant::now();
    for i in 0..count {
        links.start(crate::link::LinkSpec {
            forward: Default::default(),
            peer: to.id.clone(),
            address: format!("127.0.0.1:{port}"),
            transport,
            realm: format!("{prefix}{i}"),
            reconnect: crate::config::ReconnectPolicy::Manual,
            ticket: Some(crate::router::auth::Secret::new("demo")),
            cryptosign: None,
        })?;
    }
    if !wait_links_up(from, before + count).await {
        return Err(format!("{transport:?} links did not come up").into());
    }
    Ok(started.elapsed().as_secs_f64())
}
