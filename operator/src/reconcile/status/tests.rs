use super::super::admin::AdminError;
use super::super::convert::{desired, observed};
use super::super::fixtures::*;
use super::*;
use crate::crd::{
    CONDITION_AVAILABLE, LastSnapshot, Operation as StatusOperation, RaftClusterSpec,
};
use crate::planner::plan;

/// Observes `world` with `previous` as the last status, plans, and computes the status.
fn status_for(
    world: &World,
    spec: &RaftClusterSpec,
    previous: &RaftClusterStatus,
    applied: &Applied,
    now: i64,
) -> (Plan, RaftClusterStatus) {
    let o = observed("demo", world, previous);
    let p = plan(&desired(spec), &o);
    let s = compute(&StatusInput {
        id: &id(),
        generation: Some(2),
        paused: spec.paused,
        previous,
        world,
        observed: &o,
        plan: &p,
        applied,
        now: t(now),
    });
    (p, s)
}

#[test]
fn healthy_cluster_status() {
    let w = healthy_world(3);
    let prev = RaftClusterStatus {
        cluster_id: Some("uid-1".into()),
        ..RaftClusterStatus::default()
    };
    let (p, s) = status_for(&w, &spec(3), &prev, &Applied::default(), 100);
    assert_eq!(p.step, Step::None);
    assert_eq!(s.phase, Some(CrdPhase::Running));
    assert_eq!((s.replicas, s.ready_replicas), (3, 3));
    assert_eq!(s.selector.as_deref(), Some(selector_string(&id()).as_str()));
    assert_eq!(s.leader.as_deref(), Some("demo-0"));
    assert_eq!((s.term, s.commit_index), (Some(3), Some(100)));
    assert_eq!(s.failure_tolerance, Some(1));
    assert_eq!(s.operation, None);
    assert_eq!(s.blocked_on, None);
    assert_eq!(s.observed_generation, Some(2));
    let roles: Vec<(String, MemberRole, bool)> = s
        .members
        .iter()
        .map(|m| (m.name.clone(), m.role, m.healthy))
        .collect();
    assert_eq!(
        roles,
        vec![
            ("demo-0".into(), MemberRole::Leader, true),
            ("demo-1".into(), MemberRole::Follower, true),
            ("demo-2".into(), MemberRole::Follower, true),
        ]
    );
    assert_eq!(s.members[1].node_id, Some(node_id(1).to_string()));
    assert_eq!(s.members[1].lag, Some(0));
    let available = s
        .conditions
        .iter()
        .find(|c| c.type_ == CONDITION_AVAILABLE)
        .unwrap();
    assert_eq!(available.status, "True");

    // The same world again: nothing changes, so nothing would be written.
    let (_, again) = status_for(&w, &spec(3), &s, &Applied::default(), 200);
    assert_eq!(again, s);
}

#[test]
fn a_dead_member_stays_listed_with_its_node_id() {
    let mut w = healthy_world(3);
    w.reports.insert(
        "demo-2".into(),
        Err(AdminError::Timeout {
            pod: "demo-2".into(),
        }),
    );
    let prev = RaftClusterStatus::default();
    let (_, s) = status_for(&w, &spec(3), &prev, &Applied::default(), 100);
    let m = &s.members[2];
    assert_eq!(m.name, "demo-2");
    assert_eq!(m.node_id, Some(node_id(2).to_string()));
    assert_eq!((m.role, m.healthy), (MemberRole::Unknown, false));
    assert_eq!(s.failure_tolerance, Some(0));
    assert_eq!(s.ready_replicas, 2);
    assert_eq!(s.phase, Some(CrdPhase::Degraded));
}

#[test]
fn a_member_without_a_pod_gets_its_own_entry() {
    let mut w = healthy_world(3);
    w.pods.remove(&2);
    w.reports.remove("demo-2");
    // Pod 1 lost its volume: it answers with a new id, the old one stays a voter.
    w.reports
        .insert("demo-1".into(), Ok(uninitialized(1, 0xbeef)));
    let (_, s) = status_for(
        &w,
        &spec(3),
        &RaftClusterStatus::default(),
        &Applied::default(),
        1,
    );
    let names: Vec<&str> = s.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["demo-0", "demo-1", "node-a1", "demo-2"]);
    assert_eq!(s.members[1].node_id, Some(0xbeef_u64.to_string()));
    assert_eq!(s.members[1].role, MemberRole::Unknown);
    assert_eq!(s.members[3].node_id, Some(node_id(2).to_string()));
}

