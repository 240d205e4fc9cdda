//! The log storage contract the node drives, and its in-memory implementation.
//!
//! Indexes follow the Raft paper: the first entry is 1, and a snapshot at index `s`
//! stands for entries `1..=s`, so `first_index` is `s + 1` and `term(s)` is the
//! snapshot's term. Reads see every append at once; [`LogStore::sync`] says what is
//! durable, and only that may be acknowledged to peers or clients.

use kuberaft_raft::{Entry, HardState, SnapshotMeta};

use super::error::{Error, Result};
use super::wal::Durable;

/// Storage for the Raft log and hard state. The in-memory and the on-disk stores both
/// pass [`conformance`](super::conformance), so the node can be tested on either.
pub trait LogStore {
    /// Appends consecutive entries. If the first index is at or below the last index,
    /// the stored suffix from that index is replaced (a follower overwriting a
    /// conflict). Fails on a gap or when the first index is compacted.
    fn append(&mut self, entries: &[Entry]) -> Result<()>;

    /// Entries with index in `lo..hi`, stopping before `max_bytes` (by
    /// [`Entry::size`]) is exceeded but always returning at least one if `lo < hi`.
    fn entries(&self, lo: u64, hi: u64, max_bytes: Option<u64>) -> Result<Vec<Entry>>;

    /// The term of entry `index`; the snapshot's term at the snapshot index; 0 at index
    /// 0 of a log that was never compacted.
    fn term(&self, index: u64) -> Result<u64>;

    /// The index of the first entry still stored (snapshot index + 1).
    fn first_index(&self) -> u64;

    /// The index of the last entry, or the snapshot index if there are none.
    fn last_index(&self) -> u64;

    /// The latest compaction point or installed snapshot.
    fn snapshot_meta(&self) -> Option<SnapshotMeta>;

    /// Discards entries up to `meta.index`, which must be stored with `meta.term`: the
    /// application has a snapshot there. Takes the whole meta, not just the index, so
    /// that recovery can hand the core its membership without opening the snapshot.
    fn compact(&mut self, meta: &SnapshotMeta) -> Result<()>;

    /// Installs a snapshot received from the leader: entries after it survive only if
    /// the log holds `meta.index` with `meta.term` (Raft paper §7), otherwise the whole
    /// log is replaced by the snapshot.
    fn install_snapshot(&mut self, meta: &SnapshotMeta) -> Result<()>;

    fn hard_state(&self) -> HardState;

    fn set_hard_state(&mut self, hs: HardState) -> Result<()>;

    /// Makes everything so far durable and reports exactly what that is.
    fn sync(&mut self) -> Result<Durable>;
}

/// The log kept in memory: shared by [`MemLogStore`] and the WAL-backed store, which
/// keeps the same view in front of its disk.
#[derive(Clone, Debug, Default)]
pub struct MemLog {
    snapshot: Option<SnapshotMeta>,
    entries: Vec<Entry>,
}

impl MemLog {
    /// A log rebuilt from recovered state; `entries` must follow the snapshot.
    pub fn new(snapshot: Option<SnapshotMeta>, entries: Vec<Entry>) -> Self {
        MemLog { snapshot, entries }
    }

    pub fn snapshot(&self) -> Option<&SnapshotMeta> {
        self.snapshot.as_ref()
    }

    pub fn snapshot_index(&self) -> u64 {
        self.snapshot.as_ref().map_or(0, |s| s.index)
    }

    pub fn first_index(&self) -> u64 {
        self.snapshot_index() + 1
    }

    pub fn last_index(&self) -> u64 {
        self.entries
            .last()
            .map_or(self.snapshot_index(), |e| e.index)
    }

    pub fn last_term(&self) -> u64 {
        self.term(self.last_index()).unwrap_or(0)
    }

