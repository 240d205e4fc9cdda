//! The operator under test: `raft-operator run` as a child process, scoped to the test's
//! namespace with leader election off, or the one the Helm chart installed in the cluster
//! (`KUBERAFT_E2E_IN_CLUSTER=1`).
//!
//! Out of cluster, the operator calls each member's Admin API at its pod IP, so pod IPs
//! must be routable from this host (see [`super::Suite::check_pod_network`]).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::ListParams;

/// Labels of the chart's Deployment (charts/kuberaft/templates/_helpers.tpl).
const CHART_SELECTOR: &str = "app.kubernetes.io/name=kuberaft,app.kubernetes.io/component=operator";

#[derive(Debug)]
pub enum Operator {
    /// Installed in the cluster; the suite only checked that it is available.
    InCluster {
        deployment: String,
    },
    Child(ChildOperator),
}

impl Operator {
    /// Starts (or finds) the operator for a test that uses `namespace`.
    pub async fn start(client: &kube::Client, namespace: &str) -> anyhow::Result<Self> {
        let installed = chart_deployments(client).await?;
        if super::env::in_cluster_operator() {
            // One that watches every namespace: the test's namespace is made up on the spot.
            let available = installed
                .iter()
                .find(|(_, d)| available_replicas(d) > 0 && watched_namespace(d).is_none());
            return match available {
                Some((name, _)) => Ok(Operator::InCluster {
                    deployment: name.clone(),
                }),
                None => bail!(
                    "KUBERAFT_E2E_IN_CLUSTER is set but no operator Deployment ({CHART_SELECTOR}) \
                     watching every namespace is available; install it with \
                     `helm install kuberaft charts/kuberaft -n kuberaft-system --create-namespace`"
                ),
            };
        }
        for (name, d) in &installed {
            let scope = watched_namespace(d);
            if available_replicas(d) > 0 && scope.as_deref().is_none_or(|s| s == namespace) {
                bail!(
                    "the operator Deployment {name} runs in the cluster and would reconcile the \
                     test's RaftClusters too; set KUBERAFT_E2E_IN_CLUSTER=1 to test it instead, \
                     or uninstall it"
                );
            }
        }
        Ok(Operator::Child(ChildOperator::spawn(namespace)?))
    }

    /// Fails when the child operator has exited (a crash would otherwise surface as a
    /// timeout minutes later).
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        match self {
            Operator::InCluster { .. } => Ok(()),
            Operator::Child(child) => child.check_alive(),
        }
    }

    pub fn is_child(&self) -> bool {
        matches!(self, Operator::Child(_))
    }

    /// What to show when a test fails.
    pub fn diagnostics(&self) -> String {
        match self {
            Operator::InCluster { deployment } => format!(
                "operator: in cluster ({deployment}); see `kubectl logs -n {} deploy/{}`",
                deployment.split('/').next().unwrap_or_default(),
                deployment.split('/').nth(1).unwrap_or_default()
            ),
            Operator::Child(child) => child.log_tail(120),
        }
    }

    pub fn stop(&mut self) {
        if let Operator::Child(child) = self {
            child.stop();
        }
    }
}

/// `(namespace/name, Deployment)` of every operator the chart installed.
async fn chart_deployments(client: &kube::Client) -> anyhow::Result<Vec<(String, Deployment)>> {
    let list = Api::<Deployment>::all(client.clone())
        .list(&ListParams::default().labels(CHART_SELECTOR))
        .await
        .context("listing operator Deployments")?;
    Ok(list
        .items
        .into_iter()
        .map(|d| {
            let ns = d.metadata.namespace.clone().unwrap_or_default();
            let name = d.metadata.name.clone().unwrap_or_default();
            (format!("{ns}/{name}"), d)
        })
        .collect())
}

fn available_replicas(d: &Deployment) -> i32 {
    d.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

/// The KUBERAFT_NAMESPACE the chart sets when `watchNamespace` is given.
fn watched_namespace(d: &Deployment) -> Option<String> {
    let spec = d.spec.template.spec.as_ref()?;
    spec.containers
        .iter()
        .flat_map(|c| c.env.iter().flatten())
        .find(|e| e.name == "KUBERAFT_NAMESPACE")
        .and_then(|e| e.value.clone())
        .filter(|v| !v.is_empty())
}

/// `raft-operator run` on this host, logging to a file.
#[derive(Debug)]
pub struct ChildOperator {
    child: Option<Child>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl ChildOperator {
    fn spawn(namespace: &str) -> anyhow::Result<Self> {
        let binary = operator_binary()?;
        let dir = tempfile::tempdir()?;
        let log = dir.path().join("raft-operator.log");
        let out = std::fs::File::create(&log)?;
        let child = Command::new(&binary)
            .args([
                "run",
                "--namespace",
                namespace,
                "--leader-election",
                "false",
            ])
            .args(["--http-listen", "127.0.0.1:0"])
            .env("KUBERAFT_LOG_FORMAT", "text")
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned()),
            )
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(ChildOperator {
            child: Some(child),
            log,
            _dir: dir,
        })
    }

    fn check_alive(&mut self) -> anyhow::Result<()> {
        let Some(child) = self.child.as_mut() else {
            bail!("the operator was stopped");
        };
        if let Some(status) = child.try_wait()? {
            bail!("raft-operator exited ({status}):\n{}", self.log_tail(60));
        }
        Ok(())
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        let tail = &all[all.len().saturating_sub(lines)..];
        format!(
            "---- raft-operator log (last {} lines) ----\n{}\n---- end ----",
            tail.len(),
            tail.join("\n")
        )
    }

    /// SIGTERM, as the kubelet would send; SIGKILL if it does not exit in time.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kuberaft_e2e::stop_child(&mut child, "TERM", Duration::from_secs(20));
        }
    }
}

impl Drop for ChildOperator {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `raft-operator`, built into the target dir this test runs from (see the crate docs),
/// or taken from `KUBERAFT_BIN_DIR`.
fn operator_binary() -> anyhow::Result<PathBuf> {
    let dir = match std::env::var_os("KUBERAFT_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            // target/<profile>/deps/cluster-<hash> → target/<profile>
            let exe = std::env::current_exe()?;
            let profile_dir = exe
                .parent()
                .and_then(Path::parent)
                .context("test executable outside a target dir")?
                .to_path_buf();
            let target_dir = profile_dir.parent().context("no target dir")?;
            let release = profile_dir.file_name().is_some_and(|n| n == "release");
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let mut build = Command::new(cargo);
            build
                .args(["build", "-p", "kuberaft-operator", "--bin", "raft-operator"])
                .env("CARGO_TARGET_DIR", target_dir)
                .current_dir(env!("CARGO_MANIFEST_DIR"));
            if release {
                build.arg("--release");
            }
            let status = build.status().context("running cargo build")?;
            anyhow::ensure!(status.success(), "cargo build of raft-operator failed");
            profile_dir
        }
    };
    let binary = dir.join("raft-operator");
    anyhow::ensure!(binary.is_file(), "{} is missing", binary.display());
    Ok(binary)
}
