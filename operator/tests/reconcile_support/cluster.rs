//! A fake Raft cluster behind [`MemberAdmin`]: nodes live on pods, the configuration
//! changes as the Admin calls ask, and every mutating call is logged as a line such as
//! `AddLearner demo-3 via demo-0`. Calls are checked the way the node checks them (leader
//! only, learner before promote) and are idempotent like the node's.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use kuberaft_operator::reconcile::admin::{
    AdminError, AdminResult, JoinIdentity, Lifecycle, MemberAdmin, MemberKind, MemberStatus,
    NodeStatus, PodEndpoint, Role, SnapshotInfo,
};

#[derive(Clone, Copy, Debug)]
struct Node {
    id: u64,
    lifecycle: Lifecycle,
}

#[derive(Debug, Default)]
struct Sim {
    cluster_id: Option<String>,
    /// The node on each pod's volume.
    nodes: BTreeMap<String, Node>,
    /// Pods whose process runs.
    running: BTreeSet<String>,
    /// Pods that do not answer even though they run (a hung process, a partition).
    hung: BTreeSet<String>,
    voters: BTreeSet<u64>,
    learners: BTreeSet<u64>,
    leader: Option<u64>,
    term: u64,
    commit: u64,
    lag: BTreeMap<u64, u64>,
    calls: Vec<String>,
    next_id: u64,
}

impl Sim {
    fn pod_of(&self, id: u64) -> String {
        self.nodes
            .iter()
            .find(|(_, n)| n.id == id)
            .map_or_else(|| format!("node-{id:x}"), |(p, _)| p.clone())
    }

    fn answering(&self, at: &PodEndpoint) -> AdminResult<Node> {
        match self.nodes.get(&at.pod) {
            Some(n) if self.running.contains(&at.pod) && !self.hung.contains(&at.pod) => Ok(*n),
            _ => Err(AdminError::Unavailable {
                pod: at.pod.clone(),
                message: "connection refused".into(),
            }),
        }
    }

    fn leader_at(&self, at: &PodEndpoint) -> AdminResult<()> {
        let node = self.answering(at)?;
        if self.leader != Some(node.id) {
            return Err(AdminError::NotLeader {
                pod: at.pod.clone(),
                message: "not the leader".into(),
            });
        }
        Ok(())
    }

    fn set_lifecycle(&mut self, id: u64, lifecycle: Lifecycle) {
        for n in self.nodes.values_mut().filter(|n| n.id == id) {
            n.lifecycle = lifecycle;
        }
    }
}

/// Cheap to clone; clones share the cluster (an operator restart keeps the Raft cluster).
#[derive(Clone, Debug, Default)]
pub struct FakeCluster {
    sim: Arc<Mutex<Sim>>,
}

impl FakeCluster {
    /// The pod's process starts. A fresh volume gets a new node id; otherwise the node on
    /// the volume comes back as it was.
    pub fn start(&self, pod: &str, fresh_volume: bool) {
        let mut s = self.sim.lock().unwrap();
        if fresh_volume || !s.nodes.contains_key(pod) {
            s.next_id += 1;
            let id = 0x100 + s.next_id;
            s.nodes.insert(
                pod.to_owned(),
                Node {
                    id,
                    lifecycle: Lifecycle::Uninitialized,
                },
            );
        }
        s.running.insert(pod.to_owned());
    }

    /// The pod's process stops (pod deleted).
    pub fn stop(&self, pod: &str) {
        self.sim.lock().unwrap().running.remove(pod);
    }

    /// The pod runs but its node does not answer.
    pub fn hang(&self, pod: &str, hung: bool) {
        let mut s = self.sim.lock().unwrap();
        if hung {
            s.hung.insert(pod.to_owned());
        } else {
            s.hung.remove(pod);
        }
    }

    pub fn set_lag(&self, pod: &str, lag: u64) {
        let id = self.node_id(pod);
        self.sim.lock().unwrap().lag.insert(id, lag);
    }

