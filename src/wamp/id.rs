//! WAMP ids: integers in [1, 2^53], random for global scope, sequential per session.

use rand::Rng;

/// The largest WAMP id, 2^53.
pub const MAX_ID: u64 = 1 << 53;

/// A WAMP id in [1, 2^53]. A value of this type is always in range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(u64);

impl Id {
    /// Returns `None` outside [1, 2^53].
    pub fn new(n: u64) -> Option<Id> {
        (1..=MAX_ID).contains(&n).then_some(Id(n))
    }
    pub fn get(self) -> u64 {
        self.0
    }
    /// A random id, uniform over [1, 2^53] (session and publication ids).
    pub fn random() -> Id {
        Id(rand::thread_rng().gen_range(1..=MAX_ID))
    }
}

impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A session id: the id WELCOME hands out.
pub type SessionId = Id;

/// Sequential ids: 1, 2, 3, … wrapping to 1 after 2^53 (request ids per direction, and the
/// router's subscription and registration ids).
#[derive(Debug, Default, Clone)]
pub struct IdSequence {
    last: u64,
}

impl IdSequence {
    pub fn next_id(&mut self) -> Id {
        self.last = if self.last >= MAX_ID {
            1
        } else {
            self.last + 1
        };
        Id(self.last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_is_enforced() {
        assert!(Id::new(0).is_none());
        assert!(Id::new(MAX_ID).is_some());
        assert!(Id::new(MAX_ID + 1).is_none());
    }

    #[test]
    fn sequence_wraps_to_one() {
        let mut seq = IdSequence { last: MAX_ID - 1 };
        assert_eq!(seq.next_id().get(), MAX_ID);
        assert_eq!(seq.next_id().get(), 1);
    }
}
