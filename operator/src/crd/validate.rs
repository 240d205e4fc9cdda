//! Checks the schema and its CEL rules cannot express, plus the CEL rules again: a CRD
//! installed from an older chart, or a cluster without CEL, must still never get a bad
//! spec acted on. Errors name the field path so `status.blockedOn` tells the user what to fix.

use std::fmt;

use k8s_openapi::api::core::v1::ResourceRequirements;

use super::quantity::parse_quantity;
use super::spec::{MAX_NAME_LEN, RaftClusterSpec};

/// One refused field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// JSON path from the object root, e.g. `spec.storage.size`.
    pub field: String,
    /// Why the value is refused.
    pub reason: String,
}

impl FieldError {
    fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl std::error::Error for FieldError {}

/// Validate a spec; every error is returned, not just the first.
pub fn validate(spec: &RaftClusterSpec) -> Result<(), Vec<FieldError>> {
    let mut errs = Vec::new();
    if spec.replicas < 1 {
        errs.push(FieldError::new("spec.replicas", "must be at least 1"));
    }
    if spec.min_failure_tolerance < 0 {
        errs.push(FieldError::new(
            "spec.minFailureTolerance",
            "must not be negative",
        ));
    } else if spec.replicas >= 1
        && i64::from(spec.min_failure_tolerance) * 2 + 1 > i64::from(spec.replicas)
    {
        errs.push(FieldError::new(
            "spec.minFailureTolerance",
            format!(
                "tolerating {t} failures needs at least {} replicas, spec.replicas is {}",
                2 * i64::from(spec.min_failure_tolerance) + 1,
                spec.replicas,
                t = spec.min_failure_tolerance
            ),
        ));
    }
    check_image(&spec.image, &mut errs);
    check_storage(spec, &mut errs);
    check_timing(spec, &mut errs);
    if spec.snapshot.entry_threshold < 1 {
        errs.push(FieldError::new(
            "spec.snapshot.entryThreshold",
            "must be at least 1",
        ));
    }
    if let Some(id) = &spec.snapshot.request_id
        && (id.is_empty()
            || id.len() > 253
            || id.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        errs.push(FieldError::new(
            "spec.snapshot.requestId",
            "must be 1 to 253 characters without whitespace",
        ));
    }
    if let Some(res) = &spec.resources {
        check_resources(res, &mut errs);
    }
    check_pod_extras(spec, &mut errs);
    if errs.is_empty() { Ok(()) } else { Err(errs) }
}

/// Validate a cluster name: it prefixes the StatefulSet, its pods and the Services.
pub fn validate_name(name: &str) -> Result<(), FieldError> {
    if name.len() > MAX_NAME_LEN {
        return Err(FieldError::new(
            "metadata.name",
            format!(
                "must be at most {MAX_NAME_LEN} characters, is {}",
                name.len()
            ),
        ));
    }
    if !is_dns1035_label(name) {
        return Err(FieldError::new(
            "metadata.name",
            "must be lowercase letters, digits and '-', start with a letter and end with a letter or digit",
        ));
    }
    Ok(())
}

fn check_image(image: &str, errs: &mut Vec<FieldError>) {
    if image.is_empty() {
        errs.push(FieldError::new("spec.image", "must not be empty"));
    } else if image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        errs.push(FieldError::new("spec.image", "must not contain whitespace"));
    } else if image.ends_with(':') || image.ends_with('@') || image.starts_with(['/', ':', '@']) {
        errs.push(FieldError::new(
            "spec.image",
            "is not an image reference (expected e.g. registry/raft-node:tag)",
        ));
    }
}

fn check_storage(spec: &RaftClusterSpec, errs: &mut Vec<FieldError>) {
    match parse_quantity(&spec.storage.size.0) {
        Some(bytes) if bytes > 0 => {}
        Some(_) => errs.push(FieldError::new(
            "spec.storage.size",
            "must be greater than zero",
        )),
        None => errs.push(FieldError::new(
            "spec.storage.size",
            format!(
                "{:?} is not a Kubernetes quantity (e.g. 10Gi)",
                spec.storage.size.0
            ),
        )),
    }
    if let Some(class) = &spec.storage.storage_class_name
        && !is_dns1123_subdomain(class)
    {
        errs.push(FieldError::new(
            "spec.storage.storageClassName",
            "must be a DNS subdomain name (lowercase letters, digits, '-' and '.')",
        ));
    }
}

