//! Nemesis tests: real `raft-node` processes under kill -9, SIGSTOP/SIGCONT, restarts and
//! membership changes while concurrent clients read and write a small key space. Every
//! operation is recorded and the whole history, final reads included, must be
//! linearizable with no acknowledged write lost.
//!
//! A run prints `NEMESIS_SEED=...`; setting it replays the same fault schedule and client
//! choices (the interleaving of real processes still varies). A failure prints the seed,
//! the nemesis log, the tail of every node's log, and keeps the data dirs.

mod cluster_support;
mod nemesis_support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kuberaft_node::client::Client;
use kuberaft_raft::linearizability::{KvInput, KvOutput};
use kuberaft_raft::rng::Rng;

use cluster_support::eventually;
use nemesis_support::verify::{self, final_reads};
use nemesis_support::workload_options;
use nemesis_support::{Cluster, History, Mix, Recoveries, Workload, seed};

/// How long each scenario injects faults.
const FAULT_TIME: Duration = Duration::from_secs(25);
const WAIT: Duration = Duration::from_secs(30);
/// The recovery goal after a leader dies: the longest election timeout (2 × 10 ticks of
/// 20 ms, see `cluster_support::TICK_ARGS`) plus 200 ms.
const GOAL: Duration = Duration::from_millis(600);
const MIX: Mix = Mix {
    linearizable_reads: 350,
    lease_reads: 100,
    cas: 200,
};

fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("k{i}")).collect()
}

/// A pause between faults, drawn from the seed: pacing, not waiting for a result.
async fn pace(rng: &mut Rng, lo_ms: u64, hi_ms: u64) {
    tokio::time::sleep(Duration::from_millis(rng.range(lo_ms, hi_ms))).await;
}

/// Waits for the first write acknowledged after `t` and returns how long after `t` it
/// came.
async fn next_ack(cluster: &Cluster, history: &History, t: Instant, after: &str) -> Duration {
    let ack = eventually(
        WAIT,
        &format!("a write acknowledged after {after}"),
        || async { history.first_ack_after(t) },
    )
    .await;
    let took = ack - t;
    cluster.journal.note(format!(
        "first acknowledged write {}ms after {after}",
        took.as_millis()
    ));
    took
}

/// Picks every action once in a seeded order, then at random: each run covers every
/// kind of fault, in a different order per seed.
struct Deck<A: Copy> {
    all: Vec<A>,
    left: Vec<A>,
}

impl<A: Copy> Deck<A> {
    fn new(all: &[A], rng: &mut Rng) -> Self {
        let mut left = all.to_vec();
        rng.shuffle(&mut left);
        Self {
            all: all.to_vec(),
            left,
        }
    }

    fn next(&mut self, rng: &mut Rng) -> A {
        self.left
            .pop()
            .unwrap_or_else(|| self.all[rng.range(0, self.all.len() as u64) as usize])
    }
}

/// Waits until a member other than `old` leads; returns how long after `t`. The note
/// names the terms: a jump of more than one means a split vote or a failed round.
async fn new_leader(c: &Cluster, old: usize, old_term: u64, t: Instant, after: &str) -> Duration {
    let (l, term) = eventually(WAIT, &format!("a new leader after {after}"), || async {
        let l = c.leader().await.filter(|&l| l != old)?;
        Some((l, c.status(l).await.map_or(0, |s| s.term)))
    })
    .await;
    let took = t.elapsed();
    c.journal.note(format!(
        "{} leads in term {term} (was {old_term}), seen {}ms after {after}",
        c.members[l].name,
        took.as_millis()
    ));
    took
}

/// The leader now and its term.
async fn current_leader(c: &Cluster) -> (usize, u64) {
    let l = c.wait_leader(WAIT).await;
    (l, c.status(l).await.map_or(0, |s| s.term))
}

async fn kill_leader(c: &mut Cluster, h: &History, rng: &mut Rng, rec: &mut Recoveries) {
    let (l, term) = current_leader(c).await;
    let t = Instant::now();
    c.kill(l);
    let elected = new_leader(c, l, term, t, "the leader's kill").await;
    rec.push("kill -9 leader: new leader seen", elected);
    let acked = next_ack(c, h, t, "the leader's kill").await;
    rec.push("kill -9 leader: next acknowledged write", acked);
    pace(rng, 100, 1500).await;
    c.restart(l).await;
}

