//! Static parameters of one Raft node. Time is counted in ticks: the application decides
//! how long a tick is.

use crate::error::{ConfigError, Result};
use crate::types::{NO_NODE, NodeId};

/// Known bugs the `mutations` feature can re-inject, to prove the simulator and the
/// scenario scripts catch them.
#[cfg(feature = "mutations")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mutation {
    /// Commit an entry of a previous term by counting replicas (Raft paper, Figure 8).
    CommitPreviousTerm,
    /// Grant a vote without checking the candidate's log is up to date.
    VoteWithoutUpToDateCheck,
    /// Reset the election timer when granting a pre-vote.
    PreVoteResetsElectionTimer,
    /// Confirm every ReadIndex request with the same context.
    ReuseReadIndexContext,
    /// Allow a second configuration change while one is pending.
    TwoPendingConfChanges,
    /// Truncate the log on any append whose entries differ in position, even a stale one.
    TruncateOnStaleAppend,
}

#[cfg(feature = "mutations")]
impl Mutation {
    pub const ALL: [Mutation; 6] = [
        Mutation::CommitPreviousTerm,
        Mutation::VoteWithoutUpToDateCheck,
        Mutation::PreVoteResetsElectionTimer,
        Mutation::ReuseReadIndexContext,
        Mutation::TwoPendingConfChanges,
        Mutation::TruncateOnStaleAppend,
    ];
}

/// Raft parameters. `Config::new(id)` gives the defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub id: NodeId,
    /// Minimum election timeout in ticks. The randomized timeout is drawn from
    /// `[election_tick, 2 * election_tick)`.
    pub election_tick: u32,
    /// Ticks between leader heartbeats. Must be smaller than `election_tick`.
    pub heartbeat_tick: u32,
    /// How many ticks shorter than `election_tick` a leader lease is, to absorb clock drift
    /// between members. At least 1, so the lease is strictly shorter than the election
    /// timeout.
    pub lease_margin_ticks: u32,
    /// Maximum entries in one Append message.
    pub max_entries_per_msg: u64,
    /// Maximum payload bytes in one Append message (at least one entry is always sent).
    pub max_bytes_per_msg: u64,
    /// Maximum Append messages in flight to one follower in the replicate state.
    pub max_inflight_msgs: usize,
    /// Maximum bytes in flight to one follower (0 = unlimited).
    pub max_inflight_bytes: u64,
    /// Pre-vote (Raft thesis 9.6): a candidate first asks whether it could win.
    pub pre_vote: bool,
    /// Check-quorum: a leader steps down when it has not heard from a quorum within an
    /// election timeout, and followers ignore votes while they hear from a leader.
    pub check_quorum: bool,
    /// Seed for the randomized election timeout.
    pub seed: u64,
    #[cfg(feature = "mutations")]
    pub mutation: Option<Mutation>,
}

impl Config {
    pub fn new(id: NodeId) -> Self {
        Config {
            id,
            election_tick: 10,
            heartbeat_tick: 1,
            lease_margin_ticks: 2,
            max_entries_per_msg: 512,
            max_bytes_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            max_inflight_bytes: 0,
            pre_vote: true,
            check_quorum: true,
            seed: id,
            #[cfg(feature = "mutations")]
            mutation: None,
        }
    }

    /// Checks that the parameters make sense together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id == NO_NODE {
            return Err(ConfigError::new("id", "must not be 0"));
        }
        if self.heartbeat_tick == 0 {
            return Err(ConfigError::new("heartbeat_tick", "must be at least 1"));
        }
        if self.election_tick <= self.heartbeat_tick {
            return Err(ConfigError::new(
                "election_tick",
                "must be greater than heartbeat_tick",
            ));
        }
        if self.lease_margin_ticks == 0 || self.lease_margin_ticks >= self.election_tick {
            return Err(ConfigError::new(
                "lease_margin_ticks",
                "must be at least 1 and smaller than election_tick",
            ));
        }
        if self.max_entries_per_msg == 0 {
            return Err(ConfigError::new(
                "max_entries_per_msg",
                "must be at least 1",
            ));
        }
        if self.max_inflight_msgs == 0 {
            return Err(ConfigError::new("max_inflight_msgs", "must be at least 1"));
        }
        Ok(())
    }

    #[cfg(feature = "mutations")]
    pub(crate) fn mutated(&self, m: Mutation) -> bool {
        self.mutation == Some(m)
    }

    #[cfg(not(feature = "mutations"))]
    #[inline(always)]
    pub(crate) fn mutated(&self, _m: Mutation) -> bool {
        false
    }
}

/// Without the feature the mutation names still exist for the call sites, but no value
/// can ever be selected.
#[cfg(not(feature = "mutations"))]
#[derive(Clone, Copy, Debug)]
pub(crate) enum Mutation {
    CommitPreviousTerm,
    VoteWithoutUpToDateCheck,
    PreVoteResetsElectionTimer,
    ReuseReadIndexContext,
    TwoPendingConfChanges,
    TruncateOnStaleAppend,
}
