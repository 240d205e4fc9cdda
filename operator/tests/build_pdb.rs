//! The PodDisruptionBudget never allows more evictions than the observed failure tolerance.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kuberaft_operator::build::{
    ClusterIdentity, failure_tolerance, labels, owner_reference, pod_disruption_budget,
    selector_labels,
};

fn id() -> ClusterIdentity {
    ClusterIdentity {
        name: "demo".into(),
        namespace: "prod".into(),
        uid: "0d1c-uid".into(),
    }
}

fn max_unavailable(voters: u32, healthy: u32) -> IntOrString {
    let pdb = pod_disruption_budget(&id(), voters, healthy);
    pdb.spec.unwrap().max_unavailable.unwrap()
}

#[test]
fn metadata_and_selector() {
    let pdb = pod_disruption_budget(&id(), 3, 3);
    assert_eq!(pdb.metadata.name.as_deref(), Some("demo"));
    assert_eq!(pdb.metadata.namespace.as_deref(), Some("prod"));
    assert_eq!(pdb.metadata.labels, Some(labels(&id())));
    assert_eq!(
        pdb.metadata.owner_references,
        Some(vec![owner_reference(&id())])
    );
    let spec = pdb.spec.unwrap();
    assert_eq!(
        spec.selector.unwrap().match_labels,
        Some(selector_labels(&id()))
    );
    assert!(spec.min_available.is_none(), "maxUnavailable only");
    assert_eq!(
        spec.unhealthy_pod_eviction_policy.as_deref(),
        Some("IfHealthyBudget")
    );
}

#[test]
fn healthy_clusters_allow_their_tolerance() {
    assert_eq!(max_unavailable(1, 1), IntOrString::Int(0));
    assert_eq!(max_unavailable(3, 3), IntOrString::Int(1));
    assert_eq!(max_unavailable(5, 5), IntOrString::Int(2));
    assert_eq!(max_unavailable(7, 7), IntOrString::Int(3));
}

#[test]
fn an_unhealthy_voter_lowers_the_budget() {
    assert_eq!(max_unavailable(3, 2), IntOrString::Int(0));
    assert_eq!(max_unavailable(5, 4), IntOrString::Int(1));
    assert_eq!(max_unavailable(5, 3), IntOrString::Int(0));
}

#[test]
fn a_cluster_without_quorum_allows_nothing() {
    assert_eq!(max_unavailable(3, 1), IntOrString::Int(0));
    assert_eq!(max_unavailable(5, 0), IntOrString::Int(0));
    assert_eq!(max_unavailable(0, 0), IntOrString::Int(0));
}

#[test]
fn never_more_than_a_minority_can_lose() {
    for voters in 0..=9u32 {
        for healthy in 0..=voters + 2 {
            let t = failure_tolerance(voters, healthy);
            let majority = voters / 2 + 1;
            assert!(
                t <= voters.saturating_sub(1) / 2,
                "voters={voters} healthy={healthy}"
            );
            // Losing t more healthy voters still leaves a majority.
            assert!(
                t == 0 || healthy.min(voters) - t >= majority,
                "voters={voters} healthy={healthy} t={t}"
            );
        }
    }
}
