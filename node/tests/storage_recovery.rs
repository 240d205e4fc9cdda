//! WAL recovery on damaged files: a torn tail is cut off, anything else is refused with
//! the file and byte offset; plus group commit and fsync-failure behaviour.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kuberaft_node::storage::codec::{self, Frame, SEGMENT_HEADER_LEN};
use kuberaft_node::storage::conformance::{entries, entry};
use kuberaft_node::storage::fs::{CrashOptions, Fs, SimFs};
use kuberaft_node::storage::{DiskLogStore, Error, GroupCommit, LogStore, Wal, WalOptions};
use kuberaft_raft::HardState;

const DIR: &str = "/wal";

/// Opens without preallocation, so that the damage tests can tear a file at its end;
/// the preallocated layout has tests of its own below.
fn open(fs: &SimFs, segment_size: u64) -> kuberaft_node::storage::Result<DiskLogStore> {
    open_with(fs, segment_size, false)
}

fn open_with(
    fs: &SimFs,
    segment_size: u64,
    preallocate: bool,
) -> kuberaft_node::storage::Result<DiskLogStore> {
    DiskLogStore::open(
        Arc::new(fs.clone()),
        DIR,
        WalOptions {
            segment_size,
            preallocate,
        },
    )
}

fn segments(fs: &SimFs) -> Vec<PathBuf> {
    fs.list(Path::new(DIR))
        .unwrap()
        .into_iter()
        .map(|n| Path::new(DIR).join(n))
        .collect()
}

/// Byte offsets of the records in a segment file that holds nothing else.
fn record_offsets(data: &[u8]) -> Vec<usize> {
    let (out, end) = records_until_invalid(data);
    assert_eq!(end, data.len(), "test setup: segment has trailing bytes");
    out
}

/// Byte offsets of the records at the start of a segment file, and where they end.
fn records_until_invalid(data: &[u8]) -> (Vec<usize>, usize) {
    let mut out = Vec::new();
    let mut pos = SEGMENT_HEADER_LEN;
    while let Frame::Record { len, .. } = codec::decode_record(&data[pos..]) {
        out.push(pos);
        pos += len;
    }
    (out, pos)
}

/// One segment holding entries 1..=8 (each synced separately), hard state commit 8.
fn one_segment_log() -> (SimFs, PathBuf) {
    let fs = SimFs::new();
    let mut store = open(&fs, 1 << 20).unwrap();
    for i in 1..=8 {
        store.append(&[entry(i, 1)]).unwrap();
        store.sync().unwrap();
    }
    store
        .set_hard_state(HardState {
            term: 1,
            vote: 1,
            commit: 8,
        })
        .unwrap();
    store.sync().unwrap();
    let path = segments(&fs).remove(0);
    (fs, path)
}

fn expect_corrupt(
    result: kuberaft_node::storage::Result<DiskLogStore>,
    path: &Path,
    offset: u64,
) -> String {
    match result {
        Err(e @ Error::CorruptWal { .. }) => {
            let Error::CorruptWal {
                path: p, offset: o, ..
            } = &e
            else {
                unreachable!()
            };
            assert_eq!((p.as_path(), *o), (path, offset), "wrong location in: {e}");
            let msg = e.to_string();
            assert!(
                msg.contains(&path.display().to_string())
                    && msg.contains(&format!("byte offset {offset}")),
                "{msg}"
            );
            msg
        }
        Err(e) => panic!("expected a corruption error, got {e}"),
        Ok(_) => panic!("recovery accepted a corrupt WAL"),
    }
}

