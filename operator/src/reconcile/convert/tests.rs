use std::collections::BTreeSet;

use super::super::admin::{AdminError, Lifecycle, MemberKind, MemberStatus, Role};
use super::super::fixtures::*;
use super::*;
use crate::crd::{BlockedOn, LastSnapshot, Member, MemberRole};
use crate::planner::{NodeState, Operation};

#[test]
fn desired_carries_every_field_the_planner_decides_on() {
    let mut s = spec(5);
    s.min_failure_tolerance = 1;
    s.paused = true;
    s.snapshot.request_id = Some("r1".into());
    s.snapshot.entry_threshold = 777;
    s.storage.reclaim_policy = crate::crd::ReclaimPolicy::Retain;
    let d = desired(&s);
    assert_eq!(d.replicas, 5);
    assert_eq!(d.image, IMAGE);
    assert_eq!(d.min_failure_tolerance, 1);
    assert!(d.paused);
    assert_eq!(d.snapshot_request_id.as_deref(), Some("r1"));
    assert_eq!(d.snapshot_entry_threshold, 777);
    assert_eq!(d.reclaim_policy, ReclaimPolicy::Retain);
    assert_eq!(d.max_catch_up_lag, DEFAULT_MAX_CATCH_UP_LAG);
}

#[test]
fn negative_numbers_become_zero_for_the_planner_to_refuse() {
    let mut s = spec(-1);
    s.min_failure_tolerance = -3;
    let d = desired(&s);
    assert_eq!((d.replicas, d.min_failure_tolerance), (0, 0));
}

#[test]
fn templates_of_statefulset_and_pod_agree_with_the_spec() {
    let want = desired(&spec(3)).template();
    assert_eq!(statefulset_template(&sts(3)), want);
    let of = |p: &Pod| template_of(Some(&p.metadata), p.spec.as_ref().unwrap());
    assert_eq!(of(&pod(0)), want);
    let mut other = pod(0);
    other.spec.as_mut().unwrap().containers[0].image = Some("x:2".into());
    assert_ne!(of(&other), want);
    // A pod from before the hash annotation counts as outdated.
    let mut unhashed = pod(0);
    unhashed.metadata.annotations = None;
    assert_ne!(of(&unhashed), want);
}

#[test]
fn every_pod_input_of_the_spec_changes_the_template_hash() {
    use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    let base = spec(3);
    let hash = |s: &RaftClusterSpec| desired(s).template();
    type Edit = Box<dyn Fn(&mut RaftClusterSpec)>;
    let edits: Vec<(&str, Edit)> = vec![
        ("image", Box::new(|s| s.image = "raft-node:2".into())),
        ("tick", Box::new(|s| s.raft.tick_millis += 1)),
        ("election", Box::new(|s| s.raft.election_ticks += 1)),
        ("heartbeat", Box::new(|s| s.raft.heartbeat_ticks += 1)),
        ("threshold", Box::new(|s| s.snapshot.entry_threshold += 1)),
        (
            "resources",
            Box::new(|s| {
                s.resources = Some(ResourceRequirements {
                    requests: Some([("cpu".to_owned(), Quantity("500m".into()))].into()),
                    ..ResourceRequirements::default()
                })
            }),
        ),
        (
            "nodeSelector",
            Box::new(|s| s.node_selector = Some([("disk".into(), "ssd".into())].into())),
        ),
        (
            "tolerations",
            Box::new(|s| {
                s.tolerations = Some(vec![Toleration {
                    key: Some("dedicated".into()),
                    ..Toleration::default()
                }])
            }),
        ),
        (
            "podAnnotations",
            Box::new(|s| s.pod_annotations = Some([("a".into(), "b".into())].into())),
        ),
        (
            "priorityClassName",
            Box::new(|s| s.priority_class_name = Some("high".into())),
        ),
    ];
    for (what, edit) in edits {
        let mut s = base.clone();
        edit(&mut s);
        assert_ne!(
            hash(&s).hash,
            hash(&base).hash,
            "{what} must change the hash"
        );
    }
    // Membership and policy fields do not restart pods.
    let mut s = base.clone();
    s.replicas = 5;
    s.paused = true;
    s.min_failure_tolerance = 1;
    s.snapshot.request_id = Some("now".into());
    assert_eq!(hash(&s), hash(&base));
    // Stable: a pinned value, so a change of hashing (which would roll every pod of every
    // cluster on an operator upgrade) is a deliberate, visible edit of this test.
    assert_eq!(hash(&base).hash, "e3de1f851cbc7a57");
}

#[test]
fn a_storage_size_edit_is_observed_against_the_claim_template() {
    let w = healthy_world(3);
    let o = observed("demo", &w, &RaftClusterStatus::default());
    let sts = o.statefulset.unwrap();
    assert_eq!(
        sts.storage_size.as_deref(),
        Some(spec(3).storage.size.0.as_str())
    );
    assert_eq!(desired(&spec(3)).storage_size, spec(3).storage.size.0);
}

