//! Real nodes for the bench, in this process on 127.0.0.1: node `a` links to node `b` over QUIC
//! (a stream per realm on one connection), plain TCP or TLS (a connection per realm); clients
//! join over RawSocket TCP or over QUIC streams.
//!
//! Every node has the same listeners, in this order: TCP (clients, and TCP links with a ticket
//! whose principal is `a`, role `rlink`), TLS (links, client certificate required), QUIC for
//! clients (no client certificate), QUIC for links (client certificate required).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use crate::client::{ClientConfig, Session};
use crate::config::{Config, LinkTransport, ReconnectPolicy};
use crate::link::{LinkEvent, LinkManager, LinkSpec};
use crate::node::Node;
use crate::transport::quic::{QuicConnection, QuicConnector, QuicSettings};
use crate::transport::tls::{self, ServerTrust};
use crate::wamp::Serializer;

use super::Error;

/// The realm every node is configured with.
pub const REALM: &str = "bench";
/// The ticket TCP links present (principal `a`, role `rlink` on every node).
const TICKET: &str = "bench-link-ticket";
/// How long a link may take to come up before the bench gives up.
pub const LINK_TIMEOUT: Duration = Duration::from_secs(30);

/// The listeners of a bench node, by position in its config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    Tcp = 0,
    Tls = 1,
    QuicClients = 2,
    QuicLinks = 3,
}

/// A scratch directory with the mesh certificates, removed on drop.
#[derive(Debug)]
pub struct CertDir(PathBuf);