#[test]
fn operation_started_time_and_step_survive_waiting() {
    // Scale 3 → 4: the first reconcile records the operation.
    let w = healthy_world(3);
    let prev = RaftClusterStatus {
        cluster_id: Some("uid-1".into()),
        ..RaftClusterStatus::default()
    };
    let (p, s) = status_for(&w, &spec(4), &prev, &Applied::default(), 10);
    assert!(matches!(p.step, Step::RecordOperation(_)));
    let op: &StatusOperation = s.operation.as_ref().unwrap();
    assert_eq!(op.target.as_deref(), Some("demo-3"));
    assert_eq!(
        (op.step.as_str(), op.started.clone()),
        ("RecordOperation", t(10))
    );
    assert_eq!(s.phase, Some(CrdPhase::Scaling));

    // Next: grow the StatefulSet (applied), started kept.
    let (p, s2) = status_for(&w, &spec(4), &s, &Applied::default(), 20);
    assert_eq!(p.step, Step::SetStatefulSetReplicas(4));
    let op = s2.operation.as_ref().unwrap();
    assert_eq!(
        (op.step.as_str(), op.started.clone()),
        ("SetStatefulSetReplicas", t(10))
    );

    // Then waiting for pod 3 (the StatefulSet was not grown in this world): step kept.
    let mut grown = w.clone();
    grown.statefulset = Some(sts(4));
    let (p, s3) = status_for(&grown, &spec(4), &s2, &Applied::default(), 30);
    assert!(matches!(p.step, Step::Wait { .. }), "{:?}", p.step);
    assert_eq!(
        s3.operation.as_ref().unwrap().step,
        "SetStatefulSetReplicas"
    );
}

#[test]
fn bootstrap_and_snapshot_results_are_recorded() {
    let w = healthy_world(1);
    let applied = Applied {
        cluster_id: Some("uid-1".into()),
        snapshot: Some(LastSnapshot {
            request_id: Some("r1".into()),
            index: 90,
            time: t(5),
        }),
    };
    let (_, s) = status_for(&w, &spec(1), &RaftClusterStatus::default(), &applied, 5);
    assert_eq!(s.cluster_id.as_deref(), Some("uid-1"));
    assert_eq!(s.last_snapshot.as_ref().unwrap().index, 90);
    // Later reconciles keep both.
    let (_, s2) = status_for(&w, &spec(1), &s, &Applied::default(), 6);
    assert_eq!(s2.cluster_id, s.cluster_id);
    assert_eq!(s2.last_snapshot, s.last_snapshot);
}

#[test]
fn scale_down_blocked_reports_blocked_on() {
    // Spec 2: removing the healthy voter on pod 2 leaves {0, 1} with 1 dead.
    let mut w = healthy_world(3);
    w.reports.insert(
        "demo-1".into(),
        Err(AdminError::Timeout {
            pod: "demo-1".into(),
        }),
    );
    let (p, s) = status_for(
        &w,
        &spec(2),
        &RaftClusterStatus::default(),
        &Applied::default(),
        1,
    );
    assert!(!p.step.is_mutating(), "{:?}", p.step);
    let b = s.blocked_on.unwrap();
    assert_eq!(b.code, "WouldLoseQuorum");
    assert_eq!(s.phase, Some(CrdPhase::Blocked));
}

#[test]
fn invalid_spec_status_keeps_what_was_observed() {
    let w = healthy_world(3);
    let (_, s) = status_for(
        &w,
        &spec(3),
        &RaftClusterStatus::default(),
        &Applied::default(),
        1,
    );
    let blocked = BlockedOn {
        code: BlockedOn::INVALID_SPEC.into(),
        message: "spec.image: must not be empty".into(),
    };
    let inv = invalid_spec(&s, &blocked, Some(3), t(50));
    assert_eq!(inv.phase, Some(CrdPhase::Blocked));
    assert_eq!(inv.blocked_on, Some(blocked.clone()));
    assert_eq!(inv.members, s.members);
    assert_eq!(inv.leader, s.leader);
    assert_eq!(inv.observed_generation, Some(3));
    let degraded = inv
        .conditions
        .iter()
        .find(|c| c.type_ == "Degraded")
        .unwrap();
    assert_eq!(
        (degraded.status.as_str(), degraded.reason.as_str()),
        ("True", "InvalidSpec")
    );
    assert_eq!(degraded.last_transition_time, t(50));
    assert_eq!(inv.conditions.len(), 3);
    // Blocked again later: the transition time stays.
    let again = invalid_spec(&inv, &blocked, Some(3), t(90));
    assert_eq!(again, inv);
}
