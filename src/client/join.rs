//! Joining: the RawSocket handshake, HELLO, any CHALLENGE/AUTHENTICATE rounds, WELCOME.

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::Decoder;

use super::auth::answer_challenge;
use super::connection::{FrameWriter, READ_CHUNK_MIN};
use super::error::ClientError;
use super::ClientConfig;
use crate::dict;
use crate::rawsocket::{
    handshake, length_exponent, length_from_exponent, read_handshake_reply, Frame, FrameCodec,
    FrameKind,
};
use crate::wamp::uri::reason;
use crate::wamp::{Dict, Id, Message, Value};

/// The features each role announces: exactly what this client implements.
const PUBLISHER_FEATURES: &[&str] = &[
    "publisher_exclusion",
    "publisher_identification",
    "subscriber_blackwhite_listing",
];
const SUBSCRIBER_FEATURES: &[&str] = &[
    "pattern_based_subscription",
    "publisher_identification",
    "subscription_revocation",
];
const CALLER_FEATURES: &[&str] = &[
    "progressive_call_results",
    "call_canceling",
    "caller_identification",
];
const CALLEE_FEATURES: &[&str] = &[
    "progressive_call_results",
    "call_canceling",
    "caller_identification",
    "pattern_based_registration",
    "shared_registration",
    "registration_revocation",
];

/// The `agent` HELLO announces.
pub(super) const AGENT: &str = concat!("wampmesh-client/", env!("CARGO_PKG_VERSION"));

/// A joined session, ready for the connection task.
pub(crate) struct Joined<S> {
    pub stream: S,
    /// Bytes read past WELCOME (the router may send right after it).
    pub read_buf: BytesMut,
    pub codec: FrameCodec,
    pub session: Id,
    pub details: Dict,
}

/// Runs the handshake and the opening of the session.
pub(crate) async fn join<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    config: &ClientConfig,
) -> Result<Joined<S>, ClientError> {
    let announced = length_from_exponent(length_exponent(config.max_message_size));
    let hello = Message::Hello {
        realm: config.realm.clone(),
        details: hello_details(config),
    };
    // HELLO goes out with the handshake, saving a round trip. Sending it before the router's
    // limit is known changes no outcome: a HELLO over that limit fails the session either way
    // (here, after the reply, with the sizes; at the router by closing the connection).
    let mut opening = FrameWriter::new(config.serializer, usize::MAX);
    opening.push(&hello)?;
    let hello_size = opening.len() - 4;
    let mut first = handshake(config.serializer, announced).to_vec();
    first.extend_from_slice(opening.bytes());
    stream.write_all(&first).await?;
    stream.flush().await?;
    let mut reply = [0u8; 4];
    stream.read_exact(&mut reply).await?;
    let router_max = read_handshake_reply(reply, config.serializer)?;
    if hello_size > router_max {
        return Err(ClientError::MessageTooLarge {
            size: hello_size,
            max: router_max,
        });
    }
    let mut codec = FrameCodec::new(announced, router_max);
    let mut read_buf = BytesMut::with_capacity(READ_CHUNK_MIN);
    let mut out = FrameWriter::new(config.serializer, codec.max_send);
    loop {
        let frame = next_frame(&mut stream, &mut codec, &mut read_buf).await?;
        match frame.kind {
            FrameKind::Ping => out.push_pong(&frame.payload),
            FrameKind::Pong => {}
            FrameKind::Message => match config.serializer.decode(&frame.payload) {
                Ok(Message::Welcome {
                    session,
                    mut details,
                }) => {
                    if !config.keep_router_roles {
                        details.remove("roles");
                    }
                    flush(&mut stream, &mut out).await?;
                    return Ok(Joined {
                        stream,
                        read_buf,
                        codec,
                        session,
                        details,
                    });
                }
                Ok(Message::Challenge { method, extra }) => {
                    let signature = match answer_challenge(&config.auth, &method, &extra) {
                        Ok(signature) => signature,
                        Err(e) => {
                            let why = reason::AUTHENTICATION_FAILED;
                            return Err(refuse(stream, out, why, e).await);
                        }
                    };
                    let extra = Dict::new();
                    out.push(&Message::Authenticate { signature, extra })?;
                }
                Ok(Message::Abort { details, reason }) => {
                    let message = details.get("message").and_then(Value::as_str);
                    return Err(ClientError::Aborted {
                        reason,
                        message: message.map(str::to_owned),
                    });
                }
                Ok(other) => {
                    let e = format!("unexpected {} while joining", other.name());
                    let why = reason::PROTOCOL_VIOLATION;
                    return Err(refuse(stream, out, why, ClientError::Protocol(e)).await);
                }
                Err(e) => {
                    let e = ClientError::Protocol(format!("undecodable message: {e}"));
                    return Err(refuse(stream, out, reason::PROTOCOL_VIOLATION, e).await);
                }
            },
        }
        flush(&mut stream, &mut out).await?;
    }
}

