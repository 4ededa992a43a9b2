//! `[[listen]]`: one listener per entry: transport, address, serializers, auth, QUIC tuning.

use serde::{Deserialize, Deserializer};

use super::{check_socket_address, deserialize_one_of, invalid, ConfigError, TlsConfig};
use crate::router::auth::AuthConfig;
use crate::wamp::Serializer;

/// Smallest `max_message_size`: RawSocket's smallest length exponent (2^9).
pub const MIN_MESSAGE_SIZE: usize = 512;
/// Largest `max_message_size`: RawSocket's largest length exponent (2^24 = 16 MiB).
pub const MAX_MESSAGE_SIZE_LIMIT: usize = 16 * 1024 * 1024;

/// Largest QUIC variable-length integer (2^62 - 1): the ceiling for windows.
const QUIC_VARINT_MAX: u64 = (1 << 62) - 1;
/// Largest stream count QUIC allows (2^60).
const QUIC_MAX_STREAMS: u64 = 1 << 60;

/// How clients reach a listener. Every kind carries RawSocket-framed WAMP except `websocket`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// RawSocket over plain TCP.
    Tcp,
    /// RawSocket over TLS over TCP.
    Tls,
    /// RawSocket over a Unix domain socket; `address` is a filesystem path.
    Unix,
    /// QUIC (ALPN `wamp.2.quic`): each bidirectional stream is one RawSocket connection.
    Quic,
    /// WAMP over WebSocket.
    Websocket,
}

impl TransportKind {
    const NAMES: [(&'static str, TransportKind); 5] = [
        ("tcp", TransportKind::Tcp),
        ("tls", TransportKind::Tls),
        ("unix", TransportKind::Unix),
        ("quic", TransportKind::Quic),
        ("websocket", TransportKind::Websocket),
    ];

    /// The config name: tcp, tls, unix, quic, websocket.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::Tcp => "tcp",
            TransportKind::Tls => "tls",
            TransportKind::Unix => "unix",
            TransportKind::Quic => "quic",
            TransportKind::Websocket => "websocket",
        }
    }

    /// The socket namespace a listener occupies; two listeners clash only within one.
    fn namespace(self) -> &'static str {
        match self {
            TransportKind::Tcp | TransportKind::Tls | TransportKind::Websocket => "tcp",
            TransportKind::Quic => "udp",
            TransportKind::Unix => "unix",
        }
    }
}

impl<'de> Deserialize<'de> for TransportKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_one_of(deserializer, "variant", &TransportKind::NAMES)
    }
}

/// One serializer name in `serializers = [...]`, parsed with `Serializer::from_name`.
struct SerializerName(Serializer);

impl<'de> Deserialize<'de> for SerializerName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let choices = Serializer::ALL.map(|serializer| (serializer.name(), serializer));
        deserialize_one_of(deserializer, "serializer", &choices).map(SerializerName)
    }
}

fn deserialize_serializers<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<Serializer>, D::Error> {
    let names = Vec::<SerializerName>::deserialize(deserializer)?;
    Ok(names.into_iter().map(|name| name.0).collect())
}

