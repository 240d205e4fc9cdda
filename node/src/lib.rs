//! The KubeRaft node: durable storage, state machines, gRPC server and the
//! leader-following client.

pub mod client;
pub mod pb;
pub mod server;
pub mod sm;
pub mod storage;
pub mod tls;
