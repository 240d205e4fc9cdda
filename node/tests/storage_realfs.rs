//! The same storage on the real filesystem (a temp dir): reopen, torn tail, corruption,
//! group commit from threads and the snapshot store.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::sync::Arc;

use kuberaft_node::storage::codec;
use kuberaft_node::storage::conformance::{entries, entry, meta};
use kuberaft_node::storage::fs::{Fs, RealFs};
use kuberaft_node::storage::{
    DiskLogStore, Error, GroupCommit, LogStore, SnapshotStore, Wal, WalOptions,
};
use kuberaft_raft::HardState;

fn opts() -> WalOptions {
    WalOptions {
        segment_size: 1024,
        ..WalOptions::default()
    }
}

#[test]
fn wal_survives_reopen_and_cuts_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let wal_dir = dir.path().join("wal");
    let mut store = DiskLogStore::open(Arc::new(RealFs), &wal_dir, opts()).unwrap();
    store.append(&entries(1, 100, 1)).unwrap();
    store
        .set_hard_state(HardState {
            term: 1,
            vote: 1,
            commit: 100,
        })
        .unwrap();
    store.sync().unwrap();
    store.append(&entries(101, 101, 1)).unwrap();
    store.sync().unwrap();
    let last_segment = store.wal().segments().last().unwrap().path.clone();
    assert!(
        store.wal().segments().len() > 1,
        "1 KiB segments should have rotated"
    );
    drop(store);

    // Tear the last record: drop its final 3 bytes (the segment is preallocated, so
    // the records end where its zeros begin).
    let bytes = std::fs::read(&last_segment).unwrap();
    let end = bytes.iter().rposition(|&b| b != 0).unwrap() + 1;
    assert!(
        end < bytes.len(),
        "the last segment runs on into preallocated zeros"
    );
    let file = OpenOptions::new().write(true).open(&last_segment).unwrap();
    file.set_len(end as u64 - 3).unwrap();
    drop(file);

    let mut store = DiskLogStore::open(Arc::new(RealFs), &wal_dir, opts()).unwrap();
    assert_eq!(store.last_index(), 100);
    assert_eq!(store.hard_state().commit, 100);
    assert_eq!(store.entries(1, 101, None).unwrap(), entries(1, 100, 1));
    store.append(&entries(101, 102, 2)).unwrap();
    store.sync().unwrap();
    drop(store);
    let store = DiskLogStore::open(Arc::new(RealFs), &wal_dir, opts()).unwrap();
    assert_eq!(store.entries(101, 103, None).unwrap(), entries(101, 102, 2));
}

#[test]
fn segments_are_preallocated_and_closed_segments_are_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let segment_size = 64 << 10;
    let opts = || WalOptions {
        segment_size,
        ..WalOptions::default()
    };
    let file_len = |p: &std::path::Path| std::fs::metadata(p).unwrap().len();
    let mut store = DiskLogStore::open(Arc::new(RealFs), dir.path(), opts()).unwrap();
    let first = store.wal().segments()[0].path.clone();
    assert_eq!(
        file_len(&first),
        segment_size,
        "a new segment is extended at once"
    );
    store.append(&entries(1, 10, 1)).unwrap();
    store.sync().unwrap();
    assert_eq!(
        file_len(&first),
        segment_size,
        "appends land inside the file"
    );
    drop(store);

    // Reopening continues right after the last record, not after the zeros.
    let mut store = DiskLogStore::open(Arc::new(RealFs), dir.path(), opts()).unwrap();
    assert_eq!(store.entries(1, 11, None).unwrap(), entries(1, 10, 1));
    assert_eq!(file_len(&first), segment_size);
    store.append(&entries(11, 20, 1)).unwrap();
    store.sync().unwrap();
    drop(store);
    let mut store = DiskLogStore::open(Arc::new(RealFs), dir.path(), opts()).unwrap();
    assert_eq!(store.entries(1, 21, None).unwrap(), entries(1, 20, 1));

    // Fill past the segment size: the closed segment ends at its last record.
    let mut next = 21;
    while store.wal().segments().len() == 1 {
        store.append(&entries(next, next + 99, 1)).unwrap();
        store.sync().unwrap();
        next += 100;
    }
    let bytes = std::fs::read(&first).unwrap();
    assert_ne!(bytes.last(), Some(&0), "the closed segment keeps no zeros");
    let active = store.wal().segments()[1].path.clone();
    assert_eq!(file_len(&active), segment_size);
    drop(store);
    let store = DiskLogStore::open(Arc::new(RealFs), dir.path(), opts()).unwrap();
    assert_eq!(store.last_index(), next - 1);
    assert_eq!(
        store.entries(1, next, None).unwrap(),
        entries(1, next - 1, 1)
    );
}

#[test]
fn a_segment_preallocated_for_a_larger_size_is_trimmed_when_it_closes() {
    // Created with 64 KiB segments, reopened with 1 KiB ones: the segment rotates while
    // most of its preallocated space is unused. Only the last segment may end in zeros.
    let dir = tempfile::tempdir().unwrap();
    let with_size = |segment_size| WalOptions {
        segment_size,
        ..WalOptions::default()
    };
    let mut store = DiskLogStore::open(Arc::new(RealFs), dir.path(), with_size(64 << 10)).unwrap();
    store.append(&entries(1, 5, 1)).unwrap();
    store.sync().unwrap();
    drop(store);
    let mut store = DiskLogStore::open(Arc::new(RealFs), dir.path(), with_size(1024)).unwrap();
    store.append(&entries(6, 100, 1)).unwrap();
    store.sync().unwrap();
    assert!(
        store.wal().segments().len() > 1,
        "1 KiB segments should have rotated"
    );
    let first = store.wal().segments()[0].path.clone();
    assert!(std::fs::metadata(&first).unwrap().len() < 64 << 10);
    drop(store);
    let store = DiskLogStore::open(Arc::new(RealFs), dir.path(), with_size(1024)).unwrap();
    assert_eq!(store.entries(1, 101, None).unwrap(), entries(1, 100, 1));
}

