//! One connection or stream on the router side: RawSocket handshake -> HELLO/auth/WELCOME ->
//! message loop, written once for every byte stream (TCP, Unix, QUIC stream). The message loop
//! runs over a `wire::MessageWire`, so a WebSocket connection (`crate::transport::websocket`,
//! which does its own HTTP upgrade instead of the RawSocket handshake) shares it too.
//!
//! Written once, so checked once: the connection limits (`handshake`: admission slot, `7F 40`,
//! `7F 20`), the counters of `crate::metrics` (frames and bytes each way per transport,
//! handshake failures by reason, sessions per realm), and the shutdown path (the realm answers
//! calls in flight, the queue is flushed, then GOODBYE `wamp.close.system_shutdown`).

pub(crate) mod handshake;
mod welcome;
pub(crate) mod wire;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

pub use welcome::router_roles;

use crate::metrics::{Metrics, SessionGauge};
use crate::rawsocket::{self, FrameCodec};
use crate::router::auth::AuthConfig;
use crate::router::task::{RealmCommand, RealmHandle, SlowConsumerPolicy};
use crate::router::{RealmRegistry, SessionTransport};
use crate::transport::admission::{Admission, Slot};
use crate::wamp::uri::reason;
use crate::wamp::{code, Dict, Id, Message, Serializer};
use wire::{MessageWire, RawSocketWire};

/// How long a session waits at shutdown for its realm to answer the calls in flight.
const QUIESCE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a session that is being closed may take to write its last frames (ABORT, what is
/// still queued) and close its write side. A peer that stopped reading never takes them, and
/// must not keep the session, its buffers and its admission slot alive.
const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// Most messages taken from the outbound queue for one write.
const BATCH: usize = 64;
/// The ABORT reason of a session closed because its outbound queue overflowed
/// (`slow_consumer = "close"`, or a non-event message that found the queue full).
pub const SLOW_CONSUMER_REASON: &str = "wampmesh.error.slow_consumer";

/// What a listener tells each of its sessions.
#[derive(Debug, Clone)]
pub struct ListenerSettings {
    pub transport: &'static str,
    pub serializers: Vec<Serializer>,
    pub max_message_size: usize,
    /// A client announcing a smaller receive maximum is refused with `7F 20 00 00`.
    pub min_peer_message_size: usize,
    pub auth: AuthConfig,
    pub handshake_timeout: Duration,
    pub hello_timeout: Duration,
    pub outbound_queue: usize,
    pub slow_consumer: SlowConsumerPolicy,
    /// In-process listener of the node itself (router links, management): HELLO's authrole
    /// and `authextra.peer` are taken as they are.
    pub trusted: bool,
    /// The management realm: anonymous sessions may join it only from loopback, and only
    /// while `allow_local` is set.
    pub management: Option<(String, bool)>,
}

impl ListenerSettings {
    /// Settings for the node's own in-process sessions.
    pub fn trusted(outbound_queue: usize) -> ListenerSettings {
        ListenerSettings {
            transport: "local",
            serializers: vec![Serializer::MsgPack],
            max_message_size: rawsocket::MAX_LENGTH,
            min_peer_message_size: crate::config::MIN_MESSAGE_SIZE,
            auth: AuthConfig::default(),
            handshake_timeout: Duration::from_secs(10),
            hello_timeout: Duration::from_secs(10),
            outbound_queue,
            slow_consumer: SlowConsumerPolicy::Drop,
            trusted: true,
            management: None,
        }
    }
}

/// Everything a session needs from the node.
#[derive(Debug, Clone)]
pub struct SessionContext {
    pub settings: Arc<ListenerSettings>,
    pub realms: RealmRegistry,
    /// Fires on node shutdown: the session says GOODBYE `wamp.close.system_shutdown`.
    pub shutdown: CancellationToken,
    /// The node's connection limits, shared by all its listeners.
    pub admission: Arc<Admission>,
    /// The node's counters.
    pub metrics: Arc<Metrics>,
}

/// How a session ended, for logs.
#[derive(Debug, thiserror::Error)]
pub enum SessionEnd {
    #[error("handshake refused or failed")]
    Handshake,
    #[error("refused at the RawSocket handshake: {0}")]
    Refused(String),
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    #[error("protocol violation: {0}")]
    ProtocolViolation(String),
    #[error("aborted: {0}")]
    Aborted(String),
    #[error("transport: {0}")]
    Transport(String),
    #[error("closed")]
    Closed,
}

impl From<std::io::Error> for SessionEnd {
    fn from(e: std::io::Error) -> Self {
        SessionEnd::Transport(e.to_string())
    }
}

/// Serves one RawSocket byte stream until it ends. `transport` describes the peer for the meta API.
///
/// Not an `async fn`: the opening (RawSocket handshake) runs in a box that is freed when it is
/// done and takes the reader and writer with it. As arguments of this future they would be kept
/// for the session's whole life next to the wire they become; this future keeps the session's
/// state once (see `serve_opening`).
pub fn serve<R, W>(
    reader: R,
    writer: W,
    transport: impl Into<SessionTransport>,
    ctx: SessionContext,
) -> impl Future<Output = Result<(), SessionEnd>>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    serve_opening(Box::pin(open_rawsocket(
        reader,
        writer,
        transport.into(),
        ctx,
    )))
}

