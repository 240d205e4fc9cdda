//! [`Fs`] on the real filesystem through `std::fs`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::{Fs, FsFile};

/// The operating system's filesystem. `sync_data` is `fdatasync`; `sync_dir` opens the
/// directory and fsyncs it, which is how Linux makes creates, renames and unlinks durable.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealFs;

impl Fs for RealFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        // A new directory's name is only durable once its parent is fsynced; without
        // that, a power cut after the first acknowledged write could lose the whole WAL.
        let missing: Vec<&Path> = dir
            .ancestors()
            .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
            .collect();
        fs::create_dir_all(dir)?;
        for created in missing {
            if let Some(parent) = created.parent().filter(|p| !p.as_os_str().is_empty()) {
                File::open(parent)?.sync_all()?;
            }
        }
        Ok(())
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Box::new(RealFile { file }))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let mut file = OpenOptions::new().write(true).open(path)?;
        file.seek(SeekFrom::End(0))?;
        Ok(Box::new(RealFile { file }))
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(File::open(path)?))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    #[cfg(target_os = "linux")]
    fn read_data(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut file = File::open(path)?;
        let end = data_end(&file)?;
        file.seek(SeekFrom::Start(0))?;
        let mut out = Vec::with_capacity(usize::try_from(end).unwrap_or(0));
        file.take(end).read_to_end(&mut out)?;
        Ok(out)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file()
                && let Ok(name) = entry.file_name().into_string()
            {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

/// Where the last data extent of `file` ends (`SEEK_DATA`/`SEEK_HOLE`): every byte
/// after it is in a hole. Linux reports a file on a filesystem without holes as one
/// extent, so the answer is then the file's length.
#[cfg(target_os = "linux")]
fn data_end(file: &File) -> io::Result<u64> {
    use rustix::fs::{SeekFrom as Whence, seek};
    let len = file.metadata()?.len();
    let mut end = 0;
    while end < len {
        let data = match seek(file, Whence::Data(end)) {
            Ok(offset) => offset,
            // Nothing but a hole from `end` on.
            Err(rustix::io::Errno::NXIO) => break,
            Err(e) => return Err(e.into()),
        };
        end = seek(file, Whence::Hole(data))?;
    }
    Ok(end.min(len))
}

#[derive(Debug)]
struct RealFile {
    file: File,
}

impl Write for RealFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl FsFile for RealFile {
    fn write_all_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        let cursor = self.file.stream_position()?;
        self.file.seek(SeekFrom::Start(offset))?;
        let written = self.file.write_all(buf);
        self.file.seek(SeekFrom::Start(cursor))?;
        written
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        if self.file.stream_position()? > len {
            self.file.seek(SeekFrom::Start(len))?;
        }
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
}
