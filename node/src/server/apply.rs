//! The apply task: applies committed entries to the node state machine off the network
//! path, answers the clients waiting on them, serves reads once their index is applied,
//! and takes snapshots.
//!
//! It is a task of the node's runtime, not a thread of its own: the driver wakes it
//! and it wakes the waiting client, each on the worker that is already running, so a
//! write's answer crosses no thread boundary after the commit (waking a parked thread
//! costs tens of microseconds, more on a virtual machine). It never blocks: applying is
//! in-memory, snapshot files are written by a helper thread, and the one disk read,
//! restoring a received snapshot, runs under `block_in_place`.
//!
//! A proposal's waiter is keyed by the (index, term) the core gave it: when that index
//! is applied with another term, another leader's entry took the slot and the proposal
//! is lost (the client retries). Snapshots are captured here (cheap, persistent maps)
//! and written by a helper thread while apply goes on.

use std::collections::BTreeMap;
use std::sync::Arc;

use kuberaft_raft::{ConfChangeKind, Entry, EntryPayload, SnapshotMeta};
use tokio::sync::mpsc;

use super::driver::Event;
use super::node_sm::NodeStateMachine;
use super::shared::{Reply, RequestError, Shared};

/// Who waits for an entry: a client (wants the response) or an admin (wants the index).
#[derive(Debug)]
pub enum Waiter {
    Response(Reply<Vec<u8>>),
    Index(Reply<u64>),
}

impl Waiter {
    fn fail(self, e: RequestError) {
        match self {
            Waiter::Response(r) => drop(r.send(Err(e))),
            Waiter::Index(r) => drop(r.send(Err(e))),
        }
    }
}

pub type ReadBatch = Vec<(Vec<u8>, Reply<Vec<u8>>)>;

/// A waiter's outcome (the entry's index and response), sent once its batch is done.
type Answer = (Waiter, Result<(u64, Vec<u8>), RequestError>);

fn answer((waiter, outcome): Answer) {
    match (waiter, outcome) {
        (w, Err(e)) => w.fail(e),
        (Waiter::Response(r), Ok((_, response))) => drop(r.send(Ok(response))),
        (Waiter::Index(r), Ok((index, _))) => drop(r.send(Ok(index))),
    }
}

#[derive(Debug)]
pub enum ApplyMsg {
    Register {
        index: u64,
        term: u64,
        waiter: Waiter,
    },
    Entries(Vec<Entry>),
    Restore(SnapshotMeta),
    Read {
        index: u64,
        batch: ReadBatch,
    },
    Snapshot(Option<Reply<SnapshotMeta>>),
    Written(Result<SnapshotMeta, String>),
    /// The driver stopped: finish and exit.
    Stop,
}

pub struct Applier {
    sm: NodeStateMachine,
    shared: Arc<Shared>,
    events: mpsc::UnboundedSender<Event>,
    tx: mpsc::UnboundedSender<ApplyMsg>,
    waiters: BTreeMap<u64, (u64, Waiter)>,
    answers: Vec<Answer>,
    reads: BTreeMap<u64, ReadBatch>,
    last_snapshot: Option<SnapshotMeta>,
    snapshotting: bool,
    snapshot_waiters: Vec<Reply<SnapshotMeta>>,
}

impl std::fmt::Debug for Applier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applier")
            .field("sm", &self.sm)
            .finish_non_exhaustive()
    }
}

impl Applier {
    pub fn new(
        sm: NodeStateMachine,
        shared: Arc<Shared>,
        events: mpsc::UnboundedSender<Event>,
        tx: mpsc::UnboundedSender<ApplyMsg>,
    ) -> Self {
        Applier {
            sm,
            shared,
            events,
            tx,
            waiters: BTreeMap::new(),
            answers: Vec::new(),
            reads: BTreeMap::new(),
            last_snapshot: None,
            snapshotting: false,
            snapshot_waiters: Vec::new(),
        }
    }

    /// Replaces the state with the stored snapshot `meta` (at start-up, or one received
    /// from the leader).
    pub fn restore(&mut self, meta: &SnapshotMeta) -> Result<(), String> {
        let store = &self.shared.store;
        let files = store.list().map_err(|e| e.to_string())?;
        let file = files
            .iter()
            .find(|f| (f.index, f.term) == (meta.index, meta.term))
            .ok_or_else(|| {
                format!(
                    "snapshot index {} term {} is not in {}",
                    meta.index,
                    meta.term,
                    store.dir().display()
                )
            })?;
        let mut reader = store.reader(file).map_err(|e| e.to_string())?;
        self.sm
            .restore(meta, &mut reader)
            .map_err(|e| format!("restoring snapshot {}: {e}", meta.index))?;
        self.publish_book();
        self.last_snapshot = Some(meta.clone());
        let stale: Vec<u64> = self.waiters.range(..=meta.index).map(|(&i, _)| i).collect();
        for i in stale {
            if let Some((_, w)) = self.waiters.remove(&i) {
                w.fail(RequestError::Unavailable(
                    "a snapshot replaced the log; the outcome is unknown".into(),
                ));
            }
        }
        let id = self.shared.node_id;
        if self.sm.book().is_removed(id) {
            let _ = self.events.send(Event::SelfRemoved);
        } else if self.sm.membership().contains(id) {
            let _ = self.events.send(Event::SelfAdded);
        }
        Ok(())
    }

