//! The pinned Python venv (`target/interop-venv`) that interop tests run third-party clients
//! from, built once from tests/interop/requirements.txt and shared safely between test binaries.
#![allow(dead_code)]

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use super::run_with_timeout;

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
        "venv {} built but `import autobahn, cbor2, msgpack, nacl, autobahn.wamp.cryptosign` fails",
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
            Command::new(python).args([
                "-c",
                "import autobahn, cbor2, msgpack, nacl, autobahn.wamp.cryptosign",
            ]),
            Duration::from_secs(60),
        )
        .success()
}

/// A lock held by creating a file with `create_new`, removed on drop. A lock left by a process
/// that no longer exists (or older than the wait limit) is taken over.
pub struct LockFile {
    path: PathBuf,
}

impl LockFile {
    pub fn acquire(path: &Path, timeout: Duration) -> LockFile {
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
