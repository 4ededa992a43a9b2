//! Shared helpers for the integration tests: free ports on 127.0.0.1, scratch directories, child
//! processes with a deadline, a `NodeProcess` guard around the real `wampmesh node` binary, and
//! the pinned Python venv that the interop tests run third-party clients from.
//!
//! Each test binary compiles this module on its own (`mod common;`), so helpers one binary does
//! not use are not dead code.
#![allow(dead_code)]

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long `NodeProcess::start` waits for the node's port to accept connections.
pub const NODE_READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Lines of a node's stderr printed when a test that owns it fails.
const STDERR_TAIL_LINES: usize = 60;

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
    let mut child = command
        .stdin(Stdio::null())
        .stdout(create(&out_path))
        .stderr(create(&err_path))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
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

// ---------------------------------------------------------------------------------------------
// Python venv for interop tests with third-party clients

/// The directory holding the interop scripts and their `requirements.txt`.
pub fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("interop")
}

/// The Python interpreter inside a venv made by `python_venv`.
pub fn venv_python(venv: &Path) -> PathBuf {
    venv.join("bin").join("python")
}

const VENV_MARKER: &str = "wampmesh-requirements.txt";
const VENV_BUILD_TIMEOUT: Duration = Duration::from_secs(600);
const VENV_LOCK_TIMEOUT: Duration = Duration::from_secs(900);

/// `target/interop-venv`, made with `python3 -m venv` and `pip install -r
/// tests/interop/requirements.txt` on first use and reused after. A marker file in the venv
/// holds the base interpreter's version and the exact requirements it was built from; when
/// either changes, the venv is rebuilt. Safe when several test binaries (and threads) call it at
/// once: one builds under `target/interop-venv.lock`, the others wait. The base interpreter is
/// `$WAMPMESH_PYTHON` or `python3`. A missing python, venv or pip panics: a failure, not a skip.
pub fn python_venv() -> PathBuf {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(build_or_reuse_venv).clone()
}

fn build_or_reuse_venv() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .to_path_buf();
    let venv = target.join("interop-venv");
    let requirements = interop_dir().join("requirements.txt");
    let wanted = format!(
        "python: {}\n{}",
        base_python_version(),
        fs::read_to_string(&requirements)
            .unwrap_or_else(|e| panic!("read {}: {e}", requirements.display()))
    );
    let _lock = LockFile::acquire(&target.join("interop-venv.lock"), VENV_LOCK_TIMEOUT);
    let marker = venv.join(VENV_MARKER);
    if fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) && imports_ok(&venv) {
        return venv;
    }
    if venv.exists() {
        fs::remove_dir_all(&venv)
            .unwrap_or_else(|e| panic!("remove stale {}: {e}", venv.display()));
    }
    let made = run_with_timeout(
        Command::new(base_python()).arg("-m").arg("venv").arg(&venv),
        VENV_BUILD_TIMEOUT,
    );
    assert!(
        made.success(),
        "`{} -m venv {}` failed (is python3-venv installed?)\n{}",
        base_python(),
        venv.display(),
        made.report()
    );
    let installed = run_with_timeout(
        Command::new(venv_python(&venv))
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "-r",
            ])
            .arg(&requirements),
        VENV_BUILD_TIMEOUT,
    );
    assert!(
        installed.success(),
        "pip install -r {} failed\n{}",
        requirements.display(),
        installed.report()
    );
    assert!(
        imports_ok(&venv),
        "venv {} built but `import autobahn, cbor2, msgpack` fails",
        venv.display()
    );
    fs::write(&marker, wanted).unwrap_or_else(|e| panic!("write {}: {e}", marker.display()));
    venv
}

fn base_python() -> String {
    std::env::var("WAMPMESH_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

fn base_python_version() -> String {
    let python = base_python();
    let need = format!(
        "the interop tests need Python 3 with venv and ensurepip as `{python}` (or set WAMPMESH_PYTHON)"
    );
    let out = Command::new(&python)
        .args([
            "-c",
            "import sys, venv, ensurepip; print(sys.version.split()[0])",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{need}: cannot run `{python}`: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{need}: {}\n{stderr}", out.status);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn imports_ok(venv: &Path) -> bool {
    let python = venv_python(venv);
    python.exists()
        && run_with_timeout(
            Command::new(python).args(["-c", "import autobahn, cbor2, msgpack"]),
            Duration::from_secs(60),
        )
        .success()
}

/// A lock held by creating a file with `create_new`, removed on drop. A lock left by a process
/// that no longer exists (or older than the wait limit) is taken over.
struct LockFile {
    path: PathBuf,
}

impl LockFile {
    fn acquire(path: &Path, timeout: Duration) -> LockFile {
        let started = Instant::now();
        loop {
            match OpenOptions::new().write(true).create_new(true).open(path) {
                Ok(mut file) => {
                    let _ = write!(file, "{}", std::process::id());
                    return LockFile {
                        path: path.to_path_buf(),
                    };
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    if Self::is_stale(path, timeout) {
                        let _ = fs::remove_file(path);
                        continue;
                    }
                    assert!(
                        started.elapsed() < timeout,
                        "waited {timeout:?} for {}",
                        path.display()
                    );
                    thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("create {}: {e}", path.display()),
            }
        }
    }

    fn is_stale(path: &Path, max_age: Duration) -> bool {
        let owner_gone = fs::read_to_string(path)
            .ok()
            .and_then(|pid| pid.trim().parse::<u32>().ok())
            .is_some_and(|pid| {
                Path::new("/proc/self").exists() && !Path::new(&format!("/proc/{pid}")).exists()
            });
        let too_old = fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > max_age);
        owner_gone || too_old
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}
