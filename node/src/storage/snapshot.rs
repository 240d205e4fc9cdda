//! Snapshot files: streamed in and out, checksummed, replaced atomically.
//!
//! A snapshot is written to a temp file, fsynced, renamed to its final name and the
//! directory fsynced, so a crash or an aborted stream from the leader leaves either the
//! old set of snapshots or the old set plus one complete new one, never a half file
//! under a real name. Data never sits whole in memory: the writer is `io::Write`, the
//! reader `io::Read`, and the reader checks the CRC32C when it reaches the end.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use kuberaft_raft::SnapshotMeta;

use super::codec::{self, SNAPSHOT_PREFIX_LEN, SnapshotHeader};
use super::error::{Error, Result};
use super::fs::{Fs, FsFile};

/// Writes go to the file in chunks of this size.
const WRITE_CHUNK: usize = 64 << 10;

/// The directory of snapshot files, keeping the newest `keep`.
#[derive(Debug)]
pub struct SnapshotStore {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    keep: usize,
    next_tmp: AtomicU64,
}

/// A complete snapshot file, as named on disk (the header is read on open).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotFile {
    pub index: u64,
    pub term: u64,
    pub path: PathBuf,
}

fn snapshot_name(index: u64, term: u64) -> String {
    format!("{index:020}-{term:020}.snap")
}

fn parse_snapshot_name(name: &str) -> Option<(u64, u64)> {
    let (index, term) = name.strip_suffix(".snap")?.split_once('-')?;
    if index.len() != 20 || term.len() != 20 {
        return None;
    }
    Some((index.parse().ok()?, term.parse().ok()?))
}

fn corrupt(path: &Path, offset: u64, reason: impl Into<String>) -> Error {
    Error::CorruptSnapshot {
        path: path.to_path_buf(),
        offset,
        reason: reason.into(),
    }
}

impl SnapshotStore {
    /// Opens the store and deletes temp files left by interrupted writes.
    pub fn open(fs: Arc<dyn Fs>, dir: impl Into<PathBuf>, keep: usize) -> Result<Self> {
        let dir = dir.into();
        fs.create_dir_all(&dir)
            .map_err(Error::io("create directory", &dir))?;
        let names = fs.list(&dir).map_err(Error::io("list", &dir))?;
        let stale: Vec<_> = names.iter().filter(|n| n.ends_with(".tmp")).collect();
        for name in &stale {
            let path = dir.join(name);
            tracing::warn!(file = %path.display(), "removing a partial snapshot");
            fs.remove(&path).map_err(Error::io("remove", &path))?;
        }
        if !stale.is_empty() {
            fs.sync_dir(&dir)
                .map_err(Error::io("fsync directory", &dir))?;
        }
        Ok(SnapshotStore {
            fs,
            dir,
            keep: keep.max(1),
            next_tmp: AtomicU64::new(0),
        })
    }

    /// Starts writing the snapshot `meta`. Nothing is visible until
    /// [`SnapshotWriter::finish`]; dropping or aborting the writer leaves no trace.
    pub fn writer(&self, meta: SnapshotMeta) -> Result<SnapshotWriter> {
        let n = self.next_tmp.fetch_add(1, Ordering::Relaxed);
        let final_path = self.dir.join(snapshot_name(meta.index, meta.term));
        let tmp_path = self
            .dir
            .join(format!("{}.{n}.tmp", snapshot_name(meta.index, meta.term)));
        let header_len = codec::encode_snapshot_header(&SnapshotHeader {
            meta: meta.clone(),
            data_len: 0,
            data_crc: 0,
        })
        .len();
        let mut file = self
            .fs
            .create(&tmp_path)
            .map_err(Error::io("create", &tmp_path))?;
        // Zeros, not a valid header: a temp file must never look like a snapshot.
        file.write_all(&vec![0; header_len])
            .map_err(Error::io("write", &tmp_path))?;
        Ok(SnapshotWriter {
            fs: self.fs.clone(),
            dir: self.dir.clone(),
            keep: self.keep,
            tmp_path,
            final_path,
            file: Some(file),
            meta,
            buf: Vec::with_capacity(WRITE_CHUNK),
            data_len: 0,
            crc: 0,
        })
    }

