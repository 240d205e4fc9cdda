//! The leader-following client: [`Client`] for the key-value API and [`AdminClient`]
//! for the operator's API. Given any members' client addresses it finds the leader,
//! follows NotLeader hints, rotates past members that do not answer, and retries within
//! a budget; writes are exactly-once through server-side sessions.
//!
//! ```text
//!  put ──► session pool ──► Pool::call ──► leader? ──ok──► answer
//!          (one write in       │  ▲         │ NotLeader{addr}: go there now
//!           flight each)       │  └─────────┘ down / timeout: next member, backoff
//!                              └─► budget spent: Error::Unavailable (tried ...)
//! ```

mod admin;
pub mod bench;
pub mod cli;
mod details;
mod error;
mod join;
mod kv;
mod pool;
mod session;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

pub use self::admin::AdminClient;
pub use self::error::{Error, Result};
pub use self::join::{JoinOptions, JoinStep};
pub use self::kv::{CasOutcome, Client};
pub use crate::sm::kv::{Expected, KeyValue};

/// Generated Admin types the [`AdminClient`] returns as they are: the operator and
/// `raftctl` consume them directly.
pub use crate::pb::admin as admin_pb;

/// How a client talks to the cluster. The defaults suit a cluster on one network.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Deadline of one attempt (one RPC to one member), including connecting.
    pub call_timeout: Duration,
    /// Total time one call may spend on attempts and backoff before it fails with
    /// [`Error::Unavailable`]. Must cover an election for writes to ride through one.
    pub retry_budget: Duration,
    /// First backoff pause; it doubles per failure up to `backoff_max`, with jitter.
    pub backoff_base: Duration,
    /// Longest backoff pause. An election takes about one election timeout, and a
    /// client that polls at most this far apart finds the new leader soon after it wins
    /// (etcd's client retries every 25 ms).
    pub backoff_max: Duration,
    /// How long a leader-only call waits before the client starts asking the members
    /// who leads (a lease read, which a follower refuses naming its leader), again at
    /// each such interval while the call lasts. Once the member being waited on no
    /// longer answers as leader and another member answers as leader, or is named as
    /// one, the call goes there (the same request: a write keeps its session sequence
    /// number). A paused or cut-off leader then costs about an election, not
    /// `call_timeout`; a slow call on a live leader stays. `None`: wait for
    /// `call_timeout`.
    pub leader_probe: Option<Duration>,
    /// Most writes one [`Client`] keeps in flight at once, one per session; further
    /// writes wait for a free session.
    pub max_sessions: usize,
    /// TLS to members that serve it (`--tls-*` on raft-node); plain TCP when `None`.
    pub tls: Option<crate::tls::ClientTls>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            call_timeout: Duration::from_secs(2),
            retry_budget: Duration::from_secs(10),
            backoff_base: Duration::from_millis(10),
            backoff_max: Duration::from_millis(100),
            leader_probe: Some(Duration::from_millis(250)),
            max_sessions: 64,
            tls: None,
        }
    }
}

/// How fresh a read must be.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum ReadConsistency {
    /// Sees every write acknowledged before the read started (ReadIndex on the leader).
    #[default]
    Linearizable,
    /// Like linearizable while the leader's lease holds, without a quorum round trip;
    /// relies on bounded clock drift.
    Lease,
    /// Whatever the member that answers has applied; any member serves it.
    Stale,
}

impl ReadConsistency {
    pub(crate) fn to_pb(self) -> crate::pb::kv::ReadConsistency {
        use crate::pb::kv::ReadConsistency as Pb;
        match self {
            Self::Linearizable => Pb::Linearizable,
            Self::Lease => Pb::Lease,
            Self::Stale => Pb::Stale,
        }
    }
}

impl fmt::Display for ReadConsistency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Linearizable => "linearizable",
            Self::Lease => "lease",
            Self::Stale => "stale",
        })
    }
}

impl FromStr for ReadConsistency {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "linearizable" => Ok(Self::Linearizable),
            "lease" => Ok(Self::Lease),
            "stale" => Ok(Self::Stale),
            other => Err(format!(
                "unknown consistency {other:?} (expected linearizable, lease or stale)"
            )),
        }
    }
}
