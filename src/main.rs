//! The `wampmesh` command line: node | demo | bench | certs | link. The only place `anyhow` is used.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use wampmesh::config::Config;
use wampmesh::node::Node;

#[derive(Parser)]
#[command(
    name = "wampmesh",
    version,
    about = "A WAMP router mesh whose router links run over QUIC"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a router node (with no --config, the embedded default: RawSocket TCP 127.0.0.1:8080, realm1).
    Node {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Start a demo on 127.0.0.1 with live traffic; exits 0 when every step checked out.
    Demo,
    /// Measure the router (see `--scenario`).
    Bench {
        #[arg(long, default_value = "local")]
        scenario: String,
        #[arg(long)]
        quick: bool,
        #[arg(long, default_value = "bench-out")]
        out: PathBuf,
    },
    /// Write a CA and one certificate per node: DIR/ca.pem, DIR/ca.key, DIR/<node>.pem, DIR/<node>.key.
    Certs {
        #[arg(long)]
        out: PathBuf,
        /// Comma-separated node ids.
        #[arg(long, value_delimiter = ',')]
        nodes: Vec<String>,
        /// Also a WAMP-Cryptosign key pair per node: DIR/<node>.ed25519 (private seed, hex) and
        /// DIR/<node>.ed25519.pub (public key, hex). An existing seed is kept.
        #[arg(long)]
        ed25519: bool,
    },
    /// Runtime link management through a node's `wampmesh.control` realm.
    Link {
        #[command(subcommand)]
        action: LinkAction,
    },
}

#[derive(Subcommand)]
enum LinkAction {
    /// Link a realm to a peer (over QUIC this opens a stream on the existing connection).
    Start {
        #[command(flatten)]
        target: LinkTarget,
        #[arg(long)]
        address: String,
        /// quic | tcp | tls
        #[arg(long, default_value = "quic")]
        transport: String,
        /// Authenticate the link with WAMP-Cryptosign using this seed file, a path on the
        /// managed node's machine (the node reads it; the seed is never sent).
        #[arg(long)]
        cryptosign_key_file: Option<String>,
    },
    /// Stop a realm link (it can be started again).
    Stop {
        #[command(flatten)]
        target: LinkTarget,
    },
    /// List every link of the node.
    List {
        /// RawSocket TCP address of the node.
        #[arg(long)]
        node: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
struct LinkTarget {
    /// RawSocket TCP address of the node to manage.
    #[arg(long)]
    node: String,
    #[arg(long)]
    peer: String,
    #[arg(long)]
    realm: String,
    #[arg(long)]
    json: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // A node logs its lifecycle; the other commands print their own output and log only trouble.
    let default_level = if matches!(cli.command, Command::Node { .. }) {
        "info"
    } else {
        "warn"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_level.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Node { config } => {
            let config = match config {
                Some(path) => Config::load(&path)?,
                None => Config::embedded_default(),
            };
            runtime(config.io.threads)?.block_on(run_node(config))
        }
        Command::Demo => {
            let ok = runtime(0)?
                .block_on(wampmesh::demo::run())
                .map_err(|e| anyhow::anyhow!(e))?;
            if !ok {
                anyhow::bail!("demo: some steps failed");
            }
            Ok(())
        }
        Command::Bench {
            scenario,
            quick,
            out,
        } => {
            runtime(0)?
                .block_on(wampmesh::bench::run(&scenario, quick, &out))
                .map_err(|e| anyhow::anyhow!(e))?;
            Ok(())
        }
        Command::Certs {
            out,
            nodes,
            ed25519,
        } => {
            let mut written = wampmesh::certs::write_mesh_certs(&out, &nodes)?;
            if ed25519 {
                written.extend(wampmesh::certs::write_ed25519_keys(&out, &nodes)?);
            }
            for path in written {
                println!("{}", path.display());
            }
            Ok(())
        }
        Command::Link { action } => runtime(1)?.block_on(manage_link(action)),
    }
}

async fn manage_link(action: LinkAction) -> anyhow::Result<()> {
    use wampmesh::client::{ClientConfig, Session};
    use wampmesh::wamp::{Dict, Payload, Value};
    let (node, procedure, args, json) = match action {
        LinkAction::Start {
            target,
            address,
            transport,
            cryptosign_key_file,
        } => {
            let mut options = wampmesh::dict! { "transport" => transport };
            if let Some(path) = cryptosign_key_file {
                options.insert("cryptosign_key_file".into(), path.into());
            }
            let options = Value::Dict(options);
            let args = vec![
                target.peer.into(),
                address.into(),
                target.realm.into(),
                options,
            ];
            (target.node, "wampmesh.link.start", args, target.json)
        }
        LinkAction::Stop { target } => (
            target.node,
            "wampmesh.link.stop",
            vec![target.peer.into(), target.realm.into()],
            target.json,
        ),
        LinkAction::List { node, json } => (node, "wampmesh.link.list", Vec::new(), json),
    };
    let session = Session::connect_tcp(&node, ClientConfig::new("wampmesh.control"))
        .await
        .with_context(|| format!("cannot join wampmesh.control at {node}"))?;
    let result = session
        .call(procedure, Payload::args(args), Dict::new())
        .await
        .map_err(|e| anyhow::anyhow!("{procedure}: {e}"))?;
    let value = result
        .payload
        .args
        .and_then(|a| a.into_iter().next())
        .unwrap_or(Value::Null);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&wampmesh::wamp::value::ValueSer {
                value: &value,
                json: true
            })?
        );
    } else if let Value::List(rows) = &value {
        println!(
            "{:<12} {:<16} {:<6} {:<10} {:>12} {:>8} {:>10} {:>10} {:>10}",
            "PEER",
            "REALM",
            "TRANS",
            "STATE",
            "CONNECTION",
            "STREAMS",
            "HANDSHAKES",
            "MSGS_IN",
            "MSGS_OUT"
        );
        for row in rows.iter().filter_map(Value::as_dict) {
            let s = |k: &str| row.get(k).and_then(Value::as_str).unwrap_or("-").to_owned();
            let n = |k: &str| {
                row.get(k)
                    .and_then(Value::as_u64)
                    .map_or("-".to_owned(), |v| v.to_string())
            };
            println!(
                "{:<12} {:<16} {:<6} {:<10} {:>12} {:>8} {:>10} {:>10} {:>10}",
                s("peer"),
                s("realm"),
                s("transport"),
                s("state"),
                n("connection"),
                n("streams"),
                n("handshakes"),
                n("messages_in"),
                n("messages_out")
            );
            if let Some(error) = row.get("last_error").and_then(Value::as_str) {
                println!("{:<12} last error: {error}", "");
            }
        }
    } else {
        println!("{procedure}: ok");
    }
    let _ = session.leave("wamp.close.normal").await;
    Ok(())
}

/// A multi-threaded runtime with `threads` workers (0 = one per core).
fn runtime(threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if threads > 0 {
        builder.worker_threads(threads);
    }
    builder
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

async fn run_node(config: Config) -> anyhow::Result<()> {
    let grace = Duration::from_secs(5);
    let node = Node::start(config).await?;
    for listener in node.listeners() {
        eprintln!(
            "wampmesh node {}: {} listening on {}",
            node.id, listener.transport, listener.local_addr
        );
    }
    wait_for_signal().await?;
    eprintln!(
        "wampmesh node {}: shutting down (a second signal aborts)",
        node.id
    );
    tokio::select! {
        _ = node.shutdown(grace) => Ok(()),
        _ = wait_for_signal() => {
            eprintln!("second signal: aborting");
            std::process::exit(130);
        }
    }
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
