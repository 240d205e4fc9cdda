//! The fake's Admin service: a member list that a learner joins, catches up in (its
//! lag drops by one per Status call), and gets promoted in, plus an optional token.

use kuberaft_node::pb::admin::admin_server::Admin;
use kuberaft_node::pb::admin::*;
use tonic::{Request, Response, Status};

use super::Service;

#[derive(Debug, Default)]
pub struct AdminState {
    /// What Status answers; `members` changes with the membership calls.
    pub status: StatusResponse,
    /// What PrepareJoin answers.
    pub join_identity: PrepareJoinResponse,
    /// When set, calls without `authorization: Bearer <token>` are refused.
    pub token: Option<String>,
    /// Every mutating call, in order, e.g. `promote 9`.
    pub log: Vec<String>,
}

pub fn member(node_id: u64, name: &str, addr: &str, kind: MemberKind, lag: u64) -> Member {
    Member {
        node_id,
        name: name.into(),
        peer_addr: format!("peer-{addr}"),
        client_addr: addr.into(),
        kind: kind as i32,
        match_index: 10 - lag.min(10),
        lag,
        recent_active: true,
    }
}

impl Service {
    fn admin<T>(&self, call: &'static str, request: &Request<T>) -> Result<(), Status> {
        let leader_only = !matches!(call, "status" | "prepare_join" | "snapshot" | "bootstrap");
        self.gate(call, leader_only)?;
        let s = self.0.lock().unwrap();
        if let Some(token) = &s.admin.token {
            let sent = request
                .metadata()
                .get("authorization")
                .and_then(|v| v.to_str().ok());
            if sent != Some(format!("Bearer {token}").as_str()) {
                return Err(Status::unauthenticated("missing or wrong admin token"));
            }
        }
        Ok(())
    }

    fn log(&self, line: String) {
        self.0.lock().unwrap().admin.log.push(line);
    }

    fn membership(&self) -> Response<MembershipResponse> {
        let s = self.0.lock().unwrap();
        Response::new(MembershipResponse {
            index: s.admin.status.commit_index,
            members: s.admin.status.members.clone(),
        })
    }
}

#[tonic::async_trait]
impl Admin for Service {
    async fn status(
        &self,
        request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        self.admin("status", &request)?;
        let mut s = self.0.lock().unwrap();
        let answer = s.admin.status.clone();
        for m in &mut s.admin.status.members {
            m.lag = m.lag.saturating_sub(1);
            m.match_index = 10 - m.lag.min(10);
        }
        Ok(Response::new(answer))
    }

    async fn bootstrap(
        &self,
        request: Request<BootstrapRequest>,
    ) -> Result<Response<BootstrapResponse>, Status> {
        self.admin("bootstrap", &request)?;
        let cluster_id = request.into_inner().cluster_id;
        self.log(format!("bootstrap {cluster_id}"));
        Ok(Response::new(BootstrapResponse {
            cluster_id,
            node_id: 1,
        }))
    }

    async fn prepare_join(
        &self,
        request: Request<PrepareJoinRequest>,
    ) -> Result<Response<PrepareJoinResponse>, Status> {
        self.admin("prepare_join", &request)?;
        self.log(format!("prepare_join {}", request.into_inner().cluster_id));
        Ok(Response::new(
            self.0.lock().unwrap().admin.join_identity.clone(),
        ))
    }

    async fn add_learner(
        &self,
        request: Request<AddLearnerRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        self.admin("add_learner", &request)?;
        let r = request.into_inner();
        self.log(format!("add_learner {} {}", r.node_id, r.name));
        {
            // As the real leader: a node already in the configuration stays as it is.
            let mut s = self.0.lock().unwrap();
            if !s
                .admin
                .status
                .members
                .iter()
                .any(|m| m.node_id == r.node_id)
            {
                let new = member(r.node_id, &r.name, &r.client_addr, MemberKind::Learner, 3);
                s.admin.status.members.push(new);
                s.admin.status.commit_index += 1;
            }
        }
        Ok(self.membership())
    }

    async fn promote(
        &self,
        request: Request<PromoteRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        self.admin("promote", &request)?;
        let id = request.into_inner().node_id;
        self.log(format!("promote {id}"));
        {
            let mut s = self.0.lock().unwrap();
            for m in &mut s.admin.status.members {
                if m.node_id == id {
                    m.kind = MemberKind::Voter as i32;
                }
            }
            s.admin.status.commit_index += 1;
        }
        Ok(self.membership())
    }

    async fn remove_member(
        &self,
        request: Request<RemoveMemberRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        self.admin("remove_member", &request)?;
        let id = request.into_inner().node_id;
        self.log(format!("remove_member {id}"));
        {
            let mut s = self.0.lock().unwrap();
            s.admin.status.members.retain(|m| m.node_id != id);
            s.admin.status.commit_index += 1;
        }
        Ok(self.membership())
    }

    async fn change_membership(
        &self,
        request: Request<ChangeMembershipRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        self.admin("change_membership", &request)?;
        let r = request.into_inner();
        self.log(format!("change_membership {:?} {:?}", r.promote, r.remove));
        Ok(self.membership())
    }

    async fn transfer_leadership(
        &self,
        request: Request<TransferLeadershipRequest>,
    ) -> Result<Response<TransferLeadershipResponse>, Status> {
        self.admin("transfer_leadership", &request)?;
        let to = request.into_inner().to;
        self.log(format!("transfer_leadership {to}"));
        Ok(Response::new(TransferLeadershipResponse { leader_id: to }))
    }

    async fn snapshot(
        &self,
        request: Request<SnapshotRequest>,
    ) -> Result<Response<SnapshotResponse>, Status> {
        self.admin("snapshot", &request)?;
        self.log("snapshot".into());
        let index = self.0.lock().unwrap().admin.status.applied_index;
        Ok(Response::new(SnapshotResponse { index, term: 1 }))
    }
}
