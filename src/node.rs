//! A router node: realms + listeners + router links + management. Owns start and shutdown order.
//!
//! Start: realms -> in-process listener -> links manager and management service -> listeners
//! -> configured links. Shutdown: unbind every listener (ports free at once) -> close links with
//! a reason the peers see -> sessions say GOODBYE `wamp.close.system_shutdown` -> drain
//! connections up to the grace period -> abort the rest -> stop the realms.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, ListenConfig, RealmConfig, SlowConsumerPolicy};
use crate::link::{LinkManager, LinkSpec};
use crate::router::authorize::Authorizer;
use crate::router::realm::Realm;
use crate::router::task::spawn_realm;
use crate::router::RealmRegistry;
use crate::session::{ListenerSettings, SessionContext};
use crate::transport::quic::QuicSettings;
use crate::transport::{Listener, NodeTls, TransportError};

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("configuration: {0}")]
    Config(String),
    #[error("links: {0}")]
    Link(#[from] crate::link::LinkError),
}

/// Starts and stops the realms of a node (at start and through `wampmesh.realm.*`).
#[derive(Debug, Clone)]
pub struct RealmHost {
    pub node: String,
    pub realms: RealmRegistry,
    epoch: u64,
    policy: SlowConsumerPolicy,
    tasks: TaskTracker,
    cancel: CancellationToken,
    stoppers: Arc<std::sync::Mutex<std::collections::HashMap<String, CancellationToken>>>,
}

impl RealmHost {
    /// Starts a realm; false if one with that name runs already.
    pub fn start(&self, name: &str, authorizer: Authorizer) -> bool {
        if self.realms.get(name).is_some() {
            return false;
        }
        let cancel = self.cancel.child_token();
        let realm = Realm::on_node(name, authorizer, &self.node, self.epoch);
        self.realms
            .insert(spawn_realm(realm, self.policy, &self.tasks, cancel.clone()));
        self.stoppers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_owned(), cancel);
        true
    }

    /// Stops a realm; its sessions are closed.
    pub fn stop(&self, name: &str) -> bool {
        self.realms.remove(name);
        match self
            .stoppers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name)
        {
            Some(cancel) => {
                cancel.cancel();
                true
            }
            None => false,
        }
    }
}

/// A running node.
#[derive(Debug)]
pub struct Node {
    pub id: String,
    config: Config,
    host: RealmHost,
    tls: NodeTls,
    listeners: Vec<Listener>,
    links: Option<LinkManager>,
    sessions_shutdown: CancellationToken,
    management: crate::management::Management,
    metrics: Arc<crate::metrics::Metrics>,
    metrics_server: Option<crate::metrics::MetricsServer>,
}

impl Node {
    pub async fn start(mut config: Config) -> Result<Node, NodeError> {
        for listen in &mut config.listen {
            listen
                .auth
                .resolve_secrets()
                .map_err(|e| NodeError::Config(e.to_string()))?;
        }
        let host = RealmHost {
            node: config.node.id.clone(),
            realms: RealmRegistry::default(),
            epoch: crate::router::Now::read().unix_ms,
            policy: config.limits.slow_consumer,
            tasks: TaskTracker::new(),
            cancel: CancellationToken::new(),
            stoppers: Arc::default(),
        };
        for realm in &config.realm {
            host.start(&realm.name, Authorizer::from_config(realm));
        }
        let mut management_roles = Authorizer::default();
        management_roles.grant_all("admin");
        if config.management.allow_local {
            management_roles.grant_all("anonymous");
        }
        host.start(&config.management.realm, management_roles);

        let tls = NodeTls::from_config(config.tls.as_ref(), &config.node.id)?;
        let sessions_shutdown = CancellationToken::new();
        let admission = Arc::new(crate::transport::admission::Admission::from_config(
            &config.limits,
        ));
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let local = SessionContext {
            settings: Arc::new(ListenerSettings::trusted(
                config.limits.outbound_queue.max(1),
            )),
            realms: host.realms.clone(),
            shutdown: sessions_shutdown.clone(),
            admission: admission.clone(),
            metrics: metrics.clone(),
        };
        let quic = config
            .listen
            .iter()
            .find(|l| l.transport == crate::config::TransportKind::Quic);
        let settings = quic.map(QuicSettings::from_listen).unwrap_or_default();
        let links = LinkManager::new(&config.node.id, &tls, local.clone(), &settings)?;
        let template = config.realm.first().cloned();
        let management = crate::management::Management::start(
            &config,
            local,
            host.clone(),
            links.clone(),
            template,
        )
        .await?;
        let mut listeners = Vec::new();
        for listen in &config.listen {
            let ctx = SessionContext {
                settings: Arc::new(listener_settings(listen, &config)),
                realms: host.realms.clone(),
                shutdown: sessions_shutdown.clone(),
                admission: admission.clone(),
                metrics: metrics.clone(),
            };
            listeners.push(Listener::bind(listen, &tls, ctx).await?);
        }
        let scrape = crate::metrics::Scrape {
            metrics: metrics.clone(),
            realms: host.realms.clone(),
            links: Some(links.clone()),
            admission,
        };
        let metrics_server =
            crate::metrics::MetricsServer::start(config.metrics.as_ref(), scrape).await?;
        for (index, link) in config.link.iter().enumerate() {
            let cryptosign = match link.cryptosign_key() {
                Some(source) => Some(source.load().map_err(|e| {
                    NodeError::Config(format!(
                        "link[{index}] ({}): cryptosign key: {e}",
                        link.peer
                    ))
                })?),
                None => None,
            };
            for realm in &link.realms {
                links.start(LinkSpec {
                    peer: link.peer.clone(),
                    address: link.address.clone(),
                    transport: link.transport,
                    realm: realm.clone(),
                    reconnect: link.reconnect,
                    ticket: link.ticket.clone(),
                    cryptosign: cryptosign.clone(),
                    forward: crate::link::Forwarding {
                        events: link.forward_events,
                        calls: link.forward_calls,
                    },
                })?;
            }
        }
        Ok(Node {
            id: config.node.id.clone(),
            config,
            host,
            tls,
            listeners,
            links: Some(links),
            sessions_shutdown,
            management,
            metrics,
            metrics_server,
        })
    }

