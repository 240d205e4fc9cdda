//! The storage error type. Every variant that comes from a file names the file and,
//! where it applies, the byte offset, so an operator can find the damage with `xxd`.

use std::io;
use std::path::PathBuf;

use super::codec::DecodeError;

/// `Result` with the storage [`Error`] as its default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong in storage. Variant names double as metric labels.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system call failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A WAL file is damaged somewhere other than its torn tail: the node refuses to
    /// start rather than silently lose or invent acknowledged entries.
    #[error("corrupt WAL file {} at byte offset {offset}: {reason}", path.display())]
    CorruptWal {
        path: PathBuf,
        offset: u64,
        reason: String,
    },

    /// A snapshot file is damaged or does not match its header.
    #[error("corrupt snapshot file {} at byte offset {offset}: {reason}", path.display())]
    CorruptSnapshot {
        path: PathBuf,
        offset: u64,
        reason: String,
    },

    /// A payload failed to decode outside of a file context (e.g. a caller's bytes).
    #[error("decode: {0}")]
    Decode(#[from] DecodeError),

    /// The index lies in the compacted prefix of the log.
    #[error("index {index} is compacted: the log starts after {snapshot_index}")]
    Compacted { index: u64, snapshot_index: u64 },

    /// The index lies beyond the last entry of the log.
    #[error("index {index} is unavailable: the last index is {last_index}")]
    Unavailable { index: u64, last_index: u64 },

    /// An append or snapshot that would break the log's contiguity or its history.
    #[error("invalid log operation: {0}")]
    InvalidOp(String),

    /// A previous sync failed. After a failed fsync the kernel may have dropped dirty
    /// pages, so retrying could report lost data as durable: the WAL must be reopened.
    #[error("WAL is poisoned by an earlier failure: {0}")]
    Poisoned(String),

    /// `begin_sync` was called while another sync batch is still outstanding.
    #[error("a sync batch is already in flight")]
    SyncInFlight,
}

impl Error {
    /// Wraps an `io::Error` with the operation and file it came from.
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }
}
