//! Reconcile tests: bad specs never touch the cluster, an operator restarted mid-operation
//! resumes from status.operation, snapshots on request, rolling upgrades.

mod reconcile_support;

use k8s_openapi::api::apps::v1::StatefulSet;
use kuberaft_operator::crd::{OperationKind, Phase};
use reconcile_support::{Bench, IMAGE, NAME, NS};

#[tokio::test]
async fn invalid_spec_blocks_without_touching_the_cluster() {
    let b = Bench::healthy(3).await;
    let events_before = b.events().len();
    b.edit(|s| {
        s.image = "kuberaft/raft-node:2.0".into();
        s.storage.size.0 = "lots".into();
    });

    b.reconcile().await.unwrap();
    // Not even observed: no reads of pods or the StatefulSet, no Admin call.
    let calls = b.api.take_calls();
    let touched: Vec<String> = calls
        .iter()
        .filter(|c| c.resource != "events")
        .map(|c| format!("{} {}", c.verb, c.resource))
        .collect();
    assert_eq!(touched, ["patch raftclusters/status"]);
    assert!(b.raft.take_calls().is_empty());
    let st = b.status();
    let blocked = st.blocked_on.as_ref().unwrap();
    assert_eq!(blocked.code, "InvalidSpec");
    assert!(
        blocked.message.contains("spec.storage.size"),
        "{}",
        blocked.message
    );
    assert_eq!(st.phase, Some(Phase::Blocked));
    assert_eq!(st.observed_generation, Some(2));
    assert_eq!(st.members.len(), 3, "what was observed before stays");
    let new_events = &b.events()[events_before..];
    assert_eq!(new_events.len(), 1);
    assert_eq!(
        (new_events[0].0.as_str(), new_events[0].1.as_str()),
        ("Warning", "InvalidSpec")
    );
    // The image change was not rolled out either.
    let sts = b.api.get::<StatefulSet>(NS, NAME).unwrap();
    let image = sts.spec.template.spec.unwrap().containers[0].image.clone();
    assert_eq!(image.as_deref(), Some(IMAGE));

    // Same bad spec again: nothing written, nothing said.
    b.reconcile().await.unwrap();
    assert!(b.take_writes().is_empty());
    assert_eq!(b.events().len(), events_before + 1);

    // Fixed: the block clears and the upgrade may start.
    b.edit(|s| s.storage.size.0 = "1Gi".into());
    b.reconcile().await.unwrap();
    let st = b.status();
    assert_eq!(st.blocked_on, None);
    assert_ne!(st.phase, Some(Phase::Blocked));
}

#[tokio::test]
async fn a_new_invalid_cluster_creates_nothing() {
    let b = Bench::new();
    b.create_cluster(3);
    b.edit(|s| s.raft.election_ticks = 1);
    b.reconcile().await.unwrap(); // finalizer
    b.reconcile().await.unwrap();
    assert!(b.api.get::<StatefulSet>(NS, NAME).is_none());
    let st = b.status();
    assert_eq!(st.blocked_on.unwrap().code, "InvalidSpec");
    assert_eq!(st.operation, None);
    assert_eq!(b.event_reasons(), ["InvalidSpec"]);
}

#[tokio::test]
async fn a_restarted_operator_resumes_the_recorded_operation() {
    let mut b = Bench::healthy(3).await;
    b.edit(|s| s.replicas = 4);
    b.reconcile().await.unwrap(); // RecordOperation(ScaleUp 3)

    // Killed after recording: the new process applies the next step, without recording again.
    b.restart_operator();
    b.api.take_calls();
    b.reconcile().await.unwrap();
    assert_eq!(
        b.take_writes(),
        ["patch statefulsets demo", "patch raftclusters/status demo"]
    );
    b.run_statefulset();

    // Killed after AddLearner but before its status write: the step is repeated as it
    // was (idempotent on the node) and the operation goes on.
    let before = b.cluster();
    b.raft.set_lag("demo-3", 1_000);
    b.reconcile().await.unwrap();
    assert_eq!(
        b.raft.take_calls(),
        ["PrepareJoin demo-3", "AddLearner demo-3 via demo-0"]
    );
    b.api.put(&before); // the status write never happened
    b.restart_operator();
    b.reconcile().await.unwrap();
    // The learner is already in the configuration: the operator waits for it to catch up
    // instead of adding it again or choosing another operation.
    assert!(b.raft.take_calls().is_empty());
    let op = b.status().operation.unwrap();
    assert_eq!(
        (op.kind, op.target.as_deref()),
        (OperationKind::ScaleUp, Some("demo-3"))
    );
    assert_eq!(b.raft.learners(), ["demo-3"]);

    b.raft.set_lag("demo-3", 0);
    b.settle(10).await;
    assert_eq!(b.raft.voters().len(), 4);
    assert_eq!(b.status().operation, None);
}

#[tokio::test]
async fn a_snapshot_request_snapshots_every_member_once() {
    let b = Bench::healthy(3).await;
    b.edit(|s| s.snapshot.request_id = Some("nightly-1".into()));
    b.reconcile().await.unwrap();
    assert_eq!(
        b.raft.take_calls(),
        ["Snapshot demo-0", "Snapshot demo-1", "Snapshot demo-2"]
    );
    let last = b.status().last_snapshot.unwrap();
    assert_eq!(last.request_id.as_deref(), Some("nightly-1"));
    assert!(last.index > 0);
    assert_eq!(last.time, reconcile_support::now());
    assert_eq!(b.events().last().unwrap().1, "SnapshotTaken");

    b.reconcile().await.unwrap();
    assert!(b.raft.take_calls().is_empty(), "handled once");
}

#[tokio::test]
async fn an_image_change_restarts_followers_first_and_the_leader_last() {
    let b = Bench::healthy(3).await;
    b.edit(|s| s.image = "kuberaft/raft-node:1.1".into());
    b.settle(40).await;
    assert_eq!(
        b.raft.take_calls(),
        ["TransferLeadership demo-0 to demo-1"],
        "the leader hands off before its restart"
    );
    let deletes: Vec<String> = b
        .take_writes()
        .into_iter()
        .filter(|w| w.starts_with("delete"))
        .collect();
    assert_eq!(
        deletes,
        [
            "delete pods demo-2",
            "delete pods demo-1",
            "delete pods demo-0"
        ]
    );
    let reasons = b.event_reasons();
    assert_eq!(
        reasons.iter().filter(|r| *r == "PodRestarted").count(),
        3,
        "{reasons:?}"
    );
    let st = b.status();
    assert_eq!(st.phase, Some(Phase::Running));
    assert_eq!(b.raft.voters().len(), 3);
}
