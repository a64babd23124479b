//! Frames held until their key arrives (DAVE.md §3: "hold, don't drop").
//!
//! At a transition a sender may switch to the new epoch's key before this
//! client has processed the commit or welcome that installs it (peers on
//! davey 0.1.x switch when they process the commit; a joiner hears the
//! group before its welcome). Such frames fail to decrypt *now* but will
//! decrypt a few milliseconds later. They are kept per sender, bounded in
//! count (per sender and in all) and in age, retried whenever keys change,
//! and counted when they are finally dropped.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// One frame waiting for its key: the RTP fields it came with and its
/// DAVE payload.
#[derive(Debug)]
pub(crate) struct HeldFrame {
    pub(crate) ssrc: u32,
    pub(crate) sequence: u16,
    pub(crate) timestamp: u32,
    pub(crate) at: Instant,
    pub(crate) data: Vec<u8>,
}

/// What `push` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Held; nothing else dropped.
    Held,
    /// Held, and the sender's oldest frame was dropped to make room.
    HeldDroppingOldest,
    /// Not held: the buffer is full and the sender has nothing to give up.
    Refused,
}

/// The hold buffer: frames by sender (user id), oldest first.
#[derive(Debug)]
pub(crate) struct Hold {
    by_user: BTreeMap<u64, VecDeque<HeldFrame>>,
    total: usize,
    per_sender: usize,
    max_total: usize,
    max_age: Duration,
}

impl Hold {
    pub(crate) fn new(per_sender: usize, max_total: usize, max_age: Duration) -> Self {
        Hold { by_user: BTreeMap::new(), total: 0, per_sender, max_total, max_age }
    }

    /// Frames held now.
    pub(crate) fn len(&self) -> usize {
        self.total
    }

    /// Keeps `frame` from `user`.
    pub(crate) fn push(&mut self, user: u64, frame: HeldFrame) -> Pushed {
        if self.per_sender == 0 || self.max_total == 0 {
            return Pushed::Refused;
        }
        let full = self.total >= self.max_total;
        let queue = self.by_user.entry(user).or_default();
        let mut result = Pushed::Held;
        if queue.len() >= self.per_sender || full {
            if queue.pop_front().is_none() {
                if queue.is_empty() {
                    self.by_user.remove(&user);
                }
                return Pushed::Refused;
            }
            self.total -= 1;
            result = Pushed::HeldDroppingOldest;
        }
        queue.push_back(frame);
        self.total += 1;
        result
    }

    /// Drops frames older than the age limit at `now`; returns how many.
    pub(crate) fn expire(&mut self, now: Instant) -> usize {
        let max_age = self.max_age;
        let mut dropped = 0;
        self.by_user.retain(|_, queue| {
            while queue.front().is_some_and(|f| now.saturating_duration_since(f.at) >= max_age) {
                queue.pop_front();
                dropped += 1;
            }
            !queue.is_empty()
        });
        self.total -= dropped;
        dropped
    }

    /// When the oldest held frame expires.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.by_user.values().filter_map(|q| q.front()).map(|f| f.at + self.max_age).min()
    }

    /// Offers every held frame, sender by sender and oldest first, to
    /// `deliver`; a frame for which it returns true is removed.
    pub(crate) fn retry(&mut self, mut deliver: impl FnMut(u64, &mut HeldFrame) -> bool) {
        let mut removed = 0;
        self.by_user.retain(|&user, queue| {
            queue.retain_mut(|f| {
                let done = deliver(user, f);
                removed += usize::from(done);
                !done
            });
            !queue.is_empty()
        });
        self.total -= removed;
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // any start instant will do; the buffer never reads the clock
mod tests {
    use super::*;

    fn frame(at: Instant, seq: u16) -> HeldFrame {
        HeldFrame { ssrc: 5, sequence: seq, timestamp: u32::from(seq) * 960, at, data: vec![seq as u8] }
    }

    #[test]
    fn bounded_per_sender_and_in_all() {
        let t = Instant::now();
        let mut hold = Hold::new(2, 3, Duration::from_secs(2));
        assert_eq!(hold.push(1, frame(t, 1)), Pushed::Held);
        assert_eq!(hold.push(1, frame(t, 2)), Pushed::Held);
        assert_eq!(hold.push(1, frame(t, 3)), Pushed::HeldDroppingOldest);
        assert_eq!(hold.push(2, frame(t, 4)), Pushed::Held);
        assert_eq!(hold.len(), 3);
        // Full in all: user 3 holds nothing it could give up.
        assert_eq!(hold.push(3, frame(t, 5)), Pushed::Refused);
        assert_eq!(hold.len(), 3);
        let mut seen = Vec::new();
        hold.retry(|user, f| {
            seen.push((user, f.sequence));
            false
        });
        assert_eq!(seen, [(1, 2), (1, 3), (2, 4)]);
    }

    #[test]
    fn expiry_and_retry_remove_what_they_say() {
        let t = Instant::now();
        let mut hold = Hold::new(8, 8, Duration::from_secs(2));
        hold.push(1, frame(t, 1));
        hold.push(1, frame(t + Duration::from_secs(1), 2));
        hold.push(2, frame(t + Duration::from_secs(1), 3));
        assert_eq!(hold.deadline(), Some(t + Duration::from_secs(2)));
        assert_eq!(hold.expire(t + Duration::from_millis(1999)), 0);
        assert_eq!(hold.expire(t + Duration::from_secs(2)), 1);
        assert_eq!(hold.deadline(), Some(t + Duration::from_secs(3)));
        hold.retry(|user, _| user == 2);
        assert_eq!(hold.len(), 1);
        assert_eq!(hold.expire(t + Duration::from_secs(10)), 1);
        assert_eq!((hold.len(), hold.deadline()), (0, None));
    }
}
