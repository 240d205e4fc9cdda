//! Replaying the segments at startup.
//!
//! The rule that keeps acknowledged data safe without inventing any: only the tail of
//! the LAST segment may be damaged, because only it can hold bytes that were never
//! fsynced. There a bad record followed by nothing valid is a torn write and is cut
//! off; a bad record followed by a valid one means the disk lost synced data, and the
//! node refuses to start instead of quietly dropping what it once acknowledged. Zeros
//! after the last record of the last segment are its preallocated space, not damage.

use std::path::{Path, PathBuf};

use kuberaft_raft::{Entry, HardState, SnapshotMeta};

use super::segment::{Segment, parse_segment_name};
use crate::storage::codec::{self, Frame, RECORD_HEADER_LEN, Record, SEGMENT_HEADER_LEN};
use crate::storage::error::{Error, Result};
use crate::storage::fs::Fs;

/// What the core needs to restart: the hard state (commit clamped to what the durable
/// log can back), the latest snapshot point and the entries after it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    pub hard_state: HardState,
    pub snapshot: Option<SnapshotMeta>,
    pub entries: Vec<Entry>,
}

impl Recovered {
    pub fn snapshot_index(&self) -> u64 {
        self.snapshot.as_ref().map_or(0, |s| s.index)
    }

    pub fn last_index(&self) -> u64 {
        self.entries
            .last()
            .map_or(self.snapshot_index(), |e| e.index)
    }

    pub fn last_term(&self) -> u64 {
        match (self.entries.last(), &self.snapshot) {
            (Some(e), _) => e.term,
            (None, Some(s)) => s.term,
            (None, None) => 0,
        }
    }
}

/// The replayed log plus what the WAL needs to continue writing.
#[derive(Debug)]
pub(super) struct Replayed {
    pub recovered: Recovered,
    pub segments: Vec<Segment>,
    /// Valid length of the last segment (after cutting a torn tail).
    pub last_len: u64,
    /// The highest sequence number seen, including segments that were discarded.
    pub max_seq: u64,
}

/// Applies records in order, validating that they describe a possible log history.
#[derive(Debug, Default)]
struct Replay {
    hard_state: HardState,
    snapshot: Option<SnapshotMeta>,
    entries: Vec<Entry>,
    /// Where the current contiguous run of entries began, to name it if it turns out
    /// not to connect to the snapshot (a missing segment).
    run_start: Option<(PathBuf, u64)>,
}

fn corrupt(path: &Path, offset: u64, reason: impl Into<String>) -> Error {
    Error::CorruptWal {
        path: path.to_path_buf(),
        offset,
        reason: reason.into(),
    }
}

impl Replay {
    fn snapshot_index(&self) -> u64 {
        self.snapshot.as_ref().map_or(0, |s| s.index)
    }