#[test]
fn recovery_skips_the_holes_of_a_preallocated_segment_but_not_a_record_beyond_them() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || WalOptions {
        segment_size: 64 << 20,
        ..WalOptions::default()
    };
    let mut store = DiskLogStore::open(Arc::new(RealFs), dir.path(), opts()).unwrap();
    store.append(&entries(1, 10, 1)).unwrap();
    store.sync().unwrap();
    let segment = store.wal().segments()[0].path.clone();
    drop(store);

    // The 64 MiB segment is read only as far as it was written.
    let data = RealFs.read_data(&segment).unwrap();
    assert!(
        data.len() < 1 << 20,
        "read {} bytes of a segment holding 10 small entries",
        data.len()
    );
    let store = DiskLogStore::open(Arc::new(RealFs), dir.path(), opts()).unwrap();
    assert_eq!(store.entries(1, 11, None).unwrap(), entries(1, 10, 1));
    drop(store);

    // A valid record far beyond the written part, past a hole, is still seen: zeros
    // followed by a record are damage, not the end of the log.
    let mut record = Vec::new();
    codec::encode_entry_record(&entry(11, 1), &mut record);
    let far = 40u64 << 20;
    let file = OpenOptions::new().write(true).open(&segment).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &record, far).unwrap();
    drop(file);
    assert_eq!(
        RealFs.read_data(&segment).unwrap()[far as usize..][..record.len()],
        record[..]
    );
    let err = DiskLogStore::open(Arc::new(RealFs), dir.path(), opts()).unwrap_err();
    let Error::CorruptWal { path, .. } = &err else {
        panic!("expected CorruptWal, got {err}")
    };
    assert_eq!(path, &segment);
    assert!(
        err.to_string()
            .contains(&format!("valid record follows at byte {far}")),
        "{err}"
    );
}

#[test]
fn mid_log_corruption_refuses_to_start_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = DiskLogStore::open(Arc::new(RealFs), dir.path(), opts()).unwrap();
    store.append(&entries(1, 100, 1)).unwrap();
    store.sync().unwrap();
    let first = store.wal().segments()[0].path.clone();
    drop(store);
    let mut bytes = std::fs::read(&first).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&first, bytes).unwrap();
    let err = DiskLogStore::open(Arc::new(RealFs), dir.path(), opts()).unwrap_err();
    let Error::CorruptWal { path, offset, .. } = &err else {
        panic!("expected CorruptWal, got {err}")
    };
    assert_eq!(path, &first);
    assert!(*offset <= 100, "offset {offset} is past the damage");
    assert!(
        err.to_string().contains(&first.display().to_string()),
        "{err}"
    );
}

#[test]
fn group_commit_from_threads_on_a_real_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(Arc::new(RealFs), dir.path(), WalOptions::default()).unwrap();
    let group = GroupCommit::new(wal);
    std::thread::scope(|s| {
        for t in 0..8u64 {
            let group = &group;
            s.spawn(move || {
                for _ in 0..25 {
                    let (index, durable) = group
                        .write(|wal| {
                            let index = wal.last_index() + 1;
                            wal.append(&[entry(index, t + 1)]).map(|()| index)
                        })
                        .unwrap();
                    assert!(durable.last_index >= index);
                }
            });
        }
    });
    drop(group);
    let (_, recovered) = Wal::open(Arc::new(RealFs), dir.path(), WalOptions::default()).unwrap();
    assert_eq!(recovered.entries.len(), 200);
}

#[test]
fn snapshot_store_on_a_real_disk() {
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(Arc::new(RealFs), dir.path(), 2).unwrap();
    let payload: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    for index in [10, 20, 30] {
        let mut w = store.writer(meta(index, 2)).unwrap();
        for chunk in payload.chunks(65_000) {
            w.write_all(chunk).unwrap();
        }
        w.finish().unwrap();
    }
    let files = store.list().unwrap();
    assert_eq!(
        files.iter().map(|f| f.index).collect::<Vec<_>>(),
        vec![30, 20]
    );

    // A partial stream leaves nothing behind.
    let mut w = store.writer(meta(40, 2)).unwrap();
    w.write_all(&payload[..1000]).unwrap();
    drop(w);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);

    // Damage the newest: `latest` falls back, the reader refuses.
    let mut bytes = std::fs::read(&files[0].path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 1;
    std::fs::write(&files[0].path, bytes).unwrap();
    let (latest, file) = store.latest().unwrap().unwrap();
    assert_eq!(latest, meta(20, 2));
    let mut out = Vec::new();
    store.reader(&file).unwrap().read_to_end(&mut out).unwrap();
    assert_eq!(out, payload);
    assert!(matches!(
        store.verify(&files[0]),
        Err(Error::CorruptSnapshot { .. })
    ));
}
