//! The metrics endpoint: a minimal HTTP/1.1 responder on tokio. Each connection sends one
//! request head; `GET /metrics` (or HEAD) is answered with the Prometheus text, anything else
//! with 404 or 405, and the connection is closed.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Scrape;

/// How long a scraper may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request head read; a bigger one is answered 431 and closed.
const MAX_REQUEST_HEAD: usize = 8192;

/// The HTTP endpoint: accepts, answers one request per connection, closes.
#[derive(Debug)]
pub struct MetricsServer {
    local_addr: String,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl MetricsServer {
    /// Binds `address` and starts serving `scrape`.
    pub async fn bind(address: &str, scrape: Scrape) -> std::io::Result<MetricsServer> {
        let listener = TcpListener::bind(address).await?;
        let local_addr = listener.local_addr()?.to_string();
        let (stop, tasks) = (CancellationToken::new(), TaskTracker::new());
        let scrape = Arc::new(scrape);
        let (accept_stop, accept_tasks) = (stop.clone(), tasks.clone());
        tasks.spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = accept_stop.cancelled() => break,
                    accepted = listener.accept() => accepted,
                };
                match accepted {
                    Ok((stream, _)) => {
                        let (scrape, stop) = (Arc::clone(&scrape), accept_stop.clone());
                        accept_tasks.spawn(async move {
                            tokio::select! {
                                _ = stop.cancelled() => {}
                                _ = answer(stream, &scrape) => {}
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        });
        tracing::info!(address = %local_addr, "serving metrics");
        Ok(MetricsServer {
            local_addr,
            stop,
            tasks,
        })
    }

    /// Starts the endpoint of `[metrics]`; `None` when the section is absent.
    pub async fn start(
        config: Option<&crate::config::MetricsConfig>,
        scrape: Scrape,
    ) -> Result<Option<MetricsServer>, crate::transport::TransportError> {
        let Some(config) = config else {
            return Ok(None);
        };
        let bind = MetricsServer::bind(&config.address, scrape).await;
        bind.map(Some)
            .map_err(|source| crate::transport::TransportError::Bind {
                transport: "metrics",
                address: config.address.clone(),
                source,
            })
    }

    /// The bound address (with the real port when the config said port 0).
    pub fn local_addr(&self) -> &str {
        &self.local_addr
    }

    /// Stops accepting (the port is free when this returns) and ends open requests.
    pub async fn stop(&self) {
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// Reads one request head and writes the answer.
async fn answer(mut stream: TcpStream, scrape: &Scrape) {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let complete = tokio::time::timeout(REQUEST_TIMEOUT, async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() <= MAX_REQUEST_HEAD {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        true
    })
    .await;
    if complete != Ok(true) {
        return;
    }
    let response = respond(&head, scrape);
    let _ = stream.write_all(&response).await;
    let _ = stream.shutdown().await;
}

/// The whole response to a request head.
fn respond(head: &[u8], scrape: &Scrape) -> Vec<u8> {
    if head.len() > MAX_REQUEST_HEAD {
        return response(
            "431 Request Header Fields Too Large",
            "text/plain",
            "request head too large\n",
            true,
        );
    }
    let line = head.split(|b| *b == b'\r').next().unwrap_or_default();
    let mut parts = std::str::from_utf8(line).unwrap_or("").split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET" | "HEAD", "/metrics") => {
            let body = scrape.render();
            response(
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                &body,
                method == "GET",
            )
        }
        ("GET" | "HEAD", _) => response(
            "404 Not Found",
            "text/plain",
            "try /metrics\n",
            method == "GET",
        ),
        _ => response("405 Method Not Allowed", "text/plain", "only GET\n", true),
    }
}

fn response(status: &str, content_type: &str, body: &str, with_body: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if with_body {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_answers() {
        let s = super::super::tests::scrape();
        let ok =
            String::from_utf8(respond(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &s)).unwrap();
        assert!(
            ok.starts_with("HTTP/1.1 200 OK\r\n") && ok.contains("wampmesh_realms 0"),
            "{ok}"
        );
        let head = String::from_utf8(respond(b"HEAD /metrics HTTP/1.1\r\n\r\n", &s)).unwrap();
        assert!(head.ends_with("\r\n\r\n"), "HEAD has no body: {head}");
        assert!(String::from_utf8(respond(b"GET / HTTP/1.1\r\n\r\n", &s))
            .unwrap()
            .starts_with("HTTP/1.1 404"));
        assert!(
            String::from_utf8(respond(b"POST /metrics HTTP/1.1\r\n\r\n", &s))
                .unwrap()
                .starts_with("HTTP/1.1 405")
        );
    }
}
