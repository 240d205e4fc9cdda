//! `raft-bench` as a user runs it, against an in-process fake member with a tiny op count.

mod client_support;

use client_support::{Fake, Script};

async fn raft_bench(args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_raft-bench"))
        .args(args)
        .env_remove("RAFT_BENCH_ENDPOINTS")
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn client_bench_writes_against_a_fake_and_reports_json() {
    let fake = Fake::start(Script::default()).await;
    let out = raft_bench(&[
        "--endpoints",
        &fake.addr,
        "--clients",
        "4",
        "--ops",
        "40",
        "--json",
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["target"], "raft");
    assert_eq!(report["ops"], 40);
    assert_eq!(report["errors"], 0);
    assert!(
        report["latency"]["p999_us"].as_u64().unwrap()
            >= report["latency"]["p50_us"].as_u64().unwrap()
    );
    let state = fake.state();
    assert_eq!(state.writes.len(), 40);
    assert_eq!(state.overlapping_writes, 0);
    assert!(
        state
            .kvs
            .values()
            .all(|kv| kv.value.len() == 256 && kv.key.len() == 8)
    );
}

#[tokio::test]
async fn client_bench_mixed_reads_print_a_human_report() {
    let fake = Fake::start(Script::default()).await;
    let out = raft_bench(&[
        "--endpoints",
        &fake.addr,
        "--ops",
        "30",
        "--write-ratio",
        "0",
        "--key-space",
        "5",
        "--consistency",
        "stale",
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "target raft  consistency stale");
    assert!(
        lines[1].starts_with("clients 1  writes 0%  value 256 B  ops 30  errors 0"),
        "{text}"
    );
    assert!(lines[2].starts_with("throughput "), "{text}");
    assert!(lines[3].starts_with("latency p50 "), "{text}");
    // The key space was written first, then only read.
    assert_eq!(fake.count("put"), 5);
    assert_eq!(fake.count("get"), 30);
}

#[tokio::test]
async fn client_bench_fails_when_nothing_answers() {
    let out = raft_bench(&[
        "--endpoints",
        "127.0.0.1:9",
        "--ops",
        "2",
        "--timeout",
        "200ms",
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no operation succeeded"));
    let out = raft_bench(&["--endpoints", "127.0.0.1:9", "--target", "nope"]).await;
    assert_eq!(out.status.code(), Some(2));
}
