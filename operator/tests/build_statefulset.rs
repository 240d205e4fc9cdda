//! The StatefulSet's important fields, asserted one by one.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::ObjectMeta;
use kuberaft_operator::build::{
    ClusterIdentity, IdentityError, TEMPLATE_HASH_ANNOTATION, env, owner_reference,
    selector_labels, statefulset, template_hash,
};
use kuberaft_operator::crd::{ImagePullPolicy, RaftCluster, RaftClusterSpec, ReclaimPolicy};

fn id() -> ClusterIdentity {
    ClusterIdentity {
        name: "demo".into(),
        namespace: "prod".into(),
        uid: "0d1c-uid".into(),
    }
}

fn spec() -> RaftClusterSpec {
    RaftClusterSpec::with_image("ghcr.io/kuberaft/raft-node:0.1.0")
}

fn pod(sts: &StatefulSet) -> &PodSpec {
    sts.spec.template.spec.as_ref().unwrap()
}

fn container(sts: &StatefulSet) -> &Container {
    let pod = pod(sts);
    assert_eq!(pod.containers.len(), 1);
    &pod.containers[0]
}

fn env_value<'a>(env: &'a [EnvVar], name: &str) -> &'a EnvVar {
    env.iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("{name} not set"))
}

#[test]
fn identity_comes_from_stored_metadata() {
    let mut cluster = RaftCluster::new("demo", spec());
    assert_eq!(
        ClusterIdentity::of(&cluster),
        Err(IdentityError("namespace"))
    );
    cluster.metadata = ObjectMeta {
        name: Some("demo".into()),
        namespace: Some("prod".into()),
        uid: Some("0d1c-uid".into()),
        ..ObjectMeta::default()
    };
    assert_eq!(ClusterIdentity::of(&cluster), Ok(id()));
}

#[test]
fn size_comes_from_the_planner_not_the_spec() {
    let mut s = spec();
    s.replicas = 5;
    let sts = statefulset(&id(), &s, 2);
    assert_eq!(sts.spec.replicas, Some(2));
}

#[test]
fn metadata_and_selector() {
    let sts = statefulset(&id(), &spec(), 3);
    assert_eq!(sts.metadata.name.as_deref(), Some("demo"));
    assert_eq!(sts.metadata.namespace.as_deref(), Some("prod"));
    assert_eq!(
        sts.metadata.owner_references,
        Some(vec![owner_reference(&id())])
    );
    let selector = BTreeMap::from([
        (
            "app.kubernetes.io/component".to_owned(),
            "raft-member".to_owned(),
        ),
        ("app.kubernetes.io/instance".to_owned(), "demo".to_owned()),
        ("app.kubernetes.io/name".to_owned(), "raft-node".to_owned()),
    ]);
    assert_eq!(selector_labels(&id()), selector);
    assert_eq!(sts.spec.selector.match_labels, Some(selector.clone()));
    let mut labels = selector;
    labels.insert(
        "app.kubernetes.io/managed-by".into(),
        "kuberaft-operator".into(),
    );
    assert_eq!(sts.metadata.labels.as_ref(), Some(&labels));
    let template_meta = sts.spec.template.metadata.as_ref().unwrap();
    assert_eq!(template_meta.labels.as_ref(), Some(&labels));
}

#[test]
fn operator_orders_membership_and_restarts() {
    let sts = statefulset(&id(), &spec(), 3);
    assert_eq!(sts.spec.service_name.as_deref(), Some("demo-peer"));
    assert_eq!(sts.spec.pod_management_policy.as_deref(), Some("Parallel"));
    let update = sts.spec.update_strategy.as_ref().unwrap();
    assert_eq!(update.type_.as_deref(), Some("OnDelete"));
    assert!(update.rolling_update.is_none());
}

#[test]
fn claim_retention_follows_the_reclaim_policy() {
    for (policy, expected) in [
        (ReclaimPolicy::Delete, "Delete"),
        (ReclaimPolicy::Retain, "Retain"),
    ] {
        let mut s = spec();
        s.storage.reclaim_policy = policy;
        let sts = statefulset(&id(), &s, 3);
        let retention = sts.spec.persistent_volume_claim_retention_policy.unwrap();
        assert_eq!(retention.when_scaled.as_deref(), Some(expected));
        assert_eq!(retention.when_deleted.as_deref(), Some(expected));
    }
}

