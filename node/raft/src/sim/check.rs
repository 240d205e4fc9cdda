//! Safety invariants checked after every simulated step: Election Safety, Leader
//! Append-Only, Log Matching, Leader Completeness, State Machine Safety, that a commit is
//! durable on a majority of voters (so learners never count), and that at most one
//! configuration change is pending.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};

use super::node::SimNode;
use crate::raw_node::{Brief, Status};
use crate::types::*;

fn payload_hash(e: &Entry) -> u64 {
    let mut h = DefaultHasher::new();
    e.payload.hash(&mut h);
    h.finish()
}

#[derive(Debug, Default)]
pub struct Checker {
    /// Election Safety: the leader of each term.
    leaders: HashMap<u64, NodeId>,
    /// Leader Append-Only: each leader's (term, last index, last term) at the last check.
    leader_tail: HashMap<NodeId, (u64, u64, u64)>,
    /// Log Matching: every (index, term) ever in a log, with its payload hash and the term
    /// of the entry before it.
    entries: HashMap<(u64, u64), (u64, Option<u64>)>,
    /// Every index known committed somewhere, with its term and payload hash.
    committed: BTreeMap<u64, (u64, u64)>,
    /// State Machine Safety: what was applied at each index.
    applied: HashMap<u64, (u64, u64)>,
    /// Each node's commit index and (role, term) at the last check.
    seen: HashMap<NodeId, (u64, Role, u64, Membership)>,
    pub violations: Vec<String>,
}

impl Checker {
    fn fail(&mut self, step: u64, what: String) {
        self.violations.push(format!("step {step}: {what}"));
    }

    /// Log Matching, checked on every entry a node is handed to persist.
    pub fn observe_entry(&mut self, step: u64, node: NodeId, e: &Entry, prev_term: Option<u64>) {
        let h = payload_hash(e);
        match self.entries.get(&(e.index, e.term)) {
            None => {
                self.entries.insert((e.index, e.term), (h, prev_term));
            }
            Some(&(h0, p0)) => {
                if h0 != h {
                    self.fail(
                        step,
                        format!(
                            "Log Matching: node {node} has a different entry at {}/{}",
                            e.index, e.term
                        ),
                    );
                }
                if let (Some(a), Some(b)) = (p0, prev_term)
                    && a != b
                {
                    self.fail(step, format!(
                        "Log Matching: node {node} entry {}/{} follows term {b}, elsewhere term {a}",
                        e.index, e.term
                    ));
                }
            }
        }
    }

    /// State Machine Safety, checked on every applied entry.
    pub fn observe_apply(&mut self, step: u64, node: NodeId, e: &Entry) {
        let v = (e.term, payload_hash(e));
        match self.applied.get(&e.index) {
            None => {
                self.applied.insert(e.index, v);
            }
            Some(&prev) if prev != v => self.fail(
                step,
                format!(
                    "State Machine Safety: node {node} applied {}/{} where {}/{} was applied",
                    e.index, e.term, e.index, prev.0
                ),
            ),
            Some(_) => {}
        }
    }

    /// The per-step checks over every running node.
    pub fn check(&mut self, step: u64, nodes: &BTreeMap<NodeId, SimNode>) {
        for (&id, n) in nodes {
            let Some(raw) = &n.raw else {
                self.seen.remove(&id);
                continue;
            };
            let st = raw.status();
            let brief = raw.brief();
            let expected = Brief {
                role: st.role,
                term: st.term,
                leader: st.leader,
                commit: st.commit,
                applied: st.applied,
                last_index: st.last_index,
                snapshot_index: st.snapshot_index,
                config_index: st.config_index,
            };
            if brief != expected {
                self.fail(
                    step,
                    format!("node {id}: brief {brief:?} disagrees with status {expected:?}"),
                );
            }
            let (prev_commit, prev_role, prev_term, prev_membership) = self
                .seen
                .get(&id)
                .cloned()
                .unwrap_or((st.commit, Role::Follower, 0, st.membership.clone()));
            if st.role == Role::Leader {
                self.check_leader(
                    step,
                    id,
                    n,
                    &st,
                    prev_role != Role::Leader || prev_term != st.term,
                );
            }
            if st.commit > prev_commit {
                self.record_commits(step, id, n, prev_commit, st.commit);
                if st.role == Role::Leader {
                    self.check_commit_durable(step, id, nodes, &st, &prev_membership);
                }
            }
            self.seen
                .insert(id, (st.commit, st.role, st.term, st.membership.clone()));
        }
    }

