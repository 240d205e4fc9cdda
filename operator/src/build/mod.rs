//! PURE builders: the StatefulSet, Services and PodDisruptionBudget of a RaftCluster.
//!
//! Inputs are the cluster's identity, its spec and what the planner decided (the StatefulSet
//! size, the observed voters); outputs are k8s-openapi objects ready for server-side apply.
//! Nothing here reads a clock or talks to the apiserver, so tests assert exact objects.

pub mod env;
mod meta;
mod pdb;
mod service;
mod statefulset;

pub use meta::{
    APP_NAME, COMPONENT, ClusterIdentity, IdentityError, LABEL_COMPONENT, LABEL_INSTANCE,
    LABEL_MANAGED_BY, LABEL_NAME, MANAGER, client_address, client_service_name, labels,
    owner_reference, peer_address, peer_service_name, pod_name, pvc_name, selector_labels,
    selector_string,
};
pub use pdb::{failure_tolerance, pod_disruption_budget};
pub use service::{client_service, peer_service};
pub use statefulset::{
    CONTAINER_NAME, DATA_DIR, DATA_VOLUME, HEALTH_PATH, PRESTOP_PATH, READINESS_PATH, RUN_AS_ID,
    TEMPLATE_HASH_ANNOTATION, TERMINATION_GRACE_SECONDS, statefulset, template_hash,
};

/// Raft traffic between members only.
pub const PEER_PORT: i32 = 7000;
/// KV and Admin gRPC: clients, and the operator's Admin calls.
pub const CLIENT_PORT: i32 = 7001;
/// `/healthz`, `/readyz`, `/prestop` and `/metrics`.
pub const HTTP_PORT: i32 = 7002;
/// Port names, shared by the container, the Services and the probes.
pub const PEER_PORT_NAME: &str = "peer";
/// See [`PEER_PORT_NAME`].
pub const CLIENT_PORT_NAME: &str = "client";
/// See [`PEER_PORT_NAME`].
pub const HTTP_PORT_NAME: &str = "http";
