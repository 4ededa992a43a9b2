//! URI rules (loose, as Crossbar's default): exact URIs have no empty components; patterns
//! for `match = "wildcard"` may; `#` and whitespace are never allowed.

/// How a subscription or registration matches URIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MatchPolicy {
    Exact,
    Prefix,
    Wildcard,
}

impl MatchPolicy {
    /// Parses `Options.match`; absent means exact.
    pub fn parse(text: Option<&str>) -> Option<MatchPolicy> {
        match text {
            None | Some("exact") => Some(MatchPolicy::Exact),
            Some("prefix") => Some(MatchPolicy::Prefix),
            Some("wildcard") => Some(MatchPolicy::Wildcard),
            Some(_) => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            MatchPolicy::Exact => "exact",
            MatchPolicy::Prefix => "prefix",
            MatchPolicy::Wildcard => "wildcard",
        }
    }
}

fn component_ok(c: &str) -> bool {
    !c.contains(|ch: char| ch.is_whitespace() || ch == '#')
}

/// A concrete URI (topic, procedure, error, realm): non-empty components.
pub fn is_valid_uri(uri: &str) -> bool {
    !uri.is_empty() && uri.split('.').all(|c| !c.is_empty() && component_ok(c))
}

/// A URI used with a match policy. Prefixes may be empty or end with `.`;
/// wildcards may have empty components.
pub fn is_valid_pattern(uri: &str, policy: MatchPolicy) -> bool {
    match policy {
        MatchPolicy::Exact => is_valid_uri(uri),
        MatchPolicy::Prefix => uri.is_empty() || uri.split('.').all(component_ok),
        MatchPolicy::Wildcard => uri.split('.').all(component_ok),
    }
}

/// Does `uri` match `pattern` under `policy`?
pub fn matches(policy: MatchPolicy, pattern: &str, uri: &str) -> bool {
    match policy {
        MatchPolicy::Exact => pattern == uri,
        MatchPolicy::Prefix => uri.starts_with(pattern),
        MatchPolicy::Wildcard => {
            let mut p = pattern.split('.');
            let mut u = uri.split('.');
            loop {
                match (p.next(), u.next()) {
                    (None, None) => return true,
                    (Some(pc), Some(uc)) if pc.is_empty() || pc == uc => {}
                    _ => return false,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_rules() {
        assert!(is_valid_uri("com.myapp.topic1"));
        assert!(!is_valid_uri("com..topic"));
        assert!(!is_valid_uri("com.my app"));
        assert!(!is_valid_uri("com.#"));
        assert!(!is_valid_uri(""));
        assert!(is_valid_pattern("com..create", MatchPolicy::Wildcard));
        assert!(is_valid_pattern("com.myapp.", MatchPolicy::Prefix));
    }

    #[test]
    fn matching() {
        assert!(matches(MatchPolicy::Prefix, "com.myapp", "com.myapp.x"));
        assert!(matches(
            MatchPolicy::Wildcard,
            "com..create",
            "com.user.create"
        ));
        assert!(!matches(
            MatchPolicy::Wildcard,
            "com..create",
            "com.user.x.create"
        ));
        assert!(!matches(MatchPolicy::Exact, "a.b", "a.b.c"));
    }
}

/// Error and close reason URIs used by the router.
pub mod reason {
    pub const INVALID_URI: &str = "wamp.error.invalid_uri";
    pub const NO_SUCH_PROCEDURE: &str = "wamp.error.no_such_procedure";
    pub const PROCEDURE_ALREADY_EXISTS: &str = "wamp.error.procedure_already_exists";
    pub const NO_SUCH_REGISTRATION: &str = "wamp.error.no_such_registration";
    pub const NO_SUCH_SUBSCRIPTION: &str = "wamp.error.no_such_subscription";
    pub const INVALID_ARGUMENT: &str = "wamp.error.invalid_argument";
    pub const CANCELED: &str = "wamp.error.canceled";
    pub const TIMEOUT: &str = "wamp.error.timeout";
    pub const PAYLOAD_SIZE_EXCEEDED: &str = "wamp.error.payload_size_exceeded";
    pub const PROTOCOL_VIOLATION: &str = "wamp.error.protocol_violation";
    pub const NOT_AUTHORIZED: &str = "wamp.error.not_authorized";
    pub const NO_SUCH_REALM: &str = "wamp.error.no_such_realm";
    pub const NO_SUCH_ROLE: &str = "wamp.error.no_such_role";
    pub const NO_SUCH_SESSION: &str = "wamp.error.no_such_session";
    pub const NO_AUTH_METHOD: &str = "wamp.error.no_auth_method";
    pub const AUTHENTICATION_FAILED: &str = "wamp.error.authentication_failed";
    pub const OPTION_NOT_ALLOWED: &str = "wamp.error.option_not_allowed";
    pub const NETWORK_FAILURE: &str = "wamp.error.network_failure";
    pub const SYSTEM_SHUTDOWN: &str = "wamp.close.system_shutdown";
    pub const GOODBYE_AND_OUT: &str = "wamp.close.goodbye_and_out";
    pub const CLOSE_NORMAL: &str = "wamp.close.normal";
    pub const KILLED: &str = "wamp.close.killed";
}