#[test]
fn torn_tail_is_cut_and_the_log_continues() {
    let (fs, path) = one_segment_log();
    let data = fs.contents(&path).unwrap();
    let offsets = record_offsets(&data);
    // Tear the hard-state record (the last one) in half.
    let last = *offsets.last().unwrap();
    fs.corrupt(&path, data[..last + 5].to_vec()).unwrap();
    let mut store = open(&fs, 1 << 20).unwrap();
    assert_eq!(store.last_index(), 8);
    assert_eq!(
        store.hard_state().commit,
        0,
        "a torn hard state was applied"
    );
    assert_eq!(
        fs.contents(&path).unwrap().len(),
        last,
        "the torn tail was not cut off"
    );
    store.append(&entries(9, 10, 2)).unwrap();
    store.sync().unwrap();
    drop(store);
    let store = open(&fs, 1 << 20).unwrap();
    assert_eq!(store.entries(9, 11, None).unwrap(), entries(9, 10, 2));
}

#[test]
fn garbage_and_zeros_at_the_tail_are_cut() {
    for tail in [
        vec![0u8; 4096],
        vec![0xab; 3],
        b"\x05\x00\x00\x00garbage".to_vec(),
    ] {
        let (fs, path) = one_segment_log();
        let mut data = fs.contents(&path).unwrap();
        let valid = data.len();
        data.extend_from_slice(&tail);
        fs.corrupt(&path, data).unwrap();
        let store = open(&fs, 1 << 20).unwrap();
        assert_eq!((store.last_index(), store.hard_state().commit), (8, 8));
        assert_eq!(fs.contents(&path).unwrap().len(), valid);
    }
}

#[test]
fn a_bad_record_followed_by_valid_ones_is_refused() {
    let (fs, path) = one_segment_log();
    let mut data = fs.contents(&path).unwrap();
    let third = record_offsets(&data)[3];
    data[third + 12] ^= 0x40;
    fs.corrupt(&path, data).unwrap();
    let msg = expect_corrupt(open(&fs, 1 << 20), &path, third as u64);
    assert!(
        msg.contains("checksum mismatch") && msg.contains("valid record follows"),
        "{msg}"
    );
}

#[test]
fn a_record_with_a_valid_checksum_but_bad_payload_is_refused_even_at_the_tail() {
    let (fs, path) = one_segment_log();
    let mut data = fs.contents(&path).unwrap();
    let offset = data.len();
    // type 2 (hard state) with one byte: a truncated varint, checksummed correctly.
    let mut record = vec![1, 0, 0, 0, 0, 0, 0, 0, 2, 0x80];
    let crc = crc32c::crc32c_append(crc32c::crc32c(&record[..4]), &record[8..]);
    record[4..8].copy_from_slice(&crc.to_le_bytes());
    data.extend_from_slice(&record);
    fs.corrupt(&path, data).unwrap();
    let msg = expect_corrupt(open(&fs, 1 << 20), &path, offset as u64 + 9);
    assert!(msg.contains("hard_state.term"), "{msg}");
}

/// Several segments: entries 1..=40, synced one by one with 200-byte segments.
fn multi_segment_log() -> (SimFs, Vec<PathBuf>) {
    let fs = SimFs::new();
    let mut store = open(&fs, 200).unwrap();
    for i in 1..=40 {
        store.append(&[entry(i, 1)]).unwrap();
        store.sync().unwrap();
    }
    let segs = segments(&fs);
    assert!(
        segs.len() >= 4,
        "test setup: want several segments, got {}",
        segs.len()
    );
    (fs, segs)
}

#[test]
fn damage_in_a_segment_that_is_not_the_last_is_refused() {
    let (fs, segs) = multi_segment_log();
    let mut data = fs.contents(&segs[1]).unwrap();
    let last_record = *record_offsets(&data).last().unwrap();
    *data.last_mut().unwrap() ^= 1;
    fs.corrupt(&segs[1], data).unwrap();
    let msg = expect_corrupt(open(&fs, 200), &segs[1], last_record as u64);
    assert!(msg.contains("not the last"), "{msg}");
}

#[test]
fn a_short_segment_that_is_not_the_last_is_refused() {
    let (fs, segs) = multi_segment_log();
    let data = fs.contents(&segs[0]).unwrap();
    let last_record = *record_offsets(&data).last().unwrap();
    fs.corrupt(&segs[0], data[..data.len() - 3].to_vec())
        .unwrap();
    expect_corrupt(open(&fs, 200), &segs[0], last_record as u64);
}

