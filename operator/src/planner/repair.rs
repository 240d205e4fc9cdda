//! Single-step repairs and housekeeping that need no recorded operation: each either cannot
//! cost a vote (template sync, hosting members, restarting pods that serve no vote,
//! dropping a learner) or only touches pods and claims that run no member.

use super::output::Step;
use super::types::{NodeReport, NodeState, ReclaimPolicy};
use super::view::View;

/// The StatefulSet's template lags the spec. With `OnDelete` this restarts nothing; it
/// makes every pod created or restarted from now on use the current template.
pub(super) fn template(v: &View) -> Option<Step> {
    let sts = v.sts()?;
    (sts.template != v.d.template()).then_some(Step::UpdatePodTemplate)
}

/// A voter's ordinal lies beyond the StatefulSet (someone shrank it): grow it back so the
/// voter's pod exists. Growing never removes anything, so it is allowed without quorum.
pub(super) fn host_members(v: &View) -> Option<Step> {
    let config = v.config();
    let top = config
        .voters
        .iter()
        .chain(&config.outgoing_voters)
        .filter_map(|&id| v.owner(id))
        .max()?;
    (top >= v.sts_replicas()).then_some(Step::SetStatefulSetReplicas(top + 1))
}

/// An outdated pod that serves no vote: not running (crash-looping on the old image, say),
/// or answering as a non-voter. Deleting it costs no vote and brings it back on the current
/// template. A running pod that does not answer may still be a working voter: left alone.
pub(super) fn restart_idle(v: &View) -> Option<Step> {
    v.pods()
        .find(|pod| {
            let idle = !pod.running
                || matches!(pod.node, NodeReport::Reachable { node_id, .. } if !v.is_voter(node_id));
            v.outdated(pod) && !pod.terminating && idle
        })
        .map(|pod| Step::RestartPod { pod: pod.name.clone() })
}

/// A learner that will never be promoted: its ordinal is beyond the spec, its pod answers
/// with another id or as removed, or nobody knows its pod. Removing a learner never
/// changes a majority. A learner whose pod is merely down is kept.
pub(super) fn stale_learner(v: &View) -> Option<Step> {
    v.learners()
        .iter()
        .copied()
        .find(|&id| match v.reporter(id) {
            Some(k) => {
                k >= v.d.replicas || v.report(k).is_some_and(|(_, s)| s == NodeState::Removed)
            }
            None => match v.owner(id) {
                None => true,
                Some(k) => k >= v.d.replicas || v.report(k).is_some_and(|(other, _)| other != id),
            },
        })
        .map(|node_id| Step::RemoveMember { node_id })
}

/// Pods beyond the spec that run no member (a scale-up abandoned before its pod joined, a
/// StatefulSet someone grew), then PVCs beyond the StatefulSet that no pod or member uses.
pub(super) fn housekeeping(v: &View) -> Option<Step> {
    let target = v.shrink_target(v.d.replicas);
    if target < v.sts_replicas() {
        return Some(Step::SetStatefulSetReplicas(target));
    }
    if v.d.reclaim_policy != ReclaimPolicy::Delete {
        return None;
    }
    v.o.pvcs
        .iter()
        .copied()
        .find(|&k| {
            k >= v.sts_replicas()
                && v.pod(k).is_none()
                && !v.members().any(|id| v.owner(id) == Some(k))
        })
        .map(|ordinal| Step::DeletePvc { ordinal })
}
