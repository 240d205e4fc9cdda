//! Fault injection against real `raft-node` processes: a [`Cluster`] the nemesis kills,
//! pauses, restarts and reconfigures; a [`Workload`] of concurrent clients whose every
//! operation is recorded; and the [`verify`] checks run once everything is healed.
//!
//! The seed fixes the nemesis schedule and every client's choices, not the interleaving
//! of real processes: a failing seed is a strong hint, not an exact replay.

mod cluster;
pub mod verify;
mod workload;

use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use cluster::Cluster;
pub use workload::{History, Mix, Workload, client_options as workload_options};

/// The seed of one test: `NEMESIS_SEED` (decimal or `0x` hex) if set, else random. The
/// test name is mixed in so one printed seed reproduces whichever test failed.
pub fn seed(test: &str) -> (u64, u64) {
    let base = match std::env::var("NEMESIS_SEED") {
        Ok(text) => {
            let text = text.trim();
            let parsed = match text.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => text.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("NEMESIS_SEED={text:?} is not a number"))
        }
        Err(_) => fastrand::u64(..),
    };
    let salt = test.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    eprintln!(
        "{test}: NEMESIS_SEED={base} (rerun: NEMESIS_SEED={base} cargo test -p kuberaft-node --test nemesis {test})"
    );
    (base, base ^ salt)
}

/// The nemesis log: every fault and every step of recovery, stamped with the time since
/// the test started, printed as it happens and again if the test fails.
#[derive(Debug)]
pub struct Journal {
    pub start: Instant,
    lines: Mutex<Vec<String>>,
}

impl Journal {
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            lines: Mutex::default(),
        }
    }

    pub fn note(&self, what: impl AsRef<str>) {
        let line = format!(
            "[{:>8.3}s] {}",
            self.start.elapsed().as_secs_f64(),
            what.as_ref()
        );
        eprintln!("nemesis {line}");
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(line);
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Default for Journal {
    fn default() -> Self {
        Self::new()
    }
}

/// Polls `f` until it returns `Some` or `timeout` passes; `None` then. For conditions
/// worth reporting but not worth failing the test on.
pub async fn within<T, F, Fut>(timeout: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Recovery times measured by the nemesis: from a fault to a new leader, or to the next
/// write a client saw acknowledged.
#[derive(Debug, Default)]
pub struct Recoveries {
    rows: Vec<(String, Duration)>,
}

impl Recoveries {
    pub fn push(&mut self, what: impl Into<String>, took: Duration) {
        self.rows.push((what.into(), took));
    }

    /// Prints every measurement and, per kind, the count, median and maximum.
    pub fn report(&self, test: &str, goal: Duration) {
        let mut kinds: Vec<&str> = self.rows.iter().map(|(k, _)| k.as_str()).collect();
        kinds.sort_unstable();
        kinds.dedup();
        for kind in kinds {
            let mut v: Vec<Duration> = self
                .rows
                .iter()
                .filter(|(k, _)| k == kind)
                .map(|(_, d)| *d)
                .collect();
            v.sort_unstable();
            let shown: Vec<String> = v.iter().map(|d| format!("{}ms", d.as_millis())).collect();
            eprintln!(
                "RECOVERY {test}: {kind}: n={} median={}ms max={}ms over-goal({}ms)={} [{}]",
                v.len(),
                v[v.len() / 2].as_millis(),
                v[v.len() - 1].as_millis(),
                goal.as_millis(),
                v.iter().filter(|d| **d > goal).count(),
                shown.join(" ")
            );
        }
    }
}
