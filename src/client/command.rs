//! What handles send to the connection task, and the channel pair they send it over.

use std::sync::{Mutex, OnceLock};

use futures_util::task::AtomicWaker;

use tokio::sync::{oneshot, Notify};

use super::error::ClientError;
use super::pubsub::Event;
use super::rpc::{CallResult, Invocation};
use crate::wamp::{Dict, Id, Payload};

/// The handles' way into the connection task. Every handle holds an `Arc<Link>`; when the
/// last one is dropped, the command queue closes and the task says GOODBYE.
pub(super) struct Link {
    /// Bounded: async operations wait here when the task is behind (backpressure).
    /// Boxed: a queue holds the room of its largest burst until it is empty again, and a box
    /// is 8 bytes where a command is 128.
    pub commands: crate::queue::Sender<Box<Command>>,
    /// For `Drop` impls that cannot wait (unsubscribe, unregister, unanswered invocations).
    pub cleanup: std::sync::Arc<Cleanup>,
}

/// Unbounded, but only a handle's last act uses it, so it cannot grow without bound. A plain
/// list and a waker rather than a channel: a channel takes its first block (2 KiB) at once,
/// in every session, and most sessions never drop a handle before they end.
#[derive(Default)]
pub(super) struct Cleanup {
    commands: Mutex<Vec<Command>>,
    task: AtomicWaker,
}

impl Cleanup {
    fn push(&self, command: Command) {
        self.commands
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(command);
        self.task.wake();
    }

    /// Takes what was queued and registers the task to be woken by the next push.
    pub fn take(&self, cx: &std::task::Context<'_>) -> Vec<Command> {
        self.task.register(cx.waker());
        std::mem::take(&mut *self.commands.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Link {
    /// Queues a command, waiting while the queue is full.
    pub async fn send(&self, command: Command) -> Result<(), ClientError> {
        self.commands
            .send(Box::new(command))
            .await
            .map_err(|_| ClientError::Closed)
    }

    /// Queues a command from a `Drop` impl; dropped unrun if the task is already gone.
    pub fn send_from_drop(&self, command: Command) {
        self.cleanup.push(command);
    }

    /// Queues a command and waits for the task's answer.
    pub async fn request<T>(
        &self,
        make: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<T, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx)).await?;
        rx.await.map_err(|_| ClientError::Closed)?
    }
}

/// Where the task sends the outcome of one request.
pub(super) type Reply<T> = oneshot::Sender<Result<T, ClientError>>;

/// One request from a handle.
pub(super) enum Command {
    Publish {
        topic: String,
        options: Dict,
        payload: Payload,
        /// Present when `options.acknowledge` is true.
        ack: Option<Reply<Id>>,
    },
    Subscribe {
        topic: String,
        options: Dict,
        reply: Reply<SubscriptionParts>,
    },
    Unsubscribe {
        subscription: Id,
        local: u64,
        reply: Option<Reply<()>>,
    },
    Call {
        procedure: String,
        options: Dict,
        payload: Payload,
        reply: CallReply,
    },
    Cancel {
        request: Id,
        mode: String,
    },
    Register {
        procedure: String,
        options: Dict,
        reply: Reply<RegistrationParts>,
    },
    Unregister {
        registration: Id,
        reply: Option<Reply<()>>,
    },
    /// YIELD; `last` is false for a progressive result.
    Yield {
        request: Id,
        payload: Payload,
        last: bool,
    },
    InvocationError {
        request: Id,
        error: String,
        payload: Payload,
    },
    /// An `Invocation` was dropped unanswered.
    InvocationDropped {
        request: Id,
    },
    Leave {
        reason: String,
        reply: Reply<()>,
    },
}

/// What SUBSCRIBED gives the new `Subscription`.
pub(super) struct SubscriptionParts {
    pub id: Id,
    /// Tells this handle apart from others the router gave the same subscription id.
    pub local: u64,
    pub events: crate::queue::Receiver<Box<Event>>,
}

/// What REGISTERED gives the new `Registration`.
pub(super) struct RegistrationParts {
    pub id: Id,
    pub invocations: crate::queue::Receiver<Box<Invocation>>,
}

/// Where the results of one CALL go.
pub(super) enum CallReply {
    /// A plain call: the final RESULT or ERROR.
    Once(Reply<CallResult>),
    /// A `PendingCall`: first `Sent` with the request id, then every result.
    Stream(crate::queue::Sender<CallEvent>),
}

/// One item on a `PendingCall`'s queue.
pub(super) enum CallEvent {
    Sent(Id),
    Result(CallResult),
    Failed(ClientError),
}

/// Set by the task when the router sends INTERRUPT for an invocation.
#[derive(Debug, Default)]
pub(super) struct InterruptSignal {
    mode: OnceLock<String>,
    notify: Notify,
}

impl InterruptSignal {
    pub fn interrupt(&self, mode: String) {
        let _ = self.mode.set(mode);
        self.notify.notify_waiters();
    }

    pub fn mode(&self) -> Option<&str> {
        self.mode.get().map(String::as_str)
    }

    pub async fn interrupted(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.mode.get().is_some() {
                return;
            }
            notified.await;
        }
    }
}
