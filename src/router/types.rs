//! What the routing state machines share: who a session is, the clock they are given, and the
//! outbox they fill instead of doing I/O.

use std::sync::Arc;
use std::time::Instant;

use crate::wamp::{Dict, Id, Message, SessionId, SharedMessage, Value};

/// A realm's joined sessions. Boxed: a realm with one session (a quiet linked realm) pays for
/// four hash buckets, which is 0.6 KiB when they hold the info itself and 64 bytes as boxes.
pub type Sessions = std::collections::HashMap<SessionId, Box<SessionInfo>>;

/// Everything routing needs to know about a joined session.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub id: SessionId,
    pub authid: String,
    pub authrole: String,
    pub authmethod: String,
    pub authprovider: String,
    /// The features routing consults, from `HELLO.Details.roles`.
    pub features: Features,
    /// Transport facts for the session meta API (type, peer address, serializer, …).
    pub transport: SessionTransport,
    /// HELLO asked (`_wampmesh.attach = true`) to be attached to the link channel and the
    /// invoke procedure at join, instead of by SUBSCRIBE and REGISTER afterwards: a realm link
    /// is then up one round trip after it opens. Honoured for the link role only.
    pub attach_link: bool,
}

/// The client features routing consults (from `HELLO.Details.roles`); the rest of what a client
/// announces (often a kilobyte of feature flags) is not kept per session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    /// `callee.features.call_canceling`
    pub callee_call_canceling: bool,
    /// `callee.features.progressive_call_results`
    pub callee_progressive_call_results: bool,
}

impl Features {
    /// Reads the routed features out of `HELLO.Details.roles`.
    pub fn from_roles(roles: Option<&Dict>) -> Features {
        let set = |role: &str, feature: &str| {
            roles
                .and_then(|r| r.get(role))
                .and_then(Value::as_dict)
                .and_then(|r| r.get("features"))
                .and_then(Value::as_dict)
                .and_then(|f| f.get(feature))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        };
        Features {
            callee_call_canceling: set("callee", "call_canceling"),
            callee_progressive_call_results: set("callee", "progressive_call_results"),
        }
    }
}

impl SessionInfo {
    /// The session as the meta API shows it (`wamp.session.get`, `on_join`).
    pub fn meta_details(&self) -> Dict {
        crate::dict! {
            "session" => self.id.get(),
            "authid" => self.authid.clone(),
            "authrole" => self.authrole.clone(),
            "authmethod" => self.authmethod.clone(),
            "authprovider" => self.authprovider.clone(),
            "transport" => self.transport.details(),
        }
    }
}

/// What a session knows of its transport, for the meta API (`transport` in `wamp.session.get`).
/// The facts are shared by the sessions that have the same ones — the streams of one QUIC
/// connection, the link sessions of a node — because a map costs ~0.7 KiB and a node may hold
/// 100k sessions; what differs per session is kept beside them. Reads as the shared map.
#[derive(Debug, Clone, Default)]
pub struct SessionTransport {
    pub facts: Arc<Dict>,
    /// The QUIC stream the session runs on.
    pub stream: Option<u64>,
    /// The session's serializer (none for sessions attached in-process).
    pub serializer: Option<&'static str>,
}

impl SessionTransport {
    /// The facts with this session's own: the map the meta API shows.
    pub fn details(&self) -> Dict {
        let mut details = Dict::clone(&self.facts);
        if let Some(stream) = self.stream {
            details.insert("stream".into(), stream.into());
        }
        if let Some(serializer) = self.serializer {
            details.insert("serializer".into(), serializer.into());
        }
        details
    }
}

impl std::ops::Deref for SessionTransport {
    type Target = Dict;
    fn deref(&self) -> &Dict {
        &self.facts
    }
}

impl From<Dict> for SessionTransport {
    fn from(facts: Dict) -> Self {
        Arc::new(facts).into()
    }
}

impl From<Arc<Dict>> for SessionTransport {
    fn from(facts: Arc<Dict>) -> Self {
        SessionTransport {
            facts,
            stream: None,
            serializer: None,
        }
    }
}

/// The time a state machine is handed: monotonic for timers, wall clock for `created` fields.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub instant: Instant,
    pub unix_ms: u64,
}

impl Now {
    /// Reads the clocks (only the async layer calls this).
    pub fn read() -> Now {
        let unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Now {
            instant: Instant::now(),
            unix_ms,
        }
    }

    /// UTC ISO 8601 with milliseconds, as the meta API's `created` fields.
    pub fn iso8601(&self) -> String {
        let secs = self.unix_ms / 1000;
        let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let z = (secs / 86400) as i64 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        format!(
            "{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{:03}Z",
            self.unix_ms % 1000
        )
    }
}

/// Changes of routing state that the meta API publishes and router links mirror.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaEvent {
    /// First subscriber of a new subscription: `details` = {id, created, uri, match}.
    SubscriptionCreated { session: SessionId, details: Dict },
    SubscriptionAdded {
        session: SessionId,
        subscription: Id,
    },
    SubscriptionRemoved {
        session: SessionId,
        subscription: Id,
    },
    /// Last subscriber left; the subscription is gone.
    SubscriptionDeleted {
        session: SessionId,
        subscription: Id,
    },
    /// First callee of a new registration: `details` = {id, created, uri, match, invoke}.
    RegistrationCreated { session: SessionId, details: Dict },
    RegistrationAdded {
        session: SessionId,
        registration: Id,
    },
    RegistrationRemoved {
        session: SessionId,
        registration: Id,
    },
    RegistrationDeleted {
        session: SessionId,
        registration: Id,
    },
}

/// One message for one session. Fan-out shares the `Arc`, so bytes are encoded once.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub to: SessionId,
    pub message: Arc<SharedMessage>,
}

/// Where state machines put their output.
#[derive(Debug, Default)]
pub struct Outbox {
    pub deliveries: Vec<Delivery>,
    pub meta: Vec<MetaEvent>,
}

impl Outbox {
    pub fn send(&mut self, to: SessionId, message: Message) {
        self.deliveries.push(Delivery {
            to,
            message: SharedMessage::new(message),
        });
    }
    pub fn send_shared(&mut self, to: SessionId, message: &Arc<SharedMessage>) {
        self.deliveries.push(Delivery {
            to,
            message: Arc::clone(message),
        });
    }
    /// An ERROR reply to a request.
    pub fn error(&mut self, to: SessionId, request_type: u64, request: Id, error: &str) {
        self.send(
            to,
            Message::Error {
                request_type,
                request,
                details: Dict::new(),
                error: error.to_owned(),
                payload: Default::default(),
            },
        );
    }
    pub fn meta(&mut self, event: MetaEvent) {
        self.meta.push(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_routed_callee_features_are_read() {
        let hello = crate::dict! {
            "caller" => crate::dict! { "features" => crate::dict! { "progressive_call_results" => true } },
            "callee" => crate::dict! { "features" => crate::dict! {
                "call_canceling" => true,
                "progressive_call_results" => false,
                "caller_identification" => true,
            } },
        };
        let expected = Features {
            callee_call_canceling: true,
            callee_progressive_call_results: false,
        };
        assert_eq!(Features::from_roles(Some(&hello)), expected);
        assert_eq!(Features::from_roles(None), Features::default());
    }
}
