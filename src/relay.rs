//! A lossy, delaying relay for benchmarks and tests: UDP (for QUIC: drops datagrams with a
//! seeded RNG, delays the rest) and TCP (delays the byte stream, never drops).
//!
//! Used by `wampmesh bench` (`setup`, `hol`) to give loopback links a real round-trip time and
//! packet loss without `tc netem`. Everything is bounded: a maximum queue per direction (UDP
//! drops the tail, TCP stops reading), a maximum number of UDP clients, and every task stops
//! when the relay is stopped or dropped.
//!
//! `cut()` / `heal()` partition the path on demand (fault tests): a cut UDP relay drops every
//! datagram both ways; a cut TCP relay closes the connections it relays and closes new ones at
//! once, as a middlebox that resets would. `heal()` relays again.
//!
//! Loss decisions come from `StdRng::seed_from_u64`, one generator per direction (client to
//! upstream uses `seed`, upstream to client `seed ^ DOWN_SEED`), so the same seed and the same
//! arrival order give the same drops.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Mixed into the seed for the upstream-to-client direction.
const DOWN_SEED: u64 = 0x9e37_79b9_7f4a_7c15;
/// Largest datagram relayed (anything bigger is truncated by the kernel, as on a real path).
const MAX_DATAGRAM: usize = 65_536;
/// UDP and TCP socket buffers of the relay (the kernel caps them at `rmem_max`/`wmem_max`).
const SOCKET_BUFFER: usize = 4 * 1024 * 1024;
/// Largest TCP chunk read at once.
const TCP_CHUNK: usize = 64 * 1024;

/// How a relay impairs the path.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RelayConfig {
    /// One-way delay added in each direction (the round trip grows by twice this).
    pub delay: Duration,
    /// Probability that a datagram is dropped, per direction, 0.0..=1.0 (UDP only).
    pub loss: f64,
    /// Seed of the loss decisions.
    pub seed: u64,
    /// Datagrams (UDP) or chunks (TCP) queued per direction; UDP drops beyond it, TCP waits.
    pub max_queue: usize,
    /// UDP: distinct client addresses served at once; further clients are ignored.
    pub max_clients: usize,
    /// TCP: hold each new connection for one round trip (2 x `delay`) before relaying, as the
    /// SYN / SYN-ACK exchange would (the relay's own accept completes at once).
    pub tcp_handshake: bool,
}

impl Default for RelayConfig {
    /// No delay, no loss, seed 0, 8192 queued per direction, 64 UDP clients, the TCP
    /// handshake's round trip emulated.
    fn default() -> Self {
        RelayConfig {
            delay: Duration::ZERO,
            loss: 0.0,
            seed: 0,
            max_queue: 8192,
            max_clients: 64,
            tcp_handshake: true,
        }
    }
}

/// What a relay did so far (both directions together).
#[derive(Debug, Default)]
pub struct RelayStats {
    /// Datagrams or chunks read.
    pub received: AtomicU64,
    /// Datagrams or chunks written on.
    pub forwarded: AtomicU64,
    /// UDP datagrams dropped by the loss model.
    pub dropped_loss: AtomicU64,
    /// UDP datagrams dropped because the queue was full.
    pub dropped_queue: AtomicU64,
    /// UDP datagrams dropped, or TCP connections closed, because the relay was cut.
    pub dropped_cut: AtomicU64,
    /// TCP connections accepted.
    pub connections: AtomicU64,
}

/// A copy of [`RelayStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayCounts {
    pub received: u64,
    pub forwarded: u64,
    pub dropped_loss: u64,
    pub dropped_queue: u64,
    pub dropped_cut: u64,
    pub connections: u64,
}

impl RelayStats {
    pub fn snapshot(&self) -> RelayCounts {
        RelayCounts {
            received: self.received.load(Ordering::Relaxed),
            forwarded: self.forwarded.load(Ordering::Relaxed),
            dropped_loss: self.dropped_loss.load(Ordering::Relaxed),
            dropped_queue: self.dropped_queue.load(Ordering::Relaxed),
            dropped_cut: self.dropped_cut.load(Ordering::Relaxed),
            connections: self.connections.load(Ordering::Relaxed),
        }
    }
}

