//! Growing a cluster by one member the safe way, as `raftctl member add` and the
//! operator's scale-up do it: PrepareJoin on the new node, AddLearner on the leader,
//! wait until the learner's lag is small, then Promote. A learner never counts toward
//! quorum, so a slow catch-up cannot cost the cluster its availability.

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use super::AdminClient;
use super::admin_pb::{AddLearnerRequest, MemberKind, StatusResponse};
use super::cli::show_id;
use super::error::{Error, Result};

/// How long and how close [`AdminClient::add_member`] waits before promoting.
#[derive(Debug, Clone)]
pub struct JoinOptions {
    /// Promote once the learner is at most this many entries behind the leader.
    pub max_lag: u64,
    /// Give up (leaving a learner) when it has not caught up after this long.
    pub catch_up_timeout: Duration,
    /// Pause between two looks at the leader's status.
    pub poll: Duration,
}

impl Default for JoinOptions {
    fn default() -> Self {
        Self {
            max_lag: 100,
            catch_up_timeout: Duration::from_secs(300),
            poll: Duration::from_millis(200),
        }
    }
}

/// One step of [`AdminClient::add_member`], reported as it happens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum JoinStep {
    /// The new node accepted the cluster id and told its identity.
    PrepareJoin {
        /// The new node's id.
        id: u64,
        /// Its name.
        name: String,
        /// The address peers will dial.
        peer_addr: String,
    },
    /// The leader committed the node as a learner.
    AddLearner {
        /// The new node's id.
        id: u64,
        /// Its name.
        name: String,
        /// The log index of the configuration change.
        index: u64,
    },
    /// The learner is still this far behind (reported when the lag changes).
    CatchingUp {
        /// The new node's id.
        id: u64,
        /// Its name.
        name: String,
        /// Entries behind the leader.
        lag: u64,
    },
    /// The learner is close enough to promote.
    CaughtUp {
        /// The new node's id.
        id: u64,
        /// Its name.
        name: String,
        /// Entries behind the leader.
        lag: u64,
    },
    /// The leader committed the node as a voter.
    Promote {
        /// The new node's id.
        id: u64,
        /// Its name.
        name: String,
        /// The log index of the configuration change.
        index: u64,
    },
    /// The node was a voter already (an earlier run added it): nothing to do.
    AlreadyVoter {
        /// The node's id.
        id: u64,
        /// Its name.
        name: String,
        /// The leader's applied index when it said so.
        index: u64,
    },
}

impl JoinStep {
    /// The id of the node being added.
    pub fn id(&self) -> u64 {
        match self {
            Self::PrepareJoin { id, .. }
            | Self::AddLearner { id, .. }
            | Self::CatchingUp { id, .. }
            | Self::CaughtUp { id, .. }
            | Self::Promote { id, .. }
            | Self::AlreadyVoter { id, .. } => *id,
        }
    }
}

impl fmt::Display for JoinStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PrepareJoin {
                id,
                name,
                peer_addr,
            } => write!(
                f,
                "PrepareJoin: node {} ({name}), peer address {peer_addr}",
                show_id(*id)
            ),
            Self::AddLearner { name, index, .. } => {
                write!(f, "AddLearner: {name} is a learner (index {index})")
            }
            Self::CatchingUp { name, lag, .. } => {
                write!(f, "catching up: {name} is {lag} entries behind")
            }
            Self::CaughtUp { name, lag, .. } => {
                write!(f, "caught up: {name} is {lag} entries behind")
            }
            Self::Promote { name, index, .. } => {
                write!(f, "Promote: {name} is a voter (index {index})")
            }
            Self::AlreadyVoter { name, index, .. } => {
                write!(f, "already a voter: {name} (index {index}); nothing to do")
            }
        }
    }
}

impl AdminClient {
    /// Adds the uninitialized node whose client address is `addr` as a voter, calling
    /// `on_step` after each step. Every step is idempotent on the server, so running it
    /// again after a failure resumes rather than duplicates.
    pub async fn add_member(
        &self,
        addr: &str,
        options: &JoinOptions,
        mut on_step: impl FnMut(&JoinStep),
    ) -> Result<u64> {
        let leader = self.leader_status().await?;
        let join = self.prepare_join(addr, &leader.cluster_id).await?;
        let (id, name) = (join.node_id, join.name.clone());
        on_step(&JoinStep::PrepareJoin {
            id,
            name: name.clone(),
            peer_addr: join.peer_addr.clone(),
        });
        let client_addr = match join.client_addr.as_str() {
            "" => addr.to_owned(),
            advertised => advertised.to_owned(),
        };
        let added = self
            .add_learner(AddLearnerRequest {
                node_id: id,
                name: name.clone(),
                peer_addr: join.peer_addr,
                client_addr,
            })
            .await?;
        let kind = added
            .members
            .iter()
            .find(|m| m.node_id == id)
            .map(|m| m.kind);
        if kind == Some(MemberKind::Voter as i32) {
            on_step(&JoinStep::AlreadyVoter {
                id,
                name,
                index: added.index,
            });
            return Ok(id);
        }
        on_step(&JoinStep::AddLearner {
            id,
            name: name.clone(),
            index: added.index,
        });
        let give_up_at = Instant::now() + options.catch_up_timeout;
        let mut last_lag = None;
        loop {
            let status = self.leader_status().await?;
            let Some(learner) = status.members.iter().find(|m| m.node_id == id) else {
                return Err(Error::Membership(format!(
                    "{name} ({}) left the configuration while catching up",
                    show_id(id)
                )));
            };
            let lag = learner.lag;
            if learner.match_index > 0 && lag <= options.max_lag {
                on_step(&JoinStep::CaughtUp {
                    id,
                    name: name.clone(),
                    lag,
                });
                break;
            }
            if last_lag != Some(lag) {
                last_lag = Some(lag);
                on_step(&JoinStep::CatchingUp {
                    id,
                    name: name.clone(),
                    lag,
                });
            }
            if Instant::now() >= give_up_at {
                return Err(Error::Membership(format!(
                    "{name} did not catch up within {:?} (lag {lag}); it stays a learner",
                    options.catch_up_timeout
                )));
            }
            tokio::time::sleep(options.poll).await;
        }
        let promoted = self.promote(id).await?;
        on_step(&JoinStep::Promote {
            id,
            name,
            index: promoted.index,
        });
        Ok(id)
    }

    /// The status that lists the configuration: the leader's if it is reachable (only
    /// the leader knows every member's lag), otherwise that of any member that answers.
    pub async fn config_status(&self) -> Result<StatusResponse> {
        Ok(self.seek_leader().await?.0)
    }
}