#[test]
fn a_missing_segment_is_refused() {
    let (fs, segs) = multi_segment_log();
    fs.remove(&segs[1]).unwrap();
    let err = open(&fs, 200).unwrap_err();
    assert!(matches!(err, Error::CorruptWal { .. }), "{err}");
    assert!(
        err.to_string().contains(&segs[2].display().to_string()),
        "{err}"
    );
}

#[test]
fn a_segment_whose_creation_was_torn_is_removed() {
    let (fs, segs) = multi_segment_log();
    let next = Path::new(DIR).join(kuberaft_node::storage::wal::segment_name(99, 41));
    let mut f = fs.create(&next).unwrap();
    std::io::Write::write_all(&mut f, b"KRWL\x01\x00").unwrap();
    drop(f);
    let mut store = open(&fs, 200).unwrap();
    assert_eq!(store.last_index(), 40);
    assert_eq!(segments(&fs), segs, "the torn segment is still there");
    store.append(&[entry(41, 1)]).unwrap();
    store.sync().unwrap();
    assert_eq!(open(&fs, 200).unwrap().last_index(), 41);
}

#[test]
fn compaction_deletes_dead_segments_only_after_the_marker_is_durable() {
    let (fs, segs) = multi_segment_log();
    let mut store = open(&fs, 200).unwrap();
    let meta = kuberaft_node::storage::conformance::meta(30, 1);
    store.compact(&meta).unwrap();
    assert_eq!(segments(&fs), segs, "deleted before the marker was synced");
    store.sync().unwrap();
    let left = segments(&fs);
    assert!(left.len() < segs.len(), "nothing was deleted");
    assert!(
        store
            .wal()
            .segments()
            .iter()
            .skip(1)
            .all(|s| s.max_index > 30 || s.max_index == 0)
    );
    fs.crash(CrashOptions::default());
    let store = open(&fs, 200).unwrap();
    assert_eq!((store.first_index(), store.last_index()), (31, 40));
    assert_eq!(store.snapshot_meta(), Some(meta));
}

#[test]
fn a_failed_fsync_poisons_the_wal() {
    let fs = SimFs::new();
    let mut store = open(&fs, 1 << 20).unwrap();
    store.append(&[entry(1, 1)]).unwrap();
    fs.fail_next_sync();
    let err = store.sync().unwrap_err();
    assert!(
        matches!(err, Error::Io { .. }) && err.to_string().contains(DIR),
        "{err}"
    );
    assert!(matches!(
        store.append(&[entry(2, 1)]),
        Err(Error::Poisoned(_))
    ));
    assert!(matches!(store.sync(), Err(Error::Poisoned(_))));
    drop(store);
    assert!(
        open(&fs, 1 << 20).is_ok(),
        "a poisoned WAL must be reopenable"
    );
}

#[test]
fn appends_during_an_in_flight_sync_wait_for_the_next_one() {
    let fs = SimFs::new();
    let (mut wal, _) = Wal::open(Arc::new(fs.clone()), DIR, WalOptions::default()).unwrap();
    wal.append(&entries(1, 3, 1)).unwrap();
    let mut batch = wal.begin_sync().unwrap();
    wal.append(&entries(4, 5, 1)).unwrap();
    assert!(matches!(wal.begin_sync(), Err(Error::SyncInFlight)));
    batch.run();
    assert_eq!(wal.finish_sync(batch).unwrap().last_index, 3);
    assert_eq!(wal.durable().last_index, 3);
    assert_eq!(wal.sync().unwrap().last_index, 5);
}

/// Wraps the simulated disk so every fdatasync takes a while, as a real one does.
#[derive(Debug)]
struct SlowSync(SimFs);

#[derive(Debug)]
struct SlowFile(Box<dyn kuberaft_node::storage::fs::FsFile>);

