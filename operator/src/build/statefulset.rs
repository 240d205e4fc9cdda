//! The StatefulSet that runs one `raft-node` pod per member.
//!
//! The StatefulSet only keeps pods and volumes alive; the operator decides membership and
//! restart order. Hence `Parallel` (OrderedReady would stall a scale-up behind any unready
//! pod) and `OnDelete` (the operator deletes pods one at a time, followers first, leader
//! last after a transfer), and a size chosen by the planner, never read from the spec.

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, Container, ContainerPort, EmptyDirVolumeSource, HTTPGetAction,
    Lifecycle, LifecycleHandler, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodAffinityTerm,
    PodAntiAffinity, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile,
    SecurityContext, Volume, VolumeMount, VolumeResourceRequirements, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::meta::{ClusterIdentity, labels, peer_service_name, selector_labels};
use super::{CLIENT_PORT, CLIENT_PORT_NAME, HTTP_PORT, HTTP_PORT_NAME, PEER_PORT, PEER_PORT_NAME};
use crate::crd::{RaftClusterSpec, ReclaimPolicy};

/// The member container.
pub const CONTAINER_NAME: &str = "raft-node";
/// Name of the volume claim template, and so the prefix of every member's PVC.
pub const DATA_VOLUME: &str = "data";
/// Where the member's volume is mounted: `--data-dir`.
pub const DATA_DIR: &str = "/var/lib/raft";
/// The process is up. Startup and liveness probe.
pub const HEALTH_PATH: &str = "/healthz";
/// Member of the configuration and caught up. Readiness probe.
pub const READINESS_PATH: &str = "/readyz";
/// preStop hook: a leader hands leadership to its most caught-up voter and answers once it
/// has stepped down (or at once on a follower). An HTTP hook rather than an exec of
/// `raftctl` so the image needs no shell or second binary. raft-node does the same on
/// SIGTERM; the hook runs it while the pod is still an endpoint and before the kill clock
/// of a slow shutdown starts.
pub const PRESTOP_PATH: &str = "/prestop";
/// uid and gid of the distroless `nonroot` user.
pub const RUN_AS_ID: i64 = 65532;
/// Room for the preStop transfer plus a clean WAL close.
pub const TERMINATION_GRACE_SECONDS: i64 = 30;
/// Pod annotation holding [`template_hash`]; the planner restarts pods whose value differs.
pub const TEMPLATE_HASH_ANNOTATION: &str = "kuberaft.io/pod-template-hash";
/// Mixed into [`template_hash`]. Bump it when a builder change must reach running pods
/// (a new probe, a new flag); pods then roll, one at a time, like an image upgrade.
const TEMPLATE_GENERATION: u32 = 1;

/// A stable hash of every spec field the pod template is made from, so that editing any
/// of them (resources, Raft timing, scheduling, pod annotations, pull policy) rolls the
/// pods. Stable across platforms and operator builds (FNV-1a over canonical JSON), so an
/// operator restart or upgrade never rolls pods by itself.
pub fn template_hash(spec: &RaftClusterSpec) -> String {
    use std::hash::Hasher;
    let inputs = serde_json::json!({
        "generation": TEMPLATE_GENERATION,
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy.map(|p| p.as_str()),
        "resources": spec.resources,
        "raft": spec.raft,
        "snapshotEntryThreshold": spec.snapshot.entry_threshold,
        "nodeSelector": spec.node_selector,
        "tolerations": spec.tolerations,
        "podAnnotations": spec.pod_annotations,
        "priorityClassName": spec.priority_class_name,
    });
    let mut h = fnv::FnvHasher::default();
    h.write(inputs.to_string().as_bytes());
    format!("{:016x}", h.finish())
}

/// The StatefulSet `<name>` with `replicas` pods, the size the planner decided.
pub fn statefulset(id: &ClusterIdentity, spec: &RaftClusterSpec, replicas: i32) -> StatefulSet {
    let reclaim = match spec.storage.reclaim_policy {
        ReclaimPolicy::Retain => "Retain",
        ReclaimPolicy::Delete => "Delete",
    };
    StatefulSet {
        metadata: id.object_meta(id.name.clone()),
        spec: StatefulSetSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(selector_labels(id)),
                match_expressions: None,
            },
            service_name: Some(peer_service_name(&id.name)),
            pod_management_policy: Some("Parallel".to_owned()),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("OnDelete".to_owned()),
                rolling_update: None,
            }),
            // With Retain, a later scale-up finds the old claim holding a removed member's
            // identity; the planner refuses to use it until someone deletes the claim.
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_scaled: Some(reclaim.to_owned()),
                    when_deleted: Some(reclaim.to_owned()),
                },
            ),
            volume_claim_templates: Some(vec![volume_claim_template(id, spec)]),
            template: pod_template(id, spec),
            ..StatefulSetSpec::default()
        },
        status: None,
    }
}

