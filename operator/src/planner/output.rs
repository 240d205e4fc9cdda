//! Planner outputs: the one [`Step`] to apply, and what status and Events should say.

use std::fmt;

use super::types::{BlockedCode, NodeId, Operation};

/// The single action of one reconcile. Every step is idempotent: applying it twice (an
/// operator killed after applying but before writing status) is harmless.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    /// Create the StatefulSet from the current spec with this many replicas.
    CreateStatefulSet { replicas: u32 },
    /// Write the current spec's pod template into the StatefulSet. Its `OnDelete` update
    /// strategy means no pod restarts until the planner deletes it.
    UpdatePodTemplate,
    /// Set the StatefulSet's replica count.
    SetStatefulSetReplicas(u32),
    /// `Admin.Bootstrap` on the pod: it becomes a one-voter cluster.
    Bootstrap { pod: String },
    /// `Admin.PrepareJoin` on the pod, then `Admin.AddLearner` on the leader. One step:
    /// PrepareJoin only touches a node outside the configuration and both calls are
    /// idempotent, so a crash between them is resumed by repeating both.
    AddLearner { pod: String, node_id: NodeId },
    /// `Admin.Promote`: the caught-up learner becomes a voter.
    Promote { node_id: NodeId },
    /// `Admin.TransferLeadership` on the leader `from`.
    TransferLeadership { from: NodeId, to: NodeId },
    /// `Admin.RemoveMember` of a voter or a learner (never the leader).
    RemoveMember { node_id: NodeId },
    /// `Admin.ChangeMembership`: promote learner `new` and remove voter `old` in one joint
    /// change; the leader leaves the joint configuration by itself.
    ReplaceMember { old: NodeId, new: NodeId },
    /// Delete the pod; the StatefulSet recreates it from its current template.
    RestartPod { pod: String },
    /// Delete the PersistentVolumeClaim of this ordinal.
    DeletePvc { ordinal: u32 },
    /// `Admin.Snapshot` on every member, then record `status.lastSnapshot`.
    Snapshot { request_id: String },
    /// Write `status.operation` (and nothing else) before the operation's first mutation.
    RecordOperation(Operation),
    /// Nothing to apply now; requeue and observe again.
    Wait { reason: WaitReason },
    /// The cluster matches the spec.
    None,
}

impl Step {
    /// Anything but `Wait` and `None`. `RecordOperation` only writes status, but it is
    /// still the reconcile's one write.
    pub fn is_mutating(&self) -> bool {
        !matches!(self, Step::Wait { .. } | Step::None)
    }

    /// Steps that change the Raft configuration.
    pub fn is_membership_change(&self) -> bool {
        matches!(
            self,
            Step::AddLearner { .. }
                | Step::Promote { .. }
                | Step::RemoveMember { .. }
                | Step::ReplaceMember { .. }
        )
    }

    /// PascalCase name, e.g. for `status.operation.step`.
    pub fn name(&self) -> &'static str {
        match self {
            Step::CreateStatefulSet { .. } => "CreateStatefulSet",
            Step::UpdatePodTemplate => "UpdatePodTemplate",
            Step::SetStatefulSetReplicas(_) => "SetStatefulSetReplicas",
            Step::Bootstrap { .. } => "Bootstrap",
            Step::AddLearner { .. } => "AddLearner",
            Step::Promote { .. } => "Promote",
            Step::TransferLeadership { .. } => "TransferLeadership",
            Step::RemoveMember { .. } => "RemoveMember",
            Step::ReplaceMember { .. } => "ReplaceMember",
            Step::RestartPod { .. } => "RestartPod",
            Step::DeletePvc { .. } => "DeletePvc",
            Step::Snapshot { .. } => "Snapshot",
            Step::RecordOperation(_) => "RecordOperation",
            Step::Wait { .. } => "Wait",
            Step::None => "None",
        }
    }
}

/// Why the planner waits. Waiting is the normal state between two steps of an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WaitReason {
    /// The pod is missing, not running, or its node does not answer yet.
    PodStarting { ordinal: u32 },
    /// The pod is being deleted.
    PodTerminating { ordinal: u32 },
    /// Quorum holds but no leader answered (an election is under way).
    LeaderElection,
    /// A joint or uncommitted configuration, or another learner, is in flight.
    ConfigChangeCommitting,
    /// The learner's lag is above the catch-up threshold.
    LearnerCatchingUp { node_id: NodeId },
    /// A restarted member is not back yet or not caught up.
    MemberRejoining { node_id: NodeId },
    /// No healthy, caught-up voter to hand leadership to.
    TransferTarget { from: NodeId },
    /// Restarting this member now would leave fewer healthy voters than a majority.
    HealthyVoters { node_id: NodeId },
    /// See [`Plan::blocked`].
    Blocked(BlockedCode),
}

