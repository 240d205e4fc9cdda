//! Segment files: naming and creation.

use std::io::Write;
use std::path::{Path, PathBuf};

use kuberaft_raft::{HardState, SnapshotMeta};

use crate::storage::codec::{self, SegmentHeader};
use crate::storage::error::{Error, Result};
use crate::storage::fs::{Fs, FsFile};

/// One segment file of the WAL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub seq: u64,
    pub first_index: u64,
    pub path: PathBuf,
    /// The highest entry index written into this segment (0 if none): once the
    /// compaction point reaches it the whole segment is dead.
    pub max_index: u64,
}

/// `{seq:016x}-{first_index:016x}.wal`: fixed width, so names sort in `seq` order.
pub fn segment_name(seq: u64, first_index: u64) -> String {
    format!("{seq:016x}-{first_index:016x}.wal")
}

/// The `(seq, first_index)` in a segment file name, or `None` for any other file.
pub fn parse_segment_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(".wal")?;
    let (seq, first) = stem.split_once('-')?;
    if seq.len() != 16 || first.len() != 16 {
        return None;
    }
    Some((
        u64::from_str_radix(seq, 16).ok()?,
        u64::from_str_radix(first, 16).ok()?,
    ))
}

/// Creates a segment that starts with its header, the hard state and the latest
/// snapshot marker, extends it to `preallocate` bytes (zeros, when larger), syncs it
/// and then its directory. Only after that may older segments be deleted: the new one
/// carries everything they knew besides entries.
pub fn create_segment(
    fs: &dyn Fs,
    dir: &Path,
    seq: u64,
    first_index: u64,
    hard_state: &HardState,
    snapshot: Option<&SnapshotMeta>,
    preallocate: u64,
) -> Result<(Segment, Box<dyn FsFile>, u64)> {
    let path = dir.join(segment_name(seq, first_index));
    let mut bytes = codec::encode_segment_header(&SegmentHeader { seq, first_index }).to_vec();
    codec::encode_hard_state_record(hard_state, &mut bytes);
    if let Some(meta) = snapshot {
        codec::encode_snapshot_record(meta, false, &mut bytes);
    }
    let mut file = fs.create(&path).map_err(Error::io("create", &path))?;
    file.write_all(&bytes).map_err(Error::io("write", &path))?;
    if preallocate > bytes.len() as u64 {
        file.set_len(preallocate)
            .map_err(Error::io("preallocate", &path))?;
    }
    file.sync_data().map_err(Error::io("fdatasync", &path))?;
    fs.sync_dir(dir)
        .map_err(Error::io("fsync directory", dir))?;
    let segment = Segment {
        seq,
        first_index,
        path,
        max_index: 0,
    };
    Ok((segment, file, bytes.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sort_by_seq() {
        let a = segment_name(9, 1 << 40);
        let b = segment_name(10, 1);
        assert!(a < b);
        assert_eq!(parse_segment_name(&a), Some((9, 1 << 40)));
        assert_eq!(
            parse_segment_name("0000000000000001-0000000000000001.tmp"),
            None
        );
        assert_eq!(parse_segment_name("1-1.wal"), None);
    }
}
