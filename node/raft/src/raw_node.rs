//! The application's handle on the core: feed it ticks, messages and requests, take a
//! [`Ready`], do what it says, and report back what became durable and what was applied.

use std::collections::BTreeMap;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::log::RaftLog;
use crate::progress::ProgressState;
use crate::raft::Raft;
use crate::types::*;

/// What a node recovered from its durable storage, or what a new cluster starts from.
/// Everything in it is taken to be durable already.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InitialState {
    pub hard_state: HardState,
    /// The latest snapshot (index 0 when there is none). Its `data` may be empty when the
    /// application streams snapshots from its own store.
    pub snapshot: Snapshot,
    /// The entries after the snapshot, in order.
    pub entries: Vec<Entry>,
    /// The index through which the application's state machine is already applied, if it
    /// is persistent; committed entries up to it are not handed out again.
    pub applied: u64,
}

impl InitialState {
    /// The state of a brand-new cluster whose first configuration is `voters`: one
    /// committed configuration entry at index 1, term 1. Every founding member must start
    /// from the same value (a single-voter bootstrap is the usual case).
    pub fn bootstrap(voters: &[NodeId]) -> Self {
        let cc = ConfChange {
            changes: voters
                .iter()
                .map(|&node| ConfChangeSingle {
                    kind: ConfChangeKind::AddVoter,
                    node,
                })
                .collect(),
            leave_joint: false,
        };
        InitialState {
            hard_state: HardState {
                term: 1,
                vote: NO_NODE,
                commit: 1,
            },
            snapshot: Snapshot::default(),
            entries: vec![Entry {
                term: 1,
                index: 1,
                payload: EntryPayload::ConfChange(cc),
            }],
            applied: 0,
        }
    }
}

/// Volatile state worth telling the application about when it changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SoftState {
    pub role: Role,
    /// The known leader, or [`NO_NODE`].
    pub leader: NodeId,
}

/// Everything the application must do after a round of input, in this order:
///
/// 1. Send `messages` right away. They never depend on local durability: a leader's
///    Appends leave before its own fsync, because the leader writes its log in parallel
///    with replication and counts itself in a quorum only once it reports the entries
///    durable through [`RawNode::on_persisted`].
/// 2. Persist, in one ordered write: `snapshot` (install it in the state machine too),
///    then `entries` (the first may overwrite a stored suffix: truncate from its index
///    first), then `hard_state`. Fsync when [`Ready::must_sync`] says so.
/// 3. Only after that write is durable, send `persisted_messages`: votes and Append
///    answers promise durable state (term, vote and entries are durable before any
///    reply, as in the Raft paper). Readys may be written in a pipeline; each Ready's
///    `persisted_messages` wait for its own write and every write before it.
/// 4. Report durability with [`RawNode::on_persisted`] (or [`RawNode::advance`]).
/// 5. Apply `committed_entries` in order. They are always durable locally, so a
///    single-voter cluster never reports an entry committed before it is durable. Report
///    progress with [`RawNode::on_applied`].
/// 6. Answer `read_states` once the state machine has applied through their index, and
///    fail `rejected_reads` (leadership was lost; the client should retry).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    pub soft_state: Option<SoftState>,
    pub hard_state: Option<HardState>,
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
    pub messages: Vec<Message>,
    pub persisted_messages: Vec<Message>,
    pub committed_entries: Vec<Entry>,
    pub read_states: Vec<ReadState>,
    pub rejected_reads: Vec<Vec<u8>>,
    must_sync: bool,
}

impl Ready {
    /// Whether the write must be fsynced before `persisted_messages` go out: the term,
    /// the vote, entries or a snapshot changed. A commit-index-only change need not be.
    pub fn must_sync(&self) -> bool {
        self.must_sync
    }
}

/// A follower as the leader sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerProgress {
    pub matched: u64,
    pub next: u64,
    pub state: ProgressState,
    /// Whether the peer answered within the last election timeout.
    pub recent_active: bool,
    /// Append messages in flight.
    pub inflight: usize,
}

/// A point-in-time view of the node, for Admin.Status, metrics and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub id: NodeId,
    pub role: Role,
    pub term: u64,
    pub vote: NodeId,
    pub leader: NodeId,
    pub commit: u64,
    pub applied: u64,
    pub durable: u64,
    pub first_index: u64,
    pub last_index: u64,
    pub snapshot_index: u64,
    pub membership: Membership,
    /// Index of the last configuration entry still in the log (0 when the configuration
    /// in force came from the snapshot). A change is pending while it exceeds `commit`.
    pub config_index: u64,
    /// The leader's view of each follower (empty on followers).
    pub progress: BTreeMap<NodeId, PeerProgress>,
    /// The target of a leadership transfer in progress, or [`NO_NODE`].
    pub transferee: NodeId,
}

