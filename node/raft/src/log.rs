//! The in-memory Raft log after the last snapshot, with the bookkeeping the Ready
//! contract needs: which entries the application has been handed to persist, which are
//! durable, which are committed and which were handed out for applying. The effective
//! configuration is the last configuration entry in the log (it takes effect when
//! appended and is reverted when truncated).

use std::collections::VecDeque;

use crate::types::{Entry, EntryPayload, Membership, Snapshot, SnapshotMeta};

#[derive(Clone, Debug)]
pub struct RaftLog {
    /// The compaction point: every entry up to `snapshot.index` is folded into it.
    snapshot: SnapshotMeta,
    /// The bytes of the latest snapshot, kept to send to followers behind it.
    snapshot_data: Vec<u8>,
    /// Entries `snapshot.index + 1 ..= last_index()`.
    entries: VecDeque<Entry>,
    /// Configuration entries still in `entries`, with the configuration each produces.
    confs: Vec<(u64, Membership)>,
    /// Highest index known committed.
    pub committed: u64,
    /// Highest index the application reported durable.
    pub stable: u64,
    /// First index not yet handed to the application to persist.
    unstable_from: u64,
    /// Highest index handed to the application to apply.
    pub applying: u64,
    /// A snapshot received from the leader, not yet handed to the application.
    pending_snapshot: Option<Snapshot>,
}

impl RaftLog {
    /// A log recovered from durable state (all of it durable, none of it applied beyond
    /// the snapshot).
    pub fn new(snapshot: SnapshotMeta, entries: Vec<Entry>, commit: u64) -> Self {
        let last = snapshot.index + entries.len() as u64;
        let mut log = RaftLog {
            committed: commit.clamp(snapshot.index, last),
            stable: last,
            unstable_from: last + 1,
            applying: snapshot.index,
            snapshot,
            snapshot_data: Vec::new(),
            entries: VecDeque::new(),
            confs: Vec::new(),
            pending_snapshot: None,
        };
        for e in entries {
            log.push(e);
        }
        log
    }

    pub fn snapshot_meta(&self) -> &SnapshotMeta {
        &self.snapshot
    }

    pub fn first_index(&self) -> u64 {
        self.snapshot.index + 1
    }

    pub fn last_index(&self) -> u64 {
        self.snapshot.index + self.entries.len() as u64
    }

    pub fn last_term(&self) -> u64 {
        self.entries.back().map_or(self.snapshot.term, |e| e.term)
    }

    /// The term of entry `index`, if the log still knows it.
    pub fn term(&self, index: u64) -> Option<u64> {
        if index == self.snapshot.index {
            return Some(self.snapshot.term);
        }
        self.entry(index).map(|e| e.term)
    }

    pub fn entry(&self, index: u64) -> Option<&Entry> {
        if index <= self.snapshot.index {
            return None;
        }
        self.entries.get((index - self.snapshot.index - 1) as usize)
    }

    pub fn entries_from(&self, index: u64) -> impl Iterator<Item = &Entry> {
        let skip = index.saturating_sub(self.snapshot.index + 1) as usize;
        self.entries.iter().skip(skip)
    }

    /// Entries from `lo` (inclusive), at most `max_entries` and about `max_bytes` (at
    /// least one entry when any exists).
    pub fn slice(&self, lo: u64, max_entries: u64, max_bytes: u64) -> Vec<Entry> {
        let mut out = Vec::new();
        let mut bytes = 0;
        for e in self.entries_from(lo) {
            if out.len() as u64 >= max_entries || (!out.is_empty() && bytes + e.size() > max_bytes)
            {
                break;
            }
            bytes += e.size();
            out.push(e.clone());
        }
        out
    }

    /// Whether a candidate's log (`last_term`, `last_index`) is at least as up to date as
    /// ours (Raft paper 5.4.1).
    pub fn is_up_to_date(&self, last_index: u64, last_term: u64) -> bool {
        (last_term, last_index) >= (self.last_term(), self.last_index())
    }

    /// The configuration in force: the last one in the log, else the snapshot's.
    pub fn membership(&self) -> &Membership {
        self.confs
            .last()
            .map_or(&self.snapshot.membership, |(_, m)| m)
    }

    /// The configuration in force at `index` (the last one appended at or before it).
    pub(crate) fn membership_at(&self, index: u64) -> Membership {
        self.confs
            .iter()
            .rev()
            .find(|(i, _)| *i <= index)
            .map_or_else(|| self.snapshot.membership.clone(), |(_, m)| m.clone())
    }

