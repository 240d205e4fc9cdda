//! The reconciler: kube glue around the pure planner and builders, staged like
//! stackabletech's zookeeper-operator, one submodule per stage.
//!
//! ```text
//!  RaftCluster ─► validate ─► observe ─► convert ─► plan ─► apply ONE step ─► status ─► Events
//!                 (crd)       (objects +  (pure)    (pure)   (SSA, delete,    (SSA on    (Recorder)
//!                             Admin.Status)                  Admin call)      /status)
//! ```
//!
//! [`controller`] runs it under kube-runtime with a finalizer and error backoff; the pods'
//! Admin API is reached only through [`MemberAdmin`], so tests substitute a fake cluster.

pub mod admin;
pub mod apply;
pub mod conditions;
pub mod context;
pub mod controller;
pub mod convert;
pub mod cycle;
pub mod error;
pub mod events;
pub mod leader;
pub mod metrics;
pub mod objects;
pub mod observe;
pub mod rbac;
pub mod status;

#[cfg(test)]
mod fixtures;

pub use admin::{AdminConfig, GrpcAdmin, MemberAdmin, PodEndpoint};
pub use context::{Clock, Context, FIELD_MANAGER, Settings};
pub use controller::{FINALIZER, error_policy, reconcile, run};
pub use error::{Error, Result};
pub use metrics::Metrics;
