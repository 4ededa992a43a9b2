//! Reading a node's Prometheus endpoint (`[metrics] address`) from tests: a raw HTTP/1.1 GET,
//! and the value of one sample.
#![allow(dead_code)]

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// The body of `GET /metrics` at `addr`; panics if the node does not answer 200 in time.
pub async fn scrape(addr: &str) -> String {
    let answer = timeout(SCRAPE_TIMEOUT, async {
        let mut stream = TcpStream::connect(addr).await?;
        let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    })
    .await
    .unwrap_or_else(|_| panic!("metrics at {addr} did not answer within {SCRAPE_TIMEOUT:?}"))
    .unwrap_or_else(|e| panic!("metrics at {addr}: {e}"));
    let text = String::from_utf8(answer).expect("UTF-8 metrics");
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP head and body");
    assert!(head.starts_with("HTTP/1.1 200"), "metrics answered {head}");
    body.to_owned()
}

/// The value of the sample `series` (the exact text before the value), if present.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
}

/// Like `sample`, panicking with the scrape when the sample is missing.
pub fn value(text: &str, series: &str) -> f64 {
    sample(text, series).unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
}

/// One scrape's value of `series` at `addr`.
pub async fn read(addr: &str, series: &str) -> f64 {
    value(&scrape(addr).await, series)
}

/// What a node holds, for leak checks: RSS, heap in live allocations, alive tokio tasks.
#[derive(Clone, Copy, Debug)]
pub struct Footprint {
    pub rss: f64,
    pub heap: f64,
    pub tasks: f64,
}

/// The footprint of the node serving `addr`, from one scrape.
pub async fn footprint(addr: &str) -> Footprint {
    let text = scrape(addr).await;
    Footprint {
        rss: value(&text, "process_resident_memory_bytes"),
        heap: value(&text, "wampmesh_heap_allocated_bytes"),
        tasks: value(&text, "wampmesh_tasks_alive"),
    }
}

pub const MIB: f64 = 1024.0 * 1024.0;
