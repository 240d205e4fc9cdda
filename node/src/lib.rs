//! The KubeRaft node: durable storage, state machines, gRPC server and the
//! leader-following client.

pub mod sm;
pub mod storage;
