//! An in-process fake member for client tests: it implements the generated Kv and Admin
//! services with scripted failures (NotLeader, UNAVAILABLE, lost answers, expired
//! sessions) and records what the client sent, so tests can assert on sequence numbers.
#![allow(dead_code)] // each test file uses a different part

pub mod admin;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use kuberaft_node::pb::admin::admin_server::AdminServer;
use kuberaft_node::pb::kv::kv_server::{Kv, KvServer};
use kuberaft_node::pb::kv::*;
use prost::Message;
use tokio::sync::oneshot;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Code, Request, Response, Status};

/// What the fake does with each call.
#[derive(Debug, Clone, Default)]
pub struct Script {
    /// Answer every leader-only call with NotLeader naming this address.
    pub not_leader: Option<String>,
    /// Answer this many calls (of any kind) with UNAVAILABLE before serving.
    pub unavailable: u32,
    /// Apply this many writes but answer UNAVAILABLE, as if the answer were lost.
    pub lose_answers: u32,
    /// Answer this many writes with "session expired" (the session is dropped).
    pub expire_sessions: u32,
    /// Also drop the session when an answer is lost, as if the session TTL passed while
    /// the client was retrying.
    pub expire_when_answer_lost: bool,
    /// Serve at most this many pairs per range page (0: no limit).
    pub page: u64,
    /// Hold every leader-only KV call this long before serving it, as a paused or
    /// cut-off leader (or a slow one) does.
    pub stall: Option<std::time::Duration>,
    /// Only these calls stall (none named: all leader-only calls).
    pub stall_only: Vec<&'static str>,
}

/// One write as the fake received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteSeen {
    pub op: &'static str,
    pub client_id: u64,
    pub seq: u64,
}

#[derive(Debug, Default)]
pub struct State {
    pub script: Script,
    /// Every call, by RPC name, including refused ones.
    pub calls: Vec<&'static str>,
    pub writes: Vec<WriteSeen>,
    pub sessions_opened: u64,
    /// Session id → (last seq, cached answer).
    sessions: HashMap<u64, (u64, Vec<u8>)>,
    /// Sessions with a write being served right now (to catch two at once).
    in_flight: HashSet<u64>,
    pub overlapping_writes: u32,
    pub kvs: BTreeMap<Vec<u8>, KeyValue>,
    pub revision: u64,
    pub admin: admin::AdminState,
}

/// A fake member serving on 127.0.0.1; stops when dropped.
#[derive(Debug)]
pub struct Fake {
    pub addr: String,
    pub state: Arc<Mutex<State>>,
    _stop: oneshot::Sender<()>,
}

impl Fake {
    pub async fn start(script: Script) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let state = Arc::new(Mutex::new(State {
            script,
            ..State::default()
        }));
        let service = Service(state.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        tokio::spawn(
            Server::builder()
                .add_service(KvServer::new(service.clone()))
                .add_service(AdminServer::new(service))
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                }),
        );
        Fake {
            addr,
            state,
            _stop: stop,
        }
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    pub fn count(&self, call: &str) -> usize {
        self.state().calls.iter().filter(|c| **c == call).count()
    }
}

/// An address nothing listens on: bound, then released.
pub async fn dead_addr() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().to_string()
}

pub fn not_leader(addr: &str) -> Status {
    let detail = NotLeader {
        leader_id: 1,
        leader_client_addr: addr.into(),
    };
    Status::with_details(
        Code::FailedPrecondition,
        "not the leader",
        detail.encode_to_vec().into(),
    )
}

#[derive(Debug, Clone)]
pub struct Service(pub Arc<Mutex<State>>);

impl Service {
    /// Applies the script's refusals; `Ok` means serve the call.
    pub fn gate(&self, call: &'static str, leader_only: bool) -> Result<(), Status> {
        let mut s = self.0.lock().unwrap();
        s.calls.push(call);
        if s.script.unavailable > 0 {
            s.script.unavailable -= 1;
            return Err(Status::unavailable("scripted outage"));
        }
        match &s.script.not_leader {
            Some(leader) if leader_only => Err(not_leader(leader)),
            _ => Ok(()),
        }
    }

    /// [`Service::gate`], then the script's stall for a leader-only call it serves.
    pub async fn enter(&self, call: &'static str, leader_only: bool) -> Result<(), Status> {
        self.gate(call, leader_only)?;
        let stall = {
            let s = &self.0.lock().unwrap().script;
            s.stall.filter(|_| {
                leader_only && (s.stall_only.is_empty() || s.stall_only.contains(&call))
            })
        };
        if let Some(stall) = stall {
            tokio::time::sleep(stall).await;
        }
        Ok(())
    }

    fn header(s: &State) -> Option<ResponseHeader> {
        Some(ResponseHeader {
            revision: s.revision,
            raft_term: 1,
            member_id: 1,
        })
    }

