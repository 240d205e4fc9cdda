//! What the apiserver would do with a manifest, without an apiserver: apply the schema's
//! defaults, check it against the structural schema (types, enums, required fields, unknown
//! fields refused as `kubectl apply`'s strict field validation does), evaluate the CEL rules
//! (with kube-cel, including transition rules), then deserialize it into the Rust type and
//! run `validate`. Every sample must pass; every bad manifest must be refused by name.

use std::path::{Path, PathBuf};

use kube::CustomResourceExt;
use kube::core::cel::{Validator as CelValidator, apply_defaults, compile_schema};
use kuberaft_operator::crd::{RaftCluster, ReclaimPolicy, validate, validate_name};
use serde_json::{Map, Value, json};

/// The CRD's openAPIV3Schema, as the apiserver stores it.
fn crd_schema() -> Value {
    let crd = RaftCluster::crd();
    let schema = crd.spec.versions[0].schema.as_ref().unwrap();
    serde_json::to_value(schema.open_api_v3_schema.as_ref().unwrap()).unwrap()
}

/// Translate the OpenAPI v3 structural schema into a plain JSON Schema with the
/// apiserver's semantics: `nullable` admits null, int-or-string admits both, and objects
/// with declared properties refuse unknown ones.
fn strict(node: &Value) -> Value {
    let Value::Object(map) = node else {
        return node.clone();
    };
    let mut out = Map::new();
    for (key, value) in map {
        let value = match (key.as_str(), value) {
            ("properties", Value::Object(props)) => {
                Value::Object(props.iter().map(|(k, s)| (k.clone(), strict(s))).collect())
            }
            ("items" | "additionalProperties" | "not", Value::Object(_)) => strict(value),
            ("allOf" | "anyOf" | "oneOf", Value::Array(list)) => {
                Value::Array(list.iter().map(strict).collect())
            }
            _ => value.clone(),
        };
        out.insert(key.clone(), value);
    }
    if out.get("x-kubernetes-int-or-string") == Some(&json!(true)) && !out.contains_key("type") {
        out.insert("type".into(), json!(["integer", "string"]));
    }
    let preserve = out.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
    if out.get("type") == Some(&json!("object"))
        && out.contains_key("properties")
        && !out.contains_key("additionalProperties")
        && !preserve
    {
        out.insert("additionalProperties".into(), json!(false));
    }
    if out.remove("nullable") == Some(json!(true)) {
        return json!({ "anyOf": [{ "type": "null" }, Value::Object(out)] });
    }
    Value::Object(out)
}

/// The checks an object goes through on create (`old` = None) or update.
struct Admission {
    schema: Value,
    structural: jsonschema::Validator,
    cel: CelValidator,
}

impl Admission {
    fn new() -> Self {
        let schema = crd_schema();
        let mut root = strict(&schema);
        // The apiserver validates these itself; they are not in the CRD's schema.
        let props = root["properties"].as_object_mut().unwrap();
        props.insert(
            "apiVersion".into(),
            json!({ "enum": ["kuberaft.io/v1alpha1"] }),
        );
        props.insert("kind".into(), json!({ "enum": ["RaftCluster"] }));
        props.insert("metadata".into(), json!({ "type": "object" }));
        let structural = jsonschema::draft4::new(&root).expect("schema compiles");
        Self {
            schema,
            structural,
            cel: CelValidator::new(),
        }
    }

    /// Errors as `path: message`, empty when the object is admitted and valid.
    fn check(&self, object: &Value, old: Option<&Value>) -> Vec<String> {
        let defaulted = apply_defaults(&self.schema, object);
        let mut errors: Vec<String> = self
            .structural
            .iter_errors(&defaulted)
            .map(|e| format!("{}: {e}", dotted(&e.instance_path().to_string())))
            .collect();
        if let Err(cel) = self.cel.validate(&self.schema, object, old) {
            errors.extend(cel.iter().map(ToString::to_string));
        }
        if !errors.is_empty() {
            return errors;
        }
        let cluster: RaftCluster = match serde_json::from_value(defaulted) {
            Ok(c) => c,
            Err(e) => return vec![format!("deserialize: {e}")],
        };
        if let Err(e) = validate_name(cluster.metadata.name.as_deref().unwrap_or_default()) {
            errors.push(e.to_string());
        }
        if let Err(errs) = validate(&cluster.spec) {
            errors.extend(errs.iter().map(ToString::to_string));
        }
        errors
    }