    fn publish_book(&self) {
        *self.shared.book.write().unwrap_or_else(|p| p.into_inner()) = self.sm.book().clone();
    }

    fn apply_entries(&mut self, entries: Vec<Entry>) {
        let id = self.shared.node_id;
        let mut book_changed = false;
        for e in entries {
            let fx = self.sm.apply(&e);
            book_changed |= fx.book_changed;
            let mut response = Some(fx.response);
            if let EntryPayload::ConfChange(cc) = &e.payload {
                let removed = cc
                    .changes
                    .iter()
                    .any(|c| c.kind == ConfChangeKind::Remove && c.node == id);
                if removed {
                    let _ = self.events.send(Event::SelfRemoved);
                } else if self.sm.membership().contains(id) {
                    let _ = self.events.send(Event::SelfAdded);
                }
                let _ = self
                    .events
                    .send(Event::MembershipApplied(self.sm.membership().clone()));
            }
            while let Some(entry) = self.waiters.first_entry() {
                if *entry.key() > e.index {
                    break;
                }
                let (index, (term, waiter)) = entry.remove_entry();
                let outcome = if index != e.index || term != e.term {
                    Err(RequestError::Lost)
                } else {
                    Ok((index, response.take().unwrap_or_default()))
                };
                self.answers.push((waiter, outcome));
            }
        }
        if book_changed {
            self.publish_book();
        }
    }

    fn serve_reads(&mut self) {
        let applied = self.sm.applied();
        while let Some(entry) = self.reads.first_entry() {
            if *entry.key() > applied {
                break;
            }
            for (query, reply) in entry.remove() {
                let _ = reply.send(self.query(&query));
            }
        }
    }

    fn query(&self, query: &[u8]) -> Result<Vec<u8>, RequestError> {
        self.sm
            .query(query)
            .map_err(|e| RequestError::Invalid(e.to_string()))
    }

    fn maybe_snapshot(&mut self, forced: bool) {
        let threshold = self.shared.settings.snapshot_threshold;
        let last = self.last_snapshot.as_ref().map_or(0, |m| m.index);
        let due = threshold > 0 && self.sm.applied() >= last + threshold;
        if self.snapshotting || self.sm.applied() == 0 || !(due || forced) {
            return;
        }
        if self.sm.applied() == last {
            if let Some(meta) = &self.last_snapshot {
                for w in self.snapshot_waiters.drain(..) {
                    let _ = w.send(Ok(meta.clone()));
                }
            }
            return;
        }
        self.snapshotting = true;
        let snap = self.sm.capture();
        let store = self.shared.store.clone();
        let tx = self.tx.clone();
        std::thread::Builder::new()
            .name("raft-snapshot".into())
            .spawn(move || {
                let meta = snap.meta.clone();
                let result = (|| -> Result<SnapshotMeta, String> {
                    let mut writer = store.writer(meta.clone()).map_err(|e| e.to_string())?;
                    snap.write_to(&mut writer).map_err(|e| e.to_string())?;
                    writer.finish().map_err(|e| e.to_string())
                })();
                let _ = tx.send(ApplyMsg::Written(result));
            })
            .expect("spawning a thread");
    }