    pub fn node_id(&self, pod: &str) -> u64 {
        self.sim.lock().unwrap().nodes[pod].id
    }

    pub fn voters(&self) -> Vec<String> {
        let s = self.sim.lock().unwrap();
        s.voters.iter().map(|&id| s.pod_of(id)).collect()
    }

    pub fn learners(&self) -> Vec<String> {
        let s = self.sim.lock().unwrap();
        s.learners.iter().map(|&id| s.pod_of(id)).collect()
    }

    pub fn leader(&self) -> Option<String> {
        let s = self.sim.lock().unwrap();
        s.leader.map(|id| s.pod_of(id))
    }

    /// Mutating Admin calls since the last take.
    pub fn take_calls(&self) -> Vec<String> {
        std::mem::take(&mut self.sim.lock().unwrap().calls)
    }

    fn change(&self, at: &PodEndpoint, call: String, f: impl FnOnce(&mut Sim)) -> AdminResult<()> {
        let mut s = self.sim.lock().unwrap();
        s.leader_at(at)?;
        f(&mut s);
        s.commit += 1;
        s.calls.push(call);
        Ok(())
    }
}

fn member(s: &Sim, id: u64, kind: MemberKind, progress: bool) -> MemberStatus {
    let pod = s.pod_of(id);
    let lag = s.lag.get(&id).copied().unwrap_or(0);
    MemberStatus {
        node_id: id,
        name: pod.clone(),
        peer_addr: format!("{pod}.demo-peer.ns.svc:7000"),
        client_addr: format!("{pod}.demo-peer.ns.svc:7001"),
        kind,
        match_index: progress.then(|| s.commit.saturating_sub(lag)),
        lag: progress.then_some(lag),
    }
}

impl MemberAdmin for FakeCluster {
    async fn status(&self, at: &PodEndpoint) -> AdminResult<NodeStatus> {
        let s = self.sim.lock().unwrap();
        let node = s.answering(at)?;
        let member_now = node.lifecycle == Lifecycle::Member;
        let is_leader = member_now && s.leader == Some(node.id);
        let members = if member_now {
            s.voters
                .iter()
                .map(|&id| member(&s, id, MemberKind::Voter, is_leader))
                .chain(
                    s.learners
                        .iter()
                        .map(|&id| member(&s, id, MemberKind::Learner, is_leader)),
                )
                .collect()
        } else {
            vec![]
        };
        Ok(NodeStatus {
            node_id: node.id,
            name: at.pod.clone(),
            cluster_id: (node.lifecycle != Lifecycle::Uninitialized)
                .then(|| s.cluster_id.clone())
                .flatten(),
            lifecycle: node.lifecycle,
            role: if is_leader {
                Role::Leader
            } else {
                Role::Follower
            },
            term: s.term,
            leader_id: s.leader.filter(|_| member_now),
            commit_index: s.commit,
            last_index: s.commit,
            snapshot_index: 0,
            members,
            // The fake commits membership changes at once: nothing is ever pending.
            joint: false,
            config_index: 0,
            outgoing_voters: vec![],
            removed_node_ids: vec![],
            ready: member_now && s.lag.get(&node.id).copied().unwrap_or(0) == 0,
        })
    }

    async fn bootstrap(&self, at: &PodEndpoint, cluster_id: &str) -> AdminResult<String> {
        let mut s = self.sim.lock().unwrap();
        let node = s.answering(at)?;
        match node.lifecycle {
            Lifecycle::Uninitialized => {
                s.set_lifecycle(node.id, Lifecycle::Member);
                s.cluster_id = Some(cluster_id.to_owned());
                s.voters = BTreeSet::from([node.id]);
                s.leader = Some(node.id);
                s.term = 1;
                s.commit = 1;
            }
            Lifecycle::Member if s.cluster_id.as_deref() == Some(cluster_id) => {}
            _ => {
                return Err(AdminError::Refused {
                    pod: at.pod.clone(),
                    message: "already initialized".into(),
                });
            }
        }
        s.calls.push(format!("Bootstrap {}", at.pod));
        Ok(cluster_id.to_owned())
    }