    /// Complete snapshot files, newest first.
    pub fn list(&self) -> Result<Vec<SnapshotFile>> {
        list(self.fs.as_ref(), &self.dir)
    }

    /// Opens a snapshot for streaming; the reader fails at the end if the data does
    /// not match its checksum, so a consumer must not commit what it read before EOF.
    pub fn reader(&self, file: &SnapshotFile) -> Result<SnapshotReader> {
        let path = &file.path;
        let mut inner = self.fs.open_read(path).map_err(Error::io("open", path))?;
        let mut header = vec![0; SNAPSHOT_PREFIX_LEN];
        read_header_bytes(&mut inner, &mut header, path)?;
        let len = codec::snapshot_header_len(&header)
            .map_err(|e| corrupt(path, e.offset as u64, e.to_string()))?;
        header.resize(len, 0);
        read_header_bytes(&mut inner, &mut header[SNAPSHOT_PREFIX_LEN..], path)?;
        let (h, _) = codec::decode_snapshot_header(&header)
            .map_err(|e| corrupt(path, e.offset as u64, e.to_string()))?;
        if (h.meta.index, h.meta.term) != (file.index, file.term) {
            return Err(corrupt(
                path,
                0,
                "header metadata does not match the file name",
            ));
        }
        Ok(SnapshotReader {
            path: path.clone(),
            inner,
            meta: h.meta,
            offset: len as u64,
            remaining: h.data_len,
            expected_crc: h.data_crc,
            crc: 0,
        })
    }

    /// Reads a snapshot through to check its checksum.
    pub fn verify(&self, file: &SnapshotFile) -> Result<SnapshotMeta> {
        let mut reader = self.reader(file)?;
        io::copy(&mut reader, &mut io::sink()).map_err(|e| reader.error(e))?;
        Ok(reader.meta)
    }

