//! Identity, names, labels and owner references shared by every built object. Names are
//! derived here only, so the reconciler, the planner and the builders never disagree.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;

use super::{CLIENT_PORT, PEER_PORT};
use crate::crd::RaftCluster;

/// `app.kubernetes.io/name`: the application the pods run.
pub const LABEL_NAME: &str = "app.kubernetes.io/name";
/// `app.kubernetes.io/instance`: the RaftCluster's name.
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
/// `app.kubernetes.io/managed-by`: who reconciles the object.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// `app.kubernetes.io/component`: the role within KubeRaft.
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
/// Value of [`LABEL_NAME`].
pub const APP_NAME: &str = "raft-node";
/// Value of [`LABEL_MANAGED_BY`].
pub const MANAGER: &str = "kuberaft-operator";
/// Value of [`LABEL_COMPONENT`].
pub const COMPONENT: &str = "raft-member";

/// What the builders need from a RaftCluster's metadata, resolved once so no builder has
/// to deal with a missing name, namespace or uid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterIdentity {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.uid`, for owner references.
    pub uid: String,
}

/// A RaftCluster without the metadata every owned object needs. Only an object that was
/// never stored by the apiserver lacks these.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("RaftCluster has no metadata.{0}")]
pub struct IdentityError(pub &'static str);

impl ClusterIdentity {
    /// Read name, namespace and uid from a stored RaftCluster.
    pub fn of(cluster: &RaftCluster) -> Result<Self, IdentityError> {
        let meta = &cluster.metadata;
        Ok(Self {
            name: meta.name.clone().ok_or(IdentityError("name"))?,
            namespace: meta.namespace.clone().ok_or(IdentityError("namespace"))?,
            uid: meta.uid.clone().ok_or(IdentityError("uid"))?,
        })
    }

    /// Metadata of an owned object: namespace, labels and the controller reference.
    pub(crate) fn object_meta(&self, name: String) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(labels(self)),
            owner_references: Some(vec![owner_reference(self)]),
            ..ObjectMeta::default()
        }
    }
}

/// Labels that select the cluster's pods. Part of the StatefulSet's immutable selector:
/// never change them.
pub fn selector_labels(id: &ClusterIdentity) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAME.to_owned(), APP_NAME.to_owned()),
        (LABEL_INSTANCE.to_owned(), id.name.clone()),
        (LABEL_COMPONENT.to_owned(), COMPONENT.to_owned()),
    ])
}

/// Labels on every built object and pod: the selector labels plus `managed-by`.
pub fn labels(id: &ClusterIdentity) -> BTreeMap<String, String> {
    let mut labels = selector_labels(id);
    labels.insert(LABEL_MANAGED_BY.to_owned(), MANAGER.to_owned());
    labels
}

/// The selector in `status.selector` form (`k=v,k=v`), what the scale subresource and a
/// HorizontalPodAutoscaler read.
pub fn selector_string(id: &ClusterIdentity) -> String {
    selector_labels(id)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Controller reference to the RaftCluster: garbage collection deletes the object with the
/// cluster, and kube-runtime maps the object's events back to it.
pub fn owner_reference(id: &ClusterIdentity) -> OwnerReference {
    OwnerReference {
        api_version: RaftCluster::api_version(&()).into_owned(),
        kind: RaftCluster::kind(&()).into_owned(),
        name: id.name.clone(),
        uid: id.uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Headless Service that gives every member a stable DNS name, ready or not.
pub fn peer_service_name(cluster: &str) -> String {
    format!("{cluster}-peer")
}

/// ClusterIP Service in front of the ready members' client ports.
pub fn client_service_name(cluster: &str) -> String {
    cluster.to_owned()
}

/// Pod `ordinal` of the cluster's StatefulSet (named like the cluster).
pub fn pod_name(cluster: &str, ordinal: u32) -> String {
    format!("{cluster}-{ordinal}")
}

/// Claim of pod `ordinal`: `<template>-<statefulset>-<ordinal>`, the StatefulSet convention.
pub fn pvc_name(cluster: &str, ordinal: u32) -> String {
    format!("{}-{cluster}-{ordinal}", super::DATA_VOLUME)
}

/// Stable peer address of a member: `<pod>.<cluster>-peer.<ns>.svc:7000`.
pub fn peer_address(id: &ClusterIdentity, pod: &str) -> String {
    format!("{}:{PEER_PORT}", member_host(id, pod))
}

/// Stable client (KV and Admin) address of a member: `<pod>.<cluster>-peer.<ns>.svc:7001`.
pub fn client_address(id: &ClusterIdentity, pod: &str) -> String {
    format!("{}:{CLIENT_PORT}", member_host(id, pod))
}

/// Relative to the cluster domain (`svc`, not `svc.cluster.local`), so it works whatever
/// the cluster domain is.
pub(crate) fn member_host(id: &ClusterIdentity, pod: &str) -> String {
    format!("{pod}.{}.{}.svc", peer_service_name(&id.name), id.namespace)
}