fn volume_claim_template(id: &ClusterIdentity, spec: &RaftClusterSpec) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(DATA_VOLUME.to_owned()),
            labels: Some(selector_labels(id)),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
            storage_class_name: spec.storage.storage_class_name.clone(),
            volume_mode: Some("Filesystem".to_owned()),
            resources: Some(VolumeResourceRequirements {
                requests: Some([("storage".to_owned(), spec.storage.size.clone())].into()),
                limits: None,
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    }
}

fn pod_template(id: &ClusterIdentity, spec: &RaftClusterSpec) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels(id)),
            annotations: Some(pod_annotations(spec)),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            containers: vec![container(id, spec)],
            volumes: Some(vec![Volume {
                // The root filesystem is read-only; a scratch /tmp keeps libraries that
                // write temp files working.
                name: "tmp".to_owned(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Volume::default()
            }]),
            affinity: Some(anti_affinity(id)),
            node_selector: spec.node_selector.clone(),
            tolerations: spec.tolerations.clone(),
            priority_class_name: spec.priority_class_name.clone(),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(RUN_AS_ID),
                run_as_group: Some(RUN_AS_ID),
                // Makes the data volume writable by the non-root user.
                fs_group: Some(RUN_AS_ID),
                fs_group_change_policy: Some("OnRootMismatch".to_owned()),
                seccomp_profile: Some(runtime_default()),
                ..PodSecurityContext::default()
            }),
            // Members never call the Kubernetes API.
            automount_service_account_token: Some(false),
            // Service links would inject variables for every Service in the namespace.
            enable_service_links: Some(false),
            termination_grace_period_seconds: Some(TERMINATION_GRACE_SECONDS),
            ..PodSpec::default()
        }),
    }
}

/// The user's pod annotations plus the template hash (which wins over a user's value).
fn pod_annotations(spec: &RaftClusterSpec) -> std::collections::BTreeMap<String, String> {
    let mut annotations = spec.pod_annotations.clone().unwrap_or_default();
    annotations.insert(TEMPLATE_HASH_ANNOTATION.to_owned(), template_hash(spec));
    annotations
}

fn container(id: &ClusterIdentity, spec: &RaftClusterSpec) -> Container {
    Container {
        name: CONTAINER_NAME.to_owned(),
        image: Some(spec.image.clone()),
        image_pull_policy: spec.image_pull_policy.map(|p| p.as_str().to_owned()),
        env: Some(super::env::container_env(id, spec)),
        ports: Some(vec![
            container_port(PEER_PORT_NAME, PEER_PORT),
            container_port(CLIENT_PORT_NAME, CLIENT_PORT),
            container_port(HTTP_PORT_NAME, HTTP_PORT),
        ]),
        resources: spec.resources.clone(),
        volume_mounts: Some(vec![
            VolumeMount {
                name: DATA_VOLUME.to_owned(),
                mount_path: DATA_DIR.to_owned(),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: "tmp".to_owned(),
                mount_path: "/tmp".to_owned(),
                ..VolumeMount::default()
            },
        ]),
        // Replaying a long WAL may take minutes: liveness only starts once the process
        // answers, so a slow recovery is not killed and restarted forever.
        startup_probe: Some(probe(HEALTH_PATH, 2, 150)),
        liveness_probe: Some(probe(HEALTH_PATH, 10, 3)),
        readiness_probe: Some(probe(READINESS_PATH, 5, 2)),
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                http_get: Some(http_get(PRESTOP_PATH)),
                ..LifecycleHandler::default()
            }),
            ..Lifecycle::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            run_as_user: Some(RUN_AS_ID),
            run_as_group: Some(RUN_AS_ID),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                add: None,
            }),
            seccomp_profile: Some(runtime_default()),
            ..SecurityContext::default()
        }),
        ..Container::default()
    }
}

/// Preferred, not required: a cluster with fewer nodes than members still schedules, just
/// with less failure isolation.
fn anti_affinity(id: &ClusterIdentity) -> Affinity {
    Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: PodAffinityTerm {
                        label_selector: Some(LabelSelector {
                            match_labels: Some(selector_labels(id)),
                            match_expressions: None,
                        }),
                        topology_key: "kubernetes.io/hostname".to_owned(),
                        ..PodAffinityTerm::default()
                    },
                },
            ]),
            required_during_scheduling_ignored_during_execution: None,
        }),
        ..Affinity::default()
    }
}

fn container_port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_owned()),
        container_port: port,
        protocol: Some("TCP".to_owned()),
        ..ContainerPort::default()
    }
}

fn http_get(path: &str) -> HTTPGetAction {
    HTTPGetAction {
        path: Some(path.to_owned()),
        port: IntOrString::String(HTTP_PORT_NAME.to_owned()),
        scheme: Some("HTTP".to_owned()),
        ..HTTPGetAction::default()
    }
}

fn probe(path: &str, period_seconds: i32, failure_threshold: i32) -> Probe {
    Probe {
        http_get: Some(http_get(path)),
        period_seconds: Some(period_seconds),
        failure_threshold: Some(failure_threshold),
        timeout_seconds: Some(2),
        ..Probe::default()
    }
}

fn runtime_default() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".to_owned(),
        localhost_profile: None,
    }
}
