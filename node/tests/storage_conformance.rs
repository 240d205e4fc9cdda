//! Both log stores pass the same conformance suite, the on-disk one on the simulated
//! filesystem (with a power cut before every reopen) and on the real one.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use kuberaft_node::storage::fs::{CrashOptions, RealFs, SimFs};
use kuberaft_node::storage::{DiskLogStore, LogStore, MemLogStore, WalOptions, conformance};

/// Tiny segments, so the suite also exercises rotation and segment deletion.
fn opts() -> WalOptions {
    WalOptions {
        segment_size: 300,
        ..WalOptions::default()
    }
}

#[test]
fn mem_store_conforms() {
    conformance::run(MemLogStore::new);
}

#[test]
fn disk_store_on_simulated_fs_conforms_across_power_cuts() {
    let fs = SimFs::new();
    let n = AtomicU64::new(0);
    let new = || {
        let dir = PathBuf::from(format!("/data/{}/wal", n.fetch_add(1, Ordering::Relaxed)));
        DiskLogStore::open(Arc::new(fs.clone()), dir, opts()).unwrap()
    };
    let reopen = |store: DiskLogStore| {
        let dir = store.wal().dir().to_path_buf();
        drop(store);
        let seed = n.fetch_add(1, Ordering::Relaxed);
        fs.crash(CrashOptions {
            seed,
            torn_last_write: true,
            garbage: true,
            keep_unsynced_metadata: true,
        });
        DiskLogStore::open(Arc::new(fs.clone()), dir, opts()).unwrap()
    };
    conformance::run_durable(new, reopen);
}

#[test]
fn disk_store_on_real_fs_conforms() {
    let root = tempfile::tempdir().unwrap();
    let n = AtomicU64::new(0);
    let new = || {
        let dir = root
            .path()
            .join(n.fetch_add(1, Ordering::Relaxed).to_string());
        DiskLogStore::open(Arc::new(RealFs), dir, opts()).unwrap()
    };
    let reopen = |store: DiskLogStore| {
        let dir = store.wal().dir().to_path_buf();
        drop(store);
        DiskLogStore::open(Arc::new(RealFs), dir, opts()).unwrap()
    };
    conformance::run_durable(new, reopen);
}

#[test]
fn suite_catches_a_store_that_forgets_truncation() {
    /// A deliberately broken store: appends never truncate a conflicting suffix.
    #[derive(Default)]
    struct NoTruncate(MemLogStore);
    impl LogStore for NoTruncate {
        fn append(&mut self, e: &[kuberaft_raft::Entry]) -> kuberaft_node::storage::Result<()> {
            match e.first() {
                Some(first) if first.index <= self.0.last_index() => {
                    let skip = (self.0.last_index() + 1 - first.index) as usize;
                    self.0.append(&e[skip.min(e.len())..])
                }
                _ => self.0.append(e),
            }
        }
        fn entries(
            &self,
            lo: u64,
            hi: u64,
            max: Option<u64>,
        ) -> kuberaft_node::storage::Result<Vec<kuberaft_raft::Entry>> {
            self.0.entries(lo, hi, max)
        }
        fn term(&self, i: u64) -> kuberaft_node::storage::Result<u64> {
            self.0.term(i)
        }
        fn first_index(&self) -> u64 {
            self.0.first_index()
        }
        fn last_index(&self) -> u64 {
            self.0.last_index()
        }
        fn snapshot_meta(&self) -> Option<kuberaft_raft::SnapshotMeta> {
            self.0.snapshot_meta()
        }
        fn compact(
            &mut self,
            m: &kuberaft_raft::SnapshotMeta,
        ) -> kuberaft_node::storage::Result<()> {
            self.0.compact(m)
        }
        fn install_snapshot(
            &mut self,
            m: &kuberaft_raft::SnapshotMeta,
        ) -> kuberaft_node::storage::Result<()> {
            self.0.install_snapshot(m)
        }
        fn hard_state(&self) -> kuberaft_raft::HardState {
            self.0.hard_state()
        }
        fn set_hard_state(
            &mut self,
            hs: kuberaft_raft::HardState,
        ) -> kuberaft_node::storage::Result<()> {
            self.0.set_hard_state(hs)
        }
        fn sync(&mut self) -> kuberaft_node::storage::Result<kuberaft_node::storage::Durable> {
            self.0.sync()
        }
    }
    let caught = std::panic::catch_unwind(|| conformance::run(NoTruncate::default));
    assert!(
        caught.is_err(),
        "the suite passed a store that never truncates"
    );
}
