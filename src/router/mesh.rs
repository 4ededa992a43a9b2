//! Interest routing between linked nodes, without I/O.
//!
//! Every node floods an *interest advertisement* (IA) per realm: the subscriptions and
//! registrations its own clients hold, versioned by (epoch, seq). Each node keeps the newest IA of
//! every origin and the neighbors that delivered it (with hop counts); the neighbor with the
//! fewest hops is the route to that origin. For each neighbor the realm then holds *proxy*
//! subscriptions and registrations (owned by the neighbor's `rlink` session) for the interest
//! routed through it, so the ordinary broker and dealer decide what crosses a link.
//!
//! Losing a neighbor removes it as deliverer; an IA nobody delivers any more is dropped and an
//! `unreachable` notice is flooded. Forwarded publications and calls carry the path of node ids
//! they visited: a node never forwards to a node on the path, and drops a publication it has
//! already seen (origin, publication id), so any topology delivers exactly once and never loops.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use crate::wamp::uri::MatchPolicy;
use crate::wamp::{Dict, Id, SessionId, Value};

use super::small_map::VecMap;

/// The reserved topic of the link channel: realm <-> `rlink` session control and forwarding.
pub const CHANNEL_TOPIC: &str = "wampmesh.link.channel";
/// The reserved procedure through which a realm invokes procedures behind a link.
pub const INVOKE_PROCEDURE: &str = "wampmesh.link.invoke";
/// The option/detail key under which forwarded messages carry mesh data.
pub const MESH_KEY: &str = "_wampmesh";
/// The role of router-link sessions.
pub const LINK_ROLE: &str = "rlink";
/// The id under which a link session's channel subscription is known.
pub const CHANNEL_ID: u64 = crate::wamp::id::MAX_ID;
/// The id under which a link session's invoke registration is known.
pub const INVOKE_ID: u64 = crate::wamp::id::MAX_ID - 1;

/// One unit of interest: a subscription (`invoke` = None) or registration.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Interest {
    pub uri: String,
    pub policy: MatchPolicy,
    /// `None` for subscriptions, the invoke policy for registrations.
    pub invoke: Option<String>,
}

/// An interest advertisement of one origin node.
#[derive(Debug, Clone, PartialEq)]
pub struct Advertisement {
    pub origin: String,
    pub epoch: u64,
    pub seq: u64,
    pub interest: BTreeSet<Interest>,
}

impl Advertisement {
    fn version(&self) -> (u64, u64) {
        (self.epoch, self.seq)
    }

    /// The channel payload `{type: "ia", origin, epoch, seq, hops, interest: [[uri, match, invoke|null]]}`.
    pub fn to_dict(&self, hops: u64) -> Dict {
        let items: Vec<Value> = self
            .interest
            .iter()
            .map(|i| {
                Value::List(vec![
                    i.uri.clone().into(),
                    i.policy.as_str().into(),
                    i.invoke.clone().map_or(Value::Null, Value::from),
                ])
            })
            .collect();
        crate::dict! {
            "type" => "ia", "origin" => self.origin.clone(), "epoch" => self.epoch,
            "seq" => self.seq, "hops" => hops, "interest" => items,
        }
    }

    /// Parses what `to_dict` wrote; `None` for anything malformed.
    pub fn from_dict(d: &Dict) -> Option<(Advertisement, u64)> {
        let origin = d.get("origin")?.as_str()?.to_owned();
        let mut interest = BTreeSet::new();
        for item in d.get("interest")?.as_list()? {
            let item = item.as_list()?;
            let uri = item.first()?.as_str()?.to_owned();
            let policy = MatchPolicy::parse(item.get(1)?.as_str())?;
            let invoke = item.get(2).and_then(Value::as_str).map(str::to_owned);
            interest.insert(Interest {
                uri,
                policy,
                invoke,
            });
        }
        let ad = Advertisement {
            origin,
            epoch: d.get("epoch")?.as_u64()?,
            seq: d.get("seq")?.as_u64()?,
            interest,
        };
        Some((ad, d.get("hops")?.as_u64()?))
    }
}

/// A neighbor: the `rlink` session of a link and the node behind it.
#[derive(Debug, Clone)]
pub struct Neighbor {
    pub peer: String,
    /// The session's subscription to the channel topic, once made.
    pub channel: Option<Id>,
    /// The session's registration of the invoke procedure, once made.
    pub invoke: Option<Id>,
}

#[derive(Debug)]
struct Known {
    ad: Advertisement,
    /// Neighbors that delivered this version, with the hop count they reported: a handful at
    /// most, so a list (a `BTreeMap` node would be ~0.2 KiB for one entry, per origin per realm).
    deliverers: Vec<(SessionId, u64)>,
}

