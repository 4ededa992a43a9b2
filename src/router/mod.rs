//! Routing: realms with their broker and dealer (synchronous state machines), authentication
//! and authorization, the meta API, and the task that owns each realm.

pub mod auth;
pub mod authorize;
pub mod broker;
pub mod dealer;
pub mod mesh;
pub mod meta;
pub mod realm;
mod realm_links;
mod small_map;
pub mod task;
pub mod types;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

pub use task::RealmHandle;
pub use types::{Delivery, MetaEvent, Now, Outbox, SessionInfo, SessionTransport};

/// The node's realms by name. Read at HELLO; written when realms start or stop.
#[derive(Debug, Clone, Default)]
pub struct RealmRegistry {
    realms: Arc<RwLock<HashMap<String, RealmHandle>>>,
}

impl RealmRegistry {
    pub fn get(&self, name: &str) -> Option<RealmHandle> {
        self.realms.read().ok()?.get(name).cloned()
    }
    pub fn insert(&self, handle: RealmHandle) {
        if let Ok(mut realms) = self.realms.write() {
            realms.insert(handle.name.to_string(), handle);
        }
    }
    pub fn remove(&self, name: &str) -> Option<RealmHandle> {
        self.realms.write().ok()?.remove(name)
    }
    pub fn names(&self) -> Vec<String> {
        self.realms
            .read()
            .map(|r| r.keys().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests;
