//! The KubeRaft operator: the `RaftCluster` CRD, the pure planner and builders, and the
//! reconciler that applies them.

pub mod build;
pub mod crd;
pub mod planner;
pub mod playground;
pub mod reconcile;
