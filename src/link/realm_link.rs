//! One realm linked to one peer: connect (a stream on the peer's QUIC connection, or a TCP/TLS
//! connection), join the realm on both nodes, carry traffic, report the end, and reconnect only
//! if the policy says so.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::client::{ClientAuth, ClientConfig};
use crate::config::{LinkTransport, ReconnectPolicy};
use crate::transport::tls_tcp;
use crate::wamp::{Dict, Serializer, Value};

use super::local::LocalSide;
use super::remote::{ByteStream, RemoteSide, LEAVE_TIMEOUT};
use super::shuttle::{self, LinkCounters};
use super::{LinkContext, LinkEvent, LinkSpec};

/// Where a link is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    Stopped,
    Connecting,
    Up,
    /// Lost; waiting to reconnect (backoff policy).
    Down,
}

impl LinkState {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Stopped => "stopped",
            LinkState::Connecting => "connecting",
            LinkState::Up => "up",
            LinkState::Down => "down",
        }
    }
}

#[derive(Debug)]
struct Status {
    state: LinkState,
    up_since: Option<Instant>,
    last_error: Option<String>,
    /// Handshakes this link made itself (TCP/TLS: one per connect).
    handshakes: u64,
}

struct Running {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// A restartable realm link.
pub struct RealmLink {
    spec: super::LinkSpec,
    context: Arc<LinkContext>,
    running: Mutex<Option<Running>>,
    status: Mutex<Status>,
    counters: Mutex<Arc<LinkCounters>>,
}

impl RealmLink {
    pub(crate) fn new(spec: LinkSpec, context: Arc<LinkContext>) -> RealmLink {
        RealmLink {
            spec,
            context,
            running: Mutex::new(None),
            status: Mutex::new(Status {
                state: LinkState::Stopped,
                up_since: None,
                last_error: None,
                handshakes: 0,
            }),
            counters: Mutex::new(Arc::default()),
        }
    }

    pub fn spec(&self) -> &LinkSpec {
        &self.spec
    }

    pub fn state(&self) -> LinkState {
        self.lock_status().state
    }

    fn lock_status(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the link unless it is already running.
    pub fn start(self: &Arc<Self>, parent: &CancellationToken) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if running.as_ref().is_some_and(|r| !r.task.is_finished()) {
            return;
        }
        let stop = parent.child_token();
        let task = self
            .context
            .tracker
            .spawn(Arc::clone(self).run(stop.clone()));
        *running = Some(Running { stop, task });
    }

    /// Stops the link and resets its state, so that `start` works again.
    pub async fn stop(&self) {
        let running = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(running) = running {
            running.stop.cancel();
            let _ = running.task.await;
        }
        *self.lock_status() = Status {
            state: LinkState::Stopped,
            up_since: None,
            last_error: None,
            handshakes: 0,
        };
        *self.counters.lock().unwrap_or_else(|p| p.into_inner()) = Arc::default();
    }

    /// Cancels without waiting (the link is being replaced).
    pub(crate) fn stop_now(&self) {
        if let Some(running) = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            running.stop.cancel();
        }
    }

    /// `{peer, realm, transport, state, connection, streams, handshakes, messages_in, messages_out, up_secs, last_error}`.
    pub fn status(&self) -> Dict {
        let counters = Arc::clone(&self.counters.lock().unwrap_or_else(|p| p.into_inner()));
        let status = self.lock_status();
        let peer = self.context.peer(&self.spec.peer, &self.spec.address);
        let (connection, streams, handshakes) = match self.spec.transport {
            LinkTransport::Quic => (
                peer.connection_id().map_or(Value::Null, Value::from),
                peer.streams_open.load(Ordering::Relaxed),
                peer.handshakes(),
            ),
            _ => (
                Value::Null,
                u64::from(status.state == LinkState::Up),
                status.handshakes,
            ),
        };
        crate::dict! {
            "peer" => self.spec.peer.clone(),
            "address" => self.spec.address.clone(),
            "realm" => self.spec.realm.clone(),
            "transport" => self.spec.transport.as_str(),
            "state" => status.state.as_str(),
            "connection" => connection,
            "streams" => streams,
            "handshakes" => handshakes,
            "messages_in" => counters.messages_in.load(Ordering::Relaxed),
            "messages_out" => counters.messages_out.load(Ordering::Relaxed),
            "up_secs" => status.up_since.map_or(Value::Null, |t| Value::from(t.elapsed().as_secs_f64())),
            "last_error" => status.last_error.clone().map_or(Value::Null, Value::from),
        }
    }

