//! The segmented write-ahead log.
//!
//! ```text
//!   append / set_hard_state / compact ──► buf (memory)
//!   begin_sync ── takes buf + file ──► SyncBatch::run (write + fdatasync, no &mut Wal)
//!   finish_sync ◄── batch ── Durable { last_index, last_term, hard_state }
//!                          └─ rotate segment if full, delete segments below compaction
//! ```
//!
//! Appends only touch memory, so many proposals share one fdatasync (group commit);
//! splitting the sync in two lets appends continue while the disk works
//! ([`GroupCommit`] does that for threads). Nothing is durable, and nothing may be
//! acknowledged, until `finish_sync` says so.

mod group;
mod recovery;
mod segment;

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kuberaft_raft::{Entry, HardState, SnapshotMeta};

pub use group::GroupCommit;
pub use recovery::Recovered;
pub use segment::{Segment, parse_segment_name, segment_name};

use crate::storage::codec;
use crate::storage::error::{Error, Result};
use crate::storage::fs::{Fs, FsFile};

/// WAL tuning.
#[derive(Clone, Debug)]
pub struct WalOptions {
    /// A segment is closed and a new one started once it reaches this many bytes.
    /// Smaller segments let compaction free space sooner; larger ones mean fewer files.
    pub segment_size: u64,
    /// Extend each segment to `segment_size` when it is created (a sparse extension:
    /// no blocks are written). Appends then land inside the file and an fdatasync need
    /// not also journal a new file length: on ext4 that made each fsync about a fifth
    /// cheaper. Recovery reads the zeros after the last record as the end of the log.
    pub preallocate: bool,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_size: 64 << 20,
            preallocate: true,
        }
    }
}

impl WalOptions {
    /// The length a new segment is extended to (0: not extended).
    fn preallocated_len(&self) -> u64 {
        if self.preallocate {
            self.segment_size
        } else {
            0
        }
    }
}

/// What is on disk for sure: everything up to `last_index` (with `last_term`) and
/// this hard state. Raft may acknowledge exactly this much, no more.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Durable {
    pub last_index: u64,
    pub last_term: u64,
    pub hard_state: HardState,
    pub snapshot_index: u64,
}

/// The logical end of the log after some prefix of the records.
#[derive(Clone, Debug, Default)]
struct Tip {
    last_index: u64,
    last_term: u64,
    hard_state: HardState,
    snapshot: Option<SnapshotMeta>,
}

impl Tip {
    fn snapshot_index(&self) -> u64 {
        self.snapshot.as_ref().map_or(0, |s| s.index)
    }

    fn durable(&self) -> Durable {
        Durable {
            last_index: self.last_index,
            last_term: self.last_term,
            hard_state: self.hard_state,
            snapshot_index: self.snapshot_index(),
        }
    }
}

/// The write-ahead log. See the module docs for the sync protocol.
#[derive(Debug)]
pub struct Wal {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    opts: WalOptions,
    /// Every live segment, oldest first; the last one is being appended to.
    segments: Vec<Segment>,
    /// The last segment's handle; `None` while a [`SyncBatch`] holds it.
    file: Option<Box<dyn FsFile>>,
    /// Bytes of the last segment, counting those handed to an in-flight batch.
    active_len: u64,
    buf: Vec<u8>,
    buf_max_index: u64,
    buf_compaction: u64,
    /// After every appended record.
    tip: Tip,
    /// After the records handed to the files: what a new segment's header must restate.
    written: Tip,
    durable: Durable,
    durable_compaction: u64,
    poisoned: Option<String>,
}

/// One group commit's worth of bytes, written and fsynced without holding the WAL.
#[derive(Debug)]
pub struct SyncBatch {
    file: Box<dyn FsFile>,
    path: PathBuf,
    bytes: Vec<u8>,
    tip: Tip,
    compaction: u64,
    result: Option<io::Result<()>>,
}

impl SyncBatch {
    /// Writes and fdatasyncs the batch. Safe to call with no lock held.
    pub fn run(&mut self) {
        if self.result.is_some() {
            return;
        }
        let result = if self.bytes.is_empty() {
            Ok(())
        } else {
            self.file
                .write_all(&self.bytes)
                .and_then(|()| self.file.sync_data())
        };
        self.result = Some(result);
    }

