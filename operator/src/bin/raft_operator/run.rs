//! `raft-operator run`: connect (in-cluster or KUBECONFIG), serve `/metrics` and
//! `/healthz`, win the Lease, reconcile until SIGTERM (or Ctrl-C), then stop gracefully:
//! reconciles in flight finish, the Lease is handed back.
//!
//! Losing the Lease is different: another replica may already be reconciling, so the
//! controller is dropped at once (as safe as a crash: steps are idempotent and the
//! operation in flight is in status) and the process exits non-zero to be restarted.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use futures::FutureExt;
use kuberaft_operator::reconcile::leader::{self, LeaseConfig};
use kuberaft_operator::reconcile::{AdminConfig, Context, GrpcAdmin, Metrics};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use super::cli::RunArgs;
use super::http;

enum Stop {
    Signal,
    LostLease,
    ControllerEnded,
}

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let client = kube::Client::try_default()
        .await
        .context("no Kubernetes configuration (in-cluster or KUBECONFIG)")?;
    let identity = args.identity.clone().unwrap_or_else(default_identity);

    let metrics = Arc::new(Metrics::default());
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let listener = TcpListener::bind(args.http_listen)
        .await
        .with_context(|| format!("binding {}", args.http_listen))?;
    let (http_stop, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(http::serve(
        listener,
        Arc::new(registry),
        http_stopped.map(drop),
    ));
    tracing::info!(addr = %args.http_listen, "serving /metrics and /healthz");

    let admin = GrpcAdmin::new(AdminConfig {
        token: read_token(&args)?,
        status_deadline: Duration::from_millis(args.status_deadline_ms),
        ..AdminConfig::default()
    })?;
    let ctx =
        Arc::new(Context::new(client.clone(), admin, Some(identity.clone())).with_metrics(metrics));

    let mut leadership = if args.leader_election {
        let config = LeaseConfig {
            namespace: args.lease_namespace.clone(),
            name: args.lease_name.clone(),
            identity: identity.clone(),
            duration: args.lease_duration,
            grace: args.lease_grace,
        };
        tracing::info!(lease = %config.name, %identity, "waiting for the leader lease");
        tokio::select! {
            held = leader::acquire(client.clone(), &config) => Some(held?),
            () = terminate() => {
                let _ = http_stop.send(());
                return Ok(());
            }
        }
    } else {
        None
    };
    tracing::info!(namespace = ?args.namespace, "reconciling RaftClusters");

    let (stop_tx, stop_rx) = futures::channel::oneshot::channel::<()>();
    let namespace = args.namespace.clone();
    let mut controller = tokio::spawn(async move {
        kuberaft_operator::reconcile::run(ctx, namespace.as_deref(), stop_rx.map(drop)).await;
    });
    let stop = tokio::select! {
        () = terminate() => Stop::Signal,
        () = lost(&mut leadership) => Stop::LostLease,
        _ = &mut controller => Stop::ControllerEnded,
    };
    match stop {
        Stop::Signal => {
            tracing::info!("shutting down: finishing reconciles in flight");
            let _ = stop_tx.send(());
            if let Err(e) = controller.await {
                tracing::warn!(error = %e, "controller task failed");
            }
        }
        Stop::LostLease => controller.abort(),
        Stop::ControllerEnded => {}
    }
    if let Some(held) = leadership {
        held.release().await;
    }
    let _ = http_stop.send(());
    server.await.context("metrics server task")??;
    match stop {
        Stop::Signal => Ok(()),
        Stop::LostLease => bail!("lost the leader lease; exiting so a fresh process competes"),
        Stop::ControllerEnded => bail!("the controller stopped unexpectedly"),
    }
}

/// Never resolves without leader election.
async fn lost(leadership: &mut Option<leader::Leadership>) {
    match leadership {
        Some(held) => held.lost().await,
        None => std::future::pending().await,
    }
}

/// SIGTERM (what the kubelet sends) or Ctrl-C.
async fn terminate() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    () = ctrl_c => {}
                }
            }
            Err(_) => ctrl_c.await,
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await;
}

fn read_token(args: &RunArgs) -> anyhow::Result<Option<String>> {
    let Some(path) = &args.admin_token_file else {
        return Ok(None);
    };
    let token = std::fs::read_to_string(path)
        .with_context(|| format!("reading the admin token from {}", path.display()))?;
    Ok(Some(token.trim().to_owned()))
}

/// Outside a pod (no POD_NAME): the host name plus the process id, unique enough to tell
/// two local operators apart.
fn default_identity() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "raft-operator".to_owned());
    format!("{host}-{}", std::process::id())
}
