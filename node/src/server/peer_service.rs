//! The RaftPeer service: message batches and snapshot streams from other members.
//!
//! Every envelope is checked before any of it reaches the core: the cluster id must be
//! ours, the addressee must be this node, the sender must not be a removed member, and
//! every message must convert. A bad envelope is refused as a whole with a clear status;
//! nothing of it is applied.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kuberaft_raft::{Message, NodeId, SnapshotMeta};
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use super::convert::{message_from_pb, snapshot_message, snapshot_meta_from_pb};
use super::identity::Lifecycle;
use super::shared::{DriverMsg, Shared};
use super::transport::REMOVED_KEY;
use crate::pb::raft as pb;
use crate::pb::raft::raft_peer_server::RaftPeer;
use crate::storage::SnapshotWriter;

/// A snapshot stream that broke off and may be resumed.
struct Partial {
    index: u64,
    term: u64,
    writer: SnapshotWriter,
    received: u64,
    crc: u32,
}

pub struct PeerService {
    shared: Arc<Shared>,
    partials: Mutex<HashMap<NodeId, Partial>>,
}

impl std::fmt::Debug for PeerService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerService").finish_non_exhaustive()
    }
}

impl PeerService {
    pub fn new(shared: Arc<Shared>) -> Self {
        PeerService {
            shared,
            partials: Mutex::new(HashMap::new()),
        }
    }

    /// Refuses traffic that is not for this node of this cluster, or from a removed member.
    fn admit(&self, cluster_id: &str, from: NodeId, to: NodeId) -> Result<(), Status> {
        let id = self.shared.node_id;
        let (cluster, lifecycle) = self.shared.membership_card();
        let ours = match (&cluster, lifecycle) {
            (_, Lifecycle::Removed) => {
                return Err(Status::failed_precondition(format!(
                    "node {id} was removed from its cluster and accepts no Raft traffic"
                )));
            }
            (Some(c), Lifecycle::Joining | Lifecycle::Member) => c,
            _ => {
                return Err(Status::failed_precondition(format!(
                    "node {id} belongs to no cluster yet (uninitialized)"
                )));
            }
        };
        if cluster_id != ours {
            return Err(Status::permission_denied(format!(
                "cluster id mismatch: this node belongs to cluster {ours:?}, the message is for cluster {cluster_id:?}"
            )));
        }
        if to != id {
            return Err(Status::permission_denied(format!(
                "message for node {to} reached node {id}"
            )));
        }
        if self.shared.is_removed(from) {
            let mut status = Status::permission_denied(format!(
                "node {from} was removed from cluster {ours} and may not rejoin"
            ));
            status
                .metadata_mut()
                .insert(REMOVED_KEY, MetadataValue::from_static("1"));
            return Err(status);
        }
        Ok(())
    }

    fn convert(&self, env: pb::Envelope) -> Result<Vec<Message>, Status> {
        self.admit(&env.cluster_id, env.from, env.to)?;
        let mut out = Vec::with_capacity(env.messages.len());
        for (i, m) in env.messages.into_iter().enumerate() {
            let m = message_from_pb(m)
                .map_err(|e| Status::invalid_argument(format!("envelope message {i}: {e}")))?;
            if m.from != env.from || m.to != env.to {
                return Err(Status::invalid_argument(format!(
                    "envelope message {i}: from/to ({}, {}) differ from the envelope's ({}, {})",
                    m.from, m.to, env.from, env.to
                )));
            }
            out.push(m);
        }
        self.shared.learn_peer(env.from, &env.from_addr);
        Ok(out)
    }

    async fn deliver(&self, msgs: Vec<Message>) -> Result<(), Status> {
        if msgs.is_empty() {
            return Ok(());
        }
        self.shared
            .driver
            .send(DriverMsg::Peer(msgs))
            .await
            .map_err(|_| Status::unavailable("the node is shutting down"))
    }

