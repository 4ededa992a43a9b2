//! A realm link's session on the peer's realm, driven by the link's own task: the QUIC stream
//! (or TCP connection) is read and written by [`RemoteSide::next`], which the shuttle polls
//! beside the local side. No client task, no command queue, no per-subscription queues: an
//! idle link holds the stream, an empty read and write buffer and nothing else (its calls'
//! state is made on its first call through the link).
//!
//! The session joins like any client (`crate::client::join`: RawSocket handshake and HELLO in
//! one write, authentication, WELCOME), attached to the link channel and the invoke procedure
//! at join (HELLO `_wampmesh.attach`), so the peer's realm routes to it from its first message.
//! After that the link needs only a few messages: EVENTs on the channel and INVOCATIONs of the
//! invoke procedure in, PUBLISHes on the channel out, and the CALL/YIELD/ERROR/CANCEL/INTERRUPT
//! of calls routed through the link both ways.
//!
//! Backpressure is the client's: the write buffer is bounded (the shuttle takes nothing from
//! the local realm while it is above [`WRITE_HIGH_WATER`], and `next` says when it has room
//! again, [`FromPeer::Room`]), and a result for a call whose queue is full stops reading until
//! there is room; writing goes on meanwhile.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::Decoder;

use super::calls::{channel_publication, LinkCaller, LinkInvocation, Parked, Requests};
use crate::client::{
    ClientConfig, ClientError, FrameWriter, READ_CHUNK, READ_CHUNK_MIN, WRITE_HIGH_WATER,
};
use crate::rawsocket::{Frame, FrameCodec, FrameKind};
use crate::router::mesh::{CHANNEL_ID, INVOKE_ID, MESH_KEY};
use crate::wamp::uri::reason;
use crate::wamp::{code, Dict, Message, Payload, Serializer, Value};

/// A byte stream to the peer: a QUIC stream, a TCP or a TLS connection.
pub trait ByteStream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> ByteStream for T {}

/// Where the link's CALL, YIELD, ERROR and CANCEL messages for the peer wait for the link's task.
pub type PeerOutlet = crate::queue::Sender<Message>;
/// Places calls into the peer's realm (for invocations from the local realm).
pub type RemoteCaller = LinkCaller<PeerOutlet>;
/// An INVOCATION from the peer's realm the link must answer.
pub type RemoteInvocation = LinkInvocation<PeerOutlet>;

/// Messages from calls and invocations in flight, queued for the stream.
const OUTGOING: usize = 256;
/// How long leaving waits for the peer's GOODBYE (the shuttle bounds its own leave alike).
pub const LEAVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
/// Frames handled per poll before the task lets others run.
const FRAMES_PER_POLL: usize = 256;

/// What the peer's realm has for the link.
pub enum FromPeer {
    /// A link channel EVENT: an advertisement or a publication to forward.
    Channel { details: Dict, payload: Payload },
    /// An INVOCATION of the invoke procedure: a call routed through the link.
    Invocation(RemoteInvocation),
    /// The write buffer was full and has room again, or the shuttle gave the side its turn
    /// and it has done what it could: the shuttle may take from the local realm.
    Room,
    /// The session is over; why, for the link's status.
    Ended(String),
}

