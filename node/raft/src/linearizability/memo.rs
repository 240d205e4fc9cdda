//! Lowe's memo, extended for operations that never returned: the configurations (set of
//! linearized operations, model state) the search has already exhausted.
//!
//! A pending operation is optional, so having linearized fewer of them never hurts: if
//! (R, P, s) failed, so does (R, P', s) for every superset P' of P, where R are the
//! returned operations and P the pending ones linearized. Pruning those supersets is what
//! keeps a history with many timeouts from blowing up into every subset of them.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

/// The linearized operations, as two bitsets: returned ones (with an incrementally kept
/// Zobrist hash, so a lookup hashes only the state) and pending ones.
pub(super) struct Linearized {
    returned: Vec<u64>,
    returned_count: usize,
    hash: u64,
    pending: Vec<u64>,
}

impl Linearized {
    pub(super) fn new(returned: usize, pending: usize) -> Self {
        Self {
            returned: vec![0; returned.div_ceil(64)],
            returned_count: 0,
            hash: 0,
            pending: vec![0; pending.div_ceil(64)],
        }
    }

    /// Adds a returned operation's bit if absent, removes it if present.
    pub(super) fn toggle_returned(&mut self, bit: usize) {
        let mask = 1 << (bit % 64);
        let word = &mut self.returned[bit / 64];
        *word ^= mask;
        if *word & mask == 0 {
            self.returned_count -= 1;
        } else {
            self.returned_count += 1;
        }
        self.hash ^= mix(bit as u64);
    }

    /// Adds a pending operation's bit if absent, removes it if present.
    pub(super) fn toggle_pending(&mut self, bit: usize) {
        self.pending[bit / 64] ^= 1 << (bit % 64);
    }

    /// How many returned operations are linearized: the search's real progress.
    pub(super) fn returned_count(&self) -> usize {
        self.returned_count
    }
}

/// splitmix64's finaliser: spreads operation numbers over the whole hash space.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A configuration that failed.
struct Failed<S> {
    returned: Box<[u64]>,
    pending: Box<[u64]>,
    state: S,
}

/// Failed configurations, bucketed by (returned set, state).
pub(super) struct Memo<S> {
    buckets: HashMap<u64, Vec<Failed<S>>>,
}

impl<S: Eq + Hash + Clone> Memo<S> {
    pub(super) fn new() -> Self {
        Self {
            buckets: HashMap::new(),
        }
    }

    fn key(linearized: &Linearized, state: &S) -> u64 {
        let mut hasher = DefaultHasher::new();
        state.hash(&mut hasher);
        linearized.hash ^ hasher.finish()
    }

    /// Whether a failed configuration with the same returned set and state, and a subset
    /// of these pending operations, is recorded: then this one fails too.
    pub(super) fn dominated(&self, linearized: &Linearized, state: &S) -> bool {
        self.buckets
            .get(&Self::key(linearized, state))
            .is_some_and(|bucket| {
                bucket.iter().any(|failed| {
                    *failed.returned == linearized.returned[..]
                        && failed.state == *state
                        && failed
                            .pending
                            .iter()
                            .zip(&linearized.pending)
                            .all(|(f, l)| f & !l == 0)
                })
            })
    }

    /// Records that the configuration has no way forward, forgetting the failures it
    /// dominates so that buckets stay small.
    pub(super) fn insert(&mut self, linearized: &Linearized, state: &S) {
        let bucket = self
            .buckets
            .entry(Self::key(linearized, state))
            .or_default();
        bucket.retain(|failed| {
            *failed.returned != linearized.returned[..]
                || failed.state != *state
                || !linearized
                    .pending
                    .iter()
                    .zip(&failed.pending)
                    .all(|(l, f)| l & !f == 0)
        });
        bucket.push(Failed {
            returned: linearized.returned.clone().into_boxed_slice(),
            pending: linearized.pending.clone().into_boxed_slice(),
            state: state.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_count_depend_only_on_the_set() {
        let mut a = Linearized::new(130, 0);
        let mut b = Linearized::new(130, 0);
        for bit in [3, 129, 64] {
            a.toggle_returned(bit);
        }
        for bit in [64, 7, 3, 129, 7] {
            b.toggle_returned(bit);
        }
        assert_eq!(
            (&a.returned, a.hash, a.returned_count),
            (&b.returned, b.hash, 3)
        );
    }

    #[test]
    fn a_failure_dominates_supersets_of_its_pending_operations_only() {
        let mut memo = Memo::new();
        let mut set = Linearized::new(10, 70);
        set.toggle_returned(2);
        set.toggle_pending(65);
        assert!(!memo.dominated(&set, &1u8));
        memo.insert(&set, &1u8);
        assert!(memo.dominated(&set, &1u8));
        assert!(!memo.dominated(&set, &2u8), "another state");
        set.toggle_pending(0);
        assert!(memo.dominated(&set, &1u8), "more pending operations");
        memo.insert(&set, &1u8);
        assert_eq!(
            memo.buckets.values().map(Vec::len).sum::<usize>(),
            2,
            "both kept"
        );
        set.toggle_pending(65);
        assert!(!memo.dominated(&set, &1u8), "not a superset");
        set.toggle_pending(65);
        set.toggle_returned(3);
        assert!(!memo.dominated(&set, &1u8), "other returned operations");
        set.toggle_returned(3);
        set.toggle_pending(0);
        set.toggle_pending(65);
        assert!(set.pending.iter().all(|&w| w == 0));
        memo.insert(&set, &1u8);
        assert_eq!(
            memo.buckets.values().map(Vec::len).sum::<usize>(),
            1,
            "supersets forgotten"
        );
    }
}
