//! Writing the owned objects: server-side apply (field manager `kuberaft-operator`) of the
//! builders' output, and deletes guarded by the observed uid. The Services and the PDB are
//! re-applied only when they drifted from what the builders produce, so a steady cluster
//! costs no writes.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::context::FIELD_MANAGER;
use super::error::{Error, Result};
use super::observe::World;
use crate::build::{
    ClusterIdentity, client_service, peer_service, pod_disruption_budget, pvc_name, statefulset,
};
use crate::crd::RaftClusterSpec;
use crate::planner::Health;

/// Server-side apply with force: the operator owns these fields, and a human's `kubectl
/// edit` of them is drift to undo, not a conflict to stop on.
async fn apply<K>(api: &Api<K>, name: &str, obj: &K) -> Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(obj),
    )
    .await
    .map_err(|source| Error::Apply {
        what: format!("{} {name}", K::kind(&())),
        source,
    })?;
    Ok(())
}

/// The StatefulSet with `replicas` pods and the current spec's template. Its claim
/// templates are immutable once created: an existing StatefulSet keeps its own, so a
/// changed `storage.size` cannot make every later write fail.
pub async fn apply_statefulset(
    client: &kube::Client,
    id: &ClusterIdentity,
    spec: &RaftClusterSpec,
    replicas: u32,
    existing: Option<&StatefulSet>,
) -> Result<()> {
    let mut sts = statefulset(id, spec, i32::try_from(replicas).unwrap_or(i32::MAX));
    if let Some(claims) = existing.and_then(|s| s.spec.volume_claim_templates.clone()) {
        sts.spec.volume_claim_templates = Some(claims);
    }
    let api = Api::<StatefulSet>::namespaced(client.clone(), &id.namespace);
    apply(&api, &id.name, &sts).await
}

/// Creates or repairs the two Services and the PodDisruptionBudget. The budget follows the
/// observed health every reconcile: a cluster that lost a member allows fewer evictions.
pub async fn sync_owned(
    client: &kube::Client,
    id: &ClusterIdentity,
    world: &World,
    health: &Health,
    services: bool,
) -> Result<Vec<String>> {
    let mut written = Vec::new();
    if services {
        let api = Api::<Service>::namespaced(client.clone(), &id.namespace);
        for (want, have) in [
            (peer_service(id), world.peer_service.as_ref()),
            (client_service(id), world.client_service.as_ref()),
        ] {
            if !up_to_date(&want, have) {
                let name = want.metadata.name.clone().unwrap_or_default();
                apply(&api, &name, &want).await?;
                written.push(format!("Service {name}"));
            }
        }
    }
    let pdb = pod_disruption_budget(id, health.voters, health.healthy_voters);
    if !up_to_date(&pdb, world.pdb.as_ref()) {
        let api = Api::<PodDisruptionBudget>::namespaced(client.clone(), &id.namespace);
        apply(&api, &id.name, &pdb).await?;
        written.push(format!("PodDisruptionBudget {}", id.name));
    }
    Ok(written)
}

/// Deletes the pod, only if it is still the one observed (its uid): a pod the StatefulSet
/// already recreated must not be deleted a second time. Gone or replaced counts as done.
pub async fn delete_pod(client: &kube::Client, id: &ClusterIdentity, pod: &Pod) -> Result<()> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let params = DeleteParams {
        preconditions: pod.metadata.uid.clone().map(|uid| Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    let api = Api::<Pod>::namespaced(client.clone(), &id.namespace);
    tolerate_gone(
        api.delete(&name, &params).await.map(drop),
        format!("Pod {name}"),
    )
}

/// Deletes the claim of `ordinal`. The claim stays (protected) until its pod lets go.
pub async fn delete_pvc(client: &kube::Client, id: &ClusterIdentity, ordinal: u32) -> Result<()> {
    let name = pvc_name(&id.name, ordinal);
    let api = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &id.namespace);
    tolerate_gone(
        api.delete(&name, &DeleteParams::default()).await.map(drop),
        format!("PersistentVolumeClaim {name}"),
    )
}

/// 404 (already gone) and 409 (a uid precondition failed: replaced) are success for an
/// idempotent delete.
fn tolerate_gone(result: Result<(), kube::Error>, what: String) -> Result<()> {
    match result {
        Ok(()) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(source) => Err(Error::Apply { what, source }),
    }
}

/// The existing object holds every field the builder sets, with the same values. The
/// apiserver adds defaults but never drops what was applied, so "built ⊆ existing" means
/// applying again would change nothing.
fn up_to_date<K: Serialize>(built: &K, existing: Option<&K>) -> bool {
    let Some(existing) = existing else {
        return false;
    };
    match (serde_json::to_value(built), serde_json::to_value(existing)) {
        (Ok(mut want), Ok(have)) => {
            // Identity and bookkeeping are the server's; compare what we set.
            if let Some(meta) = want.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.retain(|k, _| matches!(k.as_str(), "labels" | "ownerReferences"));
            }
            subset(&want, &have)
        }
        _ => false,
    }
}

/// `want` is contained in `have`: objects key by key, arrays element by element (same
/// length), scalars equal.
pub(crate) fn subset(want: &Value, have: &Value) -> bool {
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => w
            .iter()
            .all(|(k, v)| v.is_null() || h.get(k).is_some_and(|hv| subset(v, hv))),
        (Value::Array(w), Value::Array(h)) => {
            w.len() == h.len() && w.iter().zip(h).all(|(a, b)| subset(a, b))
        }
        (w, h) => w == h,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subset_ignores_server_defaults_but_not_changes() {
        let want =
            json!({"spec": {"ports": [{"name": "client", "port": 7001}], "clusterIP": "None"}});
        let have = json!({"spec": {"ports": [{"name": "client", "port": 7001, "protocol": "TCP"}],
                                   "clusterIP": "None", "type": "ClusterIP"}});
        assert!(subset(&want, &have));
        let changed =
            json!({"spec": {"ports": [{"name": "client", "port": 7002}], "clusterIP": "None"}});
        assert!(!subset(&changed, &have));
        let extra = json!({"spec": {"ports": [{"name": "client", "port": 7001}, {"name": "x", "port": 1}]}});
        assert!(!subset(&extra, &have));
    }

    #[test]
    fn pdb_drift_is_seen_through_max_unavailable() {
        let id = ClusterIdentity {
            name: "demo".into(),
            namespace: "ns".into(),
            uid: "u".into(),
        };
        let mut stored = pod_disruption_budget(&id, 3, 3);
        stored.metadata.resource_version = Some("7".into());
        stored.metadata.uid = Some("x".into());
        assert!(up_to_date(&pod_disruption_budget(&id, 3, 3), Some(&stored)));
        assert!(!up_to_date(
            &pod_disruption_budget(&id, 3, 2),
            Some(&stored)
        ));
        assert!(!up_to_date(&pod_disruption_budget(&id, 3, 3), None));
    }
}
