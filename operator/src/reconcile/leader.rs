//! Operator HA: only the replica holding a `coordination.k8s.io` Lease reconciles, so two
//! operators never plan against each other. Built on `kube-lease-manager` (kube 5;
//! kube-runtime has no leader election and `kube-leader-election` still targets kube 4).
//!
//! Losing the Lease stops reconciling at once: the binary shuts the controller down and
//! exits, and Kubernetes restarts the pod as a candidate. A step cut off halfway is safe
//! (every step is idempotent and the operation is in status).

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::context::FIELD_MANAGER;

/// Lease timing, in seconds.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// Unique per replica: the pod name.
    pub identity: String,
    /// How long the Lease stays valid without renewal: the longest a dead leader
    /// blocks a successor.
    pub duration: u64,
    /// Renew this long before expiry; also the clock skew tolerated between nodes.
    pub grace: u64,
}

/// The Lease could not be set up or watched.
#[derive(Debug, thiserror::Error)]
#[error("lease {name}: {source}")]
pub struct LeaderError {
    name: String,
    #[source]
    source: LeaseManagerError,
}

/// Held leadership. Renewed in the background until [`Leadership::release`].
#[derive(Debug)]
pub struct Leadership {
    state: watch::Receiver<bool>,
    task: JoinHandle<Result<LeaseManager, LeaseManagerError>>,
}

/// Waits until this replica holds the Lease (creating it if needed).
pub async fn acquire(client: Client, config: &LeaseConfig) -> Result<Leadership, LeaderError> {
    let err = |source| LeaderError {
        name: config.name.clone(),
        source,
    };
    let manager = LeaseManagerBuilder::new(client, &config.name)
        .with_namespace(&config.namespace)
        .with_identity(&config.identity)
        .with_duration(config.duration)
        .with_grace(config.grace)
        .with_field_manager(format!("{FIELD_MANAGER}-{}", config.identity))
        .build()
        .await
        .map_err(err)?;
    let (mut state, task) = manager.watch().await;
    if state.wait_for(|leading| *leading).await.is_err() {
        // The watch task ended before granting leadership: report why.
        return match task.await {
            Ok(Err(e)) => Err(err(e)),
            _ => Err(err(LeaseManagerError::InconsistentState(
                "lease watch ended before leadership was acquired".into(),
            ))),
        };
    }
    Ok(Leadership { state, task })
}

impl Leadership {
    /// Resolves when leadership is lost (another replica took the Lease, or renewals
    /// failed past its duration).
    pub async fn lost(&mut self) {
        // An error means the watch task ended: leadership can no longer be vouched for.
        let _ = self.state.wait_for(|leading| !*leading).await;
    }

    /// Hands the Lease back so a standby takes over without waiting for expiry.
    pub async fn release(self) {
        drop(self.state);
        match self.task.await {
            Ok(Ok(_)) => tracing::info!("released the leader lease"),
            Ok(Err(e)) => tracing::warn!(error = %e, "releasing the leader lease failed"),
            Err(e) => tracing::warn!(error = %e, "lease task failed"),
        }
    }
}
