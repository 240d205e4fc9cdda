//! Bootstrap: create the StatefulSet, then make pod 0 a one-voter cluster. The cluster
//! grows from there one member at a time (scale_up). A cluster is bootstrapped at most
//! once: a cluster id in status, a Raft view or any node that reports Member or Removed
//! means it already was.

use super::Decision;
use super::output::{Step, WaitReason};
use super::types::{NodeState, Operation};
use super::view::View;

/// No StatefulSet. Before bootstrap: record the operation, then create it with one pod.
/// After (someone deleted it): recreate it large enough for every retained volume, so the
/// old members come back with their data; fewer pods than members could never regain
/// quorum.
pub(super) fn create(v: &View) -> Option<Decision> {
    if v.sts().is_some() {
        return None;
    }
    if v.bootstrapped() {
        let replicas = v.o.pvcs.iter().max().map_or(1, |&top| top + 1);
        return Some(Decision::step(
            Step::CreateStatefulSet { replicas },
            v.o.operation.clone(),
        ));
    }
    Some(start_or(v, Step::CreateStatefulSet { replicas: 1 }))
}

/// The StatefulSet exists but no cluster does yet: bootstrap pod 0 once it answers.
pub(super) fn bootstrap(v: &View) -> Option<Decision> {
    if v.bootstrapped() {
        return None;
    }
    if v.sts_replicas() == 0 {
        return Some(start_or(v, Step::SetStatefulSetReplicas(1)));
    }
    let step = match (v.pod(0), v.serving(0)) {
        (Some(pod), Some((_, NodeState::Uninitialized))) => Step::Bootstrap {
            pod: pod.name.clone(),
        },
        _ => Step::Wait {
            reason: WaitReason::PodStarting { ordinal: 0 },
        },
    };
    Some(start_or(v, step))
}

/// `step` if the Bootstrap operation is recorded, else recording it first.
fn start_or(v: &View, step: Step) -> Decision {
    if v.o.operation == Some(Operation::Bootstrap) {
        Decision::step(step, Some(Operation::Bootstrap))
    } else {
        Decision::step(
            Step::RecordOperation(Operation::Bootstrap),
            Some(Operation::Bootstrap),
        )
    }
}
