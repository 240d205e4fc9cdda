//! Generated protobuf and gRPC code. Protobuf stays at the edge: the server and the client
//! convert to domain types right after these.

/// Peer traffic between members (`raft.proto`).
pub mod raft {
    tonic::include_proto!("kuberaft.raft.v1");
}

/// The client key-value API (`kv.proto`).
pub mod kv {
    tonic::include_proto!("kuberaft.kv.v1");
}

/// The operator's Admin API (`admin.proto`).
pub mod admin {
    tonic::include_proto!("kuberaft.admin.v1");
}