async fn pause_leader(c: &mut Cluster, h: &History, rng: &mut Rng, rec: &mut Recoveries) {
    let (l, term) = current_leader(c).await;
    let t = Instant::now();
    c.pause(l);
    let elected = new_leader(c, l, term, t, "the leader's pause").await;
    rec.push("SIGSTOP leader: new leader seen", elected);
    let acked = next_ack(c, h, t, "the leader's pause").await;
    rec.push("SIGSTOP leader: next acknowledged write", acked);
    pace(rng, 100, 1500).await;
    if rng.chance(600) {
        c.resume(l);
    } else {
        c.kill(l);
        c.restart(l).await;
    }
}

/// Faults `n` followers at once (kill -9 or SIGSTOP) for `ms.0..ms.1` milliseconds, then
/// heals them; a paused one is sometimes killed and restarted instead of continued.
async fn fault_followers(c: &mut Cluster, n: usize, pause: bool, rng: &mut Rng, ms: (u64, u64)) {
    let mut followers = c.followers().await;
    let mut faulted = Vec::new();
    for _ in 0..n.min(followers.len()) {
        let f = followers.swap_remove(rng.range(0, followers.len() as u64) as usize);
        if pause {
            c.pause(f)
        } else {
            c.kill(f)
        }
        faulted.push(f);
    }
    pace(rng, ms.0, ms.1).await;
    for f in faulted {
        if pause && rng.chance(300) {
            c.kill(f);
        }
        c.heal(f).await;
    }
}

/// kill -9 of `n` members, leader or not, for `ms.0..ms.1` milliseconds, then restarts them.
async fn kill_any(c: &mut Cluster, n: usize, rng: &mut Rng, ms: (u64, u64)) {
    let mut all: Vec<usize> = (0..c.members.len()).collect();
    for _ in 0..n {
        let i = all.swap_remove(rng.range(0, all.len() as u64) as usize);
        c.kill(i);
    }
    pace(rng, ms.0, ms.1).await;
    c.heal_all().await;
}

async fn transfer(c: &mut Cluster) {
    match c.admin().transfer_leadership(0).await {
        Ok(to) => c.journal.note(format!("TransferLeadership -> {to}")),
        Err(e) => c.journal.note(format!("TransferLeadership failed: {e}")),
    }
}

/// Heals, stops the load, lets the members converge, reads every key, and checks.
async fn finish(mut c: Cluster, h: Arc<History>, load: Workload, keys: &[String]) -> Cluster {
    c.heal_all().await;
    next_ack(&c, &h, Instant::now(), "healing everything").await;
    load.stop().await;
    let leader = c.converge(WAIT).await;
    c.journal.note(format!(
        "converged: leader {} term {} commit {} snapshot {}",
        leader.node_id, leader.term, leader.commit_index, leader.snapshot_index
    ));
    let values = final_reads(&c, &h, keys).await;
    let shown: Vec<String> = keys
        .iter()
        .zip(&values)
        .map(|(k, v)| format!("{k}={:?}", v.as_deref().map(String::from_utf8_lossy)))
        .collect();
    c.journal.note(format!("final reads: {}", shown.join(" ")));
    let (ops, notes) = h.finish();
    verify::check(c.test, c.seed, &ops, &notes);
    c
}

