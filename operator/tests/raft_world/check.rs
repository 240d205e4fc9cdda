//! Invariants. Core safety after every round: at most one leader per term, at most one
//! membership change in flight, and one entry per index across every node's applied
//! sequence (committed entries never change). The client's committed writes on every
//! voter's state machine, at checkpoints and at the end. And the ground truth operator
//! steps are judged by ([`Truth`]): the configuration in force, which members run and which
//! of them are caught up.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use kuberaft_raft::{EntryPayload, Membership, NodeId, Role};

use kuberaft_operator::planner::DEFAULT_MAX_CATCH_UP_LAG;

use super::World;
use super::kube::SimPod;

#[derive(Debug, Default)]
pub struct Checker {
    /// The leader of each term.
    leaders: HashMap<u64, NodeId>,
    /// What was applied at each index, anywhere: (term, payload hash).
    applied: HashMap<u64, (u64, u64)>,
    /// Client writes the leader saw committed, by index.
    pub writes: BTreeMap<u64, (String, String)>,
    pub violations: Vec<String>,
}

impl Checker {
    pub fn fail(&mut self, now: u64, what: String) {
        self.violations.push(format!("tick {now}: {what}"));
    }

    pub fn check_leaders(&mut self, now: u64, pods: &BTreeMap<u32, SimPod>) {
        for pod in pods.values() {
            let Some(core) = pod.process.as_ref().and_then(|p| p.core.as_ref()) else {
                continue;
            };
            if core.status().role != Role::Leader {
                continue;
            }
            let st = core.status();
            match self.leaders.insert(st.term, st.id) {
                Some(other) if other != st.id => self.fail(
                    now,
                    format!(
                        "Election Safety: {other:x} and {:x} both lead term {}",
                        st.id, st.term
                    ),
                ),
                _ => {}
            }
            // At most one membership change in flight.
            if st.config_index > st.commit {
                let pending = core
                    .log_entries_from(st.commit + 1)
                    .iter()
                    .filter(|e| matches!(e.payload, EntryPayload::ConfChange(_)))
                    .count();
                if pending > 1 {
                    let msg = format!(
                        "leader {:x} has {pending} configuration changes pending",
                        st.id
                    );
                    self.fail(now, msg);
                }
            }
        }
    }

    /// State Machine Safety: every node applies the same entry at an index.
    pub fn applied(&mut self, now: u64, index: u64, term: u64, hash: u64) {
        match self.applied.insert(index, (term, hash)) {
            Some(prev) if prev != (term, hash) => self.fail(
                now,
                format!(
                    "State Machine Safety: entry {index} applied with term {term}, elsewhere with term {}",
                    prev.0
                ),
            ),
            _ => {}
        }
    }

    pub fn committed(&mut self, index: u64, key: String, value: String) {
        self.writes.insert(index, (key, value));
    }
}

/// What is really so, for judging a step: the configuration as the most authoritative
/// running core has it (the leader of the highest term, else the most up-to-date node),
/// and the members that run a core in a pod that is not being deleted.
#[derive(Clone, Debug, Default)]
pub struct Truth {
    pub membership: Membership,
    /// Runs a core in a pod that is not being deleted.
    pub running: BTreeSet<NodeId>,
    /// Running, and its log within the planner's catch-up lag of the commit index.
    pub healthy: BTreeSet<NodeId>,
    /// Entries each running member's log is behind the highest commit index.
    pub lag: BTreeMap<NodeId, u64>,
}

/// The low 16 bits of a node id, enough to tell members apart in a trace.
pub fn short(id: NodeId) -> String {
    format!("{:04x}", id & 0xffff)
}

impl Truth {
    /// Voters of either half.
    pub fn voters(&self) -> BTreeSet<NodeId> {
        self.membership
            .voters
            .union(&self.membership.outgoing)
            .copied()
            .collect()
    }

    /// `up` voters are a majority of each half.
    fn majority_of(&self, up: &BTreeSet<NodeId>) -> bool {
        let m = &self.membership;
        let half = |set: &BTreeSet<NodeId>| {
            set.iter().filter(|id| up.contains(id)).count() > set.len() / 2
        };
        !m.voters.is_empty() && half(&m.voters) && (m.outgoing.is_empty() || half(&m.outgoing))
    }

    /// Running voters are a majority: the configuration can elect and commit.
    pub fn running_quorum(&self) -> bool {
        self.majority_of(&self.running)
    }

