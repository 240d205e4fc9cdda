//! WAL benchmark: append + fdatasync throughput and latency with 1, 8 and 64 proposer
//! threads sharing one group-committing WAL (256-byte entries), printed beside a raw
//! probe of this disk (4 KiB append + fdatasync in a loop), so the table shows how close
//! group commit gets to the physical limit. Then recovery: opening a WAL whose one
//! preallocated 64 MiB segment holds about 6 MB of entries, as a restarting member does.
//!
//! `cargo bench -p kuberaft-node --bench wal`. Files go to `KUBERAFT_BENCH_DIR` or the
//! target's tmp dir (on the real disk, not tmpfs, which would make fsync free).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use kuberaft_node::storage::fs::RealFs;
use kuberaft_node::storage::{GroupCommit, Wal, WalOptions};
use kuberaft_raft::{Entry, EntryPayload};

const ENTRY_BYTES: usize = 256;
const PROPOSERS: [usize; 3] = [1, 8, 64];

fn bench_dir() -> tempfile::TempDir {
    let base = std::env::var_os("KUBERAFT_BENCH_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")), PathBuf::from);
    std::fs::create_dir_all(&base).unwrap();
    tempfile::tempdir_in(base).unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The disk's own limit: one 4 KiB append + fdatasync at a time.
fn raw_fsync_probe(iterations: usize) -> Vec<Duration> {
    let dir = bench_dir();
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("probe"))
        .unwrap();
    let block = [0x5au8; 4096];
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let start = Instant::now();
        file.write_all(&block).unwrap();
        file.sync_data().unwrap();
        samples.push(start.elapsed());
    }
    samples.sort();
    samples
}

#[derive(Default)]
struct Stats {
    latencies: Vec<Duration>,
    writes: u64,
    syncs: u64,
    elapsed: Duration,
}

/// `proposers` threads submit `total` entries in all to a fresh group-committing WAL;
/// returns the wall time.
fn run_proposers(proposers: usize, total: usize, stats: &Mutex<Stats>) -> Duration {
    let dir = bench_dir();
    let (wal, _) = Wal::open(Arc::new(RealFs), dir.path(), WalOptions::default()).unwrap();
    let group = GroupCommit::new(wal);
    let per_thread = total.div_ceil(proposers);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..proposers {
            let group = &group;
            s.spawn(move || {
                let mut latencies = Vec::with_capacity(per_thread);
                for _ in 0..per_thread {
                    let t = Instant::now();
                    let (index, durable) = group
                        .write(|wal| {
                            let index = wal.last_index() + 1;
                            let payload = EntryPayload::Normal(vec![index as u8; ENTRY_BYTES]);
                            let entry = Entry {
                                term: 1,
                                index,
                                payload,
                            };
                            wal.append(&[entry]).map(|()| index)
                        })
                        .unwrap();
                    assert!(durable.last_index >= index, "acknowledged before durable");
                    latencies.push(t.elapsed());
                }
                stats.lock().unwrap().latencies.extend(latencies);
            });
        }
    });
    let elapsed = start.elapsed();
    let mut st = stats.lock().unwrap();
    st.writes += (per_thread * proposers) as u64;
    st.syncs += group.syncs();
    st.elapsed += elapsed;
    elapsed
}

/// Entries in the recovery benchmark's WAL: about 6 MB, a tenth of one segment.
const RECOVERY_ENTRIES: u64 = 20_000;

/// A WAL in a fresh directory holding `entries` 256-byte entries, synced.
fn written_wal(entries: u64) -> tempfile::TempDir {
    let dir = bench_dir();
    let (mut wal, _) = Wal::open(Arc::new(RealFs), dir.path(), WalOptions::default()).unwrap();
    let batch: Vec<Entry> = (1..=entries)
        .map(|index| Entry {
            term: 1,
            index,
            payload: EntryPayload::Normal(vec![index as u8; ENTRY_BYTES]),
        })
        .collect();
    for chunk in batch.chunks(1000) {
        wal.append(chunk).unwrap();
    }
    wal.sync().unwrap();
    dir
}

fn main() {
    // `cargo bench` passes --bench; under `cargo test --benches` run a smoke version.
    let full = std::env::args().any(|a| a == "--bench");
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args();

    // The disk's latency drifts (shared virtual disks especially), so the probe runs
    // right before each row and the row is compared with its own probe.
    let probe_runs = if full { 200 } else { 5 };
    let mut results = Vec::new();
    let mut group = c.benchmark_group("wal_append_fsync");
    for proposers in PROPOSERS {
        let probe = raw_fsync_probe(probe_runs);
        // Enough writes per iteration that every proposer waits on several fsyncs.
        let per_iter = (proposers * 8).max(64);
        let stats = Mutex::new(Stats::default());
        group.throughput(Throughput::Elements(per_iter as u64));
        group.bench_function(BenchmarkId::new("proposers", proposers), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| run_proposers(proposers, per_iter, &stats))
                    .sum()
            })
        });
        results.push((proposers, probe, stats.into_inner().unwrap()));
    }
    group.finish();

    let entries = if full { RECOVERY_ENTRIES } else { 100 };
    let dir = written_wal(entries);
    let mut group = c.benchmark_group("wal_recovery");
    group.throughput(Throughput::Elements(entries));
    group.bench_function(BenchmarkId::new("entries", entries), |b| {
        b.iter(|| {
            let (_, recovered) =
                Wal::open(Arc::new(RealFs), dir.path(), WalOptions::default()).unwrap();
            assert_eq!(recovered.last_index(), entries);
        })
    });
    group.finish();
    c.final_summary();

    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!();
    println!("raw probe = 4 KiB append + fdatasync, {probe_runs} runs just before each row");
    println!();
    println!(
        "| proposers | entries/s | p50 latency | p99 latency | entries/fsync | raw fsync p50 / p99 | raw fsync/s | entries/s vs raw fsync/s |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (proposers, probe, mut st) in results {
        st.latencies.sort();
        let rate = st.writes as f64 / st.elapsed.as_secs_f64().max(1e-9);
        let raw_p50 = percentile(&probe, 0.5).as_secs_f64().max(1e-9);
        println!(
            "| {proposers} | {rate:.0} | {:.0} µs | {:.0} µs | {:.1} | {:.0} / {:.0} µs | {:.0} | {:.2}x |",
            us(percentile(&st.latencies, 0.5)),
            us(percentile(&st.latencies, 0.99)),
            st.writes as f64 / st.syncs.max(1) as f64,
            raw_p50 * 1e6,
            us(percentile(&probe, 0.99)),
            1.0 / raw_p50,
            rate * raw_p50,
        );
    }
}
