//! What the node's tasks share: the request and event types that flow into the driver,
//! the errors requests end with, and the state every service reads (identity, address
//! book, the driver's latest view of the core).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use kuberaft_raft::{
    Brief, ConfChange, Membership, Message, NodeId, ReadMode, SnapshotMeta, Status,
};
use tokio::sync::{mpsc, oneshot, watch};

use super::identity::{Identity, Lifecycle};
use super::members::AddressBook;
use super::metrics::Metrics;
use crate::storage::SnapshotStore;

/// Why a request through the driver did not produce an answer. Every variant but
/// `Invalid` and `Refused` is worth retrying (with the same session sequence number).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("not the leader")]
    NotLeader { leader: Option<NodeId> },
    /// The entry's index was taken by another leader's entry: it was never committed.
    #[error("the proposal was lost in a leadership change; retry")]
    Lost,
    /// The outcome is unknown (a snapshot replaced the log past it, or the node stops).
    #[error("{0}; retry")]
    Unavailable(String),
    /// A rule of the core refused it now, but it may succeed later.
    #[error("{0}")]
    Busy(String),
    /// The request can never succeed as given.
    #[error("{0}")]
    Invalid(String),
    /// This node's lifecycle forbids it.
    #[error("{0}")]
    Refused(String),
}

impl From<kuberaft_raft::Error> for RequestError {
    fn from(e: kuberaft_raft::Error) -> Self {
        use kuberaft_raft::Error as E;
        match e {
            E::NotLeader { leader } => RequestError::NotLeader { leader },
            E::TransferInProgress { .. } | E::ConfChangePending { .. } | E::NotReadyInTerm => {
                RequestError::Busy(e.to_string())
            }
            other => RequestError::Invalid(other.to_string()),
        }
    }
}

pub type Reply<T> = oneshot::Sender<Result<T, RequestError>>;

/// Requests into the driver, from services and the HTTP endpoints.
#[derive(Debug)]
pub enum DriverMsg {
    Peer(Vec<Message>),
    /// An application command (already wrapped in the node envelope) or system command.
    Propose {
        data: Vec<u8>,
        reply: Reply<Vec<u8>>,
    },
    ConfChange {
        cc: ConfChange,
        reply: Reply<u64>,
    },
    Read {
        query: Vec<u8>,
        mode: ReadKind,
        reply: Reply<Vec<u8>>,
    },
    Status(oneshot::Sender<Option<Status>>),
    Transfer {
        to: NodeId,
        reply: Reply<NodeId>,
    },
    Bootstrap {
        cluster_id: String,
        reply: Reply<String>,
    },
    PrepareJoin {
        cluster_id: String,
        reply: Reply<()>,
    },
    Snapshot(Reply<SnapshotMeta>),
    Shutdown,
}

/// How a read is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadKind {
    Raft(ReadMode),
    Stale,
}

/// What the driver publishes after every round, for services that must not wait on it.
#[derive(Clone, Debug)]
pub struct View {
    pub lifecycle: Lifecycle,
    /// The core's role, term, leader and indexes (all zero when it runs no core).
    pub brief: Brief,
    pub membership: Membership,
}

/// Static settings of this node.
#[derive(Clone, Debug)]
pub struct Settings {
    pub name: String,
    pub advertise_peer: String,
    pub advertise_client: String,
    pub tick: std::time::Duration,
    pub election_ticks: u32,
    pub heartbeat_ticks: u32,
    pub snapshot_threshold: u64,
    /// Bearer token Admin calls must carry, if any.
    pub admin_token: Option<String>,
    /// TLS on the client port and mutual TLS between members, if configured.
    pub tls: Option<Arc<crate::tls::ServerTls>>,
}

/// State shared by the driver, the transport, the services and the HTTP endpoints.
#[derive(Debug)]
pub struct Shared {
    pub node_id: NodeId,
    pub settings: Settings,
    pub identity: RwLock<Identity>,
    pub book: RwLock<AddressBook>,
    /// Peer addresses learned from envelopes, for peers the book does not know yet.
    pub learned: RwLock<HashMap<NodeId, String>>,
    /// Published by the driver after every round; services wait on it with `wait_for`.
    pub view: watch::Sender<View>,
    pub metrics: Metrics,
    pub store: Arc<SnapshotStore>,
    pub driver: mpsc::Sender<DriverMsg>,
}

impl Shared {
    pub fn view(&self) -> View {
        self.view.borrow().clone()
    }

