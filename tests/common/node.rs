//! `NodeProcess`: a real `wampmesh node --config FILE` child process for integration tests,
//! waited on until its port accepts connections and killed on drop.
#![allow(dead_code)]

use std::fs::{self, File};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::{file_tail, scratch_dir};

/// How long `NodeProcess::start` waits for the node's port to accept connections.
pub const NODE_READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Lines of a node's stderr printed when a test that owns it fails.
const STDERR_TAIL_LINES: usize = 60;

/// A running `wampmesh node --config FILE`, killed when dropped.
///
/// The config is written to a fresh scratch directory next to the node's `stdout.log` and
/// `stderr.log`. When the owning test panics, the tail of stderr is printed and the directory is
/// kept for a look; otherwise it is removed.
pub struct NodeProcess {
    child: Child,
    /// The address `start` waited on.
    pub addr: SocketAddr,
    pub dir: PathBuf,
    pub config_path: PathBuf,
    pub stderr_path: PathBuf,
    pub stdout_path: PathBuf,
}

impl NodeProcess {
    /// Writes `config_toml`, starts the node and waits (at most `NODE_READY_TIMEOUT`) until
    /// `ready_addr` accepts TCP connections. Panics with the node's stderr if it exits or never
    /// gets ready. `RUST_LOG` is passed through, `debug` when unset.
    pub fn start(label: &str, config_toml: &str, ready_addr: SocketAddr) -> NodeProcess {
        Self::start_with_args(label, config_toml, ready_addr, &[])
    }

    /// Like `start`, with extra arguments after `node --config FILE`.
    pub fn start_with_args(
        label: &str,
        config_toml: &str,
        ready_addr: SocketAddr,
        extra: &[&str],
    ) -> NodeProcess {
        let dir = scratch_dir(label);
        let config_path = dir.join("node.toml");
        fs::write(&config_path, config_toml)
            .unwrap_or_else(|e| panic!("write {}: {e}", config_path.display()));
        let (stdout_path, stderr_path) = (dir.join("stdout.log"), dir.join("stderr.log"));
        let create =
            |p: &Path| File::create(p).unwrap_or_else(|e| panic!("create {}: {e}", p.display()));
        let mut command = Command::new(env!("CARGO_BIN_EXE_wampmesh"));
        command
            .arg("node")
            .arg("--config")
            .arg(&config_path)
            .args(extra)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(create(&stdout_path))
            .stderr(create(&stderr_path));
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", "debug");
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        let mut node = NodeProcess {
            child,
            addr: ready_addr,
            dir,
            config_path,
            stderr_path,
            stdout_path,
        };
        node.wait_ready(ready_addr, NODE_READY_TIMEOUT);
        node
    }

    fn wait_ready(&mut self, addr: SocketAddr, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait on the node") {
                panic!(
                    "wampmesh node exited before {addr} accepted connections: {status}\n{}",
                    self.logs_tail()
                );
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(250)).is_ok() {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "wampmesh node: {addr} did not accept connections within {timeout:?}\n{}",
                    self.logs_tail()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM (through `kill`, to stay free of libc) and waits up to `timeout` for the
    /// exit; `None` if it is still running then (Drop will kill it).
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn stderr_tail(&self, lines: usize) -> String {
        file_tail(&self.stderr_path, lines)
    }

    /// The tail of stderr (and of stdout when it has anything), labelled, for failure messages.
    pub fn logs_tail(&self) -> String {
        let mut text = format!(
            "--- wampmesh node stderr (last {STDERR_TAIL_LINES} lines of {}) ---\n{}",
            self.stderr_path.display(),
            self.stderr_tail(STDERR_TAIL_LINES)
        );
        let stdout = file_tail(&self.stdout_path, 20);
        if !stdout.is_empty() {
            text.push_str(&format!(
                "\n--- wampmesh node stdout (last 20 lines) ---\n{stdout}"
            ));
        }
        text
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!(
                "{}\n(node files kept in {})",
                self.logs_tail(),
                self.dir.display()
            );
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
