//! One simulated member: its `RawNode`, a disk that keeps only what was fsynced, the
//! writes still waiting for an fsync, and its volatile state machine.

use std::collections::{BTreeMap, VecDeque};

use super::kv::Kv;
use crate::config::Config;
use crate::raw_node::{InitialState, RawNode};
use crate::types::*;

/// What survives a crash.
#[derive(Clone, Debug, Default)]
pub struct Disk {
    pub hard_state: HardState,
    pub snapshot: Snapshot,
    pub entries: Vec<Entry>,
}

impl Disk {
    /// Applies one Ready's write in the contract's order: snapshot, entries, hard state.
    pub fn write(&mut self, w: &PendingWrite) {
        if let Some(s) = &w.snapshot {
            self.snapshot = s.clone();
            self.entries.clear();
        }
        if let Some(first) = w.entries.first() {
            self.entries.retain(|e| e.index < first.index);
            self.entries.extend(w.entries.iter().cloned());
        }
        if let Some(hs) = w.hard_state {
            self.hard_state = hs;
        }
    }

    /// The durable term of entry `index` (the snapshot covers everything below it).
    pub fn term(&self, index: u64) -> Option<u64> {
        if index == self.snapshot.meta.index {
            return Some(self.snapshot.meta.term);
        }
        self.entries
            .iter()
            .find(|e| e.index == index)
            .map(|e| e.term)
    }

    /// Whether entry `index` with `term` is durable here, or folded into the snapshot.
    pub fn holds(&self, index: u64, term: u64) -> bool {
        index <= self.snapshot.meta.index || self.term(index) == Some(term)
    }

    /// Folds the durable log through the snapshot's index into it.
    pub fn compact(&mut self, snapshot: Snapshot) {
        let index = snapshot.meta.index;
        self.entries.retain(|e| e.index > index);
        self.snapshot = snapshot;
    }
}

/// One Ready's write that has not been fsynced yet, with the messages that wait for it.
#[derive(Clone, Debug, Default)]
pub struct PendingWrite {
    pub hard_state: Option<HardState>,
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
    pub messages: Vec<Message>,
}

/// A client request the node is working on.
#[derive(Clone, Debug)]
pub struct Waiting {
    pub client: usize,
    /// The client's number for the operation.
    pub token: u64,
    pub key: String,
}

#[derive(Debug)]
pub struct SimNode {
    pub id: NodeId,
    pub raw: Option<RawNode>,
    pub disk: Disk,
    pub pending: VecDeque<PendingWrite>,
    pub kv: Kv,
    /// Proposals by log index: the term they were proposed in and who waits.
    pub proposals: BTreeMap<u64, (u64, Waiting)>,
    /// Reads sent to Raft, by request id.
    pub reads: BTreeMap<Vec<u8>, Waiting>,
    /// Confirmed reads waiting for the state machine to reach their index.
    pub confirmed: Vec<(u64, Waiting)>,
}

impl SimNode {
    pub fn new(id: NodeId, disk: Disk) -> Self {
        SimNode {
            id,
            raw: None,
            disk,
            pending: VecDeque::new(),
            kv: Kv::default(),
            proposals: BTreeMap::new(),
            reads: BTreeMap::new(),
            confirmed: Vec::new(),
        }
    }

    /// Starts (or restarts) from the disk: everything not fsynced is gone.
    pub fn start(&mut self, cfg: Config) {
        let state = InitialState {
            hard_state: self.disk.hard_state,
            snapshot: self.disk.snapshot.clone(),
            entries: self.disk.entries.clone(),
            applied: 0,
        };
        self.raw = Some(RawNode::new(cfg, state).expect("the simulated disk is always valid"));
        self.kv = Kv::restore(&self.disk.snapshot.data);
        self.kv.applied = self.disk.snapshot.meta.index;
    }

    /// Crashes: the process and every unsynced write are lost. Returns the requests that
    /// were in progress, whose outcome is now unknown.
    pub fn crash(&mut self) -> Vec<Waiting> {
        self.raw = None;
        self.pending.clear();
        self.kv = Kv::default();
        let mut lost: Vec<Waiting> = std::mem::take(&mut self.proposals)
            .into_values()
            .map(|(_, w)| w)
            .collect();
        lost.extend(std::mem::take(&mut self.reads).into_values());
        lost.extend(
            std::mem::take(&mut self.confirmed)
                .into_iter()
                .map(|(_, w)| w),
        );
        lost
    }

    pub fn is_up(&self) -> bool {
        self.raw.is_some()
    }
}