    /// Running, caught-up voters are a majority: it can commit without waiting for a
    /// laggard to catch up first.
    pub fn quorum(&self) -> bool {
        self.majority_of(&self.healthy)
    }

    /// `voters a1b2 c3d4(lag 140) e5f6(down)`: members not marked are healthy.
    pub fn summary(&self) -> String {
        let one = |id: &NodeId| {
            let state = match self.lag.get(id) {
                _ if self.healthy.contains(id) => String::new(),
                Some(lag) => format!("(lag {lag})"),
                None => "(down)".to_owned(),
            };
            format!("{}{state}", short(*id))
        };
        let m = &self.membership;
        let list = |set: &BTreeSet<NodeId>| set.iter().map(one).collect::<Vec<_>>().join(" ");
        let mut out = format!("voters {}", list(&m.voters));
        if !m.outgoing.is_empty() {
            out.push_str(&format!(" outgoing {}", list(&m.outgoing)));
        }
        if !m.learners.is_empty() {
            out.push_str(&format!(" learners {}", list(&m.learners)));
        }
        out
    }

    pub fn healthy_voters(&self) -> usize {
        self.voters()
            .iter()
            .filter(|id| self.healthy.contains(id))
            .count()
    }
}

impl World {
    /// The configuration in force is the running leader's of the highest term; without
    /// one, that of the most up-to-date log, running or on a volume (a stale member may be
    /// the only one running, and must not speak for the cluster).
    pub fn truth(&self) -> Truth {
        let mut leader: Option<(u64, Membership)> = None;
        let mut latest: Option<((u64, u64), Membership)> = None;
        let mut running = Vec::new();
        let mut commit = 0;
        let mut up = BTreeSet::new();
        for pod in self.pods.values() {
            let Some(p) = pod.process.as_ref() else {
                continue;
            };
            let Some(core) = p.core.as_ref() else {
                continue;
            };
            let st = core.status();
            up.insert(p.node_id);
            commit = commit.max(st.commit);
            if pod.terminating.is_none() {
                running.push((p.node_id, st.last_index));
            }
            if st.role == Role::Leader && leader.as_ref().is_none_or(|l| st.term > l.0) {
                leader = Some((st.term, st.membership.clone()));
            }
            let position = (core.log_term(st.last_index).unwrap_or(0), st.last_index);
            if latest.as_ref().is_none_or(|l| position > l.0) {
                latest = Some((position, st.membership));
            }
        }
        for c in self.pvcs.values() {
            let v = &c.volume;
            if v.runs_core() && !up.contains(&v.node_id) {
                let position = v.position();
                if latest.as_ref().is_none_or(|l| position > l.0) {
                    latest = Some((position, v.membership()));
                }
            }
        }
        // Caught up: its log reaches within the planner's catch-up lag of the commit index.
        let lag: BTreeMap<NodeId, u64> = running
            .into_iter()
            .map(|(id, last)| (id, commit.saturating_sub(last)))
            .collect();
        let running = lag.keys().copied().collect();
        let healthy = lag
            .iter()
            .filter(|&(_, &l)| l <= DEFAULT_MAX_CATCH_UP_LAG)
            .map(|(&id, _)| id)
            .collect();
        let membership = leader
            .map(|l| l.1)
            .or(latest.map(|l| l.1))
            .unwrap_or_default();
        Truth {
            membership,
            running,
            healthy,
            lag,
        }
    }

    /// Every committed write is on every voter that has applied through its index; with
    /// `complete`, every voter must have applied through all of them.
    pub fn check_writes(&mut self, complete: bool) {
        let voters = self.truth().voters();
        let last = self.checker.writes.keys().next_back().copied().unwrap_or(0);
        let mut failures = Vec::new();
        for id in voters {
            let Some(k) = self.ordinal_of_node(id) else {
                if complete {
                    failures.push(format!("voter {id:x} does not run"));
                }
                continue;
            };
            let sm = &self.process(k).expect("found").sm;
            if complete && sm.applied < last {
                failures.push(format!(
                    "voter {id:x} applied through {} only, the last committed write is {last}",
                    sm.applied
                ));
            }
            let missing = self
                .checker
                .writes
                .range(..=sm.applied)
                .find(|(_, (key, value))| sm.kv.get(key) != Some(value));
            if let Some((index, (key, value))) = missing {
                failures.push(format!(
                    "committed write {key}={value} (index {index}) is missing on voter {id:x} \
                     (pod {k}, applied through {})",
                    sm.applied
                ));
            }
        }
        for f in failures {
            self.checker.fail(self.now, f);
        }
    }
}