impl Known {
    fn route(&self) -> Option<(SessionId, u64)> {
        self.deliverers
            .iter()
            .min_by_key(|(s, h)| (*h, *s))
            .copied()
    }

    fn delivered(&mut self, from: SessionId, hops: u64) {
        match self.deliverers.iter_mut().find(|(s, _)| *s == from) {
            Some(entry) => entry.1 = hops,
            None => self.deliverers.push((from, hops)),
        }
    }
}

/// A message the mesh wants sent on one neighbor's channel.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelMessage {
    pub to: SessionId,
    pub body: Dict,
}

/// Interest routing state of one realm on one node.
#[derive(Debug)]
pub struct Mesh {
    pub node: String,
    epoch: u64,
    seq: u64,
    own: BTreeSet<Interest>,
    // A linked realm has one neighbor and a few origins: vec-backed maps hold exactly those
    // entries, inline (a box would add a pointer and an allocation to every one of them).
    neighbors: VecMap<SessionId, Neighbor>,
    known: VecMap<String, Known>,
    /// Recently forwarded publications per origin, for duplicate suppression. Empty (nothing
    /// allocated) until a forwarded publication arrives, and then each origin's ids outweigh
    /// its slot; it stays a hash map because it is looked up for every forwarded publication.
    seen: HashMap<String, Recent>,
}

/// The last `SEEN_CAPACITY` publication ids forwarded from one origin.
#[derive(Debug, Default)]
struct Recent {
    ids: HashSet<u64>,
    order: VecDeque<u64>,
}

impl Recent {
    /// Records `id`; false if it is among the remembered ones.
    fn insert(&mut self, id: u64) -> bool {
        if !self.ids.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > SEEN_CAPACITY {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
        true
    }
}

/// Routes longer than this many hops count as none: it bounds how far stale routes to an
/// origin that vanished can count up while they chase each other around a cycle.
const MAX_HOPS: u64 = 64;

/// How many forwarded publications of one origin are remembered for duplicate suppression
/// (about 24 bytes each): a copy that took a longer path is caught while fewer than this many
/// newer publications of its origin came first. An origin's record is dropped with the origin
/// (no route left to it), so a node that restarts does not leave its ids behind.
const SEEN_CAPACITY: usize = 65_536;

impl Mesh {
    /// `epoch` must grow across restarts of the node (the start time in ms does).
    pub fn new(node: &str, epoch: u64) -> Mesh {
        Mesh {
            node: node.to_owned(),
            epoch,
            seq: 0,
            own: BTreeSet::new(),
            neighbors: VecMap::new(),
            known: VecMap::new(),
            seen: HashMap::new(),
        }
    }

    pub fn neighbor(&self, session: SessionId) -> Option<&Neighbor> {
        self.neighbors.get(&session)
    }

    pub fn is_neighbor(&self, session: SessionId) -> bool {
        self.neighbors.contains_key(&session)
    }

    pub fn neighbors(&self) -> impl Iterator<Item = (&SessionId, &Neighbor)> {
        self.neighbors.iter()
    }

    pub fn add_neighbor(&mut self, session: SessionId, peer: &str) {
        self.neighbors.insert(
            session,
            Neighbor {
                peer: peer.to_owned(),
                channel: None,
                invoke: None,
            },
        );
    }

    /// The neighbor subscribed to its channel: it gets our whole table.
    pub fn channel_ready(&mut self, session: SessionId, subscription: Id) -> Vec<ChannelMessage> {
        let Some(n) = self.neighbors.get_mut(&session) else {
            return Vec::new();
        };
        n.channel = Some(subscription);
        let peer = n.peer.clone();
        let mut out = vec![ChannelMessage {
            to: session,
            body: self.own_ad().to_dict(1),
        }];
        for known in self.known.values() {
            if let Some((_, hops)) = known.route() {
                if known.ad.origin != peer {
                    out.push(ChannelMessage {
                        to: session,
                        body: known.ad.to_dict(hops + 1),
                    });
                }
            }
        }
        out
    }

    pub fn invoke_ready(&mut self, session: SessionId, registration: Id) {
        if let Some(n) = self.neighbors.get_mut(&session) {
            n.invoke = Some(registration);
        }
    }

    fn own_ad(&self) -> Advertisement {
        Advertisement {
            origin: self.node.clone(),
            epoch: self.epoch,
            seq: self.seq,
            interest: self.own.clone(),
        }
    }

    /// Our clients' interest changed: a new advertisement for every neighbor, if it differs.
    pub fn set_own_interest(&mut self, interest: BTreeSet<Interest>) -> Vec<ChannelMessage> {
        if interest == self.own {
            return Vec::new();
        }
        self.own = interest;
        self.seq += 1;
        let body = self.own_ad().to_dict(1);
        self.ready_neighbors(None)
            .map(|to| ChannelMessage {
                to,
                body: body.clone(),
            })
            .collect()
    }

