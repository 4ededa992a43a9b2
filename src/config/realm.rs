//! `[[realm]]` and `[[realm.role]]`: realms that exist from the start and what each role may do.

use std::collections::HashSet;

use serde::{Deserialize, Deserializer};

use super::{deserialize_one_of, invalid, ConfigError};
use crate::wamp::uri::{is_valid_pattern, is_valid_uri, MatchPolicy};

/// `[[realm]]`: a realm created at start; its roles are the whole authorization policy
/// (a session whose role is not listed may do nothing).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealmConfig {
    /// The realm's URI, as clients name it in HELLO.
    pub name: String,
    /// `[[realm.role]]` entries, one per role name. Default: none.
    #[serde(rename = "role", default)]
    pub roles: Vec<RoleConfig>,
}

/// `[[realm.role]]`: what sessions authenticated with this role may do in the realm.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleConfig {
    /// The role name authentication assigns (`anonymous`, `user`, ...).
    pub name: String,
    /// Grants; an action is allowed when any permission matching the URI allows it.
    #[serde(default)]
    pub permissions: Vec<Permission>,
}

/// One grant: the actions allowed on URIs matching `uri` under `policy`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Permission {
    /// The URI or pattern; with `match = "prefix"` the empty string matches everything.
    pub uri: String,
    /// TOML key `match`: exact (default), prefix or wildcard, as in WAMP subscribe options.
    #[serde(
        rename = "match",
        default = "default_policy",
        deserialize_with = "deserialize_policy"
    )]
    pub policy: MatchPolicy,
    /// May CALL matching procedures. Default false.
    #[serde(default)]
    pub call: bool,
    /// May REGISTER matching procedures. Default false.
    #[serde(default)]
    pub register: bool,
    /// May PUBLISH to matching topics. Default false.
    #[serde(default)]
    pub publish: bool,
    /// May SUBSCRIBE to matching topics. Default false.
    #[serde(default)]
    pub subscribe: bool,
}

fn default_policy() -> MatchPolicy {
    MatchPolicy::Exact
}

fn deserialize_policy<'de, D: Deserializer<'de>>(deserializer: D) -> Result<MatchPolicy, D::Error> {
    let choices = [
        MatchPolicy::Exact,
        MatchPolicy::Prefix,
        MatchPolicy::Wildcard,
    ]
    .map(|policy| (policy.as_str(), policy));
    deserialize_one_of(deserializer, "variant", &choices)
}

impl Permission {
    /// Every action on every URI (`uri = ""`, `match = "prefix"`).
    pub fn everything() -> Permission {
        Permission {
            uri: String::new(),
            policy: MatchPolicy::Prefix,
            call: true,
            register: true,
            publish: true,
            subscribe: true,
        }
    }
}

impl RealmConfig {
    /// A realm where role `anonymous` may do everything: the embedded default's `realm1`, and
    /// a sensible start for realms made at runtime.
    pub fn open(name: impl Into<String>) -> RealmConfig {
        RealmConfig {
            name: name.into(),
            roles: vec![RoleConfig {
                name: "anonymous".to_string(),
                permissions: vec![Permission::everything()],
            }],
        }
    }

    /// The role called `name` in this realm, if any.
    pub fn role(&self, name: &str) -> Option<&RoleConfig> {
        self.roles.iter().find(|role| role.name == name)
    }

    /// Checks this realm; `key` is its place in the file, e.g. `realm[0]`.
    pub(crate) fn validate(&self, key: &str) -> Result<(), ConfigError> {
        if !is_valid_uri(&self.name) {
            return Err(invalid(
                format!("{key}.name"),
                format!("invalid realm name {:?}: not a WAMP URI", self.name),
            ));
        }
        let mut seen = HashSet::new();
        for (index, role) in self.roles.iter().enumerate() {
            let role_key = format!("{key}.role[{index}]");
            if role.name.is_empty() {
                return Err(invalid(format!("{role_key}.name"), "role name is empty"));
            }
            if !seen.insert(role.name.as_str()) {
                return Err(invalid(
                    format!("{role_key}.name"),
                    format!("role {:?} is defined twice in this realm", role.name),
                ));
            }
            role.validate(&role_key)?;
        }
        Ok(())
    }
}

impl RoleConfig {
    fn validate(&self, key: &str) -> Result<(), ConfigError> {
        for (index, permission) in self.permissions.iter().enumerate() {
            if !is_valid_pattern(&permission.uri, permission.policy) {
                return Err(invalid(
                    format!("{key}.permissions[{index}].uri"),
                    format!(
                        "invalid URI {:?} for match = {:?}",
                        permission.uri,
                        permission.policy.as_str()
                    ),
                ));
            }
        }
        Ok(())
    }
}
