//! Sending Raft messages to peers: one task per peer, each with a bounded queue and a
//! long-lived `Stream` RPC.
//!
//! The driver only ever `try_send`s: a full queue drops the message and the core hears
//! `report_unreachable`, so one slow or dead peer never blocks the driver or the other
//! peers. A broken stream is reopened with exponential backoff; what queued meanwhile is
//! dropped (Raft resends). Snapshots travel separately (see [`super::snapshot_send`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kuberaft_raft::{Message, MessageBody, NodeId};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Request;
use tonic::transport::{Channel, Endpoint};

use super::convert::message_to_pb;
use super::driver::Event;
use super::shared::Shared;
use super::snapshot_send;
use crate::pb::raft as pb;
use crate::pb::raft::raft_peer_client::RaftPeerClient;
use crate::tls::TlsConnector;

/// Messages queued for one peer before new ones are dropped.
const QUEUE: usize = 4096;
/// A batch (one envelope) holds at most this many messages or entry bytes.
const BATCH_MSGS: usize = 256;
const BATCH_BYTES: u64 = 4 << 20;
/// The largest peer RPC message either side accepts.
pub const MAX_PEER_MESSAGE: usize = 64 << 20;
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Deadline of one `Stream` call. The sender closes a stream cleanly once it is older
/// than `STREAM_ROTATE` and opens the next, so the deadline only fires on a stuck call.
const STREAM_DEADLINE: Duration = Duration::from_secs(600);
const STREAM_ROTATE: Duration = Duration::from_secs(300);
const BACKOFF_MIN: Duration = Duration::from_millis(20);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Metadata key a peer sets when it refuses a message from a removed member.
pub const REMOVED_KEY: &str = "kuberaft-removed";

#[derive(Debug)]
struct Peer {
    tx: mpsc::Sender<Message>,
    task: JoinHandle<()>,
    snapshot_busy: Arc<AtomicBool>,
}

/// The driver's handle on every peer task.
#[derive(Debug)]
pub struct Transport {
    shared: Arc<Shared>,
    events: mpsc::UnboundedSender<Event>,
    peers: HashMap<NodeId, Peer>,
}

impl Transport {
    pub fn new(shared: Arc<Shared>, events: mpsc::UnboundedSender<Event>) -> Self {
        Transport {
            shared,
            events,
            peers: HashMap::new(),
        }
    }

    /// Queues `m`; `false` when it was dropped (the caller reports the peer unreachable).
    pub fn send(&mut self, m: Message) -> bool {
        let to = m.to;
        let peer = self.peers.entry(to).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(QUEUE);
            let task = tokio::spawn(peer_loop(to, rx, self.shared.clone(), self.events.clone()));
            Peer {
                tx,
                task,
                snapshot_busy: Arc::new(AtomicBool::new(false)),
            }
        });
        if let MessageBody::Snapshot { snapshot } = &m.body {
            // One stream at a time: the core sends nothing else until it is answered.
            if !peer.snapshot_busy.swap(true, Ordering::AcqRel) {
                tokio::spawn(snapshot_send::send(
                    self.shared.clone(),
                    self.events.clone(),
                    to,
                    m.term,
                    snapshot.meta.clone(),
                    peer.snapshot_busy.clone(),
                ));
            }
            return true;
        }
        match peer.tx.try_send(m) {
            Ok(()) => true,
            Err(_) => {
                self.shared.metrics.dropped(to, 1);
                false
            }
        }
    }

    /// Asks each of `peers` whether this node is still a member of the cluster, with an
    /// empty envelope (no Raft message): a peer that applied this node's removal refuses
    /// it with [`REMOVED_KEY`], and [`Event::RemovedByPeer`] follows. For a node whose own
    /// log holds its removal but which never learned that it committed: the leader stops
    /// replicating to it once it does, so nothing else would ever tell it (etcd's peers
    /// answer such a member 410 Gone).
    pub fn ping_membership(&self, peers: impl IntoIterator<Item = NodeId>) {
        for id in peers {
            let shared = self.shared.clone();
            let events = self.events.clone();
            tokio::spawn(async move {
                let Ok(channel) = connect(&shared, id).await else {
                    return;
                };
                let envelope = pb::Envelope {
                    cluster_id: shared.membership_card().0.unwrap_or_default(),
                    from: shared.node_id,
                    to: id,
                    messages: Vec::new(),
                    from_addr: shared.settings.advertise_peer.clone(),
                };
                let mut req = Request::new(envelope);
                req.set_timeout(CONNECT_TIMEOUT);
                if let Err(status) = peer_client(channel).send(req).await
                    && status.metadata().get(REMOVED_KEY).is_some()
                {
                    let _ = events.send(Event::RemovedByPeer(id));
                }
            });
        }
    }

    /// Stops the tasks of peers for which `keep` is false.
    pub fn retain(&mut self, keep: impl Fn(NodeId) -> bool) {
        self.peers.retain(|&id, p| {
            let k = keep(id);
            if !k {
                p.task.abort();
            }
            k
        });
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        for p in self.peers.values() {
            p.task.abort();
        }
    }
}

