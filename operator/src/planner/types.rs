//! Planner inputs: what the user asked for ([`Desired`]) and what the reconciler saw
//! ([`Observed`]). Plain data without kube types, so the planner stays a pure domain module
//! that tests can feed hand-built observations; the reconciler converts the CRD and the
//! Admin.Status answers into these.

use std::collections::{BTreeMap, BTreeSet};

/// A Raft member's identity (the node's `node_id`, random at first start, never reused).
pub type NodeId = u64;

/// Catch-up threshold used by [`Desired::new`]: a learner (or a restarted member) whose lag
/// behind the leader is at most this many entries counts as caught up.
pub const DEFAULT_MAX_CATCH_UP_LAG: u64 = 100;

/// What happens to a member's PersistentVolumeClaim once the member has left.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ReclaimPolicy {
    /// Keep the claim. The operator never deletes it, so a pod that later reuses the
    /// ordinal with a removed member's volume blocks until a human deletes the claim.
    Retain,
    /// Delete the claim once its member has left the configuration.
    #[default]
    Delete,
}

/// The parts of the pod template that, when they differ from a pod's, make the planner
/// restart that pod (operator-ordered rolling update; the StatefulSet uses `OnDelete`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PodTemplate {
    pub image: String,
    /// Passed to the node; applied entries after which it snapshots and compacts.
    pub snapshot_entry_threshold: u64,
    /// Hash of every other pod-template input of the spec (resources, Raft timing,
    /// scheduling, annotations; the pod annotation `kuberaft.io/pod-template-hash`). A pod
    /// whose hash differs is restarted like one on an old image.
    pub hash: String,
}

/// The spec, reduced to what the planner decides on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    /// The only desired size: the planner never shrinks to what it observes.
    pub replicas: u32,
    pub image: String,
    /// A removal that would leave fewer spare voters than this is refused.
    pub min_failure_tolerance: u32,
    /// No mutating step while set.
    pub paused: bool,
    /// A value different from [`Observed::last_snapshot_request_id`] asks for a snapshot.
    pub snapshot_request_id: Option<String>,
    pub snapshot_entry_threshold: u64,
    /// See [`PodTemplate::hash`].
    pub template_hash: String,
    /// `spec.storage.size`; volumes are never resized, so a StatefulSet whose claims ask
    /// for another size blocks the planner (`StorageSizeChanged`).
    pub storage_size: String,
    pub reclaim_policy: ReclaimPolicy,
    /// Lag (entries behind the leader) at or under which a member counts as caught up: a
    /// learner may be promoted, a restarted member has rejoined.
    pub max_catch_up_lag: u64,
}

impl Desired {
    /// A spec with defaults for everything but the size and the image.
    pub fn new(replicas: u32, image: impl Into<String>) -> Self {
        Desired {
            replicas,
            image: image.into(),
            min_failure_tolerance: 0,
            paused: false,
            snapshot_request_id: None,
            snapshot_entry_threshold: 10_000,
            template_hash: String::new(),
            storage_size: String::new(),
            reclaim_policy: ReclaimPolicy::Delete,
            max_catch_up_lag: DEFAULT_MAX_CATCH_UP_LAG,
        }
    }

    /// The template every pod should run.
    pub fn template(&self) -> PodTemplate {
        PodTemplate {
            image: self.image.clone(),
            snapshot_entry_threshold: self.snapshot_entry_threshold,
            hash: self.template_hash.clone(),
        }
    }
}

/// Everything the reconciler observed, plus the planner's own memory from status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// `None` when the StatefulSet does not exist.
    pub statefulset: Option<ObservedStatefulSet>,
    /// Pods that exist (terminating ones included); an ordinal with no entry has no pod.
    /// Order does not matter; for a duplicated ordinal the first entry wins.
    pub pods: Vec<ObservedPod>,
    /// Ordinals whose PersistentVolumeClaim exists and is not being deleted.
    pub pvcs: BTreeSet<u32>,
    /// The cluster as seen by the leader when it answered, else by the most up-to-date
    /// member that did; `None` when no member answered.
    pub raft: Option<RaftView>,
    /// `status.operation`: the operation in flight, so a restarted operator resumes it.
    pub operation: Option<Operation>,
    /// `status.lastSnapshot.requestId`: the last snapshot request handled.
    pub last_snapshot_request_id: Option<String>,
    /// `status.clusterId`: set once bootstrapped. Never bootstrap again while it is set.
    pub cluster_id: Option<String>,
    /// `status.blockedOn.code` as last written, so block and quorum Events fire only on
    /// transitions.
    pub blocked: Option<BlockedCode>,
}

/// The StatefulSet as it is, not as the builder would make it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObservedStatefulSet {
    pub replicas: u32,
    pub template: PodTemplate,
    /// The storage request of its volume claim template (immutable in Kubernetes).
    pub storage_size: Option<String>,
}

/// One pod and what its node said through Admin.Status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedPod {
    pub ordinal: u32,
    pub name: String,
    /// The raft-node container runs (phase Running, not waiting in CrashLoopBackOff). A pod
    /// that does not run serves no vote, so the planner may restart it onto a new template.
    pub running: bool,
    /// Readiness probe (member and caught up); informational, the planner uses the report.
    pub ready: bool,
    /// Has a deletion timestamp.
    pub terminating: bool,
    /// The template the pod was created from.
    pub template: PodTemplate,
    pub node: NodeReport,
}

