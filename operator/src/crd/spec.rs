//! `RaftClusterSpec`: what the user asks for. Every optional knob has a schema default, so
//! the apiserver stores a complete object and `kubectl get -o yaml` shows the effective
//! values.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::status::RaftClusterStatus;

/// Desired member count when the user leaves `replicas` out.
pub const DEFAULT_REPLICAS: i32 = 3;
/// Volume size per member when the user leaves `storage.size` out.
pub const DEFAULT_STORAGE_SIZE: &str = "1Gi";
/// Log entries between automatic snapshots.
pub const DEFAULT_SNAPSHOT_ENTRIES: i64 = 10_000;
/// Raft tick length; elections and heartbeats are counted in ticks.
pub const DEFAULT_TICK_MILLIS: i32 = 100;
/// Ticks without a heartbeat before a follower campaigns (1 s at the default tick).
pub const DEFAULT_ELECTION_TICKS: i32 = 10;
/// Ticks between leader heartbeats.
pub const DEFAULT_HEARTBEAT_TICKS: i32 = 1;
/// The quantity grammar of `k8s.io/apimachinery/pkg/api/resource`, for the schema.
pub const QUANTITY_PATTERN: &str = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$";
/// Longest cluster name. Pods of a StatefulSet carry the label
/// `controller-revision-hash: <name>-<10-char hash>`, and label values stop at 63 characters.
pub const MAX_NAME_LEN: usize = 52;

/// Desired state of a RaftCluster.
///
/// `spec.replicas` is the only desired size: `kubectl scale` edits it through the scale
/// subresource and the operator turns each edit into one safe membership change at a time.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kuberaft.io",
    version = "v1alpha1",
    kind = "RaftCluster",
    namespaced,
    shortname = "raft",
    status = "RaftClusterStatus",
    derive = "PartialEq",
    doc = "A replicated Raft cluster run by the KubeRaft operator as a StatefulSet of raft-node pods.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".spec.replicas", description = "Desired members"),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyReplicas", description = "Members that are part of the configuration and caught up"),
    printcolumn(name = "Leader", type_ = "string", json_path = ".status.leader", description = "Current Raft leader"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Tolerance", type_ = "integer", json_path = ".status.failureTolerance", description = "Members that may fail without losing quorum"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("self.metadata.name.size() <= 52")
        .message("metadata.name must be at most 52 characters: StatefulSet pods label themselves <name>-<revision hash>, capped at 63"),
    validation = Rule::new("self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')")
        .message("metadata.name must be a DNS-1035 label (lowercase letters, digits and '-', starting with a letter): it names the cluster's Services"),
)]
#[x_kube(validation = Rule::new(
    "!has(self.minFailureTolerance) || !has(self.replicas) || 2 * self.minFailureTolerance + 1 <= self.replicas"
)
// A message expression so `kubectl scale` below the floor says which numbers clash.
.message(Message::Expression(
    "'spec.minFailureTolerance ' + string(self.minFailureTolerance) + ' needs at least ' + string(2 * self.minFailureTolerance + 1) + ' replicas, spec.replicas is ' + string(self.replicas)".into()
))
.field_path(".minFailureTolerance"))]
#[serde(rename_all = "camelCase")]
pub struct RaftClusterSpec {
    /// Number of voting members. Edit it with `kubectl scale`; the operator adds or removes
    /// one member at a time and refuses a shrink that would lose a healthy majority.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1))]
    pub replicas: i32,

    /// Container image of `raft-node`.
    #[x_kube(validation = Rule::new("self.size() > 0").message("spec.image must not be empty"))]
    pub image: String,

    /// Image pull policy of the `raft-node` container; Kubernetes' default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<ImagePullPolicy>,

    /// CPU and memory of each member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Each member's persistent volume.
    #[serde(default)]
    pub storage: StorageSpec,

    /// Automatic and on-demand snapshots.
    #[serde(default)]
    pub snapshot: SnapshotSpec,

    /// Raft timing, passed to every member.
    #[serde(default)]
    pub raft: RaftTiming,

    /// Failures the cluster must survive. A scale-down that would leave fewer than
    /// `2*t+1` voters is refused.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub min_failure_tolerance: i32,

    /// Stop all membership changes and restarts; the operator only reports status.
    #[serde(default)]
    pub paused: bool,

    /// Node labels the pods must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,

    /// Taints the pods tolerate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,

    /// Extra annotations on every pod (for example for a service mesh or a scraper).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_annotations: Option<BTreeMap<String, String>>,

    /// PriorityClass of the pods, so consensus members are not the first to be preempted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
}

/// When the kubelet pulls the image.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ImagePullPolicy {
    /// Pull on every start.
    Always,
    /// Pull only when the node lacks the image.
    IfNotPresent,
    /// Never pull.
    Never,
}

impl ImagePullPolicy {
    /// The value Kubernetes expects in `container.imagePullPolicy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "Always",
            Self::IfNotPresent => "IfNotPresent",
            Self::Never => "Never",
        }
    }
}

