//! The measurement scripts under `scripts/` run and report. Their figures are not
//! checked (speed is measured, never asserted); that they work is.
//!
//! `scripts/bench-vs-etcd.sh` needs etcd and protoc, which CI does not install, so only
//! `scripts/failover.sh` runs here, on this target dir's binaries.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

/// The first of `n` consecutive ports that are free now.
fn free_port_range(n: u16) -> u16 {
    let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
    (20_000..30_000)
        .step_by(usize::from(n))
        .find(|&base| (base..base + n).all(free))
        .expect("a free port range")
}

#[test]
fn failover_kills_the_leader_and_reports_each_stall() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/failover.sh");
    let out = Command::new("bash")
        .arg(&script)
        .env("KILLS", "2")
        .env("BIN_DIR", kuberaft_e2e::bin_dir())
        .env("BASE_PORT", free_port_range(10).to_string())
        .output()
        .expect("running scripts/failover.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "failed:\n{stdout}\n{stderr}");
    // Each round killed the member that led then and timed the stall.
    let rounds: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("round ") && l.contains(": killed leader n"))
        .collect();
    assert_eq!(rounds.len(), 2, "{stdout}");
    for r in &rounds {
        let ms: u64 = r
            .rsplit("stalled ")
            .next()
            .and_then(|t| t.strip_suffix(" ms"))
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("no stall in {r:?}"));
        // No acknowledged write before the kill can be the stall: a new leader needs
        // at least the shortest election timeout (10 ticks of 20 ms).
        assert!(
            ms >= 200,
            "a {ms} ms stall is shorter than any election: {r}"
        );
    }
    assert!(
        stdout.contains("goal 600 ms (longest election timeout + 200 ms); over the goal: "),
        "{stdout}"
    );
    // Bad input is refused before anything starts.
    let out = Command::new("bash")
        .arg(&script)
        .env("KILLS", "none")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("KILLS must be a positive number, not 'none'")
    );
}
