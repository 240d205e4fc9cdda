//! Derived facts every rule asks about: which pod runs which member, who is healthy,
//! whether quorum holds. Computed once per `plan` call so the rules read alike.

use std::collections::{BTreeMap, BTreeSet};

use super::output::Health;
use super::types::{
    Configuration, Desired, NodeId, NodeReport, NodeState, Observed, ObservedPod,
    ObservedStatefulSet, RaftView,
};

static EMPTY_CONFIG: Configuration = Configuration {
    voters: BTreeSet::new(),
    outgoing_voters: BTreeSet::new(),
    learners: BTreeSet::new(),
};

/// Votes needed out of `n` voters.
pub(crate) fn majority(n: usize) -> usize {
    n / 2 + 1
}

pub(crate) struct View<'a> {
    pub d: &'a Desired,
    pub o: &'a Observed,
    pods: BTreeMap<u32, &'a ObservedPod>,
    /// Node id → ordinal of the (lowest) pod whose node answered with that id.
    reporters: BTreeMap<NodeId, u32>,
}

impl<'a> View<'a> {
    pub fn new(d: &'a Desired, o: &'a Observed) -> Self {
        let mut pods = BTreeMap::new();
        for pod in &o.pods {
            pods.entry(pod.ordinal).or_insert(pod);
        }
        let mut reporters = BTreeMap::new();
        for (&ordinal, pod) in &pods {
            if let NodeReport::Reachable { node_id, .. } = pod.node {
                reporters.entry(node_id).or_insert(ordinal);
            }
        }
        View {
            d,
            o,
            pods,
            reporters,
        }
    }