    /// The same checks the WAL makes, run before anything is written.
    pub fn check_append(&self, entries: &[Entry]) -> Result<()> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        if first.index <= self.snapshot_index() {
            return Err(Error::Compacted {
                index: first.index,
                snapshot_index: self.snapshot_index(),
            });
        }
        if first.index > self.last_index() + 1 {
            let why = format!(
                "entry {} would leave a gap after the last index {}",
                first.index,
                self.last_index()
            );
            return Err(Error::InvalidOp(why));
        }
        if let Some(w) = entries.windows(2).find(|w| w[1].index != w[0].index + 1) {
            let why = format!(
                "entries {} and {} are not consecutive",
                w[0].index, w[1].index
            );
            return Err(Error::InvalidOp(why));
        }
        Ok(())
    }

    pub fn append(&mut self, entries: &[Entry]) -> Result<()> {
        self.check_append(entries)?;
        if let Some(first) = entries.first() {
            self.entries
                .truncate((first.index - self.first_index()) as usize);
            self.entries.extend_from_slice(entries);
        }
        Ok(())
    }

    pub fn entries(&self, lo: u64, hi: u64, max_bytes: Option<u64>) -> Result<Vec<Entry>> {
        if lo > hi {
            return Err(Error::InvalidOp(format!(
                "entries range {lo}..{hi} is reversed"
            )));
        }
        if lo < self.first_index() {
            return Err(Error::Compacted {
                index: lo,
                snapshot_index: self.snapshot_index(),
            });
        }
        if hi > self.last_index() + 1 {
            return Err(Error::Unavailable {
                index: hi - 1,
                last_index: self.last_index(),
            });
        }
        let base = self.first_index();
        let slice = &self.entries[(lo - base) as usize..(hi - base) as usize];
        let mut out = Vec::new();
        let mut bytes = 0;
        for entry in slice {
            bytes += entry.size();
            if !out.is_empty() && max_bytes.is_some_and(|max| bytes > max) {
                break;
            }
            out.push(entry.clone());
        }
        Ok(out)
    }

    pub fn term(&self, index: u64) -> Result<u64> {
        let snapshot_index = self.snapshot_index();
        if index == snapshot_index {
            return Ok(self.snapshot.as_ref().map_or(0, |s| s.term));
        }
        if index < snapshot_index {
            return Err(Error::Compacted {
                index,
                snapshot_index,
            });
        }
        if index > self.last_index() {
            return Err(Error::Unavailable {
                index,
                last_index: self.last_index(),
            });
        }
        Ok(self.entries[(index - self.first_index()) as usize].term)
    }

    /// Checks a compaction; `Ok(false)` means it is a repeat and changes nothing.
    pub fn check_compact(&self, meta: &SnapshotMeta) -> Result<bool> {
        if meta.index < self.snapshot_index() {
            return Err(Error::Compacted {
                index: meta.index,
                snapshot_index: self.snapshot_index(),
            });
        }
        let term = self.term(meta.index)?;
        if term != meta.term {
            let why = format!(
                "compaction at {} with term {} but the log has term {term}",
                meta.index, meta.term
            );
            return Err(Error::InvalidOp(why));
        }
        Ok(meta.index > self.snapshot_index() || self.snapshot.as_ref() != Some(meta))
    }

    pub fn compact(&mut self, meta: &SnapshotMeta) -> Result<()> {
        if self.check_compact(meta)? {
            self.entries
                .drain(..(meta.index + 1 - self.first_index()) as usize);
            self.snapshot = Some(meta.clone());
        }
        Ok(())
    }

    /// Checks a snapshot install; returns whether the entries after it survive.
    pub fn check_install(&self, meta: &SnapshotMeta) -> Result<bool> {
        if meta.index < self.snapshot_index() {
            let why = format!(
                "snapshot {} is older than snapshot {}",
                meta.index,
                self.snapshot_index()
            );
            return Err(Error::InvalidOp(why));
        }
        Ok(self.term(meta.index).ok() == Some(meta.term))
    }

    pub fn install_snapshot(&mut self, meta: &SnapshotMeta) -> Result<()> {
        if self.check_install(meta)? {
            self.compact(meta)
        } else {
            self.entries.clear();
            self.snapshot = Some(meta.clone());
            Ok(())
        }
    }
}

/// A [`LogStore`] that keeps everything in memory: for tests and simulations where
/// "durable" means "still in this process".
#[derive(Clone, Debug, Default)]
pub struct MemLogStore {
    log: MemLog,
    hard_state: HardState,
}

impl MemLogStore {
    pub fn new() -> Self {
        Self::default()
    }
}

impl LogStore for MemLogStore {
    fn append(&mut self, entries: &[Entry]) -> Result<()> {
        self.log.append(entries)
    }

    fn entries(&self, lo: u64, hi: u64, max_bytes: Option<u64>) -> Result<Vec<Entry>> {
        self.log.entries(lo, hi, max_bytes)
    }

    fn term(&self, index: u64) -> Result<u64> {
        self.log.term(index)
    }

    fn first_index(&self) -> u64 {
        self.log.first_index()
    }

    fn last_index(&self) -> u64 {
        self.log.last_index()
    }

    fn snapshot_meta(&self) -> Option<SnapshotMeta> {
        self.log.snapshot().cloned()
    }

    fn compact(&mut self, meta: &SnapshotMeta) -> Result<()> {
        self.log.compact(meta)
    }

    fn install_snapshot(&mut self, meta: &SnapshotMeta) -> Result<()> {
        self.log.install_snapshot(meta)
    }

    fn hard_state(&self) -> HardState {
        self.hard_state
    }

    fn set_hard_state(&mut self, hs: HardState) -> Result<()> {
        self.hard_state = hs;
        Ok(())
    }

    fn sync(&mut self) -> Result<Durable> {
        Ok(Durable {
            last_index: self.log.last_index(),
            last_term: self.log.last_term(),
            hard_state: self.hard_state,
            snapshot_index: self.log.snapshot_index(),
        })
    }
}
