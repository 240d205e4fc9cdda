//! The storage conformance suite: what any [`LogStore`] must do, written once and run
//! against every implementation (the idea of openraft's `testing/log/suite.rs`).
//!
//! ```
//! use kuberaft_node::storage::{MemLogStore, conformance};
//!
//! conformance::run(MemLogStore::new);
//! // On-disk stores also pass `run_durable(new, reopen)`, which reopens synced stores.
//! ```
//!
//! Each case starts from a fresh store and panics with its name on the first mismatch.

use kuberaft_raft::{
    ConfChange, ConfChangeKind, Entry, EntryPayload, HardState, Membership, SnapshotMeta,
};

use super::error::Error;
use super::log_store::LogStore;

/// A normal entry whose payload encodes its position, so a misplaced entry shows.
pub fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        payload: EntryPayload::Normal(format!("e{index}t{term}").into_bytes()),
    }
}

/// Entries `lo..=hi`, all in `term`.
pub fn entries(lo: u64, hi: u64, term: u64) -> Vec<Entry> {
    (lo..=hi).map(|i| entry(i, term)).collect()
}

/// A snapshot point with a non-trivial membership, so membership round trips are checked.
pub fn meta(index: u64, term: u64) -> SnapshotMeta {
    let membership = Membership {
        voters: [1, 2, 3].into(),
        outgoing: Default::default(),
        learners: [4].into(),
    };
    SnapshotMeta {
        index,
        term,
        membership,
    }
}

