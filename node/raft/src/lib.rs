//! The pure Raft consensus core of KubeRaft.
//!
//! No IO, no clock, no global randomness: time arrives as [`RawNode::tick`], randomness
//! through [`Config::seed`], and everything the application must persist, send or apply
//! comes out of [`RawNode::ready`] (see [`Ready`] for the contract). The shape is
//! etcd-io/raft's RawNode/Ready loop.
//!
//! ```text
//!   tick / step(msg) / propose / read_index          ready()
//!  ───────────────────────────────────────► RawNode ─────────► persist, send, apply
//!                                              ▲                      │
//!                                              └── on_persisted / on_applied
//! ```

mod config;
mod error;
#[doc(hidden)]
pub mod interaction;
pub mod linearizability;
mod log;
mod membership;
mod progress;
mod raft;
mod raw_node;
pub mod rng;
pub mod sim;
mod types;

pub use config::Config;
#[cfg(feature = "mutations")]
pub use config::Mutation;
pub use error::{ConfChangeError, ConfigError, Error, Result};
pub use membership::VoteResult;
pub use progress::ProgressState;
pub use raw_node::{Brief, InitialState, PeerProgress, RawNode, Ready, SoftState, Status};
pub use types::*;
