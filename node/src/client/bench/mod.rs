//! The workload engine behind `raft-bench`: N concurrent workers issue writes and reads
//! of fixed-size keys and values through a [`Driver`] until an op count or a duration is
//! reached, and every latency goes into an HDR histogram. Drivers exist for this
//! client ([`RaftDriver`]) and, in the binary, for etcd, so both systems are measured by
//! the same loop.

mod report;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use tokio::time::Instant;

use super::{Client, ReadConsistency};

pub use self::report::{Latency, Report};

/// One system under test. Errors are strings: the bench only counts and shows them.
pub trait Driver: Send + Sync + 'static {
    /// Writes `value` at `key`.
    fn write(&self, key: Bytes, value: Bytes) -> impl Future<Output = Result<(), String>> + Send;
    /// Reads `key` with the workload's consistency.
    fn read(&self, key: Bytes) -> impl Future<Output = Result<(), String>> + Send;
}

/// When the run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// After this many operations in total.
    Ops(u64),
    /// After this long.
    Duration(Duration),
}

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// Concurrent workers, each with one operation in flight.
    pub clients: usize,
    /// When to stop.
    pub stop: Stop,
    /// Bytes per value (etcd's benchmark uses 256).
    pub value_size: usize,
    /// Bytes per key (etcd's benchmark uses 8).
    pub key_size: usize,
    /// Keys are drawn uniformly from this many distinct keys.
    pub key_space: u64,
    /// Fraction of operations that are writes, 0.0 to 1.0.
    pub write_ratio: f64,
    /// Seed of the per-worker generators, so runs are repeatable.
    pub seed: u64,
}

impl Default for Workload {
    fn default() -> Self {
        Self {
            clients: 1,
            stop: Stop::Ops(10_000),
            value_size: 256,
            key_size: 8,
            key_space: 1000,
            write_ratio: 1.0,
            seed: 1,
        }
    }
}

/// The key for number `n`: decimal, zero-padded or truncated to `size` bytes, so keys are
/// readable and exactly the requested size.
pub fn key(n: u64, size: usize) -> Bytes {
    let digits = format!("{n:0size$}");
    Bytes::from(digits.as_bytes()[digits.len() - size.min(digits.len())..].to_vec())
}

/// A value of `size` bytes. The content does not matter to either system.
pub fn value(size: usize) -> Bytes {
    Bytes::from(vec![b'v'; size])
}

/// Writes every key of the key space once, so reads find values of the right size.
/// Not measured.
pub async fn prefill<D: Driver>(workload: &Workload, drivers: &[Arc<D>]) -> Result<(), String> {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for worker in 0..workload.clients.max(1) {
        let driver = drivers[worker % drivers.len()].clone();
        let (next, workload) = (next.clone(), workload.clone());
        tasks.push(tokio::spawn(async move {
            let value = value(workload.value_size);
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= workload.key_space {
                    return Ok::<(), String>(());
                }
                driver
                    .write(key(n, workload.key_size), value.clone())
                    .await?;
            }
        }));
    }
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// Runs the workload; worker `i` uses `drivers[i % drivers.len()]`.
pub async fn run<D: Driver>(workload: &Workload, drivers: &[Arc<D>]) -> Report {
    assert!(!drivers.is_empty(), "run needs at least one driver");
    let issued = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..workload.clients.max(1) {
        let driver = drivers[worker % drivers.len()].clone();
        let (issued, workload) = (issued.clone(), workload.clone());
        tasks.push(tokio::spawn(async move {
            worker_loop(&workload, worker as u64, &*driver, &issued, started).await
        }));
    }
    let mut total = Tally::default();
    for task in tasks {
        match task.await {
            Ok(tally) => total.merge(tally),
            Err(e) => total.fail(format!("worker panicked: {e}")),
        }
    }
    Report::new(
        workload,
        started.elapsed(),
        &total.histogram,
        total.errors,
        total.first_error,
    )
}

/// What one worker measured.
#[derive(Debug)]
struct Tally {
    histogram: Histogram<u64>,
    errors: u64,
    first_error: Option<String>,
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            // 1 µs to 60 s at 3 significant digits: ~200 KB, exact enough for p99.9.
            histogram: Histogram::new_with_bounds(1, 60_000_000, 3)
                .expect("static histogram bounds are valid"),
            errors: 0,
            first_error: None,
        }
    }
}

impl Tally {
    fn fail(&mut self, error: String) {
        self.errors += 1;
        self.first_error.get_or_insert(error);
    }

    fn merge(&mut self, other: Tally) {
        self.histogram
            .add(&other.histogram)
            .expect("histograms with the same bounds merge");
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

async fn worker_loop<D: Driver>(
    workload: &Workload,
    worker: u64,
    driver: &D,
    issued: &AtomicU64,
    started: Instant,
) -> Tally {
    let mut rng =
        fastrand::Rng::with_seed(workload.seed.wrapping_mul(1_000_003).wrapping_add(worker));
    let value = value(workload.value_size);
    let mut tally = Tally::default();
    loop {
        let more = match workload.stop {
            Stop::Ops(ops) => issued.fetch_add(1, Ordering::Relaxed) < ops,
            Stop::Duration(limit) => started.elapsed() < limit,
        };
        if !more {
            return tally;
        }
        let key = key(rng.u64(0..workload.key_space.max(1)), workload.key_size);
        let write = rng.f64() < workload.write_ratio;
        let begun = Instant::now();
        let result = if write {
            driver.write(key, value.clone()).await
        } else {
            driver.read(key).await
        };
        let micros = begun.elapsed().as_micros().max(1) as u64;
        match result {
            Ok(()) => tally.histogram.saturating_record(micros),
            Err(e) => tally.fail(e),
        }
    }
}

/// The driver for a KubeRaft cluster: this crate's [`Client`].
#[derive(Debug, Clone)]
pub struct RaftDriver {
    /// The client; writes take one of its sessions each.
    pub client: Client,
    /// How reads are served.
    pub consistency: ReadConsistency,
}

impl Driver for RaftDriver {
    async fn write(&self, key: Bytes, value: Bytes) -> Result<(), String> {
        self.client
            .put(key, value)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }

    async fn read(&self, key: Bytes) -> Result<(), String> {
        self.client
            .get(key, self.consistency)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests;
