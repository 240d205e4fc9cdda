//! An in-memory filesystem that forgets what a power cut would forget.
//!
//! Each file keeps its current bytes (the page cache) and its durable bytes (what the
//! last `sync_data` made safe). Creates, renames and removes go to a per-directory log
//! that only `sync_dir` makes durable. A crash keeps the durable state only, optionally
//! with a torn prefix of the last unsynced write (possibly ending in garbage, as a
//! half-written sector would) and optionally with a random prefix of the unsynced
//! namespace operations (as an ordered metadata journal may have committed them).
//! Crash images can be recorded after every mutating operation so a test can crash a
//! workload at every single step without rerunning it.

use std::collections::BTreeMap;
use std::io::{self, Cursor, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

mod crash;
#[cfg(test)]
mod tests;

pub use crash::{CrashImage, CrashOptions};

use super::{Fs, FsFile};

/// A simulated filesystem. Cloning it gives another handle to the same disk.
#[derive(Clone, Debug, Default)]
pub struct SimFs {
    shared: Arc<Mutex<Shared>>,
}

/// Counters for tests that check how often storage hits the disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    pub writes: u64,
    pub syncs: u64,
    pub dir_syncs: u64,
}

#[derive(Debug, Default)]
struct Shared {
    state: State,
    recording: bool,
    points: Vec<CrashImage>,
    fail_next_sync: bool,
}

#[derive(Clone, Debug, Default)]
struct State {
    /// Bumped by every crash: handles opened before it stop working, like a dead process.
    generation: u64,
    next_ino: u64,
    inodes: BTreeMap<u64, Inode>,
    names: BTreeMap<PathBuf, u64>,
    durable_names: BTreeMap<PathBuf, u64>,
    pending_ns: Vec<NsOp>,
    last_write: Option<LastWrite>,
    stats: SimStats,
}

#[derive(Clone, Debug, Default)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
}

#[derive(Clone, Debug)]
enum NsOp {
    Link {
        path: PathBuf,
        ino: u64,
    },
    Unlink {
        path: PathBuf,
    },
    Rename {
        from: PathBuf,
        to: PathBuf,
        ino: u64,
    },
}

impl NsOp {
    /// The directory whose fsync makes this operation durable.
    fn dir(&self) -> &Path {
        let path = match self {
            NsOp::Link { path, .. } | NsOp::Unlink { path } => path,
            NsOp::Rename { to, .. } => to,
        };
        path.parent().unwrap_or(Path::new(""))
    }

    fn apply(&self, names: &mut BTreeMap<PathBuf, u64>) {
        match self {
            NsOp::Link { path, ino } => {
                names.insert(path.clone(), *ino);
            }
            NsOp::Unlink { path } => {
                names.remove(path);
            }
            NsOp::Rename { from, to, ino } => {
                names.remove(from);
                names.insert(to.clone(), *ino);
            }
        }
    }
}

#[derive(Clone, Debug)]
struct LastWrite {
    ino: u64,
    offset: u64,
    bytes: Vec<u8>,
}

impl SimFs {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Loses power now: everything not durable is handled as `opts` says, and every
    /// open file handle becomes stale.
    pub fn crash(&self, opts: CrashOptions) {
        let image = self.image();
        self.lock().state = image.crashed_state(opts);
    }

    /// The disk as it is now, to be booted after a simulated crash.
    pub fn image(&self) -> CrashImage {
        CrashImage {
            state: self.lock().state.clone(),
        }
    }

    /// Starts or stops saving a [`CrashImage`] after every mutating operation.
    pub fn record_crash_points(&self, on: bool) {
        self.lock().recording = on;
    }

    /// The crash images recorded since the last call, oldest first.
    pub fn take_crash_points(&self) -> Vec<CrashImage> {
        std::mem::take(&mut self.lock().points)
    }

    /// Makes the next `sync_data` fail with EIO and make nothing durable.
    pub fn fail_next_sync(&self) {
        self.lock().fail_next_sync = true;
    }

    pub fn stats(&self) -> SimStats {
        self.lock().state.stats
    }

    /// Current contents of a file, for tests that damage files on purpose.
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        let shared = self.lock();
        let ino = shared.state.names.get(path)?;
        Some(shared.state.inodes[ino].data.clone())
    }

    /// Overwrites a file's current and durable contents, like a disk that rots in place.
    pub fn corrupt(&self, path: &Path, contents: Vec<u8>) -> io::Result<()> {
        let mut shared = self.lock();
        let ino = *shared
            .state
            .names
            .get(path)
            .ok_or_else(|| not_found(path))?;
        let inode = shared
            .state
            .inodes
            .get_mut(&ino)
            .expect("named inode exists");
        inode.data = contents.clone();
        inode.durable = contents;
        Ok(())
    }

    /// Runs a mutating operation, then records a crash image if asked to.
    fn mutate<T>(&self, op: impl FnOnce(&mut State) -> io::Result<T>) -> io::Result<T> {
        let mut shared = self.lock();
        let out = op(&mut shared.state)?;
        if shared.recording {
            let image = CrashImage {
                state: shared.state.clone(),
            };
            shared.points.push(image);
        }
        Ok(out)
    }
}

