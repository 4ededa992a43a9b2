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

/// The realm's way to reach one session: its bounded outbound queue and a kill switch.
#[derive(Debug, Clone)]
pub struct SessionOutbound {
    pub queue: mpsc::Sender<Arc<SharedMessage>>,
    /// Cancelled by the realm when the session must close (its queue overflowed).
    pub kill: CancellationToken,
    /// Events dropped for this session because its queue was full.
    pub dropped: Arc<AtomicU64>,
}

/// Commands from sessions to their realm.
#[derive(Debug)]
pub enum RealmCommand {
    Join { info: SessionInfo, outbound: SessionOutbound, reply: oneshot::Sender<Result<(), JoinError>> },
    Message { session: SessionId, message: Message },
    Leave { session: SessionId },
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
    pub async fn send(&self, command: RealmCommand) -> Result<(), RealmStopped> {
        self.commands.send(command).await.map_err(|_| RealmStopped)
    }

    pub async fn join(&self, info: SessionInfo, outbound: SessionOutbound) -> Result<Result<(), JoinError>, RealmStopped> {
        let (reply, answer) = oneshot::channel();
        self.send(RealmCommand::Join { info, outbound, reply }).await?;
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
    let handle = RealmHandle { name: realm.name.as_str().into(), commands };
    tracker.spawn(run(realm, rx, policy, cancel));
    handle
}

async fn run(mut realm: Realm, mut rx: mpsc::Receiver<RealmCommand>, policy: SlowConsumerPolicy, cancel: CancellationToken) {
    let mut sessions: HashMap<SessionId, SessionOutbound> = HashMap::new();
    let mut batch = Vec::with_capacity(256);
    let mut out = Outbox::default();
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
                    }
                }
            }
            _ = sleep_until(deadline), if deadline.is_some() => realm.handle_timeout(&Now::read(), &mut out),
        }
        deliver(&mut out, &sessions, policy);
    }
    tracing::debug!(realm = %realm.name, "realm stopped");
}

async fn sleep_until(deadline: Option<std::time::Instant>) {
    if let Some(deadline) = deadline {
        tokio::time::sleep_until(deadline.into()).await;
    }
}

/// Hands every delivery to its session's queue; never waits.
fn deliver(out: &mut Outbox, sessions: &HashMap<SessionId, SessionOutbound>, policy: SlowConsumerPolicy) {
    out.meta.clear();
    for delivery in out.deliveries.drain(..) {
        let Some(session) = sessions.get(&delivery.to) else { continue };
        match session.queue.try_send(delivery.message) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(message)) => {
                let is_event = matches!(message.message(), Message::Event { .. });
                if is_event && policy == SlowConsumerPolicy::Drop {
                    session.dropped.fetch_add(1, Ordering::Relaxed);
                } else if !session.kill.is_cancelled() {
                    tracing::warn!(session = %delivery.to, "outbound queue full: closing slow session");
                    session.kill.cancel();
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}