/// `[[listen]]`: a listener. The QUIC settings (`max_streams` to `udp_recv_buffer`) are read
/// only when `transport = "quic"` and ignored otherwise.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenConfig {
    /// Which transport this listener accepts.
    pub transport: TransportKind,
    /// A socket address (`127.0.0.1:8080`, `[::1]:8443`); for `unix`, a filesystem path.
    pub address: String,
    /// Serializers offered, by name (`json`, `msgpack`, `cbor`). Default: all three.
    #[serde(
        default = "default_serializers",
        deserialize_with = "deserialize_serializers"
    )]
    pub serializers: Vec<Serializer>,
    /// Largest message accepted, in bytes, 512..=16777216. Default 16 MiB (RawSocket's maximum).
    #[serde(default = "default_max_message_size")]
    pub max_message_size: usize,
    /// Smallest receive maximum a client may announce in its RawSocket handshake, in bytes,
    /// 512..=16777216; a client announcing less is refused with `7F 20 00 00` (maximum message
    /// length unacceptable). Default 512: every client is accepted.
    #[serde(default = "default_min_peer_message_size")]
    pub min_peer_message_size: usize,
    /// `[listen.auth]`: accepted authentication methods. Absent = anonymous, role `anonymous`;
    /// present but empty = every HELLO is refused.
    #[serde(default = "AuthConfig::anonymous_default")]
    pub auth: AuthConfig,
    /// How long a new connection (or QUIC stream) may take to finish the transport handshake
    /// (TLS, RawSocket). Default 10000 ms.
    #[serde(default = "default_handshake_timeout_ms")]
    pub handshake_timeout_ms: u64,
    /// WebSocket: serve WebSocket (wss://) and RawSocket on this port inside TLS, with the
    /// node's certificate from `[tls]` (self-signed when absent). Only valid with
    /// `transport = "websocket"` (RawSocket-only TLS is `transport = "tls"`). Default false.
    #[serde(default)]
    pub tls: bool,
    /// QUIC: concurrent bidirectional streams (sessions) per connection. Default 100000.
    #[serde(default = "default_max_streams")]
    pub max_streams: u64,
    /// QUIC: demand a client certificate signed by `tls.ca`; set on listeners that accept
    /// router links (the certificate proves the peer's node id). Default false.
    #[serde(default)]
    pub require_client_cert: bool,
    /// QUIC: keep-alive interval in ms; 0 = no keep-alives. Default 5000.
    #[serde(default = "default_keep_alive_ms")]
    pub keep_alive_ms: u64,
    /// QUIC: close a connection idle this long, in ms; 0 = never. Default 30000.
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// QUIC: flow-control window per stream, in bytes. Default 256 KiB.
    #[serde(default = "default_stream_receive_window")]
    pub stream_receive_window: u64,
    /// QUIC: flow-control window per connection (all streams), in bytes. Default 16 MiB.
    #[serde(default = "default_connection_window")]
    pub receive_window: u64,
    /// QUIC: bytes in flight per connection before the sender waits. Default 16 MiB.
    #[serde(default = "default_connection_window")]
    pub send_window: u64,
    /// QUIC: UDP socket send buffer (SO_SNDBUF) in bytes; absent = the OS default.
    #[serde(default)]
    pub udp_send_buffer: Option<usize>,
    /// QUIC: UDP socket receive buffer (SO_RCVBUF) in bytes; absent = the OS default.
    #[serde(default)]
    pub udp_recv_buffer: Option<usize>,
}

fn default_serializers() -> Vec<Serializer> {
    Serializer::ALL.to_vec()
}
fn default_max_message_size() -> usize {
    MAX_MESSAGE_SIZE_LIMIT
}
fn default_min_peer_message_size() -> usize {
    MIN_MESSAGE_SIZE
}
fn default_handshake_timeout_ms() -> u64 {
    10_000
}
fn default_max_streams() -> u64 {
    100_000
}
fn default_keep_alive_ms() -> u64 {
    5_000
}
fn default_idle_timeout_ms() -> u64 {
    30_000
}
fn default_stream_receive_window() -> u64 {
    256 * 1024
}
fn default_connection_window() -> u64 {
    16 * 1024 * 1024
}

impl ListenConfig {
    /// A listener with every default: all serializers, anonymous auth, default QUIC tuning.
    pub fn new(transport: TransportKind, address: impl Into<String>) -> ListenConfig {
        ListenConfig {
            transport,
            address: address.into(),
            serializers: default_serializers(),
            max_message_size: default_max_message_size(),
            min_peer_message_size: default_min_peer_message_size(),
            auth: AuthConfig::anonymous_default(),
            handshake_timeout_ms: default_handshake_timeout_ms(),
            tls: false,
            max_streams: default_max_streams(),
            require_client_cert: false,
            keep_alive_ms: default_keep_alive_ms(),
            idle_timeout_ms: default_idle_timeout_ms(),
            stream_receive_window: default_stream_receive_window(),
            receive_window: default_connection_window(),
            send_window: default_connection_window(),
            udp_send_buffer: None,
            udp_recv_buffer: None,
        }
    }

    /// Checks this listener; `key` is its place in the file, e.g. `listen[1]`.
    pub(crate) fn validate(&self, key: &str, tls: Option<&TlsConfig>) -> Result<(), ConfigError> {
        self.validate_address(key)?;
        self.validate_serializers(key)?;
        if !(MIN_MESSAGE_SIZE..=MAX_MESSAGE_SIZE_LIMIT).contains(&self.max_message_size) {
            return Err(invalid(
                format!("{key}.max_message_size"),
                format!(
                    "{} is out of range {MIN_MESSAGE_SIZE}..={MAX_MESSAGE_SIZE_LIMIT}",
                    self.max_message_size
                ),
            ));
        }
        if !(MIN_MESSAGE_SIZE..=MAX_MESSAGE_SIZE_LIMIT).contains(&self.min_peer_message_size) {
            return Err(invalid(
                format!("{key}.min_peer_message_size"),
                format!(
                    "{} is out of range {MIN_MESSAGE_SIZE}..={MAX_MESSAGE_SIZE_LIMIT}",
                    self.min_peer_message_size
                ),
            ));
        }
        if self.handshake_timeout_ms == 0 {
            return Err(invalid(
                format!("{key}.handshake_timeout_ms"),
                "must be greater than 0",
            ));
        }
        if self.tls && self.transport != TransportKind::Websocket {
            return Err(invalid(
                format!("{key}.tls"),
                "is only for transport = \"websocket\" (RawSocket over TLS is transport = \"tls\")",
            ));
        }
        if self.transport == TransportKind::Quic {
            self.validate_quic(key, tls)?;
        }
        if self.transport == TransportKind::Websocket
            && self.tls
            && self.require_client_cert
            && tls.and_then(|tls| tls.ca.as_ref()).is_none()
        {
            return Err(invalid(
                format!("{key}.require_client_cert"),
                "needs [tls] with ca (tls.ca) to verify client certificates",
            ));
        }
        Ok(())
    }

