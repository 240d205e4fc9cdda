//! Scale up, one member at a time: StatefulSet +1 → the pod answers → PrepareJoin +
//! AddLearner → the learner catches up → Promote. A learner never counts toward quorum,
//! so only the promotion changes a majority, and by then the new voter is healthy.
//!
//! Also the shared "get this pod ready to join" logic: a pod holding a removed member's
//! volume is wiped first (PVC per reclaim policy, then the pod).

use super::Outcome;
use super::output::{Blocked, Step, WaitReason};
use super::types::{BlockedCode, NodeId, NodeState, Operation, ReclaimPolicy};
use super::view::View;

/// The lowest ordinal the spec wants that no voter holds.
pub(super) fn choose(v: &View) -> Option<Operation> {
    (0..v.d.replicas)
        .find(|&k| !v.voters().iter().any(|&id| v.owner(id) == Some(k)))
        .map(|ordinal| Operation::ScaleUp { ordinal })
}

pub(super) fn advance(v: &View, k: u32) -> Outcome {
    if k >= v.d.replicas {
        return Outcome::Abandon;
    }
    if v.voters().iter().any(|&id| v.owner(id) == Some(k)) {
        return Outcome::Done;
    }
    if v.sts_replicas() <= k {
        return Outcome::Act(Step::SetStatefulSetReplicas(k + 1));
    }
    let id = match joinable(v, k) {
        Ok(id) => id,
        Err(outcome) => return outcome,
    };
    if v.learners().contains(&id) {
        return if v.healthy(id) && v.caught_up(id) {
            Outcome::Act(Step::Promote { node_id: id })
        } else {
            Outcome::Wait(WaitReason::LearnerCatchingUp { node_id: id })
        };
    }
    add_learner(v, k, id)
}

/// AddLearner, unless another learner is still in flight.
pub(super) fn add_learner(v: &View, k: u32, id: NodeId) -> Outcome {
    if !v.learners().is_empty() {
        return Outcome::Wait(WaitReason::ConfigChangeCommitting);
    }
    Outcome::Act(Step::AddLearner {
        pod: v.pod_name(k),
        node_id: id,
    })
}

/// The id with which the pod at `k` can join (or is joining, as a learner), or what must
/// happen first. A pod answering with a voter's id makes the caller's goal moot.
pub(super) fn joinable(v: &View, k: u32) -> Result<NodeId, Outcome> {
    let Some(pod) = v.pod(k) else {
        return Err(Outcome::Wait(WaitReason::PodStarting { ordinal: k }));
    };
    if pod.terminating {
        return Err(Outcome::Wait(WaitReason::PodTerminating { ordinal: k }));
    }
    let Some((id, state)) = v.serving(k) else {
        return Err(Outcome::Wait(WaitReason::PodStarting { ordinal: k }));
    };
    if v.is_voter(id) {
        return Err(Outcome::Abandon);
    }
    match state {
        NodeState::Removed => Err(wipe(v, k)),
        // A member of no configuration the leader knows (a dropped learner, an old
        // cluster's volume): its data is not needed, and it cannot join as it is.
        NodeState::Member if !v.learners().contains(&id) => Err(wipe(v, k)),
        _ => Ok(id),
    }
}

/// Give the pod at `k` an empty volume: delete its PVC (it stays until the pod lets go),
/// then the pod, which the StatefulSet recreates with a fresh claim. Under Retain the
/// operator may not delete the claim, so it asks a human.
fn wipe(v: &View, k: u32) -> Outcome {
    if !v.o.pvcs.contains(&k) {
        return Outcome::Act(Step::RestartPod { pod: v.pod_name(k) });
    }
    match v.d.reclaim_policy {
        ReclaimPolicy::Delete => Outcome::Act(Step::DeletePvc { ordinal: k }),
        ReclaimPolicy::Retain => Outcome::Blocked(Blocked {
            code: BlockedCode::RemovedMemberVolume,
            message: format!(
                "pod {} holds the volume of a node that is no longer a member and \
                 reclaimPolicy is Retain; delete that pod's PersistentVolumeClaim to let it \
                 join as a new member",
                v.pod_name(k)
            ),
        }),
    }
}
