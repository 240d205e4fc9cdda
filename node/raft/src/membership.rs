//! Configurations and quorums: how a membership change transforms a configuration, and
//! what a majority means, in a simple configuration and in joint consensus.

use std::collections::{BTreeSet, HashMap};

use crate::error::ConfChangeError;
use crate::types::{ConfChange, ConfChangeKind, Membership, NodeId};

/// The outcome of counting votes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteResult {
    Won,
    Lost,
    Pending,
}

impl Membership {
    /// A configuration of voters only.
    pub fn with_voters(voters: impl IntoIterator<Item = NodeId>) -> Self {
        Membership {
            voters: voters.into_iter().collect(),
            ..Default::default()
        }
    }

    pub fn is_joint(&self) -> bool {
        !self.outgoing.is_empty()
    }

    /// Whether `id` may vote and campaign: a voter of either half of the configuration.
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.outgoing.contains(&id)
    }

    pub fn is_learner(&self, id: NodeId) -> bool {
        self.learners.contains(&id)
    }

    pub fn contains(&self, id: NodeId) -> bool {
        self.is_voter(id) || self.is_learner(id)
    }

    /// Every node that receives the log: voters of both halves and learners.
    pub fn all(&self) -> BTreeSet<NodeId> {
        self.voters
            .iter()
            .chain(&self.outgoing)
            .chain(&self.learners)
            .copied()
            .collect()
    }

    /// Applies `cc` and returns the next configuration.
    ///
    /// A change touching at most one voter applies directly. A change touching two or more
    /// voters enters joint consensus, with the current voters as the outgoing half.
    pub fn apply(&self, cc: &ConfChange) -> Result<Membership, ConfChangeError> {
        if cc.leave_joint {
            if !self.is_joint() {
                return Err(ConfChangeError::NotJoint);
            }
            let mut next = self.clone();
            next.outgoing.clear();
            return Ok(next);
        }
        if cc.changes.is_empty() {
            return Err(ConfChangeError::Empty);
        }
        if self.is_joint() {
            return Err(ConfChangeError::AlreadyJoint);
        }
        let mut seen = BTreeSet::new();
        let mut next = self.clone();
        for ch in &cc.changes {
            if ch.node == 0 {
                return Err(ConfChangeError::ZeroId);
            }
            if !seen.insert(ch.node) {
                return Err(ConfChangeError::Duplicate(ch.node));
            }
            match ch.kind {
                ConfChangeKind::AddVoter => {
                    if next.voters.contains(&ch.node) {
                        return Err(ConfChangeError::AlreadyVoter(ch.node));
                    }
                    next.learners.remove(&ch.node);
                    next.voters.insert(ch.node);
                }
                ConfChangeKind::AddLearner => {
                    if next.voters.contains(&ch.node) {
                        return Err(ConfChangeError::VoterToLearner(ch.node));
                    }
                    if !next.learners.insert(ch.node) {
                        return Err(ConfChangeError::AlreadyLearner(ch.node));
                    }
                }
                ConfChangeKind::Remove => {
                    if !next.voters.remove(&ch.node) && !next.learners.remove(&ch.node) {
                        return Err(ConfChangeError::NotMember(ch.node));
                    }
                }
            }
        }
        if next.voters.is_empty() {
            return Err(ConfChangeError::NoVoters);
        }
        let changed_voters = self.voters.symmetric_difference(&next.voters).count();
        if changed_voters > 1 {
            next.outgoing = self.voters.clone();
        }
        Ok(next)
    }

    /// The highest index acknowledged by a majority of every half of the configuration.
    /// `acked` returns a voter's acknowledged index (absent = 0).
    pub fn committed_index(&self, acked: impl Fn(NodeId) -> u64) -> u64 {
        let incoming = majority_index(&self.voters, &acked);
        if self.is_joint() {
            incoming.min(majority_index(&self.outgoing, &acked))
        } else {
            incoming
        }
    }

    /// The election result given the votes so far (`true` = granted).
    pub fn vote_result(&self, votes: &HashMap<NodeId, bool>) -> VoteResult {
        let a = majority_vote(&self.voters, votes);
        if !self.is_joint() {
            return a;
        }
        match (a, majority_vote(&self.outgoing, votes)) {
            (VoteResult::Won, VoteResult::Won) => VoteResult::Won,
            (VoteResult::Lost, _) | (_, VoteResult::Lost) => VoteResult::Lost,
            _ => VoteResult::Pending,
        }
    }

    /// Whether the nodes for which `active` holds form a quorum.
    pub fn has_quorum(&self, active: impl Fn(NodeId) -> bool) -> bool {
        let votes = self.all().into_iter().map(|id| (id, active(id))).collect();
        self.vote_result(&votes) == VoteResult::Won
    }
}