    /// Bytes this batch writes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

impl Wal {
    /// Opens (or creates) the WAL in `dir` and recovers its contents.
    pub fn open(
        fs: Arc<dyn Fs>,
        dir: impl Into<PathBuf>,
        opts: WalOptions,
    ) -> Result<(Wal, Recovered)> {
        let dir = dir.into();
        fs.create_dir_all(&dir)
            .map_err(Error::io("create directory", &dir))?;
        let replayed = recovery::replay(fs.as_ref(), &dir)?;
        let recovered = replayed.recovered;
        let tip = Tip {
            last_index: recovered.last_index(),
            last_term: recovered.last_term(),
            hard_state: recovered.hard_state,
            snapshot: recovered.snapshot.clone(),
        };
        let mut segments = replayed.segments;
        let (file, active_len) = match segments.last() {
            Some(last) => {
                // What recovery read may have been only in the page cache (a kill -9
                // between write and fdatasync). The core will treat it as its log and
                // may acknowledge it, so it must be durable before anyone sees it.
                // The file may run on past its last record (preallocated zeros): appends
                // continue right after the record, and the file is extended again.
                let mut file = fs
                    .open_append(&last.path)
                    .map_err(Error::io("open", &last.path))?;
                file.set_len(replayed.last_len)
                    .and_then(|()| {
                        let len = opts.preallocated_len();
                        if len > replayed.last_len {
                            file.set_len(len)?;
                        }
                        Ok(())
                    })
                    .map_err(Error::io("resize", &last.path))?;
                file.sync_data()
                    .map_err(Error::io("fdatasync", &last.path))?;
                fs.sync_dir(&dir)
                    .map_err(Error::io("fsync directory", &dir))?;
                (file, replayed.last_len)
            }
            None => {
                let (segment, file, len) = segment::create_segment(
                    fs.as_ref(),
                    &dir,
                    replayed.max_seq + 1,
                    tip.last_index + 1,
                    &tip.hard_state,
                    tip.snapshot.as_ref(),
                    opts.preallocated_len(),
                )?;
                segments.push(segment);
                (file, len)
            }
        };
        let wal = Wal {
            fs,
            dir,
            opts,
            segments,
            file: Some(file),
            active_len,
            buf: Vec::new(),
            buf_max_index: 0,
            buf_compaction: 0,
            durable: tip.durable(),
            durable_compaction: tip.snapshot_index(),
            written: tip.clone(),
            tip,
            poisoned: None,
        };
        Ok((wal, recovered))
    }

    fn check(&self) -> Result<()> {
        match &self.poisoned {
            Some(why) => Err(Error::Poisoned(why.clone())),
            None => Ok(()),
        }
    }

