//! One simulated `raft-node`: its volume (identity files and the durable Raft state, what
//! a PVC keeps) and its process (the `RawNode`, the writes not fsynced yet, the state
//! machine). A crash drops the process; a restart rebuilds it from the volume, as the real
//! node recovers from its data dir.

use std::collections::{BTreeMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};

use kuberaft_operator::reconcile::admin::Lifecycle;
use kuberaft_raft::{
    ConfChangeKind, Config, Entry, EntryPayload, HardState, InitialState, Membership, Message,
    NodeId, RawNode, Snapshot,
};

use super::sm::Sm;

/// What survives a crash: what was fsynced.
#[derive(Clone, Debug, Default)]
pub struct Disk {
    pub hard_state: HardState,
    pub snapshot: Snapshot,
    pub entries: Vec<Entry>,
}

impl Disk {
    /// One Ready's write in the contract's order: snapshot, entries, hard state.
    fn write(&mut self, w: &PendingWrite) {
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

    fn compact(&mut self, snapshot: Snapshot) {
        let index = snapshot.meta.index;
        self.entries.retain(|e| e.index > index);
        self.snapshot = snapshot;
    }
}

/// A data dir: the node id is drawn when the volume is first used and never reused, so a
/// pod that comes back on a new volume is a new member.
#[derive(Clone, Debug)]
pub struct Volume {
    pub node_id: NodeId,
    pub cluster_id: Option<String>,
    pub lifecycle: Lifecycle,
    pub disk: Disk,
}

impl Volume {
    pub fn new(node_id: NodeId) -> Self {
        Volume {
            node_id,
            cluster_id: None,
            lifecycle: Lifecycle::Uninitialized,
            disk: Disk::default(),
        }
    }

    /// Joining and Member run a core; Uninitialized and Removed do not.
    pub fn runs_core(&self) -> bool {
        matches!(self.lifecycle, Lifecycle::Joining | Lifecycle::Member)
    }

    /// The configuration the durable log ends with (what a restart would be in).
    pub fn membership(&self) -> Membership {
        let mut m = self.disk.snapshot.meta.membership.clone();
        for e in &self.disk.entries {
            if let EntryPayload::ConfChange(cc) = &e.payload
                && let Ok(next) = m.apply(cc)
            {
                m = next;
            }
        }
        m
    }

    /// (last term, last index) of the durable log: how up to date it is, as an election
    /// compares logs.
    pub fn position(&self) -> (u64, u64) {
        let meta = &self.disk.snapshot.meta;
        self.disk
            .entries
            .last()
            .map_or((meta.term, meta.index), |e| (e.term, e.index))
    }
}

/// One Ready's write that is not fsynced yet, with the messages that wait for it.
#[derive(Clone, Debug, Default)]
struct PendingWrite {
    hard_state: Option<HardState>,
    snapshot: Option<Snapshot>,
    entries: Vec<Entry>,
    messages: Vec<Message>,
}

/// Who waits for a proposed entry.
#[derive(Clone, Debug)]
pub enum Waiter {
    Client {
        key: String,
        value: String,
    },
    /// An Admin call, by token.
    Admin(u64),
}

/// What a round of work on one node produced, for the world to route and check.
#[derive(Debug, Default)]
pub struct Effects {
    pub messages: Vec<Message>,
    /// Client writes the node saw applied with the term it proposed them in.
    pub committed: Vec<(u64, String, String)>,
    /// Admin proposals: applied as proposed (`true`) or lost.
    pub admin: Vec<(u64, bool)>,
    /// Every applied entry: (index, term, payload hash).
    pub applied: Vec<(u64, u64, u64)>,
    /// The node learned it was removed.
    pub removed: bool,
}

pub fn payload_hash(e: &Entry) -> u64 {
    let mut h = DefaultHasher::new();
    e.payload.hash(&mut h);
    h.finish()
}

/// A running `raft-node` process.
#[derive(Debug)]
pub struct Process {
    pub name: String,
    pub node_id: NodeId,
    /// `None` while Uninitialized or Removed.
    pub core: Option<RawNode>,
    pub sm: Sm,
    pending: VecDeque<PendingWrite>,
    pub waiters: BTreeMap<u64, (u64, Waiter)>,
    /// `--snapshot-threshold` of the pod's template.
    pub threshold: u64,
    /// The term in which this node last made sure the address book has its name.
    pub announced_term: u64,
    /// Ticks in a row its newest configuration has not listed it.
    pub excluded_ticks: u64,
    seed: u64,
}

impl Process {
    /// Starts from the volume: everything not fsynced before the crash is gone.
    pub fn start(name: String, vol: &Volume, threshold: u64, seed: u64) -> Self {
        let mut p = Process {
            name,
            node_id: vol.node_id,
            core: None,
            sm: Sm::restore(&vol.disk.snapshot.meta, &vol.disk.snapshot.data),
            pending: VecDeque::new(),
            waiters: BTreeMap::new(),
            threshold: threshold.max(1),
            announced_term: 0,
            excluded_ticks: 0,
            seed,
        };
        if vol.runs_core() {
            let state = InitialState {
                hard_state: vol.disk.hard_state,
                snapshot: vol.disk.snapshot.clone(),
                entries: vol.disk.entries.clone(),
                applied: 0,
            };
            p.core = Some(RawNode::new(p.config(), state).expect("a simulated volume is valid"));
        }
        p
    }

