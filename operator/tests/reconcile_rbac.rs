//! `reconcile::rbac::RULES` against the API calls the operator really makes: a cluster's
//! whole life on the scripted apiserver (create, grow, upgrade, shrink, delete), leader
//! election against the same apiserver, and the controller's watches. Every call must be
//! granted, and every grant must be used, so the Helm chart generated from RULES is exact.

mod reconcile_support;

use std::collections::BTreeSet;
use std::time::Duration;

use kuberaft_operator::reconcile::controller::watched;
use kuberaft_operator::reconcile::leader::{self, LeaseConfig};
use kuberaft_operator::reconcile::rbac;
use reconcile_support::Bench;

type Grant = (String, String, String);

#[tokio::test]
async fn rbac_rules_are_exactly_the_calls_the_operator_makes() {
    let b = Bench::new();
    b.create_cluster(3);
    b.settle(40).await;
    b.edit(|s| s.image = "kuberaft/raft-node:1.1".into());
    b.settle(40).await;
    b.edit(|s| s.replicas = 2);
    b.settle(40).await;
    let mut rc = b.cluster();
    rc.metadata.deletion_timestamp = Some(reconcile_support::now());
    b.api.put(&rc);
    b.reconcile().await.unwrap();

    let lease = LeaseConfig {
        namespace: "kuberaft-system".into(),
        name: "kuberaft-operator".into(),
        identity: "operator-0".into(),
        duration: 15,
        grace: 5,
    };
    let held = tokio::time::timeout(
        Duration::from_secs(20),
        leader::acquire(b.api.client(), &lease),
    )
    .await
    .expect("leadership within the deadline")
    .expect("leadership");
    held.release().await;

    let calls = b.api.calls();
    for c in &calls {
        assert!(
            rbac::allows(&c.group, &c.resource, &c.verb),
            "not granted by RULES: {} {}/{} ({:?})",
            c.verb,
            c.group,
            c.resource,
            c.name
        );
    }

    let mut used: BTreeSet<Grant> = calls
        .iter()
        .map(|c| (c.group.clone(), c.resource.clone(), c.verb.clone()))
        .collect();
    for (group, resource) in watched() {
        for verb in ["list", "watch"] {
            used.insert((group.clone(), resource.clone(), verb.to_owned()));
        }
    }
    let granted: BTreeSet<Grant> = rbac::grants()
        .into_iter()
        .map(|(g, r, v)| (g.to_owned(), r.to_owned(), v.to_owned()))
        .collect();
    let unused: Vec<&Grant> = granted.difference(&used).collect();
    assert!(unused.is_empty(), "granted but never used: {unused:?}");
    let missing: Vec<&Grant> = used.difference(&granted).collect();
    assert!(missing.is_empty(), "used but not granted: {missing:?}");
}
