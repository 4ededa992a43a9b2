//! The connection task: one poll loop that runs queued commands, reads and dispatches frames,
//! and writes everything encoded so far with one `write` call.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::Notify;
use tokio::time::Sleep;
use tokio_util::codec::Decoder;

use super::command::{Cleanup, Command, Reply};
use super::deliver::Parked;
use super::error::{ClientError, CloseReason};
use super::inbound::Inbound;
use super::state::SessionState;
use super::WRITE_HIGH_WATER;
use crate::rawsocket::{Frame, FrameCodec, FrameKind, MAX_LENGTH};
use crate::wamp::uri::reason;
use crate::wamp::{Dict, Message, Serializer};

/// How long the task waits for a GOODBYE reply, or for its last frames to drain.
pub(super) const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest read buffer growth step (reads grow from `READ_CHUNK_MIN` while they fill it).
pub(crate) const READ_CHUNK: usize = 64 * 1024;
/// First read size (an idle session holds no read buffer at all).
pub(crate) const READ_CHUNK_MIN: usize = 4 * 1024;
/// Commands taken per round before the task reads and writes again.
const COMMAND_BATCH: usize = 512;
/// Socket reads per round.
const READS_PER_ROUND: usize = 8;
/// Rounds per poll before the task yields to the runtime.
const ROUNDS_PER_POLL: usize = 16;

/// Encodes frames back to back into one buffer (4-byte RawSocket header + message).
pub(crate) struct FrameWriter {
    buf: BytesMut,
    serializer: Serializer,
    max_send: usize,
}

impl FrameWriter {
    pub fn new(serializer: Serializer, max_send: usize) -> Self {
        FrameWriter {
            buf: BytesMut::new(),
            serializer,
            max_send: max_send.min(MAX_LENGTH - 1),
        }
    }

    /// Appends one message frame; on error nothing is appended.
    pub fn push(&mut self, message: &Message) -> Result<(), ClientError> {
        let start = self.buf.len();
        self.buf.put_u32(0);
        let encoded = self
            .serializer
            .encode_into(message, &mut (&mut self.buf).writer());
        let size = self.buf.len() - start - 4;
        if let Err(e) = encoded {
            self.buf.truncate(start);
            return Err(ClientError::Protocol(e.to_string()));
        }
        if size > self.max_send {
            self.buf.truncate(start);
            return Err(ClientError::MessageTooLarge {
                size,
                max: self.max_send,
            });
        }
        // size < 2^24, so the top byte (frame type 0, no X bit) stays 0.
        self.buf[start..start + 4].copy_from_slice(&(size as u32).to_be_bytes());
        tracing::trace!(message = message.name(), size, "send");
        Ok(())
    }

    /// Appends a PONG echoing a PING's payload.
    pub fn push_pong(&mut self, payload: &[u8]) {
        let codec = FrameCodec::new(0, self.max_send);
        if codec
            .encode_parts(FrameKind::Pong, payload, &mut self.buf)
            .is_err()
        {
            tracing::warn!(size = payload.len(), "PING too large to echo");
        }
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    pub fn len(&self) -> usize {
        self.buf.len()
    }
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }
    pub fn consume(&mut self, n: usize) {
        self.buf.advance(n);
        // Written out: give the buffer back, so that an idle session (thousands of idle realm
        // links) holds none; the next message takes a new one.
        if self.buf.is_empty() && self.buf.capacity() > 0 {
            self.buf = BytesMut::new();
        }
    }
}

/// Where the session is in its life.
enum Phase {
    Open,
    /// GOODBYE sent; waiting for the router's.
    Leaving {
        reply: Option<Reply<()>>,
        deadline: Pin<Box<Sleep>>,
    },
    /// Writing the last frames; then the task ends with `Connection::close_reason`.
    Flushing {
        deadline: Pin<Box<Sleep>>,
    },
}

