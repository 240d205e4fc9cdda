//! Stage 4, status: computed purely from the plan, the observation and the previous status,
//! then written through the status subresource by server-side apply, and only when it
//! changed. Fields that cannot be observed this time (term, commit index) keep their last
//! value rather than flapping to empty.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use super::admin::{Lifecycle, Role};
use super::apply::Applied;
use super::conditions::{ConditionInput, conditions};
use super::context::FIELD_MANAGER;
use super::convert::operation_to_status;
use super::error::{Error, Result};
use super::observe::World;
use crate::build::{ClusterIdentity, pod_name, selector_string};
use crate::crd::{
    BlockedOn, Member, MemberRole, Phase as CrdPhase, RaftCluster, RaftClusterStatus,
};
use crate::planner::{NodeId, Observed, Phase, Plan, RaftView, Step};

/// Everything status is computed from.
#[derive(Debug)]
pub struct StatusInput<'a> {
    pub id: &'a ClusterIdentity,
    pub generation: Option<i64>,
    pub paused: bool,
    pub previous: &'a RaftClusterStatus,
    pub world: &'a World,
    pub observed: &'a Observed,
    pub plan: &'a Plan,
    pub applied: &'a Applied,
    pub now: Time,
}

pub fn compute(i: &StatusInput<'_>) -> RaftClusterStatus {
    let prev = i.previous;
    let raft = i.observed.raft.as_ref();
    let members = members(i);
    let leader = raft.and_then(|r| r.leader).and_then(|l| {
        members
            .iter()
            .find(|m| m.node_id.as_deref() == Some(l.to_string().as_str()))
            .map(|m| m.name.clone())
    });
    let answers = || i.world.reports.values().filter_map(|r| r.as_ref().ok());
    let step = operation_step(i.plan, prev);
    RaftClusterStatus {
        phase: Some(phase(i.plan.phase)),
        replicas: count(i.world.pods.len()),
        ready_replicas: count(answers().filter(|s| s.ready).count()),
        selector: Some(selector_string(i.id)),
        cluster_id: i
            .applied
            .cluster_id
            .clone()
            .or_else(|| prev.cluster_id.clone())
            .or_else(|| {
                answers()
                    .filter(|s| s.lifecycle == Lifecycle::Member)
                    .find_map(|s| s.cluster_id.clone())
            }),
        leader,
        term: raft.map_or(prev.term, |r| Some(to_i64(r.term))),
        commit_index: raft.map_or(prev.commit_index, |r| Some(to_i64(r.commit_index))),
        members,
        failure_tolerance: Some(i32::try_from(i.plan.health.failure_tolerance).unwrap_or(i32::MAX)),
        conditions: conditions(
            &ConditionInput {
                plan: i.plan,
                paused: i.paused,
                generation: i.generation,
                now: i.now.clone(),
            },
            &prev.conditions,
        ),
        operation: i.plan.operation.as_ref().map(|op| {
            operation_to_status(
                &i.id.name,
                op,
                prev.operation.as_ref(),
                &step,
                i.now.clone(),
            )
        }),
        blocked_on: i.plan.blocked.as_ref().map(|b| BlockedOn {
            code: b.code.as_str().to_owned(),
            message: b.message.clone(),
        }),
        last_snapshot: i
            .applied
            .snapshot
            .clone()
            .or_else(|| prev.last_snapshot.clone()),
        observed_generation: i.generation,
    }
}

/// `status.operation.step`: the step applied; while waiting, the step last applied.
fn operation_step(plan: &Plan, prev: &RaftClusterStatus) -> String {
    match &plan.step {
        Step::Wait { .. } | Step::None => prev
            .operation
            .as_ref()
            .map_or_else(|| "Wait".to_owned(), |o| o.step.clone()),
        step => step.name().to_owned(),
    }
}