    fn check_leader(&mut self, step: u64, id: NodeId, n: &SimNode, st: &Status, new_leader: bool) {
        let raw = n.raw.as_ref().expect("running");
        if let Some(&other) = self.leaders.get(&st.term)
            && other != id
        {
            self.fail(
                step,
                format!(
                    "Election Safety: nodes {other} and {id} both lead term {}",
                    st.term
                ),
            );
        }
        self.leaders.insert(st.term, id);

        let last_term = raw.log_term(st.last_index).unwrap_or(0);
        if let Some(&(term, li, lt)) = self.leader_tail.get(&id)
            && term == st.term
            && li >= st.first_index
            && (st.last_index < li || raw.log_term(li) != Some(lt))
        {
            self.fail(
                step,
                format!("Leader Append-Only: leader {id} lost entry {li}/{lt}"),
            );
        }
        self.leader_tail
            .insert(id, (st.term, st.last_index, last_term));

        if new_leader {
            // Leader Completeness: every committed entry is in the new leader's log.
            let missing = self
                .committed
                .range(st.first_index..)
                .find(|&(&i, &(t, _))| raw.log_term(i) != Some(t))
                .map(|(&i, &(t, _))| (i, t));
            if let Some((i, t)) = missing {
                self.fail(
                    step,
                    format!(
                        "Leader Completeness: leader {id} of term {} lacks committed {i}/{t}",
                        st.term
                    ),
                );
            }
        }

        let pending = raw
            .log_entries_from(st.commit + 1)
            .iter()
            .filter(|e| matches!(e.payload, EntryPayload::ConfChange(_)))
            .count();
        if pending > 1 {
            self.fail(
                step,
                format!("leader {id} has {pending} configuration changes pending"),
            );
        }
    }

    fn record_commits(&mut self, step: u64, id: NodeId, n: &SimNode, from: u64, to: u64) {
        let raw = n.raw.as_ref().expect("running");
        for e in raw
            .log_entries_from(from + 1)
            .into_iter()
            .take_while(|e| e.index <= to)
        {
            let v = (e.term, payload_hash(&e));
            match self.committed.get(&e.index) {
                Some(&prev) if prev != v => self.fail(
                    step,
                    format!(
                        "node {id} committed {}/{} where {}/{} was committed",
                        e.index, e.term, e.index, prev.0
                    ),
                ),
                Some(_) => {}
                None => {
                    self.committed.insert(e.index, v);
                }
            }
        }
    }

    /// A commit needs the entry durable on a majority of voters of every half of the
    /// configuration. Only voters' disks count, so a core that counted a learner, or
    /// counted an acknowledgement sent before the fsync, is caught here.
    fn check_commit_durable(
        &mut self,
        step: u64,
        id: NodeId,
        nodes: &BTreeMap<NodeId, SimNode>,
        st: &Status,
        prev_membership: &Membership,
    ) {
        let raw = nodes[&id].raw.as_ref().expect("running");
        let Some(term) = raw.log_term(st.commit) else {
            return;
        };
        let holds = |v: NodeId| nodes.get(&v).is_some_and(|n| n.disk.holds(st.commit, term));
        let durable = |m: &Membership| m.has_quorum(holds);
        if !durable(&st.membership) && !durable(prev_membership) {
            self.fail(
                step,
                format!(
                    "leader {id} committed {}/{term} without a durable majority of voters {:?}",
                    st.commit, st.membership
                ),
            );
        }
    }
}
