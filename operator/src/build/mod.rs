//! PURE builders: StatefulSet, Services and PodDisruptionBudget from a RaftCluster.
