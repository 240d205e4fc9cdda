//! The node's state machine: the application's state machine plus the replicated
//! address book, fed with every committed entry in order.
//!
//! A node snapshot is a small header (magic, version, applied index and term, address
//! book) followed by the application's own snapshot stream, so the application's format
//! stays its own business and the header can grow without touching it.

use std::io::{self, Read, Write};

use kuberaft_raft::{Entry, EntryPayload, Membership, SnapshotMeta};
use serde::{Deserialize, Serialize};

use super::members::{self, AddressBook, NodeCommand, SystemCommand};
use crate::sm::{self, SnapshotSource, StateMachine};

const MAGIC: &[u8; 8] = b"KRNODE\x00\x01";
/// Bounds the header so a corrupt length cannot make restore allocate gigabytes.
const MAX_HEADER: u32 = 16 << 20;

/// Why a node snapshot could not be written or restored.
#[derive(Debug, thiserror::Error)]
pub enum NodeSmError {
    #[error("node snapshot i/o: {0}")]
    Io(#[from] io::Error),
    #[error("invalid node snapshot header: {0}")]
    Header(String),
    #[error("application state machine: {0}")]
    App(#[from] sm::Error),
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    applied: u64,
    term: u64,
    book: AddressBook,
}

/// What applying one entry changed, beyond the application's response.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// The response for the client waiting on this entry (empty for non-app entries).
    pub response: Vec<u8>,
    pub book_changed: bool,
    pub membership_changed: bool,
}

/// The application state machine wrapped with the node's own replicated state.
pub struct NodeStateMachine {
    app: Box<dyn StateMachine>,
    book: AddressBook,
    applied: u64,
    applied_term: u64,
    /// The configuration as of `applied`, for snapshot metadata.
    membership: Membership,
}

impl std::fmt::Debug for NodeStateMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeStateMachine")
            .field("applied", &self.applied)
            .field("applied_term", &self.applied_term)
            .field("membership", &self.membership)
            .finish_non_exhaustive()
    }
}

/// A captured node state that streams itself out while apply continues.
#[derive(Debug)]
pub struct NodeSnapshot {
    pub meta: SnapshotMeta,
    header: Header,
    app: Box<dyn SnapshotSource>,
}

impl NodeSnapshot {
    pub fn write_to(self, out: &mut dyn Write) -> Result<(), NodeSmError> {
        let header =
            postcard::to_stdvec(&self.header).map_err(|e| NodeSmError::Header(e.to_string()))?;
        out.write_all(MAGIC)?;
        out.write_all(&(header.len() as u32).to_le_bytes())?;
        out.write_all(&header)?;
        self.app.write_to(out)?;
        Ok(())
    }
}

impl NodeStateMachine {
    pub fn new(app: Box<dyn StateMachine>) -> Self {
        NodeStateMachine {
            app,
            book: AddressBook::default(),
            applied: 0,
            applied_term: 0,
            membership: Membership::default(),
        }
    }

    pub fn applied(&self) -> u64 {
        self.applied
    }

    pub fn book(&self) -> &AddressBook {
        &self.book
    }

    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// Applies one committed entry. Entries at or below the applied index are skipped
    /// (they are already in the state, e.g. after a restore).
    pub fn apply(&mut self, entry: &Entry) -> Effects {
        let mut fx = Effects::default();
        if entry.index <= self.applied {
            return fx;
        }
        self.applied = entry.index;
        self.applied_term = entry.term;
        match &entry.payload {
            EntryPayload::Empty => {}
            EntryPayload::ConfChange(cc) => {
                match self.membership.apply(cc) {
                    Ok(next) => self.membership = next,
                    Err(e) => tracing::error!(index = entry.index, error = %e,
                        "a committed configuration change does not apply"),
                }
                self.book.apply_conf_change(cc);
                fx.membership_changed = true;
                fx.book_changed = true;
            }
            EntryPayload::Normal(data) => match members::decode(data) {
                Some(NodeCommand::App(cmd)) => match self.app.apply(entry.index, cmd) {
                    Ok(response) => fx.response = response,
                    Err(e) => tracing::error!(index = entry.index, error = %e,
                        "the application refused a committed entry"),
                },
                Some(NodeCommand::System(SystemCommand::SetMemberInfo(info))) => {
                    self.book.set(info);
                    fx.book_changed = true;
                }
                None => tracing::warn!(index = entry.index, "skipping an undecodable entry"),
            },
        }
        fx
    }

    pub fn query(&self, query: &[u8]) -> sm::Result<Vec<u8>> {
        self.app.query(query)
    }

    /// Captures the state as of the applied index (cheap; the writing happens later).
    pub fn capture(&self) -> NodeSnapshot {
        NodeSnapshot {
            meta: SnapshotMeta {
                index: self.applied,
                term: self.applied_term,
                membership: self.membership.clone(),
            },
            header: Header {
                applied: self.applied,
                term: self.applied_term,
                book: self.book.clone(),
            },
            app: self.app.snapshot(),
        }
    }

