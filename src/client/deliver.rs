//! Handing items to handle queues without blocking the connection task.
//!
//! A delivery is a `try_send`; one to a full queue comes back as a [`Parked`] future that the
//! task finishes before it reads the socket again (backpressure, in order, nothing dropped).

use std::future::Future;
use std::pin::Pin;

use crate::queue::TrySendError;

use super::pubsub::Event;

/// A delivery waiting for room in a full handle queue.
pub(super) type Parked = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One `Subscription` handle behind a router subscription id.
pub(super) struct LocalSubscriber {
    pub local: u64,
    pub events: crate::queue::Sender<Box<Event>>,
}

/// Hands `item` to a handle's queue; if the queue is full, returns the send to finish later.
/// A closed queue (handle dropped) swallows the item.
pub(super) fn deliver<T: Send + 'static>(tx: &crate::queue::Sender<T>, item: T) -> Option<Parked> {
    match tx.try_send(item) {
        Ok(()) | Err(TrySendError::Closed(_)) => None,
        Err(TrySendError::Full(item)) => {
            let tx = tx.clone();
            Some(Box::pin(async move {
                let _ = tx.send(item).await;
            }))
        }
    }
}

/// Delivers an event to every handle of a subscription, in order; parks at the first full
/// queue and finishes the rest from there.
pub(super) fn deliver_event(locals: &[LocalSubscriber], event: Event) -> Option<Parked> {
    let mut event = Some(Box::new(event));
    for (i, local) in locals.iter().enumerate() {
        let item = if i + 1 == locals.len() {
            event.take()?
        } else {
            event.clone()?
        };
        if let Err(TrySendError::Full(item)) = local.events.try_send(item) {
            let first = local.events.clone();
            let rest: Vec<_> = locals[i + 1..].iter().map(|l| l.events.clone()).collect();
            return Some(Box::pin(async move {
                let _ = first.send(item).await;
                if let Some(event) = event {
                    for tx in rest {
                        let _ = tx.send(event.clone()).await;
                    }
                }
            }));
        }
    }
    None
}