/// A channel to `id` with TCP_NODELAY, keepalives and a connect deadline; over mutual
/// TLS when the node has TLS configured.
pub async fn connect(shared: &Shared, id: NodeId) -> Result<Channel, String> {
    let addr = shared
        .peer_addr(id)
        .ok_or_else(|| format!("no address known for node {id}"))?;
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| format!("bad peer address {addr:?}: {e}"))?
        .tcp_nodelay(true)
        .connect_timeout(CONNECT_TIMEOUT)
        .http2_keep_alive_interval(Duration::from_secs(1))
        .keep_alive_timeout(Duration::from_secs(3))
        .keep_alive_while_idle(true);
    let channel = match &shared.settings.tls {
        Some(tls) => {
            endpoint
                .connect_with_connector(TlsConnector::for_peers(tls.clone()))
                .await
        }
        None => endpoint.connect().await,
    };
    channel.map_err(|e| format!("connect {addr}: {}", describe_err(&e)))
}

fn describe_err(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

pub fn peer_client(channel: Channel) -> RaftPeerClient<Channel> {
    RaftPeerClient::new(channel)
        .max_decoding_message_size(MAX_PEER_MESSAGE)
        .max_encoding_message_size(MAX_PEER_MESSAGE)
}

enum Ended {
    QueueClosed,
    /// The stream reached its age limit and was closed cleanly: open the next one now.
    Rotated,
    Failed {
        why: String,
        delivered: bool,
    },
}

async fn peer_loop(
    id: NodeId,
    mut rx: mpsc::Receiver<Message>,
    shared: Arc<Shared>,
    events: mpsc::UnboundedSender<Event>,
) {
    let mut backoff = BACKOFF_MIN;
    loop {
        match connect(&shared, id).await {
            Ok(channel) => match stream_to(id, channel, &mut rx, &shared, &events).await {
                Ended::QueueClosed => return,
                Ended::Rotated => continue,
                Ended::Failed { why, delivered } => {
                    tracing::debug!(peer = id, why, "peer stream ended");
                    if delivered {
                        backoff = BACKOFF_MIN;
                    }
                }
            },
            Err(why) => tracing::debug!(peer = id, why, "cannot reach peer"),
        }
        let _ = events.send(Event::Unreachable(id));
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
        // What queued while the peer was unreachable is stale; Raft resends what matters.
        let mut dropped = 0;
        loop {
            match rx.try_recv() {
                Ok(_) => dropped += 1,
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => return,
            }
        }
        if dropped > 0 {
            shared.metrics.dropped(id, dropped);
        }
    }
}

/// Pumps the queue into one `Stream` call until it fails.
async fn stream_to(
    id: NodeId,
    channel: Channel,
    rx: &mut mpsc::Receiver<Message>,
    shared: &Shared,
    events: &mpsc::UnboundedSender<Event>,
) -> Ended {
    let (stx, srx) = mpsc::channel::<pb::Envelope>(16);
    let mut client = peer_client(channel);
    let mut req = Request::new(ReceiverStream::new(srx));
    req.set_timeout(STREAM_DEADLINE);
    let mut call = tokio::spawn(async move { client.stream(req).await });
    let started = tokio::time::Instant::now();
    let mut delivered = false;
    let failed = |res: Result<Result<_, tonic::Status>, tokio::task::JoinError>, delivered| {
        let why = match res {
            Ok(Ok(_)) => "the peer closed the stream".to_owned(),
            Ok(Err(status)) => {
                if status.metadata().get(REMOVED_KEY).is_some() {
                    let _ = events.send(Event::RemovedByPeer(id));
                } else if !matches!(
                    status.code(),
                    tonic::Code::Unavailable
                        | tonic::Code::Cancelled
                        | tonic::Code::DeadlineExceeded
                        // A reset connection (the peer died) surfaces as Unknown.
                        | tonic::Code::Unknown
                ) {
                    tracing::warn!(peer = id, code = ?status.code(), message = status.message(),
                        "peer refused our messages");
                }
                format!("{:?}: {}", status.code(), status.message())
            }
            Err(e) => e.to_string(),
        };
        Ended::Failed { why, delivered }
    };
    loop {
        tokio::select! {
            res = &mut call => return failed(res, delivered),
            m = rx.recv() => {
                let Some(m) = m else {
                    call.abort();
                    return Ended::QueueClosed;
                };
                let env = envelope(shared, id, m, rx);
                tokio::select! {
                    sent = stx.send(env) => {
                        if sent.is_err() {
                            return failed(call.await, delivered);
                        }
                        delivered = true;
                        if started.elapsed() >= STREAM_ROTATE {
                            drop(stx);
                            return match call.await {
                                Ok(Ok(_)) => Ended::Rotated,
                                res => failed(res, delivered),
                            };
                        }
                    }
                    res = &mut call => return failed(res, delivered),
                }
            }
        }
    }
}

/// `first` plus whatever else is queued, within the batch limits.
fn envelope(
    shared: &Shared,
    to: NodeId,
    first: Message,
    rx: &mut mpsc::Receiver<Message>,
) -> pb::Envelope {
    let mut messages = Vec::new();
    let mut bytes = 0u64;
    let mut next = Some(first);
    while let Some(m) = next {
        if let MessageBody::Append { entries, .. } = &m.body {
            bytes += entries.iter().map(|e| e.size()).sum::<u64>();
        }
        messages.extend(message_to_pb(&m));
        if messages.len() >= BATCH_MSGS || bytes >= BATCH_BYTES {
            break;
        }
        next = rx.try_recv().ok();
    }
    pb::Envelope {
        cluster_id: shared.membership_card().0.unwrap_or_default(),
        from: shared.node_id,
        to,
        messages,
        from_addr: shared.settings.advertise_peer.clone(),
    }
}
