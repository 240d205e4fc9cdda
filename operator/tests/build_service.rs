//! The peer and client Services, and the names and addresses derived with them.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kuberaft_operator::build::{
    ClusterIdentity, client_address, client_service, labels, owner_reference, peer_address,
    peer_service, pod_name, pvc_name, selector_labels, selector_string,
};

fn id() -> ClusterIdentity {
    ClusterIdentity {
        name: "demo".into(),
        namespace: "prod".into(),
        uid: "0d1c-uid".into(),
    }
}

fn ports(svc: &Service) -> Vec<(String, i32, IntOrString)> {
    svc.spec
        .as_ref()
        .unwrap()
        .ports
        .iter()
        .flatten()
        .map(|p| {
            (
                p.name.clone().unwrap(),
                p.port,
                p.target_port.clone().unwrap(),
            )
        })
        .collect()
}

#[test]
fn peer_service_is_headless_and_publishes_unready_members() {
    let svc = peer_service(&id());
    assert_eq!(svc.metadata.name.as_deref(), Some("demo-peer"));
    assert_eq!(svc.metadata.namespace.as_deref(), Some("prod"));
    assert_eq!(svc.metadata.labels, Some(labels(&id())));
    let spec = svc.spec.as_ref().unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
    assert_eq!(spec.publish_not_ready_addresses, Some(true));
    assert_eq!(spec.selector, Some(selector_labels(&id())));
    let named = |n: &str| IntOrString::String(n.to_owned());
    assert_eq!(
        ports(&svc),
        [
            ("peer".to_owned(), 7000, named("peer")),
            ("client".to_owned(), 7001, named("client")),
            ("http".to_owned(), 7002, named("http")),
        ]
    );
}

#[test]
fn client_service_fronts_ready_members_on_the_client_port() {
    let svc = client_service(&id());
    assert_eq!(svc.metadata.name.as_deref(), Some("demo"));
    let spec = svc.spec.as_ref().unwrap();
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    assert_ne!(spec.cluster_ip.as_deref(), Some("None"));
    assert_ne!(spec.publish_not_ready_addresses, Some(true));
    assert_eq!(spec.selector, Some(selector_labels(&id())));
    assert_eq!(
        ports(&svc),
        [(
            "client".to_owned(),
            7001,
            IntOrString::String("client".into())
        )]
    );
}

#[test]
fn owner_reference_makes_the_cluster_the_controller() {
    let owner = owner_reference(&id());
    assert_eq!(owner.api_version, "kuberaft.io/v1alpha1");
    assert_eq!(owner.kind, "RaftCluster");
    assert_eq!(owner.name, "demo");
    assert_eq!(owner.uid, "0d1c-uid");
    assert_eq!(owner.controller, Some(true));
    assert_eq!(owner.block_owner_deletion, Some(true));
    for svc in [peer_service(&id()), client_service(&id())] {
        assert_eq!(svc.metadata.owner_references, Some(vec![owner.clone()]));
    }
}

#[test]
fn names_and_addresses() {
    assert_eq!(pod_name("demo", 4), "demo-4");
    assert_eq!(pvc_name("demo", 4), "data-demo-4");
    assert_eq!(
        peer_address(&id(), "demo-4"),
        "demo-4.demo-peer.prod.svc:7000"
    );
    assert_eq!(
        client_address(&id(), "demo-4"),
        "demo-4.demo-peer.prod.svc:7001"
    );
    assert_eq!(
        selector_string(&id()),
        "app.kubernetes.io/component=raft-member,app.kubernetes.io/instance=demo,\
         app.kubernetes.io/name=raft-node"
    );
}
