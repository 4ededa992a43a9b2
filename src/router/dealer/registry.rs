//! The dealer's registrations: storage by id and by (URI, match policy), the spec's call
//! matching precedence, and the invoke policies of shared registrations.

use std::collections::{BTreeMap, HashMap};

use rand::Rng;

use crate::wamp::uri::{matches, MatchPolicy};
use crate::wamp::{Dict, Id, IdSequence, SessionId, Value};

/// How a shared registration picks the callee for a call (`REGISTER.Options.invoke`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvokePolicy {
    /// One callee only; a second REGISTER is refused.
    Single,
    RoundRobin,
    Random,
    /// The callee that registered earliest.
    First,
    /// The callee that registered latest.
    Last,
}

impl InvokePolicy {
    /// Parses `Options.invoke`; absent means single.
    pub fn parse(text: Option<&str>) -> Option<InvokePolicy> {
        match text {
            None | Some("single") => Some(InvokePolicy::Single),
            Some("roundrobin") => Some(InvokePolicy::RoundRobin),
            Some("random") => Some(InvokePolicy::Random),
            Some("first") => Some(InvokePolicy::First),
            Some("last") => Some(InvokePolicy::Last),
            Some(_) => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            InvokePolicy::Single => "single",
            InvokePolicy::RoundRobin => "roundrobin",
            InvokePolicy::Random => "random",
            InvokePolicy::First => "first",
            InvokePolicy::Last => "last",
        }
    }
}

/// One callee's membership in a registration, with its own REGISTER options.
#[derive(Debug, Clone, Copy)]
pub(super) struct Callee {
    pub session: SessionId,
    /// `REGISTER.Options.disclose_caller`: always tell this callee who calls.
    pub disclose_caller: bool,
    /// `REGISTER.Options.forward_timeout`: the callee enforces `timeout` itself.
    pub forward_timeout: bool,
}

/// A procedure (or pattern) and the callees serving it, in the order they registered.
#[derive(Debug)]
pub(super) struct Registration {
    pub id: Id,
    pub uri: String,
    pub policy: MatchPolicy,
    pub invoke: InvokePolicy,
    /// ISO 8601 creation time for the meta API.
    pub created: String,
    pub callees: Vec<Callee>,
    next_roundrobin: usize,
}

impl Registration {
    /// `{id, created, uri, match, invoke}` as the registration meta API shows it.
    pub fn details(&self) -> Dict {
        crate::dict! {
            "id" => self.id.get(),
            "created" => self.created.clone(),
            "uri" => self.uri.clone(),
            "match" => self.policy.as_str(),
            "invoke" => self.invoke.as_str(),
        }
    }

    fn has_callee(&self, session: SessionId) -> bool {
        self.callees.iter().any(|c| c.session == session)
    }

    /// The callee the next call goes to, by the invoke policy, skipping `avoid` (router links
    /// back towards where a forwarded call came from).
    fn pick(&mut self, avoid: &[SessionId]) -> Option<Callee> {
        let len = self.callees.len();
        let usable = |c: &Callee| !avoid.contains(&c.session);
        let index = match self.invoke {
            InvokePolicy::Single | InvokePolicy::First => self.callees.iter().position(usable)?,
            InvokePolicy::Last => self.callees.iter().rposition(usable)?,
            InvokePolicy::Random => {
                let candidates: Vec<usize> =
                    (0..len).filter(|i| usable(&self.callees[*i])).collect();
                *candidates.get(rand::thread_rng().gen_range(0..candidates.len().max(1)))?
            }
            InvokePolicy::RoundRobin => {
                let start = self.next_roundrobin % len.max(1);
                let index = (0..len)
                    .map(|k| (start + k) % len)
                    .find(|i| usable(&self.callees[*i]))?;
                self.next_roundrobin = (index + 1) % len;
                index
            }
        };
        Some(self.callees[index])
    }

