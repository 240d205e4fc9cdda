//! Crash tests: random Raft-shaped workloads on the simulated filesystem, with a crash
//! image taken after EVERY filesystem mutation. Each image is booted several ways
//! (power cut dropping all unsynced data; power cut with a torn, garbage-tailed last
//! write and a random prefix of unsynced renames/creates; kill -9 followed by a power
//! cut) and recovered. Recovery must yield a state the log actually passed through at
//! or after the last acknowledged sync: so every acknowledged entry and hard state is
//! there (unless a later, persisted truncation legitimately replaced it) and nothing
//! that was never written is reported, committed or not.
//!
//! `KUBERAFT_CRASH_SEEDS=n` runs n seeds (default 100); `KUBERAFT_CRASH_SEED=s` replays one.

use std::sync::Arc;

use kuberaft_node::storage::fs::{CrashImage, CrashOptions, SimFs};
use kuberaft_node::storage::{DiskLogStore, LogStore, Recovered, Wal, WalOptions};
use kuberaft_raft::rng::Rng;
use kuberaft_raft::{
    ConfChange, ConfChangeKind, Entry, EntryPayload, HardState, Membership, SnapshotMeta,
};

/// The logical state of the log after some prefix of the WAL's records.
#[derive(Clone, Debug, Default, PartialEq)]
struct State {
    hs: HardState,
    snap: Option<SnapshotMeta>,
    entries: Vec<Entry>,
}

impl State {
    fn snap_index(&self) -> u64 {
        self.snap.as_ref().map_or(0, |s| s.index)
    }

    fn last_index(&self) -> u64 {
        self.entries.last().map_or(self.snap_index(), |e| e.index)
    }

    fn term(&self, index: u64) -> u64 {
        if index == self.snap_index() {
            return self.snap.as_ref().map_or(0, |s| s.term);
        }
        self.entries[(index - self.snap_index() - 1) as usize].term
    }

    /// What recovery must return for this state: commit clamped to the log.
    fn recovered(&self) -> Recovered {
        let mut hs = self.hs;
        hs.commit = hs.commit.min(self.last_index()).max(self.snap_index());
        Recovered {
            hard_state: hs,
            snapshot: self.snap.clone(),
            entries: self.entries.clone(),
        }
    }

    fn from_recovered(r: Recovered) -> State {
        State {
            hs: r.hard_state,
            snap: r.snapshot,
            entries: r.entries,
        }
    }
}

/// Every state since the last acknowledged sync, record by record.
struct Model {
    states: Vec<State>,
}

impl Model {
    fn cur(&self) -> &State {
        self.states.last().unwrap()
    }

    fn push(&mut self, f: impl FnOnce(&mut State)) {
        let mut next = self.cur().clone();
        f(&mut next);
        self.states.push(next);
    }

    /// Checks a recovered state against the window of allowed states.
    fn check(&self, got: &Recovered, what: &str) {
        if let Err(e) = self.verify(got) {
            panic!("{what}: {e}");
        }
    }

    fn verify(&self, got: &Recovered) -> Result<(), String> {
        if self.states.iter().any(|s| &s.recovered() == got) {
            return Ok(());
        }
        let acked = self.states[0].recovered();
        Err(format!(
            "recovered a state the log never passed through since the last ack\n\
             got: last={} snap={:?} hs={:?}\nacked: last={} snap={:?} hs={:?}\nnewest: {:?}",
            got.last_index(),
            got.snapshot.as_ref().map(|s| s.index),
            got.hard_state,
            acked.last_index(),
            acked.snapshot.as_ref().map(|s| s.index),
            acked.hard_state,
            self.cur().recovered().last_index(),
        ))
    }
}

fn payload(rng: &mut Rng, index: u64) -> EntryPayload {
    match rng.range(0, 10) {
        0 => EntryPayload::Empty,
        1 => EntryPayload::ConfChange(ConfChange::single(ConfChangeKind::AddLearner, index)),
        _ => {
            let len = rng.range(0, 120) as usize;
            EntryPayload::Normal((0..len).map(|i| (index as usize + i) as u8).collect())
        }
    }
}

fn meta(index: u64, term: u64) -> SnapshotMeta {
    SnapshotMeta {
        index,
        term,
        membership: Membership {
            voters: [1, 2, index].into(),
            ..Default::default()
        },
    }
}

const DIR: &str = "/node/wal";

fn wal_opts() -> WalOptions {
    WalOptions {
        segment_size: 512,
        ..WalOptions::default()
    }
}