    async fn prepare_join(&self, at: &PodEndpoint, cluster_id: &str) -> AdminResult<JoinIdentity> {
        let mut s = self.sim.lock().unwrap();
        let node = s.answering(at)?;
        if node.lifecycle == Lifecycle::Uninitialized {
            s.set_lifecycle(node.id, Lifecycle::Joining);
        }
        assert_eq!(
            s.cluster_id.as_deref(),
            Some(cluster_id),
            "PrepareJoin with a foreign cluster id"
        );
        s.calls.push(format!("PrepareJoin {}", at.pod));
        Ok(JoinIdentity {
            node_id: node.id,
            name: at.pod.clone(),
            peer_addr: format!("{}.demo-peer.ns.svc:7000", at.pod),
            client_addr: format!("{}.demo-peer.ns.svc:7001", at.pod),
        })
    }

    async fn add_learner(&self, leader: &PodEndpoint, learner: &JoinIdentity) -> AdminResult<()> {
        let call = format!("AddLearner {} via {}", learner.name, leader.pod);
        self.change(leader, call, |s| {
            if !s.voters.contains(&learner.node_id) {
                s.learners.insert(learner.node_id);
            }
            s.set_lifecycle(learner.node_id, Lifecycle::Member);
        })
    }

    async fn promote(&self, leader: &PodEndpoint, node_id: u64) -> AdminResult<()> {
        {
            let s = self.sim.lock().unwrap();
            if !s.learners.contains(&node_id) && !s.voters.contains(&node_id) {
                return Err(AdminError::Refused {
                    pod: leader.pod.clone(),
                    message: "not a learner".into(),
                });
            }
        }
        let call = format!("Promote {} via {}", self.pod(node_id), leader.pod);
        self.change(leader, call, |s| {
            s.learners.remove(&node_id);
            s.voters.insert(node_id);
        })
    }

    async fn remove_member(&self, leader: &PodEndpoint, node_id: u64) -> AdminResult<()> {
        let call = format!("RemoveMember {} via {}", self.pod(node_id), leader.pod);
        self.change(leader, call, |s| {
            s.voters.remove(&node_id);
            s.learners.remove(&node_id);
            s.set_lifecycle(node_id, Lifecycle::Removed);
        })
    }

    async fn change_membership(
        &self,
        leader: &PodEndpoint,
        promote: &[u64],
        remove: &[u64],
    ) -> AdminResult<()> {
        let call = format!(
            "ChangeMembership +{promote:x?} -{remove:x?} via {}",
            leader.pod
        );
        self.change(leader, call, |s| {
            for id in promote {
                s.learners.remove(id);
                s.voters.insert(*id);
            }
            for id in remove {
                s.voters.remove(id);
                s.set_lifecycle(*id, Lifecycle::Removed);
            }
        })
    }

    async fn transfer_leadership(&self, leader: &PodEndpoint, to: u64) -> AdminResult<u64> {
        let call = format!("TransferLeadership {} to {}", leader.pod, self.pod(to));
        self.change(leader, call, |s| {
            s.leader = Some(to);
            s.term += 1;
        })?;
        Ok(to)
    }

    async fn snapshot(&self, at: &PodEndpoint) -> AdminResult<SnapshotInfo> {
        let mut s = self.sim.lock().unwrap();
        s.answering(at)?;
        s.calls.push(format!("Snapshot {}", at.pod));
        Ok(SnapshotInfo {
            index: s.commit,
            term: s.term,
        })
    }
}

impl FakeCluster {
    fn pod(&self, id: u64) -> String {
        self.sim.lock().unwrap().pod_of(id)
    }
}
