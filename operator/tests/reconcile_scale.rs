//! Reconcile tests: scale up through a learner, a scale-down refused by quorum, and a
//! scale-down carried out to the volume.

mod reconcile_support;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kuberaft_operator::crd::{MemberRole, OperationKind, Phase};
use reconcile_support::{Bench, NAME, NS};

fn sts_replicas(b: &Bench) -> i32 {
    b.api
        .get::<StatefulSet>(NS, NAME)
        .unwrap()
        .spec
        .replicas
        .unwrap()
}

fn condition(b: &Bench, type_: &str) -> (String, String, String) {
    let st = b.status();
    let c = st.conditions.iter().find(|c| c.type_ == type_).unwrap();
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

#[tokio::test]
async fn scale_up_adds_a_learner_then_promotes_it() {
    let b = Bench::healthy(3).await;
    let events_before = b.events().len();
    b.edit(|s| s.replicas = 4);

    // Record the operation; nothing else.
    b.reconcile().await.unwrap();
    assert_eq!(b.take_writes(), ["patch raftclusters/status demo"]);
    let op = b.status().operation.unwrap();
    assert_eq!(
        (op.kind, op.target.as_deref(), op.ordinal),
        (OperationKind::ScaleUp, Some("demo-3"), Some(3))
    );
    assert_eq!(b.status().phase, Some(Phase::Scaling));

    // StatefulSet +1.
    b.reconcile().await.unwrap();
    assert_eq!(
        b.take_writes(),
        ["patch statefulsets demo", "patch raftclusters/status demo"]
    );
    assert_eq!(sts_replicas(&b), 4);
    assert!(b.raft.take_calls().is_empty());

    // The pod answers: PrepareJoin on it, AddLearner on the leader, in one step.
    b.run_statefulset();
    b.raft.set_lag("demo-3", 500);
    b.reconcile().await.unwrap();
    assert_eq!(
        b.raft.take_calls(),
        ["PrepareJoin demo-3", "AddLearner demo-3 via demo-0"]
    );
    assert_eq!(b.raft.learners(), ["demo-3"]);
    let new_events = &b.events()[events_before..];
    assert_eq!(new_events.len(), 1, "{new_events:?}");
    assert_eq!(
        (new_events[0].0.as_str(), new_events[0].1.as_str()),
        ("Normal", "LearnerAdded")
    );
    assert_eq!(b.status().operation.unwrap().step, "AddLearner");

    // Far behind: wait, and say so in status.
    b.reconcile().await.unwrap();
    assert!(b.raft.take_calls().is_empty());
    let st = b.status();
    let learner = st.members.iter().find(|m| m.name == "demo-3").unwrap();
    assert_eq!(
        (learner.role, learner.lag),
        (MemberRole::Learner, Some(500))
    );
    assert_eq!(st.operation.as_ref().unwrap().step, "AddLearner");
    let (status, reason, message) = condition(&b, "Progressing");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "ScaleUp"));
    assert!(message.contains("catch up"), "{message}");
    assert_eq!(b.events().len(), events_before + 1);

    // Caught up: promote, on a later reconcile.
    b.raft.set_lag("demo-3", 0);
    b.reconcile().await.unwrap();
    assert_eq!(b.raft.take_calls(), ["Promote demo-3 via demo-0"]);
    assert_eq!(b.raft.voters().len(), 4);
    assert_eq!(b.events().last().unwrap().1, "LearnerPromoted");

    // Done: the operation leaves status.
    b.reconcile().await.unwrap();
    let st = b.status();
    assert_eq!(st.operation, None);
    assert_eq!(st.phase, Some(Phase::Running));
    assert_eq!(st.failure_tolerance, Some(1));
    assert_eq!(st.members.len(), 4);
    assert_eq!(st.ready_replicas, 4);
    assert_eq!(condition(&b, "Progressing").1, "Idle");
    assert_eq!(b.events().len(), events_before + 2);
}

#[tokio::test]
async fn scale_down_that_would_lose_quorum_is_blocked_without_mutation() {
    let b = Bench::healthy(3).await;
    let events_before = b.events().len();
    // demo-1 hangs: removing demo-2 would leave {demo-0, demo-1} with one healthy.
    b.raft.hang("demo-1", true);
    b.edit(|s| s.replicas = 2);

    b.reconcile().await.unwrap();
    assert!(b.raft.take_calls().is_empty(), "no Admin call");
    // Only the budget tightens (one voter is down: no eviction may be allowed) and status.
    assert_eq!(
        b.take_writes(),
        [
            "patch poddisruptionbudgets demo",
            "patch raftclusters/status demo"
        ]
    );
    let pdb = b.api.get::<PodDisruptionBudget>(NS, NAME).unwrap();
    assert_eq!(pdb.spec.unwrap().max_unavailable, Some(IntOrString::Int(0)));
    assert_eq!(sts_replicas(&b), 3);
    let st = b.status();
    let blocked = st.blocked_on.as_ref().expect("blockedOn");
    assert_eq!(blocked.code, "WouldLoseQuorum");
    assert!(blocked.message.contains("majority"), "{}", blocked.message);
    assert_eq!(st.phase, Some(Phase::Blocked));
    assert_eq!(
        st.operation, None,
        "a block before the first mutation records nothing"
    );
    assert_eq!(condition(&b, "Degraded").1, "WouldLoseQuorum");
    let new_events = &b.events()[events_before..];
    assert_eq!(new_events.len(), 1, "{new_events:?}");
    assert_eq!(
        (new_events[0].0.as_str(), new_events[0].1.as_str()),
        ("Warning", "ScaleBlocked")
    );

    // Still blocked: no write, no second Event.
    b.reconcile().await.unwrap();
    assert!(b.take_writes().is_empty());
    assert!(b.raft.take_calls().is_empty());
    assert_eq!(b.events().len(), events_before + 1);
}

#[tokio::test]
async fn scale_down_removes_the_member_then_the_pod_then_the_volume() {
    let b = Bench::healthy(3).await;
    b.edit(|s| s.replicas = 2);
    for _ in 0..12 {
        b.reconcile().await.unwrap();
        b.run_statefulset();
        if b.status().operation.is_none()
            && b.api
                .get::<PersistentVolumeClaim>(NS, "data-demo-2")
                .is_none()
        {
            break;
        }
    }
    assert_eq!(b.raft.take_calls(), ["RemoveMember demo-2 via demo-0"]);
    assert_eq!(b.raft.voters(), ["demo-0", "demo-1"]);
    assert_eq!(sts_replicas(&b), 2);
    assert!(b.api.get::<Pod>(NS, "demo-2").is_none());
    assert!(
        b.api
            .get::<PersistentVolumeClaim>(NS, "data-demo-2")
            .is_none()
    );
    let writes: Vec<String> = b
        .take_writes()
        .into_iter()
        .filter(|w| !w.contains("raftclusters/status"))
        .collect();
    assert_eq!(
        writes,
        [
            // Two voters tolerate no failure: the budget tightens first.
            "patch poddisruptionbudgets demo",
            "patch statefulsets demo",
            "delete persistentvolumeclaims data-demo-2",
        ]
    );
    let reasons = b.event_reasons();
    assert_eq!(
        &reasons[reasons.len() - 2..],
        ["MemberRemoved", "VolumeDeleted"]
    );
    let st = b.status();
    assert_eq!(st.phase, Some(Phase::Running));
    assert_eq!(st.failure_tolerance, Some(0));
    assert_eq!(st.members.len(), 2);
}