    /// The newest snapshot that verifies; damaged newer ones are skipped with a warning
    /// (that is why the store keeps more than one).
    pub fn latest(&self) -> Result<Option<(SnapshotMeta, SnapshotFile)>> {
        for file in self.list()? {
            match self.verify(&file) {
                Ok(meta) => return Ok(Some((meta, file))),
                Err(e @ Error::CorruptSnapshot { .. }) => {
                    tracing::warn!(error = %e, "skipping a damaged snapshot");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn list(fs: &dyn Fs, dir: &Path) -> Result<Vec<SnapshotFile>> {
    let names = fs.list(dir).map_err(Error::io("list", dir))?;
    let mut files: Vec<_> = names
        .iter()
        .filter_map(|n| {
            parse_snapshot_name(n).map(|(index, term)| SnapshotFile {
                index,
                term,
                path: dir.join(n),
            })
        })
        .collect();
    files.sort_by_key(|f| std::cmp::Reverse((f.index, f.term)));
    Ok(files)
}

fn read_header_bytes(inner: &mut dyn Read, buf: &mut [u8], path: &Path) -> Result<()> {
    inner.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => corrupt(path, 0, "file ends inside the header"),
        _ => Error::Io {
            op: "read",
            path: path.to_path_buf(),
            source: e,
        },
    })
}

/// Streams one snapshot into a temp file; see [`SnapshotStore::writer`].
#[derive(Debug)]
pub struct SnapshotWriter {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    keep: usize,
    tmp_path: PathBuf,
    final_path: PathBuf,
    /// `None` once finished or aborted.
    file: Option<Box<dyn FsFile>>,
    meta: SnapshotMeta,
    buf: Vec<u8>,
    data_len: u64,
    crc: u32,
}

impl SnapshotWriter {
    fn flush_buf(&mut self) -> io::Result<()> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("snapshot writer already closed"))?;
        file.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    /// Makes the snapshot durable under its final name and prunes old ones. Call it only
    /// once the whole stream has arrived.
    pub fn finish(mut self) -> Result<SnapshotMeta> {
        let tmp = self.tmp_path.clone();
        self.flush_buf().map_err(Error::io("write", &tmp))?;
        let header = SnapshotHeader {
            meta: self.meta.clone(),
            data_len: self.data_len,
            data_crc: self.crc,
        };
        let mut file = self.file.take().expect("flush_buf checked the file");
        file.write_all_at(0, &codec::encode_snapshot_header(&header))
            .map_err(Error::io("write", &tmp))?;
        file.sync_data().map_err(Error::io("fdatasync", &tmp))?;
        drop(file);
        self.fs
            .rename(&tmp, &self.final_path)
            .map_err(Error::io("rename", &tmp))?;
        self.fs
            .sync_dir(&self.dir)
            .map_err(Error::io("fsync directory", &self.dir))?;
        let files = list(self.fs.as_ref(), &self.dir)?;
        if files.len() > self.keep {
            for old in &files[self.keep..] {
                self.fs
                    .remove(&old.path)
                    .map_err(Error::io("remove", &old.path))?;
            }
            self.fs
                .sync_dir(&self.dir)
                .map_err(Error::io("fsync directory", &self.dir))?;
        }
        Ok(self.meta.clone())
    }

    /// Throws the partial snapshot away (a stream from the leader broke off).
    pub fn abort(mut self) -> Result<()> {
        self.file = None;
        self.fs
            .remove(&self.tmp_path)
            .map_err(Error::io("remove", &self.tmp_path))
    }

    /// Data bytes written so far.
    pub fn data_len(&self) -> u64 {
        self.data_len
    }
}

impl Write for SnapshotWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.file.is_none() {
            return Err(io::Error::other("snapshot writer already closed"));
        }
        let n = data.len().min(WRITE_CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        self.crc = crc32c::crc32c_append(self.crc, &data[..n]);
        self.data_len += n as u64;
        if self.buf.len() == WRITE_CHUNK {
            self.flush_buf()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_buf()
    }
}

impl Drop for SnapshotWriter {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            // Best effort: a leftover temp file is also removed at the next open.
            let _ = self.fs.remove(&self.tmp_path);
        }
    }
}

/// Streams a snapshot's data and checks its length and CRC32C at the end.
pub struct SnapshotReader {
    path: PathBuf,
    inner: Box<dyn Read + Send>,
    meta: SnapshotMeta,
    /// File offset of the next byte, for error messages.
    offset: u64,
    remaining: u64,
    expected_crc: u32,
    crc: u32,
}

impl std::fmt::Debug for SnapshotReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotReader")
            .field("path", &self.path)
            .field("meta", &self.meta)
            .field("offset", &self.offset)
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}

impl SnapshotReader {
    pub fn meta(&self) -> &SnapshotMeta {
        &self.meta
    }

    /// Turns an error from `read` into the typed error naming the file and offset.
    pub fn error(&self, e: io::Error) -> Error {
        match e.kind() {
            io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => {
                corrupt(&self.path, self.offset, e.to_string())
            }
            _ => Error::Io {
                op: "read",
                path: self.path.clone(),
                source: e,
            },
        }
    }
}

impl Read for SnapshotReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            if self.crc != self.expected_crc {
                let msg = format!(
                    "data checksum {:08x} != header checksum {:08x}",
                    self.crc, self.expected_crc
                );
                return Err(io::Error::new(io::ErrorKind::InvalidData, msg));
            }
            if self.inner.read(&mut [0u8])? != 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "bytes after the end of the data",
                ));
            }
            return Ok(0);
        }
        let want = buf
            .len()
            .min(self.remaining.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 && want > 0 {
            let msg = format!("file ends with {} data bytes missing", self.remaining);
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, msg));
        }
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        self.remaining -= n as u64;
        self.offset += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let name = snapshot_name(42, 7);
        assert_eq!(parse_snapshot_name(&name), Some((42, 7)));
        assert_eq!(parse_snapshot_name(&format!("{name}.0.tmp")), None);
    }
}
