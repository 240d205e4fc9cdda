//! Prometheus metrics of the node, served as text on `/metrics`. The driver, the storage
//! thread and the apply task update them; nothing here blocks.

use std::fmt;

use kuberaft_raft::Role;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

/// Every metric of the node, registered once.
pub struct Metrics {
    registry: Registry,
    pub term: Gauge,
    /// 0 follower, 1 pre-candidate, 2 candidate, 3 leader.
    pub role: Gauge,
    pub commit_index: Gauge,
    pub applied_index: Gauge,
    pub apply_lag: Gauge,
    pub leader_changes: Counter,
    pub proposals: Counter,
    pub proposals_failed: Counter,
    pub fsync_seconds: Histogram,
    pub fsync_batch_writes: Histogram,
    pub snapshots: Family<Labels, Counter>,
    pub peer_lag: Family<Labels, Gauge>,
    pub messages_dropped: Family<Labels, Counter>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("raft");
        let m = Metrics {
            term: Gauge::default(),
            role: Gauge::default(),
            commit_index: Gauge::default(),
            applied_index: Gauge::default(),
            apply_lag: Gauge::default(),
            leader_changes: Counter::default(),
            proposals: Counter::default(),
            proposals_failed: Counter::default(),
            fsync_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            fsync_batch_writes: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            snapshots: Family::default(),
            peer_lag: Family::default(),
            messages_dropped: Family::default(),
            registry: Registry::default(),
        };
        registry.register("term", "Current Raft term", m.term.clone());
        registry.register(
            "role",
            "Raft role: 0 follower, 1 pre-candidate, 2 candidate, 3 leader",
            m.role.clone(),
        );
        registry.register(
            "commit_index",
            "Highest committed log index",
            m.commit_index.clone(),
        );
        registry.register(
            "applied_index",
            "Highest applied log index",
            m.applied_index.clone(),
        );
        registry.register(
            "apply_lag",
            "Committed but not yet applied entries",
            m.apply_lag.clone(),
        );
        registry.register(
            "leader_changes",
            "Times the known leader changed",
            m.leader_changes.clone(),
        );
        registry.register(
            "proposals",
            "Proposals accepted by the core",
            m.proposals.clone(),
        );
        registry.register(
            "proposals_failed",
            "Proposals refused or lost",
            m.proposals_failed.clone(),
        );
        registry.register(
            "fsync_seconds",
            "Latency of one WAL write + fdatasync (group commit)",
            m.fsync_seconds.clone(),
        );
        registry.register(
            "fsync_batch_writes",
            "Ready writes made durable by one fdatasync",
            m.fsync_batch_writes.clone(),
        );
        registry.register(
            "snapshots",
            "Snapshots by kind (taken, installed, sent, received)",
            m.snapshots.clone(),
        );
        registry.register(
            "peer_lag",
            "Entries a follower lags behind the leader's last index (leader only)",
            m.peer_lag.clone(),
        );
        registry.register(
            "messages_dropped",
            "Peer messages dropped because the peer's queue was full or it was unreachable",
            m.messages_dropped.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    pub fn set_role(&self, role: Role) {
        self.role.set(match role {
            Role::Follower => 0,
            Role::PreCandidate => 1,
            Role::Candidate => 2,
            Role::Leader => 3,
        });
    }

    pub fn snapshot(&self, kind: &str) {
        self.snapshots
            .get_or_create(&vec![("kind".to_owned(), kind.to_owned())])
            .inc();
    }

    pub fn dropped(&self, peer: u64, n: u64) {
        self.messages_dropped
            .get_or_create(&vec![("peer".to_owned(), peer.to_string())])
            .inc_by(n);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_the_prefix() {
        let m = Metrics::default();
        m.term.set(3);
        m.set_role(Role::Leader);
        m.fsync_seconds.observe(0.001);
        m.snapshot("taken");
        m.peer_lag
            .get_or_create(&vec![("peer".into(), "9".into())])
            .set(4);
        let text = m.render();
        for name in [
            "raft_term 3",
            "raft_role 3",
            "raft_fsync_seconds_bucket",
            "raft_snapshots_total{kind=\"taken\"} 1",
            "raft_peer_lag{peer=\"9\"} 4",
            "raft_leader_changes_total",
            "raft_apply_lag",
        ] {
            assert!(text.contains(name), "{name} missing in\n{text}");
        }
    }
}