    /// Index of the last configuration entry still in the log (0 if none).
    pub fn last_conf_index(&self) -> u64 {
        self.confs.last().map_or(0, |(i, _)| *i)
    }

    fn push(&mut self, e: Entry) {
        debug_assert_eq!(e.index, self.last_index() + 1);
        if let EntryPayload::ConfChange(cc) = &e.payload {
            // The leader validated the change; should an invalid one reach a log anyway,
            // every node ignores it the same way.
            if let Ok(next) = self.membership().apply(cc) {
                self.confs.push((e.index, next));
            }
        }
        self.entries.push_back(e);
    }

    /// Appends entries that directly follow the last index (leader side).
    pub fn append(&mut self, entries: Vec<Entry>) {
        for e in entries {
            self.push(e);
        }
    }

    /// Removes every entry from `index` on.
    pub fn truncate_from(&mut self, index: u64) {
        let keep = index.saturating_sub(self.snapshot.index + 1) as usize;
        self.entries.truncate(keep);
        self.confs.retain(|(i, _)| *i < index);
        self.stable = self.stable.min(index - 1);
        self.unstable_from = self.unstable_from.min(index);
    }

    /// Follower side of AppendEntries. Returns the last index known to match the leader,
    /// or `None` if `prev_index`/`prev_term` do not match. Entries already present with
    /// the same term are kept: only a real conflict truncates, never a stale or reordered
    /// message. `truncate_always` re-injects the stale-append bug for the mutation gate.
    pub fn maybe_append(
        &mut self,
        prev_index: u64,
        prev_term: u64,
        entries: Vec<Entry>,
        truncate_always: bool,
    ) -> Option<u64> {
        // The caller answers Appends below the commit index without calling us, so
        // `prev_index` is at or above the snapshot and its term is known.
        if self.term(prev_index) != Some(prev_term) {
            return None;
        }
        let last_new = prev_index + entries.len() as u64;
        let mut iter = entries.into_iter().peekable();
        while let Some(e) = iter.peek() {
            let present = e.index <= self.snapshot.index || self.term(e.index) == Some(e.term);
            if present && !(truncate_always && e.index > self.snapshot.index) {
                iter.next();
                continue;
            }
            if e.index <= self.last_index() {
                assert!(
                    e.index > self.committed || truncate_always,
                    "conflict at committed index {} (committed {})",
                    e.index,
                    self.committed
                );
                self.truncate_from(e.index);
            }
            break;
        }
        for e in iter {
            self.push(e);
        }
        Some(last_new)
    }

    /// For a rejected Append: the largest index at or below `index` whose term is at
    /// most `term`, with that term. The leader can skip everything above it.
    pub fn find_conflict_by_term(&self, index: u64, term: u64) -> (u64, u64) {
        let mut i = index.min(self.last_index());
        while i > self.snapshot.index {
            match self.term(i) {
                Some(t) if t <= term => return (i, t),
                _ => i -= 1,
            }
        }
        (self.snapshot.index, self.snapshot.term)
    }

    pub fn commit_to(&mut self, index: u64) -> bool {
        if index > self.committed {
            self.committed = index;
            true
        } else {
            false
        }
    }

    /// Entries the application has not been handed to persist yet; marks them handed.
    pub fn take_unstable(&mut self) -> Vec<Entry> {
        let out: Vec<Entry> = self.entries_from(self.unstable_from).cloned().collect();
        self.unstable_from = self.last_index() + 1;
        out
    }

    pub fn has_unstable(&self) -> bool {
        self.unstable_from <= self.last_index()
    }

    /// The application reports everything through `index` (whose term is `term`)
    /// durable. A report about entries since replaced is ignored.
    pub fn on_persisted(&mut self, index: u64, term: u64) -> bool {
        if index <= self.stable || index >= self.unstable_from || self.term(index) != Some(term) {
            return false;
        }
        self.stable = index;
        true
    }

    /// Committed, durable entries not yet handed out for applying.
    pub fn take_committed(&mut self, max_bytes: u64) -> Vec<Entry> {
        let hi = self.committed.min(self.stable);
        if hi <= self.applying {
            return Vec::new();
        }
        let mut out = Vec::new();
        let mut bytes = 0;
        for e in self.entries_from(self.applying + 1) {
            if e.index > hi || (!out.is_empty() && bytes + e.size() > max_bytes) {
                break;
            }
            bytes += e.size();
            out.push(e.clone());
        }
        if let Some(e) = out.last() {
            self.applying = e.index;
        }
        out
    }

