//! `validate` catches what the schema cannot, repeats what CEL checks (for clusters whose
//! CRD predates a rule), names each field, and reports every problem at once.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kuberaft_operator::crd::{BlockedOn, FieldError, RaftClusterSpec, validate, validate_name};

fn spec() -> RaftClusterSpec {
    RaftClusterSpec::with_image("ghcr.io/kuberaft/raft-node:0.1.0")
}

/// The fields `validate` refused, in order.
fn refused(spec: &RaftClusterSpec) -> Vec<String> {
    match validate(spec) {
        Ok(()) => Vec::new(),
        Err(errs) => errs.into_iter().map(|e| e.field).collect(),
    }
}

fn quantities(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, Quantity>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Quantity((*v).to_owned())))
            .collect(),
    )
}

#[test]
fn defaults_are_valid() {
    assert_eq!(validate(&spec()), Ok(()));
}

#[test]
fn each_bad_field_is_named() {
    type Break = fn(&mut RaftClusterSpec);
    let cases: Vec<(&str, Break)> = vec![
        ("spec.replicas", |s| s.replicas = 0),
        ("spec.minFailureTolerance", |s| s.min_failure_tolerance = -1),
        ("spec.minFailureTolerance", |s| s.min_failure_tolerance = 2),
        ("spec.image", |s| s.image = String::new()),
        ("spec.image", |s| s.image = "raft node:1".into()),
        ("spec.image", |s| s.image = "raft-node:".into()),
        ("spec.storage.size", |s| {
            s.storage.size = Quantity("lots".into())
        }),
        ("spec.storage.size", |s| {
            s.storage.size = Quantity("0".into())
        }),
        ("spec.storage.size", |s| {
            s.storage.size = Quantity("-1Gi".into())
        }),
        ("spec.storage.storageClassName", |s| {
            s.storage.storage_class_name = Some("Fast SSD".into())
        }),
        ("spec.raft.tickMillis", |s| s.raft.tick_millis = 0),
        ("spec.raft.heartbeatTicks", |s| s.raft.heartbeat_ticks = 0),
        ("spec.raft.electionTicks", |s| s.raft.election_ticks = 1),
        ("spec.snapshot.entryThreshold", |s| {
            s.snapshot.entry_threshold = 0
        }),
        ("spec.snapshot.requestId", |s| {
            s.snapshot.request_id = Some(String::new())
        }),
        ("spec.snapshot.requestId", |s| {
            s.snapshot.request_id = Some("a b".into())
        }),
        ("spec.priorityClassName", |s| {
            s.priority_class_name = Some("High".into())
        }),
        ("spec.nodeSelector[bad key!]", |s| {
            s.node_selector = Some([("bad key!".to_owned(), "x".to_owned())].into());
        }),
        ("spec.podAnnotations[/x]", |s| {
            s.pod_annotations = Some([("/x".to_owned(), "x".to_owned())].into());
        }),
        ("spec.tolerations[0].operator", |s| {
            s.tolerations = Some(vec![Toleration {
                key: Some("k".into()),
                operator: Some("Like".into()),
                ..Toleration::default()
            }]);
        }),
        ("spec.tolerations[0].key", |s| {
            s.tolerations = Some(vec![Toleration {
                operator: Some("Equal".into()),
                value: Some("v".into()),
                ..Toleration::default()
            }]);
        }),
        ("spec.tolerations[0].effect", |s| {
            s.tolerations = Some(vec![Toleration {
                operator: Some("Exists".into()),
                effect: Some("NoWay".into()),
                ..Toleration::default()
            }]);
        }),
        ("spec.resources.requests.memory", |s| {
            s.resources = Some(ResourceRequirements {
                requests: quantities(&[("memory", "2Gi")]),
                limits: quantities(&[("memory", "1024Mi")]),
                ..ResourceRequirements::default()
            });
        }),
        ("spec.resources.limits.cpu", |s| {
            s.resources = Some(ResourceRequirements {
                limits: quantities(&[("cpu", "fast")]),
                ..ResourceRequirements::default()
            });
        }),
    ];
    for (field, break_it) in cases {
        let mut s = spec();
        break_it(&mut s);
        assert_eq!(refused(&s), [field], "expected exactly {field} refused");
    }
}

#[test]
fn every_error_is_reported_at_once() {
    let mut s = spec();
    s.replicas = 3;
    s.min_failure_tolerance = 5;
    s.image = String::new();
    s.raft.election_ticks = 1;
    assert_eq!(
        refused(&s),
        [
            "spec.minFailureTolerance",
            "spec.image",
            "spec.raft.electionTicks"
        ]
    );
}

#[test]
fn tolerance_fits_exactly_two_t_plus_one() {
    for (replicas, tolerance, ok) in [
        (1, 0, true),
        (3, 1, true),
        (4, 1, true),
        (4, 2, false),
        (5, 2, true),
    ] {
        let mut s = spec();
        s.replicas = replicas;
        s.min_failure_tolerance = tolerance;
        assert_eq!(
            validate(&s).is_ok(),
            ok,
            "replicas={replicas} tolerance={tolerance}"
        );
    }
}

#[test]
fn equal_request_and_limit_in_other_units_is_fine() {
    let mut s = spec();
    s.resources = Some(ResourceRequirements {
        requests: quantities(&[("cpu", "500m"), ("memory", "1Gi")]),
        limits: quantities(&[("cpu", "0.5"), ("memory", "1024Mi")]),
        ..ResourceRequirements::default()
    });
    assert_eq!(validate(&s), Ok(()));
}

#[test]
fn well_formed_extras_pass() {
    let mut s = spec();
    s.priority_class_name = Some("raft-critical".into());
    s.node_selector = Some([("node.kubernetes.io/pool".to_owned(), "consensus".to_owned())].into());
    s.pod_annotations = Some([("prometheus.io/scrape".to_owned(), "true".to_owned())].into());
    s.tolerations = Some(vec![Toleration {
        operator: Some("Exists".into()),
        ..Toleration::default()
    }]);
    s.snapshot.request_id = Some("2024-06-01T12:00".into());
    s.storage.storage_class_name = Some("fast-ssd".into());
    assert_eq!(validate(&s), Ok(()));
}

#[test]
fn names() {
    assert_eq!(validate_name("demo"), Ok(()));
    assert_eq!(validate_name(&"a".repeat(52)), Ok(()));
    for bad in ["", "Demo", "9lives", "db.one", "trailing-", &"a".repeat(53)] {
        let err = validate_name(bad).expect_err(bad);
        assert_eq!(err.field, "metadata.name", "{bad}");
    }
}

#[test]
fn blocked_on_lists_every_error() {
    let errors = [
        FieldError {
            field: "spec.image".into(),
            reason: "must not be empty".into(),
        },
        FieldError {
            field: "spec.replicas".into(),
            reason: "must be at least 1".into(),
        },
    ];
    let blocked = BlockedOn::invalid_spec(&errors);
    assert_eq!(blocked.code, "InvalidSpec");
    assert_eq!(
        blocked.message,
        "spec.image: must not be empty; spec.replicas: must be at least 1"
    );
}
