//! [`GrpcAdmin`] against a real tonic Admin server on loopback: the requests it sends
//! (token included), the answers it converts, the node's errors it maps, its deadlines.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kuberaft_node::pb::admin as pb;
use kuberaft_node::pb::admin::admin_server::{Admin, AdminServer};
use prost::Message;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Code, Request, Response, Status};

use super::{
    AdminConfig, AdminError, GrpcAdmin, JoinIdentity, Lifecycle, MemberAdmin, MemberKind,
    PodEndpoint, Role,
};

/// A call's name and its `authorization` header.
type Seen = (String, Option<String>);

#[derive(Clone, Default)]
struct TestNode {
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl TestNode {
    fn saw<T>(&self, call: &str, r: &Request<T>) {
        let auth = r
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        self.seen.lock().unwrap().push((call.to_owned(), auth));
    }
}

type Answer<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl Admin for TestNode {
    async fn status(&self, r: Request<pb::StatusRequest>) -> Answer<pb::StatusResponse> {
        self.saw("status", &r);
        Ok(Response::new(pb::StatusResponse {
            node_id: 1,
            name: "demo-0".into(),
            cluster_id: "c1".into(),
            lifecycle: pb::Lifecycle::Member as i32,
            role: pb::Role::Leader as i32,
            term: 4,
            leader_id: 1,
            commit_index: 50,
            last_index: 52,
            members: vec![pb::Member {
                node_id: 2,
                name: "demo-1".into(),
                kind: pb::MemberKind::Learner as i32,
                match_index: 40,
                lag: 12,
                ..Default::default()
            }],
            ready: true,
            ..Default::default()
        }))
    }

    async fn bootstrap(&self, r: Request<pb::BootstrapRequest>) -> Answer<pb::BootstrapResponse> {
        self.saw("bootstrap", &r);
        let cluster_id = r.into_inner().cluster_id;
        Ok(Response::new(pb::BootstrapResponse {
            cluster_id,
            node_id: 1,
        }))
    }

    async fn prepare_join(
        &self,
        r: Request<pb::PrepareJoinRequest>,
    ) -> Answer<pb::PrepareJoinResponse> {
        self.saw("prepare_join", &r);
        Ok(Response::new(pb::PrepareJoinResponse {
            node_id: 9,
            name: "demo-3".into(),
            peer_addr: "p:7000".into(),
            client_addr: "c:7001".into(),
        }))
    }

    async fn add_learner(
        &self,
        r: Request<pb::AddLearnerRequest>,
    ) -> Answer<pb::MembershipResponse> {
        self.saw("add_learner", &r);
        let req = r.into_inner();
        assert_eq!((req.node_id, req.peer_addr.as_str()), (9, "p:7000"));
        Ok(Response::new(pb::MembershipResponse::default()))
    }

    async fn promote(&self, r: Request<pb::PromoteRequest>) -> Answer<pb::MembershipResponse> {
        self.saw("promote", &r);
        // What the node answers on a follower: FailedPrecondition with a NotLeader detail.
        let detail = kuberaft_node::pb::kv::NotLeader {
            leader_id: 3,
            leader_client_addr: "demo-2:7001".into(),
        };
        Err(Status::with_details(
            Code::FailedPrecondition,
            "not the leader; the leader is node 3",
            detail.encode_to_vec().into(),
        ))
    }

    async fn remove_member(
        &self,
        r: Request<pb::RemoveMemberRequest>,
    ) -> Answer<pb::MembershipResponse> {
        self.saw("remove_member", &r);
        Err(Status::failed_precondition("node 7 was removed"))
    }

    async fn change_membership(
        &self,
        r: Request<pb::ChangeMembershipRequest>,
    ) -> Answer<pb::MembershipResponse> {
        self.saw("change_membership", &r);
        let req = r.into_inner();
        assert_eq!((req.promote, req.remove), (vec![9], vec![2]));
        Ok(Response::new(pb::MembershipResponse::default()))
    }

    async fn transfer_leadership(
        &self,
        r: Request<pb::TransferLeadershipRequest>,
    ) -> Answer<pb::TransferLeadershipResponse> {
        self.saw("transfer_leadership", &r);
        Ok(Response::new(pb::TransferLeadershipResponse {
            leader_id: r.into_inner().to,
        }))
    }

    async fn snapshot(&self, r: Request<pb::SnapshotRequest>) -> Answer<pb::SnapshotResponse> {
        self.saw("snapshot", &r);
        // Longer than the client's deadline.
        tokio::time::sleep(Duration::from_secs(10)).await;
        Ok(Response::new(pb::SnapshotResponse::default()))
    }
}

async fn serve(node: TestNode) -> PodEndpoint {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AdminServer::new(node))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    PodEndpoint {
        pod: "demo-0".into(),
        address,
    }
}

fn admin(token: Option<&str>) -> GrpcAdmin {
    GrpcAdmin::new(AdminConfig {
        connect_timeout: Duration::from_millis(500),
        status_deadline: Duration::from_millis(500),
        change_deadline: Duration::from_secs(2),
        slow_deadline: Duration::from_millis(300),
        token: token.map(str::to_owned),
    })
    .unwrap()
}

#[tokio::test]
async fn every_call_reaches_the_node_with_the_token() {
    let node = TestNode::default();
    let at = serve(node.clone()).await;
    let a = admin(Some("s3cret\n"));

    let s = a.status(&at).await.unwrap();
    assert_eq!(
        (s.node_id, s.role, s.lifecycle),
        (1, Role::Leader, Lifecycle::Member)
    );
    assert_eq!((s.term, s.commit_index, s.leader_id), (4, 50, Some(1)));
    assert_eq!(s.cluster_id.as_deref(), Some("c1"));
    assert_eq!(s.members[0].kind, MemberKind::Learner);
    assert_eq!(s.members[0].lag, Some(12));

    assert_eq!(a.bootstrap(&at, "uid-1").await.unwrap(), "uid-1");
    let joining = a.prepare_join(&at, "uid-1").await.unwrap();
    assert_eq!(
        joining,
        JoinIdentity {
            node_id: 9,
            name: "demo-3".into(),
            peer_addr: "p:7000".into(),
            client_addr: "c:7001".into(),
        }
    );
    a.add_learner(&at, &joining).await.unwrap();
    a.change_membership(&at, &[9], &[2]).await.unwrap();
    assert_eq!(a.transfer_leadership(&at, 2).await.unwrap(), 2);

    let seen = node.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 6);
    for (call, auth) in seen {
        assert_eq!(auth.as_deref(), Some("Bearer s3cret"), "{call}");
    }
}

#[tokio::test]
async fn node_errors_and_deadlines_map_to_admin_errors() {
    let at = serve(TestNode::default()).await;
    let a = admin(None);
    assert!(matches!(
        a.promote(&at, 9).await,
        Err(AdminError::NotLeader { .. })
    ));
    assert!(matches!(
        a.remove_member(&at, 7).await,
        Err(AdminError::Refused { .. })
    ));
    let started = std::time::Instant::now();
    assert!(matches!(
        a.snapshot(&at).await,
        Err(AdminError::Timeout { .. })
    ));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "deadline honoured"
    );
}

#[tokio::test]
async fn a_closed_port_is_unavailable_quickly() {
    // Bind then drop: nothing listens there any more.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let at = PodEndpoint {
        pod: "demo-9".into(),
        address: addr.to_string(),
    };
    let err = admin(None).status(&at).await.unwrap_err();
    assert!(
        matches!(
            err,
            AdminError::Unavailable { .. } | AdminError::Timeout { .. }
        ),
        "{err:?}"
    );
}
