//! Who speaks on which SSRC, as op 5 named them: a bounded map. When the
//! server names more SSRCs than `max_users`, the entry named longest ago
//! goes, so that a flood of names (a broken or hostile server) keeps memory
//! bounded without locking out the members named after it.

use std::collections::{HashMap, VecDeque};

use crate::wire::Snowflake;

/// The SSRC-to-user map.
pub(crate) struct SsrcUsers {
    /// Each SSRC's user, with the stamp of its latest naming.
    map: HashMap<u32, (Snowflake, u64)>,
    /// Namings in order; stale ones (renamed or removed since) are skipped.
    order: VecDeque<(u32, u64)>,
    next: u64,
    max: usize,
}

impl SsrcUsers {
    pub(crate) fn new(max: usize) -> Self {
        SsrcUsers { map: HashMap::new(), order: VecDeque::new(), next: 0, max }
    }

    pub(crate) fn get(&self, ssrc: u32) -> Option<Snowflake> {
        self.map.get(&ssrc).map(|&(user, _)| user)
    }

    pub(crate) fn contains_key(&self, ssrc: &u32) -> bool {
        self.map.contains_key(ssrc)
    }

    /// Names `ssrc` as `user`; returns whether an older entry was evicted
    /// to make room (or, with no room at all, the naming was dropped).
    pub(crate) fn insert(&mut self, ssrc: u32, user: Snowflake) -> bool {
        if self.max == 0 {
            return true;
        }
        let mut evicted = false;
        if !self.map.contains_key(&ssrc) && self.map.len() >= self.max {
            self.evict_oldest();
            evicted = true;
        }
        let stamp = self.next;
        self.next += 1;
        self.map.insert(ssrc, (user, stamp));
        self.order.push_back((ssrc, stamp));
        if self.order.len() > 2 * self.max {
            let map = &self.map;
            self.order.retain(|(s, st)| map.get(s).is_some_and(|e| e.1 == *st));
        }
        evicted
    }

    fn evict_oldest(&mut self) {
        while let Some((ssrc, stamp)) = self.order.pop_front() {
            if self.map.get(&ssrc).is_some_and(|e| e.1 == stamp) {
                self.map.remove(&ssrc);
                return;
            }
        }
    }

    /// Forgets every SSRC of `user` (they left).
    pub(crate) fn remove_user(&mut self, user: Snowflake) {
        self.map.retain(|_, (u, _)| *u != user);
    }

    pub(crate) fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_map_evicts_the_oldest_naming_and_keeps_the_newest() {
        let mut m = SsrcUsers::new(3);
        for ssrc in 1..=3 {
            assert!(!m.insert(ssrc, Snowflake(u64::from(ssrc))));
        }
        // Renaming 1 makes 2 the oldest.
        assert!(!m.insert(1, Snowflake(10)));
        assert!(m.insert(4, Snowflake(4)));
        assert_eq!(
            (m.get(1), m.get(2), m.get(3), m.get(4)),
            (Some(Snowflake(10)), None, Some(Snowflake(3)), Some(Snowflake(4)))
        );
        // A flood keeps it at three entries and the order list bounded.
        for ssrc in 100..10_000 {
            m.insert(ssrc, Snowflake(7));
        }
        assert_eq!(m.map.len(), 3);
        assert!(m.order.len() <= 6);
        assert_eq!(m.get(9_999), Some(Snowflake(7)));
        m.remove_user(Snowflake(7));
        assert_eq!(m.map.len(), 0);
        assert!(SsrcUsers::new(0).insert(1, Snowflake(1)));
    }
}
