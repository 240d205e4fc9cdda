//! [`Client`]: the key-value API over the retry loop, with exactly-once writes.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use tonic::transport::Channel;
use tonic::{Response, Status};

use super::error::{Error, Result};
use super::pool::{Pool, Route};
use super::session::{Session, SessionPool};
use super::{ClientOptions, Expected, KeyValue, ReadConsistency};
use crate::pb::kv as pb;
use crate::pb::kv::kv_client::KvClient;

/// Largest page [`Client::range`] asks for; the server may return fewer.
const RANGE_PAGE: u64 = 1000;

/// A leader-following key-value client. Cheap to clone; clones share connections,
/// the leader hint and the session pool, so one `Client` can serve many tasks.
///
/// Writes are exactly-once: each carries a session and sequence number and a retry
/// reuses them, so a write the cluster applied but whose answer was lost is answered
/// from the session cache instead of being applied again. A write that fails with
/// [`Error::Unavailable`] or [`Error::WriteInDoubt`] may or may not have been applied.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: Pool,
    sessions: SessionPool,
}

/// The answer to [`Client::compare_and_swap`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CasOutcome {
    /// Whether the expectation held and the write happened.
    pub succeeded: bool,
    /// The store's revision after the request.
    pub revision: u64,
    /// On failure, the key's current pair (if it exists).
    pub current: Option<KeyValue>,
}

impl Client {
    /// A client for the cluster whose members include `endpoints` (`host:port`).
    /// Nothing is dialed yet: the first call finds the leader.
    pub fn connect(endpoints: &[String], options: ClientOptions) -> Result<Self> {
        let sessions = SessionPool::new(options.max_sessions);
        Ok(Self {
            inner: Arc::new(Inner {
                pool: Pool::new(endpoints, options)?,
                sessions,
            }),
        })
    }

    /// The addresses the client was given.
    pub fn endpoints(&self) -> &[String] {
        self.inner.pool.endpoints()
    }

    /// Sets `key` to `value`; returns the revision of the write.
    pub async fn put(&self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> Result<u64> {
        let (key, value) = (key.into(), value.into());
        let response = self
            .write("put", |mut kv, session| {
                let request = pb::PutRequest {
                    key: key.clone().into(),
                    value: value.clone().into(),
                    session: Some(session),
                };
                async move { kv.put(request).await }
            })
            .await?;
        Ok(revision(&response.header))
    }

    /// The pair stored at `key`, if any, read with the given consistency.
    pub async fn get(
        &self,
        key: impl Into<Bytes>,
        consistency: ReadConsistency,
    ) -> Result<Option<KeyValue>> {
        let key = key.into();
        let response = self
            .read("get", consistency, |mut kv| {
                let request = pb::GetRequest {
                    key: key.clone().into(),
                    consistency: consistency.to_pb() as i32,
                };
                async move { kv.get(request).await }
            })
            .await?;
        Ok(response.kv.map(key_value))
    }

    /// Removes `key`; returns whether it existed.
    pub async fn delete(&self, key: impl Into<Bytes>) -> Result<bool> {
        let key = key.into();
        let response = self
            .write("delete", |mut kv, session| {
                let request = pb::DeleteRequest {
                    key: key.clone().into(),
                    session: Some(session),
                };
                async move { kv.delete(request).await }
            })
            .await?;
        Ok(response.deleted)
    }

    /// Writes `new_value` at `key` (deletes it when `None`) only if `expected` holds.
    pub async fn compare_and_swap(
        &self,
        key: impl Into<Bytes>,
        expected: Expected,
        new_value: Option<Bytes>,
    ) -> Result<CasOutcome> {
        use pb::compare_and_swap_request::Expected as PbExpected;
        let key = key.into();
        let response = self
            .write("compare_and_swap", |mut kv, session| {
                let expected = match &expected {
                    Expected::Absent => PbExpected::ExpectAbsent(true),
                    Expected::Value(v) => PbExpected::ExpectValue(v.clone().into()),
                    Expected::ModRevision(r) => PbExpected::ExpectModRevision(*r),
                };
                let request = pb::CompareAndSwapRequest {
                    key: key.clone().into(),
                    expected: Some(expected),
                    new_value: new_value.clone().map(Into::into),
                    session: Some(session),
                };
                async move { kv.compare_and_swap(request).await }
            })
            .await?;
        Ok(CasOutcome {
            succeeded: response.succeeded,
            revision: revision(&response.header),
            current: response.current.map(key_value),
        })
    }

    /// Up to `limit` pairs (0: all) whose keys start with `prefix`, in key order, read
    /// linearizably.
    pub async fn range(&self, prefix: impl Into<Bytes>, limit: u64) -> Result<Vec<KeyValue>> {
        self.range_with(prefix, limit, ReadConsistency::Linearizable)
            .await
    }

    /// [`Client::range`] with a chosen consistency. Results larger than one page are
    /// read page by page, each page at its own point in time.
    pub async fn range_with(
        &self,
        prefix: impl Into<Bytes>,
        limit: u64,
        consistency: ReadConsistency,
    ) -> Result<Vec<KeyValue>> {
        let prefix = prefix.into();
        let mut out: Vec<KeyValue> = Vec::new();
        loop {
            let wanted = match limit {
                0 => RANGE_PAGE,
                n => (n - out.len() as u64).min(RANGE_PAGE),
            };
            let after: Bytes = out.last().map(|kv| kv.key.clone()).unwrap_or_default();
            let response = self
                .read("range", consistency, |mut kv| {
                    let request = pb::RangeRequest {
                        prefix: prefix.clone().into(),
                        after: after.clone().into(),
                        limit: wanted,
                        consistency: consistency.to_pb() as i32,
                    };
                    async move { kv.range(request).await }
                })
                .await?;
            let got = response.kvs.len();
            out.extend(response.kvs.into_iter().map(key_value));
            let full = limit != 0 && out.len() as u64 >= limit;
            if !response.more || full || got == 0 {
                return Ok(out);
            }
        }
    }

    async fn read<T, F, Fut>(
        &self,
        op: &'static str,
        consistency: ReadConsistency,
        mut rpc: F,
    ) -> Result<T>
    where
        F: FnMut(KvClient<Channel>) -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        let route = match consistency {
            ReadConsistency::Stale => Route::Any,
            ReadConsistency::Linearizable | ReadConsistency::Lease => Route::Leader,
        };
        let response = self
            .inner
            .pool
            .call(op, route, |channel| rpc(KvClient::new(channel)))
            .await?;
        Ok(response.into_inner())
    }

