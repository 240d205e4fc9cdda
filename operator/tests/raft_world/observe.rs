//! What the reconciler observes, built as Kubernetes and the node would show it: Pod
//! objects with phase, IP, container state and deletion timestamp, the claims, and each
//! reachable node's Admin.Status (the real `admin_service::status`, read back the way
//! `GrpcAdmin` converts it). The reconciler's own `convert::observed` turns it into the
//! planner's `Observed`.

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateWaiting, ContainerStatus, Pod,
    PodCondition, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kuberaft_operator::build::{CONTAINER_NAME, pod_name};
use kuberaft_operator::planner::Observed;
use kuberaft_operator::reconcile::admin::{
    AdminError, AdminResult, Lifecycle, MemberKind, MemberStatus, NodeStatus, Role as AdminRole,
};
use kuberaft_operator::reconcile::convert;
use kuberaft_operator::reconcile::observe::World as KubeWorld;
use kuberaft_raft::{Role, Status};

use super::kube::SimPod;
use super::{CLUSTER, World};

/// How many committed entries may wait for apply on a ready member (`READY_MAX_LAG`).
const READY_MAX_LAG: u64 = 100;

impl World {
    /// A fake wall clock: one second per tick.
    pub fn time(&self) -> Time {
        let secs = 1_700_000_000 + i64::try_from(self.now).expect("small");
        Time(k8s_openapi::jiff::Timestamp::from_second(secs).expect("valid"))
    }

    /// Everything one reconcile sees.
    pub fn kube_world(&self) -> KubeWorld {
        let mut w = KubeWorld {
            statefulset: self.sts.clone(),
            pvcs: self
                .pvcs
                .iter()
                .filter(|(_, c)| !c.deleting)
                .map(|(&k, _)| k)
                .collect(),
            ..KubeWorld::default()
        };
        for (&k, pod) in &self.pods {
            let obj = self.pod_object(k, pod);
            if pod.started {
                let answer = if self.operator_cut_off(k) {
                    Err(AdminError::Timeout {
                        pod: pod_name(CLUSTER, k),
                    })
                } else {
                    self.admin_status(k)
                };
                w.reports.insert(pod_name(CLUSTER, k), answer);
            }
            w.pods.insert(k, obj);
        }
        w
    }

    pub fn observed(&self, world: &KubeWorld) -> Observed {
        convert::observed(CLUSTER, world, &self.status)
    }

    fn pod_object(&self, k: u32, pod: &SimPod) -> Pod {
        let runs = pod.process.is_some();
        let ready = matches!(self.admin_status(k), Ok(s) if s.ready);
        let state = if runs {
            ContainerState {
                running: Some(ContainerStateRunning::default()),
                ..ContainerState::default()
            }
        } else {
            ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some("CrashLoopBackOff".to_owned()),
                    message: None,
                }),
                ..ContainerState::default()
            }
        };
        let status = PodStatus {
            phase: Some(if pod.started { "Running" } else { "Pending" }.to_owned()),
            pod_ip: pod
                .started
                .then(|| format!("10.1.{k}.{}", pod.uid % 250 + 1)),
            container_statuses: pod.started.then(|| {
                vec![ContainerStatus {
                    name: CONTAINER_NAME.to_owned(),
                    ready,
                    state: Some(state),
                    ..ContainerStatus::default()
                }]
            }),
            conditions: Some(vec![PodCondition {
                type_: "Ready".to_owned(),
                status: if ready { "True" } else { "False" }.to_owned(),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        };
        Pod {
            metadata: ObjectMeta {
                name: Some(pod_name(CLUSTER, k)),
                namespace: Some(self.id.namespace.clone()),
                uid: Some(format!("pod-{}", pod.uid)),
                deletion_timestamp: pod.terminating.map(|_| self.time()),
                ..pod.meta.clone()
            },
            spec: Some(pod.spec.clone()),
            status: Some(status),
        }
    }

    /// Admin.Status of the pod's node: the real service's answer, as `GrpcAdmin` reads it.
    pub fn admin_status(&self, k: u32) -> AdminResult<NodeStatus> {
        let unavailable = || AdminError::Unavailable {
            pod: pod_name(CLUSTER, k),
            message: "connection refused".to_owned(),
        };
        let p = self.process(k).ok_or_else(unavailable)?;
        let vol = &self.pvcs.get(&k).ok_or_else(unavailable)?.volume;
        let mut s = NodeStatus {
            node_id: p.node_id,
            name: p.name.clone(),
            cluster_id: vol.cluster_id.clone(),
            lifecycle: vol.lifecycle,
            role: AdminRole::Follower,
            term: 0,
            leader_id: None,
            commit_index: 0,
            last_index: 0,
            snapshot_index: 0,
            members: Vec::new(),
            joint: false,
            config_index: 0,
            outgoing_voters: Vec::new(),
            removed_node_ids: Vec::new(),
            ready: false,
        };
        if let Some(st) = p.core.as_ref().map(|c| c.status()) {
            s.ready = vol.lifecycle == Lifecycle::Member
                && st.membership.contains(p.node_id)
                && st.leader != 0
                && st.commit.saturating_sub(st.applied) <= READY_MAX_LAG;
            s.role = match st.role {
                Role::Follower => AdminRole::Follower,
                Role::PreCandidate => AdminRole::PreCandidate,
                Role::Candidate => AdminRole::Candidate,
                Role::Leader => AdminRole::Leader,
            };
            s.term = st.term;
            s.leader_id = (st.leader != 0).then_some(st.leader);
            s.commit_index = st.commit;
            s.last_index = st.last_index;
            s.snapshot_index = st.snapshot_index;
            s.joint = st.membership.is_joint();
            s.config_index = st.config_index;
            s.outgoing_voters = st.membership.outgoing.iter().copied().collect();
            s.members = members(&st, &p.sm.book);
            s.removed_node_ids = p.sm.removed.iter().copied().collect();
        }
        Ok(s)
    }
}

/// Every member of the configuration with its name from the address book and, on the
/// leader, its progress (`AdminService::members`).
fn members(st: &Status, book: &std::collections::BTreeMap<u64, String>) -> Vec<MemberStatus> {
    let m = &st.membership;
    let leader = st.role == Role::Leader;
    m.all()
        .into_iter()
        .map(|id| {
            let name = book.get(&id).cloned().unwrap_or_default();
            let addr = |port: u16| {
                if name.is_empty() {
                    String::new()
                } else {
                    format!("{name}.{CLUSTER}-peer.sim.svc:{port}")
                }
            };
            let kind = if m.voters.contains(&id) {
                MemberKind::Voter
            } else if m.outgoing.contains(&id) {
                MemberKind::OutgoingVoter
            } else {
                MemberKind::Learner
            };
            let (matched, lag) = if id == st.id {
                (st.last_index, 0)
            } else if let Some(p) = st.progress.get(&id) {
                (p.matched, st.last_index.saturating_sub(p.matched))
            } else {
                (0, 0)
            };
            MemberStatus {
                node_id: id,
                peer_addr: addr(7000),
                client_addr: addr(7001),
                name,
                kind,
                match_index: leader.then_some(matched),
                lag: leader.then_some(lag),
            }
        })
        .collect()
}