impl State {
    fn inode(&mut self, ino: u64, generation: u64) -> io::Result<&mut Inode> {
        if generation != self.generation {
            return Err(io::Error::other(
                "stale file handle: the simulated machine crashed",
            ));
        }
        Ok(self
            .inodes
            .get_mut(&ino)
            .expect("open handles keep their inode"))
    }

    fn lookup(&self, path: &Path) -> io::Result<u64> {
        self.names.get(path).copied().ok_or_else(|| not_found(path))
    }

    fn ns(&mut self, op: NsOp) {
        op.apply(&mut self.names);
        self.pending_ns.push(op);
    }

    fn write_at(&mut self, ino: u64, generation: u64, offset: u64, buf: &[u8]) -> io::Result<()> {
        let inode = self.inode(ino, generation)?;
        let (start, end) = (offset as usize, offset as usize + buf.len());
        if inode.data.len() < end {
            inode.data.resize(end, 0);
        }
        inode.data[start..end].copy_from_slice(buf);
        self.stats.writes += 1;
        self.last_write = Some(LastWrite {
            ino,
            offset,
            bytes: buf.to_vec(),
        });
        Ok(())
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such simulated file", path.display()),
    )
}

impl Fs for SimFs {
    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        // Directories are implicit in the model and always durable.
        Ok(())
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let (ino, generation) = self.mutate(|s| {
            let ino = match s.names.get(path) {
                Some(&ino) => {
                    s.inodes
                        .get_mut(&ino)
                        .expect("named inode exists")
                        .data
                        .clear();
                    ino
                }
                None => {
                    s.next_ino += 1;
                    let ino = s.next_ino;
                    s.inodes.insert(ino, Inode::default());
                    s.ns(NsOp::Link {
                        path: path.to_path_buf(),
                        ino,
                    });
                    ino
                }
            };
            Ok((ino, s.generation))
        })?;
        Ok(Box::new(SimFile {
            fs: self.clone(),
            ino,
            generation,
            cursor: 0,
        }))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let shared = self.lock();
        let ino = shared.state.lookup(path)?;
        let cursor = shared.state.inodes[&ino].data.len() as u64;
        let generation = shared.state.generation;
        drop(shared);
        Ok(Box::new(SimFile {
            fs: self.clone(),
            ino,
            generation,
            cursor,
        }))
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn Read + Send>> {
        let shared = self.lock();
        let ino = shared.state.lookup(path)?;
        Ok(Box::new(Cursor::new(
            shared.state.inodes[&ino].data.clone(),
        )))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let shared = self.lock();
        let names = shared
            .state
            .names
            .keys()
            .filter(|p| p.parent() == Some(dir));
        Ok(names
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.mutate(|s| {
            let ino = s.lookup(from)?;
            s.ns(NsOp::Rename {
                from: from.to_path_buf(),
                to: to.to_path_buf(),
                ino,
            });
            Ok(())
        })
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.mutate(|s| {
            s.lookup(path)?;
            s.ns(NsOp::Unlink {
                path: path.to_path_buf(),
            });
            Ok(())
        })
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.mutate(|s| {
            let (now, later): (Vec<NsOp>, Vec<NsOp>) = std::mem::take(&mut s.pending_ns)
                .into_iter()
                .partition(|op| op.dir() == dir);
            now.iter().for_each(|op| op.apply(&mut s.durable_names));
            s.pending_ns = later;
            s.stats.dir_syncs += 1;
            Ok(())
        })
    }
}

/// An open simulated file. It writes through to the shared state at once (the page
/// cache); nothing is durable until `sync_data`.
#[derive(Debug)]
struct SimFile {
    fs: SimFs,
    ino: u64,
    generation: u64,
    cursor: u64,
}

impl Write for SimFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (ino, generation, offset) = (self.ino, self.generation, self.cursor);
        self.fs
            .mutate(|s| s.write_at(ino, generation, offset, buf))?;
        self.cursor += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl FsFile for SimFile {
    fn write_all_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        let (ino, generation) = (self.ino, self.generation);
        self.fs.mutate(|s| s.write_at(ino, generation, offset, buf))
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let (ino, generation) = (self.ino, self.generation);
        self.fs.mutate(|s| {
            s.inode(ino, generation)?.data.resize(len as usize, 0);
            Ok(())
        })?;
        self.cursor = self.cursor.min(len);
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        if std::mem::take(&mut self.fs.lock().fail_next_sync) {
            return Err(io::Error::other("simulated EIO on fdatasync"));
        }
        let (ino, generation) = (self.ino, self.generation);
        self.fs.mutate(|s| {
            let inode = s.inode(ino, generation)?;
            inode.durable = inode.data.clone();
            if s.last_write.as_ref().is_some_and(|w| w.ino == ino) {
                s.last_write = None;
            }
            s.stats.syncs += 1;
            Ok(())
        })
    }
}