/// Per-member persistent storage.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[x_kube(validation = Rule::new(
    "has(self.storageClassName) == has(oldSelf.storageClassName) && (!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName)"
)
.message("spec.storage.storageClassName is immutable: volumes already provisioned cannot move to another class")
.field_path(".storageClassName"))]
#[x_kube(validation = Rule::new("self.size == oldSelf.size")
.message("spec.storage.size is immutable: the operator does not resize volumes (a StatefulSet's volume claim template cannot change)")
.field_path(".size"))]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Requested size of each member's volume, a Kubernetes quantity such as `10Gi`.
    // kube marks optional int-or-string properties nullable, so the apiserver can store an
    // explicit null; read it as the default rather than failing the whole watch.
    #[serde(default = "default_storage_size", deserialize_with = "size_or_default")]
    #[schemars(extend("pattern" = QUANTITY_PATTERN))]
    pub size: Quantity,

    /// StorageClass of the volumes; the cluster default when unset. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,

    /// What happens to a member's volume when it is scaled away or the cluster is deleted.
    #[serde(default)]
    pub reclaim_policy: ReclaimPolicy,
}

impl Default for StorageSpec {
    fn default() -> Self {
        Self {
            size: default_storage_size(),
            storage_class_name: None,
            reclaim_policy: ReclaimPolicy::default(),
        }
    }
}

/// Fate of a member's PersistentVolumeClaim.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ReclaimPolicy {
    /// Keep the claim (and its data) after scale-down or deletion.
    Retain,
    /// Delete the claim once its member has left the configuration.
    #[default]
    Delete,
}

/// Snapshot policy.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotSpec {
    /// Applied log entries after which a member snapshots and compacts its log.
    #[serde(default = "default_snapshot_entries")]
    #[schemars(range(min = 1))]
    pub entry_threshold: i64,

    /// Set a new value to ask every member for a snapshot now; the result appears in
    /// `status.lastSnapshot` with the same id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub request_id: Option<String>,
}

impl Default for SnapshotSpec {
    fn default() -> Self {
        Self {
            entry_threshold: DEFAULT_SNAPSHOT_ENTRIES,
            request_id: None,
        }
    }
}

/// Raft timing. Elections and heartbeats are counted in ticks so the consensus core never
/// reads a clock.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[x_kube(validation = Rule::new(
    "!has(self.heartbeatTicks) || !has(self.electionTicks) || self.heartbeatTicks < self.electionTicks"
)
.message("spec.raft.heartbeatTicks must be less than spec.raft.electionTicks, or followers time out between heartbeats")
.field_path(".heartbeatTicks"))]
#[serde(rename_all = "camelCase")]
pub struct RaftTiming {
    /// Length of one tick in milliseconds.
    #[serde(default = "default_tick_millis")]
    #[schemars(range(min = 1, max = 60000))]
    pub tick_millis: i32,

    /// Ticks without hearing from a leader before a follower starts an election.
    #[serde(default = "default_election_ticks")]
    #[schemars(range(min = 2))]
    pub election_ticks: i32,

    /// Ticks between the leader's heartbeats.
    #[serde(default = "default_heartbeat_ticks")]
    #[schemars(range(min = 1))]
    pub heartbeat_ticks: i32,
}

impl Default for RaftTiming {
    fn default() -> Self {
        Self {
            tick_millis: DEFAULT_TICK_MILLIS,
            election_ticks: DEFAULT_ELECTION_TICKS,
            heartbeat_ticks: DEFAULT_HEARTBEAT_TICKS,
        }
    }
}

impl RaftClusterSpec {
    /// A spec with every default and the given image, as the apiserver would store it.
    pub fn with_image(image: impl Into<String>) -> Self {
        Self {
            replicas: DEFAULT_REPLICAS,
            image: image.into(),
            image_pull_policy: None,
            resources: None,
            storage: StorageSpec::default(),
            snapshot: SnapshotSpec::default(),
            raft: RaftTiming::default(),
            min_failure_tolerance: 0,
            paused: false,
            node_selector: None,
            tolerations: None,
            pod_annotations: None,
            priority_class_name: None,
        }
    }
}

fn default_replicas() -> i32 {
    DEFAULT_REPLICAS
}

fn default_storage_size() -> Quantity {
    Quantity(DEFAULT_STORAGE_SIZE.to_owned())
}

fn size_or_default<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Quantity, D::Error> {
    Ok(Option::<Quantity>::deserialize(d)?.unwrap_or_else(default_storage_size))
}

fn default_snapshot_entries() -> i64 {
    DEFAULT_SNAPSHOT_ENTRIES
}

fn default_tick_millis() -> i32 {
    DEFAULT_TICK_MILLIS
}

fn default_election_ticks() -> i32 {
    DEFAULT_ELECTION_TICKS
}

fn default_heartbeat_ticks() -> i32 {
    DEFAULT_HEARTBEAT_TICKS
}