    fn take_partial(&self, from: NodeId) -> Option<Partial> {
        self.partials
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&from)
    }

    /// Receives one InstallSnapshot stream; returns the metadata once stored.
    async fn receive(
        &self,
        mut stream: Streaming<pb::SnapshotChunk>,
    ) -> Result<(NodeId, u64, SnapshotMeta, u64), Status> {
        let mut state: Option<(NodeId, u64, SnapshotMeta, Partial)> = None;
        loop {
            let chunk = match stream.message().await {
                Ok(Some(c)) => c,
                end => {
                    // Keep what arrived so the sender can resume from there.
                    if let Some((from, _, _, partial)) = state {
                        self.partials
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(from, partial);
                    }
                    return Err(end.err().unwrap_or_else(|| {
                        Status::invalid_argument("the snapshot stream ended without a last chunk")
                    }));
                }
            };
            if state.is_none() {
                self.admit(&chunk.cluster_id, chunk.from, chunk.to)?;
                let meta = chunk.meta.clone().ok_or_else(|| {
                    Status::invalid_argument("malformed SnapshotChunk: field `meta` is missing")
                })?;
                let meta = snapshot_meta_from_pb(meta)
                    .map_err(|e| Status::invalid_argument(e.to_string()))?;
                let resumed = self
                    .take_partial(chunk.from)
                    .filter(|p| (p.index, p.term) == (meta.index, meta.term));
                let partial = match resumed {
                    Some(p) if p.received == chunk.offset => p,
                    Some(p) => {
                        let msg = format!(
                            "resume offset {} does not match the {} bytes held",
                            chunk.offset, p.received
                        );
                        self.partials
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(chunk.from, p);
                        return Err(Status::failed_precondition(msg));
                    }
                    None if chunk.offset == 0 => Partial {
                        index: meta.index,
                        term: meta.term,
                        writer: self
                            .shared
                            .store
                            .writer(meta.clone())
                            .map_err(|e| Status::internal(e.to_string()))?,
                        received: 0,
                        crc: 0,
                    },
                    None => {
                        return Err(Status::failed_precondition(format!(
                            "no partial snapshot to resume at offset {}",
                            chunk.offset
                        )));
                    }
                };
                state = Some((chunk.from, chunk.term, meta, partial));
            }
            let (from, term, meta, partial) = state.as_mut().expect("set above");
            if chunk.offset != partial.received {
                return Err(Status::invalid_argument(format!(
                    "chunk at offset {} but {} bytes were received",
                    chunk.offset, partial.received
                )));
            }
            if !chunk.data.is_empty() {
                let data = chunk.data;
                tokio::task::block_in_place(|| {
                    std::io::Write::write_all(&mut partial.writer, &data)
                })
                .map_err(|e| Status::internal(format!("writing the snapshot: {e}")))?;
                partial.crc = crc32c::crc32c_append(partial.crc, &data);
                partial.received += data.len() as u64;
            }
            if chunk.last {
                let (from, term, meta) = (*from, *term, meta.clone());
                let (_, _, _, partial) = state.take().expect("set above");
                if partial.crc != chunk.crc32c {
                    let _ = partial.writer.abort();
                    return Err(Status::data_loss(format!(
                        "snapshot checksum mismatch: received {:08x}, sender says {:08x}",
                        partial.crc, chunk.crc32c
                    )));
                }
                let size = partial.received;
                tokio::task::block_in_place(|| partial.writer.finish())
                    .map_err(|e| Status::internal(format!("storing the snapshot: {e}")))?;
                return Ok((from, term, meta, size));
            }
        }
    }
}

#[tonic::async_trait]
impl RaftPeer for PeerService {
    async fn stream(
        &self,
        request: Request<Streaming<pb::Envelope>>,
    ) -> Result<Response<pb::SendAck>, Status> {
        let mut stream = request.into_inner();
        while let Some(env) = stream.message().await? {
            let msgs = self.convert(env)?;
            self.deliver(msgs).await?;
        }
        Ok(Response::new(pb::SendAck {}))
    }

    async fn send(&self, request: Request<pb::Envelope>) -> Result<Response<pb::SendAck>, Status> {
        let msgs = self.convert(request.into_inner())?;
        self.deliver(msgs).await?;
        Ok(Response::new(pb::SendAck {}))
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<pb::SnapshotChunk>>,
    ) -> Result<Response<pb::InstallSnapshotResponse>, Status> {
        let (from, term, meta, size) = self.receive(request.into_inner()).await?;
        self.shared.metrics.snapshot("received");
        let to = self.shared.node_id;
        self.deliver(vec![snapshot_message(from, to, term, meta)])
            .await?;
        Ok(Response::new(pb::InstallSnapshotResponse {
            term: self.shared.view().brief.term,
            received: size,
            installed: true,
        }))
    }

