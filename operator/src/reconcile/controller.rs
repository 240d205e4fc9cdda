//! Stage 6, the controller: kube-runtime's `Controller` on RaftClusters, owning the
//! StatefulSet, Services and PodDisruptionBudget (owner references) and watching the pods
//! (owned by the StatefulSet, mapped back through their instance label), plus the
//! finalizer and the error backoff.
//!
//! The finalizer destroys nothing. Owned objects go with the RaftCluster through owner
//! references, and the volumes follow the StatefulSet's `whenDeleted` retention policy
//! (`spec.storage.reclaimPolicy`). It exists because kube-runtime only calls the reconciler
//! for a deleted object that still has a finalizer: cleanup is where the operator forgets
//! the cluster's metric series and backoff state.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};

use super::admin::MemberAdmin;
use super::context::Context;
use super::cycle::reconcile_cluster;
use super::error::{Error, Result};
use crate::build::{LABEL_INSTANCE, LABEL_MANAGED_BY, MANAGER};
use crate::crd::RaftCluster;

/// The finalizer the operator puts on every RaftCluster.
pub const FINALIZER: &str = "kuberaft.io/cleanup";

/// How many clusters are reconciled at once (each reconcile may wait on Admin deadlines).
const CONCURRENCY: u16 = 8;

/// Entry point for kube-runtime: the finalizer around one [`reconcile_cluster`], with
/// metrics. Public so the reconcile tests drive exactly what the controller runs.
pub async fn reconcile<A: MemberAdmin>(
    cluster: Arc<RaftCluster>,
    ctx: Arc<Context<A>>,
) -> Result<Action> {
    let started = Instant::now();
    let key = key(&cluster);
    let ns = cluster.namespace().unwrap_or_default();
    let api = Api::<RaftCluster>::namespaced(ctx.client.clone(), &ns);
    let mut step = "Finalizer";
    let result = finalizer(&api, FINALIZER, cluster, |event| async {
        match event {
            FinalizerEvent::Apply(c) => {
                let cycle = reconcile_cluster(&c, &ctx).await?;
                step = cycle.step;
                Ok(cycle.action)
            }
            FinalizerEvent::Cleanup(c) => {
                cleanup(&c, &ctx);
                step = "Cleanup";
                Ok(Action::await_change())
            }
        }
    })
    .await
    .map_err(|e| match e {
        kube::runtime::finalizer::Error::ApplyFailed(e)
        | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
        other => Error::Finalizer(Box::new(other)),
    });
    match &result {
        Ok(_) => {
            ctx.succeeded(&key);
            ctx.metrics.reconciled(step, started.elapsed());
        }
        Err(e) => ctx.metrics.failed(e.label(), started.elapsed()),
    }
    result
}

/// Retry with exponential backoff per cluster ([`Context::backoff`]).
pub fn error_policy<A>(cluster: Arc<RaftCluster>, error: &Error, ctx: Arc<Context<A>>) -> Action {
    let wait = ctx.backoff(&key(&cluster));
    tracing::warn!(
        cluster = %cluster.name_any(), namespace = ?cluster.namespace(),
        reason = error.label(), error = %error, retry_in = ?wait, "reconcile failed"
    );
    Action::requeue(wait)
}

fn cleanup<A>(cluster: &RaftCluster, ctx: &Context<A>) {
    let ns = cluster.namespace().unwrap_or_default();
    let name = cluster.name_any();
    ctx.metrics.forget(&ns, &name);
    ctx.succeeded(&key(cluster));
    tracing::info!(cluster = %name, namespace = %ns, "RaftCluster deleted; owned objects go by owner reference");
}

fn key(cluster: &RaftCluster) -> String {
    format!(
        "{}/{}",
        cluster.namespace().unwrap_or_default(),
        cluster.name_any()
    )
}

/// `(apiGroup, resource)` of everything the controller lists and watches; the RBAC rules
/// grant `list` and `watch` on exactly these.
pub fn watched() -> Vec<(String, String)> {
    fn of<K: Resource<DynamicType = ()>>() -> (String, String) {
        (K::group(&()).into_owned(), K::plural(&()).into_owned())
    }
    vec![
        of::<RaftCluster>(),
        of::<StatefulSet>(),
        of::<Service>(),
        of::<PodDisruptionBudget>(),
        of::<Pod>(),
    ]
}

fn api<K>(client: &kube::Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Runs the controller until `shutdown` resolves, then lets reconciles in flight finish.
/// `namespace` limits it to one namespace (all when `None`).
pub async fn run<A: MemberAdmin>(
    ctx: Arc<Context<A>>,
    namespace: Option<&str>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    // Only what this operator manages: keeps the watch caches small in busy namespaces.
    let managed = watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGER}"));
    Controller::new(
        api::<RaftCluster>(&client, namespace),
        watcher::Config::default(),
    )
    .with_config(ControllerConfig::default().concurrency(CONCURRENCY))
    .owns(api::<StatefulSet>(&client, namespace), managed.clone())
    .owns(api::<Service>(&client, namespace), managed.clone())
    .owns(
        api::<PodDisruptionBudget>(&client, namespace),
        managed.clone(),
    )
    // Pods belong to the StatefulSet, not to the RaftCluster: map them by label.
    .watches(api::<Pod>(&client, namespace), managed, |pod: Pod| {
        let name = pod.labels().get(LABEL_INSTANCE)?.clone();
        Some(ObjectRef::<RaftCluster>::new(&name).within(&pod.namespace()?))
    })
    .graceful_shutdown_on(shutdown)
    .run(reconcile::<A>, error_policy::<A>, ctx)
    .for_each(|result| async move {
        match result {
            Ok((obj, _)) => tracing::debug!(cluster = %obj.name, "reconciled"),
            Err(e) => tracing::debug!(error = %e, "controller event"),
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watched_resources_are_the_owned_kinds_and_pods() {
        let got = watched();
        let want: Vec<(String, String)> = [
            ("kuberaft.io", "raftclusters"),
            ("apps", "statefulsets"),
            ("", "services"),
            ("policy", "poddisruptionbudgets"),
            ("", "pods"),
        ]
        .iter()
        .map(|(g, r)| ((*g).to_owned(), (*r).to_owned()))
        .collect();
        assert_eq!(got, want);
    }
}