impl std::io::Write for SlowFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl kuberaft_node::storage::fs::FsFile for SlowFile {
    fn write_all_at(&mut self, offset: u64, buf: &[u8]) -> std::io::Result<()> {
        self.0.write_all_at(offset, buf)
    }
    fn set_len(&mut self, len: u64) -> std::io::Result<()> {
        self.0.set_len(len)
    }
    fn sync_data(&mut self) -> std::io::Result<()> {
        // Latency model of a disk, not a wait for a condition.
        std::thread::sleep(std::time::Duration::from_millis(2));
        self.0.sync_data()
    }
}

impl Fs for SlowSync {
    fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
        self.0.create_dir_all(dir)
    }
    fn create(&self, path: &Path) -> std::io::Result<Box<dyn kuberaft_node::storage::fs::FsFile>> {
        Ok(Box::new(SlowFile(self.0.create(path)?)))
    }
    fn open_append(
        &self,
        path: &Path,
    ) -> std::io::Result<Box<dyn kuberaft_node::storage::fs::FsFile>> {
        Ok(Box::new(SlowFile(self.0.open_append(path)?)))
    }
    fn open_read(&self, path: &Path) -> std::io::Result<Box<dyn std::io::Read + Send>> {
        self.0.open_read(path)
    }
    fn list(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        self.0.list(dir)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.0.rename(from, to)
    }
    fn remove(&self, path: &Path) -> std::io::Result<()> {
        self.0.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        self.0.sync_dir(dir)
    }
}

#[test]
fn group_commit_shares_fsyncs_between_threads_and_loses_nothing() {
    let fs = SimFs::new();
    let (wal, _) = Wal::open(
        Arc::new(SlowSync(fs.clone())),
        DIR,
        WalOptions {
            segment_size: 4096,
            ..WalOptions::default()
        },
    )
    .unwrap();
    let group = GroupCommit::new(wal);
    let (threads, per_thread) = (16, 20);
    std::thread::scope(|s| {
        for t in 0..threads {
            let group = &group;
            s.spawn(move || {
                for _ in 0..per_thread {
                    let (index, durable) = group
                        .write(|wal| {
                            let index = wal.last_index() + 1;
                            wal.append(&[entry(index, t + 1)]).map(|()| index)
                        })
                        .unwrap();
                    assert!(
                        durable.last_index >= index,
                        "acknowledged {index} before it was durable"
                    );
                }
            });
        }
    });
    let writes = threads * per_thread;
    let syncs = group.syncs();
    eprintln!("{writes} writes, {syncs} fsync batches");
    assert!(syncs < writes, "no two writes ever shared an fsync");
    fs.crash(CrashOptions::default());
    let (_, recovered) = Wal::open(Arc::new(fs), DIR, WalOptions::default()).unwrap();
    assert_eq!(recovered.entries.len() as u64, writes);
    assert!(
        recovered
            .entries
            .iter()
            .enumerate()
            .all(|(i, e)| e.index == i as u64 + 1)
    );
}

#[test]
fn one_sync_makes_many_appends_durable_with_one_fdatasync() {
    let fs = SimFs::new();
    let mut store = open(&fs, 1 << 20).unwrap();
    let before = fs.stats();
    for i in 1..=100 {
        store.append(&[entry(i, 1)]).unwrap();
    }
    store
        .set_hard_state(HardState {
            term: 1,
            vote: 1,
            commit: 0,
        })
        .unwrap();
    assert_eq!(fs.stats(), before, "appends touched the disk before sync");
    let durable = store.sync().unwrap();
    assert_eq!((durable.last_index, durable.hard_state.vote), (100, 1));
    assert_eq!(fs.stats().syncs - before.syncs, 1);
    assert_eq!(fs.stats().writes - before.writes, 1);
    fs.crash(CrashOptions::default());
    assert_eq!(open(&fs, 1 << 20).unwrap().last_index(), 100);
}

/// Counts WARN events, to check that cutting a torn tail is never silent.
struct WarnCounter(std::sync::atomic::AtomicUsize);

