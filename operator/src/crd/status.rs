//! `RaftClusterStatus`: what the operator observed and what it is doing. The operation in
//! flight lives here, written before its first mutation, so a restarted operator resumes
//! from status instead of guessing.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::validate::FieldError;

/// Condition type: a quorum of members is healthy and serves requests.
pub const CONDITION_AVAILABLE: &str = "Available";
/// Condition type: an operation is moving the cluster toward its spec.
pub const CONDITION_PROGRESSING: &str = "Progressing";
/// Condition type: some member is unhealthy or the spec cannot be met.
pub const CONDITION_DEGRADED: &str = "Degraded";

/// Observed state of a `RaftCluster`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RaftClusterStatus {
    /// Coarse state for `kubectl get raft`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,

    /// Pods that exist (the scale subresource's current size).
    #[serde(default)]
    pub replicas: i32,

    /// Members that are in the configuration and caught up.
    #[serde(default)]
    pub ready_replicas: i32,

    /// Label selector of the member pods, in string form, for the scale subresource (and
    /// so for a HorizontalPodAutoscaler).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,

    /// Raft cluster id, fixed at bootstrap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,

    /// Name of the member that leads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,

    /// Latest Raft term seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term: Option<i64>,

    /// Leader's commit index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_index: Option<i64>,

    /// Every pod and Raft member, one entry per name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub members: Vec<Member>,

    /// Voters that may fail without losing quorum right now: healthy voters minus the
    /// majority of all voters, never below zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_tolerance: Option<i32>,

    /// Available, Progressing and Degraded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// The operation in flight, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<Operation>,

    /// Why the operator refuses to act, until the cause is fixed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_on: Option<BlockedOn>,

    /// The latest on-demand snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_snapshot: Option<LastSnapshot>,

    /// `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Coarse cluster state.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    /// Accepted, nothing running yet.
    Pending,
    /// The first member is being bootstrapped.
    Bootstrapping,
    /// Membership matches the spec and every member is healthy.
    Running,
    /// Members are being added or removed.
    Scaling,
    /// Members are being restarted onto a new image one at a time.
    Upgrading,
    /// Quorum holds but some member is unhealthy or being replaced.
    Degraded,
    /// `spec.paused` is set.
    Paused,
    /// The operator refuses to act; see `blockedOn`.
    Blocked,
}

/// One member as the operator sees it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// Pod name, stable across restarts.
    pub name: String,
    /// Raft node id in decimal; a new id under the same name means the volume was lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// Raft role, Unknown when the member did not answer.
    pub role: MemberRole,
    /// Answered Admin.Status within its deadline.
    pub healthy: bool,
    /// Entries behind the leader's last index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<i64>,
}

/// Raft role of a member.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum MemberRole {
    /// Leads the current term.
    Leader,
    /// Voter following a leader.
    Follower,
    /// Receives the log but does not vote.
    Learner,
    /// Campaigning (including pre-vote).
    Candidate,
    /// Did not answer, or is not a member yet.
    Unknown,
}

/// The operation in flight: enough to resume it after an operator restart.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    /// What is being done.
    pub kind: OperationKind,
    /// Member (pod name) the operation acts on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// StatefulSet ordinal of `target`, so resuming needs no name parsing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub ordinal: Option<i32>,
    /// Raft node id the operation acts on, in decimal (a string: ids are random 64-bit
    /// values, beyond what JSON numbers carry exactly). The old id during a replacement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// When the operation started.
    pub started: Time,
    /// Current step within the operation, e.g. `AddLearner`.
    pub step: String,
}

/// Kinds of multi-step operations, one per planner rule in DESIGN.md. Snapshots take one
/// step and are recorded in `lastSnapshot` instead.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum OperationKind {
    /// Start the first member as a one-voter cluster.
    Bootstrap,
    /// Add one member through a learner.
    ScaleUp,
    /// Remove the highest-ordinal member.
    ScaleDown,
    /// Swap a member whose volume was lost.
    Replace,
    /// Restart one member onto the new image.
    Upgrade,
}

/// Why the operator refuses to act.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlockedOn {
    /// Machine-readable cause in PascalCase, e.g. `InvalidSpec` or `WouldLoseQuorum`.
    pub code: String,
    /// What is wrong and what fixes it.
    pub message: String,
}

impl BlockedOn {
    /// Code for a spec refused by [`crate::crd::validate`].
    pub const INVALID_SPEC: &'static str = "InvalidSpec";

    /// The blocked reason for a spec that failed validation; every error is in the message.
    pub fn invalid_spec(errors: &[FieldError]) -> Self {
        let message = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        Self {
            code: Self::INVALID_SPEC.to_owned(),
            message,
        }
    }
}

/// The latest on-demand snapshot.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastSnapshot {
    /// The `spec.snapshot.requestId` it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Log index the snapshot covers (the lowest across members).
    pub index: i64,
    /// When the last member finished.
    pub time: Time,
}
