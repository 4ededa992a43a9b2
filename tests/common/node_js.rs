//! The pinned Node.js packages of the autobahn-js and browser tests: tests/interop/js/
//! (package.json + package-lock.json + scripts) is copied to `target/node-interop/` and
//! installed there with `npm ci` on first use, or again when the lock file changes. A missing
//! `node` or `npm`, or a failed install, is a test failure, never a skip.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use super::{interop_dir, run_with_timeout, LockFile};

/// What is installed, next to node_modules: the lock file it was installed from.
const MARKER: &str = "node_modules/.wampmesh-package-lock.json";
const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);
const LOCK_TIMEOUT: Duration = Duration::from_secs(900);
/// Files every consumer needs; their absence means the install is broken.
const REQUIRED: [&str; 2] = [
    "node_modules/autobahn/package.json",
    "node_modules/autobahn-browser/autobahn.min.js",
];

/// `target/node-interop`, installed, with the current scripts of tests/interop/js copied in.
pub fn node_interop_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(install_or_reuse).clone()
}

/// `node`, with `--experimental-websocket` on Node < 22 (autobahn-js 26 uses the global
/// WebSocket, which Node 22 has by default and Node 20 behind that flag).
pub fn node_command() -> Command {
    let mut command = Command::new("node");
    if node_major() < 22 {
        command.arg("--experimental-websocket");
    }
    command
}

fn node_major() -> u32 {
    let out = Command::new("node")
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("the autobahn-js tests need Node.js (`node`): {e}"));
    assert!(out.status.success(), "`node --version` failed: {out:?}");
    let version = String::from_utf8_lossy(&out.stdout);
    version
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|major| major.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the Node.js version from {version:?}"))
}

fn install_or_reuse() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .to_path_buf();
    let dir = target.join("node-interop");
    let source = interop_dir().join("js");
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    let _lock = LockFile::acquire(&target.join("node-interop.lock"), LOCK_TIMEOUT);
    for entry in fs::read_dir(&source).unwrap_or_else(|e| panic!("{}: {e}", source.display())) {
        let path = entry.expect("dir entry").path();
        if path.is_file() {
            let to = dir.join(path.file_name().expect("file name"));
            fs::copy(&path, &to).unwrap_or_else(|e| panic!("copy {}: {e}", path.display()));
        }
    }
    let wanted = fs::read_to_string(source.join("package-lock.json"))
        .unwrap_or_else(|e| panic!("read tests/interop/js/package-lock.json: {e}"));
    let marker = dir.join(MARKER);
    let installed = REQUIRED.iter().all(|f| dir.join(f).is_file());
    if installed && fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) {
        return dir;
    }
    let finished = run_with_timeout(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir),
        INSTALL_TIMEOUT,
    );
    assert!(
        finished.success(),
        "`npm ci` in {} failed (the autobahn-js tests need npm and the npm registry)\n{}",
        dir.display(),
        finished.report()
    );
    for file in REQUIRED {
        assert!(
            dir.join(file).is_file(),
            "`npm ci` succeeded but {file} is missing in {}",
            dir.display()
        );
    }
    fs::write(&marker, wanted).unwrap_or_else(|e| panic!("write {}: {e}", marker.display()));
    dir
}
