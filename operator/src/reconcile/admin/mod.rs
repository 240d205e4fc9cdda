//! [`MemberAdmin`]: the operator's only view of a member's Admin API. The reconciler talks
//! to pods through this trait, so the reconcile tests drive a fake cluster instead of gRPC;
//! [`GrpcAdmin`] is the real implementation over the generated tonic client.
//!
//! The types here are the domain side of `admin.proto`; protobuf stays in `grpc.rs`.

mod grpc;
#[cfg(test)]
mod grpc_tests;

use std::future::Future;

pub use grpc::{AdminConfig, GrpcAdmin};

/// A pod's Admin endpoint: the pod name (for messages and fakes) and `host:port`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PodEndpoint {
    pub pod: String,
    pub address: String,
}

/// A node's lifecycle as it reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lifecycle {
    /// Empty data dir: waits for Bootstrap or PrepareJoin.
    Uninitialized,
    /// PrepareJoin done, waiting for the leader's AddLearner.
    Joining,
    /// In the configuration (voter or learner).
    Member,
    /// Removed from the configuration; never serves again.
    Removed,
}

/// Raft role of the answering node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

/// How a member belongs to the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MemberKind {
    Voter,
    Learner,
    /// A voter of the outgoing half of a joint configuration.
    OutgoingVoter,
}

/// One configuration member as a node reports it. Progress is known on the leader only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberStatus {
    pub node_id: u64,
    /// The member's name: its pod name under the operator.
    pub name: String,
    pub peer_addr: String,
    pub client_addr: String,
    pub kind: MemberKind,
    /// Leader's view; `None` on other nodes.
    pub match_index: Option<u64>,
    /// Entries behind the leader's last index; `None` on other nodes.
    pub lag: Option<u64>,
}

/// A node's answer to Admin.Status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    pub node_id: u64,
    pub name: String,
    /// `None` before Bootstrap or PrepareJoin.
    pub cluster_id: Option<String>,
    pub lifecycle: Lifecycle,
    pub role: Role,
    pub term: u64,
    /// `None` when no leader is known.
    pub leader_id: Option<u64>,
    pub commit_index: u64,
    pub last_index: u64,
    pub snapshot_index: u64,
    pub members: Vec<MemberStatus>,
    /// In joint consensus.
    pub joint: bool,
    /// Index of the last configuration entry in the log (0 when folded into a snapshot).
    pub config_index: u64,
    /// The whole outgoing half while joint.
    pub outgoing_voters: Vec<u64>,
    /// Ids removed from the cluster (applied removals); never members again.
    pub removed_node_ids: Vec<u64>,
    /// A member of the configuration and caught up.
    pub ready: bool,
}

/// What a joining node says about itself; the leader's AddLearner needs all of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinIdentity {
    pub node_id: u64,
    pub name: String,
    pub peer_addr: String,
    pub client_addr: String,
}

/// Result of Admin.Snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub index: u64,
    pub term: u64,
}

/// Why an Admin call failed. Variant names double as metric labels ([`AdminError::label`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// No answer within the call's deadline.
    #[error("{pod}: no answer within the deadline")]
    Timeout { pod: String },
    /// Could not connect, or the node is shutting down or busy.
    #[error("{pod}: unavailable: {message}")]
    Unavailable { pod: String, message: String },
    /// A leader-only call reached a follower (leadership moved since observing).
    #[error("{pod}: not the leader ({message})")]
    NotLeader { pod: String, message: String },
    /// The node refused in its current state (a precondition or an invalid argument).
    #[error("{pod}: refused: {message}")]
    Refused { pod: String, message: String },
    /// The bearer token is missing or wrong.
    #[error("{pod}: admin token rejected: {message}")]
    Unauthenticated { pod: String, message: String },
    /// A node answered with another identity than the one the plan was made for.
    #[error("{pod}: answers as node {got:x}, the plan was made for node {expected:x}")]
    IdentityChanged {
        pod: String,
        expected: u64,
        got: u64,
    },
    /// Anything else the node answered.
    #[error("{pod}: {code}: {message}")]
    Failed {
        pod: String,
        code: String,
        message: String,
    },
}

impl AdminError {
    /// Stable metric label.
    pub fn label(&self) -> &'static str {
        match self {
            AdminError::Timeout { .. } => "Timeout",
            AdminError::Unavailable { .. } => "Unavailable",
            AdminError::NotLeader { .. } => "NotLeader",
            AdminError::Refused { .. } => "Refused",
            AdminError::Unauthenticated { .. } => "Unauthenticated",
            AdminError::IdentityChanged { .. } => "IdentityChanged",
            AdminError::Failed { .. } => "Failed",
        }
    }
}

pub type AdminResult<T> = Result<T, AdminError>;

/// A member's Admin API as the reconciler uses it. Every mutating call is idempotent on the
/// node (a repeated AddLearner, Promote or RemoveMember that is already done succeeds), which
/// is what lets an operator killed mid-step simply repeat the step.
///
/// Membership calls go to the leader and answer once the change is committed.
pub trait MemberAdmin: Send + Sync + 'static {
    /// Admin.Status, with a short deadline: a member that does not answer is unhealthy.
    fn status(&self, at: &PodEndpoint) -> impl Future<Output = AdminResult<NodeStatus>> + Send;
    /// Admin.Bootstrap: the uninitialized node becomes a one-voter cluster with this id;
    /// returns the id the node holds.
    fn bootstrap(
        &self,
        at: &PodEndpoint,
        cluster_id: &str,
    ) -> impl Future<Output = AdminResult<String>> + Send;
    /// Admin.PrepareJoin: tell an uninitialized node which cluster it will join.
    fn prepare_join(
        &self,
        at: &PodEndpoint,
        cluster_id: &str,
    ) -> impl Future<Output = AdminResult<JoinIdentity>> + Send;
    /// Admin.AddLearner on the leader.
    fn add_learner(
        &self,
        leader: &PodEndpoint,
        learner: &JoinIdentity,
    ) -> impl Future<Output = AdminResult<()>> + Send;
    /// Admin.Promote on the leader.
    fn promote(
        &self,
        leader: &PodEndpoint,
        node_id: u64,
    ) -> impl Future<Output = AdminResult<()>> + Send;
    /// Admin.RemoveMember on the leader.
    fn remove_member(
        &self,
        leader: &PodEndpoint,
        node_id: u64,
    ) -> impl Future<Output = AdminResult<()>> + Send;
    /// Admin.ChangeMembership on the leader: one joint change.
    fn change_membership(
        &self,
        leader: &PodEndpoint,
        promote: &[u64],
        remove: &[u64],
    ) -> impl Future<Output = AdminResult<()>> + Send;
    /// Admin.TransferLeadership on the leader; returns the new leader.
    fn transfer_leadership(
        &self,
        leader: &PodEndpoint,
        to: u64,
    ) -> impl Future<Output = AdminResult<u64>> + Send;
    /// Admin.Snapshot on one member.
    fn snapshot(&self, at: &PodEndpoint) -> impl Future<Output = AdminResult<SnapshotInfo>> + Send;
}