fn majority_index(voters: &BTreeSet<NodeId>, acked: &impl Fn(NodeId) -> u64) -> u64 {
    if voters.is_empty() {
        // An empty half places no constraint (only the outgoing half of a simple config).
        return u64::MAX;
    }
    let mut idx: Vec<u64> = voters.iter().map(|&id| acked(id)).collect();
    idx.sort_unstable_by(|a, b| b.cmp(a));
    idx[voters.len() / 2]
}

fn majority_vote(voters: &BTreeSet<NodeId>, votes: &HashMap<NodeId, bool>) -> VoteResult {
    if voters.is_empty() {
        return VoteResult::Won;
    }
    let (mut yes, mut missing) = (0, 0);
    for id in voters {
        match votes.get(id) {
            Some(true) => yes += 1,
            Some(false) => {}
            None => missing += 1,
        }
    }
    let q = voters.len() / 2 + 1;
    if yes >= q {
        VoteResult::Won
    } else if yes + missing >= q {
        VoteResult::Pending
    } else {
        VoteResult::Lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ConfChangeSingle;

    fn cc(ch: &[(ConfChangeKind, NodeId)]) -> ConfChange {
        ConfChange {
            changes: ch
                .iter()
                .map(|&(kind, node)| ConfChangeSingle { kind, node })
                .collect(),
            leave_joint: false,
        }
    }

    #[test]
    fn single_change_is_direct_and_two_voter_changes_go_joint() {
        let m = Membership::with_voters([1, 2, 3]);
        let add = m.apply(&cc(&[(ConfChangeKind::AddVoter, 4)])).unwrap();
        assert!(!add.is_joint());
        assert_eq!(add.voters, [1, 2, 3, 4].into());
        let learner = m.apply(&cc(&[(ConfChangeKind::AddLearner, 4)])).unwrap();
        let swap = learner
            .apply(&cc(&[
                (ConfChangeKind::AddVoter, 4),
                (ConfChangeKind::Remove, 3),
            ]))
            .unwrap();
        assert!(swap.is_joint());
        assert_eq!(swap.voters, [1, 2, 4].into());
        assert_eq!(swap.outgoing, [1, 2, 3].into());
        assert!(swap.learners.is_empty());
        let left = swap.apply(&ConfChange::leave_joint()).unwrap();
        assert_eq!(left, Membership::with_voters([1, 2, 4]));
    }

    #[test]
    fn invalid_changes_are_refused() {
        let m = Membership::with_voters([1]);
        assert_eq!(
            m.apply(&cc(&[(ConfChangeKind::Remove, 1)])),
            Err(ConfChangeError::NoVoters)
        );
        assert_eq!(
            m.apply(&cc(&[(ConfChangeKind::AddLearner, 1)])),
            Err(ConfChangeError::VoterToLearner(1))
        );
        assert_eq!(
            m.apply(&cc(&[(ConfChangeKind::Remove, 9)])),
            Err(ConfChangeError::NotMember(9))
        );
        assert_eq!(
            m.apply(&ConfChange::leave_joint()),
            Err(ConfChangeError::NotJoint)
        );
        assert_eq!(m.apply(&cc(&[])), Err(ConfChangeError::Empty));
    }

    #[test]
    fn joint_quorum_needs_both_halves() {
        let mut m = Membership::with_voters([1, 2, 3]);
        m.outgoing = [3, 4, 5].into();
        let acked = |id: NodeId| match id {
            1 | 2 => 10,
            3 => 5,
            _ => 1,
        };
        // incoming {1,2,3} majority is 10, outgoing {3,4,5} majority is 1.
        assert_eq!(m.committed_index(acked), 1);
        let votes: HashMap<_, _> = [(1, true), (2, true), (3, true)].into();
        assert_eq!(m.vote_result(&votes), VoteResult::Pending);
        let votes: HashMap<_, _> = [(1, true), (2, true), (3, true), (4, true)].into();
        assert_eq!(m.vote_result(&votes), VoteResult::Won);
        let votes: HashMap<_, _> = [(4, false), (5, false)].into();
        assert_eq!(m.vote_result(&votes), VoteResult::Lost);
    }

    #[test]
    fn learners_never_count() {
        let mut m = Membership::with_voters([1, 2, 3]);
        m.learners = [4, 5].into();
        let acked = |id: NodeId| if id >= 4 || id == 1 { 9 } else { 0 };
        assert_eq!(m.committed_index(acked), 0);
        assert!(!m.has_quorum(|id| id != 2 && id != 3));
    }
}
