//! Replace a member whose pod came back with a new node id (its volume was lost): add the
//! new node as a learner, wait until it catches up, then one joint change promotes it and
//! removes the old id. The old voter is already dead, so the swap raises the healthy count
//! of the new configuration; it still happens only while quorum holds (checked before any
//! operation runs), since a joint change needs both majorities.

use super::Outcome;
use super::output::{Step, WaitReason};
use super::scale_up::{add_learner, joinable};
use super::types::{NodeId, Operation};
use super::view::{View, majority};

/// A voter no pod answers for, whose pod answers with another, non-voter id.
pub(super) fn choose(v: &View) -> Option<Operation> {
    v.voters().iter().copied().find_map(|old| {
        if v.reported(old) {
            return None;
        }
        let k = v.owner(old)?;
        let (id, _) = v.serving(k)?;
        (k < v.d.replicas && !v.is_voter(id)).then_some(Operation::Replace { ordinal: k, old })
    })
}

pub(super) fn advance(v: &View, k: u32, old: NodeId) -> Outcome {
    if !v.is_voter(old) {
        // Swapped out. If the new node never made it, scale-up takes the ordinal.
        return Outcome::Done;
    }
    if k >= v.d.replicas || v.reported(old) || v.owner(old) != Some(k) {
        // Beyond the spec (scale-down removes `old`), or `old` turned up after all.
        return Outcome::Abandon;
    }
    let id = match joinable(v, k) {
        Ok(id) => id,
        Err(outcome) => return outcome,
    };
    if !v.learners().contains(&id) {
        return add_learner(v, k, id);
    }
    if !(v.healthy(id) && v.caught_up(id)) {
        return Outcome::Wait(WaitReason::LearnerCatchingUp { node_id: id });
    }
    let incoming: Vec<NodeId> = v
        .voters()
        .iter()
        .copied()
        .filter(|&n| n != old)
        .chain([id])
        .collect();
    if v.leader() == Some(old) || v.healthy_in(&incoming) < majority(incoming.len()) {
        return Outcome::Wait(WaitReason::HealthyVoters { node_id: old });
    }
    Outcome::Act(Step::ReplaceMember { old, new: id })
}
