//! What can go wrong for a client operation, and why a session ended.

use crate::rawsocket::RawSocketError;
use crate::wamp::{Dict, Payload};

/// The error of every client operation.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting, reading or writing the byte stream failed.
    #[error("transport error: {0}")]
    Transport(#[from] std::io::Error),
    /// The RawSocket handshake was refused or malformed.
    #[error("RawSocket handshake failed: {0}")]
    Handshake(#[from] RawSocketError),
    /// The router answered HELLO (or AUTHENTICATE) with ABORT.
    #[error("session aborted by the router: {reason}{}", with_message(.message))]
    Aborted {
        reason: String,
        message: Option<String>,
    },
    /// The router answered a request with ERROR. Displays as the error URI.
    #[error("{error}")]
    Wamp {
        error: String,
        details: Dict,
        payload: Payload,
    },
    /// The session has ended (see [`crate::client::Session::closed`] for why).
    #[error("session closed")]
    Closed,
    /// The router broke the protocol, or asked for something this client cannot do.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The message would exceed the largest message the router accepts.
    #[error("message of {size} bytes exceeds the router's maximum of {max} bytes")]
    MessageTooLarge { size: usize, max: usize },
}

fn with_message(message: &Option<String>) -> String {
    message
        .as_deref()
        .map(|m| format!(" ({m})"))
        .unwrap_or_default()
}

impl ClientError {
    /// The WAMP URI of an ERROR or ABORT, if this is one.
    pub fn uri(&self) -> Option<&str> {
        match self {
            ClientError::Wamp { error, .. } => Some(error),
            ClientError::Aborted { reason, .. } => Some(reason),
            _ => None,
        }
    }
}

/// Why a session ended, as [`crate::client::Session::closed`] reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum CloseReason {
    /// The router said GOODBYE (the client answered `wamp.close.goodbye_and_out`).
    Goodbye { reason: String, details: Dict },
    /// The router sent ABORT.
    Abort { reason: String, details: Dict },
    /// This client left ([`crate::client::Session::leave`], or every handle was dropped);
    /// `reason` and `details` are those of the router's GOODBYE reply.
    Left { reason: String, details: Dict },
    /// The byte stream ended or failed without a closing handshake.
    TransportLost { error: String },
    /// The router broke the protocol; the client sent ABORT `wamp.error.protocol_violation`
    /// where it still could, and closed.
    ProtocolViolation { message: String },
}

impl CloseReason {
    /// The close reason URI; for the local cases the conventional ones
    /// (`wamp.close.transport_lost`, as autobahn, and `wamp.error.protocol_violation`).
    pub fn reason(&self) -> &str {
        match self {
            CloseReason::Goodbye { reason, .. }
            | CloseReason::Abort { reason, .. }
            | CloseReason::Left { reason, .. } => reason,
            CloseReason::TransportLost { .. } => "wamp.close.transport_lost",
            CloseReason::ProtocolViolation { .. } => crate::wamp::uri::reason::PROTOCOL_VIOLATION,
        }
    }
}