    /// Replaces the whole state with snapshot `meta` read from `reader`. On error the
    /// previous state is untouched (the application validates before replacing).
    pub fn restore(
        &mut self,
        meta: &SnapshotMeta,
        reader: &mut dyn Read,
    ) -> Result<(), NodeSmError> {
        let mut magic = [0u8; 8];
        reader.read_exact(&mut magic)?;
        if &magic != MAGIC {
            return Err(NodeSmError::Header(format!("bad magic {magic:02x?}")));
        }
        let mut len = [0u8; 4];
        reader.read_exact(&mut len)?;
        let len = u32::from_le_bytes(len);
        if len > MAX_HEADER {
            return Err(NodeSmError::Header(format!(
                "header of {len} bytes is too long"
            )));
        }
        let mut buf = vec![0u8; len as usize];
        reader.read_exact(&mut buf)?;
        let header: Header =
            postcard::from_bytes(&buf).map_err(|e| NodeSmError::Header(e.to_string()))?;
        if (header.applied, header.term) != (meta.index, meta.term) {
            return Err(NodeSmError::Header(format!(
                "header says index {} term {}, metadata says index {} term {}",
                header.applied, header.term, meta.index, meta.term
            )));
        }
        self.app.restore(reader)?;
        self.book = header.book;
        self.applied = meta.index;
        self.applied_term = meta.term;
        self.membership = meta.membership.clone();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use kuberaft_raft::{ConfChange, ConfChangeKind};

    use super::*;
    use crate::server::members::{MemberInfo, encode_app, encode_system};
    use crate::sm::kv::{Command, KvConfig, KvStateMachine, Query, Response, Wire, WriteOp};

    fn node_sm() -> NodeStateMachine {
        NodeStateMachine::new(Box::new(KvStateMachine::new(KvConfig::default())))
    }

    fn put(key: &str) -> Vec<u8> {
        encode_app(
            &Command::Write {
                session: None,
                op: WriteOp::Put {
                    key: key.as_bytes().to_vec().into(),
                    value: b"v".to_vec().into(),
                },
            }
            .encode(),
        )
    }

    fn entries() -> Vec<Entry> {
        let info = MemberInfo {
            id: 7,
            name: "a".into(),
            peer_addr: "p".into(),
            client_addr: "c".into(),
        };
        vec![
            Entry {
                term: 1,
                index: 1,
                payload: EntryPayload::ConfChange(ConfChange::single(ConfChangeKind::AddVoter, 7)),
            },
            Entry {
                term: 1,
                index: 2,
                payload: EntryPayload::Normal(encode_system(&SystemCommand::SetMemberInfo(info))),
            },
            Entry {
                term: 2,
                index: 3,
                payload: EntryPayload::Empty,
            },
            Entry {
                term: 2,
                index: 4,
                payload: EntryPayload::Normal(put("k")),
            },
        ]
    }

    #[test]
    fn applies_system_app_and_conf_entries() {
        let mut sm = node_sm();
        let fx: Vec<Effects> = entries().iter().map(|e| sm.apply(e)).collect();
        assert!(fx[0].membership_changed);
        assert!(fx[1].book_changed);
        assert_eq!(
            Response::decode(&fx[3].response).unwrap(),
            Response::Put { revision: 4 }
        );
        assert_eq!(sm.applied(), 4);
        assert_eq!(sm.book().get(7).unwrap().name, "a");
        assert_eq!(sm.membership(), &Membership::with_voters([7]));
        // Re-applying an old index changes nothing.
        assert_eq!(sm.apply(&entries()[3]), Effects::default());
    }

    #[test]
    fn snapshot_round_trips_book_and_data() {
        let mut sm = node_sm();
        for e in entries() {
            sm.apply(&e);
        }
        let snap = sm.capture();
        let meta = snap.meta.clone();
        assert_eq!((meta.index, meta.term), (4, 2));
        let mut bytes = Vec::new();
        snap.write_to(&mut bytes).unwrap();
        let mut other = node_sm();
        other.restore(&meta, &mut bytes.as_slice()).unwrap();
        assert_eq!(other.applied(), 4);
        assert_eq!(other.book(), sm.book());
        let q = Query::Get {
            key: b"k".to_vec().into(),
        }
        .encode();
        assert_eq!(other.query(&q).unwrap(), sm.query(&q).unwrap());

        let mut wrong = meta.clone();
        wrong.index = 5;
        let err = node_sm()
            .restore(&wrong, &mut bytes.as_slice())
            .unwrap_err();
        assert!(err.to_string().contains("header says index 4"), "{err}");
        let err = node_sm()
            .restore(&meta, &mut &b"garbage!garbage"[..])
            .unwrap_err();
        assert!(err.to_string().contains("bad magic"), "{err}");
    }
}