/// The RawSocket opening: admission, handshake, then the wire that carries the session.
async fn open_rawsocket<R, W>(
    mut reader: R,
    mut writer: W,
    transport: SessionTransport,
    ctx: SessionContext,
) -> Result<Opened<RawSocketWire<R, W>>, SessionEnd>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let slot = handshake::admit(&ctx, &transport);
    let opened = handshake::open_rawsocket(
        &mut reader,
        &mut writer,
        slot.as_ref().err().copied(),
        &ctx.settings,
    )
    .await;
    let (serializer, peer_max) = match opened {
        Ok(opened) => opened,
        Err((reason, end)) => {
            ctx.metrics.handshake_failed(reason);
            if matches!(end, SessionEnd::Refused(_)) {
                handshake::linger(&mut reader).await;
            }
            return Err(end);
        }
    };
    let codec = FrameCodec::new(ctx.settings.max_message_size, peer_max);
    let counters = ctx.metrics.transport(ctx.settings.transport);
    let wire = RawSocketWire::new(reader, writer, codec, counters);
    Ok(Opened {
        conn: Connection { wire, serializer },
        transport,
        ctx,
        _slot: slot.ok().flatten(),
    })
}

/// Runs a session (HELLO onwards) over an opened wire until it ends, holding the connection's
/// admission `slot` (if any) until then. Transports with their own opening (WebSocket) call
/// this after it.
pub(crate) fn serve_wire<T: MessageWire>(
    wire: T,
    serializer: Serializer,
    transport: SessionTransport,
    ctx: SessionContext,
    slot: Option<Slot>,
) -> impl Future<Output = Result<(), SessionEnd>> {
    serve_opening(Box::pin(std::future::ready(Ok(Opened {
        conn: Connection { wire, serializer },
        transport,
        ctx,
        _slot: slot,
    }))))
}

/// A connection whose transport is open, with what its session runs with.
struct Opened<T> {
    conn: Connection<T>,
    transport: SessionTransport,
    ctx: SessionContext,
    /// The connection's admission, held until the session ends.
    _slot: Option<Slot>,
}

/// Runs the session once `opening` is done, then closes the wire.
///
/// The opened connection is a local used in place, so the future keeps it once: an argument, a
/// `?` on the await, or a binding moved into another future would each keep a second copy for
/// the session's whole life (the compiler does not reuse the room of a moved-from value).
async fn serve_opening<T, F>(opening: Pin<Box<F>>) -> Result<(), SessionEnd>
where
    T: MessageWire,
    F: Future<Output = Result<Opened<T>, SessionEnd>>,
{
    let mut opened = match opening.await {
        Ok(opened) => opened,
        Err(end) => return Err(end),
    };
    let result = opened.conn.run(&opened.transport, &opened.ctx).await;
    let violation = matches!(result, Err(SessionEnd::ProtocolViolation(_)));
    if let Err(SessionEnd::ProtocolViolation(why)) = &result {
        let abort = Message::abort(reason::PROTOCOL_VIOLATION, why);
        let send = opened.conn.send(&abort);
        let _ = Box::pin(tokio::time::timeout(CLOSE_WRITE_TIMEOUT, send)).await;
    }
    let close = opened.conn.wire.close(violation);
    let _ = Box::pin(tokio::time::timeout(CLOSE_WRITE_TIMEOUT, close)).await;
    drop(opened);
    result
}

