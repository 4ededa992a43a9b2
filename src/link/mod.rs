//! Router links: one QUIC connection per peer node, one stream per linked realm (or, for
//! comparison and UDP-less networks, one TCP/TLS connection per realm).
//!
//! A [`RealmLink`] is restartable (the NRI stub rule): when it loses its session it reports the
//! loss (`on_down` event, `on_close` callback) and stops; `stop` resets its state and `start`
//! works again on the same object. Reconnecting is the policy the user chose: backoff with
//! jitter, or manual.

mod calls;
mod local;
mod peer;
mod realm_link;
mod remote;
pub mod shuttle;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{LinkTransport, ReconnectPolicy};
use crate::session::SessionContext;
use crate::transport::quic::{QuicConnector, QuicSettings};
use crate::transport::{tls, NodeTls};
use crate::wamp::{Dict, Value};

pub use peer::PeerConnection;
pub use realm_link::{LinkState, RealmLink};

/// What one realm link connects: `realm` on node `peer` at `address`.
#[derive(Debug, Clone)]
pub struct LinkSpec {
    pub peer: String,
    pub address: String,
    pub transport: LinkTransport,
    pub realm: String,
    pub reconnect: ReconnectPolicy,
    /// Ticket for plain tcp links (see `LinkConfig::ticket`).
    pub ticket: Option<crate::router::auth::Secret>,
    /// Ed25519 key the link signs a cryptosign challenge with, as authid = this node's id (see
    /// `LinkConfig::cryptosign_key_file`). `Debug` shows its public key only.
    pub cryptosign: Option<crate::cryptosign::CryptosignKey>,
    /// What may cross the link (`forward_events`, `forward_calls`).
    pub forward: Forwarding,
}

/// `forward_events` / `forward_calls` of a link; both default to true.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forwarding {
    pub events: bool,
    pub calls: bool,
}

impl Default for Forwarding {
    fn default() -> Self {
        Forwarding {
            events: true,
            calls: true,
        }
    }
}

/// Link lifecycle events (published as `wampmesh.link.on_up` / `on_down`).
#[derive(Debug, Clone, PartialEq)]
pub enum LinkEvent {
    Up {
        peer: String,
        realm: String,
    },
    Down {
        peer: String,
        realm: String,
        reason: String,
    },
}

/// Why a management request failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("realm {0:?} does not exist on this node")]
    NoSuchRealm(String),
    #[error("no link to peer {peer:?} for realm {realm:?}")]
    NoSuchLink { peer: String, realm: String },
    #[error("tls: {0}")]
    Tls(String),
}

type OnClose = Arc<dyn Fn(&LinkEvent) + Send + Sync>;

/// Everything a realm link needs from its node.
pub(crate) struct LinkContext {
    pub node: String,
    /// The node's in-process session context: its realms (which links join directly), the
    /// queue bound for sessions and the metrics.
    pub local: SessionContext,
    pub tracker: TaskTracker,
    pub quic: Option<QuicConnector>,
    pub tls_client: Option<Arc<rustls::ClientConfig>>,
    pub events: broadcast::Sender<LinkEvent>,
    pub on_close: Mutex<Vec<OnClose>>,
    peers: Mutex<HashMap<String, Arc<PeerConnection>>>,
}

impl LinkContext {
    /// The shared connection state of `peer` (one QUIC connection for all its realms).
    pub fn peer(&self, peer: &str, address: &str) -> Arc<PeerConnection> {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        // Keyed by address too: a peer reached at another address is another connection.
        let key = format!("{peer}@{address}");
        Arc::clone(
            peers
                .entry(key)
                .or_insert_with(|| Arc::new(PeerConnection::new(peer, address))),
        )
    }

    pub fn report(&self, event: LinkEvent) {
        let _ = self.events.send(event.clone());
        if matches!(event, LinkEvent::Down { .. }) {
            let callbacks = self
                .on_close
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            for callback in callbacks {
                callback(&event);
            }
        }
    }
}

/// Realm links by (peer, realm).
type LinkTable = HashMap<(String, String), Arc<RealmLink>>;

/// All router links of a node.
#[derive(Clone)]
pub struct LinkManager {
    context: Arc<LinkContext>,
    links: Arc<Mutex<LinkTable>>,
    stop_all: CancellationToken,
}

impl std::fmt::Debug for LinkManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkManager")
            .field("node", &self.context.node)
            .finish()
    }
}

