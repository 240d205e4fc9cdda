//! The PodDisruptionBudget: voluntary evictions (node drains, cluster upgrades) may take
//! down at most as many members as the cluster can lose right now without losing quorum.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::meta::{ClusterIdentity, selector_labels};

/// Voters that may fail without losing quorum: healthy voters minus the majority of all
/// voters, never below zero. With every voter healthy this is `(voters - 1) / 2`; each
/// unhealthy voter lowers it by one. Learners never count.
pub fn failure_tolerance(voters: u32, healthy_voters: u32) -> u32 {
    let majority = voters / 2 + 1;
    healthy_voters.min(voters).saturating_sub(majority)
}

/// `<name>` budget with `maxUnavailable` = [`failure_tolerance`] of the observed voters.
///
/// Recomputed every reconcile from observation, never from `spec.replicas`: a cluster that
/// has already lost a member allows fewer evictions, and one without tolerance allows none.
/// The eviction API also subtracts pods that are unready, so an unhealthy member is counted
/// twice: the budget errs on the side of refusing an eviction, never of allowing one.
/// `IfHealthyBudget` keeps that rule for unready pods too: evicting a member that is
/// merely slow still needs budget.
pub fn pod_disruption_budget(
    id: &ClusterIdentity,
    voters: u32,
    healthy_voters: u32,
) -> PodDisruptionBudget {
    let tolerance = failure_tolerance(voters, healthy_voters);
    PodDisruptionBudget {
        metadata: id.object_meta(id.name.clone()),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(
                i32::try_from(tolerance).unwrap_or(i32::MAX),
            )),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(id)),
                match_expressions: None,
            }),
            unhealthy_pod_eviction_policy: Some("IfHealthyBudget".to_owned()),
            min_available: None,
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::failure_tolerance;

    #[test]
    fn tolerance_table() {
        // (voters, healthy, tolerance)
        for (v, h, t) in [
            (0, 0, 0),
            (1, 1, 0),
            (2, 2, 0),
            (3, 3, 1),
            (3, 2, 0),
            (3, 1, 0),
            (4, 4, 1),
            (5, 5, 2),
            (5, 4, 1),
            (5, 3, 0),
            (5, 2, 0),
            (7, 7, 3),
            (3, 9, 1), // healthy can never exceed voters
        ] {
            assert_eq!(failure_tolerance(v, h), t, "voters={v} healthy={h}");
        }
    }
}
