//! Observe: the processes and every member's Admin.Status, turned into the planner's
//! [`Observed`] with the reconciler's own conversions ([`raft_view`], [`node_report`]).

use std::collections::{BTreeMap, BTreeSet};

use futures::future::join_all;

use super::actuator::{CLUSTER, PodInfo};
use super::files::StatusFile;
use crate::crd::RaftClusterStatus;
use crate::planner::{BlockedCode, NodeReport, Observed, ObservedPod, ObservedStatefulSet};
use crate::reconcile::admin::{AdminResult, Lifecycle, MemberAdmin, NodeStatus, PodEndpoint, Role};
use crate::reconcile::convert::{node_report, raft_view};
use crate::reconcile::observe::World;

/// Admin.Status answers by pod name.
pub type Reports = BTreeMap<String, AdminResult<NodeStatus>>;

/// Asks every running pod with a known address for its status, concurrently.
pub async fn reports<A: MemberAdmin>(admin: &A, pods: &[PodInfo]) -> Reports {
    let asks = pods.iter().filter(|p| p.running).filter_map(|p| {
        let at = PodEndpoint {
            pod: p.name.clone(),
            address: p.client.clone()?,
        };
        Some(async move { (at.pod.clone(), admin.status(&at).await) })
    });
    join_all(asks).await.into_iter().collect()
}

/// The planner's input from one observation and the remembered status.
pub fn observed(
    statefulset: Option<ObservedStatefulSet>,
    pods: &[PodInfo],
    volumes: BTreeSet<u32>,
    reports: &Reports,
    status: &StatusFile,
) -> Observed {
    let world = World {
        reports: reports.clone(),
        ..World::default()
    };
    let pods = pods
        .iter()
        .map(|p| {
            let node = reports
                .get(&p.name)
                .filter(|_| p.running)
                .map_or(NodeReport::Unreachable, node_report);
            ObservedPod {
                ordinal: p.ordinal,
                name: p.name.clone(),
                running: p.running,
                ready: matches!(reports.get(&p.name), Some(Ok(s)) if s.ready),
                terminating: false,
                template: p.template.clone(),
                node,
            }
        })
        .collect();
    Observed {
        statefulset,
        pods,
        pvcs: volumes,
        raft: raft_view(CLUSTER, &world, &RaftClusterStatus::default()),
        operation: status.operation.as_ref().map(Into::into),
        last_snapshot_request_id: status.last_snapshot_request_id.clone(),
        cluster_id: status.cluster_id.clone(),
        blocked: status.blocked.as_deref().and_then(BlockedCode::parse),
    }
}

/// The members' client addresses, as the leader (else any member) lists them, ordered by
/// name; `None` when no member answered.
pub fn endpoints(reports: &Reports) -> Option<Vec<String>> {
    let source = reports
        .values()
        .filter_map(|r| r.as_ref().ok())
        .filter(|s| s.lifecycle == Lifecycle::Member && !s.members.is_empty())
        .max_by_key(|s| (s.role == Role::Leader, s.term, s.commit_index))?;
    let mut members: Vec<_> = source
        .members
        .iter()
        .filter(|m| !m.client_addr.is_empty())
        .map(|m| (m.name.clone(), m.client_addr.clone()))
        .collect();
    members.sort();
    Some(members.into_iter().map(|(_, a)| a).collect())
}

