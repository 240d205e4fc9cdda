//! The result of a run, as text for people and JSON for the comparison script.

use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::Workload;

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Fastest.
    pub min_us: u64,
    /// Average.
    pub mean_us: f64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Slowest.
    pub max_us: u64,
}

/// What a run measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Concurrent workers.
    pub clients: usize,
    /// Fraction of writes asked for.
    pub write_ratio: f64,
    /// Bytes per value.
    pub value_size: usize,
    /// Successful operations.
    pub ops: u64,
    /// Failed operations (not in the latencies).
    pub errors: u64,
    /// The first failure, to tell what went wrong.
    pub first_error: Option<String>,
    /// Wall time of the run, in seconds.
    pub elapsed_s: f64,
    /// Successful operations per second.
    pub throughput: f64,
    /// Latency of the successful operations.
    pub latency: Latency,
}

impl Report {
    /// Summarises a run; `histogram` holds microseconds.
    pub fn new(
        workload: &Workload,
        elapsed: Duration,
        histogram: &Histogram<u64>,
        errors: u64,
        first_error: Option<String>,
    ) -> Self {
        let ops = histogram.len();
        let elapsed_s = elapsed.as_secs_f64();
        let latency = if ops == 0 {
            Latency::default()
        } else {
            Latency {
                min_us: histogram.min(),
                mean_us: histogram.mean(),
                p50_us: histogram.value_at_quantile(0.50),
                p90_us: histogram.value_at_quantile(0.90),
                p99_us: histogram.value_at_quantile(0.99),
                p999_us: histogram.value_at_quantile(0.999),
                max_us: histogram.max(),
            }
        };
        Self {
            clients: workload.clients,
            write_ratio: workload.write_ratio,
            value_size: workload.value_size,
            ops,
            errors,
            first_error,
            elapsed_s,
            throughput: if elapsed_s > 0.0 {
                ops as f64 / elapsed_s
            } else {
                0.0
            },
            latency,
        }
    }
}

/// Microseconds as a short human duration: `850µs`, `1.25ms`, `2.50s`.
pub fn show_micros(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.0}µs")
    } else if us < 1_000_000.0 {
        format!("{:.2}ms", us / 1000.0)
    } else {
        format!("{:.2}s", us / 1_000_000.0)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.latency;
        writeln!(
            f,
            "clients {}  writes {:.0}%  value {} B  ops {}  errors {}  elapsed {:.2}s",
            self.clients,
            self.write_ratio * 100.0,
            self.value_size,
            self.ops,
            self.errors,
            self.elapsed_s
        )?;
        writeln!(f, "throughput {:.1} ops/s", self.throughput)?;
        write!(
            f,
            "latency p50 {}  p90 {}  p99 {}  p99.9 {}  (min {}  mean {}  max {})",
            show_micros(l.p50_us as f64),
            show_micros(l.p90_us as f64),
            show_micros(l.p99_us as f64),
            show_micros(l.p999_us as f64),
            show_micros(l.min_us as f64),
            show_micros(l.mean_us),
            show_micros(l.max_us as f64),
        )?;
        if let Some(error) = &self.first_error {
            write!(f, "\nfirst error: {error}")?;
        }
        Ok(())
    }
}