    pub fn has_committed_to_apply(&self) -> bool {
        self.committed.min(self.stable) > self.applying
    }

    /// Replaces the log with a snapshot received from the leader.
    pub fn restore(&mut self, snapshot: Snapshot) {
        let meta = snapshot.meta.clone();
        self.entries.clear();
        self.confs.clear();
        self.committed = meta.index;
        self.applying = meta.index;
        self.stable = self.stable.min(meta.index.saturating_sub(1));
        self.unstable_from = meta.index + 1;
        self.snapshot = meta;
        self.snapshot_data = snapshot.data.clone();
        self.pending_snapshot = Some(snapshot);
    }

    pub fn take_pending_snapshot(&mut self) -> Option<Snapshot> {
        self.pending_snapshot.take()
    }

    pub fn has_pending_snapshot(&self) -> bool {
        self.pending_snapshot.is_some()
    }

    /// Folds everything through `index` into a snapshot whose bytes are `data`.
    pub fn compact(&mut self, index: u64, data: Vec<u8>) -> Result<(), &'static str> {
        if index <= self.snapshot.index {
            return Err("already compacted");
        }
        if index > self.applying {
            return Err("not yet applied");
        }
        if index > self.stable {
            return Err("not yet durable");
        }
        let term = self.term(index).ok_or("index not in the log")?;
        let membership = self.membership_at(index);
        let drop = (index - self.snapshot.index) as usize;
        self.entries.drain(..drop);
        self.confs.retain(|(i, _)| *i > index);
        self.snapshot = SnapshotMeta {
            index,
            term,
            membership,
        };
        self.snapshot_data = data;
        Ok(())
    }

    /// Sets the bytes of the recovered snapshot, so they can be sent to followers.
    pub fn compact_data(&mut self, data: Vec<u8>) {
        self.snapshot_data = data;
    }

    /// The latest snapshot, for a follower behind the first retained index.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            meta: self.snapshot.clone(),
            data: self.snapshot_data.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ents(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
        range
            .map(|index| Entry {
                term,
                index,
                payload: EntryPayload::Empty,
            })
            .collect()
    }

    #[test]
    fn stale_append_never_truncates() {
        let mut log = RaftLog::new(SnapshotMeta::default(), ents(1..=5, 1), 0);
        // A reordered, older Append carrying 2..=3 must not cut 4..=5.
        assert_eq!(log.maybe_append(1, 1, ents(2..=3, 1), false), Some(3));
        assert_eq!(log.last_index(), 5);
        // A real conflict truncates.
        assert_eq!(log.maybe_append(2, 1, ents(3..=3, 2), false), Some(3));
        assert_eq!(log.last_index(), 3);
        assert_eq!(log.term(3), Some(2));
        // A mismatching prev is refused.
        assert_eq!(log.maybe_append(3, 1, vec![], false), None);
    }

    #[test]
    fn committed_entries_wait_for_durability() {
        let mut log = RaftLog::new(SnapshotMeta::default(), vec![], 0);
        log.append(ents(1..=3, 1));
        log.commit_to(3);
        assert!(
            log.take_committed(u64::MAX).is_empty(),
            "nothing durable yet"
        );
        assert_eq!(log.take_unstable().len(), 3);
        assert!(log.on_persisted(2, 1));
        assert_eq!(log.take_committed(u64::MAX).len(), 2);
        assert!(!log.on_persisted(3, 9), "wrong term is ignored");
    }

    #[test]
    fn compaction_keeps_the_configuration() {
        use crate::types::{ConfChange, ConfChangeKind};
        let mut log = RaftLog::new(SnapshotMeta::default(), vec![], 0);
        let cc = ConfChange::single(ConfChangeKind::AddVoter, 1);
        log.append(vec![Entry {
            term: 1,
            index: 1,
            payload: EntryPayload::ConfChange(cc),
        }]);
        log.append(ents(2..=4, 1));
        log.take_unstable();
        log.on_persisted(4, 1);
        log.commit_to(4);
        log.take_committed(u64::MAX);
        log.compact(3, b"state".to_vec()).unwrap();
        assert_eq!(log.first_index(), 4);
        assert_eq!(log.snapshot().meta.membership, Membership::with_voters([1]));
        assert_eq!(log.membership(), &Membership::with_voters([1]));
        assert_eq!(log.compact(3, vec![]), Err("already compacted"));
    }
}
