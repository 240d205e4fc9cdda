//! The Kv service: client requests become KV state machine commands and queries.
//!
//! Writes go through the leader's log and are answered once applied; a follower answers
//! writes and linearizable or lease reads with FAILED_PRECONDITION and a `NotLeader`
//! detail naming the leader's client address. Stale reads are served by any member.

use std::sync::Arc;

use bytes::Bytes;
use prost::Message as _;
use tonic::{Code, Request, Response, Status};

use super::convert::{consistency_from_pb, expected_from_pb, kv_to_pb};
use super::members::encode_app;
use super::shared::{DriverMsg, ReadKind, RequestError, Shared};
use crate::pb::kv as pb;
use crate::pb::kv::kv_server::Kv;
use crate::sm::kv::{Command, ErrorCode, Query, Response as KvResponse, SessionSeq, Wire, WriteOp};
use kuberaft_raft::{NodeId, ReadMode};

/// Largest key and value a client may write.
pub const MAX_KEY: usize = 4 << 10;
pub const MAX_VALUE: usize = 1 << 20;
/// The largest request the client port decodes (a max value plus room for the rest).
pub const MAX_CLIENT_MESSAGE: usize = MAX_VALUE + (64 << 10);

/// The NotLeader status a client follows to the leader.
pub fn not_leader_status(shared: &Shared, leader: Option<NodeId>) -> Status {
    let leader_id = leader.unwrap_or(0);
    let addr = leader
        .and_then(|l| shared.client_addr(l))
        .unwrap_or_default();
    let detail = pb::NotLeader {
        leader_id,
        leader_client_addr: addr.clone(),
    };
    let message = if leader_id == 0 {
        "not the leader; no leader is known right now".to_owned()
    } else {
        format!("not the leader; the leader is node {leader_id} at {addr:?}")
    };
    Status::with_details(
        Code::FailedPrecondition,
        message,
        detail.encode_to_vec().into(),
    )
}

/// Maps a driver error to the status clients see. Retryable failures use codes the
/// client retries (UNAVAILABLE, ABORTED).
pub fn request_status(shared: &Shared, e: RequestError) -> Status {
    match e {
        RequestError::NotLeader { leader } => not_leader_status(shared, leader),
        RequestError::Lost => Status::aborted(e.to_string()),
        RequestError::Unavailable(_) | RequestError::Busy(_) => Status::unavailable(e.to_string()),
        RequestError::Invalid(m) => Status::invalid_argument(m),
        RequestError::Refused(m) => Status::unavailable(m),
    }
}

fn kv_error(code: ErrorCode) -> Status {
    match code {
        ErrorCode::SessionExpired { client_id } => Status::not_found(format!(
            "session expired: session {client_id} is unknown; open a new one"
        )),
        ErrorCode::StaleSequence { last_seq } => Status::out_of_range(format!(
            "stale sequence number: the session already applied seq {last_seq}"
        )),
        other => Status::internal(format!(
            "the state machine could not decode the request: {other:?}"
        )),
    }
}

#[derive(Debug)]
pub struct KvService {
    shared: Arc<Shared>,
}

impl KvService {
    pub fn new(shared: Arc<Shared>) -> Self {
        KvService { shared }
    }

    fn header(&self, revision: u64) -> Option<pb::ResponseHeader> {
        Some(pb::ResponseHeader {
            revision,
            raft_term: self.shared.view().brief.term,
            member_id: self.shared.node_id,
        })
    }

    fn require_leader(&self) -> Result<(), Status> {
        let view = self.shared.view();
        refuse_unless_serving(&view)?;
        if view.brief.role != kuberaft_raft::Role::Leader {
            let leader = (view.brief.leader != 0).then_some(view.brief.leader);
            return Err(not_leader_status(&self.shared, leader));
        }
        Ok(())
    }

    async fn propose(&self, command: Command) -> Result<KvResponse, Status> {
        self.require_leader()?;
        let data = encode_app(&command.encode());
        let bytes = self
            .shared
            .ask(|reply| DriverMsg::Propose { data, reply })
            .await
            .map_err(|e| request_status(&self.shared, e))?;
        decode(&bytes)
    }

    async fn write(&self, session: Option<pb::Session>, op: WriteOp) -> Result<KvResponse, Status> {
        let session = session.map(|s| SessionSeq {
            client_id: s.client_id,
            seq: s.seq,
        });
        self.propose(Command::Write { session, op }).await
    }

    async fn read(
        &self,
        query: Query,
        consistency: i32,
        message: &'static str,
    ) -> Result<KvResponse, Status> {
        let mode = match consistency_from_pb("consistency", message, consistency)
            .map_err(|e| Status::invalid_argument(e.to_string()))?
        {
            pb::ReadConsistency::Linearizable => ReadKind::Raft(ReadMode::Safe),
            pb::ReadConsistency::Lease => ReadKind::Raft(ReadMode::Lease),
            pb::ReadConsistency::Stale => ReadKind::Stale,
        };
        if mode == ReadKind::Stale {
            refuse_unless_serving(&self.shared.view())?;
        } else {
            self.require_leader()?;
        }
        let query = query.encode();
        let bytes = self
            .shared
            .ask(|reply| DriverMsg::Read { query, mode, reply })
            .await
            .map_err(|e| request_status(&self.shared, e))?;
        decode(&bytes)
    }
}