/// The part both relays share: address, tasks, stop switch, counters.
#[derive(Debug)]
struct Running {
    local: SocketAddr,
    stop: CancellationToken,
    tasks: TaskTracker,
    stats: Arc<RelayStats>,
    /// Set while the relay is cut.
    cut: Arc<AtomicBool>,
}

impl Running {
    async fn stop(&self) {
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A bound socket2 UDP socket with large buffers, as a tokio socket.
fn udp_socket(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let domain = if addr.is_ipv4() {
        socket2::Domain::IPV4
    } else {
        socket2::Domain::IPV6
    };
    let socket = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// Where a delayed datagram goes: upstream through a client's socket, or back to a client.
enum Target {
    Upstream(Arc<UdpSocket>),
    Client(SocketAddr),
}

struct Datagram {
    due: Instant,
    target: Target,
    bytes: Bytes,
}

/// One direction's loss model and queue.
struct Direction {
    rng: Mutex<StdRng>,
    loss: f64,
    delay: Duration,
    queue: mpsc::Sender<Datagram>,
    stats: Arc<RelayStats>,
    cut: Arc<AtomicBool>,
}

impl Direction {
    /// Counts, drops while cut, by the loss model or for a full queue, or queues for sending.
    fn offer(&self, target: Target, bytes: Bytes) {
        self.stats.received.fetch_add(1, Ordering::Relaxed);
        if self.cut.load(Ordering::Relaxed) {
            self.stats.dropped_cut.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let lost = self.loss > 0.0
            && self
                .rng
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .gen::<f64>()
                < self.loss;
        if lost {
            self.stats.dropped_loss.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let datagram = Datagram {
            due: Instant::now() + self.delay,
            target,
            bytes,
        };
        if self.queue.try_send(datagram).is_err() {
            self.stats.dropped_queue.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A UDP relay: datagrams from clients to `listen` go to `upstream` (from one socket per
/// client, so replies find their way back), replies go back to the client.
#[derive(Debug)]
pub struct UdpRelay {
    running: Running,
}

impl UdpRelay {
    /// Binds `listen` (port 0 for any) and starts relaying to `upstream`.
    pub async fn start(
        listen: SocketAddr,
        upstream: SocketAddr,
        config: RelayConfig,
    ) -> std::io::Result<UdpRelay> {
        let socket = Arc::new(udp_socket(listen)?);
        let local = socket.local_addr()?;
        let (stop, tasks, stats) = (
            CancellationToken::new(),
            TaskTracker::new(),
            Arc::new(RelayStats::default()),
        );
        let cut = Arc::new(AtomicBool::new(false));
        let direction = |seed: u64, queue| Direction {
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            loss: config.loss.clamp(0.0, 1.0),
            delay: config.delay,
            queue,
            stats: Arc::clone(&stats),
            cut: Arc::clone(&cut),
        };
        let (up_tx, up_rx) = mpsc::channel(config.max_queue.max(1));
        let (down_tx, down_rx) = mpsc::channel(config.max_queue.max(1));
        let up = Arc::new(direction(config.seed, up_tx));
        let down = Arc::new(direction(config.seed ^ DOWN_SEED, down_tx));
        tasks.spawn(send_delayed(
            up_rx,
            Arc::clone(&socket),
            Arc::clone(&stats),
            stop.clone(),
        ));
        tasks.spawn(send_delayed(
            down_rx,
            Arc::clone(&socket),
            Arc::clone(&stats),
            stop.clone(),
        ));
        let ingress = Ingress {
            socket,
            upstream,
            up,
            down,
            max_clients: config.max_clients.max(1),
            tasks: tasks.clone(),
        };
        tasks.spawn(ingress.run(stop.clone()));
        Ok(UdpRelay {
            running: Running {
                local,
                stop,
                tasks,
                stats,
                cut,
            },
        })
    }

    /// Drops every datagram, both ways, until `heal`.
    pub fn cut(&self) {
        self.running.cut.store(true, Ordering::Relaxed);
    }

    /// Relays again after `cut`.
    pub fn heal(&self) {
        self.running.cut.store(false, Ordering::Relaxed);
    }

    /// The address clients send to.
    pub fn local_addr(&self) -> SocketAddr {
        self.running.local
    }

    pub fn stats(&self) -> RelayCounts {
        self.running.stats.snapshot()
    }

    /// Stops relaying and waits until every task has ended (dropping does the first part).
    pub async fn stop(self) {
        self.running.stop().await;
    }
}

/// Reads datagrams from clients; makes one upstream socket (and reader task) per client.
struct Ingress {
    socket: Arc<UdpSocket>,
    upstream: SocketAddr,
    up: Arc<Direction>,
    down: Arc<Direction>,
    max_clients: usize,
    tasks: TaskTracker,
}

impl Ingress {
    async fn run(self, stop: CancellationToken) {
        let mut clients: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let (len, from) = tokio::select! {
                _ = stop.cancelled() => break,
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::debug!(error = %e, "udp relay: receive failed");
                        continue;
                    }
                },
            };
            let outbound = match clients.get(&from) {
                Some(s) => Arc::clone(s),
                None if clients.len() >= self.max_clients => continue,
                None => match self.client_socket(from, &stop).await {
                    Ok(s) => Arc::clone(clients.entry(from).or_insert(s)),
                    Err(e) => {
                        tracing::warn!(error = %e, "udp relay: cannot open an upstream socket");
                        continue;
                    }
                },
            };
            self.up.offer(
                Target::Upstream(outbound),
                Bytes::copy_from_slice(&buf[..len]),
            );
        }
    }

    /// A socket connected to upstream for `client`, with a task reading the replies.
    async fn client_socket(
        &self,
        client: SocketAddr,
        stop: &CancellationToken,
    ) -> std::io::Result<Arc<UdpSocket>> {
        let any: SocketAddr = if self.upstream.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        }
        .parse()
        .map_err(std::io::Error::other)?;
        let socket = Arc::new(udp_socket(any)?);
        socket.connect(self.upstream).await?;
        let (reader, down, stop) = (Arc::clone(&socket), Arc::clone(&self.down), stop.clone());
        self.tasks.spawn(async move {
            let mut buf = vec![0u8; MAX_DATAGRAM];
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    received = reader.recv(&mut buf) => match received {
                        Ok(len) => down.offer(Target::Client(client), Bytes::copy_from_slice(&buf[..len])),
                        // ICMP port unreachable from a restarted upstream: keep going.
                        Err(e) => tracing::trace!(error = %e, "udp relay: upstream receive failed"),
                    },
                }
            }
        });
        Ok(socket)
    }
}

/// Sends queued datagrams when they are due (the delay is constant, so FIFO order is due order).
async fn send_delayed(
    mut queue: mpsc::Receiver<Datagram>,
    listen: Arc<UdpSocket>,
    stats: Arc<RelayStats>,
    stop: CancellationToken,
) {
    loop {
        let datagram = tokio::select! {
            _ = stop.cancelled() => break,
            next = queue.recv() => match next {
                Some(d) => d,
                None => break,
            },
        };
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep_until(datagram.due) => {}
        }
        let sent = match &datagram.target {
            Target::Upstream(socket) => socket.send(&datagram.bytes).await,
            Target::Client(addr) => listen.send_to(&datagram.bytes, *addr).await,
        };
        if sent.is_ok() {
            stats.forwarded.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A TCP relay: each accepted connection is joined to a new connection to `upstream`; bytes
/// are delayed by `delay` in each direction (never dropped: TCP has no datagrams to lose).
#[derive(Debug)]
pub struct TcpRelay {
    running: Running,
    /// Parent of the relayed connections' stop tokens; cancelled and replaced by `cut`.
    connections: Arc<Mutex<CancellationToken>>,
}

impl TcpRelay {
    /// Binds `listen` (port 0 for any) and starts relaying to `upstream`.
    pub async fn start(
        listen: SocketAddr,
        upstream: SocketAddr,
        config: RelayConfig,
    ) -> std::io::Result<TcpRelay> {
        let listener = TcpListener::bind(listen).await?;
        let local = listener.local_addr()?;
        let (stop, tasks, stats) = (
            CancellationToken::new(),
            TaskTracker::new(),
            Arc::new(RelayStats::default()),
        );
        let cut = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(Mutex::new(stop.child_token()));
        let accept = TcpAccept {
            listener,
            upstream,
            config,
            tasks: tasks.clone(),
            stats: Arc::clone(&stats),
            cut: Arc::clone(&cut),
            connections: Arc::clone(&connections),
        };
        tasks.spawn(accept.run(stop.clone()));
        Ok(TcpRelay {
            running: Running {
                local,
                stop,
                tasks,
                stats,
                cut,
            },
            connections,
        })
    }

    /// Closes every relayed connection, and closes new ones at once, until `heal`.
    pub fn cut(&self) {
        self.running.cut.store(true, Ordering::Relaxed);
        let mut connections = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        connections.cancel();
        *connections = self.running.stop.child_token();
    }

    /// Relays new connections again after `cut`.
    pub fn heal(&self) {
        self.running.cut.store(false, Ordering::Relaxed);
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.running.local
    }

    pub fn stats(&self) -> RelayCounts {
        self.running.stats.snapshot()
    }

    /// Stops relaying (closing every relayed connection) and waits for the tasks.
    pub async fn stop(self) {
        self.running.stop().await;
    }
}

struct TcpAccept {
    listener: TcpListener,
    upstream: SocketAddr,
    config: RelayConfig,
    tasks: TaskTracker,
    stats: Arc<RelayStats>,
    cut: Arc<AtomicBool>,
    connections: Arc<Mutex<CancellationToken>>,
}

impl TcpAccept {
    async fn run(self, stop: CancellationToken) {
        loop {
            let client = tokio::select! {
                _ = stop.cancelled() => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::debug!(error = %e, "tcp relay: accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                },
            };
            self.stats.connections.fetch_add(1, Ordering::Relaxed);
            if self.cut.load(Ordering::Relaxed) {
                self.stats.dropped_cut.fetch_add(1, Ordering::Relaxed);
                drop(client);
                continue;
            }
            let connection_stop = self
                .connections
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .child_token();
            let (upstream, config, stats, stop, tasks) = (
                self.upstream,
                self.config,
                Arc::clone(&self.stats),
                connection_stop,
                self.tasks.clone(),
            );
            self.tasks.spawn(async move {
                if config.tcp_handshake && !config.delay.is_zero() {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(config.delay * 2) => {}
                    }
                }
                let server = tokio::select! {
                    _ = stop.cancelled() => return,
                    connected = TcpStream::connect(upstream) => match connected {
                        Ok(s) => s,
                        Err(e) => return tracing::debug!(error = %e, "tcp relay: upstream connect failed"),
                    },
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                // Either direction ending (or a stop) ends both.
                let done = stop.child_token();
                tasks.spawn(pipe(client_read, server_write, config, Arc::clone(&stats), done.clone()));
                tasks.spawn(pipe(server_read, client_write, config, stats, done));
            });
        }
    }
}

/// Copies one direction of a TCP connection with a delay: a reader queues timed chunks
/// (waiting when `max_queue` are queued), a writer sends each when due.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    config: RelayConfig,
    stats: Arc<RelayStats>,
    done: CancellationToken,
) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Bytes)>(config.max_queue.max(1));
    let writer_done = done.clone();
    let writer_stats = Arc::clone(&stats);
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                break;
            }
            writer_stats.forwarded.fetch_add(1, Ordering::Relaxed);
        }
        let _ = to.shutdown().await;
        writer_done.cancel();
    };
    let reader = async move {
        let mut buf = vec![0u8; TCP_CHUNK];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    stats.received.fetch_add(1, Ordering::Relaxed);
                    let chunk = (
                        Instant::now() + config.delay,
                        Bytes::copy_from_slice(&buf[..n]),
                    );
                    if tx.send(chunk).await.is_err() {
                        break;
                    }
                }
            }
        }
        // Dropping `tx` lets the writer send what is queued, then shut its side down.
    };
    tokio::select! {
        _ = done.cancelled() => {}
        _ = async { tokio::join!(reader, writer) } => {}
    }
}
