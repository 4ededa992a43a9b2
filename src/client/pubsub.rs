//! Subscriptions and the events they receive.

use std::sync::Arc;

use super::command::{Command, Link, SubscriptionParts};
use super::error::ClientError;
use crate::wamp::{Dict, Id, Payload};

/// One EVENT, as a subscriber sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub publication: Id,
    /// EVENT details: `topic` for pattern subscriptions, `publisher` when disclosed, …
    pub details: Dict,
    pub payload: Payload,
}

/// A live subscription: a stream of events, in the order the router sent them.
///
/// Its queue holds [`crate::client::ClientConfig::queue_capacity`] events; when it is full the
/// session stops reading the socket until this subscription takes one (see the module docs).
/// Dropping it unsubscribes (without waiting for the router's answer).
pub struct Subscription {
    id: Id,
    local: u64,
    events: crate::queue::Receiver<Box<Event>>,
    link: Arc<Link>,
    /// Set once `unsubscribe` has sent its own command, so `Drop` does not.
    done: bool,
}

impl Subscription {
    pub(super) fn new(parts: SubscriptionParts, link: Arc<Link>) -> Self {
        Subscription {
            id: parts.id,
            local: parts.local,
            events: parts.events,
            link,
            done: false,
        }
    }

    /// The router's subscription id.
    pub fn id(&self) -> Id {
        self.id
    }

    /// The next event; `None` once the subscription is revoked by the router or the session
    /// has ended.
    pub async fn next(&mut self) -> Option<Event> {
        self.events.recv().await.map(|e| *e)
    }

    /// Moves up to `limit` queued events into `events`, waiting for at least one; returns how
    /// many (`limit` >= 1), 0 once the stream has ended. For consumers that want fewer wake-ups.
    pub async fn next_batch(&mut self, events: &mut Vec<Event>, limit: usize) -> usize {
        // Grown to what is queued, not to `limit` up front (a large limit would allocate its
        // whole room on every call).
        let mut boxed = Vec::new();
        let n = self.events.recv_many(&mut boxed, limit).await;
        events.extend(boxed.into_iter().map(|e| *e));
        n
    }

    /// Unsubscribes and waits for the router's UNSUBSCRIBED. Events already queued are lost.
    pub async fn unsubscribe(mut self) -> Result<(), ClientError> {
        self.done = true;
        let (subscription, local) = (self.id, self.local);
        self.link
            .request(|reply| Command::Unsubscribe {
                subscription,
                local,
                reply: Some(reply),
            })
            .await
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if !self.done {
            self.link.send_from_drop(Command::Unsubscribe {
                subscription: self.id,
                local: self.local,
                reply: None,
            });
        }
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .finish()
    }
}