    /// The bound address of the first listener of `transport` ("tcp", "unix", "quic", ...).
    pub fn local_addr(&self, transport: &str) -> Option<&str> {
        self.listeners
            .iter()
            .find(|l| l.transport == transport)
            .map(|l| l.local_addr.as_str())
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
        &self.host.realms
    }

    pub fn realm_host(&self) -> &RealmHost {
        &self.host
    }

    /// The node's counters (served at `[metrics] address` when configured).
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.metrics
    }

    /// The bound address of the metrics endpoint, if `[metrics]` is configured.
    pub fn metrics_addr(&self) -> Option<&str> {
        self.metrics_server.as_ref().map(|m| m.local_addr())
    }

    /// The node's router links.
    pub fn links(&self) -> Option<&LinkManager> {
        self.links.as_ref()
    }

    /// Graceful shutdown within `grace`.
    pub async fn shutdown(mut self, grace: Duration) {
        tracing::info!(node = %self.id, "shutting down");
        for listener in &self.listeners {
            listener.unbind().await;
        }
        if let Some(server) = &self.metrics_server {
            server.stop().await;
        }
        if let Some(links) = self.links.take() {
            let _ = tokio::time::timeout(grace, links.shutdown()).await;
        }
        self.management.stop().await;
        self.sessions_shutdown.cancel();
        let deadline = tokio::time::Instant::now() + grace;
        for listener in &self.listeners {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if !listener.drain(left).await {
                tracing::warn!(
                    transport = listener.transport,
                    "grace period over: aborting connections"
                );
                listener.abort().await;
            }
        }
        self.host.cancel.cancel();
        self.host.tasks.close();
        self.host.tasks.wait().await;
        tracing::info!(node = %self.id, "stopped");
    }
}

/// The permissions of a realm made at runtime: those of `template` (the first configured realm).
pub fn authorizer_like(template: Option<&RealmConfig>) -> Authorizer {
    template.map(Authorizer::from_config).unwrap_or_default()
}

fn listener_settings(listen: &ListenConfig, config: &Config) -> ListenerSettings {
    ListenerSettings {
        transport: listen.transport.as_str(),
        serializers: listen.serializers.clone(),
        max_message_size: listen.max_message_size,
        min_peer_message_size: listen.min_peer_message_size,
        auth: listen.auth.clone(),
        handshake_timeout: Duration::from_millis(listen.handshake_timeout_ms),
        hello_timeout: Duration::from_millis(config.limits.hello_timeout_ms),
        outbound_queue: config.limits.outbound_queue.max(1),
        slow_consumer: config.limits.slow_consumer,
        trusted: false,
        management: Some((
            config.management.realm.clone(),
            config.management.allow_local,
        )),
    }
}
