//! The Raft side of the observation: each node's report, and the cluster as the leader
//! sees it (or, without a leader, as the most up-to-date member does).

use std::collections::BTreeMap;

use super::super::admin::{AdminResult, Lifecycle, MemberKind, NodeStatus, Role};
use super::super::observe::{World, ordinal_of};
use crate::crd::RaftClusterStatus;
use crate::planner::{Configuration, MemberInfo, NodeId, NodeReport, NodeState, RaftView};

/// A pod's Admin.Status answer as the planner reads it. A Joining node is not in any
/// configuration yet, so it is as joinable as an uninitialized one.
pub fn node_report(answer: &AdminResult<NodeStatus>) -> NodeReport {
    match answer {
        Err(_) => NodeReport::Unreachable,
        Ok(s) => NodeReport::Reachable {
            node_id: s.node_id,
            state: match s.lifecycle {
                Lifecycle::Uninitialized | Lifecycle::Joining => NodeState::Uninitialized,
                Lifecycle::Member => NodeState::Member,
                Lifecycle::Removed => NodeState::Removed,
            },
        },
    }
}

/// The report the view is built from: the leader of the highest term, else the member
/// with the highest (term, commit index). Two self-proclaimed leaders happen after a
/// partition heals; the one of the higher term is the real one.
fn source(world: &World) -> Option<&NodeStatus> {
    let members = world
        .reports
        .values()
        .filter_map(|r| r.as_ref().ok())
        .filter(|s| s.lifecycle == Lifecycle::Member && !s.members.is_empty());
    let mut best: Option<&NodeStatus> = None;
    for s in members {
        let key = |s: &NodeStatus| (s.role == Role::Leader, s.term, s.commit_index, s.node_id);
        if best.is_none_or(|b| key(s) > key(b)) {
            best = Some(s);
        }
    }
    best
}

/// `None` when no member answered.
///
/// The configuration comes from the best-informed member (the leader when one answers):
/// its members by kind, the whole outgoing half while joint, and the index of its last
/// configuration entry, so a change still uncommitted counts as in flight.
pub fn raft_view(cluster: &str, world: &World, status: &RaftClusterStatus) -> Option<RaftView> {
    let s = source(world)?;
    let from_leader = s.role == Role::Leader;
    let mut config = Configuration::default();
    let mut members = BTreeMap::new();
    for m in &s.members {
        match m.kind {
            MemberKind::Voter => config.voters.insert(m.node_id),
            MemberKind::Learner => config.learners.insert(m.node_id),
            MemberKind::OutgoingVoter => config.outgoing_voters.insert(m.node_id),
        };
        let ordinal = ordinal_of(cluster, &m.name)
            .or_else(|| ordinal_of(cluster, m.peer_addr.split('.').next().unwrap_or("")))
            .or_else(|| remembered_ordinal(cluster, status, m.node_id));
        members.insert(
            m.node_id,
            MemberInfo {
                ordinal,
                match_index: m.match_index.filter(|_| from_leader),
                lag: m.lag.filter(|_| from_leader),
            },
        );
    }
    config
        .outgoing_voters
        .extend(s.outgoing_voters.iter().copied());
    Some(RaftView {
        leader: from_leader.then_some(s.node_id),
        term: s.term,
        commit_index: s.commit_index,
        config_index: s.config_index,
        config,
        members,
    })
}

/// The ordinal `status.members` last recorded for this node id, for a member whose name
/// and address say nothing (it was added by hand, say).
fn remembered_ordinal(cluster: &str, status: &RaftClusterStatus, id: NodeId) -> Option<u32> {
    let id = id.to_string();
    status
        .members
        .iter()
        .find(|m| m.node_id.as_deref() == Some(id.as_str()))
        .and_then(|m| ordinal_of(cluster, &m.name))
}
