//! The reconcile test bench: the scripted apiserver, the fake Raft cluster, a stand-in for
//! the StatefulSet controller, and an operator [`Context`] over them with a fixed clock.
//! Tests call the same `reconcile` the kube-runtime Controller calls, one at a time.

#![allow(dead_code)]

pub mod apiserver;
pub mod cluster;

use std::sync::Arc;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStatus, PersistentVolumeClaim, Pod,
    PodCondition, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::runtime::controller::Action;
use kuberaft_operator::build::{CONTAINER_NAME, pod_name, pvc_name};
use kuberaft_operator::crd::{RaftCluster, RaftClusterSpec, RaftClusterStatus};
use kuberaft_operator::reconcile::{Context, Error, FINALIZER, reconcile};

pub use apiserver::ApiServer;
pub use cluster::FakeCluster;

pub const NS: &str = "ns";
pub const NAME: &str = "demo";
pub const UID: &str = "cluster-uid";
pub const IMAGE: &str = "kuberaft/raft-node:1.0";

pub fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap())
}

pub struct Bench {
    pub api: ApiServer,
    pub raft: FakeCluster,
    pub ctx: Arc<Context<FakeCluster>>,
}

impl Default for Bench {
    fn default() -> Self {
        Self::new()
    }
}

impl Bench {
    pub fn new() -> Self {
        let api = ApiServer::new();
        let raft = FakeCluster::default();
        let ctx = context(&api, &raft);
        Bench { api, raft, ctx }
    }

    /// A new operator process: fresh client, Event cache and backoff; same apiserver and
    /// Raft cluster.
    pub fn restart_operator(&mut self) {
        self.ctx = context(&self.api, &self.raft);
    }

    /// A RaftCluster as `kubectl apply` leaves it (defaults filled in, no finalizer yet).
    pub fn create_cluster(&self, replicas: i32) {
        let mut rc = RaftCluster::new(
            NAME,
            RaftClusterSpec {
                replicas,
                ..RaftClusterSpec::with_image(IMAGE)
            },
        );
        rc.metadata.namespace = Some(NS.into());
        rc.metadata.uid = Some(UID.into());
        rc.metadata.generation = Some(1);
        self.api.put(&rc);
    }

    pub fn cluster(&self) -> RaftCluster {
        self.api.get(NS, NAME).expect("the RaftCluster exists")
    }

    pub fn status(&self) -> RaftClusterStatus {
        self.cluster().status.unwrap_or_default()
    }

    /// Edits the spec as `kubectl` would (bumping the generation).
    pub fn edit(&self, f: impl FnOnce(&mut RaftClusterSpec)) {
        let mut rc = self.cluster();
        f(&mut rc.spec);
        rc.metadata.generation = Some(rc.metadata.generation.unwrap_or(1) + 1);
        self.api.put(&rc);
    }

    /// One reconcile of the stored RaftCluster, as the Controller runs it.
    pub async fn reconcile(&self) -> Result<Action, Error> {
        reconcile(Arc::new(self.cluster()), self.ctx.clone()).await
    }

    /// What the StatefulSet controller would do next: create the missing pods (and their
    /// claims), start their processes, delete pods beyond the size.
    pub fn run_statefulset(&self) {
        let Some(sts) = self.api.get::<StatefulSet>(NS, NAME) else {
            return;
        };
        let replicas = u32::try_from(sts.spec.replicas.unwrap_or(0)).unwrap();
        for pod in self.api.list::<Pod>() {
            let name = pod.metadata.name.clone().unwrap();
            let k: u32 = name.rsplit('-').next().unwrap().parse().unwrap();
            if k >= replicas {
                self.api.remove::<Pod>(NS, &name);
                self.raft.stop(&name);
            }
        }
        for k in 0..replicas {
            let name = pod_name(NAME, k);
            if self.api.get::<Pod>(NS, &name).is_some() {
                continue;
            }
            let claim = pvc_name(NAME, k);
            let fresh = self.api.get::<PersistentVolumeClaim>(NS, &claim).is_none();
            if fresh {
                self.api.put(&PersistentVolumeClaim {
                    metadata: ObjectMeta {
                        name: Some(claim),
                        namespace: Some(NS.into()),
                        ..ObjectMeta::default()
                    },
                    ..PersistentVolumeClaim::default()
                });
            }
            self.raft.start(&name, fresh);
            self.api.put(&pod_from(&sts, k));
        }
    }

