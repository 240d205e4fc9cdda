//! Unit tests of the driver's pure helpers.

use super::*;

#[test]
fn a_round_of_reads_becomes_one_read_index_per_mode() {
    let mut groups = Vec::new();
    add_read(&mut groups, ReadMode::Safe, b"a".to_vec(), 1);
    add_read(&mut groups, ReadMode::Lease, b"b".to_vec(), 2);
    add_read(&mut groups, ReadMode::Safe, b"c".to_vec(), 3);
    assert_eq!(
        groups,
        vec![
            (ReadMode::Safe, vec![(b"a".to_vec(), 1), (b"c".to_vec(), 3)]),
            (ReadMode::Lease, vec![(b"b".to_vec(), 2)]),
        ]
    );
}

#[test]
fn transfer_target_is_the_most_caught_up_other_voter() {
    use kuberaft_raft::{PeerProgress, ProgressState};
    let p = |matched| PeerProgress {
        matched,
        next: matched + 1,
        state: ProgressState::Replicate,
        recent_active: true,
        inflight: 0,
    };
    let mut membership = Membership::with_voters([1, 2, 3]);
    membership.learners.insert(4);
    let st = Status {
        id: 1,
        role: Role::Leader,
        term: 2,
        vote: 1,
        leader: 1,
        commit: 10,
        applied: 10,
        durable: 10,
        first_index: 1,
        last_index: 10,
        snapshot_index: 0,
        membership,
        config_index: 0,
        progress: [(2, p(7)), (3, p(9)), (4, p(10))].into(),
        transferee: 0,
    };
    assert_eq!(
        most_caught_up_voter(&st),
        Some(3),
        "learner 4 is not eligible"
    );
}