impl tracing::Subscriber for WarnCounter {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if *event.metadata().level() == tracing::Level::WARN {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn cutting_a_torn_tail_logs_a_warning() {
    let (fs, path) = one_segment_log();
    let counter = Arc::new(WarnCounter(Default::default()));
    let warnings = || counter.0.load(std::sync::atomic::Ordering::SeqCst);
    tracing::subscriber::with_default(counter.clone(), || {
        open(&fs, 1 << 20).unwrap();
        assert_eq!(warnings(), 0, "a clean WAL produced a warning");
        let data = fs.contents(&path).unwrap();
        fs.corrupt(&path, data[..data.len() - 1].to_vec()).unwrap();
        open(&fs, 1 << 20).unwrap();
        assert_eq!(warnings(), 1, "the torn tail was cut silently");
    });
}

/// A preallocated segment: entries 1..=8, then zeros up to 64 KiB. Returns where the
/// last record starts and where the zeros begin.
fn preallocated_log() -> (SimFs, PathBuf, usize, usize) {
    let fs = SimFs::new();
    let mut store = open_with(&fs, 64 << 10, true).unwrap();
    for i in 1..=8 {
        store.append(&[entry(i, 1)]).unwrap();
        store.sync().unwrap();
    }
    let path = segments(&fs).remove(0);
    let data = fs.contents(&path).unwrap();
    assert_eq!(
        data.len(),
        64 << 10,
        "test setup: the segment is preallocated"
    );
    let (offsets, end) = records_until_invalid(&data);
    (fs, path, *offsets.last().unwrap(), end)
}

#[test]
fn the_zeros_of_a_preallocated_segment_are_its_end_and_need_no_repair() {
    let (fs, path, _, end) = preallocated_log();
    assert!(fs.contents(&path).unwrap()[end..].iter().all(|&b| b == 0));
    let counter = Arc::new(WarnCounter(Default::default()));
    tracing::subscriber::with_default(counter.clone(), || {
        let mut store = open_with(&fs, 64 << 10, true).unwrap();
        assert_eq!(store.entries(1, 9, None).unwrap(), entries(1, 8, 1));
        // The next record goes right after the last one, not after the zeros.
        store.append(&[entry(9, 2)]).unwrap();
        store.sync().unwrap();
    });
    assert_eq!(
        counter.0.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "unused preallocated space was reported as damage"
    );
    let data = fs.contents(&path).unwrap();
    assert_eq!(data.len(), 64 << 10);
    assert!(matches!(
        codec::decode_record(&data[end..]),
        Frame::Record { .. }
    ));
    let store = open_with(&fs, 64 << 10, true).unwrap();
    assert_eq!(store.last_index(), 9);
}

#[test]
fn a_record_torn_inside_preallocated_space_is_cut() {
    let (fs, path, last, end) = preallocated_log();
    let mut data = fs.contents(&path).unwrap();
    // Half of a record landed before the crash; zeros follow it.
    let half: Vec<u8> = data[last..end][..(end - last) / 2].to_vec();
    data[end..end + half.len()].copy_from_slice(&half);
    fs.corrupt(&path, data).unwrap();
    let counter = Arc::new(WarnCounter(Default::default()));
    tracing::subscriber::with_default(counter.clone(), || {
        let store = open_with(&fs, 64 << 10, true).unwrap();
        assert_eq!(store.last_index(), 8);
    });
    assert_eq!(counter.0.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[test]
fn zeros_then_a_valid_record_are_refused() {
    let (fs, path, last, end) = preallocated_log();
    let mut data = fs.contents(&path).unwrap();
    // A synced record beyond a run of zeros: the bytes between were lost.
    let record = data[last..end].to_vec();
    data[end + 100..end + 100 + record.len()].copy_from_slice(&record);
    fs.corrupt(&path, data).unwrap();
    expect_corrupt(open_with(&fs, 64 << 10, true), &path, end as u64);
}