#[test]
fn healthy_cluster_observed_from_the_leader() {
    let w = healthy_world(3);
    let o = observed("demo", &w, &RaftClusterStatus::default());
    assert_eq!(o.statefulset.as_ref().unwrap().replicas, 3);
    assert_eq!(o.pvcs, BTreeSet::from([0, 1, 2]));
    assert_eq!(o.pods.len(), 3);
    for (k, p) in o.pods.iter().enumerate() {
        let k = u32::try_from(k).unwrap();
        assert_eq!(p.ordinal, k);
        assert!(p.running && p.ready && !p.terminating, "{p:?}");
        assert_eq!(
            p.node,
            NodeReport::Reachable {
                node_id: node_id(k),
                state: NodeState::Member
            }
        );
    }
    let raft = o.raft.unwrap();
    assert_eq!(raft.leader, Some(node_id(0)));
    assert_eq!(
        (raft.term, raft.commit_index, raft.config_index),
        (3, 100, 0)
    );
    assert_eq!(raft.config.voters, (0..3).map(node_id).collect());
    assert!(raft.config.learners.is_empty() && raft.config.outgoing_voters.is_empty());
    let m = raft.members[&node_id(2)];
    assert_eq!(
        (m.ordinal, m.lag, m.match_index),
        (Some(2), Some(0), Some(100))
    );
}

#[test]
fn without_a_leader_the_view_has_no_leader_and_no_progress() {
    let mut w = healthy_world(3);
    w.reports.insert(
        "demo-0".into(),
        Err(AdminError::Timeout {
            pod: "demo-0".into(),
        }),
    );
    let o = observed("demo", &w, &RaftClusterStatus::default());
    assert_eq!(o.pods[0].node, NodeReport::Unreachable);
    let raft = o.raft.unwrap();
    assert_eq!(raft.leader, None);
    assert_eq!(raft.config.voters.len(), 3);
    assert_eq!(raft.members[&node_id(1)].lag, None);
}

#[test]
fn the_leader_of_the_highest_term_wins() {
    let mut w = healthy_world(3);
    // A stale leader on pod 2 (partitioned, older term).
    let mut stale = member_status(2, &[0, 1, 2], &[], 2);
    stale.term = 1;
    w.reports.insert("demo-2".into(), Ok(stale));
    let raft = observed("demo", &w, &RaftClusterStatus::default())
        .raft
        .unwrap();
    assert_eq!(raft.leader, Some(node_id(0)));
    assert_eq!(raft.term, 3);
}

#[test]
fn learners_joining_nodes_and_joint_configurations() {
    let mut w = healthy_world(4);
    for k in 0..3 {
        w.reports.insert(
            format!("demo-{k}"),
            Ok(member_status(k, &[0, 1, 2], &[3], 0)),
        );
    }
    let mut joining = uninitialized(3, node_id(3));
    joining.lifecycle = Lifecycle::Joining;
    w.reports.insert("demo-3".into(), Ok(joining));
    let o = observed("demo", &w, &RaftClusterStatus::default());
    assert_eq!(
        o.pods[3].node,
        NodeReport::Reachable {
            node_id: node_id(3),
            state: NodeState::Uninitialized
        }
    );
    let raft = o.raft.unwrap();
    assert_eq!(raft.config.learners, BTreeSet::from([node_id(3)]));
    assert_eq!(raft.members[&node_id(3)].lag, Some(5));

    // Joint: the old voter 2 only in the outgoing half.
    let mut leader = member_status(0, &[0, 1, 3], &[], 0);
    leader.joint = true;
    leader.outgoing_voters = vec![node_id(0), node_id(1), node_id(2)];
    leader.members.push(MemberStatus {
        kind: MemberKind::OutgoingVoter,
        ..leader.members[0].clone()
    });
    leader.members.last_mut().unwrap().node_id = node_id(2);
    w.reports.insert("demo-0".into(), Ok(leader));
    let raft = observed("demo", &w, &RaftClusterStatus::default())
        .raft
        .unwrap();
    assert_eq!(
        raft.config.voters,
        BTreeSet::from([node_id(0), node_id(1), node_id(3)])
    );
    assert_eq!(raft.config.outgoing_voters, (0..3).map(node_id).collect());
}

#[test]
fn an_unnamed_member_keeps_the_ordinal_status_remembers() {
    let mut w = healthy_world(3);
    let mut leader = member_status(0, &[0, 1, 2], &[], 0);
    for m in &mut leader.members {
        if m.node_id == node_id(2) {
            m.name = String::new();
            m.peer_addr = "10.9.9.9:7000".into();
        }
    }
    w.reports.insert("demo-0".into(), Ok(leader));
    let status = RaftClusterStatus {
        members: vec![Member {
            name: "demo-2".into(),
            node_id: Some(node_id(2).to_string()),
            role: MemberRole::Follower,
            healthy: true,
            lag: None,
        }],
        ..RaftClusterStatus::default()
    };
    let raft = observed("demo", &w, &status).raft.unwrap();
    assert_eq!(raft.members[&node_id(2)].ordinal, Some(2));
    let raft = observed("demo", &w, &RaftClusterStatus::default())
        .raft
        .unwrap();
    assert_eq!(raft.members[&node_id(2)].ordinal, None);
}