#[test]
fn volume_claim_template() {
    let mut s = spec();
    s.storage.size = Quantity("20Gi".into());
    s.storage.storage_class_name = Some("fast-ssd".into());
    let sts = statefulset(&id(), &s, 3);
    let [claim] = sts.spec.volume_claim_templates.as_deref().unwrap() else {
        panic!("one claim template");
    };
    assert_eq!(claim.metadata.name.as_deref(), Some("data"));
    let claim = claim.spec.as_ref().unwrap();
    assert_eq!(claim.access_modes, Some(vec!["ReadWriteOnce".to_owned()]));
    assert_eq!(claim.storage_class_name.as_deref(), Some("fast-ssd"));
    let requests = claim.resources.as_ref().unwrap().requests.as_ref().unwrap();
    assert_eq!(requests["storage"], Quantity("20Gi".into()));

    let mount = container(&sts).volume_mounts.as_ref().unwrap();
    assert!(
        mount
            .iter()
            .any(|m| m.name == "data" && m.mount_path == "/var/lib/raft")
    );
}

#[test]
fn container_image_ports_and_resources() {
    let mut s = spec();
    s.image_pull_policy = Some(ImagePullPolicy::IfNotPresent);
    let resources = ResourceRequirements {
        requests: Some([("cpu".to_owned(), Quantity("500m".into()))].into()),
        ..ResourceRequirements::default()
    };
    s.resources = Some(resources.clone());
    let sts = statefulset(&id(), &s, 3);
    let c = container(&sts);
    assert_eq!(c.name, "raft-node");
    assert_eq!(c.image.as_deref(), Some("ghcr.io/kuberaft/raft-node:0.1.0"));
    assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
    assert_eq!(c.resources, Some(resources));
    let ports: Vec<(Option<&str>, i32)> = c
        .ports
        .iter()
        .flatten()
        .map(|p| (p.name.as_deref(), p.container_port))
        .collect();
    assert_eq!(
        ports,
        [
            (Some("peer"), 7000),
            (Some("client"), 7001),
            (Some("http"), 7002)
        ]
    );
}

#[test]
fn env_carries_every_flag() {
    let mut s = spec();
    s.raft.tick_millis = 50;
    s.raft.election_ticks = 20;
    s.raft.heartbeat_ticks = 2;
    s.snapshot.entry_threshold = 5000;
    let sts = statefulset(&id(), &s, 3);
    let env = container(&sts).env.as_deref().unwrap();

    let from_pod_name = |name: &str| {
        let var = env_value(env, name);
        let field = var.value_from.as_ref().unwrap().field_ref.as_ref().unwrap();
        assert_eq!(field.field_path, "metadata.name", "{name}");
    };
    from_pod_name("POD_NAME");
    from_pod_name("RAFT_NAME");
    assert_eq!(
        env[0].name, "POD_NAME",
        "defined before the values that expand it"
    );

    let expect = [
        ("RAFT_DATA_DIR", "/var/lib/raft"),
        ("RAFT_PEER_LISTEN", "0.0.0.0:7000"),
        ("RAFT_CLIENT_LISTEN", "0.0.0.0:7001"),
        ("RAFT_HTTP_LISTEN", "0.0.0.0:7002"),
        ("RAFT_ADVERTISE_PEER", "$(POD_NAME).demo-peer.prod.svc:7000"),
        (
            "RAFT_ADVERTISE_CLIENT",
            "$(POD_NAME).demo-peer.prod.svc:7001",
        ),
        ("RAFT_TICK_MILLIS", "50"),
        ("RAFT_ELECTION_TICKS", "20"),
        ("RAFT_HEARTBEAT_TICKS", "2"),
        ("RAFT_SNAPSHOT_THRESHOLD", "5000"),
        ("RAFT_LOG_FORMAT", "json"),
    ];
    for (name, value) in expect {
        assert_eq!(env_value(env, name).value.as_deref(), Some(value), "{name}");
    }
    assert_eq!(env.len(), env::FLAGS.len() + 1, "nothing undocumented");
}

