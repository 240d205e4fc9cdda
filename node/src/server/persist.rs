//! The storage thread: owns the WAL, writes Readys in arrival order and makes many of
//! them durable with one fdatasync (group commit).
//!
//! The driver never waits for it: it hands over each Ready's write and goes on ticking,
//! sending and replicating. Whatever queued up during one fsync is written by the next,
//! so under load one fsync covers many Readys. Completions go back in order, each with
//! the messages that had to wait for it (votes and Append answers).

use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender};
use std::time::Instant;

use kuberaft_raft::{Entry, HardState, Message, SnapshotMeta};
use tokio::sync::{mpsc, oneshot};

use super::driver::Event;
use super::metrics::Metrics;
use crate::storage::Wal;

/// Work for the storage thread.
#[derive(Debug)]
pub enum PersistMsg {
    /// One Ready's write, in the order of the Ready contract.
    Write {
        snapshot: Option<SnapshotMeta>,
        entries: Vec<Entry>,
        hard_state: Option<HardState>,
        must_sync: bool,
        messages: Vec<Message>,
    },
    /// A local snapshot covers the log through `meta.index`.
    Compact(SnapshotMeta),
    /// The initial state of a new cluster, durable before the core starts from it.
    Bootstrap {
        entries: Vec<Entry>,
        hard_state: HardState,
        reply: oneshot::Sender<Result<(), String>>,
    },
}

/// One Ready's write, now durable.
#[derive(Debug)]
pub struct Done {
    pub snapshot: Option<(u64, u64)>,
    pub last: Option<(u64, u64)>,
    pub messages: Vec<Message>,
}

/// Upper bound of Readys folded into one sync, so completions keep flowing.
const MAX_BATCH: usize = 4096;

pub fn spawn(
    wal: Wal,
    events: mpsc::UnboundedSender<Event>,
    shared: Arc<super::shared::Shared>,
) -> (Sender<PersistMsg>, std::thread::JoinHandle<()>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("raft-storage".into())
        .spawn(move || {
            if let Err(e) = run(wal, rx, &events, &shared.metrics) {
                tracing::error!(error = %e, "the WAL failed; the node must stop");
                let _ = events.send(Event::Fatal(format!("WAL: {e}")));
            }
        })
        .expect("spawning a thread");
    (tx, handle)
}

fn run(
    mut wal: Wal,
    rx: Receiver<PersistMsg>,
    events: &mpsc::UnboundedSender<Event>,
    metrics: &Metrics,
) -> crate::storage::Result<()> {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        let mut done = Vec::new();
        let mut replies = Vec::new();
        let mut sync = false;
        for msg in batch {
            match msg {
                PersistMsg::Write {
                    snapshot,
                    entries,
                    hard_state,
                    must_sync,
                    messages,
                } => {
                    if let Some(meta) = &snapshot {
                        wal.install_snapshot(meta)?;
                    }
                    wal.append(&entries)?;
                    if let Some(hs) = hard_state {
                        wal.set_hard_state(hs)?;
                    }
                    sync |= must_sync;
                    done.push(Done {
                        snapshot: snapshot.map(|m| (m.index, m.term)),
                        last: entries.last().map(|e| (e.index, e.term)),
                        messages,
                    });
                }
                PersistMsg::Compact(meta) => {
                    // A compaction racing with an installed snapshot is just stale.
                    if let Err(e) = wal.compact(&meta) {
                        tracing::debug!(error = %e, index = meta.index, "skipping WAL compaction");
                    }
                }
                PersistMsg::Bootstrap {
                    entries,
                    hard_state,
                    reply,
                } => {
                    wal.append(&entries)?;
                    wal.set_hard_state(hard_state)?;
                    sync = true;
                    replies.push(reply);
                }
            }
        }
        if sync {
            let start = Instant::now();
            wal.sync()?;
            metrics.fsync_seconds.observe(start.elapsed().as_secs_f64());
            metrics.fsync_batch_writes.observe(done.len() as f64);
        }
        if !done.is_empty() && events.send(Event::Persisted(done)).is_err() {
            break;
        }
        for r in replies {
            let _ = r.send(Ok(()));
        }
    }
    // Whatever a commit-only change left in the buffer goes to disk on the way out.
    wal.sync()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use kuberaft_raft::{EntryPayload, MessageBody};

    use super::*;
    use crate::storage::WalOptions;
    use crate::storage::fs::RealFs;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            term,
            index,
            payload: EntryPayload::Normal(vec![index as u8]),
        }
    }

    fn resp(to: u64, index: u64) -> Message {
        Message {
            from: 1,
            to,
            term: 1,
            body: MessageBody::AppendResp {
                index,
                reject: false,
                hint_index: 0,
                hint_term: 0,
            },
        }
    }

    #[test]
    fn queued_writes_share_one_fsync_and_complete_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(Arc::new(RealFs), dir.path(), WalOptions::default()).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        for i in 1..=3 {
            tx.send(PersistMsg::Write {
                snapshot: None,
                entries: vec![entry(i, 1)],
                hard_state: Some(HardState {
                    term: 1,
                    vote: 1,
                    commit: i - 1,
                }),
                must_sync: true,
                messages: vec![resp(2, i)],
            })
            .unwrap();
        }
        drop(tx);
        let (etx, mut erx) = mpsc::unbounded_channel();
        let metrics = Metrics::default();
        run(wal, rx, &etx, &metrics).unwrap();
        let Some(Event::Persisted(done)) = erx.try_recv().ok() else {
            panic!("expected one Persisted event");
        };
        assert!(
            erx.try_recv().is_err(),
            "three writes, one completion batch"
        );
        let lasts: Vec<_> = done.iter().map(|d| d.last).collect();
        assert_eq!(lasts, [Some((1, 1)), Some((2, 1)), Some((3, 1))]);
        let msgs: Vec<_> = done.iter().flat_map(|d| d.messages.clone()).collect();
        assert_eq!(msgs, [resp(2, 1), resp(2, 2), resp(2, 3)]);
        assert!(metrics.render().contains("raft_fsync_seconds_count 1"));

        // Everything is durable: a reopen recovers it.
        let (_, rec) = Wal::open(Arc::new(RealFs), dir.path(), WalOptions::default()).unwrap();
        assert_eq!(rec.entries.len(), 3);
        assert_eq!(rec.hard_state.vote, 1);
    }
}
