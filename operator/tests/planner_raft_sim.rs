//! The planner drives a simulated StatefulSet and REAL in-process `kuberaft-raft` cores
//! (see `raft_world`). Between any two steps the nemesis scales, upgrades, asks for
//! snapshots, pauses, kills pods, loses volumes, isolates nodes, hides pods from the
//! operator and crashes the operator, while a client writes. Checked: no operator step
//! takes away the majority of running voters, nor of running and caught-up ones, and no
//! membership change happens without a running majority, in joint consensus or beside
//! another learner; no volume of a voter is deleted; the cores keep Election and State
//! Machine Safety with at most one membership change in flight; every committed write
//! survives on every voter; once the faults stop the cluster converges to `spec.replicas`
//! voters on the current template.
//!
//! `RAFT_SIM_SEED=S` reruns one seed (`RAFT_SIM_TRACE=1` prints its trace as it goes);
//! `RAFT_SIM_SEEDS=N` and `RAFT_SIM_FIRST_SEED=F` choose how many seeds run, from where.

mod raft_world;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use kuberaft_operator::planner::Step;
use raft_world::{Crash, Fault, World};

/// Actions (a reconcile or a fault, with time passing before each) per seed.
const STEPS: usize = 300;
const SEEDS: u64 = 200;
/// Reconciles the cluster gets to converge once the faults stop.
const LIVENESS: usize = 400;
/// Trace lines printed with a failure.
const TAIL: usize = 40;

fn env(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.parse().ok()
}

/// One seed: faults and reconciles, then healing and convergence.
fn run(seed: u64, echo: bool) -> Result<World, Box<World>> {
    let mut w = World::new(seed, 1 + (seed % 5) as u32);
    w.echo = echo;
    for step in 0..STEPS {
        let t = w.rng.range(1, 4);
        w.ticks(t);
        if w.rng.chance(600) {
            let crash = match w.rng.range(0, 100) {
                0..8 => Crash::AfterStep,
                8..15 => Crash::MidCall,
                _ => Crash::No,
            };
            w.reconcile(crash);
        } else {
            let f = w.random_fault();
            w.inject(f);
        }
        if step % 20 == 19 {
            w.check_writes(false);
        }
        if !w.checker.violations.is_empty() {
            return Err(Box::new(w));
        }
    }
    w.heal();
    if let Err(why) = w.settle(LIVENESS) {
        w.checker.violations.push(format!("liveness: {why}"));
        return Err(Box::new(w));
    }
    Ok(w)
}

fn report(w: &World) -> String {
    format!(
        "seed {} failed at tick {}:\n  {}\nlast {TAIL} trace lines:\n{}\nstate:\n{}(rerun: RAFT_SIM_SEED={} RAFT_SIM_TRACE=1)",
        w.seed,
        w.now,
        w.checker.violations.join("\n  "),
        w.tail(TAIL),
        w.dump(),
        w.seed
    )
}

#[test]
fn planner_keeps_real_raft_cores_safe_under_faults() {
    if let Some(seed) = env("RAFT_SIM_SEED") {
        let echo = std::env::var("RAFT_SIM_TRACE").is_ok_and(|v| v == "1");
        match run(seed, echo) {
            Ok(w) => eprintln!(
                "seed {seed}: ok after {} ticks, {} committed writes",
                w.now,
                w.checker.writes.len()
            ),
            Err(w) => panic!("{}", report(&w)),
        }
        return;
    }
    let first = env("RAFT_SIM_FIRST_SEED").unwrap_or(0);
    let count = env("RAFT_SIM_SEEDS").unwrap_or(SEEDS);
    let next = AtomicU64::new(first);
    let failures = Mutex::new(Vec::new());
    let stats = Mutex::new((0u64, 0usize));
    let started = Instant::now();
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(8));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= first + count {
                        return;
                    }
                    match run(seed, false) {
                        Ok(w) => {
                            let mut st = stats.lock().unwrap();
                            st.0 += w.now;
                            st.1 += w.checker.writes.len();
                        }
                        Err(w) => {
                            let first = w.checker.violations[0].lines().next().unwrap_or("");
                            let line = format!("seed {seed}: {first}");
                            failures.lock().unwrap().push((seed, line, report(&w)));
                        }
                    }
                }
            });
        }
    });
    let (ticks, writes) = *stats.lock().unwrap();
    eprintln!(
        "{count} seeds from {first} in {:.1?}: {ticks} ticks, {writes} committed writes",
        started.elapsed()
    );
    let mut failures = failures.into_inner().unwrap();
    failures.sort();
    if !failures.is_empty() {
        let lines: Vec<&str> = failures.iter().map(|(_, l, _)| l.as_str()).collect();
        panic!(
            "{} of {count} seeds failed:\n{}\n\n{}",
            failures.len(),
            lines.join("\n"),
            failures[0].2
        );
    }
}

fn settle(w: &mut World, budget: usize) {
    if let Err(why) = w.settle(budget) {
        panic!(
            "{why}\n{}\n{}",
            w.checker.violations.join("\n"),
            w.tail(TAIL)
        );
    }
}

/// A scripted walk through the main operations on a calm cluster.
#[test]
fn grows_replaces_a_lost_volume_upgrades_and_shrinks() {
    let mut w = World::new(7, 3);
    settle(&mut w, 200);
    let lost = w.pvcs[&1].volume.node_id;
    w.inject(Fault::LoseVolume(1));
    settle(&mut w, 200);
    assert_ne!(w.pvcs[&1].volume.node_id, lost, "pod 1 runs a new node");
    assert!(w.trace.iter().any(|l| l.contains("ReplaceMember")));
    w.inject(Fault::Scale(5));
    w.inject(Fault::Image);
    w.inject(Fault::Snapshot(1));
    settle(&mut w, 400);
    w.inject(Fault::Scale(1));
    settle(&mut w, 300);
    assert!(w.checker.writes.len() > 50, "the client kept writing");
}

/// A learner that cannot replicate (cut off from the leader from the start: a wrong peer
/// address, a TLS or network-policy mistake) must not be promoted: the configuration would
/// then need it to commit anything. In a young cluster, whose log is shorter than the
/// catch-up lag, its lag is within the threshold although it holds nothing.
#[test]
fn a_learner_that_replicated_nothing_is_not_promoted() {
    let mut w = World::new(11, 1);
    settle(&mut w, 200);
    w.writing = false;
    w.inject(Fault::Scale(2));
    for _ in 0..60 {
        w.ticks(2);
        if let Some(p) = w.process(1) {
            let id = p.node_id;
            w.net.isolated.insert(id, u64::MAX);
        }
        let (observed, plan) = w.plan();
        if let Step::Promote { node_id } = plan.step {
            let m = observed
                .raft
                .as_ref()
                .and_then(|r| r.members.get(&node_id).copied());
            let matched = m.and_then(|m| m.match_index).unwrap_or(0);
            assert!(
                matched > 0,
                "the planner promotes learner {node_id:x}, which has replicated nothing \
                 (seen {m:?}, commit index {:?})\n{}",
                observed.raft.as_ref().map(|r| r.commit_index),
                w.tail(TAIL)
            );
        }
        w.reconcile(Crash::No);
    }
}
