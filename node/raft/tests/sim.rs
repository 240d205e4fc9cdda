//! The simulator as part of `cargo test`: a fixed range of seeds must show no violation.
//! (CI also runs 300 seeds in release and the mutation gate; see `.ci/run`.)

use kuberaft_raft::sim::{SimOptions, run};

#[test]
fn fixed_seeds_show_no_violation() {
    let opts = SimOptions {
        steps: 1500,
        ..SimOptions::default()
    };
    let mut ops = 0;
    for seed in 0..24 {
        let r = run(seed, &opts);
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
        ops += r.ops;
    }
    assert!(
        ops > 1000,
        "the workload must actually run operations (got {ops})"
    );
}

#[test]
fn a_seed_replays_identically() {
    let opts = SimOptions {
        steps: 800,
        trace: true,
        ..SimOptions::default()
    };
    let (a, b) = (run(7, &opts), run(7, &opts));
    assert_eq!(a.trace, b.trace);
    assert!(a.trace.len() > 100);
}
