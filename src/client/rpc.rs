//! Calls (plain, progressive, cancellable) and registrations with their invocations.

use std::sync::Arc;

use super::command::{CallEvent, Command, InterruptSignal, Link, RegistrationParts};
use super::error::ClientError;
use crate::wamp::{Dict, Id, Payload, Value};

/// A RESULT: final, or progressive when `details.progress` is true.
#[derive(Debug, Clone, PartialEq)]
pub struct CallResult {
    pub details: Dict,
    pub payload: Payload,
}

impl CallResult {
    /// Whether the router marked this result as progressive (more follow).
    pub fn is_progress(&self) -> bool {
        self.details.get("progress").and_then(Value::as_bool) == Some(true)
    }
}

/// A call in flight that can be canceled and may yield progressive results.
///
/// Made by [`crate::client::Session::call_with_progress`] (asks for progressive results) and
/// [`crate::client::Session::call_cancellable`] (a plain call you may cancel). Dropping it
/// does not cancel the call; its results are then discarded.
pub struct PendingCall {
    request: Id,
    results: crate::queue::Receiver<CallEvent>,
    link: Arc<Link>,
    finished: bool,
}

impl PendingCall {
    pub(super) fn new(
        request: Id,
        results: crate::queue::Receiver<CallEvent>,
        link: Arc<Link>,
    ) -> Self {
        PendingCall {
            request,
            results,
            link,
            finished: false,
        }
    }

    /// The CALL's request id.
    pub fn request(&self) -> Id {
        self.request
    }

    /// The next result: progressive ones (`is_progress()`), then the final result or error;
    /// `None` after that.
    pub async fn next(&mut self) -> Option<Result<CallResult, ClientError>> {
        if self.finished {
            return None;
        }
        loop {
            let item = match self.results.recv().await {
                Some(CallEvent::Sent(_)) => continue,
                Some(CallEvent::Result(result)) => {
                    self.finished = !result.is_progress();
                    return Some(Ok(result));
                }
                Some(CallEvent::Failed(error)) => Err(error),
                None => Err(ClientError::Closed),
            };
            self.finished = true;
            return Some(item);
        }
    }

    /// Skips progressive results and returns the final one.
    pub async fn result(mut self) -> Result<CallResult, ClientError> {
        loop {
            match self.next().await {
                Some(Ok(result)) if result.is_progress() => {}
                Some(outcome) => return outcome,
                None => return Err(ClientError::Closed),
            }
        }
    }

    /// Sends CANCEL with `mode` (`skip`, `kill` or `killnowait`) if the call is still open.
    /// The outcome arrives through [`PendingCall::next`], usually ERROR `wamp.error.canceled`.
    pub async fn cancel(&self, mode: &str) -> Result<(), ClientError> {
        let request = self.request;
        let mode = mode.to_owned();
        self.link.send(Command::Cancel { request, mode }).await
    }
}

/// A live registration: a stream of invocations to answer.
///
/// Its queue holds [`crate::client::ClientConfig::queue_capacity`] invocations (see the module
/// docs for what happens when it is full). Dropping it unregisters; invocations still queued
/// are answered with an ERROR.
pub struct Registration {
    id: Id,
    invocations: crate::queue::Receiver<Box<Invocation>>,
    link: Arc<Link>,
    done: bool,
}

impl Registration {
    pub(super) fn new(parts: RegistrationParts, link: Arc<Link>) -> Self {
        Registration {
            id: parts.id,
            invocations: parts.invocations,
            link,
            done: false,
        }
    }

    /// The router's registration id.
    pub fn id(&self) -> Id {
        self.id
    }

    /// The next invocation; `None` once revoked by the router or the session has ended.
    pub async fn next(&mut self) -> Option<Invocation> {
        self.invocations.recv().await.map(|i| *i)
    }

    /// Unregisters and waits for the router's UNREGISTERED.
    pub async fn unregister(mut self) -> Result<(), ClientError> {
        self.done = true;
        let registration = self.id;
        self.link
            .request(|reply| Command::Unregister {
                registration,
                reply: Some(reply),
            })
            .await
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if !self.done {
            self.link.send_from_drop(Command::Unregister {
                registration: self.id,
                reply: None,
            });
        }
    }
}

/// One INVOCATION to answer with [`Invocation::result`] or [`Invocation::error`], after any
/// number of [`Invocation::progress`] results.
///
/// Dropped unanswered, it answers itself with ERROR `wamp.error.canceled` if the router
/// interrupted it, else `wamp.error.runtime_error`, so the caller never hangs.
pub struct Invocation {
    pub request: Id,
    pub registration: Id,
    /// INVOCATION details: `procedure` for pattern registrations, `caller` when disclosed,
    /// `receive_progress`, …
    pub details: Dict,
    pub payload: Payload,
    link: Arc<Link>,
    signal: Arc<InterruptSignal>,
    answered: bool,
}

impl Invocation {
    pub(super) fn new(
        request: Id,
        registration: Id,
        details: Dict,
        payload: Payload,
        link: Arc<Link>,
        signal: Arc<InterruptSignal>,
    ) -> Self {
        Invocation {
            request,
            registration,
            details,
            payload,
            link,
            signal,
            answered: false,
        }
    }

    /// Whether the caller asked for progressive results.
    pub fn receive_progress(&self) -> bool {
        self.details
            .get("receive_progress")
            .and_then(Value::as_bool)
            == Some(true)
    }

    /// Sends a progressive result (YIELD with `progress: true`).
    pub async fn progress(&self, payload: Payload) -> Result<(), ClientError> {
        let request = self.request;
        let last = false;
        let command = Command::Yield {
            request,
            payload,
            last,
        };
        self.link.send(command).await
    }

    /// Sends the final result (YIELD).
    pub async fn result(mut self, payload: Payload) -> Result<(), ClientError> {
        let request = self.request;
        let last = true;
        let command = Command::Yield {
            request,
            payload,
            last,
        };
        self.link.send(command).await?;
        self.answered = true;
        Ok(())
    }

    /// Answers with ERROR `error` (a URI).
    pub async fn error(mut self, error: &str, payload: Payload) -> Result<(), ClientError> {
        let request = self.request;
        let error = error.to_owned();
        let command = Command::InvocationError {
            request,
            error,
            payload,
        };
        self.link.send(command).await?;
        self.answered = true;
        Ok(())
    }

    /// Resolves when the router sends INTERRUPT for this invocation (the caller canceled).
    pub async fn interrupted(&self) {
        self.signal.interrupted().await
    }

    /// The INTERRUPT mode (`kill`, `killnowait`) once interrupted.
    pub fn interrupt_mode(&self) -> Option<String> {
        self.signal.mode().map(str::to_owned)
    }
}

impl Drop for Invocation {
    fn drop(&mut self) {
        if !self.answered {
            let request = self.request;
            self.link
                .send_from_drop(Command::InvocationDropped { request });
        }
    }
}

impl std::fmt::Debug for Invocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invocation")
            .field("request", &self.request)
            .field("registration", &self.registration)
            .field("details", &self.details)
            .field("payload", &self.payload)
            .finish()
    }
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("id", &self.id)
            .finish()
    }
}
