//! Reconcile tests, scripted apiserver + fake Raft cluster: a new RaftCluster from the first
//! reconcile to three healthy voters, a resources edit rolling its pods, and its deletion.

mod reconcile_support;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kuberaft_operator::crd::{MemberRole, OperationKind, Phase};
use reconcile_support::{Bench, NAME, NS, UID};

#[tokio::test]
async fn new_cluster_records_bootstrap_before_creating_objects() {
    let b = Bench::new();
    b.create_cluster(3);

    // 1: the finalizer, nothing else.
    b.reconcile().await.unwrap();
    assert!(b.has_finalizer());
    assert_eq!(b.take_writes(), ["patch raftclusters demo"]);

    // 2: the operation goes to status before anything is created.
    b.reconcile().await.unwrap();
    assert_eq!(b.take_writes(), ["patch raftclusters/status demo"]);
    let st = b.status();
    let op = st.operation.as_ref().expect("operation recorded");
    assert_eq!(op.kind, OperationKind::Bootstrap);
    assert_eq!(op.step, "RecordOperation");
    assert_eq!(st.phase, Some(Phase::Pending));
    assert!(b.api.get::<StatefulSet>(NS, NAME).is_none());

    // 3: Services, budget and a one-pod StatefulSet, by server-side apply.
    b.reconcile().await.unwrap();
    let writes: Vec<_> = b.api.take_calls();
    let summary: Vec<String> = writes
        .iter()
        .filter(|c| c.verb != "get" && c.verb != "list")
        .map(|c| {
            format!(
                "{} {} {}",
                c.verb,
                c.resource,
                c.name.clone().unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            "patch services demo-peer",
            "create services demo-peer",
            "patch services demo",
            "create services demo",
            "patch poddisruptionbudgets demo",
            "create poddisruptionbudgets demo",
            "patch statefulsets demo",
            "create statefulsets demo",
            "patch raftclusters/status demo",
        ]
    );
    for c in writes.iter().filter(|c| c.verb == "patch") {
        assert_eq!(
            c.field_manager.as_deref(),
            Some("kuberaft-operator"),
            "{c:?}"
        );
    }
    let sts = b.api.get::<StatefulSet>(NS, NAME).unwrap();
    assert_eq!(sts.spec.replicas, Some(1));
    let owner = &sts.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("RaftCluster", UID)
    );
    let peer = b.api.get::<Service>(NS, "demo-peer").unwrap();
    assert_eq!(peer.spec.unwrap().cluster_ip.as_deref(), Some("None"));
    let pdb = b.api.get::<PodDisruptionBudget>(NS, NAME).unwrap();
    assert_eq!(pdb.spec.unwrap().max_unavailable, Some(IntOrString::Int(0)));
    assert_eq!(b.status().operation.unwrap().step, "CreateStatefulSet");
    assert!(b.raft.take_calls().is_empty());
    assert!(b.events().is_empty(), "{:?}", b.events());
}

#[tokio::test]
async fn bootstrap_calls_admin_bootstrap_on_pod_zero() {
    let b = Bench::new();
    b.create_cluster(3);
    for _ in 0..3 {
        b.reconcile().await.unwrap();
    }
    // The pod exists but its node is not up yet: wait, do not call anything.
    b.run_statefulset();
    b.raft.hang("demo-0", true);
    b.reconcile().await.unwrap();
    assert!(b.raft.take_calls().is_empty());
    assert_eq!(b.status().phase, Some(Phase::Bootstrapping));

    b.raft.hang("demo-0", false);
    b.api.take_calls();
    b.reconcile().await.unwrap();
    assert_eq!(b.raft.take_calls(), ["Bootstrap demo-0"]);
    let st = b.status();
    // The RaftCluster's uid names the Raft cluster.
    assert_eq!(st.cluster_id.as_deref(), Some(UID));
    assert_eq!(st.operation.unwrap().step, "Bootstrap");
    let events = b.events();
    assert_eq!(events.len(), 1, "{events:?}");
    let (kind, reason, note) = &events[0];
    assert_eq!((kind.as_str(), reason.as_str()), ("Normal", "Bootstrapped"));
    assert!(note.contains("demo-0"), "{note}");

    // Next: bootstrap is done; the operator starts growing (recording first).
    b.reconcile().await.unwrap();
    assert!(b.raft.take_calls().is_empty());
    let op = b.status().operation.unwrap();
    assert_eq!(
        (op.kind, op.target.as_deref()),
        (OperationKind::ScaleUp, Some("demo-1"))
    );
}

