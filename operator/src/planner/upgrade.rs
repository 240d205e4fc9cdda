//! Rolling upgrade, driven by the operator (the StatefulSet is `OnDelete`): one member at a
//! time, followers first (highest ordinal first), the leader last after handing leadership
//! to a caught-up voter. Each restart waits until the previous member has rejoined and
//! caught up, and until the others can keep a healthy majority without it.
//!
//! A cluster of one or two voters has no failure tolerance: any restart costs availability
//! (not data, the volume stays). It is allowed there, once every voter is healthy, since it
//! is the only way to upgrade such a cluster.

use super::Outcome;
use super::output::{Step, WaitReason};
use super::types::{NodeId, Operation};
use super::view::{View, majority};

/// The next healthy voter on an outdated pod: a follower if any, else the leader.
pub(super) fn choose(v: &View) -> Option<Operation> {
    let leader = v.leader();
    let outdated: Vec<(u32, NodeId)> = v
        .voters()
        .iter()
        .copied()
        .filter(|&id| v.healthy(id))
        .filter_map(|id| {
            let k = v.owner(id)?;
            v.outdated(v.pod(k)?).then_some((k, id))
        })
        .collect();
    let follower = outdated.iter().filter(|&&(_, id)| Some(id) != leader).max();
    let (ordinal, node_id) = *follower.or_else(|| outdated.first())?;
    Some(Operation::Upgrade { ordinal, node_id })
}

pub(super) fn advance(v: &View, k: u32, node: NodeId) -> Outcome {
    if !v.voters().contains(&node) {
        return Outcome::Abandon;
    }
    let Some(pod) = v.pod(k) else {
        return Outcome::Wait(WaitReason::PodStarting { ordinal: k });
    };
    if v.report(k).is_some_and(|(id, _)| id != node) {
        // Came back with another id: its volume is gone, replace.rs takes over.
        return Outcome::Abandon;
    }
    if !v.outdated(pod) {
        return if v.healthy(node) && v.caught_up(node) {
            Outcome::Done
        } else {
            Outcome::Wait(WaitReason::MemberRejoining { node_id: node })
        };
    }
    if pod.terminating {
        return Outcome::Wait(WaitReason::PodTerminating { ordinal: k });
    }
    if !v.healthy(node) {
        return Outcome::Wait(WaitReason::MemberRejoining { node_id: node });
    }
    if v.leader() == Some(node) && v.voters().len() > 1 {
        return match v.transfer_target(node) {
            Some(to) => Outcome::Act(Step::TransferLeadership { from: node, to }),
            None => Outcome::Wait(WaitReason::TransferTarget { from: node }),
        };
    }
    if !restart_safe(v, node) {
        return Outcome::Wait(WaitReason::HealthyVoters { node_id: node });
    }
    Outcome::Act(Step::RestartPod {
        pod: pod.name.clone(),
    })
}

/// A recorded upgrade whose pod still runs the old template: nothing restarted yet, so
/// other work may go first.
pub(super) fn not_started(v: &View, op: &Operation) -> bool {
    match *op {
        Operation::Upgrade { ordinal, .. } => v
            .pod(ordinal)
            .is_some_and(|pod| v.outdated(pod) && !pod.terminating),
        _ => false,
    }
}

/// The other voters keep a healthy, caught-up majority, or the cluster has no tolerance
/// to spend and every voter is healthy (see the module doc). A healthy voter far behind
/// does not count: a majority that needs it commits nothing until it catches up.
pub(crate) fn restart_safe(v: &View, node: NodeId) -> bool {
    let voters = v.voters();
    let ready = v.ready_in(voters);
    let after = ready - usize::from(v.healthy(node) && v.caught_up(node) && voters.contains(&node));
    after >= majority(voters.len()) || (voters.len() <= 2 && v.healthy_in(voters) == voters.len())
}
