//! Whether the real-cluster suite runs, and its settings. It runs when KUBECONFIG (or
//! ~/.kube/config) names a cluster that answers within a few seconds; otherwise each test
//! prints one line saying why it skips, and passes.
//!
//! | variable | effect |
//! | --- | --- |
//! | `KUBECONFIG` | the cluster (else `~/.kube/config`) |
//! | `KUBERAFT_E2E_NODE_IMAGE` | raft-node image of the test clusters (default [`NODE_IMAGE_REPOSITORY`]`:<version>`) |
//! | `KUBERAFT_E2E_IN_CLUSTER=1` | use the operator installed in the cluster (the Helm chart) instead of running `raft-operator run` here |
//! | `KUBERAFT_E2E_REQUIRE_CLUSTER=1` | fail instead of skipping when no cluster answers (for CI jobs that create one) |
//! | `KUBERAFT_E2E_KEEP=1` | keep a failed test's namespace for inspection |
//! | `KUBERAFT_BIN_DIR` | prebuilt `raft-operator` to run instead of building it |

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use kube::config::KubeConfigOptions;

/// The image `docker/raft-node.Dockerfile` builds, as the README's kind quick start tags it.
pub const NODE_IMAGE_REPOSITORY: &str = "ghcr.io/kuberaft/raft-node";

/// How long the apiserver may take to answer before the suite skips.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub fn node_image() -> String {
    std::env::var("KUBERAFT_E2E_NODE_IMAGE")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| format!("{NODE_IMAGE_REPOSITORY}:{}", env!("CARGO_PKG_VERSION")))
}

pub fn in_cluster_operator() -> bool {
    flag("KUBERAFT_E2E_IN_CLUSTER")
}

pub fn keep_failed_namespace() -> bool {
    flag("KUBERAFT_E2E_KEEP")
}

fn flag(name: &str) -> bool {
    matches!(
        std::env::var(name).as_deref(),
        Ok("1" | "true" | "yes" | "on")
    )
}

/// A client for the cluster under test, or `None` after printing the one line that says
/// why `test` skips. The line goes straight to stderr, past the test harness's capture,
/// so a skipped run is visible in `cargo test` output.
pub async fn cluster(test: &str) -> Option<kube::Client> {
    match connect().await {
        Ok(client) => Some(client),
        Err(reason) if flag("KUBERAFT_E2E_REQUIRE_CLUSTER") => {
            panic!("KUBERAFT_E2E_REQUIRE_CLUSTER is set, but {reason}")
        }
        Err(reason) => {
            let _ = writeln!(
                std::io::stderr(),
                "skipping real-cluster e2e: {reason} ({test})"
            );
            None
        }
    }
}

async fn connect() -> Result<kube::Client, String> {
    let explicit = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty());
    let home_config = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kube/config"));
    let source = match (&explicit, &home_config) {
        (Some(k), _) => format!("KUBECONFIG={}", k.to_string_lossy()),
        (None, Some(p)) if p.is_file() => p.display().to_string(),
        _ => return Err("KUBECONFIG is not set and ~/.kube/config does not exist".to_owned()),
    };
    // From the kubeconfig only: never the in-cluster fallback of `Config::infer`, so a CI
    // job that happens to run in a pod does not test against its own cluster by accident.
    let config = tokio::time::timeout(
        CONNECT_TIMEOUT,
        kube::Config::from_kubeconfig(&KubeConfigOptions::default()),
    )
    .await
    .map_err(|_| format!("loading {source} took longer than {CONNECT_TIMEOUT:?}"))?
    .map_err(|e| format!("{source} is not usable: {e}"))?;
    let client =
        kube::Client::try_from(config).map_err(|e| format!("no client for {source}: {e}"))?;
    match tokio::time::timeout(CONNECT_TIMEOUT, client.apiserver_version()).await {
        Ok(Ok(_)) => Ok(client),
        Ok(Err(e)) => Err(format!("the cluster of {source} does not answer: {e}")),
        Err(_) => Err(format!(
            "the cluster of {source} did not answer within {CONNECT_TIMEOUT:?}"
        )),
    }
}