    /// Reconciles (running the StatefulSet controller in between) until a reconcile
    /// finds nothing to do (the idle requeue), or panics after `max` rounds.
    pub async fn settle(&self, max: usize) -> usize {
        let idle = Action::requeue(self.ctx.settings.requeue_idle);
        for round in 0..max {
            let action = self.reconcile().await.expect("reconcile");
            if action == idle {
                return round;
            }
            self.run_statefulset();
        }
        panic!(
            "no steady state after {max} reconciles: {:#?}",
            self.status()
        );
    }

    /// A healthy cluster of `n` voters led by demo-0, grown by the operator itself.
    pub async fn healthy(n: i32) -> Self {
        let b = Bench::new();
        b.create_cluster(n);
        b.settle(40).await;
        assert_eq!(b.raft.voters().len(), usize::try_from(n).unwrap());
        b.api.take_calls();
        b.raft.take_calls();
        b
    }

    /// Events as `(type, reason, note)`, in the order they were published (a repeat that
    /// the Recorder folds into an Event series counts again).
    pub fn events(&self) -> Vec<(String, String, String)> {
        let field = |e: &serde_json::Value, f: &str| e[f].as_str().unwrap_or("").to_owned();
        self.api
            .event_log()
            .iter()
            .map(|e| (field(e, "type"), field(e, "reason"), field(e, "note")))
            .collect()
    }

    pub fn event_reasons(&self) -> Vec<String> {
        self.events().into_iter().map(|(_, r, _)| r).collect()
    }

    /// Calls that change something (everything but get, list and watch), Events aside:
    /// tests check those through [`Bench::events`].
    pub fn take_writes(&self) -> Vec<String> {
        self.api
            .take_calls()
            .into_iter()
            .filter(|c| !matches!(c.verb.as_str(), "get" | "list" | "watch"))
            .filter(|c| c.resource != "events")
            .map(|c| {
                format!(
                    "{} {}{}",
                    c.verb,
                    c.resource,
                    c.name.map(|n| format!(" {n}")).unwrap_or_default()
                )
            })
            .collect()
    }

    pub fn has_finalizer(&self) -> bool {
        self.cluster()
            .metadata
            .finalizers
            .unwrap_or_default()
            .iter()
            .any(|f| f == FINALIZER)
    }
}

fn context(api: &ApiServer, raft: &FakeCluster) -> Arc<Context<FakeCluster>> {
    Arc::new(
        Context::new(api.client(), raft.clone(), Some("operator-0".into()))
            .with_clock(Arc::new(now)),
    )
}

/// A running, ready pod from the StatefulSet's template, at `10.0.0.<k>`.
fn pod_from(sts: &StatefulSet, k: u32) -> Pod {
    let template = sts.spec.template.clone();
    let meta = template.metadata.unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            name: Some(pod_name(NAME, k)),
            namespace: Some(NS.into()),
            uid: Some(format!("pod-{k}-{}", fastrand_suffix())),
            labels: meta.labels,
            annotations: meta.annotations,
            ..ObjectMeta::default()
        },
        spec: template.spec,
        status: Some(PodStatus {
            phase: Some("Running".into()),
            pod_ip: Some(format!("10.0.0.{k}")),
            container_statuses: Some(vec![ContainerStatus {
                name: CONTAINER_NAME.into(),
                ready: true,
                state: Some(ContainerState {
                    running: Some(ContainerStateRunning::default()),
                    ..ContainerState::default()
                }),
                ..ContainerStatus::default()
            }]),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        }),
    }
}

/// A distinct uid per pod incarnation, without a random source.
fn fastrand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