#[derive(Clone, Copy, Debug)]
enum Fault3 {
    KillLeader,
    PauseLeader,
    KillFollower,
    PauseFollower,
    /// Both followers paused: no quorum until they resume.
    PauseMajority,
    Transfer,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_stay_linearizable_through_kills_and_pauses() {
    let test = "three_members_stay_linearizable_through_kills_and_pauses";
    let (base, seed) = seed(test);
    let mut rng = Rng::new(seed);
    let mut c = Cluster::start(test, base, 3, &["--snapshot-threshold", "200"]).await;
    let keys = keys(5);
    let h = History::new(c.journal.start);
    let load = Workload::start(seed, 5, &keys, MIX, c.endpoints(), h.clone());
    next_ack(&c, &h, Instant::now(), "the load started").await;
    let mut rec = Recoveries::default();
    use Fault3::*;
    let all = [
        KillLeader,
        PauseLeader,
        KillFollower,
        PauseFollower,
        PauseMajority,
        Transfer,
    ];
    let mut deck = Deck::new(&all, &mut rng);
    let start = Instant::now();
    while start.elapsed() < FAULT_TIME {
        let fault = deck.next(&mut rng);
        c.journal.note(format!("--- {fault:?}"));
        match fault {
            KillLeader => kill_leader(&mut c, &h, &mut rng, &mut rec).await,
            PauseLeader => pause_leader(&mut c, &h, &mut rng, &mut rec).await,
            KillFollower => fault_followers(&mut c, 1, false, &mut rng, (300, 2000)).await,
            PauseFollower => fault_followers(&mut c, 1, true, &mut rng, (300, 2000)).await,
            // Longer than a client's retry budget now and then: writes end in doubt.
            PauseMajority => fault_followers(&mut c, 2, true, &mut rng, (500, 3500)).await,
            Transfer => transfer(&mut c).await,
        }
        next_ack(&c, &h, Instant::now(), "the fault healed").await;
        pace(&mut rng, 200, 800).await;
    }
    let c = finish(c, h, load, &keys).await;
    rec.report(test, GOAL);
    drop(c);
}

#[derive(Clone, Copy, Debug)]
enum Fault5 {
    KillLeader,
    PauseLeader,
    KillTwoFollowers,
    PauseTwoFollowers,
    /// Three of five killed, the leader maybe among them: no quorum until they restart.
    KillMajority,
    /// RemoveMember of a live follower, then a fresh node joins.
    ReplaceFollower,
    /// RemoveMember of the leader itself, then a fresh node joins.
    ReplaceLeader,
    /// kill -9 a follower, remove it while it is down, then a fresh node joins.
    ReplaceDeadMember,
    Transfer,
}

/// Adds a fresh member; after compaction it must have been sent a snapshot.
async fn join_fresh(c: &mut Cluster) {
    let (i, compacted) = c.add_member().await;
    let name = c.members[i].name.clone();
    assert!(compacted > 0, "the log was compacted before {name} joined");
    let installed = eventually(WAIT, "the snapshot-installed metric", || async {
        let (_, metrics) = c.members[i].node.http_get("/metrics").await;
        installed_snapshots(&metrics).filter(|n| *n >= 1)
    })
    .await;
    let st = c.status(i).await.expect("the new member answers");
    assert!(
        st.snapshot_index > 0,
        "{name} joined after compaction but has no snapshot: {st:?}"
    );
    c.journal.note(format!(
        "{name} caught up through {installed} installed snapshot(s) (leader had compacted to {compacted}, its snapshot index {})",
        st.snapshot_index
    ));
}

fn installed_snapshots(metrics: &str) -> Option<u64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("raft_snapshots_total{kind=\"installed\"} "))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_members_change_membership_under_load_and_stay_linearizable() {
    let test = "five_members_change_membership_under_load_and_stay_linearizable";
    let (base, seed) = seed(test);
    let mut rng = Rng::new(seed);
    let mut c = Cluster::start(test, base, 1, &["--snapshot-threshold", "100"]).await;
    let keys = keys(5);
    let h = History::new(c.journal.start);
    let load = Workload::start(seed, 5, &keys, MIX, c.endpoints(), h.clone());
    // Grow 1 -> 5 under load, each member after the log was compacted.
    eventually(WAIT, "the first compaction", || async {
        let s = c.status(0).await?;
        (s.snapshot_index > 0).then_some(())
    })
    .await;
    for _ in 0..4 {
        join_fresh(&mut c).await;
    }
    let mut rec = Recoveries::default();
    use Fault5::*;
    let all = [
        KillLeader,
        PauseLeader,
        KillTwoFollowers,
        PauseTwoFollowers,
        KillMajority,
        ReplaceFollower,
        ReplaceLeader,
        ReplaceDeadMember,
        Transfer,
    ];
    let mut deck = Deck::new(&all, &mut rng);
    let start = Instant::now();
    while start.elapsed() < FAULT_TIME {
        let fault = deck.next(&mut rng);
        c.journal.note(format!("--- {fault:?}"));
        match fault {
            KillLeader => kill_leader(&mut c, &h, &mut rng, &mut rec).await,
            PauseLeader => pause_leader(&mut c, &h, &mut rng, &mut rec).await,
            KillTwoFollowers => fault_followers(&mut c, 2, false, &mut rng, (300, 2000)).await,
            PauseTwoFollowers => fault_followers(&mut c, 2, true, &mut rng, (300, 2000)).await,
            KillMajority => kill_any(&mut c, 3, &mut rng, (500, 3500)).await,
            ReplaceFollower => {
                let f = c.followers().await;
                let f = f[rng.range(0, f.len() as u64) as usize];
                c.remove_member(f).await;
                join_fresh(&mut c).await;
            }
            ReplaceLeader => {
                let l = c.wait_leader(WAIT).await;
                let t = Instant::now();
                c.remove_member(l).await;
                rec.push(
                    "RemoveMember(leader)",
                    next_ack(&c, &h, t, "the leader's removal was requested").await,
                );
                join_fresh(&mut c).await;
            }
            ReplaceDeadMember => {
                let f = c.followers().await;
                let f = f[rng.range(0, f.len() as u64) as usize];
                c.kill(f);
                pace(&mut rng, 100, 800).await;
                c.remove_member(f).await;
                join_fresh(&mut c).await;
            }
            Transfer => transfer(&mut c).await,
        }
        next_ack(&c, &h, Instant::now(), "the fault healed").await;
        pace(&mut rng, 200, 800).await;
    }
    assert_eq!(c.members.len(), 5);
    let c = finish(c, h, load, &keys).await;
    c.journal.note(format!(
        "members at the end: {:?}; retired: {:?}",
        c.members.iter().map(|m| &m.name).collect::<Vec<_>>(),
        c.retired.iter().map(|m| &m.name).collect::<Vec<_>>()
    ));
    rec.report(test, GOAL);
}

