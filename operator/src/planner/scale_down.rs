//! Scale down, one member at a time. The victim is the voter with the highest ordinal,
//! because a StatefulSet can only drop its highest pod; voters no pod can be found for, and
//! dead voters beyond the spec, go first (the StatefulSet shrinks once every member above
//! the new size is gone). The removal is refused (blocked) when the smaller configuration would lose
//! its healthy majority or fall under `minFailureTolerance`. A leader victim hands
//! leadership to the most caught-up healthy voter first. Then RemoveMember → committed →
//! StatefulSet −1 → PVC per reclaim policy.

use super::Outcome;
use std::cmp::Reverse;

use super::output::{Blocked, Step, WaitReason};
use super::types::{BlockedCode, NodeId, Operation, ReclaimPolicy};
use super::view::{View, majority};

/// The next victim, if there are more voters than the spec wants or a voter sits on an
/// ordinal beyond it. Among the voters beyond the spec a dead one goes first: removing it
/// costs no vote, while removing a healthy one first could strand the configuration
/// without a healthy majority (a dead member on a lower ordinal blocks it forever).
pub(super) fn choose(v: &View) -> Option<Operation> {
    let voters = v.voters();
    let surplus = voters.len() > usize::try_from(v.d.replicas).unwrap_or(usize::MAX);
    let known = || voters.iter().filter_map(|&id| Some((id, v.owner(id)?)));
    let unknown = || voters.iter().copied().find(|&id| v.owner(id).is_none());
    let beyond = || {
        known()
            .filter(|&(_, k)| k >= v.d.replicas)
            .max_by_key(|&(id, k)| (!v.healthy(id), k, !v.reported(id), Reverse(id)))
            .map(|(id, _)| id)
    };
    // Two voters on one ordinal: the id no pod answers for goes first.
    let shared = || {
        known()
            .max_by_key(|&(id, k)| (k, !v.reported(id), Reverse(id)))
            .map(|(id, _)| id)
    };
    let victim = if surplus {
        unknown().or_else(beyond).or_else(shared)
    } else {
        beyond()
    }?;
    Some(Operation::ScaleDown {
        ordinal: v.owner(victim),
        node_id: victim,
    })
}

pub(super) fn advance(v: &View, ordinal: Option<u32>, node: NodeId) -> Outcome {
    if v.in_config(node) {
        if choose(v)
            != Some(Operation::ScaleDown {
                ordinal,
                node_id: node,
            })
        {
            return Outcome::Abandon;
        }
        if !v.learners().is_empty() {
            return Outcome::Wait(WaitReason::ConfigChangeCommitting);
        }
        if let Some(blocked) = removal_blocked(v, node) {
            return Outcome::Blocked(blocked);
        }
        if v.leader() == Some(node) {
            return match v.transfer_target(node) {
                Some(to) => Outcome::Act(Step::TransferLeadership { from: node, to }),
                None => Outcome::Wait(WaitReason::TransferTarget { from: node }),
            };
        }
        return Outcome::Act(Step::RemoveMember { node_id: node });
    }
    // Removed and committed (an uncommitted configuration waits before any operation).
    let Some(k) = ordinal else {
        return Outcome::Done;
    };
    if k < v.d.replicas {
        // The spec grew back: scale-up wipes and re-adds this ordinal.
        return Outcome::Abandon;
    }
    if v.sts_replicas() > k {
        let target = v.shrink_target(k);
        return if target < v.sts_replicas() {
            Outcome::Act(Step::SetStatefulSetReplicas(target))
        } else {
            Outcome::Done
        };
    }
    if v.pod(k).is_some() {
        return Outcome::Wait(WaitReason::PodTerminating { ordinal: k });
    }
    if v.o.pvcs.contains(&k) && v.d.reclaim_policy == ReclaimPolicy::Delete {
        return Outcome::Act(Step::DeletePvc { ordinal: k });
    }
    Outcome::Done
}

/// Why removing `node` is refused, if it is. Failure tolerance may only fall under the
/// minimum when it does not fall at all (removing a dead voter from an even count).
fn removal_blocked(v: &View, node: NodeId) -> Option<Blocked> {
    let voters = v.voters();
    let remaining: Vec<NodeId> = voters.iter().copied().filter(|&id| id != node).collect();
    // Only healthy, caught-up voters count: a majority that needs a lagging voter
    // commits nothing until it catches up.
    let healthy_now = v.ready_in(voters);
    let healthy_after = v.ready_in(&remaining);
    let needed = majority(remaining.len());
    if remaining.is_empty() || healthy_after < needed {
        return Some(Blocked {
            code: BlockedCode::WouldLoseQuorum,
            message: format!(
                "removing node {node:x} would leave {healthy_after} healthy, caught-up of {} \
                 voters, a majority needs {needed}; waiting for the other voters to be healthy \
                 and caught up",
                remaining.len()
            ),
        });
    }
    let tolerance_after = healthy_after - needed;
    let tolerance_now = healthy_now.saturating_sub(majority(voters.len()));
    let min = usize::try_from(v.d.min_failure_tolerance).unwrap_or(usize::MAX);
    if tolerance_after < min && tolerance_after < tolerance_now {
        return Some(Blocked {
            code: BlockedCode::BelowMinFailureTolerance,
            message: format!(
                "removing node {node:x} would leave a failure tolerance of {tolerance_after}, \
                 under minFailureTolerance {min}"
            ),
        });
    }
    None
}
