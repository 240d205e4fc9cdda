//! Stage 1, observe: the cluster's Kubernetes objects, then every pod's Admin.Status,
//! asked concurrently with a short deadline. Nothing here writes; [`super::convert`] turns
//! the result into the planner's `Observed`.

use std::collections::{BTreeMap, BTreeSet};

use futures::future::join_all;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Api;
use kube::api::ListParams;

use super::admin::{AdminResult, MemberAdmin, NodeStatus, PodEndpoint};
use super::context::Context;
use super::error::{Error, Result};
use crate::build::{
    CLIENT_PORT, ClusterIdentity, DATA_VOLUME, client_service_name, peer_service_name,
    selector_string,
};

/// Everything one reconcile saw.
#[derive(Clone, Debug, Default)]
pub struct World {
    pub statefulset: Option<StatefulSet>,
    /// The cluster's pods (selected by label), with a parseable ordinal, by ordinal.
    pub pods: BTreeMap<u32, Pod>,
    /// Ordinals whose claim `data-<cluster>-<n>` exists and is not being deleted.
    pub pvcs: BTreeSet<u32>,
    pub peer_service: Option<Service>,
    pub client_service: Option<Service>,
    pub pdb: Option<PodDisruptionBudget>,
    /// Admin.Status per pod name; pods without an IP were not asked and are absent.
    pub reports: BTreeMap<String, AdminResult<NodeStatus>>,
}

impl World {
    /// The pod's Admin endpoint: its IP, known from the pod itself, so a reconcile never
    /// waits on DNS for a pod that was just created.
    pub fn endpoint(&self, pod_name: &str) -> Option<PodEndpoint> {
        let pod = self
            .pods
            .values()
            .find(|p| p.metadata.name.as_deref() == Some(pod_name))?;
        endpoint_of(pod)
    }

    /// The endpoint of the pod whose node answered with `node_id`.
    pub fn endpoint_of_node(&self, node_id: u64) -> Option<PodEndpoint> {
        let (pod, _) = self
            .reports
            .iter()
            .find(|(_, r)| matches!(r, Ok(s) if s.node_id == node_id))?;
        self.endpoint(pod)
    }
}

/// `ip:7001`, bracketed for IPv6.
pub fn endpoint_of(pod: &Pod) -> Option<PodEndpoint> {
    let name = pod.metadata.name.clone()?;
    let ip = pod.status.as_ref()?.pod_ip.as_deref()?;
    let address = if ip.contains(':') {
        format!("[{ip}]:{CLIENT_PORT}")
    } else {
        format!("{ip}:{CLIENT_PORT}")
    };
    Some(PodEndpoint { pod: name, address })
}

/// The ordinal in `<cluster>-<n>`, the StatefulSet's pod naming.
pub fn ordinal_of(cluster: &str, pod_name: &str) -> Option<u32> {
    let n = pod_name.strip_prefix(cluster)?.strip_prefix('-')?;
    if n.is_empty() || (n.len() > 1 && n.starts_with('0')) {
        return None;
    }
    n.parse().ok()
}

/// Reads the objects, then asks every pod that has an IP for its status.
pub async fn observe<A: MemberAdmin>(id: &ClusterIdentity, ctx: &Context<A>) -> Result<World> {
    let ns = id.namespace.as_str();
    let client = ctx.client.clone();
    let err = |what: &'static str| move |source| Error::Observe { what, source };

    let statefulset = Api::<StatefulSet>::namespaced(client.clone(), ns)
        .get_opt(&id.name)
        .await
        .map_err(err("statefulset"))?;
    let pod_list = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&selector_string(id)))
        .await
        .map_err(err("pods"))?;
    let pods: BTreeMap<u32, Pod> = pod_list
        .items
        .into_iter()
        .filter_map(|p| Some((ordinal_of(&id.name, p.metadata.name.as_deref()?)?, p)))
        .collect();
    // By name, not label: the StatefulSet binds claims by name, so a claim is this cluster's
    // whatever its labels say.
    let claim_prefix = format!("{DATA_VOLUME}-");
    let pvcs = Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .map_err(err("persistentvolumeclaims"))?
        .items
        .into_iter()
        .filter(|c| c.metadata.deletion_timestamp.is_none())
        .filter_map(|c| {
            let name = c.metadata.name.as_deref()?;
            ordinal_of(&id.name, name.strip_prefix(&claim_prefix)?)
        })
        .collect();
    let services = Api::<Service>::namespaced(client.clone(), ns);
    let peer_service = services
        .get_opt(&peer_service_name(&id.name))
        .await
        .map_err(err("services"))?;
    let client_service = services
        .get_opt(&client_service_name(&id.name))
        .await
        .map_err(err("services"))?;
    let pdb = Api::<PodDisruptionBudget>::namespaced(client, ns)
        .get_opt(&id.name)
        .await
        .map_err(err("poddisruptionbudgets"))?;

    let endpoints: Vec<PodEndpoint> = pods.values().filter_map(endpoint_of).collect();
    let answers = join_all(endpoints.iter().map(|at| ctx.admin.status(at))).await;
    let reports = endpoints
        .into_iter()
        .zip(answers)
        .map(|(at, answer)| {
            if let Err(e) = &answer {
                tracing::debug!(pod = %at.pod, error = %e, "Admin.Status failed");
            }
            (at.pod, answer)
        })
        .collect();

    Ok(World {
        statefulset,
        pods,
        pvcs,
        peer_service,
        client_service,
        pdb,
        reports,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals_follow_statefulset_naming() {
        assert_eq!(ordinal_of("demo", "demo-0"), Some(0));
        assert_eq!(ordinal_of("demo", "demo-12"), Some(12));
        assert_eq!(ordinal_of("demo", "demo-x"), None);
        assert_eq!(ordinal_of("demo", "demo-01"), None);
        assert_eq!(ordinal_of("demo", "demo-"), None);
        assert_eq!(ordinal_of("demo", "demox-1"), None);
        // Another cluster whose name extends this one's.
        assert_eq!(ordinal_of("demo", "demo-peer-1"), None);
    }

    #[test]
    fn endpoints_use_the_pod_ip() {
        let mut pod = Pod::default();
        pod.metadata.name = Some("demo-1".into());
        assert_eq!(endpoint_of(&pod), None);
        pod.status = Some(k8s_openapi::api::core::v1::PodStatus {
            pod_ip: Some("10.0.0.7".into()),
            ..Default::default()
        });
        assert_eq!(endpoint_of(&pod).unwrap().address, "10.0.0.7:7001");
        pod.status.as_mut().unwrap().pod_ip = Some("fd00::7".into());
        assert_eq!(endpoint_of(&pod).unwrap().address, "[fd00::7]:7001");
    }
}
