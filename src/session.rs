//! One connection or stream on the router side: RawSocket handshake -> HELLO/auth/WELCOME ->
//! message loop, written once for every byte stream (TCP, Unix, QUIC stream).

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use crate::metrics::{Metrics, SessionGauge, TransportCounters};
use crate::rawsocket::{self, FrameCodec, FrameKind, HandshakeOutcome, HandshakeRefusal};
use crate::router::auth::{AuthConfig, AuthStep, Identity};
use crate::router::task::{RealmCommand, RealmHandle, SessionOutbound, SlowConsumerPolicy};
use crate::router::{Now, RealmRegistry, SessionInfo};
use crate::transport::admission::{Admission, AdmissionRefused, Slot};
use crate::wamp::uri::{self, reason};
use crate::wamp::{code, Dict, Id, Message, Serializer, Value};
use crate::writer::FrameWriter;

/// Bytes of a RawSocket frame header, counted with every frame in the metrics.
const FRAME_HEADER: usize = 4;
/// How long a session waits at shutdown for its realm to answer the calls in flight.
const QUIESCE_TIMEOUT: Duration = Duration::from_secs(1);

/// What a listener tells each of its sessions.
#[derive(Debug)]
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

/// A router-link identity, if this HELLO is one: a peer node proven by its TLS client
/// certificate (HELLO `authmethods` has "tls"), or any HELLO on the trusted in-process listener.
fn link_identity(
    details: &Dict,
    transport: &Dict,
    settings: &ListenerSettings,
) -> Option<Identity> {
    let asked_role = details.get("authrole").and_then(Value::as_str);
    if settings.trusted {
        let extra = details.get("authextra").and_then(Value::as_dict);
        let peer = extra
            .and_then(|e| e.get("peer"))
            .and_then(Value::as_str)
            .unwrap_or("local");
        return Some(Identity {
            authid: peer.to_owned(),
            authrole: asked_role
                .unwrap_or(crate::router::mesh::LINK_ROLE)
                .to_owned(),
            authmethod: "trusted".into(),
            authprovider: "node".into(),
            authextra: Dict::new(),
        });
    }
    let methods = details.get("authmethods").and_then(Value::as_list)?;
    let node = transport.get("peer_cert_node_id").and_then(Value::as_str)?;
    methods
        .iter()
        .any(|m| m.as_str() == Some("tls"))
        .then(|| Identity {
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

/// The WELCOME roles: exactly the features this router implements.
pub fn router_roles() -> Dict {
    let features = |names: &[&str]| {
        let f: Dict = names
            .iter()
            .map(|n| (n.to_string(), Value::Bool(true)))
            .collect();
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
pub async fn serve<R, W>(
    reader: R,
    writer: W,
    transport: Dict,
    ctx: SessionContext,
) -> Result<(), SessionEnd>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (mut reader, mut writer) = (reader, writer);
    let slot = admit(&ctx, &transport);
    let opened = open_rawsocket(
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
                linger(&mut reader).await;
            }
            return Err(end);
        }
    };
    let settings = &ctx.settings;
    let codec = FrameCodec::new(settings.max_message_size, peer_max);
    let mut conn = Connection {
        frames: FramedRead::new(reader, codec.clone()),
        out: FrameWriter::new(writer, codec),
        serializer,
        counters: ctx.metrics.transport(settings.transport),
    };
    let result = conn.run(transport, &ctx).await;
    if let Err(SessionEnd::ProtocolViolation(why)) = &result {
        let _ = conn
            .send(&Message::abort(reason::PROTOCOL_VIOLATION, why))
            .await;
    }
    let _ = conn.out.shutdown().await;
    drop(slot);
    result
}

/// Takes this connection's admission slot. The node's own in-process sessions are not limited;
/// peer nodes proven by their certificate and Unix sockets are not limited per address.
fn admit(ctx: &SessionContext, transport: &Dict) -> Result<Option<Slot>, AdmissionRefused> {
    if ctx.settings.trusted {
        return Ok(None);
    }
    let address = match transport.get("peer_cert_node_id") {
        Some(_) => None,
        None => transport
            .get("peer")
            .and_then(Value::as_str)
            .and_then(|p| p.parse::<std::net::SocketAddr>().ok())
            .map(|a| a.ip()),
    };
    ctx.admission.admit(address).map(Some)
}

/// The RawSocket handshake: reads the client's 4 bytes and answers them. A connection the
/// admission refused (`refused`) gets `7F 40`, a client announcing less than
/// `min_peer_message_size` gets `7F 20`. Errors carry the metrics reason.
async fn open_rawsocket<R, W>(
    reader: &mut R,
    writer: &mut W,
    refused: Option<AdmissionRefused>,
    settings: &ListenerSettings,
) -> Result<(Serializer, usize), (&'static str, SessionEnd)>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut request = [0u8; 4];
    match tokio::time::timeout(settings.handshake_timeout, reader.read_exact(&mut request)).await {
        Err(_) => return Err(("handshake_timeout", SessionEnd::Timeout("handshake"))),
        Ok(Err(e)) => return Err(("transport", e.into())),
        Ok(Ok(_)) => {}
    }
    let refusal = match rawsocket::accept_handshake(request, &settings.serializers) {
        HandshakeOutcome::Fail => return Err(("not_rawsocket", SessionEnd::Handshake)),
        HandshakeOutcome::Refuse(refusal) => refusal,
        HandshakeOutcome::Accept { .. } if refused.is_some() => {
            HandshakeRefusal::MaxConnectionCountReached
        }
        HandshakeOutcome::Accept { peer_max, .. } if peer_max < settings.min_peer_message_size => {
            HandshakeRefusal::MaxLengthUnacceptable
        }
        HandshakeOutcome::Accept {
            serializer,
            peer_max,
        } => {
            let reply = rawsocket::handshake(serializer, settings.max_message_size);
            writer
                .write_all(&reply)
                .await
                .map_err(|e| ("transport", e.into()))?;
            return Ok((serializer, peer_max));
        }
    };
    let reason = match refusal {
        HandshakeRefusal::SerializerUnsupported => "serializer_unsupported",
        HandshakeRefusal::MaxLengthUnacceptable => "max_length_unacceptable",
        HandshakeRefusal::ReservedBitsUsed => "reserved_bits",
        HandshakeRefusal::MaxConnectionCountReached => "connection_limit",
    };
    let _ = writer.write_all(&refusal.reply()).await;
    let _ = writer.shutdown().await;
    let why = match refused {
        Some(why) if refusal == HandshakeRefusal::MaxConnectionCountReached => why.to_string(),
        _ => reason.replace('_', " "),
    };
    Err((reason, SessionEnd::Refused(why)))
}

/// After a refusal: reads (and drops) what the client still sends until it closes, for a short
/// while, so the close is a FIN and not a reset that could destroy the 4-byte reply in flight.
async fn linger<R: AsyncRead + Unpin>(reader: &mut R) {
    let mut sink = [0u8; 1024];
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        let mut total = 0;
        while total < 64 * 1024 {
            match reader.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    })
    .await;
}

struct Connection<R, W> {
    frames: FramedRead<R, FrameCodec>,
    out: FrameWriter<W>,
    serializer: Serializer,
    counters: Arc<TransportCounters>,
}

/// A session that has been welcomed into its realm.
struct Joined {
    session: Id,
    realm: RealmHandle,
    outbound: mpsc::Receiver<Arc<crate::wamp::SharedMessage>>,
    kill: CancellationToken,
    _gauge: SessionGauge,
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Connection<R, W> {
    async fn send(&mut self, message: &Message) -> Result<(), SessionEnd> {
        let bytes = self
            .serializer
            .encode(message)
            .map_err(|e| SessionEnd::Transport(e.to_string()))?;
        let size = FRAME_HEADER + bytes.len();
        self.out
            .queue(FrameKind::Message, bytes)
            .map_err(|e| SessionEnd::Transport(e.to_string()))?;
        self.out.flush().await?;
        self.counters.sent(1, size);
        Ok(())
    }

    /// Sends ABORT and ends the session with it.
    async fn abort(&mut self, reason: &'static str, message: &str) -> Result<Joined, SessionEnd> {
        self.send(&Message::abort(reason, message)).await?;
        Err(SessionEnd::Aborted(reason.into()))
    }

    /// Next WAMP message, answering PINGs on the way.
    async fn next_message(&mut self) -> Result<Message, SessionEnd> {
        loop {
            let frame = match self.frames.next().await {
                None => return Err(SessionEnd::Closed),
                Some(Err(e)) => return Err(SessionEnd::ProtocolViolation(e.to_string())),
                Some(Ok(frame)) => frame,
            };
            let size = FRAME_HEADER + frame.payload.len();
            self.counters
                .received(size, frame.kind == FrameKind::Message);
            match frame.kind {
                FrameKind::Ping => {
                    self.out
                        .queue(FrameKind::Pong, frame.payload)
                        .map_err(|e| SessionEnd::Transport(e.to_string()))?;
                    self.out.flush().await?;
                    self.counters.sent(0, size);
                }
                FrameKind::Pong => {}
                FrameKind::Message => {
                    return self
                        .serializer
                        .decode(&frame.payload)
                        .map_err(|e| SessionEnd::ProtocolViolation(e.to_string()));
                }
            }
        }
    }

    async fn run(&mut self, transport: Dict, ctx: &SessionContext) -> Result<(), SessionEnd> {
        let joined = match self.open(transport, ctx).await {
            Ok(joined) => joined,
            Err(end) => {
                ctx.metrics.handshake_failed(opening_failure(&end));
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

    /// HELLO -> (CHALLENGE -> AUTHENTICATE) -> join the realm -> WELCOME.
    async fn open(
        &mut self,
        mut transport: Dict,
        ctx: &SessionContext,
    ) -> Result<Joined, SessionEnd> {
        let settings = &ctx.settings;
        let hello = tokio::time::timeout(settings.hello_timeout, self.next_message())
            .await
            .map_err(|_| SessionEnd::Timeout("HELLO"))??;
        let Message::Hello { realm, details } = hello else {
            return Err(SessionEnd::ProtocolViolation(format!(
                "expected HELLO, got {}",
                hello.name()
            )));
        };
        let Some(handle) = uri::is_valid_uri(&realm)
            .then(|| ctx.realms.get(&realm))
            .flatten()
        else {
            return self
                .abort(
                    reason::NO_SUCH_REALM,
                    &format!("no realm {realm:?} on this node"),
                )
                .await;
        };
        let session = Id::random();
        let identity = match self
            .authenticate(&details, &transport, session, settings)
            .await?
        {
            Ok(identity) => identity,
            Err((reason, message)) => return self.abort(reason, &message).await,
        };
        if let Some((management, allow_local)) = &settings.management {
            let loopback = transport
                .get("peer")
                .and_then(Value::as_str)
                .and_then(|p| p.parse::<std::net::SocketAddr>().ok())
                .is_some_and(|a| a.ip().is_loopback());
            if &realm == management
                && identity.authrole == "anonymous"
                && !(*allow_local && loopback)
            {
                let why = "management needs role admin (or allow_local from loopback)";
                return self.abort(reason::NOT_AUTHORIZED, why).await;
            }
        }
        transport.insert("serializer".into(), self.serializer.name().into());
        let info = SessionInfo {
            id: session,
            authid: identity.authid,
            authrole: identity.authrole,
            authmethod: identity.authmethod,
            authprovider: identity.authprovider,
            roles: details
                .get("roles")
                .and_then(Value::as_dict)
                .cloned()
                .unwrap_or_default(),
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
        let dropped = ctx.metrics.events_dropped();
        let link = SessionOutbound {
            queue,
            kill: kill.clone(),
            dropped,
        };
        match handle.join(info, link).await {
            Err(_) => return self.abort(reason::SYSTEM_SHUTDOWN, "realm stopped").await,
            Ok(Err(e)) => return self.abort(e.reason(), &e.to_string()).await,
            Ok(Ok(())) => {}
        }
        let joined = Joined {
            session,
            realm: handle,
            outbound,
            kill,
            _gauge: ctx.metrics.session_joined(&realm),
        };
        let mut welcome = Message::Welcome { session, details: welcome };
        let fits = self.serializer.encode(&welcome).is_ok_and(|b| b.len() <= self.out.max_send());
        if let (false, Message::Welcome { details, .. }) = (fits, &mut welcome) {
            // A client that accepts only tiny messages gets the roles without feature lists.
            let bare = crate::dict! { "features" => Dict::new() };
            details.insert("roles".into(), Value::Dict(crate::dict! { "broker" => bare.clone(), "dealer" => bare }));
            details.remove("agent");
        }
        self.send(&welcome).await?;
        tracing::debug!(%session, realm = %realm, "session joined");
        Ok(joined)
    }

    /// Who the HELLO is: a router link, or what the listener's auth methods make of it.
    /// `Ok(Err((reason, message)))` is a refusal to answer with ABORT.
    async fn authenticate(
        &mut self,
        details: &Dict,
        transport: &Dict,
        session: Id,
        settings: &ListenerSettings,
    ) -> Result<Result<Identity, (&'static str, String)>, SessionEnd> {
        let link = link_identity(details, transport, settings);
        match link
            .map(AuthStep::Welcome)
            .unwrap_or_else(|| settings.auth.hello(details, session, &Now::read()))
        {
            AuthStep::Welcome(identity) => Ok(Ok(identity)),
            AuthStep::Abort { reason, message } => Ok(Err((reason, message))),
            AuthStep::Challenge {
                method,
                extra,
                pending,
            } => {
                self.send(&Message::Challenge { method, extra }).await?;
                let answer = tokio::time::timeout(settings.hello_timeout, self.next_message())
                    .await
                    .map_err(|_| SessionEnd::Timeout("AUTHENTICATE"))??;
                let Message::Authenticate { signature, extra } = answer else {
                    return Err(SessionEnd::ProtocolViolation(format!(
                        "expected AUTHENTICATE, got {}",
                        answer.name()
                    )));
                };
                Ok(pending
                    .authenticate(&signature, &extra)
                    .map_err(|failure| (failure.reason, failure.message)))
            }
        }
    }

    /// The message loop of a joined session.
    async fn established(
        &mut self,
        joined: &mut Joined,
        ctx: &SessionContext,
    ) -> Result<(), SessionEnd> {
        let (session, realm) = (joined.session, joined.realm.clone());
        let mut batch = Vec::with_capacity(64);
        loop {
            tokio::select! {
                biased;
                _ = ctx.shutdown.cancelled() => {
                    self.close_for_shutdown(joined).await?;
                    return Ok(());
                }
                _ = joined.kill.cancelled() => {
                    self.send(&Message::abort("wampmesh.error.slow_consumer", "outbound queue overflowed")).await?;
                    return Err(SessionEnd::Aborted("slow consumer".into()));
                }
                n = joined.outbound.recv_many(&mut batch, 64) => {
                    if n == 0 {
                        return Err(SessionEnd::Aborted("realm stopped".into()));
                    }
                    self.write_batch(&mut batch).await?;
                }
                message = self.next_message() => {
                    let message = message?;
                    match message {
                        Message::Goodbye { .. } => {
                            // The realm forgets the session before the client hears back, so
                            // nobody sees it after its GOODBYE is answered.
                            let _ = realm.send(RealmCommand::Leave { session }).await;
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

    /// Node shutdown: the realm answers every call in flight (see `RealmCommand::Quiesce`),
    /// those answers and whatever else is queued are written, then GOODBYE
    /// `wamp.close.system_shutdown`.
    async fn close_for_shutdown(&mut self, joined: &mut Joined) -> Result<(), SessionEnd> {
        let _ = tokio::time::timeout(QUIESCE_TIMEOUT, joined.realm.quiesce()).await;
        let mut batch = Vec::new();
        while let Ok(message) = joined.outbound.try_recv() {
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
        let (mut messages, mut bytes_out) = (0u64, 0usize);
        for shared in batch.drain(..) {
            let bytes = match shared.encoded(self.serializer) {
                Ok(bytes) => bytes,
                Err(e) => {
                    tracing::error!(error = %e, "cannot encode outgoing message");
                    continue;
                }
            };
            let size = FRAME_HEADER + bytes.len();
            match self.out.queue(FrameKind::Message, bytes) {
                Ok(()) => (messages, bytes_out) = (messages + 1, bytes_out + size),
                Err(e) => {
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
                            let size = FRAME_HEADER + bytes.len();
                            if self.out.queue(FrameKind::Message, bytes).is_ok() {
                                (messages, bytes_out) = (messages + 1, bytes_out + size);
                            }
                        }
                    }
                }
            }
        }
        self.out.flush().await?;
        self.counters.sent(messages, bytes_out);
        Ok(())
    }
}

/// The metrics reason of a session that ended before WELCOME.
fn opening_failure(end: &SessionEnd) -> &str {
    match end {
        SessionEnd::Timeout(_) => "hello_timeout",
        SessionEnd::Aborted(reason) => reason,
        SessionEnd::ProtocolViolation(_) => reason::PROTOCOL_VIOLATION,
        SessionEnd::Handshake
        | SessionEnd::Refused(_)
        | SessionEnd::Transport(_)
        | SessionEnd::Closed => "transport",
    }
}

fn goodbye(reason: &str) -> Message {
    Message::Goodbye {
        details: Dict::new(),
        reason: reason.to_owned(),
    }
}
