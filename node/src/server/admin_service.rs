//! The Admin service the operator drives: status, bootstrap, joining, membership
//! changes, leadership transfer and snapshots. Every mutating call is idempotent, so an
//! operator that retries after a crash gets the same answer.

use std::sync::Arc;
use std::time::Duration;

use kuberaft_raft::{
    ConfChange, ConfChangeKind, ConfChangeSingle, Membership, NodeId, Role, Status as CoreStatus,
};
use tonic::{Request, Response, Status};

use super::identity::Lifecycle;
use super::kv_service::{not_leader_status, request_status};
use super::members::{MemberInfo, SystemCommand, encode_system};
use super::shared::{DriverMsg, Shared, View};
use crate::pb::admin as pb;
use crate::pb::admin::admin_server::Admin;

/// How long a membership change may take to commit (and leave joint consensus).
const CHANGE_DEADLINE: Duration = Duration::from_secs(10);

/// Checks `authorization: Bearer <token>` when a token is configured.
pub fn check_token(
    token: Option<Arc<String>>,
) -> impl Fn(Request<()>) -> Result<Request<()>, Status> + Clone {
    move |req: Request<()>| {
        let Some(token) = &token else { return Ok(req) };
        let given = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match given {
            Some(g) if constant_time_eq(g.as_bytes(), token.as_bytes()) => Ok(req),
            Some(_) => Err(Status::unauthenticated("admin token does not match")),
            None => Err(Status::unauthenticated(
                "admin calls need `authorization: Bearer <token>` (this node runs with --admin-token-file)",
            )),
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn lifecycle_pb(l: Lifecycle) -> pb::Lifecycle {
    match l {
        Lifecycle::Uninitialized => pb::Lifecycle::Uninitialized,
        Lifecycle::Joining => pb::Lifecycle::Joining,
        Lifecycle::Member => pb::Lifecycle::Member,
        Lifecycle::Removed => pb::Lifecycle::Removed,
    }
}

fn role_pb(r: Role) -> pb::Role {
    match r {
        Role::Follower => pb::Role::Follower,
        Role::PreCandidate => pb::Role::PreCandidate,
        Role::Candidate => pb::Role::Candidate,
        Role::Leader => pb::Role::Leader,
    }
}

#[derive(Debug)]
pub struct AdminService {
    shared: Arc<Shared>,
}

impl AdminService {
    pub fn new(shared: Arc<Shared>) -> Self {
        AdminService { shared }
    }

    /// Every member of `m` with its addresses and, on the leader, its progress.
    fn members(&self, m: &Membership, st: Option<&CoreStatus>) -> Vec<pb::Member> {
        let book = self.shared.book();
        let all = m.all();
        all.into_iter()
            .map(|id| {
                let info = book.get(id).cloned().unwrap_or_default();
                let kind = if m.voters.contains(&id) {
                    pb::MemberKind::Voter
                } else if m.outgoing.contains(&id) {
                    pb::MemberKind::OutgoingVoter
                } else {
                    pb::MemberKind::Learner
                };
                let mut member = pb::Member {
                    node_id: id,
                    name: info.name,
                    peer_addr: info.peer_addr,
                    client_addr: info.client_addr,
                    kind: kind as i32,
                    ..Default::default()
                };
                if let Some(st) = st.filter(|s| s.role == Role::Leader) {
                    if id == st.id {
                        member.match_index = st.last_index;
                        member.recent_active = true;
                    } else if let Some(p) = st.progress.get(&id) {
                        member.match_index = p.matched;
                        member.lag = st.last_index.saturating_sub(p.matched);
                        member.recent_active = p.recent_active;
                    }
                }
                member
            })
            .collect()
    }

    fn require_leader(&self) -> Result<View, Status> {
        let view = self.shared.view();
        if view.brief.role != Role::Leader {
            let leader = (view.brief.leader != 0).then_some(view.brief.leader);
            return Err(not_leader_status(&self.shared, leader));
        }
        Ok(view)
    }

    async fn propose_system(&self, cmd: SystemCommand) -> Result<(), Status> {
        let data = encode_system(&cmd);
        self.shared
            .ask(|reply| DriverMsg::Propose { data, reply })
            .await
            .map_err(|e| request_status(&self.shared, e))?;
        Ok(())
    }

    /// Proposes `cc`, waits until it is applied (and, for a joint change, until the
    /// entry that leaves the joint configuration is applied too: a configuration takes
    /// effect when appended, so "not joint" alone would answer before the leave commits),
    /// and answers with the configuration.
    async fn change(&self, cc: ConfChange) -> Result<Response<pb::MembershipResponse>, Status> {
        let index = self
            .shared
            .ask(|reply| DriverMsg::ConfChange { cc, reply })
            .await
            .map_err(|e| request_status(&self.shared, e))?;
        let mut rx = self.shared.view.subscribe();
        let done = tokio::time::timeout(
            CHANGE_DEADLINE,
            rx.wait_for(|v| {
                v.lifecycle == Lifecycle::Removed
                    || (!v.membership.is_joint()
                        && v.brief.applied >= index.max(v.brief.config_index))
            }),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        if !done {
            return Err(Status::deadline_exceeded(format!(
                "the change at index {index} did not complete within {CHANGE_DEADLINE:?}"
            )));
        }
        self.membership_response(index).await
    }

    async fn membership_response(
        &self,
        index: u64,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let st = self.shared.status().await;
        let m = st
            .as_ref()
            .map(|s| s.membership.clone())
            .unwrap_or_default();
        Ok(Response::new(pb::MembershipResponse {
            index,
            members: self.members(&m, st.as_ref()),
        }))
    }
}

fn single(kind: ConfChangeKind, node: NodeId) -> ConfChange {
    ConfChange::single(kind, node)
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn status(
        &self,
        _r: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let ident = self.shared.identity();
        let st = self.shared.status().await;
        let view = self.shared.view();
        let s = &self.shared.settings;
        let mut resp = pb::StatusResponse {
            node_id: ident.node_id,
            name: s.name.clone(),
            cluster_id: ident.cluster_id.clone().unwrap_or_default(),
            lifecycle: lifecycle_pb(ident.lifecycle) as i32,
            ready: view.ready(ident.node_id).is_ok(),
            peer_addr: s.advertise_peer.clone(),
            client_addr: s.advertise_client.clone(),
            ..Default::default()
        };
        if let Some(st) = &st {
            resp.role = role_pb(st.role) as i32;
            resp.term = st.term;
            resp.leader_id = st.leader;
            resp.commit_index = st.commit;
            resp.applied_index = st.applied;
            resp.last_index = st.last_index;
            resp.snapshot_index = st.snapshot_index;
            resp.joint = st.membership.is_joint();
            resp.config_index = st.config_index;
            resp.outgoing_voters = st.membership.outgoing.iter().copied().collect();
            resp.members = self.members(&st.membership, Some(st));
        }
        resp.removed_node_ids = {
            let book = self.shared.book.read().unwrap_or_else(|p| p.into_inner());
            book.removed().collect()
        };
        Ok(Response::new(resp))
    }

    async fn bootstrap(
        &self,
        r: Request<pb::BootstrapRequest>,
    ) -> Result<Response<pb::BootstrapResponse>, Status> {
        let cluster_id = r.into_inner().cluster_id;
        let cluster_id = self
            .shared
            .ask(|reply| DriverMsg::Bootstrap { cluster_id, reply })
            .await
            .map_err(|e| admin_status(&self.shared, e))?;
        Ok(Response::new(pb::BootstrapResponse {
            cluster_id,
            node_id: self.shared.node_id,
        }))
    }

    async fn prepare_join(
        &self,
        r: Request<pb::PrepareJoinRequest>,
    ) -> Result<Response<pb::PrepareJoinResponse>, Status> {
        let cluster_id = r.into_inner().cluster_id;
        self.shared
            .ask(|reply| DriverMsg::PrepareJoin { cluster_id, reply })
            .await
            .map_err(|e| admin_status(&self.shared, e))?;
        let s = &self.shared.settings;
        Ok(Response::new(pb::PrepareJoinResponse {
            node_id: self.shared.node_id,
            name: s.name.clone(),
            peer_addr: s.advertise_peer.clone(),
            client_addr: s.advertise_client.clone(),
        }))
    }

    async fn add_learner(
        &self,
        r: Request<pb::AddLearnerRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let r = r.into_inner();
        if r.node_id == 0 {
            return Err(Status::invalid_argument(
                "malformed AddLearnerRequest: field `node_id` is 0",
            ));
        }
        if r.peer_addr.is_empty() || r.client_addr.is_empty() {
            return Err(Status::invalid_argument(
                "malformed AddLearnerRequest: fields `peer_addr` and `client_addr` are required",
            ));
        }
        if self.shared.is_removed(r.node_id) {
            return Err(Status::failed_precondition(format!(
                "node {} was removed from this cluster; node ids are never reused",
                r.node_id
            )));
        }
        let view = self.require_leader()?;
        let info = MemberInfo {
            id: r.node_id,
            name: r.name,
            peer_addr: r.peer_addr,
            client_addr: r.client_addr,
        };
        // The address first, so the leader can reach the learner the moment it is added.
        if self.shared.book().get(info.id) != Some(&info) {
            self.propose_system(SystemCommand::SetMemberInfo(info))
                .await?;
        }
        if view.membership.contains(r.node_id) {
            return self.membership_response(view.brief.applied).await;
        }
        self.change(single(ConfChangeKind::AddLearner, r.node_id))
            .await
    }

    async fn promote(
        &self,
        r: Request<pb::PromoteRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let id = r.into_inner().node_id;
        let view = self.require_leader()?;
        if view.membership.voters.contains(&id) {
            return self.membership_response(view.brief.applied).await;
        }
        if !view.membership.is_learner(id) {
            return Err(Status::failed_precondition(format!(
                "node {id} is not a learner; add it with AddLearner first"
            )));
        }
        self.change(single(ConfChangeKind::AddVoter, id)).await
    }

    async fn remove_member(
        &self,
        r: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let id = r.into_inner().node_id;
        let view = self.require_leader()?;
        if !view.membership.contains(id) {
            return self.membership_response(view.brief.applied).await;
        }
        self.change(single(ConfChangeKind::Remove, id)).await
    }

    async fn change_membership(
        &self,
        r: Request<pb::ChangeMembershipRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let r = r.into_inner();
        let view = self.require_leader()?;
        let m = &view.membership;
        let mut changes = Vec::new();
        for id in r.promote {
            if !m.voters.contains(&id) {
                changes.push(ConfChangeSingle {
                    kind: ConfChangeKind::AddVoter,
                    node: id,
                });
            }
        }
        for id in r.remove {
            if m.contains(id) {
                changes.push(ConfChangeSingle {
                    kind: ConfChangeKind::Remove,
                    node: id,
                });
            }
        }
        if changes.is_empty() {
            return self.membership_response(view.brief.applied).await;
        }
        self.change(ConfChange {
            changes,
            leave_joint: false,
        })
        .await
    }

    async fn transfer_leadership(
        &self,
        r: Request<pb::TransferLeadershipRequest>,
    ) -> Result<Response<pb::TransferLeadershipResponse>, Status> {
        let pb::TransferLeadershipRequest { to, from } = r.into_inner();
        let view = self.shared.view();
        // A retry of a transfer that already happened is answered with where leadership
        // is, not refused or repeated: the target leads, or (with no target) a leader
        // other than the one the caller meant to leave.
        let leader = view.brief.leader;
        let done = leader != 0 && (to == leader || (to == 0 && from != 0 && leader != from));
        if done {
            return Ok(Response::new(pb::TransferLeadershipResponse {
                leader_id: leader,
            }));
        }
        self.require_leader()?;
        let target = self
            .shared
            .ask(|reply| DriverMsg::Transfer { to, reply })
            .await
            .map_err(|e| admin_status(&self.shared, e))?;
        let leader = handoff_wait(&self.shared, Some(target)).await;
        match leader {
            Some(l) => Ok(Response::new(pb::TransferLeadershipResponse {
                leader_id: l,
            })),
            None => Err(Status::deadline_exceeded(format!(
                "leadership did not move to node {target} in time"
            ))),
        }
    }

    async fn snapshot(
        &self,
        _r: Request<pb::SnapshotRequest>,
    ) -> Result<Response<pb::SnapshotResponse>, Status> {
        let meta = self
            .shared
            .ask(DriverMsg::Snapshot)
            .await
            .map_err(|e| admin_status(&self.shared, e))?;
        Ok(Response::new(pb::SnapshotResponse {
            index: meta.index,
            term: meta.term,
        }))
    }
}

/// Admin errors: lifecycle refusals are preconditions, not outages.
fn admin_status(shared: &Shared, e: super::shared::RequestError) -> Status {
    match e {
        super::shared::RequestError::Refused(m) => Status::failed_precondition(m),
        other => request_status(shared, other),
    }
}

/// Waits (bounded by a few election timeouts) until another node leads, preferring
/// `target`; returns the new leader.
pub async fn handoff_wait(shared: &Shared, target: Option<NodeId>) -> Option<NodeId> {
    let s = &shared.settings;
    let deadline = s.tick * s.election_ticks * 4;
    let me = shared.node_id;
    let mut rx = shared.view.subscribe();
    let done = tokio::time::timeout(
        deadline,
        rx.wait_for(|v| {
            v.brief.leader != 0
                && v.brief.leader != me
                && target.is_none_or(|t| v.brief.leader == t || v.brief.role != Role::Leader)
        }),
    )
    .await;
    match done {
        Ok(Ok(v)) => Some(v.brief.leader),
        _ => None,
    }
}

/// On SIGTERM or `/prestop`: a leader hands leadership to the most caught-up voter and
/// waits (bounded) for it to take over. Returns the new leader, if one took over.
pub async fn hand_off_leadership(shared: &Shared) -> Option<NodeId> {
    let view = shared.view();
    if view.brief.role != Role::Leader || view.membership.voters.len() < 2 {
        return None;
    }
    match shared
        .ask(|reply| DriverMsg::Transfer { to: 0, reply })
        .await
    {
        Ok(target) => {
            tracing::info!(target, "handing leadership off before stopping");
            handoff_wait(shared, Some(target)).await
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not hand leadership off");
            None
        }
    }
}