    fn ready_neighbors(&self, except: Option<SessionId>) -> impl Iterator<Item = SessionId> + '_ {
        self.neighbors
            .iter()
            .filter(move |(s, n)| n.channel.is_some() && Some(**s) != except)
            .map(|(s, _)| *s)
    }

    /// A channel message from a neighbor (advertisement or unreachable notice).
    pub fn handle_channel(&mut self, from: SessionId, body: &Dict) -> Vec<ChannelMessage> {
        match body.get("type").and_then(Value::as_str) {
            Some("ia") => match Advertisement::from_dict(body) {
                Some((ad, hops)) => self.handle_ad(from, ad, hops),
                None => Vec::new(),
            },
            Some("unreachable") => {
                let origin = body
                    .get("origin")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let version = (
                    body.get("epoch").and_then(Value::as_u64).unwrap_or(0),
                    body.get("seq").and_then(Value::as_u64).unwrap_or(0),
                );
                self.withdraw(&origin, from, Some(version))
            }
            _ => Vec::new(),
        }
    }

    fn handle_ad(&mut self, from: SessionId, ad: Advertisement, hops: u64) -> Vec<ChannelMessage> {
        if ad.origin == self.node || !self.neighbors.contains_key(&from) {
            return Vec::new();
        }
        match self.known.get(&ad.origin) {
            Some(k) if k.ad.version() > ad.version() => return Vec::new(),
            Some(k) if k.ad.version() == ad.version() && hops > MAX_HOPS => {
                return self.withdraw(&ad.origin, from, None);
            }
            Some(k) if k.ad.version() == ad.version() => {
                return self.reroute(&ad.origin, Some(from), |k| {
                    k.delivered(from, hops);
                });
            }
            _ if hops > MAX_HOPS => return Vec::new(),
            _ => {}
        }
        let body = ad.to_dict(hops + 1);
        let origin = ad.origin.clone();
        self.known.insert(
            origin.clone(),
            Known {
                ad,
                deliverers: vec![(from, hops)],
            },
        );
        let peer_of = |s: &SessionId| self.neighbors.get(s).map(|n| n.peer.clone());
        self.ready_neighbors(Some(from))
            .filter(|s| peer_of(s).as_deref() != Some(origin.as_str()))
            .map(|to| ChannelMessage {
                to,
                body: body.clone(),
            })
            .collect()
    }

    /// `from` no longer delivers `origin` (at `version`, or any version when `None`).
    fn withdraw(
        &mut self,
        origin: &str,
        from: SessionId,
        version: Option<(u64, u64)>,
    ) -> Vec<ChannelMessage> {
        let Some(k) = self.known.get(origin) else {
            return Vec::new();
        };
        if version.is_some_and(|v| v != k.ad.version()) {
            return Vec::new();
        }
        self.reroute(origin, Some(from), |k| {
            k.deliverers.retain(|(s, _)| *s != from);
        })
    }

    /// Applies `change` to the deliverers of `origin` and, if that changed our route to it,
    /// tells the neighbors (distance vector with poison reverse): the new next hop hears that
    /// we do not reach `origin` except through it, the others hear our new hop count; with no
    /// route left, `origin` is dropped and every neighbor but `from` hears it is unreachable.
    /// Without this, a neighbor keeps counting on a route we no longer have, and what it
    /// forwards for `origin` is dropped on the way (a ring that loses one link loses traffic).
    fn reroute(
        &mut self,
        origin: &str,
        from: Option<SessionId>,
        change: impl FnOnce(&mut Known),
    ) -> Vec<ChannelMessage> {
        let Some(k) = self.known.get_mut(origin) else {
            return Vec::new();
        };
        let before = k.route();
        change(k);
        let after = k.route();
        if before == after {
            return Vec::new();
        }
        let unreachable = crate::dict! {
            "type" => "unreachable", "origin" => origin, "epoch" => k.ad.epoch, "seq" => k.ad.seq,
        };
        let Some((via, advert)) = after.map(|(via, hops)| (via, k.ad.to_dict(hops + 1))) else {
            self.known.remove(origin);
            self.seen.remove(origin);
            return self
                .ready_neighbors(from)
                .map(|to| ChannelMessage {
                    to,
                    body: unreachable.clone(),
                })
                .collect();
        };
        let peer_of = |s: &SessionId| self.neighbors.get(s).map(|n| n.peer.as_str());
        self.ready_neighbors(None)
            .filter(|s| peer_of(s) != Some(origin))
            .map(|to| ChannelMessage {
                to,
                body: if to == via {
                    unreachable.clone()
                } else {
                    advert.clone()
                },
            })
            .collect()
    }

