//! The simulation runner.
//!
//! ```text
//! cargo run -p kuberaft-raft --release --example sim -- --seeds 1000
//! cargo run -p kuberaft-raft --release --example sim -- --seed 42          # replay with a trace
//! cargo run -p kuberaft-raft --release --features mutations --example sim -- --mutations
//! ```
//!
//! Prints one summary line, `sim: seeds=N steps=S ops=O violations=V`, and exits non-zero
//! when any seed violates an invariant.

use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use kuberaft_raft::sim::{SimOptions, SimReport, run};

struct Args {
    seeds: u64,
    first: u64,
    seed: Option<u64>,
    steps: u64,
    threads: usize,
    mutations: bool,
    scripts: String,
}

const USAGE: &str = "usage: sim [--seeds N] [--first S] [--seed S] [--steps N] [--threads N] \
                     [--mutations [--scripts DIR]]";

fn parse() -> Result<Args, String> {
    let mut a = Args {
        seeds: 100,
        first: 0,
        seed: None,
        steps: SimOptions::default().steps,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        mutations: false,
        scripts: concat!(env!("CARGO_MANIFEST_DIR"), "/testdata").to_string(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        let num = |name: &str, v: String| {
            v.parse::<u64>()
                .map_err(|e| format!("{name}: `{v}` is not a number ({e})\n{USAGE}"))
        };
        match flag.as_str() {
            "--seeds" => a.seeds = num("--seeds", value("--seeds")?)?,
            "--first" => a.first = num("--first", value("--first")?)?,
            "--seed" => a.seed = Some(num("--seed", value("--seed")?)?),
            "--steps" => a.steps = num("--steps", value("--steps")?)?,
            "--threads" => a.threads = num("--threads", value("--threads")?)?.max(1) as usize,
            "--scripts" => a.scripts = value("--scripts")?,
            "--mutations" => a.mutations = true,
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown flag `{other}`\n{USAGE}")),
        }
    }
    Ok(a)
}

/// Runs seeds `first..first + count` on `threads` threads; stops early after the first
/// violation when `stop_early`.
fn run_seeds(
    opts: &SimOptions,
    first: u64,
    count: u64,
    threads: usize,
    stop_early: bool,
) -> Vec<SimReport> {
    let next = AtomicU64::new(first);
    let reports = Mutex::new(Vec::new());
    let failed = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= first + count || (stop_early && failed.load(Ordering::Relaxed)) {
                        return;
                    }
                    let r = run(seed, opts);
                    if !r.violations.is_empty() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    reports
                        .lock()
                        .expect("no panics while holding the lock")
                        .push(r);
                }
            });
        }
    });
    let mut v = reports.into_inner().expect("threads joined");
    v.sort_by_key(|r| r.seed);
    v
}

fn summarize(reports: &[SimReport]) -> u64 {
    let steps: u64 = reports.iter().map(|r| r.steps).sum();
    let ops: u64 = reports.iter().map(|r| r.ops).sum();
    let bad: Vec<&SimReport> = reports
        .iter()
        .filter(|r| !r.violations.is_empty())
        .collect();
    for r in &bad {
        eprintln!("seed {}: {}", r.seed, r.violations.join("; "));
    }
    println!(
        "sim: seeds={} steps={steps} ops={ops} violations={}",
        reports.len(),
        bad.len()
    );
    bad.len() as u64
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let opts = SimOptions {
        steps: args.steps,
        ..SimOptions::default()
    };
    if args.mutations {
        return mutations(&args, &opts);
    }
    if let Some(seed) = args.seed {
        let r = run(
            seed,
            &SimOptions {
                trace: true,
                ..opts
            },
        );
        for line in &r.trace {
            println!("{line}");
        }
        return if summarize(&[r]) == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    let reports = run_seeds(&opts, args.first, args.seeds, args.threads, false);
    if summarize(&reports) == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(not(feature = "mutations"))]
fn mutations(_: &Args, _: &SimOptions) -> ExitCode {
    eprintln!(
        "--mutations needs the `mutations` feature:\n  cargo run -p kuberaft-raft --release \
         --features mutations --example sim -- --mutations"
    );
    ExitCode::from(2)
}

/// The mutation gate: every known bug must be caught by the scenario scripts or the
/// simulator, or the gate fails.
#[cfg(feature = "mutations")]
fn mutations(args: &Args, opts: &SimOptions) -> ExitCode {
    use std::path::Path;

    use kuberaft_raft::Mutation;
    use kuberaft_raft::interaction;

    let mut caught = 0;
    for m in Mutation::ALL {
        let hook = |c: &mut kuberaft_raft::Config| c.mutation = Some(m);
        let scripts: Vec<String> = match interaction::check_dir(Path::new(&args.scripts), &hook) {
            Ok(results) => results
                .into_iter()
                .filter(|r| !r.run.passed())
                .map(|r| r.name)
                .collect(),
            Err(e) => {
                eprintln!("cannot run the scripts in {}: {e}", args.scripts);
                return ExitCode::from(2);
            }
        };
        let sim_opts = SimOptions {
            mutation: Some(m),
            ..opts.clone()
        };
        let reports = run_seeds(&sim_opts, args.first, args.seeds, args.threads, true);
        let bad: Vec<&SimReport> = reports
            .iter()
            .filter(|r| !r.violations.is_empty())
            .collect();
        let by_sim = bad
            .first()
            .map(|r| format!("seed {}: {}", r.seed, r.violations[0]));
        let ok = !scripts.is_empty() || by_sim.is_some();
        caught += u32::from(ok);
        println!(
            "mutation {m:?}: {} (scripts changed: {}; simulator: {})",
            if ok { "caught" } else { "MISSED" },
            if scripts.is_empty() {
                "none".to_string()
            } else {
                scripts.join(", ")
            },
            by_sim.unwrap_or_else(|| format!("no violation in {} seeds", reports.len())),
        );
    }
    println!("mutations: caught={caught} total={}", Mutation::ALL.len());
    if caught as usize == Mutation::ALL.len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
