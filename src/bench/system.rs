//! What the bench reads from the machine: cores, kernel, memory, fd limit, and this process's
//! resident memory and open file descriptors (all from /proc).

use serde::Serialize;

/// The machine a run was made on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub kernel: String,
    pub cpu: String,
    pub memory_gib: f64,
    pub fd_limit: u64,
    pub tcp_congestion_control: String,
    pub build: &'static str,
    pub version: &'static str,
    pub git_commit: Option<String>,
}

impl Machine {
    pub fn read() -> Machine {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let cpu = read("/proc/cpuinfo")
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map_or_else(|| "unknown".to_owned(), |s| s.trim().to_owned());
        let memory_kib = meminfo_kib("MemTotal").unwrap_or(0);
        Machine {
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            cpu,
            memory_gib: memory_kib as f64 / (1024.0 * 1024.0),
            fd_limit: fd_limit(),
            tcp_congestion_control: read("/proc/sys/net/ipv4/tcp_congestion_control")
                .trim()
                .to_owned(),
            build: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            version: env!("CARGO_PKG_VERSION"),
            git_commit: git_commit(),
        }
    }
}

fn meminfo_kib(key: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    status_field(&text, key)
}

/// The value (in kB) of `key:` in a /proc status-like text.
fn status_field(text: &str, key: &str) -> Option<u64> {
    let line = text
        .lines()
        .find(|l| l.starts_with(key) && l[key.len()..].starts_with(':'))?;
    line[key.len() + 1..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Resident memory of this process in bytes (VmRSS).
pub fn rss_bytes() -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status_field(&text, "VmRSS").unwrap_or(0) * 1024
}

/// Open file descriptors of this process.
pub fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64)
}

/// CPU time (user + system) this process has used, in seconds (from /proc/self/stat, whose
/// clock ticks are 1/100 s on Linux).
pub fn cpu_seconds() -> f64 {
    let text = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = text.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // After the command name: state is field 3, utime field 14, stime field 15.
    (tick(11) + tick(12)) as f64 / 100.0
}

/// The 1-minute load average (/proc/loadavg).
pub fn load_average() -> f64 {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// The soft limit on open files (`ulimit -n`).
pub fn fd_limit() -> u64 {
    let text = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        assert!(rss_bytes() > 0);
        assert!(open_fds() >= 3);
        assert!(cpu_seconds() >= 0.0);
        assert_eq!(status_field("VmRSS:\t  1234 kB\n", "VmRSS"), Some(1234));
        assert_eq!(
            status_field("VmRSSX: 1 kB\nVmRSS: 7 kB\n", "VmRSS"),
            Some(7)
        );
    }
}
