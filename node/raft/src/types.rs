//! The plain data the core consumes and produces: log entries, hard state, membership,
//! snapshots and messages. Nothing here knows about encoding; the node turns these into
//! protobuf at its edge and into WAL records in its storage.

use std::collections::BTreeSet;

/// A member's identity. Never 0: 0 means "nobody" in [`HardState::vote`] and leader fields.
pub type NodeId = u64;

/// "No node": the value of `vote` and `leader` when there is none.
pub const NO_NODE: NodeId = 0;

/// The payload of a log entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EntryPayload {
    /// The empty entry a new leader appends to commit its term.
    Empty,
    /// An application command, opaque to the core.
    Normal(Vec<u8>),
    /// A membership change. It takes effect as soon as it is appended to a log and is
    /// reverted if it is truncated away.
    ConfChange(ConfChange),
}

/// One log entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Entry {
    pub term: u64,
    pub index: u64,
    pub payload: EntryPayload,
}

impl Entry {
    /// Approximate size in bytes, used for batching and flow control.
    pub fn size(&self) -> u64 {
        let payload = match &self.payload {
            EntryPayload::Empty => 0,
            EntryPayload::Normal(data) => data.len(),
            EntryPayload::ConfChange(cc) => 16 * cc.changes.len() + 1,
        };
        16 + payload as u64
    }
}

/// The state that must be durable before a node answers anyone (Raft paper, Figure 2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HardState {
    pub term: u64,
    /// The candidate voted for in `term`, or [`NO_NODE`].
    pub vote: NodeId,
    /// The highest index known committed. Persisted so a restart re-applies no further
    /// than necessary; it is clamped to the durable log on recovery.
    pub commit: u64,
}

/// What a single membership change does to one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConfChangeKind {
    /// Add a voter, or promote an existing learner to voter.
    AddVoter,
    /// Add a learner: it receives the log but never votes and never counts.
    AddLearner,
    /// Remove a voter or a learner.
    Remove,
}

/// One step of a membership change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConfChangeSingle {
    pub kind: ConfChangeKind,
    pub node: NodeId,
}

/// A membership change as proposed and stored in the log.
///
/// A change that alters at most one voter is applied directly (single-member change).
/// A change that alters two or more voters enters joint consensus: the new voters and the
/// old voters must both agree until the leader appends the automatic `leave_joint` entry
/// once the joint entry has committed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ConfChange {
    pub changes: Vec<ConfChangeSingle>,
    /// Leave the current joint configuration (no `changes`).
    pub leave_joint: bool,
}

impl ConfChange {
    pub fn single(kind: ConfChangeKind, node: NodeId) -> Self {
        ConfChange {
            changes: vec![ConfChangeSingle { kind, node }],
            leave_joint: false,
        }
    }

    pub fn leave_joint() -> Self {
        ConfChange {
            changes: Vec::new(),
            leave_joint: true,
        }
    }
}

/// A cluster configuration. When `outgoing` is non-empty the cluster is in joint
/// consensus and every decision needs a majority of `voters` and of `outgoing`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Membership {
    pub voters: BTreeSet<NodeId>,
    /// The previous voters while in joint consensus; empty otherwise.
    pub outgoing: BTreeSet<NodeId>,
    pub learners: BTreeSet<NodeId>,
}

/// What a snapshot stands for: the state after applying every entry up to `index`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SnapshotMeta {
    pub index: u64,
    pub term: u64,
    /// The configuration as of `index`; it travels with the snapshot.
    pub membership: Membership,
}

/// A snapshot: its metadata and the state machine's bytes. The node may leave `data`
/// empty in the core and stream the real bytes from its snapshot store.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Snapshot {
    pub meta: SnapshotMeta,
    pub data: Vec<u8>,
}

/// A Raft message between two members. `term` is the sender's current term.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub from: NodeId,
    pub to: NodeId,
    pub term: u64,
    pub body: MessageBody,
}

/// The kinds of messages the protocol exchanges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageBody {
    /// AppendEntries. An empty `entries` still carries `commit`.
    Append {
        prev_index: u64,
        prev_term: u64,
        entries: Vec<Entry>,
        commit: u64,
    },
    /// The answer to `Append` or `Snapshot`. On success `index` is the last index now
    /// known to match the leader. On rejection `index` is the rejected `prev_index` and
    /// (`hint_index`, `hint_term`) let the leader skip a whole conflicting term.
    AppendResp {
        index: u64,
        reject: bool,
        hint_index: u64,
        hint_term: u64,
    },
    /// Leader heartbeat. `round` identifies the broadcast for ReadIndex and leases.
    Heartbeat {
        commit: u64,
        round: u64,
    },
    HeartbeatResp {
        round: u64,
    },
    /// RequestVote (`pre` = PreVote). `force` is set by a leadership transfer and
    /// bypasses the receiver's leader lease.
    Vote {
        pre: bool,
        last_index: u64,
        last_term: u64,
        force: bool,
    },
    /// A rejection carries the responder's term, which may be higher than the candidate's.
    VoteResp {
        pre: bool,
        reject: bool,
    },
    /// InstallSnapshot.
    Snapshot {
        snapshot: Snapshot,
    },
    /// Leadership transfer: start an election now, skipping pre-vote.
    TimeoutNow,
    /// A follower forwards a read to the leader. `request` is the follower's opaque id.
    ReadIndex {
        request: Vec<u8>,
    },
    /// The leader's answer: the read may be served once `index` is applied. `index` is 0
    /// and `reject` is set when the leader could not serve it (for example, it lost
    /// leadership).
    ReadIndexResp {
        request: Vec<u8>,
        index: u64,
        reject: bool,
    },
}

impl MessageBody {
    /// A short name, used in traces, scenario scripts and metrics labels.
    pub fn name(&self) -> &'static str {
        match self {
            MessageBody::Append { .. } => "Append",
            MessageBody::AppendResp { .. } => "AppendResp",
            MessageBody::Heartbeat { .. } => "Heartbeat",
            MessageBody::HeartbeatResp { .. } => "HeartbeatResp",
            MessageBody::Vote { pre: true, .. } => "PreVote",
            MessageBody::Vote { pre: false, .. } => "Vote",
            MessageBody::VoteResp { pre: true, .. } => "PreVoteResp",
            MessageBody::VoteResp { pre: false, .. } => "VoteResp",
            MessageBody::Snapshot { .. } => "Snapshot",
            MessageBody::TimeoutNow => "TimeoutNow",
            MessageBody::ReadIndex { .. } => "ReadIndex",
            MessageBody::ReadIndexResp { .. } => "ReadIndexResp",
        }
    }
}

/// A node's role.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Role {
    #[default]
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

/// How a read is confirmed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ReadMode {
    /// ReadIndex: a fresh heartbeat round must be acknowledged by a quorum.
    #[default]
    Safe,
    /// Lease read: served at once while the leader's lease, strictly shorter than the
    /// election timeout, holds; falls back to `Safe` otherwise.
    Lease,
}

/// A confirmed read: the application may answer request `request` once it has applied
/// the log through `index`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadState {
    pub request: Vec<u8>,
    pub index: u64,
}
