//! Operator metrics, served at `/metrics` by the binary: reconciles by step, errors by
//! reason (the error variant names), reconcile durations, and per cluster the voters,
//! learners and failure tolerance, the numbers an alert on "one more failure loses quorum"
//! needs.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::planner::Health;

/// One RaftCluster.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterLabels {
    pub namespace: String,
    pub name: String,
}

/// The step a reconcile applied (`Wait` and `None` included).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabels {
    pub step: String,
}

/// Why a reconcile failed: [`super::Error::label`].
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub reason: String,
}

/// Cheap to clone: every handle shares the same series.
#[derive(Clone, Debug)]
pub struct Metrics {
    pub reconciles: Family<StepLabels, Counter>,
    pub errors: Family<ErrorLabels, Counter>,
    pub duration: Histogram,
    pub voters: Family<ClusterLabels, Gauge>,
    pub learners: Family<ClusterLabels, Gauge>,
    pub failure_tolerance: Family<ClusterLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            reconciles: Family::default(),
            errors: Family::default(),
            // 5 ms .. ~40 s: a reconcile is a few API reads plus Admin calls whose
            // deadlines reach 15-30 s.
            duration: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            voters: Family::default(),
            learners: Family::default(),
            failure_tolerance: Family::default(),
        }
    }
}

impl Metrics {
    /// Registers every series under the `kuberaft_operator` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("kuberaft_operator");
        r.register(
            "reconciles",
            "Reconciles, by the step applied",
            self.reconciles.clone(),
        );
        r.register(
            "reconcile_errors",
            "Failed reconciles, by reason",
            self.errors.clone(),
        );
        r.register(
            "reconcile_duration_seconds",
            "Duration of one reconcile",
            self.duration.clone(),
        );
        r.register(
            "cluster_voters",
            "Voters in the Raft configuration",
            self.voters.clone(),
        );
        r.register(
            "cluster_learners",
            "Learners in the Raft configuration",
            self.learners.clone(),
        );
        r.register(
            "cluster_failure_tolerance",
            "Voters that may fail without losing quorum",
            self.failure_tolerance.clone(),
        );
    }

    pub fn reconciled(&self, step: &str, took: Duration) {
        self.reconciles
            .get_or_create(&StepLabels {
                step: step.to_owned(),
            })
            .inc();
        self.duration.observe(took.as_secs_f64());
    }

    pub fn failed(&self, reason: &str, took: Duration) {
        self.errors
            .get_or_create(&ErrorLabels {
                reason: reason.to_owned(),
            })
            .inc();
        self.duration.observe(took.as_secs_f64());
    }

    pub fn cluster(&self, namespace: &str, name: &str, health: &Health) {
        let l = labels(namespace, name);
        self.voters.get_or_create(&l).set(i64::from(health.voters));
        self.learners
            .get_or_create(&l)
            .set(i64::from(health.learners));
        self.failure_tolerance
            .get_or_create(&l)
            .set(i64::from(health.failure_tolerance));
    }

    /// Drops a deleted cluster's series, so `/metrics` does not report it forever.
    pub fn forget(&self, namespace: &str, name: &str) {
        let l = labels(namespace, name);
        self.voters.remove(&l);
        self.learners.remove(&l);
        self.failure_tolerance.remove(&l);
    }
}

fn labels(namespace: &str, name: &str) -> ClusterLabels {
    ClusterLabels {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(m: &Metrics) -> String {
        let mut registry = Registry::default();
        m.register(&mut registry);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        out
    }

    #[test]
    fn cluster_series_appear_and_are_forgotten() {
        let m = Metrics::default();
        let health = Health {
            voters: 3,
            healthy_voters: 3,
            learners: 1,
            failure_tolerance: 1,
        };
        m.cluster("ns", "demo", &health);
        m.reconciled("AddLearner", Duration::from_millis(20));
        m.failed("AdminTimeout", Duration::from_millis(30));
        let out = text(&m);
        assert!(
            out.contains(r#"kuberaft_operator_cluster_voters{namespace="ns",name="demo"} 3"#),
            "{out}"
        );
        assert!(
            out.contains(r#"kuberaft_operator_cluster_learners{namespace="ns",name="demo"} 1"#)
        );
        assert!(out.contains(
            r#"kuberaft_operator_cluster_failure_tolerance{namespace="ns",name="demo"} 1"#
        ));
        assert!(out.contains(r#"kuberaft_operator_reconciles_total{step="AddLearner"} 1"#));
        assert!(
            out.contains(r#"kuberaft_operator_reconcile_errors_total{reason="AdminTimeout"} 1"#)
        );
        assert!(out.contains("kuberaft_operator_reconcile_duration_seconds_count 2"));
        m.forget("ns", "demo");
        assert!(!text(&m).contains(r#"name="demo""#));
    }
}