impl LinkManager {
    /// Links authenticate with the node's certificate and trust peers signed by its CA.
    pub fn new(
        node: &str,
        tls: &NodeTls,
        local: SessionContext,
        settings: &QuicSettings,
    ) -> Result<LinkManager, LinkError> {
        let client = match &tls.ca {
            Some(ca) => {
                let trust = tls::ServerTrust::Ca(ca.clone());
                Some(
                    tls::client_config(&trust, Some(&tls.identity), &[tls::ALPN_QUIC])
                        .map_err(|e| LinkError::Tls(e.to_string()))?,
                )
            }
            None => None,
        };
        let quic = match &client {
            Some(c) => Some(
                QuicConnector::new(c.clone(), settings)
                    .map_err(|e| LinkError::Tls(e.to_string()))?,
            ),
            None => None,
        };
        let tls_client = match &tls.ca {
            Some(ca) => {
                let trust = tls::ServerTrust::Ca(ca.clone());
                Some(Arc::new(
                    tls::client_config(&trust, Some(&tls.identity), &[])
                        .map_err(|e| LinkError::Tls(e.to_string()))?,
                ))
            }
            None => None,
        };
        let (events, _) = broadcast::channel(1024);
        let context = LinkContext {
            node: node.to_owned(),
            local,
            tracker: TaskTracker::new(),
            quic,
            tls_client,
            events,
            on_close: Mutex::new(Vec::new()),
            peers: Mutex::new(HashMap::new()),
        };
        Ok(LinkManager {
            context: Arc::new(context),
            links: Arc::default(),
            stop_all: CancellationToken::new(),
        })
    }

    /// Events of every link: up, down with the reason.
    pub fn events(&self) -> broadcast::Receiver<LinkEvent> {
        self.context.events.subscribe()
    }

    /// Calls `callback` whenever a link goes down (the Rust API's `on_close`).
    pub fn on_close(&self, callback: impl Fn(&LinkEvent) + Send + Sync + 'static) {
        self.context
            .on_close
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::new(callback));
    }

    /// Starts (or restarts) the link for `spec.realm` to `spec.peer`.
    pub fn start(&self, spec: LinkSpec) -> Result<(), LinkError> {
        if self.context.local.realms.get(&spec.realm).is_none() {
            return Err(LinkError::NoSuchRealm(spec.realm));
        }
        let key = (spec.peer.clone(), spec.realm.clone());
        let link = {
            let mut links = self.links.lock().unwrap_or_else(|p| p.into_inner());
            match links.get(&key) {
                Some(link)
                    if link.spec().address == spec.address
                        && link.spec().transport == spec.transport =>
                {
                    Arc::clone(link)
                }
                _ => {
                    let link = Arc::new(RealmLink::new(spec, Arc::clone(&self.context)));
                    if let Some(old) = links.insert(key, Arc::clone(&link)) {
                        old.stop_now();
                    }
                    link
                }
            }
        };
        link.start(&self.stop_all);
        Ok(())
    }

    /// Stops a link; it can be started again.
    pub async fn stop(&self, peer: &str, realm: &str) -> Result<(), LinkError> {
        let link = self.link(peer, realm)?;
        link.stop().await;
        Ok(())
    }

    pub fn link(&self, peer: &str, realm: &str) -> Result<Arc<RealmLink>, LinkError> {
        let links = self.links.lock().unwrap_or_else(|p| p.into_inner());
        links
            .get(&(peer.to_owned(), realm.to_owned()))
            .cloned()
            .ok_or_else(|| LinkError::NoSuchLink {
                peer: peer.to_owned(),
                realm: realm.to_owned(),
            })
    }

    /// Every link as `wampmesh.link.list` shows it.
    pub fn list(&self) -> Vec<Dict> {
        let links: Vec<Arc<RealmLink>> = self
            .links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        let mut rows: Vec<Dict> = links.iter().map(|l| l.status()).collect();
        rows.sort_by(|a, b| {
            let key = |d: &Dict| {
                (
                    d.get("peer").cloned().unwrap_or_default(),
                    d.get("realm").cloned().unwrap_or_default(),
                )
            };
            format!("{:?}", key(a)).cmp(&format!("{:?}", key(b)))
        });
        rows
    }

    /// Stops every link with a reason the peers see, and waits for their tasks.
    pub async fn shutdown(&self) {
        self.stop_all.cancel();
        let links: Vec<Arc<RealmLink>> = self
            .links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for link in links {
            link.stop().await;
        }
        let peers: Vec<Arc<PeerConnection>> = self
            .context
            .peers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for peer in peers {
            peer.close("node shutting down");
        }
        self.context.tracker.close();
        self.context.tracker.wait().await;
    }
}

/// Reads a management argument dict's string field.
pub fn text(d: &Dict, key: &str) -> Option<String> {
    d.get(key).and_then(Value::as_str).map(str::to_owned)
}