#[test]
fn pods_that_do_not_run_or_are_going() {
    let mut w = healthy_world(2);
    let p = w.pods.get_mut(&1).unwrap();
    p.status
        .as_mut()
        .unwrap()
        .container_statuses
        .as_mut()
        .unwrap()[0]
        .state = None;
    p.metadata.deletion_timestamp = Some(t(5));
    let o = observed("demo", &w, &RaftClusterStatus::default());
    assert!(!o.pods[1].running);
    assert!(o.pods[1].terminating);
    assert!(o.pods[0].running);
}

#[test]
fn planner_memory_comes_from_status() {
    let status = RaftClusterStatus {
        operation: Some(operation_to_status(
            "demo",
            &Operation::ScaleUp { ordinal: 3 },
            None,
            "RecordOperation",
            t(1),
        )),
        last_snapshot: Some(LastSnapshot {
            request_id: Some("r7".into()),
            index: 40,
            time: t(2),
        }),
        cluster_id: Some("uid-1".into()),
        blocked_on: Some(BlockedOn {
            code: "WouldLoseQuorum".into(),
            message: "m".into(),
        }),
        ..RaftClusterStatus::default()
    };
    let o = observed("demo", &World::default(), &status);
    assert_eq!(o.operation, Some(Operation::ScaleUp { ordinal: 3 }));
    assert_eq!(o.last_snapshot_request_id.as_deref(), Some("r7"));
    assert_eq!(o.cluster_id.as_deref(), Some("uid-1"));
    assert_eq!(o.blocked, Some(BlockedCode::WouldLoseQuorum));
    assert_eq!(o.statefulset, None);
    assert_eq!(o.raft, None);
}

#[test]
fn removed_nodes_and_roles() {
    let mut removed = member_status(1, &[0, 2], &[], 0);
    removed.lifecycle = Lifecycle::Removed;
    removed.role = Role::Follower;
    assert_eq!(
        node_report(&Ok(removed)),
        NodeReport::Reachable {
            node_id: node_id(1),
            state: NodeState::Removed
        }
    );
    assert_eq!(
        node_report(&Err(AdminError::Unavailable {
            pod: "demo-1".into(),
            message: "refused".into()
        })),
        NodeReport::Unreachable
    );
}

#[test]
fn a_joint_configuration_and_an_uncommitted_change_reach_the_planner() {
    let mut w = healthy_world(3);
    // The leader (pod 0) is in a joint configuration {0,1,3} / {0,1,2} whose entry at 101
    // is not committed yet; pod 2 is a voter of the outgoing half only.
    let Ok(leader) = w.reports.get_mut("demo-0").unwrap() else {
        panic!("the fixture's leader answers")
    };
    leader.joint = true;
    leader.config_index = 101;
    leader.outgoing_voters = vec![node_id(0), node_id(1), node_id(2)];
    for m in &mut leader.members {
        if m.node_id == node_id(2) {
            m.kind = MemberKind::OutgoingVoter;
        }
    }
    let o = observed("demo", &w, &RaftClusterStatus::default());
    let raft = o.raft.unwrap();
    assert_eq!((raft.commit_index, raft.config_index), (100, 101));
    assert_eq!(raft.config.voters, BTreeSet::from([node_id(0), node_id(1)]));
    assert_eq!(
        raft.config.outgoing_voters,
        BTreeSet::from([node_id(0), node_id(1), node_id(2)])
    );
}

#[test]
fn a_node_removed_while_joining_is_observed_as_removed() {
    // demo-3 was added as a learner and removed before it heard anything: it still says
    // Joining, but the leader lists its id as removed.
    let mut w = healthy_world(3);
    w.pods.insert(3, pod(3));
    w.pvcs.insert(3);
    let mut joining = uninitialized(3, 0xdead);
    joining.lifecycle = Lifecycle::Joining;
    w.reports
        .insert(crate::build::pod_name("demo", 3), Ok(joining));
    let o = observed("demo", &w, &RaftClusterStatus::default());
    assert_eq!(
        o.pods[3].node,
        NodeReport::Reachable {
            node_id: 0xdead,
            state: NodeState::Uninitialized
        }
    );

    let leader = w
        .reports
        .get_mut(&crate::build::pod_name("demo", 0))
        .unwrap();
    leader.as_mut().unwrap().removed_node_ids = vec![0xdead];
    let o = observed("demo", &w, &RaftClusterStatus::default());
    assert_eq!(
        o.pods[3].node,
        NodeReport::Reachable {
            node_id: 0xdead,
            state: NodeState::Removed
        }
    );
    // Members are untouched.
    assert!(matches!(
        o.pods[0].node,
        NodeReport::Reachable {
            state: NodeState::Member,
            ..
        }
    ));
}
