//! The default state machine: an ordered key-value store with per-key and global
//! revisions, compare-and-swap, prefix ranges and exactly-once client sessions.
//!
//! Revisions are log indexes, as in etcd: a key's `mod_revision` is the index of its last
//! write, `create_revision` the index that created it, and the global revision the index
//! of the last write that changed anything. Requests that change nothing (a failed CAS, a
//! delete of an absent key, a duplicate) leave every revision alone.
//!
//! Keys and values are [`Bytes`] in persistent [`OrdMap`]s, so a snapshot is an O(1)
//! clone and copying a tree node on write only bumps reference counts.
//!
//! # Exactly-once sessions: the client contract
//!
//! 1. Open a session with [`Command::OpenSession`]; the response carries the `client_id`
//!    (the log index of that entry, hence unique and never reused).
//! 2. Send **one write at a time** per session, numbering writes with increasing `seq`
//!    (starting at 1; gaps are allowed). Retry a write with the *same* `seq` until it is
//!    answered; only then use a higher one. A client that wants concurrent writes opens
//!    several sessions.
//! 3. A retry of the last applied `seq` returns the original response, byte for byte, and
//!    changes nothing. A `seq` below the last applied one gets
//!    [`ErrorCode::StaleSequence`]: that request was superseded and its response is gone.
//! 4. A session unused for more than [`KvConfig::session_ttl`] log positions is dropped;
//!    its next write gets [`ErrorCode::SessionExpired`], and the client opens a new
//!    session (and, if a write was in doubt, reads to find out).
//!
//! Why one outstanding request rather than a window of remembered responses: the state
//! per session is O(1) (one cached response), so memory and snapshot size are bounded by
//! the number of sessions alone; the rule "a lower seq is stale" needs no acknowledgement
//! protocol to trim a window; and a leader-following client that retries one request
//! until it is answered (the shape of the node's client) needs nothing more. Concurrency
//! comes from more sessions, which cost the same O(1) each.
//!
//! Expiry is by log position, never by a local clock, so every replica drops the same
//! session at the same index. "Used" means any write that named the live session,
//! including duplicates and stale ones: a client that keeps retrying keeps its session.

mod session;
mod snapshot;
mod types;

#[cfg(test)]
mod tests;

use std::io::Read;
use std::ops::Bound;

use bytes::Bytes;
use imbl::OrdMap;

use self::session::{Sessions, Verdict};
use super::{Error, Result, SnapshotSource, StateMachine};

pub use self::snapshot::{
    KvSnapshot, MAX_RECORD_LEN, SNAPSHOT_MAGIC, SNAPSHOT_VERSION, SnapshotError,
};
pub use self::types::{
    Command, ErrorCode, Expected, KeyValue, Query, Response, SessionSeq, WIRE_VERSION, Wire,
    WriteOp,
};

/// Settings of the KV state machine. They take part in deciding results, so every member
/// of a cluster must use the same values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvConfig {
    /// How many log positions a session survives without being used. Bounds the session
    /// table (at most this many sessions can be opened before the oldest expires) and
    /// must exceed how long, in log positions, a client may keep retrying one write.
    pub session_ttl: u64,
}

impl Default for KvConfig {
    /// 100 000 positions: minutes of retries at thousands of writes a second, while
    /// capping the table at 100 000 cached responses.
    fn default() -> Self {
        Self {
            session_ttl: 100_000,
        }
    }
}

/// A stored value and its revisions (the key lives in the map).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored {
    pub(crate) value: Bytes,
    pub(crate) create_revision: u64,
    pub(crate) mod_revision: u64,
    pub(crate) version: u64,
}

impl Stored {
    fn to_kv(&self, key: &Bytes) -> KeyValue {
        KeyValue {
            key: key.clone(),
            value: self.value.clone(),
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
        }
    }
}

/// Everything a snapshot holds; replaced as a whole by `restore`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct State {
    pub(crate) applied: u64,
    pub(crate) revision: u64,
    pub(crate) kvs: OrdMap<Bytes, Stored>,
    pub(crate) sessions: Sessions,
}

/// The default key-value [`StateMachine`]. Commands, queries and responses are
/// [`Command`], [`Query`] and [`Response`] in their [`Wire`] encoding.
///
/// Two machines compare equal when their whole replicated state (applied index, data,
/// revisions, sessions) and configuration are equal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KvStateMachine {
    config: KvConfig,
    state: State,
}

impl KvStateMachine {
    /// An empty store.
    pub fn new(config: KvConfig) -> Self {
        Self {
            config,
            state: State::default(),
        }
    }

    /// The global revision: the log index of the last write that changed a key.
    pub fn revision(&self) -> u64 {
        self.state.revision
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.state.kvs.len()
    }

    /// Whether the store holds no keys.
    pub fn is_empty(&self) -> bool {
        self.state.kvs.is_empty()
    }

    /// The number of live client sessions.
    pub fn session_count(&self) -> usize {
        self.state.sessions.len()
    }

