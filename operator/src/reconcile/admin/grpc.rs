//! [`GrpcAdmin`]: [`MemberAdmin`] over the generated tonic client, and the conversions from
//! `admin.proto`. Channels are cached per address and connect lazily; every socket sets
//! TCP_NODELAY (DESIGN.md: without it a loopback unary call takes ~8x longer).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use kuberaft_node::pb::admin as pb;
use kuberaft_node::pb::admin::admin_client::AdminClient;
use prost::Message;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Response};

use super::{
    AdminError, AdminResult, JoinIdentity, Lifecycle, MemberAdmin, MemberKind, MemberStatus,
    NodeStatus, PodEndpoint, Role, SnapshotInfo,
};

/// Deadlines and credentials of the Admin calls.
#[derive(Clone, Debug)]
pub struct AdminConfig {
    /// TCP connect.
    pub connect_timeout: Duration,
    /// Status: short, so one dead pod does not stall a reconcile.
    pub status_deadline: Duration,
    /// Bootstrap, PrepareJoin and membership changes. The node answers a change once it is
    /// committed and gives up after 10 s, so this must be longer.
    pub change_deadline: Duration,
    /// Snapshot and TransferLeadership.
    pub slow_deadline: Duration,
    /// Sent as `authorization: Bearer <token>` when the nodes require it.
    pub token: Option<String>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            connect_timeout: Duration::from_secs(1),
            status_deadline: Duration::from_secs(2),
            change_deadline: Duration::from_secs(15),
            slow_deadline: Duration::from_secs(30),
            token: None,
        }
    }
}

/// Past this many cached channels (pods come and go with new IPs), the cache starts over.
const MAX_CHANNELS: usize = 512;

/// The real [`MemberAdmin`].
#[derive(Debug)]
pub struct GrpcAdmin {
    config: AdminConfig,
    token: Option<AsciiMetadataValue>,
    channels: Mutex<HashMap<String, Channel>>,
}

/// The token cannot be sent as a gRPC header.
#[derive(Debug, thiserror::Error)]
#[error("the admin token contains characters a gRPC header cannot carry")]
pub struct InvalidToken;

impl GrpcAdmin {
    pub fn new(config: AdminConfig) -> Result<Self, InvalidToken> {
        let token = config
            .token
            .as_deref()
            .map(|t| format!("Bearer {}", t.trim()).parse::<AsciiMetadataValue>())
            .transpose()
            .map_err(|_| InvalidToken)?;
        Ok(GrpcAdmin {
            config,
            token,
            channels: Mutex::new(HashMap::new()),
        })
    }

    fn client(&self, at: &PodEndpoint) -> AdminResult<AdminClient<Channel>> {
        let mut channels = self
            .channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(ch) = channels.get(&at.address) {
            return Ok(AdminClient::new(ch.clone()));
        }
        let endpoint = Endpoint::from_shared(format!("http://{}", at.address))
            .map_err(|e| AdminError::Unavailable {
                pod: at.pod.clone(),
                message: format!("bad address {:?}: {e}", at.address),
            })?
            .connect_timeout(self.config.connect_timeout)
            .tcp_nodelay(true);
        let channel = endpoint.connect_lazy();
        if channels.len() >= MAX_CHANNELS {
            channels.clear();
        }
        channels.insert(at.address.clone(), channel.clone());
        Ok(AdminClient::new(channel))
    }

    fn request<M>(&self, msg: M, deadline: Duration) -> Request<M> {
        let mut req = Request::new(msg);
        req.set_timeout(deadline);
        if let Some(token) = &self.token {
            req.metadata_mut().insert("authorization", token.clone());
        }
        req
    }
}

/// Runs one call under `deadline` (also enforced locally: a peer that never answers the
/// grpc-timeout header must not stall the reconcile).
async fn within<T>(
    at: &PodEndpoint,
    deadline: Duration,
    call: impl Future<Output = Result<Response<T>, tonic::Status>>,
) -> AdminResult<T> {
    match tokio::time::timeout(deadline, call).await {
        Err(_) => Err(AdminError::Timeout {
            pod: at.pod.clone(),
        }),
        Ok(Ok(resp)) => Ok(resp.into_inner()),
        Ok(Err(status)) => Err(from_status(&at.pod, &status)),
    }
}

