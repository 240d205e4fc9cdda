//! The real-cluster suite's bench: one [`Suite`] per test owns a fresh namespace, the CRD,
//! the operator, and port-forwards to the members; it removes the namespace at the end,
//! after printing what the cluster looked like if the test failed.

#![allow(dead_code)]

pub mod checks;
pub mod data;
pub mod env;
pub mod forward;
pub mod operator;
pub mod wait;

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use futures::FutureExt as _;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, ResourceExt as _};
use kuberaft_operator::build::{CLIENT_PORT, pod_name};
use kuberaft_operator::crd::RaftCluster;
use tokio::sync::Mutex;

use data::Members;
use operator::Operator;
use wait::until;

/// Field manager of everything the suite applies.
pub const FIELD_MANAGER: &str = "kuberaft-e2e";
/// Label on every namespace the suite creates, to find leftovers:
/// `kubectl delete ns -l kuberaft.io/e2e`.
pub const NAMESPACE_LABEL: &str = "kuberaft.io/e2e";

pub struct Suite {
    pub client: kube::Client,
    pub namespace: String,
    pub operator: Option<Mutex<Operator>>,
    pub members: Members,
}

impl Suite {
    /// Installs the CRD, creates the namespace and, when `with_operator`, starts (or finds)
    /// the operator.
    pub async fn start(
        client: kube::Client,
        test: &str,
        with_operator: bool,
    ) -> anyhow::Result<Self> {
        install_crd(&client).await?;
        let namespace = create_namespace(&client, test).await?;
        let operator = if with_operator {
            match Operator::start(&client, &namespace).await {
                Ok(op) => Some(Mutex::new(op)),
                Err(e) => {
                    delete_namespace(&client, &namespace).await;
                    return Err(e);
                }
            }
        } else {
            None
        };
        let members = Members::new(Api::namespaced(client.clone(), &namespace));
        Ok(Suite {
            client,
            namespace,
            operator,
            members,
        })
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub fn clusters(&self) -> Api<RaftCluster> {
        self.api()
    }

    /// Runs the test body, then cleans up whatever happened; a failure is reported with the
    /// cluster's state, then re-raised.
    pub async fn run<F>(&self, body: F)
    where
        F: Future<Output = anyhow::Result<()>>,
    {
        let outcome: Result<anyhow::Result<()>, Box<dyn Any + Send>> =
            AssertUnwindSafe(body).catch_unwind().await;
        let failed = !matches!(outcome, Ok(Ok(())));
        if failed {
            eprintln!("{}", self.diagnostics().await);
        }
        self.cleanup(failed).await;
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("{e:#}"),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// Fails when the child operator died.
    pub async fn operator_alive(&self) -> anyhow::Result<()> {
        match &self.operator {
            Some(op) => op.lock().await.check_alive(),
            None => Ok(()),
        }
    }

    /// Out of cluster, the operator dials members at their pod IPs: make sure this host can
    /// reach pod 0's client port before waiting minutes for a bootstrap that cannot happen.
    pub async fn check_pod_network(&self, cluster: &str) -> anyhow::Result<()> {
        let child = match &self.operator {
            Some(op) => op.lock().await.is_child(),
            None => false,
        };
        if !child {
            return Ok(());
        }
        let pods: Api<Pod> = self.api();
        let name = pod_name(cluster, 0);
        let ip = until(
            Duration::from_secs(300),
            &format!("{name} to run"),
            || async {
                self.operator_alive().await?;
                let pod = pods.get(&name).await?;
                let status = pod.status.context("no pod status")?;
                let running = status
                    .container_statuses
                    .iter()
                    .flatten()
                    .any(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()));
                anyhow::ensure!(running, "container not running (phase {:?})", status.phase);
                status.pod_ip.context("no pod IP")
            },
        )
        .await?;
        let addr = format!("{ip}:{CLIENT_PORT}");
        let reachable = until(
            Duration::from_secs(30),
            &format!("a TCP connection to {addr}"),
            || async {
                match tokio::time::timeout(
                    Duration::from_secs(2),
                    tokio::net::TcpStream::connect(&addr),
                )
                .await
                {
                    Ok(Ok(_)) => Ok(()),
                    // Refused: the pod answered, it just is not listening yet. The route works.
                    Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Ok(()),
                    Ok(Err(e)) => Err(e.into()),
                    Err(_) => anyhow::bail!("no answer within 2s"),
                }
            },
        )
        .await;
        if let Err(e) = reachable {
            anyhow::bail!(
                "{e:#}\nThe operator runs on this host and dials members at their pod IPs, which \
                 this host cannot reach. Route the pod network to the nodes, e.g. on kind:\n{}\n\
                 or install the chart and set KUBERAFT_E2E_IN_CLUSTER=1.",
                self.route_hint().await
            );
        }
        Ok(())
    }

    /// `ip route add <podCIDR> via <node IP>` for every node.
    async fn route_hint(&self) -> String {
        let Ok(nodes) = Api::<Node>::all(self.client.clone())
            .list(&ListParams::default())
            .await
        else {
            return "    (could not list the nodes)".to_owned();
        };
        nodes
            .items
            .iter()
            .filter_map(|n| {
                let cidr = n.spec.as_ref()?.pod_cidr.clone()?;
                let ip = n
                    .status
                    .as_ref()?
                    .addresses
                    .iter()
                    .flatten()
                    .find(|a| a.type_ == "InternalIP")?
                    .address
                    .clone();
                Some(format!("    sudo ip route add {cidr} via {ip}"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The RaftClusters, their Events, the pods and the operator's log, for a failure.
    async fn diagnostics(&self) -> String {
        let mut out = format!("==== namespace {} ====\n", self.namespace);
        if let Ok(list) = self.clusters().list(&ListParams::default()).await {
            for rc in list.items {
                out.push_str(&format!(
                    "-- RaftCluster {} spec.replicas={} status:\n{}\n",
                    rc.name_any(),
                    rc.spec.replicas,
                    serde_yaml::to_string(&rc.status).unwrap_or_default()
                ));
            }
        }
        if let Ok(events) = checks::events(self).await {
            out.push_str("-- Events (regarding, type, reason, count, note):\n");
            for e in events {
                out.push_str(&format!("  {e}\n"));
            }
        }
        if let Ok(pods) = self.api::<Pod>().list(&ListParams::default()).await {
            out.push_str("-- Pods:\n");
            for p in pods.items {
                let status = p.status.clone().unwrap_or_default();
                let restarts: i32 = status
                    .container_statuses
                    .iter()
                    .flatten()
                    .map(|c| c.restart_count)
                    .sum();
                out.push_str(&format!(
                    "  {} phase={:?} ip={:?} restarts={restarts}\n",
                    p.name_any(),
                    status.phase,
                    status.pod_ip
                ));
            }
        }
        if let Some(op) = &self.operator {
            out.push_str(&op.lock().await.diagnostics());
        }
        out
    }

    /// Deletes the RaftClusters while the operator still runs (so it drops its finalizer),
    /// stops the operator, then deletes the namespace.
    async fn cleanup(&self, failed: bool) {
        let keep = failed && env::keep_failed_namespace();
        if keep {
            eprintln!(
                "KUBERAFT_E2E_KEEP is set: namespace {} is kept; delete it with `kubectl delete ns {}`",
                self.namespace, self.namespace
            );
        }
        let clusters = self.clusters();
        if !keep {
            let _ = clusters
                .delete_collection(&DeleteParams::default(), &ListParams::default())
                .await;
            let gone = until(
                Duration::from_secs(90),
                "RaftClusters to be deleted",
                || async {
                    let left = clusters.list(&ListParams::default()).await?.items.len();
                    anyhow::ensure!(left == 0, "{left} left");
                    Ok(())
                },
            )
            .await;
            if gone.is_err() {
                // The operator is gone or stuck: drop its finalizer so the namespace can go.
                if let Ok(list) = clusters.list(&ListParams::default()).await {
                    for rc in list.items {
                        let patch = serde_json::json!({"metadata": {"finalizers": null}});
                        let _ = clusters
                            .patch(
                                &rc.name_any(),
                                &PatchParams::default(),
                                &Patch::Merge(&patch),
                            )
                            .await;
                    }
                }
            }
        }
        if let Some(op) = &self.operator {
            op.lock().await.stop();
        }
        if !keep {
            delete_namespace(&self.client, &self.namespace).await;
        }
    }
}

/// Server-side applies `crds/raftcluster.yaml` and waits until it is established.
pub async fn install_crd(client: &kube::Client) -> anyhow::Result<()> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../crds/raftcluster.yaml");
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    let crd: CustomResourceDefinition = serde_yaml::from_str(&text).context("parsing the CRD")?;
    let name = crd.name_any();
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&crd),
    )
    .await
    .context("applying the CRD")?;
    tokio::time::timeout(
        Duration::from_secs(30),
        await_condition(api, &name, conditions::is_crd_established()),
    )
    .await
    .context("the CRD was not established within 30s")??;
    Ok(())
}

/// `kuberaft-e2e-<test>-<random>`, labelled [`NAMESPACE_LABEL`].
async fn create_namespace(client: &kube::Client, test: &str) -> anyhow::Result<String> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let suffix = format!(
        "{:06x}",
        (nanos ^ std::process::id().rotate_left(16)) & 0xff_ffff
    );
    let test: String = test
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(30)
        .collect();
    let name = format!("kuberaft-e2e-{test}-{suffix}");
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some([(NAMESPACE_LABEL.to_owned(), "true".to_owned())].into()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .with_context(|| format!("creating namespace {name}"))?;
    Ok(name)
}

/// Starts the namespace's deletion; its pods and volumes go in the background.
async fn delete_namespace(client: &kube::Client, name: &str) {
    if let Err(e) = Api::<Namespace>::all(client.clone())
        .delete(name, &DeleteParams::background())
        .await
    {
        eprintln!("deleting namespace {name}: {e}");
    }
}
