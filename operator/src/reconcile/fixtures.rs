//! Objects and Admin answers for the unit tests of the conversions and status: cluster
//! `demo` in namespace `ns`, pods `demo-<k>` at `10.0.0.<k>`, node ids `0xa0 + k`.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStatus, Pod, PodCondition, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use super::admin::{Lifecycle, MemberKind, MemberStatus, NodeStatus, Role};
use super::observe::World;
use crate::build::{CONTAINER_NAME, ClusterIdentity, pod_name, statefulset};
use crate::crd::RaftClusterSpec;

pub const IMAGE: &str = "kuberaft/raft-node:1.0";

pub fn id() -> ClusterIdentity {
    ClusterIdentity {
        name: "demo".into(),
        namespace: "ns".into(),
        uid: "uid-1".into(),
    }
}

pub fn node_id(k: u32) -> u64 {
    0xa0 + u64::from(k)
}

pub fn t(secs: i64) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap())
}

pub fn spec(replicas: i32) -> RaftClusterSpec {
    RaftClusterSpec {
        replicas,
        ..RaftClusterSpec::with_image(IMAGE)
    }
}

pub fn sts(replicas: i32) -> StatefulSet {
    statefulset(&id(), &spec(replicas), replicas)
}

/// A running, ready pod created from the StatefulSet's template.
pub fn pod(k: u32) -> Pod {
    let template = sts(1).spec.template;
    let meta = template.metadata.unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            name: Some(pod_name("demo", k)),
            namespace: Some("ns".into()),
            uid: Some(format!("pod-uid-{k}")),
            labels: meta.labels,
            annotations: meta.annotations,
            ..ObjectMeta::default()
        },
        spec: template.spec,
        status: Some(PodStatus {
            phase: Some("Running".into()),
            pod_ip: Some(format!("10.0.0.{k}")),
            container_statuses: Some(vec![ContainerStatus {
                name: CONTAINER_NAME.into(),
                ready: true,
                state: Some(ContainerState {
                    running: Some(ContainerStateRunning::default()),
                    ..ContainerState::default()
                }),
                ..ContainerStatus::default()
            }]),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        }),
    }
}

fn member(k: u32, kind: MemberKind, lag: Option<u64>) -> MemberStatus {
    MemberStatus {
        node_id: node_id(k),
        name: pod_name("demo", k),
        peer_addr: format!("demo-{k}.demo-peer.ns.svc:7000"),
        client_addr: format!("demo-{k}.demo-peer.ns.svc:7001"),
        kind,
        match_index: lag.map(|l| 100 - l),
        lag,
    }
}

/// What pod `k` answers in a cluster whose voters are on `voters` and learners on
/// `learners`, led by the voter on `leader`. Progress appears on the leader only.
pub fn member_status(k: u32, voters: &[u32], learners: &[u32], leader: u32) -> NodeStatus {
    let is_leader = k == leader;
    let lag = |o: u32| is_leader.then_some(if learners.contains(&o) { 5 } else { 0 });
    let members = voters
        .iter()
        .map(|&o| member(o, MemberKind::Voter, lag(o)))
        .chain(
            learners
                .iter()
                .map(|&o| member(o, MemberKind::Learner, lag(o))),
        )
        .collect();
    NodeStatus {
        node_id: node_id(k),
        name: pod_name("demo", k),
        cluster_id: Some("uid-1".into()),
        lifecycle: Lifecycle::Member,
        role: if is_leader {
            Role::Leader
        } else {
            Role::Follower
        },
        term: 3,
        leader_id: Some(node_id(leader)),
        commit_index: 100,
        last_index: 100,
        snapshot_index: 0,
        members,
        joint: false,
        config_index: 0,
        outgoing_voters: vec![],
        removed_node_ids: vec![],
        ready: !learners.contains(&k),
    }
}

/// What an empty node on pod `k` answers.
pub fn uninitialized(k: u32, id: u64) -> NodeStatus {
    NodeStatus {
        node_id: id,
        name: pod_name("demo", k),
        cluster_id: None,
        lifecycle: Lifecycle::Uninitialized,
        role: Role::Follower,
        term: 0,
        leader_id: None,
        commit_index: 0,
        last_index: 0,
        snapshot_index: 0,
        members: vec![],
        joint: false,
        config_index: 0,
        outgoing_voters: vec![],
        removed_node_ids: vec![],
        ready: false,
    }
}

/// A healthy cluster: a StatefulSet of `n`, pods `0..n`, all voters, led by pod 0.
pub fn healthy_world(n: u32) -> World {
    let voters: Vec<u32> = (0..n).collect();
    let mut w = World {
        statefulset: Some(sts(i32::try_from(n).unwrap())),
        ..World::default()
    };
    for k in 0..n {
        w.pods.insert(k, pod(k));
        w.pvcs.insert(k);
        w.reports
            .insert(pod_name("demo", k), Ok(member_status(k, &voters, &[], 0)));
    }
    w
}