    /// Runs one write under a session: the same session and sequence number on every
    /// retry. If the cluster forgot the session before any attempt could have been
    /// applied, the write is retried once under a new session; otherwise it is in doubt.
    async fn write<T, F, Fut>(&self, op: &'static str, mut rpc: F) -> Result<T>
    where
        F: FnMut(KvClient<Channel>, pb::Session) -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        let sessions = &self.inner.sessions;
        let _permit = sessions.permit().await;
        let mut reopened = false;
        loop {
            let mut session = match sessions.take() {
                Some(session) => session,
                None => self.open_session().await?,
            };
            let numbered = pb::Session {
                client_id: session.client_id,
                seq: session.next(),
            };
            let attempts = AtomicU32::new(0);
            let result = self
                .inner
                .pool
                .call(op, Route::Leader, |channel| {
                    attempts.fetch_add(1, Ordering::Relaxed);
                    rpc(KvClient::new(channel), numbered)
                })
                .await;
            match result {
                Err(Error::SessionExpired { .. }) if attempts.load(Ordering::Relaxed) == 1 => {
                    // The only attempt was refused outright: nothing was applied, so a
                    // new session may carry the write. Twice in a row means sessions
                    // die faster than one call; give up rather than loop.
                    if reopened {
                        return Err(Error::SessionExpired { op });
                    }
                    reopened = true;
                }
                Err(Error::SessionExpired { .. }) => {
                    return Err(Error::WriteInDoubt {
                        op,
                        client_id: session.client_id,
                    });
                }
                other => {
                    sessions.give_back(session);
                    return other.map(Response::into_inner);
                }
            }
        }
    }

    async fn open_session(&self) -> Result<Session> {
        let response = self
            .inner
            .pool
            .call("open_session", Route::Leader, |channel| async move {
                KvClient::new(channel)
                    .open_session(pb::OpenSessionRequest {})
                    .await
            })
            .await?
            .into_inner();
        if response.client_id == 0 {
            return Err(Error::Protocol {
                op: "open_session",
                reason: "session id 0".into(),
            });
        }
        tracing::debug!(client_id = response.client_id, "opened a session");
        Ok(Session::opened(response.client_id))
    }
}

fn revision(header: &Option<pb::ResponseHeader>) -> u64 {
    header.as_ref().map_or(0, |h| h.revision)
}

fn key_value(kv: pb::KeyValue) -> KeyValue {
    KeyValue {
        key: kv.key.into(),
        value: kv.value.into(),
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
    }
}
