//! The committed CRD is exactly what `crdgen` prints, and its names, subresources and
//! printer columns are what `kubectl scale` and `kubectl get raft` rely on.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kuberaft_operator::crd::{CRDGEN_COMMAND, RaftCluster, crd_yaml};

/// The committed file, read at run time so a missing file fails with the fix, not a
/// compile error.
fn committed() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../crds/raftcluster.yaml");
    std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!("cannot read crds/raftcluster.yaml ({e}); create it with:\n    {CRDGEN_COMMAND}")
    })
}

#[test]
fn committed_crd_matches_crdgen() {
    let generated = crd_yaml().expect("CRD serializes");
    let committed = committed();
    if generated != committed {
        let line = generated
            .lines()
            .zip(committed.lines())
            .position(|(a, b)| a != b)
            .map_or_else(|| "the end".to_owned(), |i| format!("line {}", i + 1));
        panic!(
            "crds/raftcluster.yaml is stale (first difference at {line}).\n\
             Regenerate it from the repository root with:\n    {CRDGEN_COMMAND}"
        );
    }
}

#[test]
fn committed_crd_parses_back_to_the_generated_object() {
    let parsed: CustomResourceDefinition = serde_yaml::from_str(&committed()).expect("valid YAML");
    assert!(
        parsed == RaftCluster::crd(),
        "crds/raftcluster.yaml does not describe the generated CRD; run {CRDGEN_COMMAND}"
    );
}

#[test]
fn names_scope_and_scale_subresource() {
    let crd = RaftCluster::crd();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("raftclusters.kuberaft.io")
    );
    assert_eq!(crd.spec.group, "kuberaft.io");
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.kind, "RaftCluster");
    assert_eq!(crd.spec.names.short_names, Some(vec!["raft".to_owned()]));

    let [version] = crd.spec.versions.as_slice() else {
        panic!("exactly one version expected");
    };
    assert_eq!(version.name, "v1alpha1");
    assert!(version.served && version.storage);
    let sub = version.subresources.as_ref().expect("subresources");
    assert!(sub.status.is_some(), "status subresource");
    let scale = sub.scale.as_ref().expect("scale subresource");
    assert_eq!(scale.spec_replicas_path, ".spec.replicas");
    assert_eq!(scale.status_replicas_path, ".status.replicas");
    assert_eq!(
        scale.label_selector_path.as_deref(),
        Some(".status.selector")
    );
}

#[test]
fn printer_columns() {
    let crd = RaftCluster::crd();
    let columns: Vec<(String, String, String)> = crd.spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| (c.name.clone(), c.type_.clone(), c.json_path.clone()))
        .collect();
    let expected = [
        ("Replicas", "integer", ".spec.replicas"),
        ("Ready", "integer", ".status.readyReplicas"),
        ("Leader", "string", ".status.leader"),
        ("Phase", "string", ".status.phase"),
        ("Tolerance", "integer", ".status.failureTolerance"),
        ("Age", "date", ".metadata.creationTimestamp"),
    ]
    .map(|(n, t, p)| (n.to_owned(), t.to_owned(), p.to_owned()));
    assert_eq!(columns, expected);
}

#[test]
fn schema_defaults() {
    let crd = serde_json::to_value(RaftCluster::crd()).unwrap();
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let props = &spec["properties"];
    assert_eq!(spec["required"], serde_json::json!(["image"]));
    assert_eq!(props["replicas"]["default"], 3);
    assert_eq!(props["replicas"]["minimum"], 1.0);
    assert_eq!(props["minFailureTolerance"]["default"], 0);
    assert_eq!(props["paused"]["default"], false);
    let storage = &props["storage"]["properties"];
    assert_eq!(storage["size"]["default"], "1Gi");
    assert_eq!(storage["reclaimPolicy"]["default"], "Delete");
    assert_eq!(
        storage["reclaimPolicy"]["enum"],
        serde_json::json!(["Retain", "Delete"])
    );
    let snapshot = &props["snapshot"]["properties"];
    assert_eq!(snapshot["entryThreshold"]["default"], 10_000);
    let raft = &props["raft"]["properties"];
    assert_eq!(raft["tickMillis"]["default"], 100);
    assert_eq!(raft["electionTicks"]["default"], 10);
    assert_eq!(raft["heartbeatTicks"]["default"], 1);
}
