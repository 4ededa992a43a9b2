//! Shared helpers for the integration tests: free ports on 127.0.0.1, scratch directories and
//! child processes with a deadline (here), a `NodeProcess` guard around the real `wampmesh node`
//! binary (`node.rs`), the pinned Python venv that interop tests run third-party clients
//! from (`python.rs`) with the node config and script runner the autobahn tests share
//! (`interop.rs`), and a hand-written RawSocket peer (`raw.rs`). Use them as
//! `common::free_port`, `common::NodeProcess`, `common::raw::Raw`, ...
//!
//! Each test binary compiles this module on its own (`mod common;`), so helpers one binary does
//! not use are not dead code.
#![allow(dead_code)]

pub mod interop;
pub mod mesh;
mod node;
mod node_js;
mod python;
pub mod raw;
pub mod scrape;

#[allow(unused_imports)] // each test binary uses a different subset
pub use node::{NodeProcess, NODE_READY_TIMEOUT};
#[allow(unused_imports)]
pub use node_js::{node_command, node_interop_dir};
#[allow(unused_imports)]
pub use python::{interop_dir, python_venv, venv_python, LockFile};

use std::fs::{self, File};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A port on 127.0.0.1 that was free a moment ago: bind port 0, read the port, release it.
/// Another process may take it in between; tests accept that small race.
pub fn free_port() -> u16 {
    free_ports(1)[0]
}

/// `count` distinct free ports (all listeners are held until every port is known).
pub fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0"))
        .collect();
    listeners
        .iter()
        .map(|listener| listener.local_addr().expect("local_addr").port())
        .collect()
}

/// `127.0.0.1:port`.
pub fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// A new, empty directory under cargo's per-target scratch directory (`target/tmp`), unique
/// across threads and processes.
pub fn scratch_dir(label: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "{label}-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// True once `addr` accepts a TCP connection, false if `timeout` passes first.
pub fn wait_for_tcp(addr: SocketAddr, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(250)).is_ok() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// The last `lines` lines of a text file (empty if it cannot be read).
pub fn file_tail(path: &Path, lines: usize) -> String {
    let text = fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// What a child process run by `run_with_timeout` did.
#[derive(Debug)]
pub struct Finished {
    /// `None` when the process was killed at the deadline.
    pub status: Option<ExitStatus>,
    pub elapsed: Duration,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// Exit status, deadline and both outputs, for a failure message.
    pub fn report(&self) -> String {
        let status = match self.status {
            Some(status) => format!("{status}"),
            None => format!("killed after the {:?} deadline", self.elapsed),
        };
        format!(
            "status: {status} (after {:.1?})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.elapsed, self.stdout, self.stderr
        )
    }
}

/// Runs `command` to completion with stdout and stderr captured, killing it after `timeout`.
/// Panics if it cannot be started (a missing tool is a test failure, never a skip).
pub fn run_with_timeout(command: &mut Command, timeout: Duration) -> Finished {
    let dir = scratch_dir("run");
    let (out_path, err_path) = (dir.join("stdout.log"), dir.join("stderr.log"));
    let create =
        |p: &Path| File::create(p).unwrap_or_else(|e| panic!("create {}: {e}", p.display()));
    let started = Instant::now();
    let spawned = command
        .stdin(Stdio::null())
        .stdout(create(&out_path))
        .stderr(create(&err_path))
        .spawn();
    let mut child = spawned.unwrap_or_else(|e| {
        let _ = fs::remove_dir_all(&dir);
        panic!("cannot start {command:?}: {e}")
    });
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("waiting for {command:?}: {e}"),
        }
    };
    let read = |p: &Path| {
        fs::read(p)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    let finished = Finished {
        status,
        elapsed: started.elapsed(),
        stdout: read(&out_path),
        stderr: read(&err_path),
    };
    let _ = fs::remove_dir_all(&dir);
    finished
}