/// The connection task's state. Sole owner of the stream and of the session state.
pub(super) struct Connection<S> {
    pub stream: S,
    pub read_buf: BytesMut,
    pub decoder: FrameCodec,
    pub out: FrameWriter,
    pub serializer: Serializer,
    pub commands: crate::queue::Receiver<Box<Command>>,
    pub cleanup: Arc<Cleanup>,
    pub state: SessionState,
    commands_open: bool,
    parked: Option<Parked>,
    phase: Phase,
    close_reason: Option<CloseReason>,
    needs_flush: bool,
    /// How much room the next read asks for: doubles while reads fill the buffer, up to
    /// `READ_CHUNK`.
    read_chunk: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        stream: S,
        read_buf: BytesMut,
        decoder: FrameCodec,
        out: FrameWriter,
        serializer: Serializer,
        commands: crate::queue::Receiver<Box<Command>>,
        cleanup: Arc<Cleanup>,
        state: SessionState,
    ) -> Self {
        Connection {
            stream,
            read_buf,
            decoder,
            out,
            serializer,
            commands,
            cleanup,
            state,
            commands_open: true,
            parked: None,
            phase: Phase::Open,
            close_reason: None,
            needs_flush: false,
            read_chunk: READ_CHUNK_MIN,
        }
    }

    /// Drives the session to its end, then publishes why it ended. Dropping `self` afterwards
    /// fails every pending request with `Closed` and ends every handle's stream.
    pub fn run(mut self, ended: Arc<Ended>) -> impl Future<Output = ()> {
        // Also says so if the task is dropped before the end (the runtime shuts down), even
        // before it first ran.
        let ended = EndOnDrop(ended);
        async move {
            let reason = poll_fn(|cx| self.poll_drive(cx)).await;
            tracing::debug!(reason = reason.reason(), "session ended");
            ended.0.set(reason);
        }
    }

    fn poll_drive(&mut self, cx: &mut Context<'_>) -> Poll<CloseReason> {
        for _ in 0..ROUNDS_PER_POLL {
            let mut progress = self.poll_commands(cx);
            if let Some(parked) = &mut self.parked {
                if parked.as_mut().poll(cx).is_ready() {
                    self.parked = None;
                    progress = true;
                }
            }
            match self.poll_read(cx) {
                Ok(read) => progress |= read,
                Err(reason) => return Poll::Ready(reason),
            }
            match self.poll_write(cx) {
                Ok(written) => progress |= written,
                Err(reason) => return Poll::Ready(reason),
            }
            if let Some(reason) = self.poll_phase(cx) {
                return Poll::Ready(reason);
            }
            if !progress {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Runs cleanup commands, then queued commands while the write buffer has room.
    fn poll_commands(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        for command in self.cleanup.take(cx) {
            self.run_command(command);
            progress = true;
        }
        let mut taken = 0;
        while self.commands_open && self.out.len() < WRITE_HIGH_WATER && taken < COMMAND_BATCH {
            match self.commands.poll_recv(cx) {
                Poll::Ready(Some(command)) => {
                    self.run_command(*command);
                    taken += 1;
                    progress = true;
                }
                Poll::Ready(None) => {
                    // Every handle is gone: leave politely.
                    self.commands_open = false;
                    if matches!(self.phase, Phase::Open) {
                        self.begin_leave(reason::CLOSE_NORMAL.to_owned(), None);
                    }
                    progress = true;
                }
                Poll::Pending => break,
            }
        }
        progress
    }

    fn run_command(&mut self, command: Command) {
        if !matches!(self.phase, Phase::Open) {
            return; // dropping the command's reply tells the requester `Closed`
        }
        match command {
            Command::Leave { reason, reply } => self.begin_leave(reason, Some(reply)),
            other => self.state.handle_command(other, &mut self.out),
        }
    }

    fn begin_leave(&mut self, reason: String, reply: Option<Reply<()>>) {
        tracing::debug!(%reason, "leaving");
        let details = Dict::new();
        if let Err(e) = self.out.push(&Message::Goodbye { details, reason }) {
            tracing::warn!(error = %e, "GOODBYE not sent");
        }
        let deadline = Box::pin(tokio::time::sleep(CLOSE_TIMEOUT));
        self.phase = Phase::Leaving { reply, deadline };
    }

    /// Reads and dispatches frames until the socket has nothing, a delivery parks, or the
    /// session stops reading.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Result<bool, CloseReason> {
        let mut progress = false;
        for _ in 0..READS_PER_ROUND {
            while self.parked.is_none() && self.reading() {
                match self.decoder.decode(&mut self.read_buf) {
                    Ok(Some(frame)) => {
                        progress = true;
                        self.handle_frame(frame)?;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        return Err(CloseReason::ProtocolViolation {
                            message: e.to_string(),
                        })
                    }
                }
            }
            if self.parked.is_some() || !self.reading() {
                break;
            }
            if self.read_buf.capacity() - self.read_buf.len() < self.read_chunk / 4 {
                self.read_buf.reserve(self.read_chunk);
            }
            let room = self.read_buf.capacity() - self.read_buf.len();
            let read = {
                let read = self.stream.read_buf(&mut self.read_buf);
                tokio::pin!(read);
                read.poll(cx)
            };
            match read {
                Poll::Ready(Ok(0)) => return Err(self.lost("connection closed by the router")),
                Poll::Ready(Ok(n)) => {
                    if n == room {
                        self.read_chunk = (self.read_chunk * 2).min(READ_CHUNK);
                    }
                    progress = true;
                }
                Poll::Ready(Err(e)) => return Err(self.lost(&e.to_string())),
                Poll::Pending => {
                    // Nothing more to read: an idle session holds no read buffer.
                    if self.read_buf.is_empty() && self.read_buf.capacity() > 0 {
                        self.read_buf = BytesMut::new();
                    }
                    break;
                }
            }
        }
        Ok(progress)
    }

    fn reading(&self) -> bool {
        !matches!(self.phase, Phase::Flushing { .. })
    }

    fn handle_frame(&mut self, frame: Frame) -> Result<(), CloseReason> {
        match frame.kind {
            FrameKind::Ping => self.out.push_pong(&frame.payload),
            FrameKind::Pong => {}
            FrameKind::Message => {
                let message = match self.serializer.decode(&frame.payload) {
                    Ok(message) => message,
                    Err(e) => {
                        self.violation(format!("undecodable message: {e}"));
                        return Ok(());
                    }
                };
                tracing::trace!(message = message.name(), "received");
                match self.state.handle_message(message, &mut self.out) {
                    Inbound::Handled => {}
                    Inbound::Park(parked) => self.parked = Some(parked),
                    Inbound::Goodbye { reason, details } => self.on_goodbye(reason, details),
                    Inbound::Abort { reason, details } => {
                        return Err(CloseReason::Abort { reason, details })
                    }
                    Inbound::Violation(message) => self.violation(message),
                }
            }
        }
        Ok(())
    }

    fn on_goodbye(&mut self, reason: String, details: Dict) {
        let old = std::mem::replace(&mut self.phase, Phase::Open);
        let close = match old {
            Phase::Leaving { reply, .. } => {
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(()));
                }
                CloseReason::Left { reason, details }
            }
            _ => {
                let reply = Message::Goodbye {
                    details: Dict::new(),
                    reason: reason::GOODBYE_AND_OUT.to_owned(),
                };
                let _ = self.out.push(&reply);
                CloseReason::Goodbye { reason, details }
            }
        };
        self.flush_and_close(close);
    }

    fn violation(&mut self, message: String) {
        tracing::warn!(%message, "router broke the protocol");
        let _ = self
            .out
            .push(&Message::abort(reason::PROTOCOL_VIOLATION, &message));
        self.flush_and_close(CloseReason::ProtocolViolation { message });
    }

    fn flush_and_close(&mut self, reason: CloseReason) {
        self.close_reason = Some(reason);
        let deadline = Box::pin(tokio::time::sleep(CLOSE_TIMEOUT));
        self.phase = Phase::Flushing { deadline };
    }

    /// The reason to end with when the stream fails: the chosen one if closing already.
    fn lost(&mut self, error: &str) -> CloseReason {
        self.close_reason
            .take()
            .unwrap_or_else(|| CloseReason::TransportLost {
                error: error.to_owned(),
            })
    }

    /// Writes the buffer, one `write` per call, until empty or the socket is full.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Result<bool, CloseReason> {
        let mut progress = false;
        while !self.out.is_empty() {
            match Pin::new(&mut self.stream).poll_write(cx, self.out.bytes()) {
                Poll::Ready(Ok(0)) => return Err(self.lost("connection closed while writing")),
                Poll::Ready(Ok(n)) => {
                    self.out.consume(n);
                    self.needs_flush = true;
                    progress = true;
                }
                Poll::Ready(Err(e)) => return Err(self.lost(&e.to_string())),
                Poll::Pending => return Ok(progress),
            }
        }
        if self.needs_flush {
            match Pin::new(&mut self.stream).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.needs_flush = false,
                Poll::Ready(Err(e)) => return Err(self.lost(&e.to_string())),
                Poll::Pending => {}
            }
        }
        Ok(progress)
    }

    /// Timers and the end of the closing phases.
    fn poll_phase(&mut self, cx: &mut Context<'_>) -> Option<CloseReason> {
        match &mut self.phase {
            Phase::Open => None,
            Phase::Leaving { reply, deadline } => {
                deadline.as_mut().poll(cx).is_ready().then(|| {
                    if let Some(reply) = reply.take() {
                        let error = "the router did not answer GOODBYE in time";
                        let _ = reply.send(Err(ClientError::Protocol(error.into())));
                    }
                    CloseReason::TransportLost {
                        error: "no GOODBYE reply from the router".into(),
                    }
                })
            }
            Phase::Flushing { deadline } => {
                let drained = self.out.is_empty()
                    && !self.needs_flush
                    && Pin::new(&mut self.stream).poll_shutdown(cx).is_ready();
                if drained || deadline.as_mut().poll(cx).is_ready() {
                    Some(self.lost("closed"))
                } else {
                    None
                }
            }
        }
    }
}

/// Why the session ended, once it has: set once by the connection task, awaited by handles.
/// A `OnceLock` and a `Notify` (~0.1 KiB) rather than a watch channel (~0.4 KiB): every idle
/// realm link keeps one.
#[derive(Default)]
pub(super) struct Ended {
    reason: std::sync::OnceLock<CloseReason>,
    notify: Notify,
}

impl Ended {
    fn set(&self, reason: CloseReason) {
        let _ = self.reason.set(reason);
        self.notify.notify_waiters();
    }

    pub fn get(&self) -> Option<&CloseReason> {
        self.reason.get()
    }

    pub async fn wait(&self) -> CloseReason {
        loop {
            let notified = self.notify.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before the check, so a `set` in between is not missed.
            notified.as_mut().enable();
            if let Some(reason) = self.reason.get() {
                return reason.clone();
            }
            notified.await;
        }
    }
}

struct EndOnDrop(Arc<Ended>);

impl Drop for EndOnDrop {
    fn drop(&mut self) {
        if self.0.get().is_none() {
            self.0.set(CloseReason::TransportLost {
                error: "connection task ended".into(),
            });
        }
    }
}
