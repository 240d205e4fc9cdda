//! Conversions between kube objects and the planner's plain data: the spec to
//! [`Desired`], the observed objects and Admin answers to [`Observed`], and the operation
//! between the planner and `status.operation`. Pure functions, unit-tested here.

mod operation;
mod raft;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

pub use operation::{operation_from_status, operation_to_status};
pub use raft::{node_report, raft_view};

use super::observe::World;
use crate::build::{
    CONTAINER_NAME, DATA_VOLUME, TEMPLATE_HASH_ANNOTATION, env::var_for_flag, template_hash,
};
use crate::crd::{RaftClusterSpec, RaftClusterStatus};
use crate::planner::{
    BlockedCode, DEFAULT_MAX_CATCH_UP_LAG, Desired, NodeReport, NodeState, Observed, ObservedPod,
    ObservedStatefulSet, PodTemplate, ReclaimPolicy,
};

/// The spec as the planner sees it. Negative numbers (which the schema refuses) become 0,
/// which the planner blocks on as an invalid spec rather than acting on.
pub fn desired(spec: &RaftClusterSpec) -> Desired {
    Desired {
        replicas: u32::try_from(spec.replicas).unwrap_or(0),
        image: spec.image.clone(),
        min_failure_tolerance: u32::try_from(spec.min_failure_tolerance).unwrap_or(0),
        paused: spec.paused,
        snapshot_request_id: spec.snapshot.request_id.clone(),
        snapshot_entry_threshold: u64::try_from(spec.snapshot.entry_threshold).unwrap_or(0),
        template_hash: template_hash(spec),
        storage_size: spec.storage.size.0.clone(),
        reclaim_policy: match spec.storage.reclaim_policy {
            crate::crd::ReclaimPolicy::Retain => ReclaimPolicy::Retain,
            crate::crd::ReclaimPolicy::Delete => ReclaimPolicy::Delete,
        },
        max_catch_up_lag: DEFAULT_MAX_CATCH_UP_LAG,
    }
}

/// What the planner needs from this reconcile's observation and from the previous status
/// (its memory: the operation in flight, the last snapshot, the cluster id, the block).
pub fn observed(cluster: &str, world: &World, status: &RaftClusterStatus) -> Observed {
    let statefulset = world.statefulset.as_ref().map(|sts| ObservedStatefulSet {
        replicas: sts
            .spec
            .replicas
            .and_then(|r| u32::try_from(r).ok())
            .unwrap_or(0),
        template: statefulset_template(sts),
        storage_size: claim_size(sts),
    });
    let removed = removed_ids(world);
    let pods = world
        .pods
        .iter()
        .map(|(&ordinal, pod)| {
            let mut p = observed_pod(ordinal, pod, world);
            // Removed while it was still joining: it never hears of it and would be
            // asked to join again, and refused, forever. Its volume must go instead.
            if let NodeReport::Reachable { node_id, state } = &mut p.node
                && *state == NodeState::Uninitialized
                && removed.contains(node_id)
            {
                *state = NodeState::Removed;
            }
            p
        })
        .collect();
    Observed {
        statefulset,
        pods,
        pvcs: world.pvcs.clone(),
        raft: raft_view(cluster, world, status),
        operation: status.operation.as_ref().and_then(operation_from_status),
        last_snapshot_request_id: status
            .last_snapshot
            .as_ref()
            .and_then(|s| s.request_id.clone()),
        cluster_id: status.cluster_id.clone(),
        blocked: status
            .blocked_on
            .as_ref()
            .and_then(|b| BlockedCode::parse(&b.code)),
    }
}

/// Every id a member reports as removed from the cluster.
fn removed_ids(world: &World) -> std::collections::BTreeSet<u64> {
    world
        .reports
        .values()
        .filter_map(|r| r.as_ref().ok())
        .flat_map(|s| s.removed_node_ids.iter().copied())
        .collect()
}

fn observed_pod(ordinal: u32, pod: &Pod, world: &World) -> ObservedPod {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let status = pod.status.as_ref();
    let container_running = status
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == CONTAINER_NAME))
        .and_then(|c| c.state.as_ref())
        .is_some_and(|s| s.running.is_some());
    let running = status.and_then(|s| s.phase.as_deref()) == Some("Running") && container_running;
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let node = world
        .reports
        .get(&name)
        .map_or(NodeReport::Unreachable, node_report);
    ObservedPod {
        ordinal,
        name,
        running,
        ready,
        terminating: pod.metadata.deletion_timestamp.is_some(),
        template: pod
            .spec
            .as_ref()
            .map(|spec| template_of(Some(&pod.metadata), spec))
            .unwrap_or_default(),
        node,
    }
}

/// The template the StatefulSet creates pods from.
pub fn statefulset_template(sts: &StatefulSet) -> PodTemplate {
    let template = &sts.spec.template;
    template
        .spec
        .as_ref()
        .map(|spec| template_of(template.metadata.as_ref(), spec))
        .unwrap_or_default()
}

/// The storage request of the StatefulSet's data volume claim template.
fn claim_size(sts: &StatefulSet) -> Option<String> {
    let claim = sts
        .spec
        .volume_claim_templates
        .iter()
        .flatten()
        .find(|c| c.metadata.name.as_deref() == Some(DATA_VOLUME))?;
    let requests = claim.spec.as_ref()?.resources.as_ref()?.requests.as_ref()?;
    requests.get("storage").map(|q| q.0.clone())
}

/// The parts of a pod (or pod template) the planner compares: the member container's
/// image, the snapshot threshold it was started with, and the template hash annotation.
/// A missing value reads as empty or 0, so such a pod counts as outdated and is restarted
/// onto the current template.
pub fn template_of(meta: Option<&ObjectMeta>, spec: &PodSpec) -> PodTemplate {
    let Some(c) = spec.containers.iter().find(|c| c.name == CONTAINER_NAME) else {
        return PodTemplate::default();
    };
    let hash = meta
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get(TEMPLATE_HASH_ANNOTATION))
        .cloned()
        .unwrap_or_default();
    let threshold_var = var_for_flag("--snapshot-threshold");
    let threshold = c
        .env
        .iter()
        .flatten()
        .find(|e| e.name == threshold_var)
        .and_then(|e| e.value.as_deref())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    PodTemplate {
        image: c.image.clone().unwrap_or_default(),
        snapshot_entry_threshold: threshold,
        hash,
    }
}

#[cfg(test)]
mod tests;