#[test]
fn probes_and_prestop_hook() {
    let sts = statefulset(&id(), &spec(), 3);
    let c = container(&sts);
    let path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        let get = p.as_ref().unwrap().http_get.as_ref().unwrap();
        assert_eq!(get.port, IntOrString::String("http".into()));
        get.path.clone().unwrap()
    };
    assert_eq!(path(&c.startup_probe), "/healthz");
    assert_eq!(path(&c.liveness_probe), "/healthz");
    assert_eq!(path(&c.readiness_probe), "/readyz");
    let startup = c.startup_probe.as_ref().unwrap();
    let budget = startup.period_seconds.unwrap() * startup.failure_threshold.unwrap();
    assert!(
        budget >= 300,
        "WAL replay gets at least 5 minutes, got {budget}s"
    );

    let pre_stop = c.lifecycle.as_ref().unwrap().pre_stop.as_ref().unwrap();
    let get = pre_stop.http_get.as_ref().unwrap();
    assert_eq!(get.path.as_deref(), Some("/prestop"));
    assert_eq!(get.port, IntOrString::String("http".into()));
    assert!(pod(&sts).termination_grace_period_seconds.unwrap() >= 30);
}

#[test]
fn hardened_security_context() {
    let sts = statefulset(&id(), &spec(), 3);
    let pod_sc = pod(&sts).security_context.as_ref().unwrap();
    assert_eq!(pod_sc.run_as_non_root, Some(true));
    assert_eq!(pod_sc.run_as_user, Some(65532));
    assert_eq!(pod_sc.fs_group, Some(65532));
    assert_eq!(
        pod_sc.seccomp_profile.as_ref().unwrap().type_,
        "RuntimeDefault"
    );

    let sc = container(&sts).security_context.as_ref().unwrap();
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.run_as_user, Some(65532));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(
        sc.capabilities.as_ref().unwrap().drop,
        Some(vec!["ALL".to_owned()])
    );
    assert!(sc.capabilities.as_ref().unwrap().add.is_none());
    assert_eq!(sc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
    assert_eq!(pod(&sts).automount_service_account_token, Some(false));

    let mounts = container(&sts).volume_mounts.clone().unwrap();
    assert!(
        mounts.iter().any(|m| m.mount_path == "/tmp"),
        "writable /tmp"
    );
}

#[test]
fn preferred_anti_affinity_across_nodes() {
    let sts = statefulset(&id(), &spec(), 3);
    let anti = pod(&sts)
        .affinity
        .as_ref()
        .unwrap()
        .pod_anti_affinity
        .as_ref()
        .unwrap();
    assert!(
        anti.required_during_scheduling_ignored_during_execution
            .is_none()
    );
    let [term] = anti
        .preferred_during_scheduling_ignored_during_execution
        .as_deref()
        .unwrap()
    else {
        panic!("one preferred term");
    };
    assert_eq!(term.weight, 100);
    assert_eq!(
        term.pod_affinity_term.topology_key,
        "kubernetes.io/hostname"
    );
    let selector = term.pod_affinity_term.label_selector.as_ref().unwrap();
    assert_eq!(selector.match_labels, Some(selector_labels(&id())));
}

#[test]
fn pod_extras_pass_through() {
    let mut s = spec();
    s.node_selector = Some([("pool".to_owned(), "consensus".to_owned())].into());
    s.tolerations = Some(vec![Toleration {
        key: Some("dedicated".into()),
        operator: Some("Exists".into()),
        ..Toleration::default()
    }]);
    s.pod_annotations = Some([("prometheus.io/scrape".to_owned(), "true".to_owned())].into());
    s.priority_class_name = Some("raft-critical".into());
    let sts = statefulset(&id(), &s, 3);
    let p = pod(&sts);
    assert_eq!(p.node_selector, s.node_selector);
    assert_eq!(p.tolerations, s.tolerations);
    assert_eq!(p.priority_class_name, s.priority_class_name);
    let meta = sts.spec.template.metadata.as_ref().unwrap();
    let mut want = s.pod_annotations.clone().unwrap();
    want.insert(TEMPLATE_HASH_ANNOTATION.to_owned(), template_hash(&s));
    assert_eq!(meta.annotations.as_ref(), Some(&want));
    // The hash covers the extras: editing one rolls the pods.
    assert_ne!(template_hash(&s), template_hash(&spec()));
}
