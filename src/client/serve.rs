//! `Session::serve`: register a procedure and answer every invocation on its own task.

use std::future::Future;

use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use super::error::ClientError;
use super::rpc::{Invocation, Registration};
use super::session::Session;
use crate::wamp::{Dict, Id};

/// A procedure being served. Dropping it unregisters the procedure (in the background);
/// [`ServeHandle::stop`] does the same and waits. Invocations already running finish and
/// answer either way.
pub struct ServeHandle {
    registration: Id,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl ServeHandle {
    /// The router's registration id.
    pub fn id(&self) -> Id {
        self.registration
    }

    /// Unregisters, then waits for the invocations still running to finish.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ServeHandle {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Session {
    /// Registers `procedure` and calls `handler` for each invocation, concurrently, each on
    /// its own task. The handler answers through the [`Invocation`] (`result`, `error`,
    /// `progress`); one that returns without answering gets an ERROR sent for it.
    ///
    /// Serving ends when the handle is stopped or dropped, when the router revokes the
    /// registration, or when the session ends.
    pub async fn serve<F, Fut>(
        &self,
        procedure: &str,
        options: Dict,
        handler: F,
    ) -> Result<ServeHandle, ClientError>
    where
        F: Fn(Invocation) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let registration = self.register(procedure, options).await?;
        let id = registration.id();
        let stop = CancellationToken::new();
        let task = tokio::spawn(serve_loop(registration, handler, stop.clone()));
        Ok(ServeHandle {
            registration: id,
            stop,
            task: Some(task),
        })
    }
}

async fn serve_loop<F, Fut>(mut registration: Registration, handler: F, stop: CancellationToken)
where
    F: Fn(Invocation) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut running = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            invocation = registration.next() => match invocation {
                Some(invocation) => {
                    running.spawn(handler(invocation));
                }
                None => break,
            },
            Some(_) = running.join_next(), if !running.is_empty() => {}
        }
    }
    let _ = registration.unregister().await;
    while running.join_next().await.is_some() {}
}
