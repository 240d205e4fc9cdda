//! The key-value store's commands, queries and responses and their wire encoding.
//!
//! # Encoding (format version 1)
//!
//! Every message is one version byte ([`WIRE_VERSION`]) followed by the message in
//! [postcard](https://docs.rs/postcard) 1.x, whose wire format is specified and stable:
//! unsigned integers are LEB128 varints, byte strings are a varint length and the bytes,
//! `Option` is a `0`/`1` byte then the value, `bool` is one byte, and an enum is its
//! variant's position (a varint, counted from 0 in declaration order) then its fields in
//! declaration order. For example `Command::Write { session: None, op: WriteOp::Put {
//! key: b"a", value: b"b" } }` is `01 01 00 00 01 61 01 62`.
//!
//! Compatibility rules, because these bytes live in the replicated log and in session
//! caches inside snapshots: variants and fields are never reordered or removed; a new
//! variant is appended at the end of its enum; any other change bumps [`WIRE_VERSION`]
//! and decoders keep accepting the old versions. The decoder refuses trailing bytes, so a
//! message has exactly one valid encoding of its content.
//!
//! Protobuf exists only at the gRPC edge; the server converts to these types there.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The version byte that starts every encoded command, query and response.
pub const WIRE_VERSION: u8 = 1;

/// A replicated write, proposed through Raft and applied at a log index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Opens an exactly-once session. The new client id is the log index this command is
    /// applied at, so ids are unique and never reused without any randomness.
    OpenSession,
    /// A change to the store, deduplicated when `session` is set.
    Write {
        /// The session and sequence number that make retries of this write exactly-once.
        session: Option<SessionSeq>,
        /// What to change.
        op: WriteOp,
    },
}

/// Identifies one request of a client session (see the [client contract](super)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSeq {
    /// The id returned by [`Command::OpenSession`].
    pub client_id: u64,
    /// Increases with every new request of the session; a retry reuses its number.
    pub seq: u64,
}

/// A change to the key-value store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteOp {
    /// Sets `key` to `value`, creating it if absent.
    Put {
        /// The key.
        key: Bytes,
        /// The new value.
        value: Bytes,
    },
    /// Removes `key`; removing an absent key succeeds and changes nothing.
    Delete {
        /// The key.
        key: Bytes,
    },
    /// Writes `new_value` (or deletes when `None`) only if `expected` holds for `key`.
    CompareAndSwap {
        /// The key.
        key: Bytes,
        /// The condition on the key's current state.
        expected: Expected,
        /// The value to store, or `None` to delete the key.
        new_value: Option<Bytes>,
    },
}

/// The condition of a compare-and-swap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expected {
    /// The key does not exist (create-if-absent).
    Absent,
    /// The key exists and holds exactly this value.
    Value(Bytes),
    /// The key exists and was last written at this log index ([`KeyValue::mod_revision`]).
    ModRevision(u64),
}

/// A read-only request, served without going through the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Query {
    /// The key's current value and revisions.
    Get {
        /// The key.
        key: Bytes,
    },
    /// Keys starting with `prefix`, in byte order.
    Range {
        /// Only keys starting with these bytes (empty: all keys).
        prefix: Bytes,
        /// Resume strictly after this key: pass the last key of the previous page.
        after: Option<Bytes>,
        /// At most this many pairs; 0 means no limit.
        limit: u32,
    },
}

/// A stored pair and its revisions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    /// The key.
    pub key: Bytes,
    /// The value.
    pub value: Bytes,
    /// The log index that created the key (since it was last absent).
    pub create_revision: u64,
    /// The log index of the last write to the key.
    pub mod_revision: u64,
    /// The number of writes since the key was created; 1 right after creation.
    pub version: u64,
}

/// The answer to a [`Command`] or a [`Query`].
///
/// `revision` is always the store's global revision after the request: the log index of
/// the last write that changed any key (0 for a store never written).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The session was opened; use `client_id` in [`SessionSeq`].
    SessionOpened {
        /// The new session's id (the log index of the `OpenSession` entry).
        client_id: u64,
    },
    /// The put was applied; `revision` is its log index.
    Put {
        /// The global revision after the put.
        revision: u64,
    },
    /// The delete was applied.
    Delete {
        /// Whether the key existed.
        deleted: bool,
        /// The global revision after the delete.
        revision: u64,
    },
    /// The compare-and-swap was evaluated.
    CompareAndSwap {
        /// Whether the condition held and the write happened.
        succeeded: bool,
        /// The global revision after the request.
        revision: u64,
        /// On failure, the key's current pair (if any) so the caller can retry without a
        /// second read; `None` on success.
        current: Option<KeyValue>,
    },
    /// The answer to [`Query::Get`].
    Get {
        /// The pair, if the key exists.
        kv: Option<KeyValue>,
        /// The global revision the read saw.
        revision: u64,
    },
    /// The answer to [`Query::Range`].
    Range {
        /// The matching pairs in key order.
        kvs: Vec<KeyValue>,
        /// Whether more matching keys exist after the last returned one.
        more: bool,
        /// The global revision the read saw.
        revision: u64,
    },
    /// The request was not carried out.
    Error(ErrorCode),
}

/// Why a request was not carried out. Deterministic, so it can be replicated and cached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The bytes are not a valid message of any supported version.
    Malformed,
    /// The message starts with a version byte this node does not know.
    UnsupportedVersion {
        /// The version byte found.
        version: u8,
    },
    /// The sequence number is below the session's last one: the request was superseded
    /// by a newer one from the same session, and its response is no longer remembered.
    StaleSequence {
        /// The session's last applied sequence number.
        last_seq: u64,
    },
    /// The session is unknown: it expired (or never existed). Open a new session; whether
    /// an in-flight write of the old session was applied must be checked by reading.
    SessionExpired {
        /// The session id named in the request.
        client_id: u64,
    },
}

/// Encoding and decoding of the versioned wire form; see the module docs.
pub trait Wire: Sized {
    /// Encodes `self` as the version byte plus postcard.
    fn encode(&self) -> Vec<u8>;
    /// Decodes a message, refusing unknown versions, malformed bodies and trailing bytes.
    fn decode(bytes: &[u8]) -> Result<Self, ErrorCode>;
}

macro_rules! impl_wire {
    ($($ty:ty),*) => {$(
        impl Wire for $ty {
            fn encode(&self) -> Vec<u8> {
                // postcard only fails on types serde cannot express without a length up
                // front (such as iterators of unknown size); ours are plain data.
                postcard::to_extend(self, vec![WIRE_VERSION])
                    .expect("postcard encodes plain KV types into a Vec")
            }

            fn decode(bytes: &[u8]) -> Result<Self, ErrorCode> {
                decode_versioned(bytes)
            }
        }
    )*};
}

impl_wire!(Command, Query, Response);

fn decode_versioned<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, ErrorCode> {
    match bytes.split_first() {
        Some((&WIRE_VERSION, body)) => match postcard::take_from_bytes(body) {
            Ok((value, [])) => Ok(value),
            _ => Err(ErrorCode::Malformed),
        },
        Some((&version, _)) => Err(ErrorCode::UnsupportedVersion { version }),
        None => Err(ErrorCode::Malformed),
    }
}
