//! Streaming a snapshot to a follower that fell behind the leader's log.
//!
//! The core only says "send snapshot (index, term)"; the bytes come from the snapshot
//! store, read on a blocking thread and sent in chunks. The sender first asks how much
//! the receiver already holds (`SnapshotOffset`), so a broken transfer resumes instead
//! of starting over; the last chunk carries the CRC32C of the whole data.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kuberaft_raft::{NodeId, SnapshotMeta};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Request;

use super::convert::snapshot_meta_to_pb;
use super::driver::Event;
use super::shared::Shared;
use super::transport::{connect, peer_client};
use crate::pb::raft as pb;

/// Bytes per chunk.
pub const CHUNK: usize = 256 << 10;
const OFFSET_DEADLINE: Duration = Duration::from_secs(2);
/// Deadline of one whole InstallSnapshot call.
const INSTALL_DEADLINE: Duration = Duration::from_secs(300);

/// Sends snapshot `meta` to `to` and reports the outcome to the core.
pub async fn send(
    shared: Arc<Shared>,
    events: mpsc::UnboundedSender<Event>,
    to: NodeId,
    term: u64,
    meta: SnapshotMeta,
    busy: Arc<AtomicBool>,
) {
    let result = try_send(&shared, to, term, &meta).await;
    match &result {
        Ok(bytes) => tracing::info!(peer = to, index = meta.index, bytes, "snapshot sent"),
        Err(why) => tracing::warn!(
            peer = to,
            index = meta.index,
            why,
            "sending a snapshot failed"
        ),
    }
    busy.store(false, Ordering::Release);
    let _ = events.send(Event::SnapshotSent {
        to,
        failed: result.is_err(),
    });
}

async fn try_send(
    shared: &Shared,
    to: NodeId,
    term: u64,
    meta: &SnapshotMeta,
) -> Result<u64, String> {
    let channel = connect(shared, to).await?;
    let mut client = peer_client(channel);
    let cluster_id = shared.membership_card().0.unwrap_or_default();
    let from = shared.node_id;
    let mut req = Request::new(pb::ResumeRequest {
        cluster_id: cluster_id.clone(),
        from,
        index: meta.index,
        term: meta.term,
    });
    req.set_timeout(OFFSET_DEADLINE);
    let offset = match client.snapshot_offset(req).await {
        Ok(r) => r.into_inner().received,
        Err(_) => 0,
    };
    let store = shared.store.clone();
    let file = store
        .list()
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|f| (f.index, f.term) == (meta.index, meta.term))
        .ok_or_else(|| format!("snapshot {} term {} is not stored", meta.index, meta.term))?;
    let template = pb::SnapshotChunk {
        cluster_id,
        from,
        to,
        term,
        meta: Some(snapshot_meta_to_pb(meta)),
        ..Default::default()
    };
    let (tx, rx) = mpsc::channel::<pb::SnapshotChunk>(4);
    let producer = tokio::task::spawn_blocking(move || -> Result<u64, String> {
        let mut reader = store.reader(&file).map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; CHUNK];
        let (mut pos, mut crc) = (0u64, 0u32);
        loop {
            let n = reader
                .read(&mut buf)
                .map_err(|e| reader.error(e).to_string())?;
            if n == 0 {
                break;
            }
            crc = crc32c::crc32c_append(crc, &buf[..n]);
            let end = pos + n as u64;
            if end > offset {
                let skip = offset.saturating_sub(pos) as usize;
                let chunk = pb::SnapshotChunk {
                    offset: pos + skip as u64,
                    data: buf[skip..n].to_vec(),
                    ..template.clone()
                };
                tx.blocking_send(chunk)
                    .map_err(|_| "the receiver ended the stream".to_owned())?;
            }
            pos = end;
        }
        let last = pb::SnapshotChunk {
            offset: pos,
            last: true,
            crc32c: crc,
            ..template
        };
        tx.blocking_send(last)
            .map_err(|_| "the receiver ended the stream".to_owned())?;
        Ok(pos)
    });
    let mut req = Request::new(ReceiverStream::new(rx));
    req.set_timeout(INSTALL_DEADLINE);
    let answer = client.install_snapshot(req).await;
    let produced = producer.await.map_err(|e| e.to_string())?;
    let answer = answer.map_err(|s| format!("{:?}: {}", s.code(), s.message()))?;
    let size = produced?;
    if !answer.into_inner().installed {
        return Err("the receiver did not install the snapshot".into());
    }
    Ok(size)
}
