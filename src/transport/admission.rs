//! Admission limits shared by every listener of a node: connections open at once on the node
//! (`limits.max_sessions`) and from one IP address (`limits.max_connections_per_address`).
//!
//! A connection takes a [`Slot`] when its session task starts (before the RawSocket handshake,
//! so connections that never finish their handshake count too) and gives it back when the task
//! ends. A connection that finds the node or its address full gets no slot; the session answers
//! its handshake request with `7F 40 00 00` (maximum connection count reached) and closes. The
//! check is made once, in arrival order, so a flood never pushes out connections already open.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::config::LimitsConfig;

/// Which limit a connection ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionRefused {
    #[error("the node has {0} connections open (limits.max_sessions)")]
    NodeFull(usize),
    #[error("{0} connections are open from this address (limits.max_connections_per_address)")]
    AddressFull(usize),
}

/// The node-wide connection counters. One per node, shared through `SessionContext`.
#[derive(Debug)]
pub struct Admission {
    max_open: usize,
    max_per_address: usize,
    open: AtomicUsize,
    per_address: Mutex<HashMap<IpAddr, usize>>,
}

impl Default for Admission {
    /// No limits (for sessions a test or tool builds by hand).
    fn default() -> Self {
        Admission::new(usize::MAX, usize::MAX)
    }
}

impl Admission {
    pub fn new(max_open: usize, max_per_address: usize) -> Admission {
        Admission {
            max_open,
            max_per_address,
            open: AtomicUsize::new(0),
            per_address: Mutex::new(HashMap::new()),
        }
    }

    /// The limits of `[limits]`.
    pub fn from_config(limits: &LimitsConfig) -> Admission {
        Admission::new(limits.max_sessions, limits.max_connections_per_address)
    }

    /// Takes a slot for a connection from `address` (`None`: not limited per address, e.g.
    /// a Unix socket or a peer node proven by its certificate).
    pub fn admit(self: &Arc<Self>, address: Option<IpAddr>) -> Result<Slot, AdmissionRefused> {
        let before = self.open.fetch_add(1, Ordering::AcqRel);
        if before >= self.max_open {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return Err(AdmissionRefused::NodeFull(before));
        }
        if let Some(ip) = address {
            let mut per_address = self.per_address.lock().unwrap_or_else(|p| p.into_inner());
            let count = per_address.entry(ip).or_insert(0);
            if *count >= self.max_per_address {
                let open = *count;
                drop(per_address);
                self.open.fetch_sub(1, Ordering::AcqRel);
                return Err(AdmissionRefused::AddressFull(open));
            }
            *count += 1;
        }
        Ok(Slot {
            admission: Arc::clone(self),
            address,
        })
    }

    /// Connections holding a slot now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Connections holding a slot now from `ip`.
    pub fn open_from(&self, ip: IpAddr) -> usize {
        let per_address = self.per_address.lock().unwrap_or_else(|p| p.into_inner());
        per_address.get(&ip).copied().unwrap_or(0)
    }

    fn release(&self, address: Option<IpAddr>) {
        if let Some(ip) = address {
            let mut per_address = self.per_address.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(count) = per_address.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    per_address.remove(&ip);
                }
            }
        }
        self.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One admitted connection; dropping it frees the place.
#[derive(Debug)]
pub struct Slot {
    admission: Arc<Admission>,
    address: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.admission.release(self.address);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, last]))
    }

    #[test]
    fn node_limit_refuses_in_arrival_order_and_frees_on_drop() {
        let admission = Arc::new(Admission::new(2, 10));
        let first = admission.admit(ip(1)).expect("first");
        let _second = admission.admit(None).expect("second");
        assert_eq!(
            admission.admit(ip(2)).unwrap_err(),
            AdmissionRefused::NodeFull(2)
        );
        assert_eq!(admission.open(), 2);
        drop(first);
        assert_eq!(admission.open_from(ip(1).unwrap()), 0);
        assert!(admission.admit(ip(2)).is_ok());
    }

    #[test]
    fn address_limit_is_per_ip() {
        let admission = Arc::new(Admission::new(100, 2));
        let slots: Vec<Slot> = (0..2)
            .map(|_| admission.admit(ip(1)).expect("admitted"))
            .collect();
        assert_eq!(
            admission.admit(ip(1)).unwrap_err(),
            AdmissionRefused::AddressFull(2)
        );
        assert!(
            admission.admit(ip(2)).is_ok(),
            "another address is not affected"
        );
        assert!(
            admission.admit(None).is_ok(),
            "unix sockets have no address"
        );
        assert_eq!(
            admission.open(),
            2,
            "refused and dropped slots are given back"
        );
        drop(slots);
        assert_eq!(admission.open(), 0);
        assert!(admission.admit(ip(1)).is_ok());
    }
}
