//! The replicated state machine of a simulated member, shaped like the real node's
//! `NodeStateMachine`: client writes, the member address book (`SetMemberInfo`) and the
//! ids removed by committed configuration changes, which peers refuse forever. Snapshots
//! are a plain text dump.

use std::collections::{BTreeMap, BTreeSet};

use kuberaft_raft::{ConfChangeKind, Entry, EntryPayload, Membership, NodeId, SnapshotMeta};

/// A normal log entry's command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// A client write. Every key is written once, so "the write survived" is "the key is
    /// there with its value".
    Put { key: String, value: String },
    /// The address book entry of a member: its pod name (a leader announces itself, and
    /// AddLearner announces the learner before adding it).
    Member { id: NodeId, name: String },
}

impl Command {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Command::Put { key, value } => format!("p {key} {value}"),
            Command::Member { id, name } => format!("m {id} {name}"),
        }
        .into_bytes()
    }

    pub fn decode(data: &[u8]) -> Option<Command> {
        let s = std::str::from_utf8(data).ok()?;
        let mut it = s.split(' ');
        let cmd = match it.next()? {
            "p" => Command::Put {
                key: it.next()?.to_owned(),
                value: it.next()?.to_owned(),
            },
            "m" => Command::Member {
                id: it.next()?.parse().ok()?,
                name: it.next()?.to_owned(),
            },
            _ => return None,
        };
        it.next().is_none().then_some(cmd)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sm {
    pub kv: BTreeMap<String, String>,
    /// Node id → member name (its pod name).
    pub book: BTreeMap<NodeId, String>,
    /// Removed by a committed change: refused as peers, never re-added.
    pub removed: BTreeSet<NodeId>,
    /// The configuration as applied (not as appended).
    pub membership: Membership,
    pub applied: u64,
}

impl Sm {
    pub fn apply(&mut self, e: &Entry) {
        match &e.payload {
            EntryPayload::Normal(data) => match Command::decode(data) {
                Some(Command::Put { key, value }) => {
                    self.kv.insert(key, value);
                }
                Some(Command::Member { id, name }) if !self.removed.contains(&id) => {
                    self.book.insert(id, name);
                }
                _ => {}
            },
            EntryPayload::ConfChange(cc) => {
                if let Ok(next) = self.membership.apply(cc) {
                    self.membership = next;
                }
                for ch in cc
                    .changes
                    .iter()
                    .filter(|c| c.kind == ConfChangeKind::Remove)
                {
                    self.book.remove(&ch.node);
                    self.removed.insert(ch.node);
                }
            }
            EntryPayload::Empty => {}
        }
        self.applied = e.index;
    }

    /// One line per fact; the configuration travels in the snapshot's metadata.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut out = String::new();
        for (k, v) in &self.kv {
            out.push_str(&format!("p {k} {v}\n"));
        }
        for (id, name) in &self.book {
            out.push_str(&format!("m {id} {name}\n"));
        }
        for id in &self.removed {
            out.push_str(&format!("r {id}\n"));
        }
        out.into_bytes()
    }

    pub fn restore(meta: &SnapshotMeta, data: &[u8]) -> Sm {
        let mut sm = Sm {
            membership: meta.membership.clone(),
            applied: meta.index,
            ..Sm::default()
        };
        for line in String::from_utf8_lossy(data).lines() {
            let mut it = line.split(' ');
            match (it.next(), it.next(), it.next()) {
                (Some("p"), Some(k), Some(v)) => {
                    sm.kv.insert(k.to_owned(), v.to_owned());
                }
                (Some("m"), Some(id), Some(name)) => {
                    if let Ok(id) = id.parse() {
                        sm.book.insert(id, name.to_owned());
                    }
                }
                (Some("r"), Some(id), None) => {
                    if let Ok(id) = id.parse() {
                        sm.removed.insert(id);
                    }
                }
                _ => {}
            }
        }
        sm
    }
}