fn recover(fs: &SimFs, what: &str) -> Recovered {
    match Wal::open(Arc::new(fs.clone()), DIR, wal_opts()) {
        Ok((_, recovered)) => recovered,
        Err(e) => panic!("{what}: recovery refused to start: {e}"),
    }
}

/// Boots one crash image in several ways and checks each recovery.
fn check_image(image: &CrashImage, model: &Model, seed: u64, what: &str) {
    let plain = image.boot(CrashOptions {
        seed,
        ..Default::default()
    });
    model.check(&recover(&plain, what), &format!("{what} (power cut)"));

    let opts = CrashOptions {
        seed,
        torn_last_write: true,
        garbage: seed.is_multiple_of(2),
        keep_unsynced_metadata: true,
    };
    let torn = image.boot(opts);
    model.check(
        &recover(&torn, what),
        &format!("{what} (power cut, torn write)"),
    );

    // kill -9, restart (recovery sees the page cache), then lose power: whatever the
    // first recovery handed to the core must still be there.
    let killed = image.boot_after_kill();
    let first = recover(&killed, what);
    model.check(&first, &format!("{what} (kill -9)"));
    killed.crash(CrashOptions {
        seed,
        ..Default::default()
    });
    let second = recover(&killed, what);
    assert_eq!(
        first, second,
        "{what}: a power cut after kill -9 lost state recovery had reported"
    );
}

struct Run {
    rng: Rng,
    seed: u64,
    fs: SimFs,
    store: Option<DiskLogStore>,
    model: Model,
    term: u64,
    ops: usize,
    acked: bool,
}

impl Run {
    fn new(seed: u64) -> Run {
        let fs = SimFs::new();
        fs.record_crash_points(true);
        let store = DiskLogStore::open(Arc::new(fs.clone()), DIR, wal_opts()).unwrap();
        Run {
            rng: Rng::new(seed),
            seed,
            fs,
            store: Some(store),
            model: Model {
                states: vec![State::default()],
            },
            term: 1,
            ops: 0,
            acked: false,
        }
    }

    fn store(&mut self) -> &mut DiskLogStore {
        self.store.as_mut().unwrap()
    }

    fn step(&mut self) -> String {
        let cur = self.model.cur().clone();
        let commit = cur.hs.commit.max(cur.snap_index());
        let roll = self.rng.range(0, 100);
        match roll {
            0..=34 => {
                let (first, n) = (cur.last_index() + 1, self.rng.range(1, 5));
                let batch: Vec<Entry> = (first..first + n)
                    .map(|i| Entry {
                        term: self.term,
                        index: i,
                        payload: payload(&mut self.rng, i),
                    })
                    .collect();
                self.store().append(&batch).unwrap();
                batch
                    .iter()
                    .for_each(|e| self.model.push(|s| s.entries.push(e.clone())));
                format!("append {first}..={}", first + n - 1)
            }
            35..=44 if cur.last_index() > commit => {
                let from = self.rng.range(commit + 1, cur.last_index() + 1);
                self.term += 1;
                let n = self.rng.range(1, 4);
                let batch: Vec<Entry> = (from..from + n)
                    .map(|i| Entry {
                        term: self.term,
                        index: i,
                        payload: payload(&mut self.rng, i),
                    })
                    .collect();
                self.store().append(&batch).unwrap();
                self.model.push(|s| s.entries.retain(|e| e.index < from));
                batch
                    .iter()
                    .for_each(|e| self.model.push(|s| s.entries.push(e.clone())));
                format!("conflicting append {from}..={}", from + n - 1)
            }
            45..=59 => {
                let mut hs = cur.hs;
                match self.rng.range(0, 3) {
                    0 => {
                        self.term += 1;
                        hs = HardState {
                            term: self.term,
                            vote: 0,
                            ..hs
                        };
                    }
                    1 => {
                        hs = HardState {
                            term: self.term,
                            vote: self.rng.range(1, 6),
                            ..hs
                        }
                    }
                    _ => hs.commit = self.rng.range(commit, cur.last_index() + 1),
                }
                self.store().set_hard_state(hs).unwrap();
                if hs != cur.hs {
                    self.model.push(|s| s.hs = hs);
                }
                format!("hard state {hs:?}")
            }
            60..=67 if commit > cur.snap_index() => {
                let index = self.rng.range(cur.snap_index() + 1, commit + 1);
                let m = meta(index, cur.term(index));
                self.store().compact(&m).unwrap();
                self.model.push(|s| {
                    s.entries.retain(|e| e.index > index);
                    s.snap = Some(m);
                });
                format!("compact {index}")
            }
            68..=71 => {
                // A snapshot from a leader in a newer term, past the end of our log.
                self.term += 1;
                let index = cur.last_index() + self.rng.range(1, 6);
                let m = meta(index, self.term);
                self.store().install_snapshot(&m).unwrap();
                self.model.push(|s| {
                    s.entries.clear();
                    s.snap = Some(m);
                });
                format!("install snapshot {index}")
            }
            72..=91 => {
                let durable = self.store().sync().unwrap();
                let newest = self.model.cur().clone();
                assert_eq!(
                    durable.last_index,
                    newest.last_index(),
                    "sync under-reported"
                );
                assert_eq!(
                    durable.hard_state, newest.hs,
                    "sync under-reported the hard state"
                );
                // The ack takes effect after this op's crash points are checked: a
                // crash inside `sync` may still lose the batch.
                self.acked = true;
                "sync".into()
            }
            92..=95 => {
                drop(self.store.take());
                self.reopen("kill -9 + restart");
                "restart".into()
            }
            96..=99 => {
                drop(self.store.take());
                let opts = CrashOptions {
                    seed: self.rng.next_u64(),
                    torn_last_write: true,
                    garbage: true,
                    keep_unsynced_metadata: true,
                };
                self.fs.crash(opts);
                self.reopen("power cut + restart");
                "power cut".into()
            }
            _ => "skip".into(),
        }
    }