impl fmt::Display for WaitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitReason::PodStarting { ordinal } => write!(f, "waiting for pod {ordinal} to answer"),
            WaitReason::PodTerminating { ordinal } => write!(f, "waiting for pod {ordinal} to go"),
            WaitReason::LeaderElection => f.write_str("waiting for a leader"),
            WaitReason::ConfigChangeCommitting => {
                f.write_str("waiting for the membership change in flight to commit")
            }
            WaitReason::LearnerCatchingUp { node_id } => {
                write!(f, "waiting for learner {node_id:x} to catch up")
            }
            WaitReason::MemberRejoining { node_id } => {
                write!(f, "waiting for member {node_id:x} to rejoin and catch up")
            }
            WaitReason::TransferTarget { from } => {
                write!(
                    f,
                    "waiting for a caught-up voter to take leadership from {from:x}"
                )
            }
            WaitReason::HealthyVoters { node_id } => {
                write!(
                    f,
                    "waiting for healthy voters before restarting {node_id:x}"
                )
            }
            WaitReason::Blocked(code) => write!(f, "blocked: {code}"),
        }
    }
}

/// Coarse state for `status.phase`; the same names as the CRD's phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// No StatefulSet yet.
    Pending,
    Bootstrapping,
    /// Membership matches the spec and every voter is healthy.
    Running,
    /// Members are being added or removed.
    Scaling,
    /// Members are being restarted onto a new template one at a time.
    Upgrading,
    /// Some voter is unhealthy or being replaced, or quorum is lost.
    Degraded,
    Paused,
    /// The planner refuses to act; see [`Plan::blocked`].
    Blocked,
}

/// `status.blockedOn`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Blocked {
    pub code: BlockedCode,
    /// What is wrong and what fixes it.
    pub message: String,
}

/// Kubernetes Event type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    Normal,
    Warning,
}

/// Fixed Event reasons (DESIGN.md), PascalCase through [`Reason::as_str`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    Bootstrapped,
    LearnerAdded,
    LearnerPromoted,
    /// A learner that will never be promoted (its pod is gone or holds another node).
    LearnerRemoved,
    LeadershipTransferred,
    MemberRemoved,
    MemberReplaced,
    /// A pod deleted so it comes back on the current template or with a fresh volume.
    PodRestarted,
    /// A PersistentVolumeClaim deleted per the reclaim policy.
    VolumeDeleted,
    SnapshotTaken,
    /// Scale-down or scale-up refused (WouldLoseQuorum, BelowMinFailureTolerance,
    /// RemovedMemberVolume).
    ScaleBlocked,
    InvalidSpec,
    QuorumLost,
    QuorumRestored,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Bootstrapped => "Bootstrapped",
            Reason::LearnerAdded => "LearnerAdded",
            Reason::LearnerPromoted => "LearnerPromoted",
            Reason::LearnerRemoved => "LearnerRemoved",
            Reason::LeadershipTransferred => "LeadershipTransferred",
            Reason::MemberRemoved => "MemberRemoved",
            Reason::MemberReplaced => "MemberReplaced",
            Reason::PodRestarted => "PodRestarted",
            Reason::VolumeDeleted => "VolumeDeleted",
            Reason::SnapshotTaken => "SnapshotTaken",
            Reason::ScaleBlocked => "ScaleBlocked",
            Reason::InvalidSpec => "InvalidSpec",
            Reason::QuorumLost => "QuorumLost",
            Reason::QuorumRestored => "QuorumRestored",
        }
    }
}

/// An Event for the reconciler to emit once the step is applied (transition Events, such
/// as QuorumLost, are emitted even when the step is a wait).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Event {
    pub kind: EventType,
    pub reason: Reason,
    pub message: String,
}

/// Voter counts for status and metrics. Learners never count toward quorum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Health {
    pub voters: u32,
    pub healthy_voters: u32,
    pub learners: u32,
    /// Healthy voters minus the majority, never below zero (as `status.failureTolerance`).
    pub failure_tolerance: u32,
}

/// The planner's answer for one reconcile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub step: Step,
    pub phase: Phase,
    /// `status.blockedOn`; `None` clears it.
    pub blocked: Option<Blocked>,
    /// `status.operation` after this reconcile; `None` clears it.
    pub operation: Option<Operation>,
    pub events: Vec<Event>,
    pub health: Health,
}