impl CertDir {
    pub fn new(label: &str) -> Result<CertDir, Error> {
        let dir =
            std::env::temp_dir().join(format!("wampmesh-bench-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        crate::certs::write_mesh_certs(&dir, &["a".to_owned(), "b".to_owned()])?;
        Ok(CertDir(dir))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for CertDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The TOML of bench node `id` (see the module docs for its listeners).
pub fn node_toml(dir: &Path, id: &str) -> String {
    use crate::config::templates;
    let listeners = format!(
        r#"[[listen]]
transport = "tcp"
address = "127.0.0.1:0"
[listen.auth.anonymous]
role = "anonymous"
[listen.auth.ticket.principals.a]
ticket = "{TICKET}"
role = "rlink"
[[listen]]
transport = "tls"
address = "127.0.0.1:0"
require_client_cert = true
[[listen]]
transport = "quic"
address = "127.0.0.1:0"
[[listen]]
transport = "quic"
address = "127.0.0.1:0"
require_client_cert = true
[limits]
max_sessions = 1000000
max_connections_per_address = 100000
"#
    );
    let node = templates::node_tls(dir, id);
    format!("{node}{listeners}{}", templates::open_realm(REALM))
}

/// Starts bench node `id`.
pub async fn start_node(dir: &Path, id: &str) -> Result<Node, Error> {
    Ok(Node::start(Config::from_toml_str(&node_toml(dir, id))?).await?)
}

/// The bound address of one of a bench node's listeners.
pub fn address(node: &Node, port: Port) -> String {
    node.listeners()
        .get(port as usize)
        .map(|l| l.local_addr.clone())
        .unwrap_or_default()
}

/// Two nodes, `a` linking to `b`, and a QUIC connector for clients.
pub struct Pair {
    pub a: Node,
    pub b: Node,
    quic: QuicConnector,
    _certs: CertDir,
}

impl Pair {
    pub async fn start(label: &str) -> Result<Pair, Error> {
        let certs = CertDir::new(label)?;
        let b = start_node(certs.path(), "b").await?;
        let a = start_node(certs.path(), "a").await?;
        let quic = client_connector(&a)?;
        Ok(Pair {
            a,
            b,
            quic,
            _certs: certs,
        })
    }

    /// Starts realm `name` on both nodes (with the permissions of the configured realm).
    pub fn create_realm(&self, name: &str) {
        for node in [&self.a, &self.b] {
            let template = node.config().realm.first();
            node.realm_host()
                .start(name, crate::node::authorizer_like(template));
        }
    }

    /// Where `a` reaches `b` for a link of `transport` (without a relay).
    pub fn link_address(&self, transport: LinkTransport) -> String {
        let port = match transport {
            LinkTransport::Quic => Port::QuicLinks,
            LinkTransport::Tcp => Port::Tcp,
            LinkTransport::Tls => Port::Tls,
        };
        address(&self.b, port)
    }

    pub fn links(&self) -> Result<&LinkManager, Error> {
        self.a
            .links()
            .ok_or_else(|| "node a has no link manager".into())
    }

    /// Links `realm` from `a` to `b` at `address` and waits until it is up; returns the time
    /// from `LinkManager::start` to the link's `Up` event.
    pub async fn link(
        &self,
        realm: &str,
        transport: LinkTransport,
        address: &str,
    ) -> Result<Duration, Error> {
        let links = self.links()?;
        let mut events = links.events();
        let started = Instant::now();
        links.start(link_spec(realm, transport, address))?;
        wait_up(&mut events, links, realm).await?;
        Ok(started.elapsed())
    }

    /// A client session on `node` over RawSocket TCP (MessagePack).
    pub async fn tcp_client(&self, node: &Node, realm: &str) -> Result<Session, Error> {
        Ok(Session::connect_tcp(&address(node, Port::Tcp), client_config(realm)).await?)
    }

    /// A QUIC connection to `node`'s client listener (streams on it are sessions).
    pub async fn quic_connection(&self, node: &Node) -> Result<QuicConnection, Error> {
        Ok(self
            .quic
            .connect(&address(node, Port::QuicClients), &node.id)
            .await?)
    }

    /// A client session on `node` over a QUIC stream on a new connection (MessagePack).
    pub async fn quic_client(&self, node: &Node, realm: &str) -> Result<Session, Error> {
        let connection = self.quic_connection(node).await?;
        quic_session(&connection, realm).await
    }

    pub async fn shutdown(self) {
        let grace = Duration::from_secs(2);
        self.a.shutdown(grace).await;
        self.b.shutdown(grace).await;
    }
}

/// The spec of a bench link from `a` to `b` (manual reconnect: a failure shows, not a retry).
pub fn link_spec(realm: &str, transport: LinkTransport, address: &str) -> LinkSpec {
    LinkSpec {
        forward: Default::default(),
        peer: "b".into(),
        address: address.to_owned(),
        transport,
        realm: realm.to_owned(),
        reconnect: ReconnectPolicy::Manual,
        ticket: Some(crate::router::auth::Secret::new(TICKET)),
        cryptosign: None,
    }
}

/// Waits for the `Up` event of `realm`'s link; a `Down` event for it is an error.
pub async fn wait_up(
    events: &mut broadcast::Receiver<LinkEvent>,
    links: &LinkManager,
    realm: &str,
) -> Result<(), Error> {
    let deadline = tokio::time::Instant::now() + LINK_TIMEOUT;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Err(_) => return Err(format!("link for {realm} not up within {LINK_TIMEOUT:?}").into()),
            Ok(Ok(LinkEvent::Up { realm: r, .. })) if r == realm => return Ok(()),
            Ok(Ok(LinkEvent::Down {
                realm: r, reason, ..
            })) if r == realm => return Err(format!("link for {realm} went down: {reason}").into()),
            Ok(Ok(_)) => {}
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                if links.link("b", realm)?.state() == crate::link::LinkState::Up {
                    return Ok(());
                }
            }
            Ok(Err(broadcast::error::RecvError::Closed)) => return Err("link events closed".into()),
        }
    }
}

/// Bench clients speak MessagePack, like router links.
pub fn client_config(realm: &str) -> ClientConfig {
    ClientConfig::new(realm).with_serializer(Serializer::MsgPack)
}

/// A session on a new stream of `connection`.
pub async fn quic_session(connection: &QuicConnection, realm: &str) -> Result<Session, Error> {
    let stream = connection.open_stream().await?;
    Ok(Session::join(stream, client_config(realm)).await?)
}

/// A QUIC client endpoint trusting the bench CA (no client certificate).
pub fn client_connector(node: &Node) -> Result<QuicConnector, Error> {
    let ca = node.tls().ca.clone().ok_or("bench nodes have a CA")?;
    let config = tls::client_config(&ServerTrust::Ca(ca), None, &[tls::ALPN_QUIC])?;
    Ok(QuicConnector::new(config, &QuicSettings::default())?)
}

/// A QUIC client endpoint that presents `node`'s certificate (to reach link listeners).
pub fn node_connector(node: &Node) -> Result<QuicConnector, Error> {
    let tls_material = node.tls();
    let ca = tls_material.ca.clone().ok_or("bench nodes have a CA")?;
    let config = tls::client_config(
        &ServerTrust::Ca(ca),
        Some(&tls_material.identity),
        &[tls::ALPN_QUIC],
    )?;
    Ok(QuicConnector::new(config, &QuicSettings::default())?)
}