    fn reopen(&mut self, what: &str) {
        let store = DiskLogStore::open(Arc::new(self.fs.clone()), DIR, wal_opts())
            .unwrap_or_else(|e| panic!("seed {}: {what}: {e}", self.seed));
        let got = store.recovered();
        self.model
            .check(&got, &format!("seed {} op {}: {what}", self.seed, self.ops));
        self.term = self.term.max(got.hard_state.term).max(got.last_term());
        self.model.states = vec![State::from_recovered(got)];
        self.store = Some(store);
    }

    fn run(&mut self, ops: usize) -> usize {
        let mut images = 0;
        for _ in 0..ops {
            self.ops += 1;
            let op = self.step();
            for (i, image) in self.fs.take_crash_points().iter().enumerate() {
                let what = format!("seed {} op {} ({op}) crash point {i}", self.seed, self.ops);
                check_image(image, &self.model, self.seed ^ (images as u64), &what);
                images += 1;
            }
            if std::mem::take(&mut self.acked) {
                self.model.states = vec![self.model.cur().clone()];
            }
        }
        images
    }
}

fn seeds() -> Vec<u64> {
    if let Ok(seed) = std::env::var("KUBERAFT_CRASH_SEED") {
        return vec![seed.parse().expect("KUBERAFT_CRASH_SEED is a number")];
    }
    let n = std::env::var("KUBERAFT_CRASH_SEEDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100);
    (0..n).collect()
}

#[test]
fn recovery_after_a_crash_at_every_step_keeps_exactly_the_acknowledged_log() {
    let mut images = 0;
    let mut segments_seen = 0;
    for seed in seeds() {
        let mut run = Run::new(seed);
        images += run.run(120);
        segments_seen =
            segments_seen.max(run.store().wal().segments().first().map_or(0, |s| s.seq));
    }
    eprintln!("checked {images} crash images");
    assert!(
        images > 1000,
        "too few crash points to mean anything: {images}"
    );
    assert!(
        segments_seen > 1,
        "the workload never deleted a compacted segment"
    );
}

/// The model and the checks must be able to fail: a WAL that "forgets" to fsync shows.
#[test]
fn the_crash_check_catches_a_lost_acknowledged_write() {
    let fs = SimFs::new();
    let mut store = DiskLogStore::open(Arc::new(fs.clone()), DIR, wal_opts()).unwrap();
    let entry = Entry {
        term: 1,
        index: 1,
        payload: EntryPayload::Normal(b"x".to_vec()),
    };
    store.append(std::slice::from_ref(&entry)).unwrap();
    store.sync().unwrap();
    let acked = Model {
        states: vec![State {
            entries: vec![entry],
            ..Default::default()
        }],
    };
    let empty = Recovered::default();
    assert!(
        acked.verify(&empty).is_err(),
        "losing an acknowledged entry went unnoticed"
    );
    acked.check(
        &recover(&fs.image().boot(CrashOptions::default()), "real WAL"),
        "real WAL",
    );
}