    fn handle(&mut self, msg: ApplyMsg) -> Result<(), String> {
        match msg {
            ApplyMsg::Register {
                index,
                term,
                waiter,
            } => {
                if index <= self.sm.applied() {
                    waiter.fail(RequestError::Lost);
                } else {
                    self.waiters.insert(index, (term, waiter));
                }
            }
            ApplyMsg::Entries(entries) => self.apply_entries(entries),
            ApplyMsg::Restore(meta) => {
                blocking(|| self.restore(&meta))?;
                self.shared.metrics.snapshot("installed");
            }
            ApplyMsg::Read { index, batch } => {
                if index <= self.sm.applied() {
                    for (query, reply) in batch {
                        let _ = reply.send(self.query(&query));
                    }
                } else {
                    self.reads.entry(index).or_default().extend(batch);
                }
            }
            ApplyMsg::Snapshot(reply) => {
                if let Some(r) = reply {
                    if self.sm.applied() == 0 {
                        let _ = r.send(Err(RequestError::Invalid("nothing is applied yet".into())));
                    } else {
                        self.snapshot_waiters.push(r);
                    }
                }
                self.maybe_snapshot(true);
            }
            ApplyMsg::Stop => return Err(String::new()),
            ApplyMsg::Written(result) => {
                self.snapshotting = false;
                match result {
                    Ok(meta) => {
                        self.shared.metrics.snapshot("taken");
                        tracing::info!(index = meta.index, term = meta.term, "snapshot taken");
                        if self
                            .last_snapshot
                            .as_ref()
                            .is_none_or(|m| m.index < meta.index)
                        {
                            self.last_snapshot = Some(meta.clone());
                        }
                        let _ = self.events.send(Event::SnapshotTaken(meta.clone()));
                        for w in self.snapshot_waiters.drain(..) {
                            let _ = w.send(Ok(meta.clone()));
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "writing a snapshot failed");
                        for w in self.snapshot_waiters.drain(..) {
                            let _ = w.send(Err(RequestError::Unavailable(format!(
                                "writing the snapshot failed: {e}"
                            ))));
                        }
                    }
                }
                // More may have been applied meanwhile, or a forced one requested.
                let forced = !self.snapshot_waiters.is_empty();
                self.maybe_snapshot(forced);
            }
        }
        Ok(())
    }

    /// Runs until the driver says stop (or drops its sender).
    pub async fn run(mut self, mut rx: mpsc::UnboundedReceiver<ApplyMsg>) {
        while let Some(first) = rx.recv().await {
            let before = self.sm.applied();
            let mut next = Some(first);
            let mut handled = 0;
            while let Some(msg) = next {
                if let Err(e) = self.handle(msg) {
                    // What this slice applied before the stop is answered all the same.
                    self.answers.drain(..).for_each(answer);
                    if e.is_empty() {
                        return;
                    }
                    tracing::error!(error = %e, "the state machine cannot continue");
                    let _ = self.events.send(Event::Fatal(e));
                    return;
                }
                handled += 1;
                // A long backlog is applied in slices, so the worker also runs others.
                next = (handled < MAX_SLICE).then(|| rx.try_recv().ok()).flatten();
            }
            if self.sm.applied() != before {
                let _ = self.events.send(Event::Applied(self.sm.applied()));
                self.serve_reads();
                self.maybe_snapshot(false);
            }
            // Answered last: the task woken last runs next on this worker, so the
            // client's answer goes out before the driver handles `Applied`.
            self.answers.drain(..).for_each(answer);
            if handled >= MAX_SLICE {
                tokio::task::yield_now().await;
            }
        }
    }
}

/// Messages the apply task handles before it lets its worker run other tasks.
const MAX_SLICE: usize = 64;

/// Runs `f`, which may block on the disk, without stalling the other tasks of a
/// multi-threaded runtime (a current-thread runtime, as in some tests, just runs it).
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

#[cfg(test)]
mod tests {
    use kuberaft_raft::EntryPayload;
    use tokio::sync::oneshot;

    use super::*;
    use crate::server::shared::test_shared;
    use crate::sm::kv::{KvConfig, KvStateMachine};

    #[tokio::test]
    async fn what_a_slice_applied_before_the_stop_is_answered() {
        let dir = tempfile::tempdir().unwrap();
        let (shared, _driver) = test_shared(dir.path(), "c1");
        let (events, _events) = mpsc::unbounded_channel();
        let (tx, rx) = mpsc::unbounded_channel();
        let sm = NodeStateMachine::new(Box::new(KvStateMachine::new(KvConfig::default())));
        let applier = Applier::new(sm, shared, events, tx.clone());
        let (reply, answer) = oneshot::channel();
        let entry = |index| Entry {
            term: 1,
            index,
            payload: EntryPayload::Normal(Vec::new()),
        };
        let (lost_reply, lost) = oneshot::channel();
        let register = |index, term, reply| ApplyMsg::Register {
            index,
            term,
            waiter: Waiter::Index(reply),
        };
        // All queued before the task runs: one slice, ending in the stop.
        tx.send(register(1, 1, reply)).unwrap();
        tx.send(register(2, 7, lost_reply)).unwrap();
        tx.send(ApplyMsg::Entries(vec![entry(1), entry(2)]))
            .unwrap();
        tx.send(ApplyMsg::Stop).unwrap();
        applier.run(rx).await;
        assert_eq!(answer.await.unwrap().unwrap(), 1);
        // Index 2 was applied with another term: that proposal is reported lost.
        assert!(matches!(lost.await.unwrap(), Err(RequestError::Lost)));
    }
}
