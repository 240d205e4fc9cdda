//! Runs every scenario script in `testdata/` and compares each command's output with the
//! expected text under it. `REWRITE=1 cargo test -p kuberaft-raft --test interaction`
//! writes the actual output back into the scripts instead (then read the diff).

use kuberaft_raft::interaction::{check_dir, testdata_dir};

#[test]
fn scenario_scripts() {
    let rewrite = std::env::var_os("REWRITE").is_some_and(|v| v == "1");
    let results = check_dir(&testdata_dir(), &|_| {}).expect("read testdata/");
    assert!(
        !results.is_empty(),
        "no scripts in {}",
        testdata_dir().display()
    );
    let mut failures = Vec::new();
    for r in &results {
        if rewrite && r.run.rewritten != r.original {
            std::fs::write(&r.path, &r.run.rewritten).expect("rewrite script");
            eprintln!("rewrote {}", r.name);
        }
        let failed = if rewrite {
            !r.run.errors.is_empty()
        } else {
            !r.run.passed()
        };
        if failed {
            failures.push(r.run.report(&r.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} scripts failed:\n\n{}\nIf the new output is right, regenerate with \
         `REWRITE=1 cargo test -p kuberaft-raft --test interaction` and review the diff.",
        failures.len(),
        results.len(),
        failures.join("\n"),
    );
}

/// The mutation gate's view of the scripts: with each known bug re-injected, at least
/// one script must print something else. Run with `--features mutations`.
#[cfg(feature = "mutations")]
#[test]
fn scripts_catch_mutations() {
    use kuberaft_raft::Mutation;
    let mut missed = Vec::new();
    for m in Mutation::ALL {
        let results =
            check_dir(&testdata_dir(), &|c| c.mutation = Some(m)).expect("read testdata/");
        let caught: Vec<&str> = results
            .iter()
            .filter(|r| !r.run.passed())
            .map(|r| r.name.as_str())
            .collect();
        eprintln!(
            "{m:?}: {} of {} scripts changed: {}",
            caught.len(),
            results.len(),
            caught.join(" ")
        );
        if caught.is_empty() {
            missed.push(m);
        }
    }
    assert!(missed.is_empty(), "no script catches {missed:?}");
}