struct Connection<T> {
    wire: T,
    serializer: Serializer,
}

/// What the message loop of a joined session does next (see `Connection::established`).
enum Step {
    Shutdown,
    SlowConsumer,
    /// Write the batch taken from the outbound queue.
    Write,
    /// The client said GOODBYE.
    Goodbye,
    /// A message for the realm that did not fit its queue without waiting.
    Forward(Box<RealmCommand>),
}

/// A session that has been welcomed into its realm.
struct Joined {
    session: Id,
    realm: RealmHandle,
    /// Killed by the realm when the session must close (see `SessionOutbound`).
    outbound: crate::queue::Receiver<Arc<crate::wamp::SharedMessage>>,
    _gauge: SessionGauge,
}

impl<T: MessageWire> Connection<T> {
    async fn send(&mut self, message: &Message) -> Result<(), SessionEnd> {
        let bytes = self
            .serializer
            .encode(message)
            .map_err(|e| SessionEnd::Transport(e.to_string()))?;
        self.wire
            .queue(bytes)
            .map_err(|e| SessionEnd::Transport(e.to_string()))?;
        self.wire.flush().await?;
        Ok(())
    }

    /// Next WAMP message (the wire answers transport pings on the way).
    async fn next_message(&mut self) -> Result<Message, SessionEnd> {
        let payload = self.wire.next_payload().await?;
        self.serializer
            .decode(&payload)
            .map_err(|e| SessionEnd::ProtocolViolation(e.to_string()))
    }

    async fn run(
        &mut self,
        transport: &SessionTransport,
        ctx: &SessionContext,
    ) -> Result<(), SessionEnd> {
        let joined = match Box::pin(self.open(transport.clone(), ctx)).await {
            Ok(joined) => joined,
            Err(end) => {
                ctx.metrics.handshake_failed(welcome::opening_failure(&end));
                return Err(end);
            }
        };
        let mut joined = joined;
        let session = joined.session;
        let result = self.established(&mut joined, ctx).await;
        let _ = joined.realm.send(RealmCommand::Leave { session }).await;
        tracing::debug!(%session, ?result, "session left");
        result
    }