    /// Typed form of [`StateMachine::query`], for in-process callers and tests.
    pub fn read(&self, query: &Query) -> Response {
        let revision = self.state.revision;
        match query {
            Query::Get { key } => Response::Get {
                kv: self.state.kvs.get(key).map(|s| s.to_kv(key)),
                revision,
            },
            Query::Range {
                prefix,
                after,
                limit,
            } => {
                let (kvs, more) = self.range(prefix, after.as_ref(), *limit);
                Response::Range {
                    kvs,
                    more,
                    revision,
                }
            }
        }
    }

    fn range(&self, prefix: &Bytes, after: Option<&Bytes>, limit: u32) -> (Vec<KeyValue>, bool) {
        let start: Bound<&[u8]> = match after {
            Some(after) if after.as_ref() >= prefix.as_ref() => Bound::Excluded(after.as_ref()),
            _ => Bound::Included(prefix.as_ref()),
        };
        let mut matching = self
            .state
            .kvs
            .range::<_, [u8]>((start, Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix));
        let limit = if limit == 0 {
            usize::MAX
        } else {
            limit as usize
        };
        let kvs: Vec<KeyValue> = matching
            .by_ref()
            .take(limit)
            .map(|(key, stored)| stored.to_kv(key))
            .collect();
        (kvs, matching.next().is_some())
    }

    fn execute(&mut self, command: Command, index: u64) -> Vec<u8> {
        match command {
            Command::OpenSession => {
                self.state.sessions.open(index);
                Response::SessionOpened { client_id: index }.encode()
            }
            Command::Write { session: None, op } => self.write(op, index).encode(),
            Command::Write {
                session: Some(req),
                op,
            } => match self.state.sessions.check(req, index) {
                Verdict::Duplicate(response) => response.to_vec(),
                Verdict::Reject(code) => Response::Error(code).encode(),
                Verdict::Apply => {
                    let response = self.write(op, index).encode();
                    self.state
                        .sessions
                        .record(req, Bytes::copy_from_slice(&response));
                    response
                }
            },
        }
    }

    fn write(&mut self, op: WriteOp, index: u64) -> Response {
        match op {
            WriteOp::Put { key, value } => {
                self.put(key, value, index);
                Response::Put { revision: index }
            }
            WriteOp::Delete { key } => {
                let deleted = self.delete(&key, index);
                Response::Delete {
                    deleted,
                    revision: self.state.revision,
                }
            }
            WriteOp::CompareAndSwap {
                key,
                expected,
                new_value,
            } => {
                let current = self.state.kvs.get(&key);
                let holds = match (&expected, current) {
                    (Expected::Absent, None) => true,
                    (Expected::Value(v), Some(s)) => s.value == *v,
                    (Expected::ModRevision(r), Some(s)) => s.mod_revision == *r,
                    _ => false,
                };
                if !holds {
                    return Response::CompareAndSwap {
                        succeeded: false,
                        revision: self.state.revision,
                        current: current.map(|s| s.to_kv(&key)),
                    };
                }
                match new_value {
                    Some(value) => self.put(key, value, index),
                    None => {
                        self.delete(&key, index);
                    }
                }
                Response::CompareAndSwap {
                    succeeded: true,
                    revision: self.state.revision,
                    current: None,
                }
            }
        }
    }

    fn put(&mut self, key: Bytes, value: Bytes, index: u64) {
        let (create_revision, version) = match self.state.kvs.get(&key) {
            Some(old) => (old.create_revision, old.version + 1),
            None => (index, 1),
        };
        let stored = Stored {
            value,
            create_revision,
            mod_revision: index,
            version,
        };
        self.state.kvs.insert(key, stored);
        self.state.revision = index;
    }

    fn delete(&mut self, key: &Bytes, index: u64) -> bool {
        let existed = self.state.kvs.remove(key).is_some();
        if existed {
            self.state.revision = index;
        }
        existed
    }
}

impl StateMachine for KvStateMachine {
    fn apply(&mut self, index: u64, command: &[u8]) -> Result<Vec<u8>> {
        if index <= self.state.applied {
            return Err(Error::IndexNotAfterApplied {
                index,
                applied: self.state.applied,
            });
        }
        self.state.applied = index;
        // Expire first, so "ttl positions after the last use" is exact whatever the
        // command at this index is, even an undecodable one.
        self.state.sessions.expire(index, self.config.session_ttl);
        Ok(match Command::decode(command) {
            Ok(command) => self.execute(command, index),
            Err(code) => Response::Error(code).encode(),
        })
    }

    fn applied_index(&self) -> u64 {
        self.state.applied
    }

    fn query(&self, query: &[u8]) -> Result<Vec<u8>> {
        Ok(match Query::decode(query) {
            Ok(query) => self.read(&query).encode(),
            Err(code) => Response::Error(code).encode(),
        })
    }

    fn snapshot(&self) -> Box<dyn SnapshotSource> {
        Box::new(KvSnapshot::capture(&self.state))
    }

    fn restore(&mut self, reader: &mut dyn Read) -> Result<()> {
        // Decode into a fresh state and swap only once all of it is valid.
        self.state = snapshot::read_state(reader)?;
        Ok(())
    }
}