    /// A neighbor's session ended.
    pub fn remove_neighbor(&mut self, session: SessionId) -> Vec<ChannelMessage> {
        if self.neighbors.remove(&session).is_none() {
            return Vec::new();
        }
        let origins: Vec<String> = self.known.keys().cloned().collect();
        origins
            .iter()
            .flat_map(|o| self.withdraw(o, session, None))
            .collect()
    }

    /// The interest each neighbor should hold proxies for: what is routed through it.
    pub fn routed_interest(&self) -> HashMap<SessionId, BTreeSet<Interest>> {
        let mut out: HashMap<SessionId, BTreeSet<Interest>> = HashMap::new();
        for k in self.known.values() {
            if let Some((via, _)) = k.route() {
                out.entry(via)
                    .or_default()
                    .extend(k.ad.interest.iter().cloned());
            }
        }
        out
    }

    /// The neighbor through which `origin` is reached, if it is known.
    pub fn route_to(&self, origin: &str) -> Option<SessionId> {
        self.known
            .get(origin)
            .and_then(|k| k.route())
            .map(|(via, _)| via)
    }

    /// Origins reached through `link` that advertise interest `uri` with `policy` (the nodes
    /// a call handed to that link is meant for).
    pub fn origins_via(&self, link: SessionId, uri: &str, policy: MatchPolicy) -> Vec<String> {
        let mut origins: Vec<String> = self
            .known
            .values()
            .filter(|k| k.route().is_some_and(|(via, _)| via == link))
            .filter(|k| {
                k.ad.interest
                    .iter()
                    .any(|i| i.uri == uri && i.policy == policy)
            })
            .map(|k| k.ad.origin.clone())
            .collect();
        origins.sort();
        origins
    }

    /// Records a forwarded publication; false if it was seen before (drop it).
    pub fn first_sighting(&mut self, origin: &str, publication: u64) -> bool {
        if let Some(recent) = self.seen.get_mut(origin) {
            return recent.insert(publication);
        }
        let mut recent = Recent::default();
        recent.insert(publication);
        self.seen.insert(origin.to_owned(), recent);
        true
    }

    /// Origins this realm currently knows, with their route (for `wampmesh.link.list` and tests).
    pub fn known_origins(&self) -> Vec<(String, Option<String>)> {
        let mut v: Vec<_> = self
            .known
            .values()
            .map(|k| {
                let via = k
                    .route()
                    .and_then(|(s, _)| self.neighbors.get(&s))
                    .map(|n| n.peer.clone());
                (k.ad.origin.clone(), via)
            })
            .collect();
        v.sort();
        v
    }
}

/// Reads the path (node ids visited) from a forwarded message's mesh data.
pub fn path_of(mesh: Option<&Dict>) -> Vec<String> {
    mesh.and_then(|m| m.get("path"))
        .and_then(Value::as_list)
        .map(|l| {
            l.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn advert(origin: &str) -> Dict {
        Advertisement {
            origin: origin.to_owned(),
            epoch: 1,
            seq: 1,
            interest: BTreeSet::new(),
        }
        .to_dict(1)
    }

    #[test]
    fn a_publication_is_forwarded_once_per_origin() {
        let mut mesh = Mesh::new("n1", 1);
        assert!(mesh.first_sighting("n2", 7));
        assert!(!mesh.first_sighting("n2", 7));
        assert!(mesh.first_sighting("n3", 7), "ids are per origin");
        assert!(!mesh.first_sighting("n3", 7));
    }

    #[test]
    fn each_origin_remembers_its_last_ids_only() {
        let mut mesh = Mesh::new("n1", 1);
        for id in 0..=SEEN_CAPACITY as u64 {
            assert!(mesh.first_sighting("n2", id));
        }
        // A busy n2 does not push out n3's ids.
        assert!(mesh.first_sighting("n3", 0));
        assert!(
            mesh.first_sighting("n2", 0),
            "the oldest id of n2 was forgotten"
        );
        assert!(!mesh.first_sighting("n2", SEEN_CAPACITY as u64));
        assert!(!mesh.first_sighting("n3", 0));
        assert_eq!(mesh.seen["n2"].order.len(), SEEN_CAPACITY);
    }

    #[test]
    fn an_unreachable_origin_takes_its_ids_along() {
        let mut mesh = Mesh::new("n1", 1);
        let link = Id::new(10).unwrap();
        mesh.add_neighbor(link, "n2");
        mesh.handle_channel(link, &advert("n2"));
        assert_eq!(mesh.route_to("n2"), Some(link));
        assert!(mesh.first_sighting("n2", 7));
        mesh.remove_neighbor(link);
        assert_eq!(mesh.route_to("n2"), None);
        assert!(mesh.seen.is_empty(), "no record of a gone origin");
    }
}