    pub fn sts(&self) -> Option<&'a ObservedStatefulSet> {
        self.o.statefulset.as_ref()
    }

    pub fn sts_replicas(&self) -> u32 {
        self.sts().map_or(0, |s| s.replicas)
    }

    pub fn pod(&self, ordinal: u32) -> Option<&'a ObservedPod> {
        self.pods.get(&ordinal).copied()
    }

    pub fn pods(&self) -> impl Iterator<Item = &'a ObservedPod> + '_ {
        self.pods.values().copied()
    }

    /// What the pod's node answered, if it did.
    pub fn report(&self, ordinal: u32) -> Option<(NodeId, NodeState)> {
        match self.pod(ordinal)?.node {
            NodeReport::Reachable { node_id, state } => Some((node_id, state)),
            NodeReport::Unreachable => None,
        }
    }

    /// The report of a pod that runs and is not going away: one the planner can act on.
    pub fn serving(&self, ordinal: u32) -> Option<(NodeId, NodeState)> {
        let pod = self.pod(ordinal)?;
        if !pod.running || pod.terminating {
            return None;
        }
        self.report(ordinal)
    }

    /// A node is healthy when a running pod answers with its id and it is not removed.
    pub fn healthy(&self, id: NodeId) -> bool {
        self.reporters.get(&id).is_some_and(|&k| {
            matches!(self.serving(k), Some((n, state)) if n == id && state != NodeState::Removed)
        })
    }

    /// The ordinal of the pod that runs (or ran) `id`: the pod answering with it, else
    /// the ordinal the member was added for.
    pub fn owner(&self, id: NodeId) -> Option<u32> {
        self.reporters
            .get(&id)
            .copied()
            .or_else(|| self.raft()?.members.get(&id)?.ordinal)
    }

    /// Some pod answers with this id.
    pub fn reported(&self, id: NodeId) -> bool {
        self.reporters.contains_key(&id)
    }

    /// The ordinal of the pod answering with this id.
    pub fn reporter(&self, id: NodeId) -> Option<u32> {
        self.reporters.get(&id).copied()
    }

    pub fn raft(&self) -> Option<&'a RaftView> {
        self.o.raft.as_ref()
    }

    pub fn config(&self) -> &'a Configuration {
        self.o.raft.as_ref().map_or(&EMPTY_CONFIG, |r| &r.config)
    }

    pub fn voters(&self) -> &'a BTreeSet<NodeId> {
        &self.config().voters
    }

    pub fn learners(&self) -> &'a BTreeSet<NodeId> {
        &self.config().learners
    }

    /// A voter of the incoming or the outgoing configuration.
    pub fn is_voter(&self, id: NodeId) -> bool {
        let c = self.config();
        c.voters.contains(&id) || c.outgoing_voters.contains(&id)
    }

    pub fn in_config(&self, id: NodeId) -> bool {
        self.is_voter(id) || self.learners().contains(&id)
    }

    /// Every id in the configuration, voters first.
    pub fn members(&self) -> impl Iterator<Item = NodeId> + '_ {
        let c = self.config();
        c.voters
            .iter()
            .chain(c.outgoing_voters.iter().filter(|id| !c.voters.contains(id)))
            .chain(c.learners.iter())
            .copied()
    }

    /// A joint configuration or an uncommitted configuration entry.
    pub fn config_pending(&self) -> bool {
        let Some(r) = self.raft() else { return false };
        !r.config.outgoing_voters.is_empty() || r.config_index > r.commit_index
    }

    pub fn healthy_in<'s>(&self, set: impl IntoIterator<Item = &'s NodeId>) -> usize {
        set.into_iter().filter(|&&id| self.healthy(id)).count()
    }

    /// Members of `set` that are healthy and caught up: the ones a new majority can count
    /// on to commit at once. A healthy voter far behind stalls every commit that needs it.
    pub fn ready_in<'s>(&self, set: impl IntoIterator<Item = &'s NodeId>) -> usize {
        set.into_iter()
            .filter(|&&id| self.healthy(id) && self.caught_up(id))
            .count()
    }

    /// Healthy voters reach a majority of the voters (and of the outgoing voters).
    pub fn quorum_ok(&self) -> bool {
        let c = self.config();
        if self.raft().is_none() || c.voters.is_empty() {
            return false;
        }
        let incoming = self.healthy_in(&c.voters) >= majority(c.voters.len());
        let outgoing = c.outgoing_voters.is_empty()
            || self.healthy_in(&c.outgoing_voters) >= majority(c.outgoing_voters.len());
        incoming && outgoing
    }

    /// The leader, when it is a healthy voter (otherwise nothing may ask it for anything).
    pub fn leader(&self) -> Option<NodeId> {
        let leader = self.raft()?.leader?;
        (self.is_voter(leader) && self.healthy(leader)).then_some(leader)
    }

    /// Lag at or under the catch-up threshold; the leader is caught up by definition.
    pub fn caught_up(&self, id: NodeId) -> bool {
        if self.leader() == Some(id) {
            return true;
        }
        let Some(m) = self.raft().and_then(|r| r.members.get(&id)) else {
            return false;
        };
        // Lag alone passes a member that replicated nothing while the log is short; a
        // member the leader never reached has match index 0.
        m.match_index.is_some_and(|i| i > 0)
            && m.lag.is_some_and(|lag| lag <= self.d.max_catch_up_lag)
    }

    /// The pod runs an older template than the spec asks for.
    pub fn outdated(&self, pod: &ObservedPod) -> bool {
        pod.template != self.d.template()
    }

    /// Bootstrapped once, as far as status or any node knows: never bootstrap again.
    pub fn bootstrapped(&self) -> bool {
        self.o.cluster_id.is_some()
            || self.o.raft.is_some()
            || self.pods.values().any(|p| {
                matches!(
                    p.node,
                    NodeReport::Reachable {
                        state: NodeState::Member | NodeState::Removed,
                        ..
                    }
                )
            })
    }

    /// The pod at `ordinal` may go away: it runs no member, as far as anyone can tell.
    /// An unreachable pod is trusted only when every member's pod is known.
    pub fn disposable(&self, ordinal: u32) -> bool {
        if self.members().any(|id| self.owner(id) == Some(ordinal)) {
            return false;
        }
        match self.pod(ordinal) {
            None => true,
            Some(pod) => match pod.node {
                NodeReport::Reachable { node_id, .. } => !self.in_config(node_id),
                NodeReport::Unreachable => self.members().all(|id| self.owner(id).is_some()),
            },
        }
    }

    /// The smallest StatefulSet size, not below `floor`, that only drops disposable pods.
    pub fn shrink_target(&self, floor: u32) -> u32 {
        let mut size = self.sts_replicas();
        while size > floor && self.disposable(size - 1) {
            size -= 1;
        }
        size
    }

    /// The most caught-up healthy voter other than `from`, preferring
    /// pods already on the current template; ties go to the lowest id.
    pub fn transfer_target(&self, from: NodeId) -> Option<NodeId> {
        let raft = self.raft()?;
        self.voters()
            .iter()
            .copied()
            .filter(|&id| id != from && self.healthy(id) && self.caught_up(id))
            .max_by_key(|&id| {
                let info = raft.members.get(&id).copied().unwrap_or_default();
                let current = self
                    .owner(id)
                    .and_then(|k| self.pod(k))
                    .is_some_and(|p| !self.outdated(p));
                (
                    current,
                    info.match_index.unwrap_or(0),
                    std::cmp::Reverse(info.lag.unwrap_or(u64::MAX)),
                    std::cmp::Reverse(id),
                )
            })
    }

    pub fn health(&self) -> Health {
        let voters = self.voters().len();
        let healthy = self.healthy_in(self.voters());
        Health {
            voters: count(voters),
            healthy_voters: count(healthy),
            learners: count(self.learners().len()),
            failure_tolerance: count(healthy.saturating_sub(majority(voters))),
        }
    }

    /// Human name of a pod for messages.
    pub fn pod_name(&self, ordinal: u32) -> String {
        self.pod(ordinal)
            .map_or_else(|| format!("ordinal {ordinal}"), |p| p.name.clone())
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::majority;

    #[test]
    fn majority_table() {
        let table = [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (6, 4), (7, 4)];
        for (voters, needed) in table {
            assert_eq!(majority(voters), needed, "{voters} voters");
        }
    }
}
