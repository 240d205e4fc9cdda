//! The `RaftCluster` custom resource.