    /// Removes a callee, keeping the round-robin turn on the callee that was next.
    fn remove_callee(&mut self, session: SessionId) -> bool {
        let Some(index) = self.callees.iter().position(|c| c.session == session) else {
            return false;
        };
        self.callees.remove(index);
        if index < self.next_roundrobin {
            self.next_roundrobin -= 1;
        }
        if self.next_roundrobin >= self.callees.len() {
            self.next_roundrobin = 0;
        }
        true
    }
}

/// What removing a callee from a registration did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Removal {
    NotACallee,
    /// Removed; other callees remain.
    Removed,
    /// Removed the last callee; the registration is gone.
    Deleted,
}

/// All registrations of one realm, indexed for matching.
///
/// Exact and prefix registrations are found with hash lookups: for prefixes, one lookup per
/// distinct registered prefix length (longest first). Wildcard patterns only match URIs with
/// the same number of components, so they are grouped by component count and only that group
/// is scanned.
#[derive(Debug, Default)]
pub(super) struct Registry {
    by_id: HashMap<Id, Registration>,
    exact: HashMap<String, Id>,
    prefix: HashMap<String, Id>,
    /// Byte length of registered prefixes -> how many prefixes have it.
    prefix_lengths: BTreeMap<usize, usize>,
    wildcard: HashMap<String, Id>,
    /// Component count -> wildcard registrations with that many components.
    wildcard_by_components: HashMap<usize, Vec<Id>>,
    ids: IdSequence,
}

fn component_count(uri: &str) -> usize {
    uri.bytes().filter(|&b| b == b'.').count() + 1
}

impl Registry {
    pub fn get(&self, id: Id) -> Option<&Registration> {
        self.by_id.get(&id)
    }

    /// The registration for exactly this (URI, match policy), if any.
    pub fn lookup(&self, uri: &str, policy: MatchPolicy) -> Option<Id> {
        let map = match policy {
            MatchPolicy::Exact => &self.exact,
            MatchPolicy::Prefix => &self.prefix,
            MatchPolicy::Wildcard => &self.wildcard,
        };
        map.get(uri).copied()
    }

    /// Adds `callee` to the registration for (`uri`, `policy`), creating it if there is none.
    /// Returns the id and whether it was created, or `None` when the procedure exists and
    /// cannot take this callee: its policy is `single`, differs from `invoke`, or the session
    /// is already one of its callees.
    pub fn add(
        &mut self,
        uri: &str,
        policy: MatchPolicy,
        invoke: InvokePolicy,
        created: String,
        callee: Callee,
    ) -> Option<(Id, bool)> {
        let Some(id) = self.lookup(uri, policy) else {
            return Some((self.create(uri, policy, invoke, created, callee), true));
        };
        let existing = self.by_id.get_mut(&id)?;
        if existing.invoke == InvokePolicy::Single
            || existing.invoke != invoke
            || existing.has_callee(callee.session)
        {
            return None;
        }
        existing.callees.push(callee);
        Some((id, false))
    }

    fn create(
        &mut self,
        uri: &str,
        policy: MatchPolicy,
        invoke: InvokePolicy,
        created: String,
        callee: Callee,
    ) -> Id {
        let mut id = self.ids.next_id();
        while self.by_id.contains_key(&id) {
            id = self.ids.next_id();
        }
        self.index(uri, policy, id);
        let registration = Registration {
            id,
            uri: uri.to_owned(),
            policy,
            invoke,
            created,
            callees: vec![callee],
            next_roundrobin: 0,
        };
        self.by_id.insert(id, registration);
        id
    }

    fn index(&mut self, uri: &str, policy: MatchPolicy, id: Id) {
        match policy {
            MatchPolicy::Exact => {
                self.exact.insert(uri.to_owned(), id);
            }
            MatchPolicy::Prefix => {
                self.prefix.insert(uri.to_owned(), id);
                *self.prefix_lengths.entry(uri.len()).or_default() += 1;
            }
            MatchPolicy::Wildcard => {
                self.wildcard.insert(uri.to_owned(), id);
                let group = self.wildcard_by_components.entry(component_count(uri));
                group.or_default().push(id);
            }
        }
    }