    /// Appends entries; if the first index is at or below the last one, the stored
    /// suffix from that index is truncated first (a follower overwriting a conflict).
    pub fn append(&mut self, entries: &[Entry]) -> Result<()> {
        self.check()?;
        let Some(first) = entries.first() else {
            return Ok(());
        };
        if first.index <= self.tip.snapshot_index() {
            return Err(Error::Compacted {
                index: first.index,
                snapshot_index: self.tip.snapshot_index(),
            });
        }
        if first.index > self.tip.last_index + 1 {
            let why = format!(
                "entry {} would leave a gap after the last index {}",
                first.index, self.tip.last_index
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
        if first.index <= self.tip.last_index {
            codec::encode_truncate_record(first.index, &mut self.buf);
        }
        for entry in entries {
            codec::encode_entry_record(entry, &mut self.buf);
        }
        let last = entries.last().expect("entries is not empty");
        self.tip.last_index = last.index;
        self.tip.last_term = last.term;
        self.buf_max_index = self.buf_max_index.max(last.index);
        Ok(())
    }

    /// Records a new hard state (a no-op if it is unchanged).
    pub fn set_hard_state(&mut self, hs: HardState) -> Result<()> {
        self.check()?;
        if hs != self.tip.hard_state {
            codec::encode_hard_state_record(&hs, &mut self.buf);
            self.tip.hard_state = hs;
        }
        Ok(())
    }

    /// Records that a snapshot covers the log through `meta.index`; entries after it
    /// stay. Segments wholly at or below it are deleted once this is durable.
    pub fn compact(&mut self, meta: &SnapshotMeta) -> Result<()> {
        self.check()?;
        if meta.index > self.tip.last_index {
            return Err(Error::Unavailable {
                index: meta.index,
                last_index: self.tip.last_index,
            });
        }
        self.snapshot_record(meta, false)
    }

    /// Records an installed snapshot that replaces the whole log: every entry is gone
    /// and the log continues at `meta.index + 1`.
    pub fn install_snapshot(&mut self, meta: &SnapshotMeta) -> Result<()> {
        self.check()?;
        self.snapshot_record(meta, true)?;
        self.tip.last_index = meta.index;
        self.tip.last_term = meta.term;
        Ok(())
    }

    fn snapshot_record(&mut self, meta: &SnapshotMeta, discard_log: bool) -> Result<()> {
        if meta.index < self.tip.snapshot_index() {
            let why = format!(
                "snapshot {} is older than snapshot {}",
                meta.index,
                self.tip.snapshot_index()
            );
            return Err(Error::InvalidOp(why));
        }
        codec::encode_snapshot_record(meta, discard_log, &mut self.buf);
        self.buf_compaction = self.buf_compaction.max(meta.index);
        self.tip.snapshot = Some(meta.clone());
        Ok(())
    }

    /// Makes everything appended so far durable with one write and one fdatasync.
    pub fn sync(&mut self) -> Result<Durable> {
        let mut batch = self.begin_sync()?;
        batch.run();
        self.finish_sync(batch)
    }

    /// Takes every record appended so far into a batch; later appends go to the next.
    pub fn begin_sync(&mut self) -> Result<SyncBatch> {
        self.check()?;
        let file = self.file.take().ok_or(Error::SyncInFlight)?;
        let active = self
            .segments
            .last_mut()
            .expect("the WAL always has a segment");
        active.max_index = active
            .max_index
            .max(std::mem::take(&mut self.buf_max_index));
        let bytes = std::mem::take(&mut self.buf);
        self.active_len += bytes.len() as u64;
        self.written = self.tip.clone();
        Ok(SyncBatch {
            file,
            path: active.path.clone(),
            bytes,
            tip: self.tip.clone(),
            compaction: std::mem::take(&mut self.buf_compaction),
            result: None,
        })
    }

    /// Completes a batch: on success its records are durable (and reported so), a full
    /// segment is rotated and dead segments are deleted. A failed batch poisons the WAL.
    pub fn finish_sync(&mut self, mut batch: SyncBatch) -> Result<Durable> {
        self.check()?;
        batch.run();
        if let Some(Err(source)) = batch.result {
            self.poisoned = Some(format!(
                "fdatasync of {} failed: {source}",
                batch.path.display()
            ));
            return Err(Error::Io {
                op: "write+fdatasync",
                path: batch.path,
                source,
            });
        }
        self.file = Some(batch.file);
        self.durable = batch.tip.durable();
        self.durable_compaction = self.durable_compaction.max(batch.compaction);
        let housekeeping = self.rotate_if_full().and_then(|()| self.delete_compacted());
        if let Err(e) = housekeeping {
            self.poisoned = Some(e.to_string());
            return Err(e);
        }
        Ok(self.durable)
    }

    fn rotate_if_full(&mut self) -> Result<()> {
        if self.active_len < self.opts.segment_size {
            return Ok(());
        }
        // Recovery accepts trailing zeros only in the last segment, and a closed one has
        // none: the segment was preallocated to `segment_size` (when created, or when
        // opened after recovery cut it to its last record), and its records now reach
        // at least that far.
        let seq = self.segments.last().map_or(0, |s| s.seq) + 1;
        let (segment, file, len) = segment::create_segment(
            self.fs.as_ref(),
            &self.dir,
            seq,
            self.written.last_index + 1,
            &self.written.hard_state,
            self.written.snapshot.as_ref(),
            self.opts.preallocated_len(),
        )?;
        self.segments.push(segment);
        self.file = Some(file);
        self.active_len = len;
        Ok(())
    }

    /// Deletes, oldest first, the closed segments whose entries are all compacted.
    fn delete_compacted(&mut self) -> Result<()> {
        let dead = self.segments[..self.segments.len() - 1]
            .iter()
            .take_while(|s| s.max_index <= self.durable_compaction)
            .count();
        if dead == 0 {
            return Ok(());
        }
        for segment in self.segments.drain(..dead) {
            self.fs
                .remove(&segment.path)
                .map_err(Error::io("remove", &segment.path))?;
        }
        self.fs
            .sync_dir(&self.dir)
            .map_err(Error::io("fsync directory", &self.dir))
    }

    /// What the last completed sync made durable.
    pub fn durable(&self) -> Durable {
        self.durable
    }

    pub fn last_index(&self) -> u64 {
        self.tip.last_index
    }

    pub fn last_term(&self) -> u64 {
        self.tip.last_term
    }

    pub fn hard_state(&self) -> HardState {
        self.tip.hard_state
    }

    pub fn snapshot(&self) -> Option<&SnapshotMeta> {
        self.tip.snapshot.as_ref()
    }

    /// Bytes appended but not yet handed to a sync.
    pub fn pending_bytes(&self) -> usize {
        self.buf.len()
    }

    /// The live segment files, oldest first.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The filesystem this WAL writes to, e.g. to reopen it in a test.
    pub fn fs(&self) -> Arc<dyn Fs> {
        self.fs.clone()
    }
}