/// HELLO details: roles with their features, agent, authentication, then `hello_extra`.
pub(super) fn hello_details(config: &ClientConfig) -> Dict {
    let roles = dict! {
        "publisher" => role(PUBLISHER_FEATURES),
        "subscriber" => role(SUBSCRIBER_FEATURES),
        "caller" => role(CALLER_FEATURES),
        "callee" => role(CALLEE_FEATURES),
    };
    let mut details = dict! {
        "roles" => roles,
        "agent" => AGENT,
        "authmethods" => vec![Value::from(config.auth.method())],
    };
    if let Some(authid) = config.auth.authid() {
        details.insert("authid".into(), authid.into());
    }
    if let Some(authrole) = &config.authrole {
        details.insert("authrole".into(), authrole.as_str().into());
    }
    details.extend(config.hello_extra.clone());
    // The public key cryptosign needs goes into whatever authextra `hello_extra` set.
    if let Some(auth_extra) = config.auth.authextra() {
        let mut merged = match details.remove("authextra") {
            Some(Value::Dict(extra)) => extra,
            _ => Dict::new(),
        };
        for (key, value) in auth_extra {
            merged.entry(key).or_insert(value);
        }
        details.insert("authextra".into(), Value::Dict(merged));
    }
    details
}

fn role(features: &[&str]) -> Value {
    let features: Dict = features
        .iter()
        .map(|f| ((*f).to_owned(), Value::Bool(true)))
        .collect();
    Value::from(dict! { "features" => features })
}

/// Reads until one whole frame is buffered.
async fn next_frame<S: AsyncRead + Unpin>(
    stream: &mut S,
    codec: &mut FrameCodec,
    read_buf: &mut BytesMut,
) -> Result<Frame, ClientError> {
    loop {
        match codec.decode(read_buf) {
            Ok(Some(frame)) => return Ok(frame),
            Ok(None) => {}
            Err(e) => return Err(ClientError::Protocol(e.to_string())),
        }
        if stream.read_buf(read_buf).await? == 0 {
            return Err(ClientError::Transport(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the router closed the connection while joining",
            )));
        }
    }
}

async fn flush<S: AsyncWrite + Unpin>(
    stream: &mut S,
    out: &mut FrameWriter,
) -> std::io::Result<()> {
    if !out.is_empty() {
        stream.write_all(out.bytes()).await?;
        out.consume(out.len());
        stream.flush().await?;
    }
    Ok(())
}

/// Tells the router we give up (ABORT with `reason`), best effort, and returns `error`.
async fn refuse<S: AsyncWrite + Unpin>(
    mut stream: S,
    mut out: FrameWriter,
    reason: &str,
    error: ClientError,
) -> ClientError {
    let _ = out.push(&Message::abort(reason, &error.to_string()));
    let _ = flush(&mut stream, &mut out).await;
    let _ = stream.shutdown().await;
    error
}
