//! The task that owns one realm: it drains commands from sessions in batches, runs the realm
//! state machine, and hands each delivery to the receiving session's bounded queue without
//! ever waiting on a session.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

pub use crate::config::SlowConsumerPolicy;
use crate::wamp::{Message, SessionId, SharedMessage};

use super::realm::{JoinError, Realm};
use super::types::{Now, Outbox, SessionInfo};

/// The realm's way to reach one session: its bounded outbound queue, which the realm kills
/// when the session must close (the queue overflowed).
#[derive(Debug, Clone)]
pub struct SessionOutbound {
    /// A [`crate::queue`]: nothing allocated until used, where a tokio channel takes a 32-slot
    /// block up front in each of tens of thousands of idle sessions and links.
    pub queue: crate::queue::Sender<Arc<SharedMessage>>,
    /// Where events dropped because this session's queue was full are counted: a counter of
    /// its own, or one shared by many sessions (a node shares its metrics counter).
    pub dropped: Arc<AtomicU64>,
}

/// Commands from sessions to their realm.
#[derive(Debug)]
pub enum RealmCommand {
    Join {
        info: SessionInfo,
        outbound: SessionOutbound,
        reply: oneshot::Sender<Result<(), JoinError>>,
    },
    Message {
        session: SessionId,
        message: Message,
    },
    Leave {
        session: SessionId,
    },
    /// The node is shutting down: every session leaves the routing state, callees first, so
    /// that each call in flight is answered (ERROR `wamp.error.canceled` to its caller), and the
    /// realm takes no new sessions. The reply comes once those answers are in the callers'
    /// queues; sessions then flush their queues and say GOODBYE. Repeating it does nothing.
    Quiesce {
        reply: oneshot::Sender<()>,
    },
}

/// A cheap, clonable handle to a running realm.
#[derive(Debug, Clone)]
pub struct RealmHandle {
    pub name: Arc<str>,
    commands: mpsc::Sender<RealmCommand>,
}

/// Error for sending to a realm that has stopped.
#[derive(Debug, thiserror::Error)]
#[error("realm has stopped")]
pub struct RealmStopped;

impl RealmHandle {
    /// Queues a command if there is room, without waiting; gives it back if there is none or
    /// the realm has stopped (then [`RealmHandle::send`] waits or says which).
    pub fn try_send(&self, command: RealmCommand) -> Result<(), Box<RealmCommand>> {
        self.commands
            .try_send(command)
            .map_err(|e| Box::new(e.into_inner()))
    }

    /// Queues a command, waiting while the realm's queue is full.
    ///
    /// Tries without waiting first and boxes the waiting: tokio's `send` future is ~0.6 KiB,
    /// and inline it would size the loop of every session (tens of thousands of realm links)
    /// for the rare moment the realm is behind.
    pub async fn send(&self, command: RealmCommand) -> Result<(), RealmStopped> {
        match self.commands.try_send(command) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(command)) => Box::pin(self.commands.send(command))
                .await
                .map_err(|_| RealmStopped),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(RealmStopped),
        }
    }

    pub async fn join(
        &self,
        info: SessionInfo,
        outbound: SessionOutbound,
    ) -> Result<Result<(), JoinError>, RealmStopped> {
        let (reply, answer) = oneshot::channel();
        self.send(RealmCommand::Join {
            info,
            outbound,
            reply,
        })
        .await?;
        answer.await.map_err(|_| RealmStopped)
    }

    /// See [`RealmCommand::Quiesce`]; returns once the realm has answered every call in flight.
    pub async fn quiesce(&self) -> Result<(), RealmStopped> {
        let (reply, answer) = oneshot::channel();
        self.send(RealmCommand::Quiesce { reply }).await?;
        answer.await.map_err(|_| RealmStopped)
    }
}

/// Starts the realm task on `tracker`; it stops when `cancel` fires or every handle is gone.
pub fn spawn_realm(
    realm: Realm,
    policy: SlowConsumerPolicy,
    tracker: &tokio_util::task::TaskTracker,
    cancel: CancellationToken,
) -> RealmHandle {
    let (commands, rx) = mpsc::channel(4096);
    let handle = RealmHandle {
        name: realm.name.as_str().into(),
        commands,
    };
    tracker.spawn(run(realm, rx, policy, cancel));
    handle
}