    /// Removes `session` from registration `id`, deleting the registration when it was last.
    pub fn remove_callee(&mut self, id: Id, session: SessionId) -> Removal {
        let Some(registration) = self.by_id.get_mut(&id) else {
            return Removal::NotACallee;
        };
        if !registration.remove_callee(session) {
            return Removal::NotACallee;
        }
        if !registration.callees.is_empty() {
            return Removal::Removed;
        }
        if let Some(registration) = self.by_id.remove(&id) {
            self.unindex(&registration);
        }
        Removal::Deleted
    }

    fn unindex(&mut self, registration: &Registration) {
        let uri = registration.uri.as_str();
        match registration.policy {
            MatchPolicy::Exact => {
                self.exact.remove(uri);
            }
            MatchPolicy::Prefix => {
                self.prefix.remove(uri);
                if let Some(count) = self.prefix_lengths.get_mut(&uri.len()) {
                    *count -= 1;
                    if *count == 0 {
                        self.prefix_lengths.remove(&uri.len());
                    }
                }
            }
            MatchPolicy::Wildcard => {
                self.wildcard.remove(uri);
                let components = component_count(uri);
                if let Some(group) = self.wildcard_by_components.get_mut(&components) {
                    group.retain(|&id| id != registration.id);
                    if group.is_empty() {
                        self.wildcard_by_components.remove(&components);
                    }
                }
            }
        }
    }

    /// The registration a call to `uri` is routed to: exact, else the longest matching prefix,
    /// else the best wildcard (see [`wildcard_rank`]).
    pub fn best_match(&self, uri: &str) -> Option<Id> {
        if let Some(&id) = self.exact.get(uri) {
            return Some(id);
        }
        let longest_prefix = self
            .prefix_lengths
            .range(..=uri.len())
            .rev()
            .filter(|(&len, _)| uri.is_char_boundary(len))
            .find_map(|(&len, _)| self.prefix.get(&uri[..len]).copied());
        if longest_prefix.is_some() {
            return longest_prefix;
        }
        self.wildcard_by_components
            .get(&component_count(uri))?
            .iter()
            .filter_map(|id| self.by_id.get(id))
            .filter(|r| matches(MatchPolicy::Wildcard, &r.uri, uri))
            .max_by(|a, b| wildcard_rank(&a.uri).cmp(wildcard_rank(&b.uri)))
            .map(|r| r.id)
    }

    /// Picks the callee for the next call on registration `id`.
    pub fn pick_callee(&mut self, id: Id, avoid: &[SessionId]) -> Option<(&Registration, Callee)> {
        let registration = self.by_id.get_mut(&id)?;
        let callee = registration.pick(avoid)?;
        Some((registration, callee))
    }

    /// Every registration, for interest advertisement.
    pub fn all(&self) -> impl Iterator<Item = &Registration> {
        self.by_id.values()
    }

    /// `{"exact": [ids], "prefix": [ids], "wildcard": [ids]}`, each list sorted.
    pub fn list(&self) -> Dict {
        let ids = |map: &HashMap<String, Id>| {
            let mut ids: Vec<u64> = map.values().map(|id| id.get()).collect();
            ids.sort_unstable();
            Value::List(ids.into_iter().map(Value::UInt).collect())
        };
        let mut dict = Dict::new();
        dict.insert("exact".into(), ids(&self.exact));
        dict.insert("prefix".into(), ids(&self.prefix));
        dict.insert("wildcard".into(), ids(&self.wildcard));
        dict
    }
}

/// Precedence among wildcard patterns that match the same URI (so have the same number of
/// components): compare component by component from the left; at the first position where one
/// pattern has a literal and the other a wildcard, the literal wins. This is the spec's
/// "longest portion of URI components matched before each wildcard" rule: `a1.b2.c33..e5`
/// beats `a1.b2..d4.e5`, and `a1.b2..d4.e5..g7` beats `a1.b2..d4..f6.g7`. Two different
/// patterns matching one URI never tie.
fn wildcard_rank(pattern: &str) -> impl Iterator<Item = bool> + '_ {
    pattern.split('.').map(|component| !component.is_empty())
}
