//! Snapshot store on the simulated filesystem: streaming, checksums, retention, and a
//! crash at every step of writing one never leaves a broken snapshot in place of a good one.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use kuberaft_node::storage::conformance::meta;
use kuberaft_node::storage::fs::{CrashOptions, Fs, SimFs};
use kuberaft_node::storage::{Error, SnapshotStore};

const DIR: &str = "/snap";

fn store(fs: &SimFs, keep: usize) -> SnapshotStore {
    SnapshotStore::open(Arc::new(fs.clone()), DIR, keep).unwrap()
}

/// Deterministic data for snapshot `index`, `len` bytes.
fn data(index: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u64 * 31 + index) as u8).collect()
}

fn write(store: &SnapshotStore, index: u64, len: usize) {
    let mut w = store.writer(meta(index, 1)).unwrap();
    // Odd chunk sizes, so the writer's buffering is exercised across boundaries.
    for chunk in data(index, len).chunks(7_777) {
        w.write_all(chunk).unwrap();
    }
    assert_eq!(w.finish().unwrap(), meta(index, 1));
}

fn read_latest(store: &SnapshotStore) -> Option<(u64, Vec<u8>)> {
    let (meta, file) = store.latest().unwrap()?;
    let mut reader = store.reader(&file).unwrap();
    assert_eq!(reader.meta(), &meta);
    let mut out = Vec::new();
    let mut buf = [0u8; 1000];
    loop {
        let n = reader.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    Some((meta.index, out))
}

#[test]
fn write_read_round_trip_streams_through_small_buffers() {
    let fs = SimFs::new();
    let store = store(&fs, 2);
    assert!(store.latest().unwrap().is_none());
    write(&store, 10, 200_000);
    assert_eq!(read_latest(&store), Some((10, data(10, 200_000))));
    write(&store, 20, 0);
    assert_eq!(read_latest(&store), Some((20, vec![])));
}

#[test]
fn only_the_newest_k_are_kept() {
    let fs = SimFs::new();
    let store = store(&fs, 2);
    for index in [5, 10, 15, 20] {
        write(&store, index, 100);
    }
    let kept: Vec<u64> = store.list().unwrap().iter().map(|f| f.index).collect();
    assert_eq!(kept, vec![20, 15]);
}

#[test]
fn a_corrupt_snapshot_is_detected_and_skipped_for_an_older_one() {
    let fs = SimFs::new();
    let store = store(&fs, 3);
    write(&store, 10, 5000);
    write(&store, 20, 5000);
    let newest = store.list().unwrap().remove(0);
    let mut bytes = fs.contents(&newest.path).unwrap();
    let flip = bytes.len() - 100;
    bytes[flip] ^= 0x10;
    fs.corrupt(&newest.path, bytes).unwrap();

    let err = store.verify(&newest).unwrap_err();
    assert!(matches!(err, Error::CorruptSnapshot { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&newest.path.display().to_string()) && msg.contains("checksum"),
        "{msg}"
    );
    assert_eq!(read_latest(&store), Some((10, data(10, 5000))));

    // A reader fails at the end, never returning a clean EOF over bad data.
    let mut reader = store.reader(&newest).unwrap();
    let err = std::io::copy(&mut reader, &mut std::io::sink()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
}

#[test]
fn a_truncated_snapshot_is_detected() {
    let fs = SimFs::new();
    let store = store(&fs, 3);
    write(&store, 10, 5000);
    let file = store.list().unwrap().remove(0);
    let bytes = fs.contents(&file.path).unwrap();
    fs.corrupt(&file.path, bytes[..bytes.len() - 1].to_vec())
        .unwrap();
    let err = store.verify(&file).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
    fs.corrupt(&file.path, bytes[..20].to_vec()).unwrap();
    let err = store.verify(&file).unwrap_err();
    assert!(
        matches!(err, Error::CorruptSnapshot { offset: 0, .. }),
        "{err}"
    );
    assert_eq!(store.latest().unwrap(), None);
}

#[test]
fn an_aborted_or_dropped_stream_never_replaces_a_good_snapshot() {
    let fs = SimFs::new();
    let store = store(&fs, 1);
    write(&store, 10, 3000);
    let before = store.list().unwrap();

    // The same snapshot arrives again from the leader and breaks off half way, twice.
    let mut w = store.writer(meta(10, 1)).unwrap();
    w.write_all(&[0xff; 1000]).unwrap();
    w.abort().unwrap();
    let mut w = store.writer(meta(30, 1)).unwrap();
    w.write_all(&[0xff; 100_000]).unwrap();
    drop(w);

    assert_eq!(store.list().unwrap(), before);
    assert_eq!(
        fs.list(Path::new(DIR)).unwrap().len(),
        1,
        "a temp file was left behind"
    );
    assert_eq!(read_latest(&store), Some((10, data(10, 3000))));
}

#[test]
fn stale_temp_files_are_removed_at_open() {
    let fs = SimFs::new();
    let store = store(&fs, 1);
    let mut w = store.writer(meta(10, 1)).unwrap();
    w.write_all(&[1; 100]).unwrap();
    w.flush().unwrap();
    fs.sync_dir(Path::new(DIR)).unwrap();
    // The process dies with the writer open.
    std::mem::forget(w);
    fs.crash(CrashOptions::default());
    assert_eq!(fs.list(Path::new(DIR)).unwrap().len(), 1);
    let store = SnapshotStore::open(Arc::new(fs.clone()), DIR, 1).unwrap();
    assert!(fs.list(Path::new(DIR)).unwrap().is_empty());
    assert!(store.latest().unwrap().is_none());
}

#[test]
fn a_crash_at_any_step_of_writing_leaves_the_old_or_the_new_snapshot_intact() {
    let fs = SimFs::new();
    let store = store(&fs, 1);
    write(&store, 10, 150_000);
    fs.record_crash_points(true);
    write(&store, 20, 150_000);
    let images = fs.take_crash_points();
    assert!(images.len() > 5, "too few crash points: {}", images.len());
    let mut saw_new = false;
    for (i, image) in images.iter().enumerate() {
        for seed in 0..4 {
            let opts = CrashOptions {
                seed,
                torn_last_write: seed > 0,
                garbage: seed > 1,
                keep_unsynced_metadata: seed > 2,
            };
            let booted = image.boot(opts);
            let store = SnapshotStore::open(Arc::new(booted), DIR, 1).unwrap();
            match read_latest(&store) {
                Some((10, d)) => assert_eq!(
                    d,
                    data(10, 150_000),
                    "crash point {i}: old snapshot damaged"
                ),
                Some((20, d)) => {
                    assert_eq!(
                        d,
                        data(20, 150_000),
                        "crash point {i}: new snapshot damaged"
                    );
                    saw_new = true;
                }
                other => panic!(
                    "crash point {i} seed {seed}: no good snapshot left: {:?}",
                    other.map(|o| o.0)
                ),
            }
        }
    }
    assert!(saw_new);
    let after_finish = images.last().unwrap().boot(CrashOptions::default());
    let store = SnapshotStore::open(Arc::new(after_finish), DIR, 1).unwrap();
    assert_eq!(
        read_latest(&store).map(|l| l.0),
        Some(20),
        "a finished snapshot was not durable"
    );
}
