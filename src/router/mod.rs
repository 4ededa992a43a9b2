//! Routing: realms with their broker and dealer (synchronous state machines), authentication
//! and authorization, and the task that owns each realm.

pub mod auth;
pub mod dealer;
pub mod types;

pub use types::{Delivery, MetaEvent, Now, Outbox, SessionInfo};
