//! Process-level gauges for leak checks: resident memory (from `/proc/self/status`), the heap
//! bytes the allocator holds for live allocations (glibc `mallinfo2`), and the tasks alive in
//! the tokio runtime that serves the scrape.
//!
//! RSS alone cannot tell a leak from fragmentation: glibc keeps freed memory in its per-thread
//! arenas and returns it to the kernel only now and then, so RSS after the same work moves by
//! megabytes. The heap-in-use gauge counts only what is still allocated, so a leak shows in it
//! and fragmentation does not.

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

/// Bytes of heap in live allocations: glibc's `mallinfo2()` `uordblks` (in use in all arenas)
/// plus `hblkhd` (large allocations served by their own mmap). `None` where the C library is
/// not glibc.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn heap_allocated_bytes() -> Option<u64> {
    // SAFETY: mallinfo2 takes no arguments and returns a plain struct by value; it locks each
    // arena while it sums it, so it is safe to call from any thread at any time.
    let info = unsafe { libc::mallinfo2() };
    Some((info.uordblks + info.hblkhd) as u64)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn heap_allocated_bytes() -> Option<u64> {
    None
}

/// Tasks alive in the current tokio runtime (spawned and not yet finished; blocking-pool work
/// is not counted). `None` outside a runtime.
pub fn tasks_alive() -> Option<usize> {
    let handle = tokio::runtime::Handle::try_current().ok()?;
    Some(handle.metrics().num_alive_tasks())
}

/// Appends `process_resident_memory_bytes`, `wampmesh_heap_allocated_bytes` and
/// `wampmesh_tasks_alive` (each only when it can be read).
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
    if let Some(heap) = heap_allocated_bytes() {
        header(
            out,
            "wampmesh_heap_allocated_bytes",
            "gauge",
            "Heap bytes in live allocations (glibc mallinfo2: uordblks + hblkhd).",
        );
        let _ = writeln!(out, "wampmesh_heap_allocated_bytes {heap}");
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

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn heap_gauge_follows_a_live_allocation() {
        const SIZE: usize = 64 << 20;
        let before = heap_allocated_bytes().expect("glibc");
        let block = vec![1u8; SIZE];
        let during = heap_allocated_bytes().expect("glibc");
        drop(std::hint::black_box(block));
        let after = heap_allocated_bytes().expect("glibc");
        // Other tests allocate concurrently, so compare with slack far below the block size.
        assert!(during >= before + SIZE as u64 / 2, "{before} -> {during}");
        assert!(after + SIZE as u64 / 2 <= during, "{during} -> {after}");
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