    fn apply(&mut self, record: Record, path: &Path, offset: u64) -> Result<()> {
        match record {
            Record::HardState(hs) => self.hard_state = hs,
            Record::Entry(entry) => {
                if entry.index <= self.snapshot_index() {
                    let reason = format!(
                        "entry {} is at or below the snapshot index {}",
                        entry.index,
                        self.snapshot_index()
                    );
                    return Err(corrupt(path, offset, reason));
                }
                match self.entries.last() {
                    Some(last) if entry.index == last.index + 1 => {}
                    Some(last) if entry.index <= last.index => {
                        let reason =
                            format!("entry {} does not follow entry {}", entry.index, last.index);
                        return Err(corrupt(path, offset, reason));
                    }
                    // A gap (or the very first entry) starts a new run. It is legal only
                    // if a snapshot marker later covers everything before it, which the
                    // final check verifies: compaction deletes old segments.
                    _ => {
                        self.entries.clear();
                        self.run_start = Some((path.to_path_buf(), offset));
                    }
                }
                self.entries.push(entry);
            }
            Record::Truncate { from } => {
                if from <= self.snapshot_index() {
                    let reason = format!(
                        "truncation at {from} reaches into the snapshot at {}",
                        self.snapshot_index()
                    );
                    return Err(corrupt(path, offset, reason));
                }
                let keep = self.entries.partition_point(|e| e.index < from);
                self.entries.truncate(keep);
            }
            Record::Snapshot { meta, discard_log } => {
                if meta.index < self.snapshot_index() {
                    let reason = format!(
                        "snapshot marker {} is older than {}",
                        meta.index,
                        self.snapshot_index()
                    );
                    return Err(corrupt(path, offset, reason));
                }
                if discard_log {
                    self.entries.clear();
                } else {
                    let drop = self.entries.partition_point(|e| e.index <= meta.index);
                    self.entries.drain(..drop);
                }
                self.snapshot = Some(meta);
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<Recovered> {
        let base = self.snapshot_index();
        if let (Some(first), Some((path, offset))) = (self.entries.first(), &self.run_start)
            && first.index != base + 1
        {
            let reason = format!(
                "the log resumes at entry {} but the snapshot covers only up to {base}: a segment is missing",
                first.index
            );
            return Err(corrupt(path, *offset, reason));
        }
        let mut recovered = Recovered {
            hard_state: self.hard_state,
            snapshot: self.snapshot,
            entries: self.entries,
        };
        // A commit index beyond the durable log would let the core apply entries it
        // does not have; a snapshot is always committed, so it is a floor.
        let commit = recovered.hard_state.commit.min(recovered.last_index());
        recovered.hard_state.commit = commit.max(base);
        Ok(recovered)
    }
}

/// The offset of the first position at or after `from` where a record with a valid
/// checksum starts, if any. Type and length are checked before the checksum, so the
/// scan is cheap on garbage.
fn valid_record_after(data: &[u8], from: usize) -> Option<usize> {
    // No record starts in the zeros at the end (type 0 is not a record type), so a
    // preallocated segment is not scanned byte by byte through megabytes of them.
    let end = data
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |last| last + 1);
    (from..end).find(|&off| {
        matches!(
            codec::decode_record(&data[off..]),
            Frame::Record { .. } | Frame::Undecodable(_)
        )
    })
}

/// Reads every segment in `dir`, cuts a torn tail off the last one and returns the
/// recovered log.
pub(super) fn replay(fs: &dyn Fs, dir: &Path) -> Result<Replayed> {
    let names = fs.list(dir).map_err(Error::io("list", dir))?;
    let mut found: Vec<(u64, u64, PathBuf)> = names
        .iter()
        .filter_map(|name| {
            parse_segment_name(name).map(|(seq, first)| (seq, first, dir.join(name)))
        })
        .collect();
    found.sort();
    let max_seq = found.last().map_or(0, |f| f.0);

    let mut replay = Replay::default();
    let mut segments = Vec::new();
    let mut last_len = 0;
    let count = found.len();
    for (i, (seq, first_index, path)) in found.into_iter().enumerate() {
        let is_last = i + 1 == count;
        // Not the preallocated holes after the last record: they read as zeros.
        let data = fs.read_data(&path).map_err(Error::io("read", &path))?;
        match codec::decode_segment_header(&data) {
            Ok(header) if header.seq == seq && header.first_index == first_index => {}
            Ok(_) => {
                return Err(corrupt(
                    &path,
                    0,
                    "segment header does not match the file name",
                ));
            }
            Err(e) if is_last && valid_record_after(&data, 0).is_none() => {
                // The crash hit while this segment was being created: nothing in it
                // was ever synced, so nothing in it was ever acknowledged.
                tracing::warn!(file = %path.display(), error = %e, "removing a WAL segment whose creation was torn");
                fs.remove(&path).map_err(Error::io("remove", &path))?;
                fs.sync_dir(dir)
                    .map_err(Error::io("fsync directory", dir))?;
                // `last_len` still holds the previous segment's length, which becomes the last.
                break;
            }
            Err(e) => return Err(corrupt(&path, e.offset as u64, e.to_string())),
        }
        let mut segment = Segment {
            seq,
            first_index,
            path: path.clone(),
            max_index: 0,
        };
        let mut pos = SEGMENT_HEADER_LEN;
        while pos < data.len() {
            let bad = match codec::decode_record(&data[pos..]) {
                Frame::Record { record, len } => {
                    if let Record::Entry(e) = &record {
                        segment.max_index = segment.max_index.max(e.index);
                    }
                    replay.apply(record, &path, pos as u64)?;
                    pos += len;
                    continue;
                }
                Frame::Undecodable(e) => {
                    let offset = (pos + RECORD_HEADER_LEN + e.offset) as u64;
                    return Err(corrupt(
                        &path,
                        offset,
                        format!("record checksum is valid but {e}"),
                    ));
                }
                // A preallocated segment: the zeros after the last record are unused space.
                _ if is_last && data[pos..].iter().all(|&b| b == 0) => break,
                Frame::Incomplete => "record cut short",
                Frame::Invalid { reason } => reason,
            };
            if !is_last {
                return Err(corrupt(
                    &path,
                    pos as u64,
                    format!("{bad} in a segment that is not the last"),
                ));
            }
            if let Some(next) = valid_record_after(&data, pos + 1) {
                let reason = format!("{bad}, yet a valid record follows at byte {next}");
                return Err(corrupt(&path, pos as u64, reason));
            }
            tracing::warn!(
                file = %path.display(),
                offset = pos,
                dropped_bytes = data.len() - pos,
                reason = bad,
                "truncating the torn tail of the WAL"
            );
            let mut file = fs.open_append(&path).map_err(Error::io("open", &path))?;
            file.set_len(pos as u64)
                .map_err(Error::io("truncate", &path))?;
            file.sync_data().map_err(Error::io("fdatasync", &path))?;
            break;
        }
        last_len = pos.min(data.len()) as u64;
        segments.push(segment);
    }
    Ok(Replayed {
        recovered: replay.finish()?,
        segments,
        last_len,
        max_seq,
    })
}
