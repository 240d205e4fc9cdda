//! Hand-built observations for the planner tests: a healthy cluster of `n` members on pods
//! `demo-0..n`, node ids `0xa0 + ordinal`, leader on pod 0, and small edits on top.

#![allow(dead_code)]

pub mod world;

use std::collections::BTreeSet;

use kuberaft_operator::planner::{
    Desired, MemberInfo, NodeId, NodeReport, NodeState, Observed, ObservedPod, ObservedStatefulSet,
    Operation, Plan, PodTemplate, RaftView, Step, plan,
};

/// `default` cases unless `PROPTEST_CASES` asks for more (a long soak: `PROPTEST_CASES=100000`).
/// Failures are not persisted to files: proptest prints the minimal input to reproduce.
pub fn cases(default: u32) -> proptest::test_runner::Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok());
    proptest::test_runner::Config {
        cases: cases.unwrap_or(default),
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    }
}

pub const IMAGE: &str = "kuberaft/raft-node:1.0";
pub const NEW_IMAGE: &str = "kuberaft/raft-node:1.1";

/// Node id of the member first started on pod `k`.
pub fn id(k: u32) -> NodeId {
    0xa0 + u64::from(k)
}

pub fn pod_name(k: u32) -> String {
    format!("demo-{k}")
}

pub fn template(image: &str) -> PodTemplate {
    PodTemplate {
        image: image.to_owned(),
        snapshot_entry_threshold: Desired::new(1, image).snapshot_entry_threshold,
        hash: String::new(),
    }
}

pub fn member(id: NodeId) -> NodeReport {
    NodeReport::Reachable {
        node_id: id,
        state: NodeState::Member,
    }
}

pub fn uninit(id: NodeId) -> NodeReport {
    NodeReport::Reachable {
        node_id: id,
        state: NodeState::Uninitialized,
    }
}

pub fn removed(id: NodeId) -> NodeReport {
    NodeReport::Reachable {
        node_id: id,
        state: NodeState::Removed,
    }
}

pub fn pod(k: u32, node: NodeReport) -> ObservedPod {
    ObservedPod {
        ordinal: k,
        name: pod_name(k),
        running: true,
        ready: true,
        terminating: false,
        template: template(IMAGE),
        node,
    }
}

#[derive(Clone, Debug)]
pub struct Cluster {
    pub desired: Desired,
    pub observed: Observed,
}

impl Cluster {
    /// Nothing exists yet.
    pub fn empty(replicas: u32) -> Self {
        Cluster {
            desired: Desired::new(replicas, IMAGE),
            observed: Observed::default(),
        }
    }

    /// `n` healthy, caught-up voters; the spec asks for exactly that.
    pub fn healthy(n: u32) -> Self {
        let mut raft = RaftView {
            leader: Some(id(0)),
            term: 3,
            commit_index: 100,
            config_index: 50,
            ..RaftView::default()
        };
        for k in 0..n {
            raft.config.voters.insert(id(k));
            raft.members.insert(id(k), info(k, 100, 0));
        }
        Cluster {
            desired: Desired::new(n, IMAGE),
            observed: Observed {
                statefulset: Some(ObservedStatefulSet {
                    replicas: n,
                    template: template(IMAGE),
                    storage_size: None,
                }),
                pods: (0..n).map(|k| pod(k, member(id(k)))).collect(),
                pvcs: (0..n).collect::<BTreeSet<_>>(),
                raft: Some(raft),
                cluster_id: Some("c-1".to_owned()),
                ..Observed::default()
            },
        }
    }

    pub fn plan(&self) -> Plan {
        plan(&self.desired, &self.observed)
    }

    pub fn step(&self) -> Step {
        self.plan().step
    }

    pub fn replicas(mut self, n: u32) -> Self {
        self.desired.replicas = n;
        self
    }

    pub fn recorded(mut self, op: Operation) -> Self {
        self.observed.operation = Some(op);
        self
    }

    pub fn raft(&mut self) -> &mut RaftView {
        self.observed.raft.as_mut().expect("raft view")
    }

    pub fn sts_replicas(&mut self, n: u32) {
        self.observed
            .statefulset
            .as_mut()
            .expect("statefulset")
            .replicas = n;
    }

    pub fn pod_mut(&mut self, k: u32) -> &mut ObservedPod {
        self.observed
            .pods
            .iter_mut()
            .find(|p| p.ordinal == k)
            .expect("pod")
    }

    /// Put (or replace) the pod at `k` with this report.
    pub fn set_pod(&mut self, k: u32, node: NodeReport) {
        self.observed.pods.retain(|p| p.ordinal != k);
        self.observed.pods.push(pod(k, node));
        self.observed.pods.sort_by_key(|p| p.ordinal);
    }

    pub fn remove_pod(&mut self, k: u32) {
        self.observed.pods.retain(|p| p.ordinal != k);
    }

    /// The pod runs but its node is down.
    pub fn kill(&mut self, k: u32) {
        let pod = self.pod_mut(k);
        pod.running = false;
        pod.ready = false;
        pod.node = NodeReport::Unreachable;
    }

    /// `node` is a learner on pod `k` with this lag; the pod answers with it.
    pub fn learner(&mut self, node: NodeId, k: u32, lag: u64) {
        let raft = self.raft();
        raft.config.learners.insert(node);
        raft.members.insert(node, info(k, 100 - lag.min(100), lag));
        self.set_pod(k, member(node));
    }

    /// Move `node` from the learners (or nowhere) to the voters.
    pub fn promote(&mut self, node: NodeId) {
        let raft = self.raft();
        raft.config.learners.remove(&node);
        raft.config.voters.insert(node);
    }

    /// Drop `node` from the configuration (a committed removal).
    pub fn drop_member(&mut self, node: NodeId) {
        let raft = self.raft();
        raft.config.voters.remove(&node);
        raft.config.learners.remove(&node);
        raft.members.remove(&node);
    }

    pub fn lag(&mut self, node: NodeId, lag: u64) {
        let info = self.raft().members.get_mut(&node).expect("member");
        info.lag = Some(lag);
        info.match_index = Some(100 - lag.min(100));
    }
}

pub fn info(k: u32, match_index: u64, lag: u64) -> MemberInfo {
    MemberInfo {
        ordinal: Some(k),
        match_index: Some(match_index),
        lag: Some(lag),
    }
}
