//! The on-disk [`LogStore`]: the [`Wal`] for durability, a [`MemLog`] for reads.
//!
//! The core keeps its log in memory anyway and compaction bounds it, so reads are
//! served from memory and the WAL is write-only until the next restart.

use std::path::PathBuf;
use std::sync::Arc;

use kuberaft_raft::{Entry, HardState, SnapshotMeta};

use super::error::Result;
use super::fs::Fs;
use super::log_store::{LogStore, MemLog};
use super::wal::{Durable, Recovered, SyncBatch, Wal, WalOptions};

/// A durable [`LogStore`] over a segmented WAL.
#[derive(Debug)]
pub struct DiskLogStore {
    wal: Wal,
    log: MemLog,
}

impl DiskLogStore {
    /// Opens the WAL in `dir`, recovering whatever it holds.
    pub fn open(fs: Arc<dyn Fs>, dir: impl Into<PathBuf>, opts: WalOptions) -> Result<Self> {
        let (
            wal,
            Recovered {
                snapshot, entries, ..
            },
        ) = Wal::open(fs, dir, opts)?;
        Ok(DiskLogStore {
            wal,
            log: MemLog::new(snapshot, entries),
        })
    }

    /// What the core needs at startup: hard state, snapshot point, entries after it.
    pub fn recovered(&self) -> Recovered {
        Recovered {
            hard_state: self.wal.hard_state(),
            snapshot: self.log.snapshot().cloned(),
            entries: self
                .log
                .entries(self.log.first_index(), self.log.last_index() + 1, None)
                .expect("the whole in-memory log is readable"),
        }
    }

    /// The underlying WAL, for inspection (segments, durable point).
    pub fn wal(&self) -> &Wal {
        &self.wal
    }

    /// First half of a sync that lets the caller fsync without holding the store; see
    /// [`Wal::begin_sync`].
    pub fn begin_sync(&mut self) -> Result<SyncBatch> {
        self.wal.begin_sync()
    }

    /// Second half of [`DiskLogStore::begin_sync`].
    pub fn finish_sync(&mut self, batch: SyncBatch) -> Result<Durable> {
        self.wal.finish_sync(batch)
    }
}

impl LogStore for DiskLogStore {
    fn append(&mut self, entries: &[Entry]) -> Result<()> {
        self.log.check_append(entries)?;
        self.wal.append(entries)?;
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
        if self.log.check_compact(meta)? {
            self.wal.compact(meta)?;
            self.log.compact(meta)?;
        }
        Ok(())
    }

    fn install_snapshot(&mut self, meta: &SnapshotMeta) -> Result<()> {
        if self.log.check_install(meta)? {
            return self.compact(meta);
        }
        self.wal.install_snapshot(meta)?;
        self.log.install_snapshot(meta)
    }

    fn hard_state(&self) -> HardState {
        self.wal.hard_state()
    }

    fn set_hard_state(&mut self, hs: HardState) -> Result<()> {
        self.wal.set_hard_state(hs)
    }

    fn sync(&mut self) -> Result<Durable> {
        self.wal.sync()
    }
}