    pub fn config(&self) -> Config {
        let mut c = Config::new(self.node_id);
        c.seed = self.seed ^ self.node_id;
        c
    }

    /// Admin.Bootstrap on an uninitialized node: a one-voter cluster, durable at once.
    pub fn bootstrap(&mut self, vol: &mut Volume, cluster_id: &str) {
        let state = InitialState::bootstrap(&[self.node_id]);
        vol.disk = Disk {
            hard_state: state.hard_state,
            snapshot: Snapshot::default(),
            entries: state.entries.clone(),
        };
        vol.cluster_id = Some(cluster_id.to_owned());
        vol.lifecycle = Lifecycle::Member;
        let mut core = RawNode::new(self.config(), state).expect("bootstrap state is valid");
        core.campaign();
        self.core = Some(core);
    }

    /// Admin.PrepareJoin on an uninitialized node: an empty core that waits for the leader.
    pub fn prepare_join(&mut self, vol: &mut Volume, cluster_id: &str) {
        vol.cluster_id = Some(cluster_id.to_owned());
        vol.lifecycle = Lifecycle::Joining;
        self.core =
            Some(RawNode::new(self.config(), InitialState::default()).expect("empty is valid"));
    }

    /// Removed for good: the core stops, peers are no longer served.
    pub fn become_removed(&mut self, vol: &mut Volume) {
        vol.lifecycle = Lifecycle::Removed;
        self.core = None;
        self.pending.clear();
        self.waiters.clear();
    }

    /// Takes every Ready, applies what is committed and queues the writes.
    pub fn handle_ready(&mut self, vol: &mut Volume, fx: &mut Effects) {
        for _ in 0..32 {
            let Some(core) = self.core.as_mut() else {
                return;
            };
            if !core.has_ready() {
                return;
            }
            let rd = core.ready();
            fx.messages.extend(rd.messages);
            if let Some(s) = &rd.snapshot {
                self.sm = Sm::restore(&s.meta, &s.data);
                let stale: Vec<u64> = self
                    .waiters
                    .range(..=s.meta.index)
                    .map(|(&i, _)| i)
                    .collect();
                for i in stale {
                    if let Some((_, Waiter::Admin(t))) = self.waiters.remove(&i) {
                        fx.admin.push((t, false));
                    }
                }
                if self.sm.removed.contains(&self.node_id) {
                    fx.removed = true;
                } else if self.sm.membership.contains(self.node_id) {
                    self_added(vol);
                }
            }
            self.pending.push_back(PendingWrite {
                hard_state: rd.hard_state,
                snapshot: rd.snapshot,
                entries: rd.entries,
                messages: rd.persisted_messages,
            });
            for e in &rd.committed_entries {
                self.apply(e, vol, fx);
            }
            if let Some(e) = rd.committed_entries.last() {
                let core = self.core.as_mut().expect("still running");
                core.on_applied(e.index);
                self.maybe_snapshot(vol, false);
            }
            if fx.removed {
                self.become_removed(vol);
                return;
            }
        }
    }

    fn apply(&mut self, e: &Entry, vol: &mut Volume, fx: &mut Effects) {
        fx.applied.push((e.index, e.term, payload_hash(e)));
        self.sm.apply(e);
        if let EntryPayload::ConfChange(cc) = &e.payload {
            let me = self.node_id;
            if cc
                .changes
                .iter()
                .any(|c| c.kind == ConfChangeKind::Remove && c.node == me)
            {
                fx.removed = true;
            } else if self.sm.membership.contains(me) {
                self_added(vol);
            }
        }
        while let Some(entry) = self.waiters.first_entry() {
            if *entry.key() > e.index {
                break;
            }
            let (index, (term, waiter)) = entry.remove_entry();
            let ok = index == e.index && term == e.term;
            match waiter {
                Waiter::Client { key, value } if ok => fx.committed.push((index, key, value)),
                Waiter::Client { .. } => {}
                Waiter::Admin(t) => fx.admin.push((t, ok)),
            }
        }
    }

    /// Snapshots and compacts at the applied index, past the threshold or when asked.
    pub fn maybe_snapshot(&mut self, vol: &mut Volume, force: bool) -> Option<(u64, u64)> {
        let core = self.core.as_mut()?;
        let index = self.sm.applied;
        let snap = core.snapshot_meta().index;
        if index > snap && (force || index >= snap + self.threshold) {
            let data = self.sm.snapshot();
            if core.compact(index, data.clone()).is_ok() {
                let meta = core.snapshot_meta().clone();
                vol.disk.compact(Snapshot { meta, data });
            }
        }
        let meta = core.snapshot_meta();
        Some((meta.index, meta.term))
    }

    /// The pending writes reach the disk; the messages that waited for them leave.
    pub fn fsync(&mut self, vol: &mut Volume, fx: &mut Effects) {
        for w in self.pending.drain(..) {
            vol.disk.write(&w);
            if let Some(core) = self.core.as_mut() {
                if let Some(s) = &w.snapshot {
                    core.on_persisted(s.meta.index, s.meta.term);
                }
                if let Some(e) = w.entries.last() {
                    core.on_persisted(e.index, e.term);
                }
                fx.messages.extend(w.messages);
            }
        }
    }
}

/// A joining node that sees itself in the applied configuration is a member.
fn self_added(vol: &mut Volume) {
    if vol.lifecycle == Lifecycle::Joining {
        vol.lifecycle = Lifecycle::Member;
    }
}
