//! The server's copy of a room's MLS tree: who holds which leaf.

use voice_proto::wire::Snowflake;

use super::super::session::SessionKey;

/// The member in a leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Occupant {
    pub(crate) key: SessionKey,
    pub(crate) user: Snowflake,
}

/// Leaves by index; `None` is a blank leaf.
#[derive(Debug, Default)]
pub(crate) struct Roster {
    leaves: Vec<Option<Occupant>>,
}

impl Roster {
    /// Forgets the group (epoch 0).
    pub(crate) fn clear(&mut self) {
        self.leaves.clear();
    }

    /// The occupied leaves, in leaf order.
    pub(crate) fn occupants(&self) -> impl Iterator<Item = (u32, Occupant)> + '_ {
        self.leaves.iter().enumerate().filter_map(|(i, o)| Some((u32::try_from(i).ok()?, (*o)?)))
    }

    /// Occupied leaves.
    pub(crate) fn len(&self) -> usize {
        self.leaves.iter().flatten().count()
    }

    /// The users in leaf order, as a client's `get_user_ids()` lists them.
    pub(crate) fn users(&self) -> Vec<Snowflake> {
        self.occupants().map(|(_, o)| o.user).collect()
    }

    /// Starts a group whose creator holds leaf 0.
    pub(crate) fn found(&mut self, creator: Occupant) {
        self.leaves = vec![Some(creator)];
    }

    /// Applies a commit as MLS does (RFC 9420 §12.3): every Remove blanks
    /// its leaf, then each Add, in commit order, takes the lowest blank leaf
    /// or a new one at the end. Returns the leaf of each Add.
    pub(crate) fn apply(&mut self, removes: &[u32], adds: &[Occupant]) -> Vec<u32> {
        for &leaf in removes {
            if let Some(slot) = usize::try_from(leaf).ok().and_then(|i| self.leaves.get_mut(i)) {
                *slot = None;
            }
        }
        let mut placed = Vec::with_capacity(adds.len());
        for &add in adds {
            let index = match self.leaves.iter().position(Option::is_none) {
                Some(i) => i,
                None => {
                    self.leaves.push(None);
                    self.leaves.len() - 1
                }
            };
            self.leaves[index] = Some(add);
            placed.push(u32::try_from(index).unwrap_or(u32::MAX));
        }
        while self.leaves.last().is_some_and(Option::is_none) {
            self.leaves.pop();
        }
        placed
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn occ(n: u64) -> Occupant {
        Occupant { key: SessionKey(n), user: Snowflake(n) }
    }

    #[test]
    fn removes_blank_then_adds_fill_the_lowest_leaf() {
        let mut r = Roster::default();
        r.found(occ(1));
        assert_eq!(r.apply(&[], &[occ(2), occ(3), occ(4)]), vec![1, 2, 3]);
        assert_eq!(r.apply(&[1, 3], &[occ(5)]), vec![1]);
        assert_eq!(r.users(), vec![Snowflake(1), Snowflake(5), Snowflake(3)]);
        // The trailing blank leaf is trimmed, as openmls trims its tree.
        assert_eq!(r.apply(&[2], &[]), Vec::<u32>::new());
        assert_eq!(r.len(), 2);
        assert_eq!(r.apply(&[], &[occ(6), occ(7)]), vec![2, 3]);
        assert_eq!(r.occupants().map(|(l, o)| (l, o.user.0)).collect::<Vec<_>>(), vec![(0, 1), (1, 5), (2, 6), (3, 7)]);
    }
}