fn from_status(pod: &str, s: &tonic::Status) -> AdminError {
    let pod = pod.to_owned();
    let message = s.message().to_owned();
    let not_leader =
        !s.details().is_empty() && kuberaft_node::pb::kv::NotLeader::decode(s.details()).is_ok();
    match s.code() {
        Code::FailedPrecondition if not_leader || message.starts_with("not the leader") => {
            AdminError::NotLeader { pod, message }
        }
        Code::FailedPrecondition | Code::InvalidArgument => AdminError::Refused { pod, message },
        // A tonic server enforces the grpc-timeout header by cancelling the call.
        Code::DeadlineExceeded | Code::Cancelled => AdminError::Timeout { pod },
        Code::Unavailable | Code::Aborted | Code::ResourceExhausted => {
            AdminError::Unavailable { pod, message }
        }
        Code::Unauthenticated | Code::PermissionDenied => {
            AdminError::Unauthenticated { pod, message }
        }
        code => AdminError::Failed {
            pod,
            code: format!("{code:?}"),
            message,
        },
    }
}

impl MemberAdmin for GrpcAdmin {
    async fn status(&self, at: &PodEndpoint) -> AdminResult<NodeStatus> {
        let d = self.config.status_deadline;
        let mut c = self.client(at)?;
        let req = self.request(pb::StatusRequest {}, d);
        within(at, d, c.status(req)).await.map(node_status)
    }

    async fn bootstrap(&self, at: &PodEndpoint, cluster_id: &str) -> AdminResult<String> {
        let d = self.config.change_deadline;
        let mut c = self.client(at)?;
        let req = self.request(
            pb::BootstrapRequest {
                cluster_id: cluster_id.to_owned(),
            },
            d,
        );
        within(at, d, c.bootstrap(req)).await.map(|r| r.cluster_id)
    }

    async fn prepare_join(&self, at: &PodEndpoint, cluster_id: &str) -> AdminResult<JoinIdentity> {
        let d = self.config.change_deadline;
        let mut c = self.client(at)?;
        let req = self.request(
            pb::PrepareJoinRequest {
                cluster_id: cluster_id.to_owned(),
            },
            d,
        );
        let r = within(at, d, c.prepare_join(req)).await?;
        Ok(JoinIdentity {
            node_id: r.node_id,
            name: r.name,
            peer_addr: r.peer_addr,
            client_addr: r.client_addr,
        })
    }

    async fn add_learner(&self, leader: &PodEndpoint, learner: &JoinIdentity) -> AdminResult<()> {
        let d = self.config.change_deadline;
        let mut c = self.client(leader)?;
        let req = self.request(
            pb::AddLearnerRequest {
                node_id: learner.node_id,
                name: learner.name.clone(),
                peer_addr: learner.peer_addr.clone(),
                client_addr: learner.client_addr.clone(),
            },
            d,
        );
        within(leader, d, c.add_learner(req)).await.map(drop)
    }

    async fn promote(&self, leader: &PodEndpoint, node_id: u64) -> AdminResult<()> {
        let d = self.config.change_deadline;
        let mut c = self.client(leader)?;
        let req = self.request(pb::PromoteRequest { node_id }, d);
        within(leader, d, c.promote(req)).await.map(drop)
    }

    async fn remove_member(&self, leader: &PodEndpoint, node_id: u64) -> AdminResult<()> {
        let d = self.config.change_deadline;
        let mut c = self.client(leader)?;
        let req = self.request(pb::RemoveMemberRequest { node_id }, d);
        within(leader, d, c.remove_member(req)).await.map(drop)
    }

    async fn change_membership(
        &self,
        leader: &PodEndpoint,
        promote: &[u64],
        remove: &[u64],
    ) -> AdminResult<()> {
        let d = self.config.change_deadline;
        let mut c = self.client(leader)?;
        let req = self.request(
            pb::ChangeMembershipRequest {
                promote: promote.to_vec(),
                remove: remove.to_vec(),
            },
            d,
        );
        within(leader, d, c.change_membership(req)).await.map(drop)
    }

    async fn transfer_leadership(&self, leader: &PodEndpoint, to: u64) -> AdminResult<u64> {
        let d = self.config.slow_deadline;
        let mut c = self.client(leader)?;
        // The target is always named, and a retry that finds it leading is answered as
        // done, so `from` is not needed.
        let req = self.request(pb::TransferLeadershipRequest { to, from: 0 }, d);
        within(leader, d, c.transfer_leadership(req))
            .await
            .map(|r| r.leader_id)
    }

    async fn snapshot(&self, at: &PodEndpoint) -> AdminResult<SnapshotInfo> {
        let d = self.config.slow_deadline;
        let mut c = self.client(at)?;
        let req = self.request(pb::SnapshotRequest {}, d);
        within(at, d, c.snapshot(req)).await.map(|r| SnapshotInfo {
            index: r.index,
            term: r.term,
        })
    }
}