/// A removed or uninitialized member serves nothing; UNAVAILABLE sends the client to
/// another member.
fn refuse_unless_serving(view: &super::shared::View) -> Result<(), Status> {
    use super::identity::Lifecycle;
    match view.lifecycle {
        Lifecycle::Member | Lifecycle::Joining => Ok(()),
        Lifecycle::Removed => Err(Status::unavailable(
            "this member was removed from the cluster and serves no requests",
        )),
        Lifecycle::Uninitialized => Err(Status::unavailable(
            "this member is not initialized: it belongs to no cluster yet",
        )),
    }
}

fn decode(bytes: &[u8]) -> Result<KvResponse, Status> {
    match KvResponse::decode(bytes) {
        Ok(KvResponse::Error(code)) => Err(kv_error(code)),
        Ok(r) => Ok(r),
        Err(code) => Err(Status::internal(format!(
            "undecodable state machine response: {code:?}"
        ))),
    }
}

fn check_key(key: &[u8], message: &'static str) -> Result<(), Status> {
    if key.is_empty() {
        return Err(Status::invalid_argument(format!(
            "malformed {message}: field `key` is empty"
        )));
    }
    if key.len() > MAX_KEY {
        return Err(Status::invalid_argument(format!(
            "malformed {message}: field `key` has {} bytes, more than the limit of {MAX_KEY}",
            key.len()
        )));
    }
    Ok(())
}

fn check_value(value: &[u8], message: &'static str) -> Result<(), Status> {
    if value.len() > MAX_VALUE {
        return Err(Status::invalid_argument(format!(
            "malformed {message}: field `value` has {} bytes, more than the limit of {MAX_VALUE}",
            value.len()
        )));
    }
    Ok(())
}

fn unexpected(r: KvResponse) -> Status {
    Status::internal(format!("unexpected state machine response {r:?}"))
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn put(
        &self,
        request: Request<pb::PutRequest>,
    ) -> Result<Response<pb::PutResponse>, Status> {
        let r = request.into_inner();
        check_key(&r.key, "PutRequest")?;
        check_value(&r.value, "PutRequest")?;
        let op = WriteOp::Put {
            key: Bytes::from(r.key),
            value: Bytes::from(r.value),
        };
        match self.write(r.session, op).await? {
            KvResponse::Put { revision } => Ok(Response::new(pb::PutResponse {
                header: self.header(revision),
            })),
            other => Err(unexpected(other)),
        }
    }

    async fn get(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::GetResponse>, Status> {
        let r = request.into_inner();
        check_key(&r.key, "GetRequest")?;
        let query = Query::Get {
            key: Bytes::from(r.key),
        };
        match self.read(query, r.consistency, "GetRequest").await? {
            KvResponse::Get { kv, revision } => Ok(Response::new(pb::GetResponse {
                header: self.header(revision),
                kv: kv.map(kv_to_pb),
            })),
            other => Err(unexpected(other)),
        }
    }

    async fn delete(
        &self,
        request: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let r = request.into_inner();
        check_key(&r.key, "DeleteRequest")?;
        let op = WriteOp::Delete {
            key: Bytes::from(r.key),
        };
        match self.write(r.session, op).await? {
            KvResponse::Delete { deleted, revision } => Ok(Response::new(pb::DeleteResponse {
                header: self.header(revision),
                deleted,
            })),
            other => Err(unexpected(other)),
        }
    }

    async fn compare_and_swap(
        &self,
        request: Request<pb::CompareAndSwapRequest>,
    ) -> Result<Response<pb::CompareAndSwapResponse>, Status> {
        let r = request.into_inner();
        check_key(&r.key, "CompareAndSwapRequest")?;
        if let Some(v) = &r.new_value {
            check_value(v, "CompareAndSwapRequest")?;
        }
        let expected =
            expected_from_pb(r.expected).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let op = WriteOp::CompareAndSwap {
            key: Bytes::from(r.key),
            expected,
            new_value: r.new_value.map(Bytes::from),
        };
        match self.write(r.session, op).await? {
            KvResponse::CompareAndSwap {
                succeeded,
                revision,
                current,
            } => Ok(Response::new(pb::CompareAndSwapResponse {
                header: self.header(revision),
                succeeded,
                current: current.map(kv_to_pb),
            })),
            other => Err(unexpected(other)),
        }
    }

    async fn range(
        &self,
        request: Request<pb::RangeRequest>,
    ) -> Result<Response<pb::RangeResponse>, Status> {
        let r = request.into_inner();
        let query = Query::Range {
            prefix: Bytes::from(r.prefix),
            after: (!r.after.is_empty()).then(|| Bytes::from(r.after)),
            limit: r.limit.min(u64::from(u32::MAX)) as u32,
        };
        match self.read(query, r.consistency, "RangeRequest").await? {
            KvResponse::Range {
                kvs,
                more,
                revision,
            } => Ok(Response::new(pb::RangeResponse {
                header: self.header(revision),
                kvs: kvs.into_iter().map(kv_to_pb).collect(),
                more,
            })),
            other => Err(unexpected(other)),
        }
    }

    async fn open_session(
        &self,
        _request: Request<pb::OpenSessionRequest>,
    ) -> Result<Response<pb::OpenSessionResponse>, Status> {
        match self.propose(Command::OpenSession).await? {
            KvResponse::SessionOpened { client_id } => Ok(Response::new(pb::OpenSessionResponse {
                header: self.header(0),
                client_id,
            })),
            other => Err(unexpected(other)),
        }
    }
}