/// The answer of a pod's Admin.Status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NodeReport {
    /// No answer within the deadline.
    Unreachable,
    Reachable {
        node_id: NodeId,
        state: NodeState,
    },
}

/// A node's lifecycle state as it reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NodeState {
    /// Empty data dir: serves Admin, waits for Bootstrap or PrepareJoin.
    Uninitialized,
    /// Part of a cluster (as a voter or a learner).
    Member,
    /// Removed from the configuration: it never serves again.
    Removed,
}

/// The Raft configuration: voters, and while in joint consensus the outgoing voters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Configuration {
    pub voters: BTreeSet<NodeId>,
    /// Non-empty only in joint consensus; decisions then need both majorities.
    pub outgoing_voters: BTreeSet<NodeId>,
    /// Receive the log, never vote, never count toward quorum.
    pub learners: BTreeSet<NodeId>,
}

/// The Raft side of the observation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RaftView {
    /// The leader, when it answered; its answer is this view.
    pub leader: Option<NodeId>,
    pub term: u64,
    pub commit_index: u64,
    /// Log index of the configuration entry in effect. Above `commit_index` it is still
    /// uncommitted, which counts as a membership change in flight. 0 when unknown.
    pub config_index: u64,
    pub config: Configuration,
    /// Per member (voters, outgoing voters, learners).
    pub members: BTreeMap<NodeId, MemberInfo>,
}

/// What is known about one member beyond the configuration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemberInfo {
    /// The pod ordinal it was added for (from its peer address or `status.members`).
    /// It tells which member a pod that lost its volume used to be.
    pub ordinal: Option<u32>,
    /// From the leader's progress; `None` when not known.
    pub match_index: Option<u64>,
    /// Entries behind the leader's last index; `None` when not known.
    pub lag: Option<u64>,
}

/// A multi-step operation, recorded in status before its first mutation so a restarted
/// operator resumes it instead of choosing again. Single-step actions (snapshots,
/// housekeeping) are not recorded: there is no middle to resume from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Create the StatefulSet, then bootstrap pod 0 as a one-voter cluster.
    Bootstrap,
    /// Grow by the member at `ordinal`: StatefulSet +1, learner, catch-up, promotion.
    ScaleUp { ordinal: u32 },
    /// Remove `node_id` (at `ordinal`, when known): transfer leadership if needed,
    /// RemoveMember, StatefulSet −1, PVC per reclaim policy.
    ScaleDown {
        ordinal: Option<u32>,
        node_id: NodeId,
    },
    /// The pod at `ordinal` lost its volume: swap `old` for the pod's new node by
    /// learner + joint change. The new id is whatever the pod reports.
    Replace { ordinal: u32, old: NodeId },
    /// Restart the pod at `ordinal` (running `node_id`) onto the current template.
    Upgrade { ordinal: u32, node_id: NodeId },
}

/// Machine-readable reason the planner refuses to act.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BlockedCode {
    /// The spec cannot be acted on (zero replicas, no image).
    InvalidSpec,
    /// Fewer healthy voters than a majority: no membership change is possible.
    QuorumLost,
    /// Removing the scale-down victim would leave the smaller configuration without a
    /// healthy majority.
    WouldLoseQuorum,
    /// Removing the victim would take the failure tolerance under `minFailureTolerance`.
    BelowMinFailureTolerance,
    /// A pod that must join holds a removed member's volume and the reclaim policy is
    /// Retain, so the operator may not delete it.
    RemovedMemberVolume,
    /// `spec.storage.size` differs from the size the volumes were created with; volumes
    /// are never resized, so the spec must be set back.
    StorageSizeChanged,
}

impl BlockedCode {
    /// PascalCase, as written to `status.blockedOn.code`.
    pub fn as_str(self) -> &'static str {
        match self {
            BlockedCode::InvalidSpec => "InvalidSpec",
            BlockedCode::QuorumLost => "QuorumLost",
            BlockedCode::WouldLoseQuorum => "WouldLoseQuorum",
            BlockedCode::BelowMinFailureTolerance => "BelowMinFailureTolerance",
            BlockedCode::RemovedMemberVolume => "RemovedMemberVolume",
            BlockedCode::StorageSizeChanged => "StorageSizeChanged",
        }
    }

    /// The inverse of [`BlockedCode::as_str`], for reading status back.
    pub fn parse(code: &str) -> Option<Self> {
        [
            BlockedCode::InvalidSpec,
            BlockedCode::QuorumLost,
            BlockedCode::WouldLoseQuorum,
            BlockedCode::BelowMinFailureTolerance,
            BlockedCode::RemovedMemberVolume,
            BlockedCode::StorageSizeChanged,
        ]
        .into_iter()
        .find(|c| c.as_str() == code)
    }
}

impl std::fmt::Display for BlockedCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::BlockedCode;

    #[test]
    fn blocked_codes_round_trip_through_status() {
        for code in [
            BlockedCode::InvalidSpec,
            BlockedCode::QuorumLost,
            BlockedCode::WouldLoseQuorum,
            BlockedCode::BelowMinFailureTolerance,
            BlockedCode::RemovedMemberVolume,
            BlockedCode::StorageSizeChanged,
        ] {
            assert_eq!(BlockedCode::parse(code.as_str()), Some(code));
        }
        assert_eq!(BlockedCode::parse("QuorumAtRisk"), None);
    }
}