    async fn snapshot_offset(
        &self,
        request: Request<pb::ResumeRequest>,
    ) -> Result<Response<pb::InstallSnapshotResponse>, Status> {
        let req = request.into_inner();
        self.admit(&req.cluster_id, req.from, self.shared.node_id)?;
        let partials = self.partials.lock().unwrap_or_else(|p| p.into_inner());
        let received = partials
            .get(&req.from)
            .filter(|p| (p.index, p.term) == (req.index, req.term))
            .map_or(0, |p| p.received);
        Ok(Response::new(pb::InstallSnapshotResponse {
            term: self.shared.view().brief.term,
            received,
            installed: false,
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use kuberaft_raft::{Membership, MessageBody};
    use tonic::Code;
    use tonic::transport::Server;

    use super::*;
    use crate::pb::raft::raft_peer_client::RaftPeerClient;
    use crate::pb::raft::raft_peer_server::RaftPeerServer;
    use crate::server::convert::snapshot_meta_to_pb;
    use crate::server::listen::nodelay_incoming;
    use crate::server::shared::test_shared;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_broken_snapshot_stream_resumes_from_the_bytes_held() {
        let dir = tempfile::tempdir().unwrap();
        let (shared, mut driver_rx) = test_shared(dir.path(), "c1");
        let me = shared.node_id;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let svc = RaftPeerServer::new(PeerService::new(shared.clone()));
        tokio::spawn(
            Server::builder()
                .add_service(svc)
                .serve_with_incoming(nodelay_incoming(listener)),
        );
        let mut client = RaftPeerClient::connect(format!("http://{addr}"))
            .await
            .unwrap();

        let data: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
        let meta = SnapshotMeta {
            index: 50,
            term: 3,
            membership: Membership::with_voters([7, me]),
        };
        let chunk = |offset: u64, bytes: &[u8], last: bool, crc32c: u32| pb::SnapshotChunk {
            cluster_id: "c1".into(),
            from: 7,
            to: me,
            term: 3,
            meta: Some(snapshot_meta_to_pb(&meta)),
            offset,
            data: bytes.to_vec(),
            last,
            crc32c,
        };
        let resume = pb::ResumeRequest {
            cluster_id: "c1".into(),
            from: 7,
            index: 50,
            term: 3,
        };

        // The first stream breaks off after 400 000 bytes.
        let first = vec![
            chunk(0, &data[..200_000], false, 0),
            chunk(200_000, &data[200_000..400_000], false, 0),
        ];
        let err = client
            .install_snapshot(tokio_stream::iter(first))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        let held = client.snapshot_offset(resume.clone()).await.unwrap();
        assert_eq!(held.into_inner().received, 400_000);

        // A resume at the wrong offset is refused and the partial stays.
        let wrong = vec![chunk(300_000, &data[300_000..], false, 0)];
        let err = client
            .install_snapshot(tokio_stream::iter(wrong))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition);
        assert!(
            err.message().contains("400000 bytes held"),
            "{}",
            err.message()
        );

        // The resumed stream completes; the checksum covers the whole data.
        let crc = crc32c::crc32c(&data);
        let rest = vec![
            chunk(400_000, &data[400_000..], false, 0),
            chunk(600_000, &[], true, crc),
        ];
        let done = client
            .install_snapshot(tokio_stream::iter(rest))
            .await
            .unwrap()
            .into_inner();
        assert!(done.installed);
        assert_eq!(done.received, 600_000);
        match driver_rx.recv().await {
            Some(DriverMsg::Peer(msgs)) => match &msgs[..] {
                [m] => match &m.body {
                    MessageBody::Snapshot { snapshot } => assert_eq!(snapshot.meta, meta),
                    other => panic!("unexpected {other:?}"),
                },
                other => panic!("unexpected {other:?}"),
            },
            other => panic!("unexpected {other:?}"),
        }
        let file = shared.store.list().unwrap().remove(0);
        let mut stored = Vec::new();
        shared
            .store
            .reader(&file)
            .unwrap()
            .read_to_end(&mut stored)
            .unwrap();
        assert!(stored == data, "the stored snapshot is the data sent");

        // A stream whose checksum does not match is refused and nothing is stored.
        let bad = vec![chunk(0, &data[..10], false, 0), chunk(10, &[], true, crc)];
        let err = client
            .install_snapshot(tokio_stream::iter(bad))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::DataLoss, "{err:?}");
        assert_eq!(shared.store.list().unwrap().len(), 1);
    }
}