/// The cluster id members report, for when status does not know it yet.
pub fn reported_cluster_id(reports: &Reports) -> Option<String> {
    reports
        .values()
        .filter_map(|r| r.as_ref().ok())
        .filter(|s| s.lifecycle == Lifecycle::Member)
        .find_map(|s| s.cluster_id.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planner::{NodeState, Operation, PodTemplate};
    use crate::reconcile::admin::{AdminError, MemberKind, MemberStatus};

    fn pod(ordinal: u32, running: bool) -> PodInfo {
        PodInfo {
            ordinal,
            name: format!("member-{ordinal}"),
            running,
            template: PodTemplate {
                image: "raft-node".into(),
                snapshot_entry_threshold: 100,
                hash: String::new(),
            },
            client: Some(format!("127.0.0.1:{}", 7000 + ordinal)),
            pid: Some(1000 + ordinal),
        }
    }

    fn member(id: u64, ordinal: u32, kind: MemberKind, lag: Option<u64>) -> MemberStatus {
        MemberStatus {
            node_id: id,
            name: format!("member-{ordinal}"),
            peer_addr: format!("127.0.0.1:{}", 8000 + ordinal),
            client_addr: format!("127.0.0.1:{}", 7000 + ordinal),
            kind,
            match_index: lag.map(|_| 10),
            lag,
        }
    }

    fn status(id: u64, role: Role, members: Vec<MemberStatus>) -> NodeStatus {
        NodeStatus {
            node_id: id,
            name: String::new(),
            cluster_id: Some("c".into()),
            lifecycle: Lifecycle::Member,
            role,
            term: 2,
            leader_id: Some(11),
            commit_index: 10,
            last_index: 10,
            snapshot_index: 0,
            members,
            joint: false,
            config_index: 0,
            outgoing_voters: Vec::new(),
            removed_node_ids: Vec::new(),
            ready: true,
        }
    }

    #[test]
    fn processes_and_reports_become_observed() {
        let members = vec![
            member(11, 0, MemberKind::Voter, Some(0)),
            member(12, 1, MemberKind::Voter, Some(0)),
            member(13, 2, MemberKind::Learner, Some(50)),
        ];
        let mut reports = Reports::new();
        reports.insert(
            "member-0".into(),
            Ok(status(11, Role::Leader, members.clone())),
        );
        reports.insert("member-1".into(), Ok(status(12, Role::Follower, members)));
        reports.insert(
            "member-2".into(),
            Err(AdminError::Timeout {
                pod: "member-2".into(),
            }),
        );
        let mut uninit = status(14, Role::Follower, vec![]);
        uninit.lifecycle = Lifecycle::Uninitialized;
        uninit.ready = false;
        reports.insert("member-3".into(), Ok(uninit));
        // member-4's process exited: a stale answer would not count.
        reports.insert("member-4".into(), Ok(status(15, Role::Follower, vec![])));

        let pods = [
            pod(0, true),
            pod(1, true),
            pod(2, true),
            pod(3, true),
            pod(4, false),
        ];
        let sts = ObservedStatefulSet {
            replicas: 5,
            template: pods[0].template.clone(),
            storage_size: None,
        };
        let remembered = StatusFile {
            cluster_id: Some("c".into()),
            operation: Some((&Operation::ScaleUp { ordinal: 2 }).into()),
            last_snapshot_request_id: Some("s1".into()),
            blocked: Some("QuorumLost".into()),
            ..StatusFile::default()
        };
        let o = observed(
            Some(sts.clone()),
            &pods,
            [0, 1, 2, 3, 4].into(),
            &reports,
            &remembered,
        );

        assert_eq!(o.statefulset, Some(sts));
        assert_eq!(o.pvcs, [0, 1, 2, 3, 4].into());
        assert_eq!(o.operation, Some(Operation::ScaleUp { ordinal: 2 }));
        assert_eq!(o.last_snapshot_request_id.as_deref(), Some("s1"));
        assert_eq!(o.cluster_id.as_deref(), Some("c"));
        assert_eq!(o.blocked, Some(BlockedCode::QuorumLost));

        let node = |i: usize| o.pods[i].node;
        assert_eq!(
            node(0),
            NodeReport::Reachable {
                node_id: 11,
                state: NodeState::Member
            }
        );
        assert_eq!(node(2), NodeReport::Unreachable);
        assert_eq!(
            node(3),
            NodeReport::Reachable {
                node_id: 14,
                state: NodeState::Uninitialized
            }
        );
        assert_eq!(node(4), NodeReport::Unreachable);
        assert!(!o.pods[4].running && o.pods[0].running && o.pods[0].ready);
        assert!(!o.pods[3].ready);

        let raft = o.raft.expect("a member answered");
        assert_eq!(raft.leader, Some(11));
        assert_eq!(raft.config.voters, [11, 12].into());
        assert_eq!(raft.config.learners, [13].into());
        assert_eq!(raft.members[&13].ordinal, Some(2));
        assert_eq!(raft.members[&13].lag, Some(50));

        assert_eq!(
            endpoints(&reports).unwrap(),
            vec!["127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002"]
        );
        assert_eq!(reported_cluster_id(&reports).as_deref(), Some("c"));
    }

    #[test]
    fn nothing_answered_means_no_raft_view_and_no_endpoints() {
        let o = observed(
            None,
            &[],
            BTreeSet::new(),
            &Reports::new(),
            &StatusFile::default(),
        );
        assert_eq!(o, Observed::default());
        assert_eq!(endpoints(&Reports::new()), None);
    }
}
