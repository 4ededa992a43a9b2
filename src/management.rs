//! The management API (DESIGN §5): procedures on the node's control realm, served by an
//! in-process session with role `admin`, and the link lifecycle events it publishes.
//!
//! - `wampmesh.link.start` (peer, address, realm, options{transport, reconnect, ticket,
//!   cryptosign_key_file | cryptosign_seed_env}); the cryptosign seed is read on the node
//! - `wampmesh.link.stop` (peer, realm)
//! - `wampmesh.link.list` -> [ {peer, address, realm, transport, state, connection, streams,
//!   handshakes, messages_in, messages_out, up_secs, last_error} ]
//! - `wampmesh.realm.start` (name) / `wampmesh.realm.stop` (name)
//! - events `wampmesh.link.on_up` {peer, realm} and `wampmesh.link.on_down` {peer, realm, reason}
//!
//! Arguments may be positional or keyword arguments of the same names.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::client::{ClientConfig, Invocation, ServeHandle, Session};
use crate::config::{Config, CryptosignKeySource, LinkTransport, RealmConfig, ReconnectPolicy};
use crate::cryptosign::CryptosignKey;
use crate::link::{LinkEvent, LinkManager, LinkSpec};
use crate::node::{authorizer_like, NodeError, RealmHost};
use crate::session::SessionContext;
use crate::wamp::uri::reason;
use crate::wamp::{Dict, Payload, Serializer, Value};

/// The running management service.
pub struct Management {
    session: Session,
    _handles: Vec<ServeHandle>,
    stop: CancellationToken,
}

impl std::fmt::Debug for Management {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Management")
            .field("procedures", &self._handles.len())
            .finish()
    }
}

struct Services {
    host: RealmHost,
    links: LinkManager,
    template: Option<RealmConfig>,
}

impl Management {
    pub async fn start(
        config: &Config,
        local: SessionContext,
        host: RealmHost,
        links: LinkManager,
        template: Option<RealmConfig>,
    ) -> Result<Management, NodeError> {
        let fail =
            |e: crate::client::ClientError| NodeError::Config(format!("management session: {e}"));
        let (client, server) = tokio::io::duplex(256 * 1024);
        let (reader, writer) = tokio::io::split(server);
        let transport = crate::dict! { "type" => "local", "protocol" => "in-process" };
        tokio::spawn(crate::session::serve(reader, writer, transport, local));
        let cfg = ClientConfig::new(&config.management.realm)
            .with_serializer(Serializer::MsgPack)
            .with_authrole("admin");
        let session = Session::join(client, cfg).await.map_err(fail)?;
        let services = Arc::new(Services {
            host,
            links: links.clone(),
            template,
        });
        let mut handles = Vec::new();
        for procedure in [
            "wampmesh.link.start",
            "wampmesh.link.stop",
            "wampmesh.link.list",
            "wampmesh.realm.start",
            "wampmesh.realm.stop",
        ] {
            let services = Arc::clone(&services);
            let handle = session
                .serve(procedure, Dict::new(), move |invocation| {
                    let services = Arc::clone(&services);
                    async move { services.answer(procedure, invocation).await }
                })
                .await
                .map_err(fail)?;
            handles.push(handle);
        }
        let stop = CancellationToken::new();
        tokio::spawn(publish_events(
            session.clone(),
            links.events(),
            stop.clone(),
        ));
        Ok(Management {
            session,
            _handles: handles,
            stop,
        })
    }

    pub async fn stop(&self) {
        self.stop.cancel();
        let _ = self.session.leave(reason::SYSTEM_SHUTDOWN).await;
    }
}

async fn publish_events(
    session: Session,
    mut events: tokio::sync::broadcast::Receiver<LinkEvent>,
    stop: CancellationToken,
) {
    loop {
        let event = tokio::select! {
            _ = stop.cancelled() => return,
            event = events.recv() => event,
        };
        let (topic, details) = match event {
            Ok(LinkEvent::Up { peer, realm }) => (
                "wampmesh.link.on_up",
                crate::dict! { "peer" => peer, "realm" => realm },
            ),
            Ok(LinkEvent::Down {
                peer,
                realm,
                reason,
            }) => (
                "wampmesh.link.on_down",
                crate::dict! { "peer" => peer, "realm" => realm, "reason" => reason },
            ),
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(_) => return,
        };
        if session
            .publish(topic, Payload::args(vec![details.into()]), Dict::new())
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Reads argument `name` at `position` (positional) or as keyword.
fn arg<'a>(invocation: &'a Invocation, position: usize, name: &str) -> Option<&'a Value> {
    let p = &invocation.payload;
    p.kwargs
        .as_ref()
        .and_then(|k| k.get(name))
        .or_else(|| p.args.as_ref().and_then(|a| a.get(position)))
}

