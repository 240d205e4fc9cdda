//! [`AdminClient`]: the operator's API. Membership changes go to the leader through
//! the same retry loop as KV calls; calls about one node go to that node.

use std::future::Future;
use std::sync::Arc;

use tokio::time::Instant;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use super::ClientOptions;
use super::error::{Error, Result};
use super::pool::{Pool, Route, backoff};
use crate::pb::admin::admin_client::AdminClient as PbAdmin;
use crate::pb::admin::{
    AddLearnerRequest, BootstrapRequest, BootstrapResponse, ChangeMembershipRequest,
    MembershipResponse, PrepareJoinRequest, PrepareJoinResponse, PromoteRequest,
    RemoveMemberRequest, Role, SnapshotRequest, SnapshotResponse, StatusRequest, StatusResponse,
    TransferLeadershipRequest,
};

/// A client for the Admin service. Cheap to clone.
///
/// Mutating calls are retried like writes. The server makes each of them idempotent (the
/// operator relies on that too), so a retry after a lost answer does no harm.
#[derive(Debug, Clone)]
pub struct AdminClient {
    pool: Arc<Pool>,
    token: Option<AsciiMetadataValue>,
}

impl AdminClient {
    /// An admin client for the cluster whose members include `endpoints`.
    pub fn connect(endpoints: &[String], options: ClientOptions) -> Result<Self> {
        Ok(Self {
            pool: Arc::new(Pool::new(endpoints, options)?),
            token: None,
        })
    }

    /// Sends `authorization: Bearer <token>` with every call.
    pub fn with_token(mut self, token: &str) -> Result<Self> {
        let value = MetadataValue::try_from(format!("Bearer {}", token.trim()))
            .map_err(|_| Error::InvalidToken)?;
        self.token = Some(value);
        Ok(self)
    }

    /// The addresses the client was given.
    pub fn endpoints(&self) -> &[String] {
        self.pool.endpoints()
    }

    /// The status of the member at `addr`, retried within the budget.
    pub async fn status(&self, addr: &str) -> Result<StatusResponse> {
        self.status_via(Route::Member(addr)).await
    }

    /// The status of the member at `addr`, one attempt: for probing members that may
    /// be down without waiting out the budget on each.
    pub async fn status_once(&self, addr: &str) -> Result<StatusResponse> {
        self.status_via(Route::Once(addr)).await
    }

    /// The status of whichever member answers first (the last leader if known).
    pub async fn any_status(&self) -> Result<StatusResponse> {
        self.status_via(Route::Any).await
    }

    /// The leader's status (the only one with every member's match index and lag),
    /// found through any member; retried until a leader is known or the budget is spent.
    pub async fn leader_status(&self) -> Result<StatusResponse> {
        let options = self.pool.options();
        let give_up_at = Instant::now() + options.retry_budget;
        let mut failures = 0;
        loop {
            let (status, is_leader) = self.seek_leader().await?;
            if is_leader {
                return Ok(status);
            }
            let pause = backoff(options, failures);
            failures += 1;
            if Instant::now() + pause >= give_up_at {
                return Err(Error::Unavailable {
                    op: "status",
                    tried: self.pool.endpoints().to_vec(),
                    last: "members answer but none knows a leader".into(),
                    budget: options.retry_budget,
                });
            }
            tokio::time::sleep(pause).await;
        }
    }

    /// The leader's status and `true` if some member leads now, otherwise the first
    /// status that answered and `false`. The member that answers first (the last leader,
    /// if known) is asked, then every configured member, each time also the leader it
    /// names: a member that knows no leader (removed from the cluster, or cut off) does
    /// not hide the leader that the others know.
    pub(crate) async fn seek_leader(&self) -> Result<(StatusResponse, bool)> {
        let first = self.status_via(Route::Any).await?;
        if let Some(leader) = self.leader_named_by(&first).await {
            return Ok((leader, true));
        }
        for addr in self.pool.endpoints() {
            if let Ok(status) = self.status_once(addr).await
                && let Some(leader) = self.leader_named_by(&status).await
            {
                return Ok((leader, true));
            }
        }
        Ok((first, false))
    }

    /// `status` if it is a leader's, else the status of the leader it names, if that
    /// member answers as the leader.
    async fn leader_named_by(&self, status: &StatusResponse) -> Option<StatusResponse> {
        if status.role == Role::Leader as i32 {
            return Some(status.clone());
        }
        let named = status
            .members
            .iter()
            .find(|m| status.leader_id != 0 && m.node_id == status.leader_id)?;
        let leader = self.status_once(&named.client_addr).await.ok()?;
        (leader.role == Role::Leader as i32).then_some(leader)
    }

