//! Process-level gauges for leak checks: resident memory (from `/proc/self/status`) and the
//! tasks alive in the tokio runtime that serves the scrape.

use std::fmt::Write as _;

use super::header;

/// Resident set size of this process in bytes, from `VmRSS` in `/proc/self/status` (kB there;
/// read from `status` rather than `statm` so that no page size is needed). `None` where there
/// is no procfs.
pub fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Tasks alive in the current tokio runtime (spawned and not yet finished; blocking-pool work
/// is not counted). `None` outside a runtime.
pub fn tasks_alive() -> Option<usize> {
    let handle = tokio::runtime::Handle::try_current().ok()?;
    Some(handle.metrics().num_alive_tasks())
}

/// Appends `process_resident_memory_bytes` and `wampmesh_tasks_alive` (each only when it can
/// be read).
pub fn render(out: &mut String) {
    if let Some(rss) = resident_memory_bytes() {
        header(
            out,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
        );
        let _ = writeln!(out, "process_resident_memory_bytes {rss}");
    }
    if let Some(tasks) = tasks_alive() {
        header(
            out,
            "wampmesh_tasks_alive",
            "gauge",
            "Tasks alive in the node's tokio runtime.",
        );
        let _ = writeln!(out, "wampmesh_tasks_alive {tasks}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_parsed_in_bytes() {
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmRSS:\t    1234 kB\nThreads:\t4\n";
        assert_eq!(parse_vm_rss(status), Some(1234 * 1024));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
    }

    #[test]
    fn this_process_has_memory() {
        assert!(resident_memory_bytes().is_some_and(|b| b > 0));
    }

    #[tokio::test]
    async fn tasks_are_counted_in_a_runtime() {
        let before = tasks_alive().expect("in a runtime");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = rx.await;
        });
        assert_eq!(tasks_alive(), Some(before + 1));
        let _ = tx.send(());
        task.await.unwrap();
        assert_eq!(tasks_alive(), Some(before));
        assert_eq!(std::thread::spawn(tasks_alive).join().unwrap(), None);
    }
}