/// The scalar part of [`Status`]: cheap enough for an application to read after every
/// round and compare with the last one it published. The default describes no core: a
/// follower of nobody, everything at 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Brief {
    pub role: Role,
    pub term: u64,
    pub leader: NodeId,
    pub commit: u64,
    pub applied: u64,
    pub last_index: u64,
    pub snapshot_index: u64,
    pub config_index: u64,
}

/// The core, driven by the application.
#[derive(Debug)]
pub struct RawNode {
    raft: Raft,
    prev_hard: HardState,
    prev_soft: SoftState,
    max_apply_bytes: u64,
}

impl RawNode {
    /// Starts a node from recovered (or bootstrap) state.
    pub fn new(cfg: Config, state: InitialState) -> Result<Self> {
        cfg.validate()?;
        let snap_index = state.snapshot.meta.index;
        if let Some(first) = state.entries.first()
            && first.index != snap_index + 1
        {
            return Err(Error::InvalidState("entries do not follow the snapshot"));
        }
        if state
            .entries
            .windows(2)
            .any(|w| w[1].index != w[0].index + 1 || w[1].term < w[0].term)
        {
            return Err(Error::InvalidState(
                "entries are not contiguous with non-decreasing terms",
            ));
        }
        let mut log = RaftLog::new(
            state.snapshot.meta.clone(),
            state.entries,
            state.hard_state.commit,
        );
        log.applying = log.applying.max(state.applied.min(log.committed));
        let mut raft = Raft::new(cfg, state.hard_state, log);
        raft.log.compact_data(state.snapshot.data);
        let prev_hard = raft.hard_state();
        let prev_soft = SoftState {
            role: raft.role,
            leader: raft.leader,
        };
        Ok(RawNode {
            raft,
            prev_hard,
            prev_soft,
            max_apply_bytes: 64 << 20,
        })
    }

    pub fn id(&self) -> NodeId {
        self.raft.id
    }

    /// Advances logical time by one tick.
    pub fn tick(&mut self) {
        self.raft.tick();
    }

    /// Handles a message from a peer.
    pub fn step(&mut self, msg: Message) -> Result<()> {
        self.raft.step(msg)
    }

    /// Starts an election now (for tests and for an operator forcing a campaign).
    pub fn campaign(&mut self) {
        if self.raft.role != Role::Leader {
            self.raft.step_campaign();
        }
    }

    /// Proposes an application command. Returns its (index, term): the command is
    /// committed when an entry with that index and term is applied.
    pub fn propose(&mut self, data: Vec<u8>) -> Result<(u64, u64)> {
        self.raft.propose(data)
    }

    /// Proposes a membership change (see [`ConfChange`]).
    pub fn propose_conf_change(&mut self, cc: ConfChange) -> Result<(u64, u64)> {
        self.raft.propose_conf_change(cc)
    }

    /// Hands leadership to voter `to` once it is caught up.
    pub fn transfer_leader(&mut self, to: NodeId) -> Result<()> {
        self.raft.transfer_leader(to)
    }

    /// Requests a linearizable read. `request` is the caller's unique id for it; the
    /// answer comes back as a [`ReadState`] (or in `rejected_reads`).
    pub fn read_index(&mut self, request: Vec<u8>, mode: ReadMode) -> Result<()> {
        self.raft.read_index(request, mode)
    }

    /// The application took a snapshot of its state machine at `index` (which it has
    /// applied); the log through `index` is dropped. `data` is what is sent to followers
    /// that fall behind; it may be empty if the application streams snapshots itself.
    pub fn compact(&mut self, index: u64, data: Vec<u8>) -> Result<()> {
        self.raft
            .log
            .compact(index, data)
            .map_err(|reason| Error::InvalidCompaction { index, reason })
    }

    pub fn report_snapshot(&mut self, to: NodeId, failed: bool) {
        self.raft.report_snapshot(to, failed);
    }

    pub fn report_unreachable(&mut self, to: NodeId) {
        self.raft.report_unreachable(to);
    }

    /// Whether [`RawNode::ready`] has anything to say.
    pub fn has_ready(&self) -> bool {
        let r = &self.raft;
        r.hard_state() != self.prev_hard
            || SoftState {
                role: r.role,
                leader: r.leader,
            } != self.prev_soft
            || r.log.has_pending_snapshot()
            || r.log.has_unstable()
            || r.log.has_committed_to_apply()
            || !r.msgs.is_empty()
            || !r.persisted_msgs.is_empty()
            || !r.read_states.is_empty()
            || !r.rejected_reads.is_empty()
    }