    /// Exactly-once bookkeeping shared by every write, as the real state machine does it.
    /// The lock is released around a yield while a write is "being applied", so two
    /// writes of one session that overlap in time are caught.
    async fn write<R: Message + Default>(
        &self,
        op: &'static str,
        session: Option<Session>,
        apply: impl FnOnce(&mut State) -> R,
    ) -> Result<Response<R>, Status> {
        self.enter(op, true).await?;
        let session = session.ok_or_else(|| Status::invalid_argument("no session"))?;
        {
            let mut s = self.0.lock().unwrap();
            s.writes.push(WriteSeen {
                op,
                client_id: session.client_id,
                seq: session.seq,
            });
            if !s.in_flight.insert(session.client_id) {
                s.overlapping_writes += 1;
            }
        }
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        let mut s = self.0.lock().unwrap();
        s.in_flight.remove(&session.client_id);
        if s.script.expire_sessions > 0 {
            s.script.expire_sessions -= 1;
            s.sessions.remove(&session.client_id);
        }
        let Some(&(last_seq, ref cached)) = s.sessions.get(&session.client_id) else {
            return Err(Status::failed_precondition("session expired"));
        };
        let answer = if session.seq == last_seq && last_seq > 0 {
            R::decode(cached.as_slice()).unwrap()
        } else if session.seq > last_seq {
            let answer = apply(&mut s);
            s.sessions
                .insert(session.client_id, (session.seq, answer.encode_to_vec()));
            answer
        } else {
            return Err(Status::failed_precondition("stale sequence"));
        };
        if s.script.lose_answers > 0 {
            s.script.lose_answers -= 1;
            if s.script.expire_when_answer_lost {
                s.sessions.remove(&session.client_id);
            }
            return Err(Status::unavailable("answer lost"));
        }
        Ok(Response::new(answer))
    }
}

fn set(s: &mut State, key: Vec<u8>, value: Vec<u8>) {
    s.revision += 1;
    let revision = s.revision;
    let entry = s.kvs.entry(key.clone()).or_insert(KeyValue {
        key,
        create_revision: revision,
        ..KeyValue::default()
    });
    entry.value = value;
    entry.mod_revision = revision;
    entry.version += 1;
}

#[tonic::async_trait]
impl Kv for Service {
    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let r = request.into_inner();
        self.write("put", r.session, |s| {
            set(s, r.key, r.value);
            PutResponse {
                header: Self::header(s),
            }
        })
        .await
    }

    async fn get(&self, request: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        let r = request.into_inner();
        let stale = r.consistency == ReadConsistency::Stale as i32;
        self.enter("get", !stale).await?;
        let s = self.0.lock().unwrap();
        Ok(Response::new(GetResponse {
            header: Self::header(&s),
            kv: s.kvs.get(&r.key).cloned(),
        }))
    }

    async fn delete(
        &self,
        request: Request<DeleteRequest>,
    ) -> Result<Response<DeleteResponse>, Status> {
        let r = request.into_inner();
        self.write("delete", r.session, |s| {
            let deleted = s.kvs.remove(&r.key).is_some();
            if deleted {
                s.revision += 1;
            }
            DeleteResponse {
                header: Self::header(s),
                deleted,
            }
        })
        .await
    }

    async fn compare_and_swap(
        &self,
        request: Request<CompareAndSwapRequest>,
    ) -> Result<Response<CompareAndSwapResponse>, Status> {
        use compare_and_swap_request::Expected;
        let r = request.into_inner();
        self.write("compare_and_swap", r.session, |s| {
            let current = s.kvs.get(&r.key).cloned();
            let holds = match (&r.expected, &current) {
                (Some(Expected::ExpectAbsent(_)), None) => true,
                (Some(Expected::ExpectValue(v)), Some(kv)) => *v == kv.value,
                (Some(Expected::ExpectModRevision(m)), Some(kv)) => *m == kv.mod_revision,
                _ => false,
            };
            if holds {
                match r.new_value {
                    Some(value) => set(s, r.key, value),
                    None => {
                        s.kvs.remove(&r.key);
                        s.revision += 1;
                    }
                }
            }
            CompareAndSwapResponse {
                header: Self::header(s),
                succeeded: holds,
                current: if holds { None } else { current },
            }
        })
        .await
    }

    async fn range(
        &self,
        request: Request<RangeRequest>,
    ) -> Result<Response<RangeResponse>, Status> {
        let r = request.into_inner();
        self.enter("range", r.consistency != ReadConsistency::Stale as i32)
            .await?;
        let s = self.0.lock().unwrap();
        let mut limit = r.limit;
        if s.script.page > 0 && (limit == 0 || limit > s.script.page) {
            limit = s.script.page;
        }
        let matching: Vec<KeyValue> = s
            .kvs
            .range(r.after.clone()..)
            .filter(|(k, _)| k.starts_with(&r.prefix) && **k != r.after)
            .map(|(_, kv)| kv.clone())
            .collect();
        let take = if limit == 0 {
            matching.len()
        } else {
            limit as usize
        };
        Ok(Response::new(RangeResponse {
            header: Self::header(&s),
            more: matching.len() > take,
            kvs: matching.into_iter().take(take).collect(),
        }))
    }

    async fn open_session(
        &self,
        _request: Request<OpenSessionRequest>,
    ) -> Result<Response<OpenSessionResponse>, Status> {
        self.enter("open_session", true).await?;
        let mut s = self.0.lock().unwrap();
        s.revision += 1;
        s.sessions_opened += 1;
        let client_id = 100 + s.sessions_opened;
        s.sessions.insert(client_id, (0, Vec::new()));
        Ok(Response::new(OpenSessionResponse {
            header: Self::header(&s),
            client_id,
        }))
    }
}
