//! The operator's RBAC, as ONE list: exactly the API calls the code makes. The Helm chart's
//! ClusterRole is generated from (or checked against) [`RULES`], and the reconcile tests
//! check both ways that every call they see is granted and every grant is used.

/// One RBAC rule: verbs on a resource of an API group (`""` is the core group).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    pub api_group: &'static str,
    pub resource: &'static str,
    pub verbs: &'static [&'static str],
}

/// Every permission the operator needs. Why each verb:
/// - `list`/`watch`: the controller's watches (`controller::watched`);
/// - `get`: observe reads the StatefulSet, the Services and the PDB by name;
/// - `patch` + `create`: server-side apply (the apiserver authorizes an apply that creates
///   the object as `create` too); `patch` alone on RaftClusters (the finalizer) and their
///   status (the status stage);
/// - `delete`: RestartPod and DeletePvc;
/// - PVCs are listed (by name) but not watched;
/// - events: kube-runtime's Recorder creates an Event, then patches its series;
/// - leases: leader election gets, creates and patches (renews) the Lease.
pub const RULES: &[Rule] = &[
    Rule {
        api_group: "kuberaft.io",
        resource: "raftclusters",
        verbs: &["list", "watch", "patch"],
    },
    Rule {
        api_group: "kuberaft.io",
        resource: "raftclusters/status",
        verbs: &["patch"],
    },
    Rule {
        api_group: "apps",
        resource: "statefulsets",
        verbs: &["get", "list", "watch", "create", "patch"],
    },
    Rule {
        api_group: "",
        resource: "services",
        verbs: &["get", "list", "watch", "create", "patch"],
    },
    Rule {
        api_group: "policy",
        resource: "poddisruptionbudgets",
        verbs: &["get", "list", "watch", "create", "patch"],
    },
    Rule {
        api_group: "",
        resource: "pods",
        verbs: &["list", "watch", "delete"],
    },
    Rule {
        api_group: "",
        resource: "persistentvolumeclaims",
        verbs: &["list", "delete"],
    },
    Rule {
        api_group: "events.k8s.io",
        resource: "events",
        verbs: &["create", "patch"],
    },
    Rule {
        api_group: "coordination.k8s.io",
        resource: "leases",
        verbs: &["get", "create", "patch"],
    },
];

/// Whether `RULES` grants `verb` on `resource` (with `/subresource`) of `api_group`.
pub fn allows(api_group: &str, resource: &str, verb: &str) -> bool {
    RULES
        .iter()
        .any(|r| r.api_group == api_group && r.resource == resource && r.verbs.contains(&verb))
}

/// Every granted `(apiGroup, resource, verb)`, for comparing with the calls observed.
pub fn grants() -> Vec<(&'static str, &'static str, &'static str)> {
    RULES
        .iter()
        .flat_map(|r| r.verbs.iter().map(move |v| (r.api_group, r.resource, *v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controller_watches_are_granted() {
        for (group, resource) in super::super::controller::watched() {
            for verb in ["list", "watch"] {
                assert!(allows(&group, &resource, verb), "{verb} {group}/{resource}");
            }
        }
    }

    #[test]
    fn no_rule_is_listed_twice() {
        let mut seen = std::collections::BTreeSet::new();
        for r in RULES {
            assert!(seen.insert((r.api_group, r.resource)), "{r:?}");
        }
    }
}
