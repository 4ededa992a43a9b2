//! Per-realm roles with URI permissions: may this role call/register/publish/subscribe here?
//!
//! The most specific permission wins: an exact match, else the longest matching prefix, else
//! the first matching wildcard. No matching permission means denied.

use std::collections::HashMap;

use crate::config::{Permission, RealmConfig};
use crate::wamp::uri::{self, MatchPolicy};

/// The four actions a permission grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Call,
    Register,
    Publish,
    Subscribe,
}

/// A realm's roles, ready for lookups.
#[derive(Debug, Clone, Default)]
pub struct Authorizer {
    roles: HashMap<String, Vec<Permission>>,
}

impl Authorizer {
    pub fn from_config(realm: &RealmConfig) -> Authorizer {
        Authorizer {
            roles: realm
                .roles
                .iter()
                .map(|r| (r.name.clone(), r.permissions.clone()))
                .collect(),
        }
    }

    /// Lets `role` do everything (built-in roles such as router links and admin).
    pub fn grant_all(&mut self, role: &str) {
        let all = Permission {
            uri: String::new(),
            policy: MatchPolicy::Prefix,
            call: true,
            register: true,
            publish: true,
            subscribe: true,
        };
        self.roles.insert(role.to_owned(), vec![all]);
    }

    pub fn has_role(&self, role: &str) -> bool {
        self.roles.contains_key(role)
    }

    /// Is `role` allowed `action` on `target` (a concrete URI or a subscription/registration pattern)?
    pub fn allows(&self, role: &str, action: Action, target: &str) -> bool {
        let Some(permissions) = self.roles.get(role) else {
            return false;
        };
        let best = permissions
            .iter()
            .filter(|p| uri::matches(p.policy, &p.uri, target))
            .max_by_key(|p| match p.policy {
                MatchPolicy::Exact => (2, 0),
                MatchPolicy::Prefix => (1, p.uri.len()),
                MatchPolicy::Wildcard => (0, 0),
            });
        best.is_some_and(|p| match action {
            Action::Call => p.call,
            Action::Register => p.register,
            Action::Publish => p.publish,
            Action::Subscribe => p.subscribe,
        })
    }
}