/// One entry per pod, then one per configuration member no pod answers for (named after
/// its pod when that name is free, else `node-<id>`): list-map keys must stay unique.
fn members(i: &StatusInput<'_>) -> Vec<Member> {
    let raft = i.observed.raft.as_ref();
    let mut out: Vec<Member> = Vec::new();
    let mut listed: Vec<NodeId> = Vec::new();
    for (&ordinal, pod) in &i.world.pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let answer = i.world.reports.get(&name).and_then(|r| r.as_ref().ok());
        let node_id = answer.map(|s| s.node_id).or_else(|| {
            // Not answering: the member added for this ordinal, if any.
            raft.and_then(|r| {
                r.members
                    .iter()
                    .find(|(_, m)| m.ordinal == Some(ordinal))
                    .map(|(&id, _)| id)
            })
        });
        let role = match (answer, node_id) {
            (Some(s), Some(id)) if s.lifecycle == Lifecycle::Member => role_of(raft, id, s.role),
            _ => MemberRole::Unknown,
        };
        if let Some(id) = node_id {
            listed.push(id);
        }
        out.push(Member {
            name,
            node_id: node_id.map(|n| n.to_string()),
            role,
            healthy: answer.is_some_and(|s| s.lifecycle != Lifecycle::Removed),
            lag: node_id.and_then(|id| lag(raft, id)),
        });
    }
    for (&id, info) in raft.map(|r| &r.members).into_iter().flatten() {
        if listed.contains(&id) {
            continue;
        }
        let by_pod = info.ordinal.map(|k| pod_name(&i.id.name, k));
        let name = by_pod
            .filter(|n| !out.iter().any(|m| &m.name == n))
            .unwrap_or_else(|| format!("node-{id:x}"));
        out.push(Member {
            name,
            node_id: Some(id.to_string()),
            role: MemberRole::Unknown,
            healthy: false,
            lag: lag(raft, id),
        });
    }
    out
}

fn role_of(raft: Option<&RaftView>, id: NodeId, reported: Role) -> MemberRole {
    let Some(r) = raft else {
        return MemberRole::Unknown;
    };
    if r.config.learners.contains(&id) {
        return MemberRole::Learner;
    }
    if !(r.config.voters.contains(&id) || r.config.outgoing_voters.contains(&id)) {
        return MemberRole::Unknown;
    }
    match reported {
        Role::Leader => MemberRole::Leader,
        Role::Follower => MemberRole::Follower,
        Role::PreCandidate | Role::Candidate => MemberRole::Candidate,
    }
}

fn lag(raft: Option<&RaftView>, id: NodeId) -> Option<i64> {
    raft?.members.get(&id)?.lag.map(to_i64)
}

fn phase(p: Phase) -> CrdPhase {
    match p {
        Phase::Pending => CrdPhase::Pending,
        Phase::Bootstrapping => CrdPhase::Bootstrapping,
        Phase::Running => CrdPhase::Running,
        Phase::Scaling => CrdPhase::Scaling,
        Phase::Upgrading => CrdPhase::Upgrading,
        Phase::Degraded => CrdPhase::Degraded,
        Phase::Paused => CrdPhase::Paused,
        Phase::Blocked => CrdPhase::Blocked,
    }
}

/// Status for a spec refused by validation: only phase, blockedOn, the conditions and the
/// generation change. Nothing was observed, so the rest stays as last reported.
pub fn invalid_spec(
    previous: &RaftClusterStatus,
    blocked: &BlockedOn,
    generation: Option<i64>,
    now: Time,
) -> RaftClusterStatus {
    use crate::crd::{CONDITION_DEGRADED, CONDITION_PROGRESSING};
    let mut s = previous.clone();
    s.phase = Some(CrdPhase::Blocked);
    s.blocked_on = Some(blocked.clone());
    s.observed_generation = generation;
    for (type_, status) in [
        (CONDITION_PROGRESSING, "False"),
        (CONDITION_DEGRADED, "True"),
    ] {
        let kept = s
            .conditions
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .map(|c| c.last_transition_time.clone());
        s.conditions.retain(|c| c.type_ != type_);
        s.conditions
            .push(k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
                type_: type_.to_owned(),
                status: status.to_owned(),
                reason: BlockedOn::INVALID_SPEC.to_owned(),
                message: blocked.message.clone(),
                last_transition_time: kept.unwrap_or_else(|| now.clone()),
                observed_generation: generation,
            });
    }
    s
}

/// Server-side apply of the whole status (so fields now empty, such as a finished
/// operation, are removed), skipped when nothing changed.
pub async fn write(
    client: &kube::Client,
    id: &ClusterIdentity,
    previous: &RaftClusterStatus,
    status: &RaftClusterStatus,
) -> Result<bool> {
    if status == previous {
        return Ok(false);
    }
    let api = Api::<RaftCluster>::namespaced(client.clone(), &id.namespace);
    let body = json!({
        "apiVersion": format!("{}/{}", crate::crd::GROUP, crate::crd::VERSION),
        "kind": "RaftCluster",
        "status": status,
    });
    api.patch_status(
        &id.name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(Error::Status)?;
    Ok(true)
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