    /// Makes the uninitialized node at `addr` a one-voter cluster.
    pub async fn bootstrap(&self, addr: &str, cluster_id: &str) -> Result<BootstrapResponse> {
        let request = BootstrapRequest {
            cluster_id: cluster_id.to_owned(),
        };
        self.call("bootstrap", Route::Member(addr), move |mut admin, auth| {
            let request = auth.request(request.clone());
            async move { admin.bootstrap(request).await }
        })
        .await
    }

    /// Tells the uninitialized node at `addr` which cluster it will join; it answers
    /// with the identity the leader needs for `add_learner`.
    pub async fn prepare_join(&self, addr: &str, cluster_id: &str) -> Result<PrepareJoinResponse> {
        let request = PrepareJoinRequest {
            cluster_id: cluster_id.to_owned(),
        };
        self.call(
            "prepare_join",
            Route::Member(addr),
            move |mut admin, auth| {
                let request = auth.request(request.clone());
                async move { admin.prepare_join(request).await }
            },
        )
        .await
    }

    /// Adds a learner (a non-voting member that catches up). Answered once committed.
    pub async fn add_learner(&self, request: AddLearnerRequest) -> Result<MembershipResponse> {
        self.call("add_learner", Route::Leader, move |mut admin, auth| {
            let request = auth.request(request.clone());
            async move { admin.add_learner(request).await }
        })
        .await
    }

    /// Makes a learner a voter. Answered once committed.
    pub async fn promote(&self, node_id: u64) -> Result<MembershipResponse> {
        self.call("promote", Route::Leader, move |mut admin, auth| {
            let request = auth.request(PromoteRequest { node_id });
            async move { admin.promote(request).await }
        })
        .await
    }

    /// Removes a member. Answered once committed.
    pub async fn remove_member(&self, node_id: u64) -> Result<MembershipResponse> {
        self.call("remove_member", Route::Leader, move |mut admin, auth| {
            let request = auth.request(RemoveMemberRequest { node_id });
            async move { admin.remove_member(request).await }
        })
        .await
    }

    /// Promotes and removes several members at once through a joint configuration.
    pub async fn change_membership(
        &self,
        promote: Vec<u64>,
        remove: Vec<u64>,
    ) -> Result<MembershipResponse> {
        let request = ChangeMembershipRequest { promote, remove };
        self.call(
            "change_membership",
            Route::Leader,
            move |mut admin, auth| {
                let request = auth.request(request.clone());
                async move { admin.change_membership(request).await }
            },
        )
        .await
    }

    /// Hands leadership to `to` (0: the most caught-up voter); returns the new leader.
    ///
    /// The request names the leader it moves leadership away from, so a retry that
    /// lands after the move (on the old leader or the new one) is answered with the new
    /// leader instead of moving leadership again.
    pub async fn transfer_leadership(&self, to: u64) -> Result<u64> {
        let from = self.leader_status().await?.node_id;
        let response = self
            .call(
                "transfer_leadership",
                Route::Leader,
                move |mut admin, auth| {
                    let request = auth.request(TransferLeadershipRequest { to, from });
                    async move { admin.transfer_leadership(request).await }
                },
            )
            .await?;
        Ok(response.leader_id)
    }

    /// Makes the member at `addr` take a snapshot and compact its log.
    pub async fn snapshot(&self, addr: &str) -> Result<SnapshotResponse> {
        self.call("snapshot", Route::Member(addr), move |mut admin, auth| {
            let request = auth.request(SnapshotRequest {});
            async move { admin.snapshot(request).await }
        })
        .await
    }

    async fn status_via(&self, route: Route<'_>) -> Result<StatusResponse> {
        self.call("status", route, move |mut admin, auth| {
            let request = auth.request(StatusRequest {});
            async move { admin.status(request).await }
        })
        .await
    }

    /// One admin RPC through the retry loop.
    async fn call<T, F, Fut>(&self, op: &'static str, route: Route<'_>, mut rpc: F) -> Result<T>
    where
        F: FnMut(PbAdmin<Channel>, &Auth) -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        let auth = Auth(self.token.clone());
        let response = self
            .pool
            .call(op, route, |channel| rpc(PbAdmin::new(channel), &auth))
            .await?;
        Ok(response.into_inner())
    }
}

/// Wraps messages in requests that carry the bearer token, if any.
#[derive(Debug)]
struct Auth(Option<AsciiMetadataValue>);

impl Auth {
    fn request<M>(&self, message: M) -> Request<M> {
        let mut request = Request::new(message);
        if let Some(token) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", token.clone());
        }
        request
    }
}
