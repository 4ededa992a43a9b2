//! `VecMap`: a map kept in a `Vec` and searched linearly, for a realm's per-link tables.
//!
//! A realm with a router link holds a few tables keyed by link session or by mesh node: a
//! handful of entries, a few hundred in a big mesh. A `HashMap` with one entry allocates
//! hashbrown's minimum of four buckets plus control bytes (~148 bytes for a 32-byte entry) and
//! is itself 48 bytes; with 100k linked realms that adds up. A `Vec` is 24 bytes, and this one
//! allocates room for exactly one entry the first time, so an entry costs its own size.

use std::borrow::Borrow;
use std::fmt;

/// A small map: entries in insertion order, found by comparing keys one by one.
///
/// Only for maps bounded by the number of links or nodes; anything that can grow with the
/// number of sessions, topics or publications needs a hash map.
pub struct VecMap<K, V>(Vec<(K, V)>);

impl<K: Eq, V> VecMap<K, V> {
    pub const fn new() -> VecMap<K, V> {
        VecMap(Vec::new())
    }

    fn position<Q>(&self, key: &Q) -> Option<usize>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.0.iter().position(|(k, _)| k.borrow() == key)
    }

    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.position(key).map(|i| &self.0[i].1)
    }

    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.position(key).map(|i| &mut self.0[i].1)
    }

    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.position(key).is_some()
    }

    /// Sets `key` to `value`; returns the value it replaced, if any.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        if let Some(i) = self.position(&key) {
            return Some(std::mem::replace(&mut self.0[i].1, value));
        }
        // `Vec::push` would reserve four slots for the first entry: the same waste as a
        // hashbrown table. One slot first (the common case), then doubling.
        if self.0.len() == self.0.capacity() {
            self.0.reserve_exact(self.0.len().max(1));
        }
        self.0.push((key, value));
        None
    }

    /// Removes `key`, keeping the others in insertion order (so iteration stays predictable;
    /// the shift costs no more than the search).
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.position(key).map(|i| self.0.remove(i).1)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.0.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.0.iter().map(|(_, v)| v)
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for VecMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| (k, v)))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_replaces_and_returns_the_old_value() {
        let mut map = VecMap::new();
        assert_eq!(map.insert("a".to_owned(), 1), None);
        assert_eq!(map.insert("b".to_owned(), 2), None);
        assert_eq!(map.insert("a".to_owned(), 3), Some(1));
        assert_eq!(map.0.len(), 2);
        assert_eq!(map.get("a"), Some(&3));
        assert!(map.contains_key("b"));
        assert!(!map.contains_key("c"));
    }

    #[test]
    fn get_mut_changes_the_entry_in_place() {
        let mut map = VecMap::new();
        map.insert(7u64, vec![1]);
        map.get_mut(&7).unwrap().push(2);
        assert_eq!(map.get(&7), Some(&vec![1, 2]));
        assert_eq!(map.get_mut(&8), None);
    }

    #[test]
    fn remove_keeps_the_others_in_insertion_order() {
        let mut map = VecMap::new();
        for k in 1..=4u64 {
            map.insert(k, k * 10);
        }
        assert_eq!(map.remove(&2), Some(20));
        assert_eq!(map.remove(&2), None);
        assert_eq!(map.keys().copied().collect::<Vec<_>>(), [1, 3, 4]);
        assert_eq!(map.values().copied().collect::<Vec<_>>(), [10, 30, 40]);
        let pairs: Vec<(u64, u64)> = map.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(pairs, [(1, 10), (3, 30), (4, 40)]);
    }

    #[test]
    fn one_entry_takes_one_slot_and_growth_doubles() {
        let mut map = VecMap::new();
        assert_eq!(map.0.capacity(), 0, "an empty map allocates nothing");
        map.insert(1u64, [0u8; 24]);
        assert_eq!(map.0.capacity(), 1);
        map.insert(2, [0; 24]);
        map.insert(3, [0; 24]);
        assert_eq!(map.0.capacity(), 4);
        // Replacing and removing do not reallocate.
        map.insert(3, [1; 24]);
        map.remove(&1);
        map.insert(1, [0; 24]);
        assert_eq!(map.0.capacity(), 4);
    }

    #[test]
    fn debug_prints_like_a_map() {
        let mut map = VecMap::new();
        map.insert(1u64, "x");
        assert_eq!(format!("{map:?}"), r#"{1: "x"}"#);
    }
}