    /// The link's task: connects and carries until stopped, reconnecting as its policy says.
    ///
    /// Not an `async fn` (nor is `connect_and_carry`): its arguments would be kept twice in the
    /// future, as arguments and as the locals they move into, in every idle link's task.
    #[allow(clippy::manual_async_fn)]
    fn run(self: Arc<Self>, stop: CancellationToken) -> impl std::future::Future<Output = ()> {
        async move {
            let mut attempt: u32 = 0;
            loop {
                self.lock_status().state = LinkState::Connecting;
                // Not raced against `stop`: the shuttle watches it and closes in order (both
                // sessions leave, so calls in flight get an error); dropping it would leave them open.
                let reason = self.connect_and_carry(&stop, &mut attempt).await;
                let event = LinkEvent::Down {
                    peer: self.spec.peer.clone(),
                    realm: self.spec.realm.clone(),
                    reason: reason.clone(),
                };
                tracing::info!(peer = %self.spec.peer, realm = %self.spec.realm, %reason, "realm link down");
                {
                    let mut status = self.lock_status();
                    status.state = LinkState::Down;
                    status.up_since = None;
                    status.last_error = Some(reason);
                }
                self.context.report(event);
                let ReconnectPolicy::Backoff { initial_ms, max_ms } = self.spec.reconnect else {
                    break;
                };
                if stop.is_cancelled() {
                    break;
                }
                let base = initial_ms
                    .saturating_mul(1u64 << attempt.min(16))
                    .min(max_ms);
                let delay = rand::thread_rng().gen_range(base / 2..=base.max(1));
                attempt = attempt.saturating_add(1);
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(delay)) => {}
                }
            }
            self.lock_status().state = LinkState::Stopped;
        }
    }

    /// One life of the link; returns why it ended.
    #[allow(clippy::manual_async_fn)]
    fn connect_and_carry<'a>(
        &'a self,
        stop: &'a CancellationToken,
        attempt: &'a mut u32,
    ) -> impl std::future::Future<Output = String> + 'a {
        async move {
            // Boxed: the joins are large futures, and only while connecting; the task that carries
            // an idle link for hours should not keep their room (nor a binding for the sides).
            let (local, remote) = match tokio::select! {
                _ = stop.cancelled() => return "link stopped".to_owned(),
                sides = Box::pin(self.connect()) => sides,
            } {
                Ok(sides) => sides,
                Err(e) => return e,
            };
            *attempt = 0;
            {
                let mut status = self.lock_status();
                status.state = LinkState::Up;
                status.up_since = Some(Instant::now());
            }
            tracing::info!(peer = %self.spec.peer, realm = %self.spec.realm, "realm link up");
            self.context.report(LinkEvent::Up {
                peer: self.spec.peer.clone(),
                realm: self.spec.realm.clone(),
            });
            let peer = self.context.peer(&self.spec.peer, &self.spec.address);
            let quic = self.spec.transport == LinkTransport::Quic;
            if quic {
                peer.streams_open.fetch_add(1, Ordering::Relaxed);
            }
            let counters = Arc::clone(&self.counters.lock().unwrap_or_else(|p| p.into_inner()));
            let reason =
                shuttle::run(local, remote, counters, self.spec.forward, stop.clone()).await;
            if quic {
                peer.streams_open.fetch_sub(1, Ordering::Relaxed);
            }
            reason
        }
    }

    /// Joins the realm on the peer and locally and attaches both sides to the link channel.
    async fn connect(&self) -> Result<(LocalSide, RemoteSide), String> {
        match tokio::join!(self.join_peer(), self.join_local()) {
            (Ok(remote), Ok(local)) => Ok((local, remote)),
            // The local side leaves by itself when dropped; the peer's is told GOODBYE.
            (Ok(mut remote), Err(e)) => {
                let _ = tokio::time::timeout(LEAVE_TIMEOUT, remote.leave()).await;
                Err(e)
            }
            (Err(e), _) => Err(e),
        }
    }

    /// Opens the byte stream to the peer and joins the realm there as `rlink`.
    async fn join_peer(&self) -> Result<RemoteSide, String> {
        let spec = &self.spec;
        // The QUIC connection, to tell why it closed if joining fails on it.
        let mut quic_connection = None;
        let stream: Box<dyn ByteStream> = match spec.transport {
            LinkTransport::Quic => {
                let quic = self
                    .context
                    .quic
                    .as_ref()
                    .ok_or("quic links need [tls] with a ca")?;
                let peer = self.context.peer(&spec.peer, &spec.address);
                let connection = peer.connection(quic, &self.context.tracker).await?;
                quic_connection = Some(connection.clone());
                Box::new(
                    connection
                        .open_stream()
                        .await
                        .map_err(|e| format!("opening a stream failed: {e}"))?,
                )
            }
            LinkTransport::Tcp => {
                let stream = tokio::net::TcpStream::connect(&spec.address)
                    .await
                    .map_err(|e| format!("tcp connect: {e}"))?;
                let _ = stream.set_nodelay(true);
                self.lock_status().handshakes += 1;
                Box::new(stream)
            }
            LinkTransport::Tls => {
                let tls = self
                    .context
                    .tls_client
                    .clone()
                    .ok_or("tls links need [tls] with a ca")?;
                let stream = tls_tcp::connect(&spec.address, &spec.peer, tls)
                    .await
                    .map_err(|e| format!("tls connect: {e}"))?;
                self.lock_status().handshakes += 1;
                Box::new(stream)
            }
        };
        let config = ClientConfig::new(&spec.realm)
            .with_serializer(Serializer::MsgPack)
            .with_auth(peer_auth(spec, &self.context.node));
        let config = match (spec.transport, &spec.cryptosign) {
            (LinkTransport::Tcp, _) => config,
            // The certificate first; a listener that did not verify one falls back to the key.
            (_, Some(_)) => config.with_hello_extra(
                "authmethods",
                vec![Value::from("tls"), Value::from("cryptosign")],
            ),
            (_, None) => config.with_hello_extra("authmethods", vec![Value::from("tls")]),
        };
        RemoteSide::join(stream, config).await.map_err(|e| {
            // A peer that refuses our certificate closes the connection after our side of the
            // TLS handshake is done: the stream only sees "connection lost", the connection
            // knows why.
            let closed = quic_connection
                .and_then(|c| c.connection.close_reason())
                .map(|why| format!(" (connection closed: {why})"))
                .unwrap_or_default();
            format!("joining {} at {}: {e}{closed}", spec.realm, spec.peer)
        })
    }

    /// Joins the local realm: the link session is attached to the realm task directly.
    async fn join_local(&self) -> Result<LocalSide, String> {
        LocalSide::join(&self.context.local, &self.spec.realm, &self.spec.peer)
            .await
            .map_err(|e| format!("joining local realm {}: {e}", self.spec.realm))
    }
}

/// How a link authenticates at its peer, as authid = our node id: with its cryptosign key if it
/// has one (any transport), else on plain tcp with its ticket, else by certificate or not at all.
fn peer_auth(spec: &LinkSpec, node: &str) -> ClientAuth {
    match (&spec.cryptosign, spec.transport, &spec.ticket) {
        (Some(key), _, _) => ClientAuth::Cryptosign {
            authid: Some(node.to_owned()),
            key: key.clone(),
        },
        (None, LinkTransport::Tcp, Some(ticket)) => ClientAuth::Ticket {
            authid: node.to_owned(),
            ticket: ticket.expose().to_owned(),
        },
        _ => ClientAuth::Anonymous,
    }
}