#[tokio::test]
async fn a_new_cluster_grows_to_three_voters_one_at_a_time() {
    let b = Bench::new();
    b.create_cluster(3);
    b.settle(40).await;

    assert_eq!(b.raft.voters(), ["demo-0", "demo-1", "demo-2"]);
    assert_eq!(b.raft.leader().as_deref(), Some("demo-0"));
    assert_eq!(
        b.event_reasons(),
        [
            "Bootstrapped",
            "LearnerAdded",
            "LearnerPromoted",
            "LearnerAdded",
            "LearnerPromoted"
        ]
    );
    let st = b.status();
    assert_eq!(st.phase, Some(Phase::Running));
    assert_eq!((st.replicas, st.ready_replicas), (3, 3));
    assert_eq!(st.failure_tolerance, Some(1));
    assert_eq!(st.leader.as_deref(), Some("demo-0"));
    assert_eq!(st.operation, None);
    assert_eq!(st.blocked_on, None);
    assert_eq!(st.observed_generation, Some(1));
    assert_eq!(
        st.selector.as_deref(),
        Some(
            "app.kubernetes.io/component=raft-member,app.kubernetes.io/instance=demo,app.kubernetes.io/name=raft-node"
        )
    );
    let roles: Vec<MemberRole> = st.members.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [
            MemberRole::Leader,
            MemberRole::Follower,
            MemberRole::Follower
        ]
    );
    let available = st
        .conditions
        .iter()
        .find(|c| c.type_ == "Available")
        .unwrap();
    assert_eq!(
        (available.status.as_str(), available.reason.as_str()),
        ("True", "QuorumHealthy")
    );
    let pdb = b.api.get::<PodDisruptionBudget>(NS, NAME).unwrap();
    assert_eq!(pdb.spec.unwrap().max_unavailable, Some(IntOrString::Int(1)));

    // Steady: another reconcile writes nothing and says nothing.
    b.api.take_calls();
    let events = b.events().len();
    b.reconcile().await.unwrap();
    assert!(b.take_writes().is_empty());
    assert_eq!(b.events().len(), events);
}

#[tokio::test]
async fn deleting_the_cluster_only_removes_the_finalizer() {
    let b = Bench::healthy(3).await;
    let mut rc = b.cluster();
    rc.metadata.deletion_timestamp = Some(reconcile_support::now());
    b.api.put(&rc);
    b.reconcile().await.unwrap();
    assert!(!b.has_finalizer());
    // Nothing deleted, no Admin call: owner references and the retention policy do the rest.
    assert_eq!(b.take_writes(), ["patch raftclusters demo"]);
    assert!(b.raft.take_calls().is_empty());
    assert!(b.api.get::<StatefulSet>(NS, NAME).is_some());
}

#[tokio::test]
async fn a_resources_edit_rolls_every_pod_one_at_a_time() {
    use k8s_openapi::api::core::v1::{Pod, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use kuberaft_operator::build::TEMPLATE_HASH_ANNOTATION;

    let b = Bench::healthy(3).await;
    let hash_of = |p: &Pod| {
        p.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(TEMPLATE_HASH_ANNOTATION).cloned())
    };
    let before = hash_of(&b.api.get::<Pod>(NS, "demo-0").unwrap()).unwrap();
    b.edit(|s| {
        s.resources = Some(ResourceRequirements {
            requests: Some([("memory".to_owned(), Quantity("1Gi".into()))].into()),
            ..ResourceRequirements::default()
        })
    });
    b.settle(80).await;

    let after = kuberaft_operator::build::template_hash(&b.cluster().spec);
    assert_ne!(before, after);
    for k in 0..3 {
        let pod = b.api.get::<Pod>(NS, &format!("demo-{k}")).unwrap();
        assert_eq!(hash_of(&pod).as_deref(), Some(after.as_str()), "demo-{k}");
        let requests = pod.spec.unwrap().containers[0]
            .resources
            .clone()
            .unwrap()
            .requests
            .unwrap();
        assert_eq!(requests["memory"], Quantity("1Gi".into()));
    }
    let restarts = b
        .event_reasons()
        .iter()
        .filter(|r| *r == "PodRestarted")
        .count();
    assert_eq!(restarts, 3, "{:?}", b.event_reasons());
    assert_eq!(b.raft.voters(), ["demo-0", "demo-1", "demo-2"]);
    assert_eq!(b.status().phase, Some(Phase::Running));
}
