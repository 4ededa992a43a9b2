//! `Session`: the cheap, cloneable handle users hold, and how a session is started.

use std::path::Path;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tracing::Instrument;

use super::command::{CallEvent, CallReply, Cleanup, Command, Link};
use super::connection::{Connection, Ended, FrameWriter};
use super::error::{ClientError, CloseReason};
use super::join::join;
use super::pubsub::Subscription;
use super::rpc::{CallResult, PendingCall, Registration};
use super::state::SessionState;
use super::{ClientConfig, COMMAND_QUEUE};
use crate::wamp::{Dict, Id, Message, Payload, Serializer, Value};

/// WELCOME encoded with the serializer that brought it, so decoding it gives the same details.
fn encoded_welcome(serializer: Serializer, session: Id, details: Dict) -> Box<[u8]> {
    let welcome = Message::Welcome { session, details };
    // It was decoded with this serializer a moment ago, so it encodes.
    serializer
        .encode(&welcome)
        .map_or_else(|_| Box::default(), |b| Box::from(&b[..]))
}

/// A joined WAMP session. Clones share the one connection task.
#[derive(Clone)]
pub struct Session {
    shared: Arc<Shared>,
}

struct Shared {
    id: Id,
    /// WELCOME as `serializer` encodes it (see [`Session::details`]).
    welcome: Box<[u8]>,
    serializer: Serializer,
    link: Arc<Link>,
    ended: Arc<Ended>,
    /// Bound of each progressive call's queue.
    queue_capacity: usize,
}