    pub fn identity(&self) -> Identity {
        self.identity
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The lifecycle, without copying the whole identity (read on hot paths).
    pub fn lifecycle(&self) -> Lifecycle {
        self.identity
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .lifecycle
    }

    /// The cluster id and lifecycle, for stamping and checking peer traffic.
    pub fn membership_card(&self) -> (Option<String>, Lifecycle) {
        let ident = self.identity.read().unwrap_or_else(|p| p.into_inner());
        (ident.cluster_id.clone(), ident.lifecycle)
    }

    pub fn book(&self) -> AddressBook {
        self.book.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn is_removed(&self, id: NodeId) -> bool {
        self.book
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_removed(id)
    }

    /// Where to reach peer `id`: what it last told us itself (it may have restarted on
    /// another address), else the replicated book.
    pub fn peer_addr(&self, id: NodeId) -> Option<String> {
        let learned = self.learned.read().unwrap_or_else(|p| p.into_inner());
        if let Some(addr) = learned.get(&id) {
            return Some(addr.clone());
        }
        drop(learned);
        let book = self.book.read().unwrap_or_else(|p| p.into_inner());
        book.get(id).map(|m| m.peer_addr.clone())
    }

    pub fn client_addr(&self, id: NodeId) -> Option<String> {
        let book = self.book.read().unwrap_or_else(|p| p.into_inner());
        book.get(id).map(|m| m.client_addr.clone())
    }

    pub fn learn_peer(&self, id: NodeId, addr: &str) {
        if addr.is_empty() {
            return;
        }
        let mut learned = self.learned.write().unwrap_or_else(|p| p.into_inner());
        if learned.get(&id).map(String::as_str) != Some(addr) {
            learned.insert(id, addr.to_owned());
        }
    }

    /// Sends a request to the driver and waits for its answer.
    pub async fn ask<T>(
        &self,
        make: impl FnOnce(Reply<T>) -> DriverMsg,
    ) -> Result<T, RequestError> {
        let (tx, rx) = oneshot::channel();
        self.driver
            .send(make(tx))
            .await
            .map_err(|_| RequestError::Unavailable("the node is shutting down".into()))?;
        rx.await
            .map_err(|_| RequestError::Unavailable("the node is shutting down".into()))?
    }

    /// The core's full status, or `None` when the node runs no core.
    pub async fn status(&self) -> Option<Status> {
        let (tx, rx) = oneshot::channel();
        self.driver.send(DriverMsg::Status(tx)).await.ok()?;
        rx.await.ok().flatten()
    }
}

impl View {
    /// Ready means: a member of the configuration, a leader known, and applied within a
    /// small lag of the commit index this node knows.
    pub fn ready(&self, id: NodeId) -> Result<(), String> {
        if self.lifecycle != Lifecycle::Member {
            return Err(format!("lifecycle is {}", self.lifecycle));
        }
        if !self.membership.contains(id) {
            return Err("not in the configuration".into());
        }
        if self.brief.leader == 0 {
            return Err("no leader known".into());
        }
        let lag = self.brief.commit.saturating_sub(self.brief.applied);
        if lag > READY_MAX_LAG {
            return Err(format!("applied index lags the commit index by {lag}"));
        }
        Ok(())
    }
}

/// How many committed entries may wait for apply on a ready member.
pub const READY_MAX_LAG: u64 = 100;

/// A node's shared state over a temp dir, for tests of the services: the identity is a
/// member of `cluster_id`, and the returned receiver sees what reaches the driver.
#[cfg(test)]
pub(crate) fn test_shared(
    dir: &std::path::Path,
    cluster_id: &str,
) -> (Arc<Shared>, mpsc::Receiver<DriverMsg>) {
    use crate::storage::fs::RealFs;
    let mut identity = Identity::load_or_create(dir).unwrap();
    identity
        .enter_cluster(cluster_id, Lifecycle::Member)
        .unwrap();
    let store = SnapshotStore::open(Arc::new(RealFs), dir.join("snap"), 3).unwrap();
    let (driver, rx) = mpsc::channel(64);
    let (view, _) = watch::channel(View {
        lifecycle: Lifecycle::Member,
        brief: Brief {
            term: 1,
            ..Brief::default()
        },
        membership: Membership::default(),
    });
    let shared = Shared {
        node_id: identity.node_id,
        settings: Settings {
            name: "test".into(),
            advertise_peer: "127.0.0.1:1".into(),
            advertise_client: "127.0.0.1:2".into(),
            tick: std::time::Duration::from_millis(10),
            election_ticks: 10,
            heartbeat_ticks: 1,
            snapshot_threshold: 0,
            admin_token: None,
            tls: None,
        },
        identity: RwLock::new(identity),
        book: Default::default(),
        learned: Default::default(),
        view,
        metrics: Metrics::default(),
        store: Arc::new(store),
        driver,
    };
    (Arc::new(shared), rx)
}
