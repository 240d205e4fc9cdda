//! Stage 3, apply: the plan's ONE step. Kubernetes steps are server-side applies and
//! deletes; membership steps are Admin calls on the pod or the leader. Every step is
//! idempotent (the nodes answer a repeated, already-done change with success), so an
//! operator killed mid-step repeats it on the next reconcile. `RecordOperation` writes
//! nothing here: the status stage writes it, before any later step can mutate.

use futures::future::try_join_all;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::admin::{AdminError, Lifecycle, MemberAdmin, PodEndpoint};
use super::context::Context;
use super::error::{Error, Result};
use super::objects;
use super::observe::World;
use crate::build::ClusterIdentity;
use crate::crd::{LastSnapshot, RaftCluster};
use crate::planner::{NodeId, Observed, Step};

/// What a step learned that status must record.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Applied {
    /// From Bootstrap: the new cluster's id.
    pub cluster_id: Option<String>,
    /// From Snapshot.
    pub snapshot: Option<LastSnapshot>,
}

/// The inputs every step may need.
#[derive(Debug)]
pub struct Target<'a> {
    pub id: &'a ClusterIdentity,
    pub cluster: &'a RaftCluster,
    pub world: &'a World,
    pub observed: &'a Observed,
}

pub async fn apply_step<A: MemberAdmin>(
    ctx: &Context<A>,
    t: &Target<'_>,
    step: &Step,
) -> Result<Applied> {
    let admin = &ctx.admin;
    let client = &ctx.client;
    let spec = &t.cluster.spec;
    let current = t.world.statefulset.as_ref();
    let mut applied = Applied::default();
    match step {
        Step::CreateStatefulSet { replicas } => {
            objects::apply_statefulset(client, t.id, spec, *replicas, current).await?;
        }
        Step::UpdatePodTemplate => {
            let replicas = t.observed.statefulset.as_ref().map_or(0, |s| s.replicas);
            objects::apply_statefulset(client, t.id, spec, replicas, current).await?;
        }
        Step::SetStatefulSetReplicas(n) => {
            objects::apply_statefulset(client, t.id, spec, *n, current).await?;
        }
        Step::Bootstrap { pod } => {
            // The RaftCluster's uid names the Raft cluster: unique, stable across operator
            // restarts, and a recreated RaftCluster never adopts an old cluster's volumes.
            let at = pod_endpoint(t, step, pod)?;
            let cluster_id = admin
                .bootstrap(&at, &t.id.uid)
                .await
                .map_err(Error::admin("Bootstrap"))?;
            applied.cluster_id = Some(cluster_id);
        }
        Step::AddLearner { pod, node_id } => {
            let at = pod_endpoint(t, step, pod)?;
            let cluster_id = cluster_id(t).ok_or_else(|| stale(step, "no cluster id known"))?;
            let joining = admin
                .prepare_join(&at, &cluster_id)
                .await
                .map_err(Error::admin("PrepareJoin"))?;
            if joining.node_id != *node_id {
                return Err(Error::admin("PrepareJoin")(AdminError::IdentityChanged {
                    pod: pod.clone(),
                    expected: *node_id,
                    got: joining.node_id,
                }));
            }
            let leader = leader_endpoint(t, step)?;
            admin
                .add_learner(&leader, &joining)
                .await
                .map_err(Error::admin("AddLearner"))?;
        }
        Step::Promote { node_id } => {
            let leader = leader_endpoint(t, step)?;
            admin
                .promote(&leader, *node_id)
                .await
                .map_err(Error::admin("Promote"))?;
        }
        Step::TransferLeadership { from, to } => {
            let at = node_endpoint(t, step, *from)?;
            admin
                .transfer_leadership(&at, *to)
                .await
                .map_err(Error::admin("TransferLeadership"))?;
        }
        Step::RemoveMember { node_id } => {
            let leader = leader_endpoint(t, step)?;
            admin
                .remove_member(&leader, *node_id)
                .await
                .map_err(Error::admin("RemoveMember"))?;
        }
        Step::ReplaceMember { old, new } => {
            let leader = leader_endpoint(t, step)?;
            admin
                .change_membership(&leader, &[*new], &[*old])
                .await
                .map_err(Error::admin("ChangeMembership"))?;
        }
        Step::RestartPod { pod } => {
            let observed = t
                .world
                .pods
                .values()
                .find(|p| p.metadata.name.as_deref() == Some(pod.as_str()))
                .ok_or_else(|| stale(step, format!("pod {pod} is gone")))?;
            objects::delete_pod(client, t.id, observed).await?;
        }
        Step::DeletePvc { ordinal } => objects::delete_pvc(client, t.id, *ordinal).await?,
        Step::Snapshot { request_id } => {
            applied.snapshot = Some(snapshot(ctx, t, step, request_id).await?);
        }
        Step::RecordOperation(_) | Step::Wait { .. } | Step::None => {}
    }
    Ok(applied)
}

/// Admin.Snapshot on every member that answered, concurrently. `index` is the lowest, so
/// `lastSnapshot.index` is covered by every member's snapshot. A member that is down
/// snapshots by its own threshold; any refusal fails the step, to be repeated.
async fn snapshot<A: MemberAdmin>(
    ctx: &Context<A>,
    t: &Target<'_>,
    step: &Step,
    request_id: &str,
) -> Result<LastSnapshot> {
    let members: Vec<PodEndpoint> = t
        .world
        .reports
        .iter()
        .filter(|(_, r)| matches!(r, Ok(s) if s.lifecycle == Lifecycle::Member))
        .filter_map(|(pod, _)| t.world.endpoint(pod))
        .collect();
    if members.is_empty() {
        return Err(stale(step, "no member answered"));
    }
    let taken = try_join_all(members.iter().map(|at| ctx.admin.snapshot(at)))
        .await
        .map_err(Error::admin("Snapshot"))?;
    let index = taken.iter().map(|s| s.index).min().unwrap_or(0);
    let time: Time = ctx.now();
    Ok(LastSnapshot {
        request_id: Some(request_id.to_owned()),
        index: i64::try_from(index).unwrap_or(i64::MAX),
        time,
    })
}

/// The cluster id a joining node must be told: status holds it once bootstrapped; before
/// status caught up, the members say it.
fn cluster_id(t: &Target<'_>) -> Option<String> {
    t.cluster
        .status
        .as_ref()
        .and_then(|s| s.cluster_id.clone())
        .or_else(|| {
            t.world
                .reports
                .values()
                .filter_map(|r| r.as_ref().ok())
                .filter(|s| s.lifecycle == Lifecycle::Member)
                .find_map(|s| s.cluster_id.clone())
        })
}

fn pod_endpoint(t: &Target<'_>, step: &Step, pod: &str) -> Result<PodEndpoint> {
    t.world
        .endpoint(pod)
        .ok_or_else(|| stale(step, format!("pod {pod} has no IP")))
}

fn node_endpoint(t: &Target<'_>, step: &Step, node: NodeId) -> Result<PodEndpoint> {
    t.world
        .endpoint_of_node(node)
        .ok_or_else(|| stale(step, format!("no pod answers as node {node:x}")))
}

fn leader_endpoint(t: &Target<'_>, step: &Step) -> Result<PodEndpoint> {
    let leader = t
        .observed
        .raft
        .as_ref()
        .and_then(|r| r.leader)
        .ok_or_else(|| stale(step, "no leader answered"))?;
    node_endpoint(t, step, leader)
}

fn stale(step: &Step, reason: impl Into<String>) -> Error {
    Error::Stale {
        step: step.name(),
        reason: reason.into(),
    }
}