impl Session {
    /// Joins over any byte stream: RawSocket handshake, HELLO, CHALLENGE/AUTHENTICATE,
    /// WELCOME. Then spawns the connection task (see the module docs for its lifetime).
    pub async fn join<S>(stream: S, config: ClientConfig) -> Result<Session, ClientError>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let joined = join(stream, &config).await?;
        let (commands_tx, commands) = crate::queue::bounded(COMMAND_QUEUE);
        let cleanup = Arc::new(Cleanup::default());
        let link = Arc::new(Link {
            commands: commands_tx,
            cleanup: cleanup.clone(),
        });
        let ended = Arc::new(Ended::default());
        let state = SessionState::new(Arc::downgrade(&link), config.queue_capacity);
        let out = FrameWriter::new(config.serializer, joined.codec.max_send);
        let connection = Connection::new(
            joined.stream,
            joined.read_buf,
            joined.codec,
            out,
            config.serializer,
            commands,
            cleanup,
            state,
        );
        let span =
            tracing::debug_span!("wamp_client", session = %joined.session, realm = %config.realm);
        span.in_scope(|| tracing::debug!(serializer = config.serializer.name(), "joined"));
        // The task ends with the session (see the module docs), so it needs no tracker.
        tokio::spawn(connection.run(ended.clone()).instrument(span));
        let session = Session {
            shared: Arc::new(Shared {
                id: joined.session,
                welcome: encoded_welcome(config.serializer, joined.session, joined.details),
                serializer: config.serializer,
                link,
                ended,
                queue_capacity: config.queue_capacity.max(1),
            }),
        };
        Ok(session)
    }

    /// Connects over TCP (`host:port`, TCP_NODELAY on) and joins.
    pub async fn connect_tcp(addr: &str, config: ClientConfig) -> Result<Session, ClientError> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Session::join(stream, config).await
    }

    /// Connects over a Unix domain socket and joins.
    #[cfg(unix)]
    pub async fn connect_unix(path: &Path, config: ClientConfig) -> Result<Session, ClientError> {
        let stream = tokio::net::UnixStream::connect(path).await?;
        Session::join(stream, config).await
    }

    /// The session id from WELCOME.
    pub fn id(&self) -> Id {
        self.shared.id
    }

    /// WELCOME details: `authid`, `authrole`, `authmethod`, `roles`, …, decoded on each call.
    ///
    /// The session keeps them encoded: a decoded map costs ~0.7 KiB per nested map however few
    /// keys it has, the encoded WELCOME a couple of hundred bytes, and tens of thousands of
    /// sessions (realm links) keep theirs for hours without looking.
    pub fn details(&self) -> Dict {
        match self.shared.serializer.decode(&self.shared.welcome) {
            Ok(Message::Welcome { details, .. }) => details,
            _ => Dict::new(),
        }
    }

    fn link(&self) -> &Arc<Link> {
        &self.shared.link
    }

    /// Publishes. With `options.acknowledge = true`, waits for PUBLISHED (`Some(publication)`)
    /// or ERROR; otherwise returns `Ok(None)` once queued (a message too large to send is then
    /// only logged).
    pub async fn publish(
        &self,
        topic: &str,
        payload: Payload,
        options: Dict,
    ) -> Result<Option<Id>, ClientError> {
        let topic = topic.to_owned();
        if options.get("acknowledge").and_then(Value::as_bool) != Some(true) {
            let ack = None;
            let command = Command::Publish {
                topic,
                options,
                payload,
                ack,
            };
            self.link().send(command).await?;
            return Ok(None);
        }
        self.link()
            .request(|reply| Command::Publish {
                topic,
                options,
                payload,
                ack: Some(reply),
            })
            .await
            .map(Some)
    }

    /// Subscribes; `options` may carry `match` (`prefix`, `wildcard`) and other SUBSCRIBE
    /// options.
    pub async fn subscribe(&self, topic: &str, options: Dict) -> Result<Subscription, ClientError> {
        let topic = topic.to_owned();
        let parts = self
            .link()
            .request(|reply| Command::Subscribe {
                topic,
                options,
                reply,
            })
            .await?;
        Ok(Subscription::new(parts, self.link().clone()))
    }

    /// Calls and waits for the final result (progressive results, if the router sends any
    /// unasked, are skipped).
    pub async fn call(
        &self,
        procedure: &str,
        payload: Payload,
        options: Dict,
    ) -> Result<CallResult, ClientError> {
        let procedure = procedure.to_owned();
        self.link()
            .request(|reply| Command::Call {
                procedure,
                options,
                payload,
                reply: CallReply::Once(reply),
            })
            .await
    }

    /// Calls with `receive_progress: true`: the [`PendingCall`] yields the progressive results,
    /// then the final one, and can cancel the call.
    pub async fn call_with_progress(
        &self,
        procedure: &str,
        payload: Payload,
        mut options: Dict,
    ) -> Result<PendingCall, ClientError> {
        options.insert("receive_progress".into(), Value::Bool(true));
        self.call_cancellable(procedure, payload, options).await
    }

    /// Calls with `options` as given and returns once the CALL is queued for writing, with a
    /// [`PendingCall`] to cancel it and to read its result(s).
    pub async fn call_cancellable(
        &self,
        procedure: &str,
        payload: Payload,
        options: Dict,
    ) -> Result<PendingCall, ClientError> {
        let (tx, mut results) = crate::queue::bounded(self.shared.queue_capacity);
        let command = Command::Call {
            procedure: procedure.to_owned(),
            options,
            payload,
            reply: CallReply::Stream(tx),
        };
        self.link().send(command).await?;
        match results.recv().await {
            Some(CallEvent::Sent(request)) => {
                Ok(PendingCall::new(request, results, self.link().clone()))
            }
            Some(CallEvent::Failed(error)) => Err(error),
            Some(CallEvent::Result(_)) | None => Err(ClientError::Closed),
        }
    }

    /// Registers; `options` may carry `match`, `invoke` (shared registration),
    /// `disclose_caller`, …
    pub async fn register(
        &self,
        procedure: &str,
        options: Dict,
    ) -> Result<Registration, ClientError> {
        let procedure = procedure.to_owned();
        let parts = self
            .link()
            .request(|reply| Command::Register {
                procedure,
                options,
                reply,
            })
            .await?;
        Ok(Registration::new(parts, self.link().clone()))
    }

    /// Sends GOODBYE with `reason` (e.g. `wamp.close.normal`) and waits for the router's reply.
    /// Pending requests then fail with [`ClientError::Closed`].
    pub async fn leave(&self, reason: &str) -> Result<(), ClientError> {
        let reason = reason.to_owned();
        self.link()
            .request(|reply| Command::Leave { reason, reply })
            .await
    }

    /// Resolves when the session has ended, with why.
    pub async fn closed(&self) -> CloseReason {
        self.shared.ended.wait().await
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.shared.ended.get().is_some()
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.shared.id)
            .finish()
    }
}
