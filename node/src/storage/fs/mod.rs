//! The filesystem seam under the WAL and the snapshot store.
//!
//! Storage code talks to disk only through [`Fs`], so the same code runs on the real
//! filesystem ([`RealFs`]) and on [`SimFs`], which models exactly what survives a power
//! cut: synced bytes, namespace changes made durable by a directory fsync, and
//! optionally a torn last write. Crash tests are only as good as this model.

mod real;
mod sim;

use std::fmt::Debug;
use std::io::{self, Read, Write};
use std::path::Path;

pub use real::RealFs;
pub use sim::{CrashImage, CrashOptions, SimFs, SimStats};

/// The few filesystem operations storage needs, each with the durability contract that
/// POSIX gives (and no more), so `SimFs` can punish code that relies on luck.
pub trait Fs: Send + Sync + Debug {
    /// Creates `dir` and its parents, durably (the parents of new directories are fsynced).
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;

    /// Creates (or truncates) `path` for writing; the cursor is at 0. The new name is
    /// durable only after [`Fs::sync_dir`] of its parent.
    fn create(&self, path: &Path) -> io::Result<Box<dyn FsFile>>;

    /// Opens an existing file for writing with the cursor at its end.
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn FsFile>>;

    /// Opens a file for streaming reads.
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn Read + Send>>;

    /// Reads a whole file. WAL segments are bounded in size, so this is fine for them.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.open_read(path)?.read_to_end(&mut out)?;
        Ok(out)
    }

    /// Reads a file up to the end of its last data extent: whatever follows is a hole
    /// and reads as zeros, so it is left out. A preallocated WAL segment (sparse, see
    /// `WalOptions::preallocate`) is then read only as far as it was written. The
    /// default, for filesystems that know no holes, reads the whole file.
    fn read_data(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.read(path)
    }

    /// The names (not paths) of the regular files in `dir`, sorted.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;

    /// Atomically replaces `to` with `from`. Durable only after [`Fs::sync_dir`].
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Unlinks a file. Durable only after [`Fs::sync_dir`].
    fn remove(&self, path: &Path) -> io::Result<()>;

    /// Makes every create, rename and remove in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// An open, writable file.
pub trait FsFile: Write + Send + Debug {
    /// Writes `buf` at `offset` without moving the cursor (for header patch-ups).
    fn write_all_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()>;

    /// Truncates or extends the file; a cursor past the new end moves back to it, so
    /// appends after a truncation leave no hole. Durable after the next
    /// [`FsFile::sync_data`].
    fn set_len(&mut self, len: u64) -> io::Result<()>;

    /// `fdatasync`: every byte written and the file's length are durable on return.
    fn sync_data(&mut self) -> io::Result<()>;
}
