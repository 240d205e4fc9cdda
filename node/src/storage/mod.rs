//! Durable storage: WAL, hard state, snapshot files and recovery.
//!
//! The Raft core keeps its log in memory and hands the node a `Ready` to persist; the
//! node writes it through a [`LogStore`] (the WAL-backed [`DiskLogStore`] in
//! production, [`MemLogStore`] in tests), fsyncs many Readys at once, and acknowledges
//! only what [`Durable`] reports. At startup [`Wal::open`] returns the [`Recovered`]
//! state for the core. Snapshots live beside the WAL in a [`SnapshotStore`]. All file
//! access goes through [`fs::Fs`], so crash tests can run the same code on [`fs::SimFs`].
//!
//! ```text
//! data dir/
//!   wal/   0000000000000001-0000000000000001.wal ...   (codec: the only format definition)
//!   snap/  00000000000000000100-00000000000000000002.snap ...
//! ```

pub mod codec;
pub mod conformance;
mod disk_log;
mod error;
pub mod fs;
mod log_store;
mod snapshot;
pub mod wal;

pub use disk_log::DiskLogStore;
pub use error::{Error, Result};
pub use log_store::{LogStore, MemLog, MemLogStore};
pub use snapshot::{SnapshotFile, SnapshotReader, SnapshotStore, SnapshotWriter};
pub use wal::{Durable, GroupCommit, Recovered, SyncBatch, Wal, WalOptions};
