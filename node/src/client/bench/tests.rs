use std::sync::Mutex;

use super::report::show_micros;
use super::*;

#[test]
fn client_bench_keys_and_values_have_the_requested_sizes() {
    assert_eq!(key(42, 8).as_ref(), b"00000042");
    assert_eq!(key(123_456_789, 4).as_ref(), b"6789");
    assert_eq!(value(256).len(), 256);
}

#[test]
fn client_bench_report_reads_percentiles_from_the_histogram() {
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    for us in 1..=1000 {
        histogram.record(us).unwrap();
    }
    let workload = Workload {
        clients: 4,
        ..Workload::default()
    };
    let report = Report::new(
        &workload,
        Duration::from_secs(2),
        &histogram,
        3,
        Some("boom".into()),
    );
    assert_eq!(report.ops, 1000);
    assert_eq!(report.throughput, 500.0);
    assert_eq!(
        (
            report.latency.p50_us,
            report.latency.p90_us,
            report.latency.p99_us,
            report.latency.p999_us
        ),
        (500, 900, 990, 999)
    );
    assert_eq!(
        report.to_string(),
        "clients 4  writes 100%  value 256 B  ops 1000  errors 3  elapsed 2.00s\n\
         throughput 500.0 ops/s\n\
         latency p50 500µs  p90 900µs  p99 990µs  p99.9 999µs  (min 1µs  mean 500µs  max 1.00ms)\n\
         first error: boom"
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["latency"]["p99_us"], 990);
    assert_eq!(json["errors"], 3);
}

#[test]
fn client_bench_shows_micros_in_readable_units() {
    assert_eq!(show_micros(850.0), "850µs");
    assert_eq!(show_micros(1250.0), "1.25ms");
    assert_eq!(show_micros(2_500_000.0), "2.50s");
}

/// Counts what it is asked to do; fails every `fail_every`-th call.
#[derive(Debug, Default)]
struct Counting {
    writes: Mutex<Vec<Bytes>>,
    reads: Mutex<u64>,
    fail_every: u64,
}

impl Driver for Counting {
    async fn write(&self, key: Bytes, value: Bytes) -> Result<(), String> {
        assert_eq!(value.len(), 16);
        let mut writes = self.writes.lock().unwrap();
        writes.push(key);
        match self.fail_every {
            n if n > 0 && (writes.len() as u64).is_multiple_of(n) => Err("scripted".into()),
            _ => Ok(()),
        }
    }

    async fn read(&self, _key: Bytes) -> Result<(), String> {
        *self.reads.lock().unwrap() += 1;
        Ok(())
    }
}

#[tokio::test]
async fn client_bench_runs_exactly_the_op_count_and_counts_errors() {
    let driver = Arc::new(Counting {
        fail_every: 10,
        ..Counting::default()
    });
    let workload = Workload {
        clients: 7,
        stop: Stop::Ops(100),
        value_size: 16,
        key_size: 4,
        key_space: 10,
        write_ratio: 1.0,
        seed: 3,
    };
    let report = run(&workload, std::slice::from_ref(&driver)).await;
    assert_eq!(report.ops + report.errors, 100);
    assert_eq!(report.errors, 10);
    assert_eq!(report.first_error.as_deref(), Some("scripted"));
    assert!(driver.writes.lock().unwrap().iter().all(|k| k.len() == 4));
}

#[tokio::test]
async fn client_bench_mixes_reads_and_writes_and_prefills_the_key_space() {
    let driver = Arc::new(Counting::default());
    let workload = Workload {
        clients: 3,
        stop: Stop::Ops(1000),
        value_size: 16,
        key_space: 50,
        write_ratio: 0.25,
        ..Workload::default()
    };
    prefill(&workload, std::slice::from_ref(&driver))
        .await
        .unwrap();
    let mut keys = driver.writes.lock().unwrap().clone();
    keys.sort();
    assert_eq!(keys, (0..50).map(|n| key(n, 8)).collect::<Vec<_>>());
    driver.writes.lock().unwrap().clear();

    let report = run(&workload, std::slice::from_ref(&driver)).await;
    let writes = driver.writes.lock().unwrap().len() as u64;
    let reads = *driver.reads.lock().unwrap();
    assert_eq!((report.ops, writes + reads), (1000, 1000));
    assert!(
        (150..350).contains(&writes),
        "about a quarter are writes: {writes}"
    );
}