fn text(invocation: &Invocation, position: usize, name: &str) -> Option<String> {
    arg(invocation, position, name)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

impl Services {
    async fn answer(&self, procedure: &str, invocation: Invocation) {
        let outcome = match procedure {
            "wampmesh.link.start" => self.link_start(&invocation),
            "wampmesh.link.stop" => {
                match (text(&invocation, 0, "peer"), text(&invocation, 1, "realm")) {
                    (Some(peer), Some(realm)) => self
                        .links
                        .stop(&peer, &realm)
                        .await
                        .map(|_| Value::Bool(true))
                        .map_err(|e| e.to_string()),
                    _ => Err("expected (peer, realm)".into()),
                }
            }
            "wampmesh.link.list" => Ok(Value::List(
                self.links.list().into_iter().map(Value::Dict).collect(),
            )),
            "wampmesh.realm.start" => match text(&invocation, 0, "name") {
                Some(name) if crate::wamp::uri::is_valid_uri(&name) => Ok(Value::Bool(
                    self.host
                        .start(&name, authorizer_like(self.template.as_ref())),
                )),
                _ => Err("expected (name) with a valid realm URI".into()),
            },
            "wampmesh.realm.stop" => match text(&invocation, 0, "name") {
                Some(name) => Ok(Value::Bool(self.host.stop(&name))),
                None => Err("expected (name)".into()),
            },
            _ => Err("unknown procedure".into()),
        };
        let _ = match outcome {
            Ok(value) => invocation.result(Payload::args(vec![value])).await,
            Err(message) => {
                invocation
                    .error(
                        reason::INVALID_ARGUMENT,
                        Payload::args(vec![message.into()]),
                    )
                    .await
            }
        };
    }

    fn link_start(&self, invocation: &Invocation) -> Result<Value, String> {
        let (Some(peer), Some(address), Some(realm)) = (
            text(invocation, 0, "peer"),
            text(invocation, 1, "address"),
            text(invocation, 2, "realm"),
        ) else {
            return Err("expected (peer, address, realm, options)".into());
        };
        let options = arg(invocation, 3, "options")
            .and_then(Value::as_dict)
            .cloned()
            .unwrap_or_default();
        let transport = match options.get("transport").and_then(Value::as_str) {
            None | Some("quic") => LinkTransport::Quic,
            Some("tcp") => LinkTransport::Tcp,
            Some("tls") => LinkTransport::Tls,
            Some(other) => return Err(format!("unknown transport {other:?}")),
        };
        let reconnect = match options.get("reconnect") {
            None => ReconnectPolicy::default(),
            Some(Value::Str(s)) if s == "manual" => ReconnectPolicy::Manual,
            Some(Value::Dict(d)) => ReconnectPolicy::Backoff {
                initial_ms: d
                    .get("initial_ms")
                    .and_then(Value::as_u64)
                    .unwrap_or(100)
                    .max(1),
                max_ms: d
                    .get("max_ms")
                    .and_then(Value::as_u64)
                    .unwrap_or(5000)
                    .max(1),
            },
            Some(_) => return Err("reconnect must be \"manual\" or {initial_ms, max_ms}".into()),
        };
        let ticket = options
            .get("ticket")
            .and_then(Value::as_str)
            .map(crate::router::auth::Secret::new);
        let cryptosign = link_cryptosign_key(&options)?;
        self.links
            .start(LinkSpec {
                forward: Default::default(),
                peer,
                address,
                transport,
                realm,
                reconnect,
                ticket,
                cryptosign,
            })
            .map(|_| Value::Bool(true))
            .map_err(|e| e.to_string())
    }
}

/// `cryptosign_key_file` / `cryptosign_seed_env` of `wampmesh.link.start` options: the seed is
/// read on this node, never passed in the call. Errors name the source, not the seed.
fn link_cryptosign_key(options: &Dict) -> Result<Option<CryptosignKey>, String> {
    let field = |key: &str| options.get(key).and_then(Value::as_str);
    let source = match (field("cryptosign_key_file"), field("cryptosign_seed_env")) {
        (Some(_), Some(_)) => {
            return Err("set one of cryptosign_key_file and cryptosign_seed_env".into())
        }
        (Some(path), None) => CryptosignKeySource::File(path.into()),
        (None, Some(var)) => CryptosignKeySource::Env(var.to_owned()),
        (None, None) => return Ok(None),
    };
    if options.contains_key("ticket") {
        return Err("a link authenticates with a ticket or a cryptosign key, not both".into());
    }
    source
        .load()
        .map(Some)
        .map_err(|e| format!("cryptosign key: {e}"))
}