type Case<S> = (&'static str, fn(&mut S));

fn cases<S: LogStore>() -> Vec<Case<S>> {
    vec![
        ("initial_state", initial_state),
        ("append_and_read", append_and_read),
        ("append_rejects_gaps", append_rejects_gaps),
        (
            "append_truncates_conflicting_suffix",
            append_truncates_conflicting_suffix,
        ),
        ("entries_respect_max_bytes", entries_respect_max_bytes),
        ("entries_check_bounds", entries_check_bounds),
        ("compact", compact),
        ("compact_rejects_bad_points", compact_rejects_bad_points),
        ("install_snapshot_beyond_log", install_snapshot_beyond_log),
        (
            "install_snapshot_keeps_matching_suffix",
            install_snapshot_keeps_matching_suffix,
        ),
        (
            "install_snapshot_discards_conflicting_log",
            install_snapshot_discards_conflicting_log,
        ),
        (
            "install_snapshot_rejects_older",
            install_snapshot_rejects_older,
        ),
        ("hard_state", hard_state),
        ("sync_reports_durable_state", sync_reports_durable_state),
        ("all_payload_kinds", all_payload_kinds),
    ]
}

/// Runs every case against stores made by `new`.
pub fn run<S: LogStore>(mut new: impl FnMut() -> S) {
    for (name, case) in cases::<S>() {
        eprintln!("conformance: {name}");
        case(&mut new());
    }
}

/// [`run`], plus cases that reopen a synced store and expect to find everything.
pub fn run_durable<S: LogStore>(mut new: impl FnMut() -> S, mut reopen: impl FnMut(S) -> S) {
    run(&mut new);
    type DurableCase<S> = (&'static str, fn(&mut S), fn(&S));
    let durable: Vec<DurableCase<S>> = vec![
        (
            "reopen_after_append",
            |s| s.append(&entries(1, 20, 1)).unwrap(),
            |s| assert_eq!(s.entries(1, 21, None).unwrap(), entries(1, 20, 1)),
        ),
        (
            "reopen_after_truncation",
            |s| {
                s.append(&entries(1, 10, 1)).unwrap();
                s.sync().unwrap();
                s.append(&entries(4, 6, 2)).unwrap();
            },
            |s| {
                assert_eq!(s.last_index(), 6);
                assert_eq!(s.term(4).unwrap(), 2);
                assert_eq!(s.term(3).unwrap(), 1);
            },
        ),
        (
            "reopen_after_compaction",
            |s| {
                s.append(&entries(1, 10, 1)).unwrap();
                s.compact(&meta(6, 1)).unwrap();
            },
            |s| {
                assert_eq!((s.first_index(), s.last_index()), (7, 10));
                assert_eq!(s.snapshot_meta(), Some(meta(6, 1)));
                assert_eq!(s.term(6).unwrap(), 1);
            },
        ),
        (
            "reopen_after_install",
            |s| {
                s.append(&entries(1, 10, 1)).unwrap();
                s.install_snapshot(&meta(5, 3)).unwrap();
                s.append(&entries(6, 7, 3)).unwrap();
            },
            |s| {
                assert_eq!((s.first_index(), s.last_index()), (6, 7));
                assert_eq!(s.entries(6, 8, None).unwrap(), entries(6, 7, 3));
            },
        ),
        (
            "reopen_hard_state",
            |s| {
                s.append(&entries(1, 3, 2)).unwrap();
                s.set_hard_state(HardState {
                    term: 2,
                    vote: 3,
                    commit: 3,
                })
                .unwrap();
            },
            |s| {
                assert_eq!(
                    s.hard_state(),
                    HardState {
                        term: 2,
                        vote: 3,
                        commit: 3
                    }
                )
            },
        ),
    ];
    for (name, write, check) in durable {
        eprintln!("conformance (durable): {name}");
        let mut store = new();
        write(&mut store);
        store.sync().unwrap();
        check(&store);
        let store = reopen(store);
        check(&store);
    }
}

fn initial_state<S: LogStore>(s: &mut S) {
    assert_eq!((s.first_index(), s.last_index()), (1, 0));
    assert_eq!(s.term(0).unwrap(), 0);
    assert!(matches!(
        s.term(1),
        Err(Error::Unavailable {
            index: 1,
            last_index: 0
        })
    ));
    assert_eq!(s.entries(1, 1, None).unwrap(), vec![]);
    assert_eq!(s.hard_state(), HardState::default());
    assert_eq!(s.snapshot_meta(), None);
}

fn append_and_read<S: LogStore>(s: &mut S) {
    s.append(&entries(1, 3, 1)).unwrap();
    s.append(&entries(4, 5, 2)).unwrap();
    s.append(&[]).unwrap();
    assert_eq!((s.first_index(), s.last_index()), (1, 5));
    let mut all = entries(1, 3, 1);
    all.extend(entries(4, 5, 2));
    assert_eq!(s.entries(1, 6, None).unwrap(), all);
    assert_eq!(s.entries(2, 4, None).unwrap(), all[1..3]);
    assert_eq!(s.entries(3, 3, None).unwrap(), vec![]);
    for e in &all {
        assert_eq!(s.term(e.index).unwrap(), e.term);
    }
}

fn append_rejects_gaps<S: LogStore>(s: &mut S) {
    s.append(&entries(1, 5, 1)).unwrap();
    assert!(matches!(
        s.append(&entries(7, 8, 1)),
        Err(Error::InvalidOp(_))
    ));
    assert!(matches!(
        s.append(&[entry(6, 1), entry(8, 1)]),
        Err(Error::InvalidOp(_))
    ));
    assert_eq!(s.last_index(), 5, "a rejected append changed the log");
    assert_eq!(s.entries(1, 6, None).unwrap(), entries(1, 5, 1));
}

fn append_truncates_conflicting_suffix<S: LogStore>(s: &mut S) {
    s.append(&entries(1, 5, 1)).unwrap();
    s.append(&entries(3, 4, 2)).unwrap();
    assert_eq!(s.last_index(), 4);
    let mut want = entries(1, 2, 1);
    want.extend(entries(3, 4, 2));
    assert_eq!(s.entries(1, 5, None).unwrap(), want);
    assert!(matches!(s.term(5), Err(Error::Unavailable { .. })));
    s.append(&entries(5, 6, 2)).unwrap();
    s.append(&entries(1, 1, 3)).unwrap();
    assert_eq!(s.entries(1, 2, None).unwrap(), entries(1, 1, 3));
    assert_eq!(s.last_index(), 1);
}

fn entries_respect_max_bytes<S: LogStore>(s: &mut S) {
    s.append(&entries(1, 5, 1)).unwrap();
    let size = entry(1, 1).size();
    assert_eq!(
        s.entries(1, 6, Some(0)).unwrap(),
        entries(1, 1, 1),
        "must return at least one"
    );
    assert_eq!(s.entries(1, 6, Some(2 * size)).unwrap(), entries(1, 2, 1));
    assert_eq!(
        s.entries(1, 6, Some(2 * size + 1)).unwrap(),
        entries(1, 2, 1)
    );
    assert_eq!(s.entries(2, 6, Some(100 * size)).unwrap(), entries(2, 5, 1));
}

fn entries_check_bounds<S: LogStore>(s: &mut S) {
    s.append(&entries(1, 5, 1)).unwrap();
    assert!(matches!(
        s.entries(1, 7, None),
        Err(Error::Unavailable { .. })
    ));
    assert!(matches!(s.entries(4, 2, None), Err(Error::InvalidOp(_))));
    s.compact(&meta(2, 1)).unwrap();
    assert!(matches!(
        s.entries(2, 4, None),
        Err(Error::Compacted {
            index: 2,
            snapshot_index: 2
        })
    ));
}

fn compact<S: LogStore>(s: &mut S) {
    s.append(&entries(1, 10, 1)).unwrap();
    s.compact(&meta(5, 1)).unwrap();
    assert_eq!((s.first_index(), s.last_index()), (6, 10));
    assert_eq!(s.term(5).unwrap(), 1);
    assert!(matches!(
        s.term(4),
        Err(Error::Compacted {
            index: 4,
            snapshot_index: 5
        })
    ));
    assert_eq!(s.entries(6, 11, None).unwrap(), entries(6, 10, 1));
    assert_eq!(s.snapshot_meta(), Some(meta(5, 1)));
    s.compact(&meta(5, 1)).unwrap();
    s.compact(&meta(10, 1)).unwrap();
    assert_eq!((s.first_index(), s.last_index()), (11, 10));
    assert_eq!(s.term(10).unwrap(), 1);
    s.append(&entries(11, 12, 2)).unwrap();
    assert_eq!(s.entries(11, 13, None).unwrap(), entries(11, 12, 2));
}

fn compact_rejects_bad_points<S: LogStore>(s: &mut S) {
    s.append(&entries(1, 10, 1)).unwrap();
    s.compact(&meta(5, 1)).unwrap();
    assert!(matches!(
        s.compact(&meta(3, 1)),
        Err(Error::Compacted { .. })
    ));
    assert!(matches!(
        s.compact(&meta(11, 1)),
        Err(Error::Unavailable { .. })
    ));
    assert!(
        matches!(s.compact(&meta(7, 2)), Err(Error::InvalidOp(_))),
        "term mismatch accepted"
    );
    assert!(matches!(
        s.append(&entries(5, 6, 2)),
        Err(Error::Compacted { .. })
    ));
    assert_eq!((s.first_index(), s.last_index()), (6, 10));
}

fn install_snapshot_beyond_log<S: LogStore>(s: &mut S) {
    s.append(&entries(1, 5, 1)).unwrap();
    s.install_snapshot(&meta(10, 2)).unwrap();
    assert_eq!((s.first_index(), s.last_index()), (11, 10));
    assert_eq!(s.term(10).unwrap(), 2);
    assert!(matches!(
        s.append(&entries(12, 12, 2)),
        Err(Error::InvalidOp(_))
    ));
    s.append(&entries(11, 12, 2)).unwrap();
    assert_eq!(s.last_index(), 12);
}

fn install_snapshot_keeps_matching_suffix<S: LogStore>(s: &mut S) {
    s.append(&entries(1, 10, 1)).unwrap();
    s.install_snapshot(&meta(5, 1)).unwrap();
    assert_eq!((s.first_index(), s.last_index()), (6, 10));
    assert_eq!(s.entries(6, 11, None).unwrap(), entries(6, 10, 1));
}

fn install_snapshot_discards_conflicting_log<S: LogStore>(s: &mut S) {
    s.append(&entries(1, 10, 1)).unwrap();
    s.install_snapshot(&meta(5, 2)).unwrap();
    assert_eq!((s.first_index(), s.last_index()), (6, 5));
    assert_eq!(s.term(5).unwrap(), 2);
    assert_eq!(s.snapshot_meta(), Some(meta(5, 2)));
}

fn install_snapshot_rejects_older<S: LogStore>(s: &mut S) {
    s.append(&entries(1, 10, 1)).unwrap();
    s.compact(&meta(8, 1)).unwrap();
    assert!(s.install_snapshot(&meta(4, 1)).is_err());
    assert_eq!((s.first_index(), s.last_index()), (9, 10));
}

fn hard_state<S: LogStore>(s: &mut S) {
    let hs = HardState {
        term: 4,
        vote: 2,
        commit: 0,
    };
    s.set_hard_state(hs).unwrap();
    assert_eq!(s.hard_state(), hs);
    s.set_hard_state(HardState {
        vote: 0,
        term: 5,
        ..hs
    })
    .unwrap();
    assert_eq!(
        s.hard_state(),
        HardState {
            term: 5,
            vote: 0,
            commit: 0
        }
    );
}

fn sync_reports_durable_state<S: LogStore>(s: &mut S) {
    s.append(&entries(1, 4, 3)).unwrap();
    let hs = HardState {
        term: 3,
        vote: 1,
        commit: 2,
    };
    s.set_hard_state(hs).unwrap();
    let durable = s.sync().unwrap();
    assert_eq!(
        (durable.last_index, durable.last_term, durable.hard_state),
        (4, 3, hs)
    );
    s.compact(&meta(2, 3)).unwrap();
    assert_eq!(s.sync().unwrap().snapshot_index, 2);
}

fn all_payload_kinds<S: LogStore>(s: &mut S) {
    let log = vec![
        Entry {
            index: 1,
            term: 1,
            payload: EntryPayload::Empty,
        },
        Entry {
            index: 2,
            term: 1,
            payload: EntryPayload::ConfChange(ConfChange::single(ConfChangeKind::AddVoter, 7)),
        },
        Entry {
            index: 3,
            term: 1,
            payload: EntryPayload::ConfChange(ConfChange::leave_joint()),
        },
        Entry {
            index: 4,
            term: 1,
            payload: EntryPayload::Normal(vec![0; 3000]),
        },
    ];
    s.append(&log).unwrap();
    s.sync().unwrap();
    assert_eq!(s.entries(1, 5, None).unwrap(), log);
}
