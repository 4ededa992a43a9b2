//! A router node: realms + listeners (+ links, later). Owns the start and shutdown order.
//!
//! Shutdown: unbind every listener (ports free at once) -> sessions say GOODBYE
//! `wamp.close.system_shutdown` -> drain connections up to the grace period -> abort the rest ->
//! stop the realms.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, ListenConfig};
use crate::router::authorize::Authorizer;
use crate::router::realm::Realm;
use crate::router::task::spawn_realm;
use crate::router::RealmRegistry;
use crate::session::{ListenerSettings, SessionContext};
use crate::transport::{Listener, NodeTls, TransportError};

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("configuration: {0}")]
    Config(String),
}

/// A running node.
#[derive(Debug)]
pub struct Node {
    pub id: String,
    config: Config,
    realms: RealmRegistry,
    tls: NodeTls,
    listeners: Vec<Listener>,
    realm_tasks: TaskTracker,
    realm_cancel: CancellationToken,
    sessions_shutdown: CancellationToken,
}

impl Node {
    /// Starts realms, then listeners.
    pub async fn start(mut config: Config) -> Result<Node, NodeError> {
        for listen in &mut config.listen {
            listen.auth.resolve_secrets().map_err(|e| NodeError::Config(e.to_string()))?;
        }
        let realms = RealmRegistry::default();
        let realm_tasks = TaskTracker::new();
        let realm_cancel = CancellationToken::new();
        let epoch = crate::router::Now::read().unix_ms;
        for realm in &config.realm {
            let handle = spawn_realm(
                Realm::on_node(&realm.name, Authorizer::from_config(realm), &config.node.id, epoch),
                config.limits.slow_consumer,
                &realm_tasks,
                realm_cancel.clone(),
            );
            realms.insert(handle);
        }
        let tls = NodeTls::from_config(config.tls.as_ref(), &config.node.id)?;
        let sessions_shutdown = CancellationToken::new();
        let mut listeners = Vec::new();
        for listen in &config.listen {
            let ctx = SessionContext {
                settings: Arc::new(listener_settings(listen, &config)),
                realms: realms.clone(),
                shutdown: sessions_shutdown.clone(),
            };
            listeners.push(Listener::bind(listen, &tls, ctx).await?);
        }
        Ok(Node { id: config.node.id.clone(), config, realms, tls, listeners, realm_tasks, realm_cancel, sessions_shutdown })
    }

    /// The bound address of the first listener of `transport` ("tcp", "unix", ...).
    pub fn local_addr(&self, transport: &str) -> Option<&str> {
        self.listeners.iter().find(|l| l.transport == transport).map(|l| l.local_addr.as_str())
    }

    pub fn listeners(&self) -> &[Listener] {
        &self.listeners
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The node's certificate and CA (self-signed when `[tls]` is absent).
    pub fn tls(&self) -> &NodeTls {
        &self.tls
    }

    pub fn realms(&self) -> &RealmRegistry {
        &self.realms
    }

    /// Graceful shutdown within `grace`.
    pub async fn shutdown(self, grace: Duration) {
        tracing::info!(node = %self.id, "shutting down");
        for listener in &self.listeners {
            listener.unbind().await;
        }
        self.sessions_shutdown.cancel();
        let deadline = tokio::time::Instant::now() + grace;
        for listener in &self.listeners {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if !listener.drain(left).await {
                tracing::warn!(transport = listener.transport, "grace period over: aborting connections");
                listener.abort().await;
            }
        }
        self.realm_cancel.cancel();
        self.realm_tasks.close();
        self.realm_tasks.wait().await;
        tracing::info!(node = %self.id, "stopped");
    }
}

fn listener_settings(listen: &ListenConfig, config: &Config) -> ListenerSettings {
    ListenerSettings {
        transport: listen.transport.as_str(),
        serializers: listen.serializers.clone(),
        max_message_size: listen.max_message_size,
        auth: listen.auth.clone(),
        handshake_timeout: Duration::from_millis(listen.handshake_timeout_ms),
        hello_timeout: Duration::from_millis(config.limits.hello_timeout_ms),
        outbound_queue: config.limits.outbound_queue.max(1),
        slow_consumer: config.limits.slow_consumer,
    }
}
