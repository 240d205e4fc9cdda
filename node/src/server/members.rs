//! The member address book and the node-level log envelope.
//!
//! Raft membership only knows node ids; peers and clients need each member's name and
//! addresses. The book is replicated state: it changes only through committed log
//! entries (a `SetMemberInfo` system command, or a configuration change removing a
//! member), so every member holds the same book and a new member receives it with the
//! log or inside a node snapshot.
//!
//! Every normal log entry is an envelope: one tag byte, then either the application's
//! command untouched (tag 0) or a postcard-encoded [`SystemCommand`] (tag 1).

use std::collections::{BTreeMap, BTreeSet};

use kuberaft_raft::{ConfChange, ConfChangeKind, NodeId};
use serde::{Deserialize, Serialize};

const TAG_APP: u8 = 0;
const TAG_SYSTEM: u8 = 1;

/// Where to reach one member.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    pub id: NodeId,
    pub name: String,
    pub peer_addr: String,
    pub client_addr: String,
}

/// A command for the node itself rather than for the application state machine.
/// New variants are appended at the end (postcard encodes the variant's position).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SystemCommand {
    SetMemberInfo(MemberInfo),
}

/// A decoded log entry payload.
#[derive(Debug, PartialEq, Eq)]
pub enum NodeCommand<'a> {
    App(&'a [u8]),
    System(SystemCommand),
}

/// Wraps an application command for the log.
pub fn encode_app(command: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(command.len() + 1);
    out.push(TAG_APP);
    out.extend_from_slice(command);
    out
}

pub fn encode_system(command: &SystemCommand) -> Vec<u8> {
    postcard::to_extend(command, vec![TAG_SYSTEM]).expect("plain data encodes into a Vec")
}

/// Decodes an entry payload; `None` for bytes no node ever wrote (applied as a no-op on
/// every replica alike).
pub fn decode(data: &[u8]) -> Option<NodeCommand<'_>> {
    match data.split_first()? {
        (&TAG_APP, rest) => Some(NodeCommand::App(rest)),
        (&TAG_SYSTEM, rest) => match postcard::take_from_bytes(rest) {
            Ok((cmd, [])) => Some(NodeCommand::System(cmd)),
            _ => None,
        },
        _ => None,
    }
}

/// The replicated address book, plus the ids removed from the cluster (refused forever).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressBook {
    members: BTreeMap<NodeId, MemberInfo>,
    removed: BTreeSet<NodeId>,
}

impl AddressBook {
    pub fn get(&self, id: NodeId) -> Option<&MemberInfo> {
        self.members.get(&id)
    }

    pub fn is_removed(&self, id: NodeId) -> bool {
        self.removed.contains(&id)
    }

    /// Every id removed from the cluster, in order.
    pub fn removed(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.removed.iter().copied()
    }

    pub fn members(&self) -> impl Iterator<Item = &MemberInfo> {
        self.members.values()
    }

    /// Records a member's addresses. A removed id stays removed.
    pub fn set(&mut self, info: MemberInfo) {
        if !self.removed.contains(&info.id) {
            self.members.insert(info.id, info);
        }
    }

    /// Applies the removals of a committed configuration change.
    pub fn apply_conf_change(&mut self, cc: &ConfChange) {
        for ch in &cc.changes {
            if ch.kind == ConfChangeKind::Remove {
                self.members.remove(&ch.node);
                self.removed.insert(ch.node);
            }
        }
    }

    /// Finds a member by name or by its id written in decimal.
    pub fn find(&self, name_or_id: &str) -> Option<&MemberInfo> {
        self.members
            .values()
            .find(|m| m.name == name_or_id)
            .or_else(|| name_or_id.parse().ok().and_then(|id| self.members.get(&id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: NodeId) -> MemberInfo {
        MemberInfo {
            id,
            name: format!("n{id}"),
            peer_addr: format!("p{id}:7000"),
            client_addr: format!("c{id}:7001"),
        }
    }

    #[test]
    fn envelope_round_trips_and_refuses_garbage() {
        assert_eq!(decode(&encode_app(b"abc")), Some(NodeCommand::App(b"abc")));
        assert_eq!(decode(&encode_app(b"")), Some(NodeCommand::App(b"")));
        let sys = SystemCommand::SetMemberInfo(info(3));
        assert_eq!(
            decode(&encode_system(&sys)),
            Some(NodeCommand::System(sys.clone()))
        );
        assert_eq!(decode(&[]), None);
        assert_eq!(decode(&[9, 1, 2]), None);
        let mut trailing = encode_system(&sys);
        trailing.push(0);
        assert_eq!(decode(&trailing), None);
    }

    #[test]
    fn removal_is_final() {
        let mut book = AddressBook::default();
        book.set(info(1));
        book.set(info(2));
        assert_eq!(book.find("n2").map(|m| m.id), Some(2));
        assert_eq!(book.find("1").map(|m| m.id), Some(1));
        book.apply_conf_change(&ConfChange::single(ConfChangeKind::Remove, 2));
        assert!(book.is_removed(2));
        assert!(book.get(2).is_none());
        book.set(info(2));
        assert!(book.get(2).is_none(), "a removed id never comes back");
        book.apply_conf_change(&ConfChange::single(ConfChangeKind::AddLearner, 5));
        assert!(!book.is_removed(5));
    }
}