    /// Takes everything the application must now persist, send and apply.
    pub fn ready(&mut self) -> Ready {
        let r = &mut self.raft;
        let hs = r.hard_state();
        let hard_state = (hs != self.prev_hard).then_some(hs);
        let soft = SoftState {
            role: r.role,
            leader: r.leader,
        };
        let soft_state = (soft != self.prev_soft).then_some(soft);
        let snapshot = r.log.take_pending_snapshot();
        let entries = r.log.take_unstable();
        let must_sync = !entries.is_empty()
            || snapshot.is_some()
            || hs.term != self.prev_hard.term
            || hs.vote != self.prev_hard.vote;
        self.prev_hard = hs;
        self.prev_soft = soft;
        Ready {
            soft_state,
            hard_state,
            snapshot,
            entries,
            messages: std::mem::take(&mut r.msgs),
            persisted_messages: std::mem::take(&mut r.persisted_msgs),
            committed_entries: r.log.take_committed(self.max_apply_bytes),
            read_states: std::mem::take(&mut r.read_states),
            rejected_reads: std::mem::take(&mut r.rejected_reads),
            must_sync,
        }
    }

    /// The log through `index`, whose entry has term `term`, is durable. Reports about
    /// entries that were replaced meanwhile are ignored, so completions may arrive late.
    pub fn on_persisted(&mut self, index: u64, term: u64) {
        self.raft.on_persisted(index, term);
    }

    /// The state machine has applied everything through `index`.
    pub fn on_applied(&mut self, index: u64) {
        self.raft.applied = self.raft.applied.max(index);
    }

    /// For an application that persists each Ready synchronously before asking for the
    /// next one: reports its snapshot and entries durable and its entries applied.
    pub fn advance(&mut self, rd: &Ready) {
        if let Some(s) = &rd.snapshot {
            self.on_persisted(s.meta.index, s.meta.term);
            self.on_applied(s.meta.index);
        }
        if let Some(e) = rd.entries.last() {
            self.on_persisted(e.index, e.term);
        }
        if let Some(e) = rd.committed_entries.last() {
            self.on_applied(e.index);
        }
    }

    /// This node's role, without building a whole [`Status`].
    pub fn role(&self) -> Role {
        self.raft.role
    }

    /// The leader this node knows of (0 when none), without building a whole [`Status`].
    pub fn leader(&self) -> NodeId {
        self.raft.leader
    }

    /// Role, term, leader and indexes, without copying the configuration or the
    /// progress map as [`RawNode::status`] does.
    pub fn brief(&self) -> Brief {
        let r = &self.raft;
        Brief {
            role: r.role,
            term: r.term,
            leader: r.leader,
            commit: r.log.committed,
            applied: r.applied,
            last_index: r.log.last_index(),
            snapshot_index: r.log.snapshot_meta().index,
            config_index: r.log.last_conf_index(),
        }
    }

    pub fn status(&self) -> Status {
        let r = &self.raft;
        let progress = r
            .progress
            .iter()
            .map(|(&id, p)| {
                let pp = PeerProgress {
                    matched: p.matched,
                    next: p.next,
                    state: p.state,
                    recent_active: p.recent_active,
                    inflight: p.inflights.len(),
                };
                (id, pp)
            })
            .collect();
        Status {
            id: r.id,
            role: r.role,
            term: r.term,
            vote: r.vote,
            leader: r.leader,
            commit: r.log.committed,
            applied: r.applied,
            durable: r.log.stable,
            first_index: r.log.first_index(),
            last_index: r.log.last_index(),
            snapshot_index: r.log.snapshot_meta().index,
            membership: r.log.membership().clone(),
            config_index: r.log.last_conf_index(),
            progress,
            transferee: r.transferee,
        }
    }

    /// The latest snapshot's metadata (index 0 when there is none).
    pub fn snapshot_meta(&self) -> &SnapshotMeta {
        self.raft.log.snapshot_meta()
    }

    /// The configuration in force.
    pub fn membership(&self) -> &Membership {
        self.raft.log.membership()
    }

    /// Log entries from `index` on that are still in memory (for tests and debugging).
    pub fn log_entries_from(&self, index: u64) -> Vec<Entry> {
        self.raft.log.entries_from(index).cloned().collect()
    }

    /// The term of entry `index`, if it is still known.
    pub fn log_term(&self, index: u64) -> Option<u64> {
        self.raft.log.term(index)
    }
}
