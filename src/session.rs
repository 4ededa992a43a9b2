//! One connection or stream on the router side: RawSocket handshake -> HELLO/auth/WELCOME ->
//! message loop, written once for every byte stream (TCP, Unix, QUIC stream).

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use crate::rawsocket::{self, FrameCodec, FrameKind, HandshakeOutcome};
use crate::router::auth::{AuthConfig, AuthStep, Identity};
use crate::router::task::{RealmCommand, RealmHandle, SessionOutbound, SlowConsumerPolicy};
use crate::router::{Now, RealmRegistry, SessionInfo};
use crate::wamp::uri::{self, reason};
use crate::wamp::{code, Dict, Id, Message, Serializer, Value};
use crate::writer::FrameWriter;

/// What a listener tells each of its sessions.
#[derive(Debug)]
pub struct ListenerSettings {
    pub transport: &'static str,
    pub serializers: Vec<Serializer>,
    pub max_message_size: usize,
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

/// A router-link identity, if this HELLO is one: a peer node proven by its TLS client
/// certificate (HELLO `authmethods` has "tls"), or any HELLO on the trusted in-process listener.
fn link_identity(details: &Dict, transport: &Dict, settings: &ListenerSettings) -> Option<Identity> {
    let asked_role = details.get("authrole").and_then(Value::as_str);
    if settings.trusted {
        let extra = details.get("authextra").and_then(Value::as_dict);
        let peer = extra.and_then(|e| e.get("peer")).and_then(Value::as_str).unwrap_or("local");
        return Some(Identity {
            authid: peer.to_owned(),
            authrole: asked_role.unwrap_or(crate::router::mesh::LINK_ROLE).to_owned(),
            authmethod: "trusted".into(),
            authprovider: "node".into(),
            authextra: Dict::new(),
        });
    }
    let methods = details.get("authmethods").and_then(Value::as_list)?;
    let node = transport.get("peer_cert_node_id").and_then(Value::as_str)?;
    methods.iter().any(|m| m.as_str() == Some("tls")).then(|| Identity {
        authid: node.to_owned(),
        authrole: crate::router::mesh::LINK_ROLE.into(),
        authmethod: "tls".into(),
        authprovider: "mesh-ca".into(),
        authextra: Dict::new(),
    })
}

/// Everything a session needs from the node.
#[derive(Debug, Clone)]
pub struct SessionContext {
    pub settings: Arc<ListenerSettings>,
    pub realms: RealmRegistry,
    /// Fires on node shutdown: the session says GOODBYE `wamp.close.system_shutdown`.
    pub shutdown: CancellationToken,
}

/// How a session ended, for logs.
#[derive(Debug, thiserror::Error)]
pub enum SessionEnd {
    #[error("handshake refused or failed")]
    Handshake,
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

/// The WELCOME roles: exactly the features this router implements.
pub fn router_roles() -> Dict {
    let features = |names: &[&str]| {
        let f: Dict = names.iter().map(|n| (n.to_string(), Value::Bool(true))).collect();
        Value::Dict(crate::dict! { "features" => f })
    };
    crate::dict! {
        "broker" => features(&[
            "publisher_identification", "pattern_based_subscription", "subscriber_blackwhite_listing",
            "publisher_exclusion", "session_meta_api", "subscription_meta_api",
        ]),
        "dealer" => features(&[
            "progressive_call_results", "call_canceling", "call_timeout", "caller_identification",
            "pattern_based_registration", "shared_registration", "session_meta_api", "registration_meta_api",
        ]),
    }
}

/// Serves one RawSocket byte stream until it ends. `transport` describes the peer for the meta API.
pub async fn serve<R, W>(reader: R, writer: W, transport: Dict, ctx: SessionContext) -> Result<(), SessionEnd>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let settings = Arc::clone(&ctx.settings);
    let (mut reader, mut writer) = (reader, writer);
    let mut request = [0u8; 4];
    tokio::time::timeout(settings.handshake_timeout, reader.read_exact(&mut request))
        .await
        .map_err(|_| SessionEnd::Timeout("handshake"))??;
    let (serializer, peer_max) = match rawsocket::accept_handshake(request, &settings.serializers) {
        HandshakeOutcome::Accept { serializer, peer_max } => (serializer, peer_max),
        HandshakeOutcome::Refuse(refusal) => {
            writer.write_all(&refusal.reply()).await?;
            writer.shutdown().await?;
            return Err(SessionEnd::Handshake);
        }
        HandshakeOutcome::Fail => return Err(SessionEnd::Handshake),
    };
    writer.write_all(&rawsocket::handshake(serializer, settings.max_message_size)).await?;
    let codec = FrameCodec::new(settings.max_message_size, peer_max);
    let mut conn = Connection {
        frames: FramedRead::new(reader, codec.clone()),
        out: FrameWriter::new(writer, codec),
        serializer,
    };
    let result = conn.run(transport, &ctx).await;
    if let Err(SessionEnd::ProtocolViolation(why)) = &result {
        let _ = conn.send(&Message::abort(reason::PROTOCOL_VIOLATION, why)).await;
    }
    let _ = conn.out.shutdown().await;
    result
}

struct Connection<R, W> {
    frames: FramedRead<R, FrameCodec>,
    out: FrameWriter<W>,
    serializer: Serializer,
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Connection<R, W> {
    async fn send(&mut self, message: &Message) -> Result<(), SessionEnd> {
        let bytes = self.serializer.encode(message).map_err(|e| SessionEnd::Transport(e.to_string()))?;
        self.out.queue(FrameKind::Message, bytes).map_err(|e| SessionEnd::Transport(e.to_string()))?;
        Ok(self.out.flush().await?)
    }

    /// Next WAMP message, answering PINGs on the way.
    async fn next_message(&mut self) -> Result<Message, SessionEnd> {
        loop {
            let frame = match self.frames.next().await {
                None => return Err(SessionEnd::Closed),
                Some(Err(e)) => return Err(SessionEnd::ProtocolViolation(e.to_string())),
                Some(Ok(frame)) => frame,
            };
            match frame.kind {
                FrameKind::Ping => {
                    self.out.queue(FrameKind::Pong, frame.payload).map_err(|e| SessionEnd::Transport(e.to_string()))?;
                    self.out.flush().await?;
                }
                FrameKind::Pong => {}
                FrameKind::Message => {
                    return self.serializer.decode(&frame.payload).map_err(|e| SessionEnd::ProtocolViolation(e.to_string()));
                }
            }
        }
    }

    async fn run(&mut self, mut transport: Dict, ctx: &SessionContext) -> Result<(), SessionEnd> {
        let settings = &ctx.settings;
        let hello = tokio::time::timeout(settings.hello_timeout, self.next_message())
            .await
            .map_err(|_| SessionEnd::Timeout("HELLO"))??;
        let Message::Hello { realm, details } = hello else {
            return Err(SessionEnd::ProtocolViolation(format!("expected HELLO, got {}", hello.name())));
        };
        let Some(handle) = uri::is_valid_uri(&realm).then(|| ctx.realms.get(&realm)).flatten() else {
            self.send(&Message::abort(reason::NO_SUCH_REALM, &format!("no realm {realm:?} on this node"))).await?;
            return Err(SessionEnd::Aborted(reason::NO_SUCH_REALM.into()));
        };
        let session = Id::random();
        let link = link_identity(&details, &transport, settings);
        let identity = match link.map(AuthStep::Welcome).unwrap_or_else(|| settings.auth.hello(&details, session, &Now::read())) {
            AuthStep::Welcome(identity) => identity,
            AuthStep::Abort { reason, message } => {
                self.send(&Message::abort(reason, &message)).await?;
                return Err(SessionEnd::Aborted(reason.into()));
            }
            AuthStep::Challenge { method, extra, pending } => {
                self.send(&Message::Challenge { method, extra }).await?;
                let answer = tokio::time::timeout(settings.hello_timeout, self.next_message())
                    .await
                    .map_err(|_| SessionEnd::Timeout("AUTHENTICATE"))??;
                let Message::Authenticate { signature, extra } = answer else {
                    return Err(SessionEnd::ProtocolViolation(format!("expected AUTHENTICATE, got {}", answer.name())));
                };
                match pending.authenticate(&signature, &extra) {
                    Ok(identity) => identity,
                    Err(failure) => {
                        self.send(&Message::abort(failure.reason, &failure.message)).await?;
                        return Err(SessionEnd::Aborted(failure.reason.into()));
                    }
                }
            }
        };
        if let Some((management, allow_local)) = &settings.management {
            let loopback = transport
                .get("peer")
                .and_then(Value::as_str)
                .and_then(|p| p.parse::<std::net::SocketAddr>().ok())
                .is_some_and(|a| a.ip().is_loopback());
            if &realm == management && identity.authrole == "anonymous" && !(*allow_local && loopback) {
                let why = "management needs role admin (or allow_local from loopback)";
                self.send(&Message::abort(reason::NOT_AUTHORIZED, why)).await?;
                return Err(SessionEnd::Aborted(reason::NOT_AUTHORIZED.into()));
            }
        }
        transport.insert("serializer".into(), self.serializer.name().into());
        let info = SessionInfo {
            id: session,
            authid: identity.authid,
            authrole: identity.authrole,
            authmethod: identity.authmethod,
            authprovider: identity.authprovider,
            roles: details.get("roles").and_then(Value::as_dict).cloned().unwrap_or_default(),
            transport,
        };
        let welcome = crate::dict! {
            "realm" => realm.clone(),
            "authid" => info.authid.clone(),
            "authrole" => info.authrole.clone(),
            "authmethod" => info.authmethod.clone(),
            "authprovider" => info.authprovider.clone(),
            "roles" => router_roles(),
            "agent" => concat!("wampmesh/", env!("CARGO_PKG_VERSION")),
        };
        let (queue, outbound) = mpsc::channel(settings.outbound_queue);
        let kill = CancellationToken::new();
        let link = SessionOutbound { queue, kill: kill.clone(), dropped: Arc::new(AtomicU64::new(0)) };
        match handle.join(info, link).await {
            Err(_) => {
                self.send(&Message::abort(reason::SYSTEM_SHUTDOWN, "realm stopped")).await?;
                return Err(SessionEnd::Aborted(reason::SYSTEM_SHUTDOWN.into()));
            }
            Ok(Err(e)) => {
                self.send(&Message::abort(e.reason(), &e.to_string())).await?;
                return Err(SessionEnd::Aborted(e.reason().into()));
            }
            Ok(Ok(())) => {}
        }
        self.send(&Message::Welcome { session, details: welcome }).await?;
        tracing::debug!(%session, realm = %realm, "session joined");
        let result = self.established(session, &handle, outbound, &kill, ctx).await;
        let _ = handle.send(RealmCommand::Leave { session }).await;
        tracing::debug!(%session, ?result, "session left");
        result
    }

    /// The message loop of a joined session.
    async fn established(
        &mut self,
        session: Id,
        realm: &RealmHandle,
        mut outbound: mpsc::Receiver<Arc<crate::wamp::SharedMessage>>,
        kill: &CancellationToken,
        ctx: &SessionContext,
    ) -> Result<(), SessionEnd> {
        let mut batch = Vec::with_capacity(64);
        loop {
            tokio::select! {
                biased;
                _ = ctx.shutdown.cancelled() => {
                    self.send(&goodbye(reason::SYSTEM_SHUTDOWN)).await?;
                    return Ok(());
                }
                _ = kill.cancelled() => {
                    self.send(&Message::abort("wampmesh.error.slow_consumer", "outbound queue overflowed")).await?;
                    return Err(SessionEnd::Aborted("slow consumer".into()));
                }
                n = outbound.recv_many(&mut batch, 64) => {
                    if n == 0 {
                        return Err(SessionEnd::Aborted("realm stopped".into()));
                    }
                    self.write_batch(&mut batch).await?;
                }
                message = self.next_message() => {
                    let message = message?;
                    match message {
                        Message::Goodbye { .. } => {
                            self.send(&goodbye(reason::GOODBYE_AND_OUT)).await?;
                            return Ok(());
                        }
                        Message::Abort { reason, .. } => return Err(SessionEnd::Aborted(reason)),
                        Message::Publish { .. } | Message::Subscribe { .. } | Message::Unsubscribe { .. }
                        | Message::Call { .. } | Message::Cancel { .. } | Message::Register { .. }
                        | Message::Unregister { .. } | Message::Yield { .. }
                        | Message::Error { request_type: code::INVOCATION, .. } => {
                            realm.send(RealmCommand::Message { session, message }).await
                                .map_err(|_| SessionEnd::Aborted("realm stopped".into()))?;
                        }
                        other => return Err(SessionEnd::ProtocolViolation(format!("{} not allowed here", other.name()))),
                    }
                }
            }
        }
    }

    /// Encodes (shared bytes, once per serializer) and writes a batch with one flush.
    async fn write_batch(&mut self, batch: &mut Vec<Arc<crate::wamp::SharedMessage>>) -> Result<(), SessionEnd> {
        for shared in batch.drain(..) {
            let bytes = match shared.encoded(self.serializer) {
                Ok(bytes) => bytes,
                Err(e) => {
                    tracing::error!(error = %e, "cannot encode outgoing message");
                    continue;
                }
            };
            if let Err(e) = self.out.queue(FrameKind::Message, bytes) {
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
                        let _ = self.out.queue(FrameKind::Message, bytes);
                    }
                }
            }
        }
        Ok(self.out.flush().await?)
    }
}

fn goodbye(reason: &str) -> Message {
    Message::Goodbye { details: Dict::new(), reason: reason.to_owned() }
}