/// Sequential puts on keys only this writer writes; returns (key, value, acknowledged)
/// in the order sent. Stops when `stop` is set, or at its first failure once `killed`
/// is set.
async fn writer(
    id: u64,
    client: Client,
    history: Arc<History>,
    stop: Arc<AtomicBool>,
    killed: Arc<AtomicBool>,
    mut seq: u64,
) -> Vec<(String, String, bool)> {
    let mut out = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        seq += 1;
        let key = format!("w{id}-{}", seq % 2);
        let value = format!("{id}-{seq}");
        let op = history.invoke(id, KvInput::put(key.as_str(), value.as_str()), "put");
        match client.put(key.clone(), value.clone()).await {
            Ok(_) => {
                history.complete(op, KvOutput::Ok);
                out.push((key, value, true));
            }
            Err(e) => {
                history.fail_unknown(op, e.to_string());
                out.push((key, value, false));
                if killed.load(Ordering::SeqCst) {
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    out
}

/// Kills every member with -9 and, after `outage`, restarts them all on the same ports
/// and data dirs.
async fn kill_all_and_restart(c: &mut Cluster, outage: Duration) -> Instant {
    for i in 0..c.members.len() {
        c.kill(i);
    }
    // Pacing: long enough that the clients' retry budgets run out.
    tokio::time::sleep(outage).await;
    for i in 0..c.members.len() {
        c.restart(i).await;
    }
    Instant::now()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_kill_minus_nine_of_every_member() {
    let test = "every_acknowledged_write_survives_kill_minus_nine_of_every_member";
    let (base, _) = seed(test);
    let mut c = Cluster::start(test, base, 3, &["--snapshot-threshold", "50"]).await;
    let h = History::new(c.journal.start);
    let writers = 4u64;
    let keys: Vec<String> = (1..=writers)
        .flat_map(|w| [format!("w{w}-0"), format!("w{w}-1")])
        .collect();
    let mut sent: HashMap<u64, Vec<(String, String, bool)>> = HashMap::new();
    let mut rec = Recoveries::default();

    for phase in ["quiesced", "in flight", "in flight, down 2.5s"] {
        c.journal.note(format!(
            "--- writes, then kill -9 of every member with writes {phase}"
        ));
        let stop = Arc::new(AtomicBool::new(false));
        let killed = Arc::new(AtomicBool::new(false));
        let endpoints = c.endpoints().borrow().clone();
        let tasks: Vec<_> = (1..=writers)
            .map(|w| {
                let client = Client::connect(&endpoints, workload_options()).unwrap();
                let seq = sent.get(&w).map_or(0, Vec::len) as u64;
                let args = (h.clone(), stop.clone(), killed.clone());
                tokio::spawn(writer(w, client, args.0, args.1, args.2, seq))
            })
            .collect();
        let before = h.acks();
        eventually(WAIT, "300 acknowledged writes", || async {
            (h.acks() >= before + 300).then_some(())
        })
        .await;
        if phase == "quiesced" {
            stop.store(true, Ordering::SeqCst);
        }
        let mut pending = Vec::new();
        for (w, t) in (1..=writers).zip(tasks) {
            if phase == "quiesced" {
                sent.entry(w).or_default().extend(t.await.unwrap());
            } else {
                pending.push((w, t));
            }
        }
        killed.store(true, Ordering::SeqCst);
        let outage = match phase {
            "in flight, down 2.5s" => Duration::from_millis(2500),
            _ => Duration::ZERO,
        };
        let restarted = kill_all_and_restart(&mut c, outage).await;
        // A writer whose retries ride through the restart stops here instead.
        stop.store(true, Ordering::SeqCst);
        for (w, t) in pending {
            sent.entry(w).or_default().extend(t.await.unwrap());
        }
        // One client write after the restart measures how long a cold cluster takes.
        let client = Client::connect(&endpoints, workload_options()).unwrap();
        eventually(WAIT, "a write after restarting every member", || async {
            let op = h.invoke(99, KvInput::put("probe", phase), "put");
            match client.put("probe", phase).await {
                Ok(_) => h.complete(op, KvOutput::Ok),
                Err(e) => {
                    h.fail_unknown(op, e.to_string());
                    return None;
                }
            }
            Some(())
        })
        .await;
        rec.push(
            "restart of every member",
            next_ack(&c, &h, restarted, "every member restarted").await,
        );
        c.converge(WAIT).await;
        let values = final_reads(&c, &h, &keys).await;
        let mut exact = 0;
        for (key, got) in keys.iter().zip(&values) {
            let got = got
                .as_deref()
                .map(|v| String::from_utf8_lossy(v).into_owned());
            let writes: Vec<&(String, String, bool)> = sent
                .values()
                .flatten()
                .filter(|(k, _, _)| k == key)
                .collect();
            let last_acked = writes.iter().rposition(|(_, _, acked)| *acked);
            let mut allowed: Vec<Option<String>> = vec![last_acked.map(|i| writes[i].1.clone())];
            // Writes sent after the last acknowledged one failed: any may have landed.
            // Earlier failed ones may not: one writer uses one session, whose sequence
            // numbers make the state machine refuse a write older than one it applied.
            let later = last_acked.map_or(0, |i| i + 1);
            allowed.extend(writes[later..].iter().map(|(_, v, _)| Some(v.clone())));
            exact += usize::from(allowed.len() == 1);
            assert!(
                allowed.contains(&got),
                "{key}: read {got:?} after restarting every member; the last acknowledged write was {:?} (allowed: {allowed:?})",
                allowed[0]
            );
        }
        c.journal.note(format!(
            "every acknowledged write of {} keys is there ({exact} with no write in doubt after the last acknowledged one)",
            keys.len()
        ));
    }
    let (ops, notes) = h.finish();
    verify::check(test, base, &ops, &notes);
    rec.report(test, GOAL);
    drop(c);
}

/// The lost-write check on its own: it must name a lost acknowledged write and accept
/// one overwritten by a write that may have come after it.
#[test]
fn the_lost_write_check_tells_lost_from_overwritten() {
    use kuberaft_raft::linearizability::{KvOperation, NO_RETURN};
    use nemesis_support::verify::{FINAL, no_lost_acknowledged_write};
    let op = |client, call, ret, input, output| KvOperation {
        client,
        call,
        ret,
        input,
        output,
    };
    let read = |call, v: &str| {
        op(
            FINAL,
            call,
            call + 1,
            KvInput::get("k"),
            KvOutput::Value(Some(v.into())),
        )
    };
    let acked = op(1, 0, 1, KvInput::put("k", "a"), KvOutput::Ok);
    // Read back: fine.
    assert!(no_lost_acknowledged_write(&[acked.clone(), read(5, "a")]).is_ok());
    // Overwritten by a write in doubt that was still running: fine.
    let in_doubt = op(2, 0, NO_RETURN, KvInput::put("k", "b"), KvOutput::Unknown);
    assert!(no_lost_acknowledged_write(&[acked.clone(), in_doubt, read(5, "b")]).is_ok());
    // Overwritten by a write that finished before the acknowledged one started: lost.
    let earlier = op(2, 0, 1, KvInput::put("k", "b"), KvOutput::Ok);
    let later = op(1, 2, 3, KvInput::put("k", "a"), KvOutput::Ok);
    let err = no_lost_acknowledged_write(&[earlier, later, read(5, "b")]).unwrap_err();
    assert!(err.contains("acknowledged write lost"), "{err}");
    // A failed compare-and-swap writes nothing.
    let failed_cas = op(
        2,
        0,
        2,
        KvInput::cas("k", None::<&str>, "b"),
        KvOutput::Cas { succeeded: false },
    );
    assert!(no_lost_acknowledged_write(&[acked, failed_cas, read(5, "b")]).is_err());
}