    fn admit(&self, object: &Value) -> RaftCluster {
        let errors = self.check(object, None);
        assert!(errors.is_empty(), "refused: {errors:#?}");
        serde_json::from_value(apply_defaults(&self.schema, object)).unwrap()
    }
}

fn dotted(pointer: &str) -> String {
    pointer.trim_start_matches('/').replace('/', ".")
}

fn samples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds/samples")
}

fn load(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

fn manifest(spec: Value) -> Value {
    json!({
        "apiVersion": "kuberaft.io/v1alpha1",
        "kind": "RaftCluster",
        "metadata": { "name": "demo", "namespace": "default" },
        "spec": spec,
    })
}

#[test]
fn cel_rules_compile() {
    let compiled = compile_schema(&crd_schema());
    assert!(
        !compiled.has_errors(),
        "{:#?}",
        compiled.compilation_errors()
    );
}

#[test]
fn every_sample_is_admitted_and_valid() {
    let admission = Admission::new();
    let mut names = Vec::new();
    for entry in std::fs::read_dir(samples_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let errors = admission.check(&load(&path), None);
            assert!(errors.is_empty(), "{path:?} refused: {errors:#?}");
            names.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    names.sort();
    assert_eq!(names, ["minimal.yaml", "paused.yaml", "production.yaml"]);
}

#[test]
fn samples_mean_what_they_say() {
    let admission = Admission::new();
    let minimal = admission.admit(&load(&samples_dir().join("minimal.yaml")));
    assert_eq!(minimal.spec.replicas, 3);
    assert_eq!(minimal.spec.storage.size.0, "1Gi");
    assert_eq!(minimal.spec.min_failure_tolerance, 0);
    assert!(!minimal.spec.paused);

    let prod = admission.admit(&load(&samples_dir().join("production.yaml")));
    assert_eq!(prod.spec.replicas, 5);
    assert_eq!(prod.spec.min_failure_tolerance, 2);
    assert_eq!(
        prod.spec.storage.storage_class_name.as_deref(),
        Some("fast-ssd")
    );
    assert_eq!(prod.spec.storage.reclaim_policy, ReclaimPolicy::Retain);
    assert!(prod.spec.resources.is_some());

    let paused = admission.admit(&load(&samples_dir().join("paused.yaml")));
    assert!(paused.spec.paused);
}

#[test]
fn bad_manifests_are_refused_naming_the_field() {
    let admission = Admission::new();
    let image = "ghcr.io/kuberaft/raft-node:0.1.0";
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "zero replicas",
            manifest(json!({"image": image, "replicas": 0})),
            "spec.replicas",
        ),
        (
            "replicas as text",
            manifest(json!({"image": image, "replicas": "3"})),
            "spec.replicas",
        ),
        ("no image", manifest(json!({"replicas": 3})), "image"),
        ("empty image", manifest(json!({"image": ""})), "spec.image"),
        (
            "image with spaces",
            manifest(json!({"image": "raft node"})),
            "spec.image",
        ),
        (
            "unknown field",
            manifest(json!({"image": image, "replica": 3})),
            "replica",
        ),
        (
            "tolerance too high",
            manifest(json!({"image": image, "replicas": 3, "minFailureTolerance": 2})),
            "spec.minFailureTolerance",
        ),
        (
            "negative tolerance",
            manifest(json!({"image": image, "minFailureTolerance": -1})),
            "spec.minFailureTolerance",
        ),
        (
            "unknown reclaim policy",
            manifest(json!({"image": image, "storage": {"reclaimPolicy": "Recycle"}})),
            "spec.storage.reclaimPolicy",
        ),
        (
            "size not a quantity",
            manifest(json!({"image": image, "storage": {"size": "lots"}})),
            "spec.storage.size",
        ),
        (
            "zero size",
            manifest(json!({"image": image, "storage": {"size": "0"}})),
            "spec.storage.size",
        ),
        (
            "heartbeat not shorter than election",
            manifest(json!({"image": image, "raft": {"electionTicks": 5, "heartbeatTicks": 5}})),
            "spec.raft.heartbeatTicks",
        ),
        (
            "zero snapshot threshold",
            manifest(json!({"image": image, "snapshot": {"entryThreshold": 0}})),
            "spec.snapshot.entryThreshold",
        ),
        (
            "unknown pull policy",
            manifest(json!({"image": image, "imagePullPolicy": "Sometimes"})),
            "spec.imagePullPolicy",
        ),
        (
            "request above limit",
            manifest(json!({"image": image,
                "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}})),
            "spec.resources.requests.cpu",
        ),
        (
            "Exists toleration with a value",
            manifest(json!({"image": image,
                "tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]})),
            "spec.tolerations[0].value",
        ),
    ];
    for (what, object, field) in cases {
        let errors = admission.check(&object, None);
        assert!(
            errors.iter().any(|e| e.contains(field)),
            "{what}: expected an error naming {field:?}, got {errors:#?}"
        );
    }
}

#[test]
fn bad_names_are_refused() {
    let admission = Admission::new();
    for name in [
        "a".repeat(53),
        "9lives".to_owned(),
        "Demo".to_owned(),
        "db.one".to_owned(),
    ] {
        let mut object = manifest(json!({"image": "img:1"}));
        object["metadata"]["name"] = json!(name);
        let errors = admission.check(&object, None);
        assert!(
            errors.iter().any(|e| e.contains("metadata.name")),
            "{name}: {errors:#?}"
        );
    }
    let mut longest = manifest(json!({"image": "img:1"}));
    longest["metadata"]["name"] = json!("a".repeat(52));
    assert_eq!(admission.check(&longest, None), Vec::<String>::new());
}

#[test]
fn storage_class_is_immutable() {
    let admission = Admission::new();
    let with = |class: Option<&str>, size: &str| {
        let mut storage = json!({"size": size});
        if let Some(class) = class {
            storage["storageClassName"] = json!(class);
        }
        manifest(json!({"image": "img:1", "storage": storage}))
    };
    let fast = with(Some("fast"), "1Gi");
    for (what, new) in [
        ("changed", with(Some("slow"), "1Gi")),
        ("removed", with(None, "1Gi")),
    ] {
        let errors = admission.check(&new, Some(&fast));
        assert!(
            errors.iter().any(|e| e.contains("storageClassName")),
            "{what}: {errors:#?}"
        );
    }
    let errors = admission.check(&with(Some("fast"), "1Gi"), Some(&with(None, "1Gi")));
    assert!(
        errors.iter().any(|e| e.contains("storageClassName")),
        "added: {errors:#?}"
    );

    // The size is immutable too: the volumes are never resized.
    let errors = admission.check(&with(Some("fast"), "2Gi"), Some(&fast));
    assert!(
        errors
            .iter()
            .any(|e| e.contains("spec.storage.size is immutable")),
        "resized: {errors:#?}"
    );
    // Unchanged class and size: the reclaim policy may change.
    let mut retain = with(Some("fast"), "1Gi");
    retain["spec"]["storage"]["reclaimPolicy"] = json!("Retain");
    assert_eq!(admission.check(&retain, Some(&fast)), Vec::<String>::new());
    assert_eq!(
        admission.check(&with(None, "1Gi"), Some(&with(None, "1Gi"))),
        Vec::<String>::new()
    );
}

#[test]
fn scaling_below_the_tolerance_is_refused() {
    let admission = Admission::new();
    let old = manifest(json!({"image": "img:1", "replicas": 5, "minFailureTolerance": 2}));
    assert_eq!(admission.check(&old, None), Vec::<String>::new());
    let mut scaled = old.clone();
    scaled["spec"]["replicas"] = json!(4);
    let errors = admission.check(&scaled, Some(&old));
    assert_eq!(
        errors,
        [
            "spec.minFailureTolerance: spec.minFailureTolerance 2 needs at least 5 replicas, \
          spec.replicas is 4"
        ]
    );
}

#[test]
fn explicit_null_size_falls_back_to_the_default() {
    // kube marks the int-or-string size nullable, so the apiserver can store a null.
    let admission = Admission::new();
    let cluster = admission.admit(&manifest(
        json!({"image": "img:1", "storage": {"size": null}}),
    ));
    assert_eq!(cluster.spec.storage.size.0, "1Gi");
}