    fn validate_address(&self, key: &str) -> Result<(), ConfigError> {
        let address_key = format!("{key}.address");
        match self.transport {
            TransportKind::Unix if self.address.is_empty() => {
                Err(invalid(address_key, "a unix listener needs a socket path"))
            }
            TransportKind::Unix => Ok(()),
            _ => check_socket_address(&address_key, &self.address),
        }
    }

    fn validate_serializers(&self, key: &str) -> Result<(), ConfigError> {
        if self.serializers.is_empty() {
            return Err(invalid(
                format!("{key}.serializers"),
                "needs at least one of json, msgpack, cbor",
            ));
        }
        for (index, serializer) in self.serializers.iter().enumerate() {
            if self.serializers[..index].contains(serializer) {
                return Err(invalid(
                    format!("{key}.serializers[{index}]"),
                    format!("{:?} is listed twice", serializer.name()),
                ));
            }
        }
        Ok(())
    }

    fn validate_quic(&self, key: &str, tls: Option<&TlsConfig>) -> Result<(), ConfigError> {
        if !(1..=QUIC_MAX_STREAMS).contains(&self.max_streams) {
            return Err(invalid(
                format!("{key}.max_streams"),
                format!(
                    "{} is out of range 1..={QUIC_MAX_STREAMS}",
                    self.max_streams
                ),
            ));
        }
        let windows = [
            ("stream_receive_window", self.stream_receive_window),
            ("receive_window", self.receive_window),
            ("send_window", self.send_window),
        ];
        for (name, value) in windows {
            if !(1..=QUIC_VARINT_MAX).contains(&value) {
                return Err(invalid(
                    format!("{key}.{name}"),
                    format!("{value} is out of range 1..={QUIC_VARINT_MAX}"),
                ));
            }
        }
        if self.keep_alive_ms != 0
            && self.idle_timeout_ms != 0
            && self.keep_alive_ms >= self.idle_timeout_ms
        {
            return Err(invalid(
                format!("{key}.keep_alive_ms"),
                format!(
                    "{} must be less than idle_timeout_ms ({}), or the connection idles out \
                     before a keep-alive is sent",
                    self.keep_alive_ms, self.idle_timeout_ms
                ),
            ));
        }
        if self.require_client_cert && tls.and_then(|tls| tls.ca.as_ref()).is_none() {
            return Err(invalid(
                format!("{key}.require_client_cert"),
                "needs [tls] with ca (tls.ca) to verify client certificates",
            ));
        }
        Ok(())
    }
}

/// Two listeners cannot bind the same address in the same namespace (port 0 excepted).
pub(crate) fn check_unique_addresses(listeners: &[ListenConfig]) -> Result<(), ConfigError> {
    let binds: Vec<Option<(&str, String)>> = listeners.iter().map(fixed_bind).collect();
    for (index, bind) in binds.iter().enumerate() {
        let Some(bind) = bind else { continue };
        if let Some(earlier) = binds[..index].iter().position(|b| b.as_ref() == Some(bind)) {
            return Err(invalid(
                format!("listen[{index}].address"),
                format!(
                    "{:?} is already used by listen[{earlier}]",
                    listeners[index].address
                ),
            ));
        }
    }
    Ok(())
}

/// The (namespace, normalised address) a listener binds, if it is a fixed one.
fn fixed_bind(listener: &ListenConfig) -> Option<(&'static str, String)> {
    let namespace = listener.transport.namespace();
    if listener.transport == TransportKind::Unix {
        return Some((namespace, listener.address.clone()));
    }
    let address = listener.address.parse::<std::net::SocketAddr>().ok()?;
    (address.port() != 0).then(|| (namespace, address.to_string()))
}
