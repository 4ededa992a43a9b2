//! The `wampmesh` command line: node | demo | bench | certs | link. The only place `anyhow` is used.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use wampmesh::config::Config;
use wampmesh::node::Node;

#[derive(Parser)]
#[command(name = "wampmesh", version, about = "A WAMP router mesh whose router links run over QUIC")]
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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
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
            let ok = runtime(0)?.block_on(wampmesh::demo::run()).map_err(|e| anyhow::anyhow!(e))?;
            if !ok {
                anyhow::bail!("demo: some steps failed");
            }
            Ok(())
        }
        Command::Bench { scenario, quick, out } => {
            runtime(0)?.block_on(wampmesh::bench::run(&scenario, quick, &out)).map_err(|e| anyhow::anyhow!(e))?;
            Ok(())
        }
    }
}

/// A multi-threaded runtime with `threads` workers (0 = one per core).
fn runtime(threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if threads > 0 {
        builder.worker_threads(threads);
    }
    builder.enable_all().build().context("cannot start the async runtime")
}

async fn run_node(config: Config) -> anyhow::Result<()> {
    let grace = Duration::from_secs(5);
    let node = Node::start(config).await?;
    for listener in node.listeners() {
        eprintln!("wampmesh node {}: {} listening on {}", node.id, listener.transport, listener.local_addr);
    }
    wait_for_signal().await?;
    eprintln!("wampmesh node {}: shutting down (a second signal aborts)", node.id);
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
