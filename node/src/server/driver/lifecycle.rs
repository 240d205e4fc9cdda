//! Lifecycle transitions the driver carries out: founding a cluster, preparing to
//! join one, and leaving for good once removed.

use kuberaft_raft::{InitialState, RawNode};
use tokio::sync::oneshot;

use super::{Driver, fail_batch, raft_config};
use crate::server::identity::{Lifecycle, new_cluster_id};
use crate::server::persist::PersistMsg;
use crate::server::shared::RequestError;

impl Driver {
    pub(super) fn become_removed(&mut self) -> Result<(), String> {
        {
            let mut ident = self
                .shared
                .identity
                .write()
                .unwrap_or_else(|p| p.into_inner());
            if ident.lifecycle == Lifecycle::Removed {
                return Ok(());
            }
            ident
                .set_lifecycle(Lifecycle::Removed)
                .map_err(|e| e.to_string())?;
        }
        tracing::warn!("this node was removed from the cluster; it will not serve again");
        self.core = None;
        self.transport.retain(|_| false);
        let held = std::mem::take(&mut self.pending_reads);
        let inflight = self.inflight_reads.drain().map(|(_, group)| group);
        for (_, batch) in inflight.chain(held) {
            fail_batch(batch, RequestError::Refused("this node was removed".into()));
        }
        self.publish();
        Ok(())
    }

    pub(super) async fn bootstrap(&mut self, requested: String) -> Result<String, RequestError> {
        let ident = self.shared.identity();
        match (ident.lifecycle, &ident.cluster_id) {
            (Lifecycle::Uninitialized, _) => {}
            (Lifecycle::Member, Some(c)) if requested.is_empty() || *c == requested => {
                return Ok(c.clone());
            }
            (l, c) => {
                return Err(RequestError::Refused(format!(
                    "cannot bootstrap: this node is {l} in cluster {}",
                    c.as_deref().unwrap_or("(none)")
                )));
            }
        }
        let cluster_id = if requested.is_empty() {
            new_cluster_id().map_err(|e| RequestError::Unavailable(e.to_string()))?
        } else {
            requested
        };
        let state = InitialState::bootstrap(&[self.shared.node_id]);
        let (tx, rx) = oneshot::channel();
        let msg = PersistMsg::Bootstrap {
            entries: state.entries.clone(),
            hard_state: state.hard_state,
            reply: tx,
        };
        let unavailable = |e: String| RequestError::Unavailable(format!("bootstrap: {e}"));
        self.storage
            .send(msg)
            .map_err(|_| unavailable("storage stopped".into()))?;
        rx.await
            .map_err(|_| unavailable("storage stopped".into()))?
            .map_err(unavailable)?;
        self.shared
            .identity
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .enter_cluster(&cluster_id, Lifecycle::Member)
            .map_err(|e| unavailable(e.to_string()))?;
        let mut core = RawNode::new(raft_config(&self.shared), state)
            .map_err(|e| unavailable(e.to_string()))?;
        core.campaign();
        self.core = Some(core);
        tracing::info!(
            cluster_id,
            node_id = self.shared.node_id,
            "bootstrapped a new cluster"
        );
        self.publish();
        Ok(cluster_id)
    }

    pub(super) fn prepare_join(&mut self, cluster_id: String) -> Result<(), RequestError> {
        if cluster_id.is_empty() {
            return Err(RequestError::Invalid("cluster_id is empty".into()));
        }
        let ident = self.shared.identity();
        match (ident.lifecycle, &ident.cluster_id) {
            (Lifecycle::Uninitialized, _) => {}
            (Lifecycle::Joining | Lifecycle::Member, Some(c)) if *c == cluster_id => return Ok(()),
            (l, c) => {
                return Err(RequestError::Refused(format!(
                    "cannot join cluster {cluster_id}: this node is {l} in cluster {}",
                    c.as_deref().unwrap_or("(none)")
                )));
            }
        }
        self.shared
            .identity
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .enter_cluster(&cluster_id, Lifecycle::Joining)
            .map_err(|e| RequestError::Unavailable(e.to_string()))?;
        let core = RawNode::new(raft_config(&self.shared), InitialState::default())
            .map_err(|e| RequestError::Unavailable(e.to_string()))?;
        self.core = Some(core);
        tracing::info!(cluster_id, "prepared to join");
        self.publish();
        Ok(())
    }
}