async fn run(
    mut realm: Realm,
    mut rx: mpsc::Receiver<RealmCommand>,
    policy: SlowConsumerPolicy,
    cancel: CancellationToken,
) {
    let mut sessions: HashMap<SessionId, SessionOutbound> = HashMap::new();
    // Grows with bursts and is given back whenever the queue is empty: a command is ~160 bytes,
    // so even the first four slots would cost every quiet realm (one per realm link, say) 0.6
    // KiB; taking them again costs one allocation per wake-up, next to microseconds of work.
    // The outbox's delivery list likewise (four slots are 64 bytes per quiet realm).
    let mut batch = Vec::new();
    let mut out = Outbox::default();
    let mut quiesced = false;
    tracing::debug!(realm = %realm.name, "realm started");
    loop {
        let deadline = realm.poll_timeout();
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            n = rx.recv_many(&mut batch, 256) => {
                if n == 0 {
                    break;
                }
                let now = Now::read();
                for command in batch.drain(..) {
                    match command {
                        // A dropped reply tells the session the realm has stopped.
                        RealmCommand::Join { .. } if quiesced => {}
                        RealmCommand::Join { info, outbound, reply } => {
                            let id = info.id;
                            let result = realm.join(info, &mut out);
                            if result.is_ok() {
                                sessions.insert(id, outbound);
                            }
                            let _ = reply.send(result);
                        }
                        RealmCommand::Message { session, message } => realm.handle(session, message, &now, &mut out),
                        RealmCommand::Leave { session } => {
                            sessions.remove(&session);
                            realm.leave(session, &mut out);
                        }
                        RealmCommand::Quiesce { reply } => {
                            if !quiesced {
                                quiesced = true;
                                leave_all(&mut realm, &mut out);
                                deliver(&mut out, &sessions, policy);
                            }
                            let _ = reply.send(());
                        }
                    }
                }
            }
            _ = sleep_until(deadline), if deadline.is_some() => realm.handle_timeout(&Now::read(), &mut out),
        }
        deliver(&mut out, &sessions, policy);
        if rx.is_empty() {
            batch = Vec::new();
            out.deliveries = Vec::new();
        }
    }
    tracing::debug!(realm = %realm.name, "realm stopped");
}

/// Every session leaves the realm, the callees of registrations first, so that the calls they
/// serve are answered to callers that are still there.
fn leave_all(realm: &mut Realm, out: &mut Outbox) {
    let mut callees = std::collections::BTreeSet::new();
    for ids in realm.dealer.registration_list().values() {
        let ids = ids.as_list().map(Vec::as_slice).unwrap_or_default();
        for id in ids
            .iter()
            .filter_map(crate::wamp::Value::as_u64)
            .filter_map(crate::wamp::Id::new)
        {
            callees.extend(realm.dealer.registration_callees(id).unwrap_or_default());
        }
    }
    let mut rest: Vec<SessionId> = realm
        .sessions
        .keys()
        .filter(|s| !callees.contains(s))
        .copied()
        .collect();
    rest.sort_unstable();
    for session in callees.into_iter().chain(rest) {
        realm.leave(session, out);
    }
}

async fn sleep_until(deadline: Option<std::time::Instant>) {
    if let Some(deadline) = deadline {
        tokio::time::sleep_until(deadline.into()).await;
    }
}

/// Hands every delivery to its session's queue; never waits.
fn deliver(
    out: &mut Outbox,
    sessions: &HashMap<SessionId, SessionOutbound>,
    policy: SlowConsumerPolicy,
) {
    out.meta.clear();
    for delivery in out.deliveries.drain(..) {
        let Some(session) = sessions.get(&delivery.to) else {
            continue;
        };
        match session.queue.try_send(delivery.message) {
            Ok(()) => {}
            Err(crate::queue::TrySendError::Full(message)) => {
                let is_event = matches!(message.message(), Message::Event { .. });
                if is_event && policy == SlowConsumerPolicy::Drop {
                    session.dropped.fetch_add(1, Ordering::Relaxed);
                } else if session.queue.kill() {
                    tracing::warn!(session = %delivery.to, "outbound queue full: closing slow session");
                }
            }
            Err(crate::queue::TrySendError::Closed(_)) => {}
        }
    }
}