/// The calls and invocations in flight through the peer's side, made on first use.
struct InFlight {
    shared: Arc<Requests<PeerOutlet>>,
    outgoing: crate::queue::Receiver<Message>,
    /// A RESULT for a call whose queue was full, delivered before anything more is read.
    parked: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl InFlight {
    /// Holds an answer for a call whose queue is full: nothing more is read until it is taken.
    fn park(&mut self, (sender, answer): Parked) {
        self.parked = Some(Box::pin(async move {
            let _ = sender.send(answer).await;
        }));
    }
}

/// The link's session on the peer's realm.
pub struct RemoteSide {
    stream: Box<dyn ByteStream>,
    serializer: Serializer,
    codec: FrameCodec,
    read_buf: BytesMut,
    /// How much room the next read asks for: doubles while reads fill the buffer.
    read_chunk: usize,
    out: FrameWriter,
    needs_flush: bool,
    /// Request ids of the link's PUBLISHes (unacknowledged, so never answered: they need not be
    /// distinct from the calls' ids).
    publications: u64,
    in_flight: Option<Box<InFlight>>,
    /// Set once the session is over (GOODBYE or ABORT either way, or the stream ended).
    closed: bool,
    /// Set by the shuttle after a burst from the local realm (see [`RemoteSide::take_turn`]).
    turn: bool,
}

impl RemoteSide {
    /// Joins as a link session attached at join: the realm makes the channel subscription and
    /// the invoke registration itself and says so in WELCOME, so the side is ready one round
    /// trip after the stream opens.
    pub async fn join(
        stream: Box<dyn ByteStream>,
        config: ClientConfig,
    ) -> Result<RemoteSide, ClientError> {
        let config = config
            .with_hello_extra(MESH_KEY, crate::dict! { "attach" => true })
            .without_router_roles();
        let joined = crate::client::join(stream, &config).await?;
        let attached = joined
            .details
            .get(MESH_KEY)
            .and_then(Value::as_dict)
            .and_then(|mesh| mesh.get("attached"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let mut side = RemoteSide {
            stream: joined.stream,
            serializer: config.serializer,
            out: FrameWriter::new(config.serializer, joined.codec.max_send),
            codec: joined.codec,
            read_buf: joined.read_buf,
            read_chunk: READ_CHUNK_MIN,
            needs_flush: false,
            publications: 0,
            in_flight: None,
            closed: false,
            turn: false,
        };
        if !attached {
            let role = joined.details.get("authrole").cloned();
            let _ = tokio::time::timeout(LEAVE_TIMEOUT, side.leave()).await;
            return Err(ClientError::Protocol(format!(
                "the realm did not attach the link (joined with role {role:?}, not as a link)"
            )));
        }
        Ok(side)
    }

    /// After a burst from the local realm: the next `next` writes and reads what it can and then
    /// comes back (with [`FromPeer::Room`] if the peer had nothing), instead of waiting for the
    /// peer. The shuttle gives it its turn this way, so that a busy realm neither holds the
    /// writes back nor keeps what the peer sends unread.
    pub fn take_turn(&mut self) {
        self.turn = true;
    }

    /// Whether the shuttle may give the side more to write.
    pub fn has_room(&self) -> bool {
        self.out.len() < WRITE_HIGH_WATER
    }

    /// Publishes a link channel message (`_wampmesh` = `body`) into the peer's realm. Written
    /// by `next`; a message too large for the peer is dropped with a warning, as the client
    /// drops an unacknowledged publish it cannot send.
    pub fn publish_channel(&mut self, body: Value, payload: Payload) {
        let message = channel_publication(&mut self.publications, body, payload);
        if let Err(e) = self.out.push(&message) {
            tracing::warn!(error = %e, "link publication not sent to the peer");
        }
    }

    /// A handle that places calls into the peer's realm.
    pub fn caller(&mut self) -> RemoteCaller {
        LinkCaller(Arc::clone(&self.in_flight().shared))
    }

    fn in_flight(&mut self) -> &mut InFlight {
        self.in_flight.get_or_insert_with(|| {
            let (tx, outgoing) = crate::queue::bounded(OUTGOING);
            let shared = Requests::new(tx);
            Box::new(InFlight {
                shared,
                outgoing,
                parked: None,
            })
        })
    }

    /// The next thing the link must carry, writing what is queued meanwhile; answers to the
    /// link's calls and INTERRUPTs are routed on the way. Cancel-safe.
    pub fn next(&mut self) -> impl Future<Output = FromPeer> + '_ {
        poll_fn(move |cx| self.poll_next(cx))
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<FromPeer> {
        if self.closed {
            return Poll::Ready(FromPeer::Ended("peer session closed".into()));
        }
        // The shuttle stops giving while the buffer is full; it must hear when there is room,
        // or, with nothing coming from the peer, it would wait for good.
        let full = !self.has_room();
        for _ in 0..FRAMES_PER_POLL {
            if let Err(e) = self.poll_send(cx) {
                return Poll::Ready(self.lost(&e));
            }
            if full && self.has_room() {
                return Poll::Ready(FromPeer::Room);
            }
            if let Some(in_flight) = &mut self.in_flight {
                if let Some(parked) = &mut in_flight.parked {
                    if parked.as_mut().poll(cx).is_pending() {
                        return self.idle();
                    }
                    in_flight.parked = None;
                }
            }
            match self.codec.decode(&mut self.read_buf) {
                Ok(Some(frame)) => match self.handle_frame(frame) {
                    Some(item) => return Poll::Ready(item),
                    None => continue,
                },
                Ok(None) => {}
                Err(e) => return Poll::Ready(self.violation(e.to_string())),
            }
            match self.poll_read(cx) {
                Poll::Ready(Ok(true)) => {}
                Poll::Ready(Ok(false)) => {
                    self.closed = true;
                    return Poll::Ready(FromPeer::Ended(
                        "peer session closed: wamp.close.transport_lost".into(),
                    ));
                }
                Poll::Ready(Err(e)) => return Poll::Ready(self.lost(&e)),
                // A PONG or an answer pushed by the frames just handled is written now.
                Poll::Pending => {
                    return match self.poll_send(cx) {
                        Err(e) => Poll::Ready(self.lost(&e)),
                        Ok(()) if full && self.has_room() => Poll::Ready(FromPeer::Room),
                        Ok(()) => self.idle(),
                    }
                }
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Nothing more to do now: wait, unless the shuttle asked for its turn back.
    fn idle(&mut self) -> Poll<FromPeer> {
        if std::mem::take(&mut self.turn) {
            Poll::Ready(FromPeer::Room)
        } else {
            Poll::Pending
        }
    }

    /// Takes what calls and invocations queued, then writes.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> std::io::Result<()> {
        self.take_outgoing(cx);
        self.poll_write(cx)
    }

    /// Moves queued messages of calls and invocations into the write buffer while it has room.
    fn take_outgoing(&mut self, cx: &mut Context<'_>) {
        let Some(in_flight) = &mut self.in_flight else {
            return;
        };
        while self.out.len() < WRITE_HIGH_WATER {
            let Poll::Ready(Some(message)) = in_flight.outgoing.poll_recv(cx) else {
                break;
            };
            if let Err(e) = self.out.push(&message) {
                undeliverable(in_flight, &mut self.out, message, e);
            }
        }
    }

    /// Reads more bytes: `Ok(false)` at the end of the stream.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<bool>> {
        if self.read_buf.capacity() - self.read_buf.len() < self.read_chunk / 4 {
            self.read_buf.reserve(self.read_chunk);
        }
        let room = self.read_buf.capacity() - self.read_buf.len();
        let read =
            tokio_util::io::poll_read_buf(Pin::new(&mut self.stream), cx, &mut self.read_buf);
        match read {
            Poll::Ready(Ok(0)) => Poll::Ready(Ok(false)),
            Poll::Ready(Ok(n)) => {
                if n == room {
                    self.read_chunk = (self.read_chunk * 2).min(READ_CHUNK);
                }
                Poll::Ready(Ok(true))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                // Nothing more to read: an idle link holds no read buffer.
                if self.read_buf.is_empty() && self.read_buf.capacity() > 0 {
                    self.read_buf = BytesMut::new();
                }
                Poll::Pending
            }
        }
    }

    /// Writes the buffer until it is empty or the stream is full.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> std::io::Result<()> {
        while !self.out.is_empty() {
            match Pin::new(&mut self.stream).poll_write(cx, self.out.bytes()) {
                Poll::Ready(Ok(0)) => return Err(std::io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(n)) => {
                    self.out.consume(n);
                    self.needs_flush = true;
                }
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => return Ok(()),
            }
        }
        if self.needs_flush {
            if let Poll::Ready(result) = Pin::new(&mut self.stream).poll_flush(cx) {
                self.needs_flush = false;
                result?;
            }
        }
        Ok(())
    }

    fn handle_frame(&mut self, frame: Frame) -> Option<FromPeer> {
        match frame.kind {
            FrameKind::Ping => self.out.push_pong(&frame.payload),
            FrameKind::Pong => {}
            FrameKind::Message => match self.serializer.decode(&frame.payload) {
                Ok(message) => return self.handle_message(message),
                Err(e) => return Some(self.violation(format!("undecodable message: {e}"))),
            },
        }
        None
    }

    fn handle_message(&mut self, message: Message) -> Option<FromPeer> {
        match message {
            Message::Event {
                subscription,
                details,
                payload,
                ..
            } if subscription.get() == CHANNEL_ID => Some(FromPeer::Channel { details, payload }),
            Message::Invocation {
                request,
                registration,
                details,
                payload,
            } if registration.get() == INVOKE_ID => {
                let shared = &self.in_flight().shared;
                Some(FromPeer::Invocation(
                    shared.invocation(request, details, payload),
                ))
            }
            Message::Invocation { request, .. } => {
                // Not ours (the link registers nothing else): the caller must not hang.
                let error = Message::Error {
                    request_type: code::INVOCATION,
                    request,
                    details: Dict::new(),
                    error: reason::NO_SUCH_REGISTRATION.into(),
                    payload: Payload::default(),
                };
                let _ = self.out.push(&error);
                None
            }
            Message::Goodbye { reason, .. } => {
                let reply = Message::Goodbye {
                    details: Dict::new(),
                    reason: reason::GOODBYE_AND_OUT.into(),
                };
                let _ = self.out.push(&reply);
                self.closed = true;
                Some(FromPeer::Ended(format!("peer session closed: {reason}")))
            }
            Message::Abort { reason, .. } => {
                self.closed = true;
                Some(FromPeer::Ended(format!("peer session closed: {reason}")))
            }
            Message::Unsubscribed { request: None, .. }
            | Message::Unregistered { request: None, .. } => Some(FromPeer::Ended(
                "peer session closed: the peer revoked the link's channel or procedure".into(),
            )),
            // INTERRUPT, RESULT, a call's ERROR; PUBLISHED and the like need nothing.
            other => {
                let requests = self.in_flight.as_deref().map(|f| &*f.shared);
                if let Ok(Some(parked)) = Requests::route(requests, other) {
                    if let Some(in_flight) = &mut self.in_flight {
                        in_flight.park(parked);
                    }
                }
                None
            }
        }
    }

    /// The peer broke the protocol: ABORT (written on `leave`) and end.
    fn violation(&mut self, message: String) -> FromPeer {
        tracing::warn!(%message, "the peer's router broke the protocol");
        let _ = self
            .out
            .push(&Message::abort(reason::PROTOCOL_VIOLATION, &message));
        self.closed = true;
        FromPeer::Ended(format!(
            "peer session closed: {}",
            reason::PROTOCOL_VIOLATION
        ))
    }

    fn lost(&mut self, error: &std::io::Error) -> FromPeer {
        self.closed = true;
        FromPeer::Ended(format!(
            "peer session closed: wamp.close.transport_lost ({error})"
        ))
    }

    /// Leaves the peer's realm: GOODBYE and its reply unless the session is already over, then
    /// the end of the stream. The link's calls in flight end with `Closed`. Bound it with a
    /// timeout: a peer that no longer answers never replies.
    pub async fn leave(&mut self) {
        if let Some(in_flight) = self.in_flight.take() {
            in_flight.shared.forget_calls();
        }
        if !self.closed {
            self.closed = true;
            let goodbye = Message::Goodbye {
                details: Dict::new(),
                reason: reason::CLOSE_NORMAL.into(),
            };
            if self.out.push(&goodbye).is_ok() {
                let _ = poll_fn(|cx| self.poll_goodbye_reply(cx)).await;
            }
        }
        let _ = self.stream.write_all(self.out.bytes()).await;
        let _ = self.stream.shutdown().await;
    }

    /// Writes what is buffered and reads until the peer's GOODBYE (or ABORT, or the end).
    fn poll_goodbye_reply(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.poll_write(cx)?;
        loop {
            while let Some(frame) = self.codec.decode(&mut self.read_buf).map_err(invalid)? {
                if frame.kind == FrameKind::Message {
                    if let Ok(Message::Goodbye { .. } | Message::Abort { .. }) =
                        self.serializer.decode(&frame.payload)
                    {
                        return Poll::Ready(Ok(()));
                    }
                }
            }
            if !std::task::ready!(self.poll_read(cx))? {
                return Poll::Ready(Ok(()));
            }
        }
    }
}

/// A message of a call or invocation that the peer cannot take (too large for it): the call
/// ends with ERROR `wamp.error.payload_size_exceeded`, the invocation is answered with one, as
/// the client does, so that no caller waits for good.
fn undeliverable(
    in_flight: &mut InFlight,
    out: &mut FrameWriter,
    message: Message,
    e: ClientError,
) {
    tracing::warn!(error = %e, message = message.name(), "not sent to the peer");
    let error = reason::PAYLOAD_SIZE_EXCEEDED.to_owned();
    match message {
        Message::Call { request, .. } => {
            let payload = Payload::args(vec![e.to_string().into()]);
            let details = Dict::new();
            let answer = Err(ClientError::Wamp {
                error,
                details,
                payload,
            });
            if let Some(parked) = in_flight.shared.answer_call(request, answer) {
                in_flight.park(parked);
            }
        }
        Message::Yield { request, .. }
        | Message::Error {
            request_type: code::INVOCATION,
            request,
            ..
        } => {
            let _ = out.push(&Message::Error {
                request_type: code::INVOCATION,
                request,
                details: Dict::new(),
                error,
                payload: Payload::default(),
            });
        }
        _ => {}
    }
}

fn invalid(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
}

#[cfg(test)]
mod tests;