/// `admin.proto`'s StatusResponse as the domain type. Unknown enum values (a newer node)
/// read as the most cautious value: not a member, follower, voter.
pub(crate) fn node_status(r: pb::StatusResponse) -> NodeStatus {
    let leader = r.role == pb::Role::Leader as i32;
    let lifecycle = match pb::Lifecycle::try_from(r.lifecycle) {
        Ok(pb::Lifecycle::Uninitialized) | Err(_) => Lifecycle::Uninitialized,
        Ok(pb::Lifecycle::Joining) => Lifecycle::Joining,
        Ok(pb::Lifecycle::Member) => Lifecycle::Member,
        Ok(pb::Lifecycle::Removed) => Lifecycle::Removed,
    };
    let role = match pb::Role::try_from(r.role) {
        Ok(pb::Role::Follower) | Err(_) => Role::Follower,
        Ok(pb::Role::PreCandidate) => Role::PreCandidate,
        Ok(pb::Role::Candidate) => Role::Candidate,
        Ok(pb::Role::Leader) => Role::Leader,
    };
    let members = r
        .members
        .into_iter()
        .map(|m| MemberStatus {
            kind: match pb::MemberKind::try_from(m.kind) {
                Ok(pb::MemberKind::Voter) | Err(_) => MemberKind::Voter,
                Ok(pb::MemberKind::Learner) => MemberKind::Learner,
                Ok(pb::MemberKind::OutgoingVoter) => MemberKind::OutgoingVoter,
            },
            node_id: m.node_id,
            name: m.name,
            peer_addr: m.peer_addr,
            client_addr: m.client_addr,
            // Progress is only meaningful on the leader (0 elsewhere).
            match_index: leader.then_some(m.match_index),
            lag: leader.then_some(m.lag),
        })
        .collect();
    NodeStatus {
        node_id: r.node_id,
        name: r.name,
        cluster_id: (!r.cluster_id.is_empty()).then_some(r.cluster_id),
        lifecycle,
        role,
        term: r.term,
        leader_id: (r.leader_id != 0).then_some(r.leader_id),
        commit_index: r.commit_index,
        last_index: r.last_index,
        snapshot_index: r.snapshot_index,
        members,
        joint: r.joint,
        config_index: r.config_index,
        outgoing_voters: r.outgoing_voters,
        removed_node_ids: r.removed_node_ids,
        ready: r.ready,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_status_keeps_progress_follower_status_drops_it() {
        let member = pb::Member {
            node_id: 7,
            name: "demo-1".into(),
            kind: pb::MemberKind::Learner as i32,
            match_index: 40,
            lag: 2,
            ..Default::default()
        };
        let leader = node_status(pb::StatusResponse {
            node_id: 1,
            role: pb::Role::Leader as i32,
            lifecycle: pb::Lifecycle::Member as i32,
            leader_id: 1,
            members: vec![member.clone()],
            ..Default::default()
        });
        assert_eq!(leader.role, Role::Leader);
        assert_eq!(leader.leader_id, Some(1));
        assert_eq!(leader.members[0].kind, MemberKind::Learner);
        assert_eq!(leader.members[0].lag, Some(2));
        assert_eq!(leader.members[0].match_index, Some(40));

        let follower = node_status(pb::StatusResponse {
            node_id: 2,
            role: pb::Role::Follower as i32,
            members: vec![member],
            ..Default::default()
        });
        assert_eq!(follower.leader_id, None);
        assert_eq!(follower.cluster_id, None);
        assert_eq!(follower.lifecycle, Lifecycle::Uninitialized);
        assert_eq!(follower.members[0].lag, None);
    }

    #[test]
    fn grpc_codes_map_to_error_kinds() {
        let cases = [
            (
                tonic::Status::failed_precondition("not the leader; no leader is known"),
                "NotLeader",
            ),
            (
                tonic::Status::failed_precondition("node 3 is not a learner"),
                "Refused",
            ),
            (tonic::Status::unavailable("shutting down"), "Unavailable"),
            (tonic::Status::deadline_exceeded("slow"), "Timeout"),
            (tonic::Status::cancelled("Timeout expired"), "Timeout"),
            (tonic::Status::unauthenticated("token"), "Unauthenticated"),
            (tonic::Status::internal("boom"), "Failed"),
        ];
        for (status, label) in cases {
            assert_eq!(from_status("demo-0", &status).label(), label, "{status:?}");
        }
    }

    #[test]
    fn token_must_be_a_header_value() {
        let bad = AdminConfig {
            token: Some("a\nb".into()),
            ..AdminConfig::default()
        };
        assert!(GrpcAdmin::new(bad).is_err());
        let good = AdminConfig {
            token: Some("s3cret\n".into()),
            ..AdminConfig::default()
        };
        assert!(GrpcAdmin::new(good).is_ok());
    }
}
