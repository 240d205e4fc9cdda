//! Typed errors of the core. Their variant names double as metric labels.

use crate::types::NodeId;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why the core refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("not the leader (known leader: {})", leader.map_or("none".to_string(), |l| l.to_string()))]
    NotLeader { leader: Option<NodeId> },
    #[error("leadership is being transferred to {transferee}; retry on the new leader")]
    TransferInProgress { transferee: NodeId },
    #[error("a configuration change at index {index} is still pending")]
    ConfChangePending { index: u64 },
    #[error("the leader has not yet committed an entry of its own term")]
    NotReadyInTerm,
    #[error("invalid configuration change: {0}")]
    InvalidConfChange(#[from] ConfChangeError),
    #[error("cannot transfer leadership to {target}: {reason}")]
    InvalidTransfer {
        target: NodeId,
        reason: &'static str,
    },
    #[error("cannot compact to index {index}: {reason}")]
    InvalidCompaction { index: u64, reason: &'static str },
    #[error("message from {from} to {to} is not addressed to this node ({id})")]
    Misaddressed {
        from: NodeId,
        to: NodeId,
        id: NodeId,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("invalid initial state: {0}")]
    InvalidState(&'static str),
}

/// A configuration parameter that makes no sense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config field `{field}` {reason}")]
pub struct ConfigError {
    pub field: &'static str,
    pub reason: &'static str,
}

impl ConfigError {
    pub fn new(field: &'static str, reason: &'static str) -> Self {
        ConfigError { field, reason }
    }
}

/// Why a membership change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfChangeError {
    #[error("the change is empty")]
    Empty,
    #[error("node id 0 is reserved")]
    ZeroId,
    #[error("node {0} appears twice in one change")]
    Duplicate(NodeId),
    #[error("node {0} is already a voter")]
    AlreadyVoter(NodeId),
    #[error("node {0} is already a learner")]
    AlreadyLearner(NodeId),
    #[error("node {0} is a voter; remove it before adding it as a learner")]
    VoterToLearner(NodeId),
    #[error("node {0} is not a member")]
    NotMember(NodeId),
    #[error("the configuration would have no voters")]
    NoVoters,
    #[error("already in joint consensus; leave it first")]
    AlreadyJoint,
    #[error("not in joint consensus")]
    NotJoint,
}
