//! The node runtime behind `raft-node`: the driver loop that owns the Raft core, the
//! storage thread and the apply task, the peer transport, the RaftPeer, Kv and Admin gRPC
//! services and the HTTP endpoints. [`Node::start`] assembles them.

pub mod admin_service;
mod apply;
pub mod convert;
mod driver;
mod http;
pub mod identity;
pub mod kv_service;
mod listen;
pub mod members;
mod metrics;
mod node;
pub mod node_sm;
mod peer_service;
mod persist;
mod shared;
mod snapshot_send;
mod transport;

pub use identity::{Identity, Lifecycle};
pub use node::{Listeners, Node, NodeOptions};

/// Why a node could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
    #[error("storage: {0}")]
    Storage(#[from] crate::storage::Error),
    #[error("recovery: {0}")]
    Recovery(String),
    #[error("fatal: {0}")]
    Fatal(String),
}
