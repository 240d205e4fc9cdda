//! The pure Raft consensus core of KubeRaft.
//!
//! No IO, no clock, no global randomness: time arrives as [`RawNode::tick`], randomness
//! through a seed in [`Config`], and everything the application must persist, send or
//! apply comes out of [`RawNode::ready`]. The shape is etcd-io/raft's RawNode/Ready loop.

mod types;

pub use types::*;