    /// The message loop of a joined session.
    ///
    /// Not an `async fn`: its arguments would be kept twice in the future of every idle session.
    #[allow(clippy::manual_async_fn)]
    fn established<'a>(
        &'a mut self,
        joined: &'a mut Joined,
        ctx: &'a SessionContext,
    ) -> impl Future<Output = Result<(), SessionEnd>> + 'a {
        async move {
            let session = joined.session;
            // Grows with a burst and is given back once the queue is empty: tens of thousands of
            // quiet sessions (realm links) would otherwise each keep 0.5 KiB of batch room.
            let mut batch = Vec::new();
            loop {
                // The arms decide without waiting; the rare awaits (closing, a realm that is
                // behind) are boxed and come after the select. Awaited inside an arm, they would
                // keep the select's output beside them, and every idle session's task would keep
                // room for both.
                let step = tokio::select! {
                    biased;
                    _ = ctx.shutdown.cancelled() => Step::Shutdown,
                    n = joined.outbound.recv_many(&mut batch, BATCH) => match n {
                        0 if joined.outbound.is_killed() => Step::SlowConsumer,
                        0 => return Err(SessionEnd::Aborted("realm stopped".into())),
                        _ => Step::Write,
                    },
                    message = self.next_message() => match message? {
                        Message::Goodbye { .. } => Step::Goodbye,
                        Message::Abort { reason, .. } => return Err(SessionEnd::Aborted(reason)),
                        message @ (Message::Publish { .. } | Message::Subscribe { .. }
                        | Message::Unsubscribe { .. } | Message::Call { .. } | Message::Cancel { .. }
                        | Message::Register { .. } | Message::Unregister { .. } | Message::Yield { .. }
                        | Message::Error { request_type: code::INVOCATION, .. }) => {
                            match joined.realm.try_send(RealmCommand::Message { session, message }) {
                                Ok(()) => continue,
                                Err(command) => Step::Forward(command),
                            }
                        }
                        other => return Err(SessionEnd::ProtocolViolation(format!("{} not allowed here", other.name()))),
                    },
                };
                match step {
                    Step::Shutdown => {
                        Box::pin(self.close_for_shutdown(joined)).await?;
                        return Ok(());
                    }
                    Step::SlowConsumer => return Box::pin(self.close_slow_consumer(ctx)).await,
                    Step::Write => {
                        // A peer that stopped reading blocks this write for good; the kill switch
                        // must still end the session (the flush is cancel-safe).
                        tokio::select! {
                            biased;
                            _ = joined.outbound.killed() => return Box::pin(self.close_slow_consumer(ctx)).await,
                            written = self.write_batch(&mut batch) => written?,
                        }
                        if joined.outbound.is_empty() {
                            batch = Vec::new();
                        }
                    }
                    Step::Goodbye => {
                        // The realm forgets the session before the client hears back, so nobody
                        // sees it after its GOODBYE is answered.
                        let _ = Box::pin(joined.realm.send(RealmCommand::Leave { session })).await;
                        Box::pin(self.send(&goodbye(reason::GOODBYE_AND_OUT))).await?;
                        return Ok(());
                    }
                    // The realm is behind (its queue is full) or gone: wait for room, in order.
                    Step::Forward(command) => Box::pin(joined.realm.send(*command))
                        .await
                        .map_err(|_| SessionEnd::Aborted("realm stopped".into()))?,
                }
            }
        }
    }

    /// The realm gave up on this session (its outbound queue overflowed): ABORT
    /// `wampmesh.error.slow_consumer` if the peer still takes it within `CLOSE_WRITE_TIMEOUT`.
    async fn close_slow_consumer(&mut self, ctx: &SessionContext) -> Result<(), SessionEnd> {
        ctx.metrics.slow_consumer_closed();
        let abort = Message::abort(SLOW_CONSUMER_REASON, "outbound queue overflowed");
        let _ = tokio::time::timeout(CLOSE_WRITE_TIMEOUT, self.send(&abort)).await;
        Err(SessionEnd::Aborted("slow consumer".into()))
    }

    /// Node shutdown: the realm answers every call in flight (see `RealmCommand::Quiesce`),
    /// those answers and whatever else is queued are written, then GOODBYE
    /// `wamp.close.system_shutdown`.
    async fn close_for_shutdown(&mut self, joined: &mut Joined) -> Result<(), SessionEnd> {
        let _ = tokio::time::timeout(QUIESCE_TIMEOUT, joined.realm.quiesce()).await;
        let mut batch = Vec::new();
        while let Some(message) = joined.outbound.try_recv() {
            batch.push(message);
        }
        self.write_batch(&mut batch).await?;
        self.send(&goodbye(reason::SYSTEM_SHUTDOWN)).await
    }

    /// Encodes (shared bytes, once per serializer) and writes a batch with one flush.
    async fn write_batch(
        &mut self,
        batch: &mut Vec<Arc<crate::wamp::SharedMessage>>,
    ) -> Result<(), SessionEnd> {
        for shared in batch.drain(..) {
            let bytes = match shared.encoded(self.serializer) {
                Ok(bytes) => bytes,
                Err(e) => {
                    tracing::error!(error = %e, "cannot encode outgoing message");
                    continue;
                }
            };
            if let Err(e) = self.wire.queue(bytes) {
                // Too large for what the peer accepts: a result becomes an error, an event is dropped.
                tracing::warn!(error = %e, message = shared.message().name(), "message exceeds the peer's maximum");
                if let Message::Result { request, .. } = shared.message() {
                    let error = Message::Error {
                        request_type: code::CALL,
                        request: *request,
                        details: Dict::new(),
                        error: reason::PAYLOAD_SIZE_EXCEEDED.into(),
                        payload: Default::default(),
                    };
                    if let Ok(bytes) = self.serializer.encode(&error) {
                        let _ = self.wire.queue(bytes);
                    }
                }
            }
        }
        self.wire.flush().await?;
        Ok(())
    }
}

fn goodbye(reason: &str) -> Message {
    Message::Goodbye {
        details: Dict::new(),
        reason: reason.to_owned(),
    }
}