fn check_timing(spec: &RaftClusterSpec, errs: &mut Vec<FieldError>) {
    let t = &spec.raft;
    if !(1..=60_000).contains(&t.tick_millis) {
        errs.push(FieldError::new(
            "spec.raft.tickMillis",
            "must be between 1 and 60000",
        ));
    }
    if t.heartbeat_ticks < 1 {
        errs.push(FieldError::new(
            "spec.raft.heartbeatTicks",
            "must be at least 1",
        ));
    }
    if t.election_ticks <= t.heartbeat_ticks {
        errs.push(FieldError::new(
            "spec.raft.electionTicks",
            format!(
                "must be greater than spec.raft.heartbeatTicks ({}), or followers time out between heartbeats",
                t.heartbeat_ticks
            ),
        ));
    }
}

fn check_resources(res: &ResourceRequirements, errs: &mut Vec<FieldError>) {
    for (kind, map) in [("requests", &res.requests), ("limits", &res.limits)] {
        for (name, q) in map.iter().flatten() {
            match parse_quantity(&q.0) {
                Some(v) if v >= 0 => {}
                _ => errs.push(FieldError::new(
                    format!("spec.resources.{kind}.{name}"),
                    format!("{:?} is not a non-negative quantity", q.0),
                )),
            }
        }
    }
    // The apiserver refuses such a pod only when the StatefulSet creates it: catch it here so
    // the cluster is blocked with a clear message instead of stuck without pods.
    let (Some(requests), Some(limits)) = (&res.requests, &res.limits) else {
        return;
    };
    for (name, request) in requests {
        let Some(limit) = limits.get(name) else {
            continue;
        };
        if let (Some(r), Some(l)) = (parse_quantity(&request.0), parse_quantity(&limit.0))
            && r > l
        {
            errs.push(FieldError::new(
                format!("spec.resources.requests.{name}"),
                format!("request {} exceeds limit {}", request.0, limit.0),
            ));
        }
    }
}

fn check_pod_extras(spec: &RaftClusterSpec, errs: &mut Vec<FieldError>) {
    if let Some(class) = &spec.priority_class_name
        && !is_dns1123_subdomain(class)
    {
        errs.push(FieldError::new(
            "spec.priorityClassName",
            "must be a DNS subdomain name (lowercase letters, digits, '-' and '.')",
        ));
    }
    for (i, tol) in spec.tolerations.iter().flatten().enumerate() {
        let op = tol.operator.as_deref().unwrap_or("Equal");
        let field = format!("spec.tolerations[{i}]");
        match op {
            "Exists" if tol.value.as_deref().is_some_and(|v| !v.is_empty()) => {
                errs.push(FieldError::new(
                    format!("{field}.value"),
                    "must be empty when operator is Exists",
                ))
            }
            "Equal" if tol.key.as_deref().unwrap_or("").is_empty() => errs.push(FieldError::new(
                format!("{field}.key"),
                "an empty key requires operator Exists",
            )),
            "Exists" | "Equal" => {}
            other => errs.push(FieldError::new(
                format!("{field}.operator"),
                format!("{other:?} is not Exists or Equal"),
            )),
        }
        if let Some(effect) = tol.effect.as_deref()
            && !["", "NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect)
        {
            errs.push(FieldError::new(
                format!("{field}.effect"),
                format!("{effect:?} is not NoSchedule, PreferNoSchedule or NoExecute"),
            ));
        }
    }
    for key in spec.node_selector.iter().flat_map(|m| m.keys()) {
        if !is_qualified_name(key) {
            errs.push(FieldError::new(
                format!("spec.nodeSelector[{key}]"),
                "is not a valid label key",
            ));
        }
    }
    for key in spec.pod_annotations.iter().flat_map(|m| m.keys()) {
        if !is_qualified_name(key) {
            errs.push(FieldError::new(
                format!("spec.podAnnotations[{key}]"),
                "is not a valid annotation key",
            ));
        }
    }
}

fn is_dns1035_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b[b.len() - 1] != b'-'
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// `[prefix/]name` as Kubernetes label and annotation keys require.
fn is_qualified_name(key: &str) -> bool {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let b = name.as_bytes();
    let name_ok = !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
    name_ok && prefix.is_none_or(|p| !p.is_empty() && is_dns1123_subdomain(p))
}
