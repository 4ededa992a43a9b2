//! The one QUIC connection to a peer node, shared by all realm links to it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tokio_util::task::TaskTracker;

use crate::transport::quic::{QuicConnection, QuicConnector};

/// Connection state of one peer. Realm links ask for the connection; the first one after a
/// loss makes the handshake, the others reuse it.
#[derive(Debug)]
pub struct PeerConnection {
    pub peer: String,
    pub address: String,
    /// Serialises connection establishment (an async mutex on purpose: it is held across the
    /// handshake so that concurrent realm links do not each make one).
    connecting: tokio::sync::Mutex<()>,
    current: Mutex<Option<QuicConnection>>,
    handshakes: AtomicU64,
    pub streams_open: AtomicU64,
}

impl PeerConnection {
    pub fn new(peer: &str, address: &str) -> PeerConnection {
        PeerConnection {
            peer: peer.to_owned(),
            address: address.to_owned(),
            connecting: tokio::sync::Mutex::new(()),
            current: Mutex::new(None),
            handshakes: AtomicU64::new(0),
            streams_open: AtomicU64::new(0),
        }
    }

    fn live(&self) -> Option<QuicConnection> {
        let current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        current
            .as_ref()
            .filter(|c| c.connection.close_reason().is_none())
            .cloned()
    }

    /// The live connection, or a new one (one handshake) if there is none.
    /// A task on `tracker` logs why the connection ends (it ends with the connection, which
    /// node shutdown closes).
    pub async fn connection(
        &self,
        connector: &QuicConnector,
        tracker: &TaskTracker,
    ) -> Result<QuicConnection, String> {
        if let Some(c) = self.live() {
            return Ok(c);
        }
        let _guard = self.connecting.lock().await;
        if let Some(c) = self.live() {
            return Ok(c);
        }
        let connection = connector
            .connect(&self.address, &self.peer)
            .await
            .map_err(|e| e.to_string())?;
        self.handshakes.fetch_add(1, Ordering::Relaxed);
        tracing::info!(peer = %self.peer, address = %self.address, id = connection.id(), "link connection established");
        let (peer, watched) = (self.peer.clone(), connection.connection.clone());
        tracker.spawn(async move {
            let reason = watched.closed().await;
            tracing::info!(%peer, id = watched.stable_id(), %reason, "link connection closed");
        });
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(connection.clone());
        Ok(connection)
    }

    /// Handshakes made to this peer so far.
    pub fn handshakes(&self) -> u64 {
        self.handshakes.load(Ordering::Relaxed)
    }

    /// Id of the live connection, if any.
    pub fn connection_id(&self) -> Option<u64> {
        self.live().map(|c| c.id() as u64)
    }

    /// Closes the connection with a reason the peer sees.
    pub fn close(&self, reason: &str) {
        if let Some(c) = self
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            c.connection
                .close(quinn::VarInt::from_u32(0), reason.as_bytes());
        }
    }
}
