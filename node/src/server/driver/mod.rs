//! The driver: the one task that owns the Raft core.
//!
//! ```text
//!  ticks ─┐                         ┌─► transport (messages, at once)
//!  peers ─┼─► RawNode ─► Ready ─────┼─► storage thread (write + group fsync) ─► Persisted
//!  reqs  ─┘      ▲                  └─► apply task (committed entries, reads)    ─► Applied
//!                └──────────── events (persisted, applied, snapshots, peers) ◄──────┘
//! ```
//!
//! It never waits for the disk or the state machine: a Ready's write goes to the storage
//! thread and its `persisted_messages` leave only when that write reports durable, so
//! ticks and heartbeats keep flowing during an fsync and the leader replicates while
//! its own write is in flight. Ticks come first in every round, so a process that was
//! paused catches up on time before it serves anything.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::Sender;

use kuberaft_raft::{
    Brief, Config, Membership, Message, NodeId, RawNode, ReadMode, Role, SnapshotMeta, Status,
};
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

mod lifecycle;

use super::apply::{ApplyMsg, ReadBatch, Waiter};
use super::identity::{Lifecycle, random_u64};
use super::members::{MemberInfo, SystemCommand, encode_system};
use super::persist::{Done, PersistMsg};
use super::shared::{DriverMsg, ReadKind, Reply, RequestError, Shared};
use super::transport::Transport;

/// Completions and notices from the node's own threads and tasks.
#[derive(Debug)]
pub enum Event {
    Persisted(Vec<Done>),
    Applied(u64),
    SnapshotTaken(SnapshotMeta),
    MembershipApplied(Membership),
    SelfAdded,
    SelfRemoved,
    Unreachable(NodeId),
    SnapshotSent { to: NodeId, failed: bool },
    RemovedByPeer(NodeId),
    Fatal(String),
}

/// Reads a round may batch into one ReadIndex.
const MAX_ROUND_INPUTS: usize = 1024;

pub struct Driver {
    shared: Arc<Shared>,
    core: Option<RawNode>,
    rx: mpsc::Receiver<DriverMsg>,
    events: mpsc::UnboundedReceiver<Event>,
    storage: Sender<PersistMsg>,
    apply: mpsc::UnboundedSender<ApplyMsg>,
    transport: Transport,
    /// Reads waiting for a ReadIndex, one group per mode, in arrival order.
    pending_reads: Vec<Group<Reply<Vec<u8>>>>,
    inflight_reads: HashMap<Vec<u8>, (ReadMode, ReadBatch)>,
    read_seq: u64,
    /// The term in which this node, as leader, last checked its own address-book entry.
    info_term: u64,
    last_leader: NodeId,
    /// Ticks in a row in which the core's newest configuration did not list this node.
    excluded_ticks: u32,
    /// What [`Driver::publish`] last published.
    published: Option<(Lifecycle, Option<Brief>)>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver").finish_non_exhaustive()
    }
}

/// The core's parameters from the node's settings.
pub fn raft_config(shared: &Shared) -> Config {
    let s = &shared.settings;
    let mut cfg = Config::new(shared.node_id);
    cfg.election_tick = s.election_ticks;
    cfg.heartbeat_tick = s.heartbeat_ticks;
    cfg.lease_margin_ticks = 2.min(s.election_ticks.saturating_sub(1)).max(1);
    cfg.seed = random_u64().unwrap_or(shared.node_id);
    cfg
}

impl Driver {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        shared: Arc<Shared>,
        core: Option<RawNode>,
        rx: mpsc::Receiver<DriverMsg>,
        events: mpsc::UnboundedReceiver<Event>,
        events_tx: mpsc::UnboundedSender<Event>,
        storage: Sender<PersistMsg>,
        apply: mpsc::UnboundedSender<ApplyMsg>,
    ) -> Self {
        let transport = Transport::new(shared.clone(), events_tx);
        Driver {
            shared,
            core,
            rx,
            events,
            storage,
            apply,
            transport,
            pending_reads: Vec::new(),
            inflight_reads: HashMap::new(),
            read_seq: 0,
            info_term: 0,
            last_leader: 0,
            excluded_ticks: 0,
            published: None,
        }
    }

    /// Runs until `Shutdown`; `Err` when storage or the state machine failed.
    pub async fn run(mut self) -> Result<(), String> {
        let mut ticker = tokio::time::interval(self.shared.settings.tick);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
        loop {
            tokio::select! {
                biased;
                _ = ticker.tick() => {
                    if let Some(core) = &mut self.core {
                        core.tick();
                    }
                    self.ping_if_excluded();
                    self.publish_peer_lag();
                }
                Some(ev) = self.events.recv() => {
                    self.on_event(ev)?;
                    while let Ok(ev) = self.events.try_recv() {
                        self.on_event(ev)?;
                    }
                    self.publish();
                }
                msg = self.rx.recv() => {
                    let Some(msg) = msg else { break };
                    if !self.on_msg(msg).await {
                        break;
                    }
                    for _ in 0..MAX_ROUND_INPUTS {
                        let Ok(msg) = self.rx.try_recv() else { break };
                        if !self.on_msg(msg).await {
                            return Ok(());
                        }
                    }
                }
            }
            self.flush_reads();
            self.process_ready();
            // Reads held back for a round that this Ready confirmed go out now.
            if self.flush_reads() {
                self.process_ready();
            }
        }
        Ok(())
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.apply.send(ApplyMsg::Stop);
    }
}

impl Driver {
    /// A member whose newest configuration no longer lists it holds its own removal but
    /// may never hear that it committed. Once per election timeout it asks the members it
    /// knows; one that applied the removal says so, and the node becomes Removed.
    fn ping_if_excluded(&mut self) {
        let Some(core) = &self.core else { return };
        let me = self.shared.node_id;
        if self.shared.lifecycle() != Lifecycle::Member || core.membership().contains(me) {
            self.excluded_ticks = 0;
            return;
        }
        self.excluded_ticks += 1;
        if !self
            .excluded_ticks
            .is_multiple_of(self.shared.settings.election_ticks.max(1))
        {
            return;
        }
        let peers: Vec<NodeId> = {
            let book = self.shared.book.read().unwrap_or_else(|p| p.into_inner());
            book.members()
                .map(|m| m.id)
                .filter(|&id| id != me)
                .collect()
        };
        tracing::debug!(
            ?peers,
            "not in the newest configuration: asking peers whether the removal committed"
        );
        self.transport.ping_membership(peers);
    }

    fn not_running(&self) -> RequestError {
        let lifecycle = self.shared.lifecycle();
        RequestError::Refused(format!("this node is {lifecycle}: it runs no Raft state"))
    }

    /// Handles one request; `false` to stop.
    async fn on_msg(&mut self, msg: DriverMsg) -> bool {
        match msg {
            DriverMsg::Peer(msgs) => {
                if let Some(core) = &mut self.core {
                    for m in msgs {
                        if let Err(e) = core.step(m) {
                            tracing::debug!(error = %e, "ignoring a peer message");
                        }
                    }
                }
            }
            DriverMsg::Propose { data, reply } => {
                let Some(core) = &mut self.core else {
                    let _ = reply.send(Err(self.not_running()));
                    return true;
                };
                match core.propose(data) {
                    Ok((index, term)) => {
                        self.shared.metrics.proposals.inc();
                        let waiter = Waiter::Response(reply);
                        let _ = self.apply.send(ApplyMsg::Register {
                            index,
                            term,
                            waiter,
                        });
                    }
                    Err(e) => {
                        self.shared.metrics.proposals_failed.inc();
                        let _ = reply.send(Err(e.into()));
                    }
                }
            }
            DriverMsg::ConfChange { cc, reply } => {
                let Some(core) = &mut self.core else {
                    let _ = reply.send(Err(self.not_running()));
                    return true;
                };
                match core.propose_conf_change(cc) {
                    Ok((index, term)) => {
                        let waiter = Waiter::Index(reply);
                        let _ = self.apply.send(ApplyMsg::Register {
                            index,
                            term,
                            waiter,
                        });
                    }
                    Err(e) => drop(reply.send(Err(e.into()))),
                }
            }
            DriverMsg::Read { query, mode, reply } => self.on_read(query, mode, reply),
            DriverMsg::Status(tx) => drop(tx.send(self.core.as_ref().map(RawNode::status))),
            DriverMsg::Transfer { to, reply } => {
                let result = match &mut self.core {
                    None => Err(self.not_running()),
                    Some(core) => transfer(core, to),
                };
                let _ = reply.send(result);
            }
            DriverMsg::Bootstrap { cluster_id, reply } => {
                let result = self.bootstrap(cluster_id).await;
                let _ = reply.send(result);
            }
            DriverMsg::PrepareJoin { cluster_id, reply } => {
                let _ = reply.send(self.prepare_join(cluster_id));
            }
            DriverMsg::Snapshot(reply) => {
                if self.core.is_none() {
                    let _ = reply.send(Err(self.not_running()));
                } else {
                    let _ = self.apply.send(ApplyMsg::Snapshot(Some(reply)));
                }
            }
            DriverMsg::Shutdown => return false,
        }
        true
    }

    fn on_read(&mut self, query: Vec<u8>, mode: ReadKind, reply: Reply<Vec<u8>>) {
        let Some(core) = &self.core else {
            let _ = reply.send(Err(self.not_running()));
            return;
        };
        match mode {
            ReadKind::Stale => {
                let batch = vec![(query, reply)];
                let _ = self.apply.send(ApplyMsg::Read { index: 0, batch });
            }
            ReadKind::Raft(mode) => {
                // Role and leader only: `status()` would copy the progress map per read.
                if core.role() == Role::Leader {
                    add_read(&mut self.pending_reads, mode, query, reply);
                } else {
                    let leader = core.leader();
                    let leader = (leader != 0).then_some(leader);
                    let _ = reply.send(Err(RequestError::NotLeader { leader }));
                }
            }
        }
    }

    /// Issues one ReadIndex per mode for the reads that arrived, unless one of that
    /// mode is still waiting for its heartbeat round: then they wait and go together
    /// in the next one (as etcd's read loop does). Under load a round then answers
    /// every read that arrived while the previous one was out, instead of each driver
    /// round paying for a heartbeat to every follower. `true` if it issued any.
    fn flush_reads(&mut self) -> bool {
        if self.pending_reads.is_empty() {
            return false;
        }
        let Some(core) = &mut self.core else {
            return false;
        };
        let mut issued = false;
        let mut i = 0;
        while i < self.pending_reads.len() {
            let mode = self.pending_reads[i].0;
            if self.inflight_reads.values().any(|(m, _)| *m == mode) {
                i += 1;
                continue;
            }
            let (_, batch) = self.pending_reads.swap_remove(i);
            self.read_seq += 1;
            let ctx = self.read_seq.to_be_bytes().to_vec();
            match core.read_index(ctx.clone(), mode) {
                Ok(()) => {
                    self.inflight_reads.insert(ctx, (mode, batch));
                    issued = true;
                }
                Err(e) => fail_batch(batch, e.into()),
            }
        }
        issued
    }

    fn process_ready(&mut self) {
        let Some(core) = &mut self.core else { return };
        if !core.has_ready() {
            return;
        }
        while core.has_ready() {
            let rd = core.ready();
            if let Some(ss) = rd.soft_state {
                if ss.leader != self.last_leader {
                    self.shared.metrics.leader_changes.inc();
                    tracing::info!(leader = ss.leader, role = ?ss.role, "leader changed");
                    self.last_leader = ss.leader;
                }
                self.shared.metrics.set_role(ss.role);
            }
            let must_sync = rd.must_sync();
            for m in rd.messages {
                send(core, &mut self.transport, m);
            }
            if rd.snapshot.is_some()
                || !rd.entries.is_empty()
                || rd.hard_state.is_some()
                || !rd.persisted_messages.is_empty()
            {
                let _ = self.storage.send(PersistMsg::Write {
                    snapshot: rd.snapshot.as_ref().map(|s| s.meta.clone()),
                    entries: rd.entries,
                    hard_state: rd.hard_state,
                    must_sync,
                    messages: rd.persisted_messages,
                });
            }
            if let Some(snap) = rd.snapshot {
                let _ = self.apply.send(ApplyMsg::Restore(snap.meta));
            }
            if !rd.committed_entries.is_empty() {
                let _ = self.apply.send(ApplyMsg::Entries(rd.committed_entries));
            }
            for rs in rd.read_states {
                if let Some((_, batch)) = self.inflight_reads.remove(&rs.request) {
                    let _ = self.apply.send(ApplyMsg::Read {
                        index: rs.index,
                        batch,
                    });
                }
            }
            for req in rd.rejected_reads {
                if let Some((_, batch)) = self.inflight_reads.remove(&req) {
                    let why = "leadership changed during the read".into();
                    fail_batch(batch, RequestError::Unavailable(why));
                }
            }
        }
        self.maybe_announce_self();
        self.publish();
    }

    /// A leader makes sure the replicated address book has its current addresses (it
    /// may have restarted with new ones, or founded the cluster).
    fn maybe_announce_self(&mut self) {
        let Some(core) = &mut self.core else { return };
        let b = core.brief();
        if b.role != Role::Leader || self.info_term == b.term {
            return;
        }
        self.info_term = b.term;
        let s = &self.shared.settings;
        let me = MemberInfo {
            id: self.shared.node_id,
            name: s.name.clone(),
            peer_addr: s.advertise_peer.clone(),
            client_addr: s.advertise_client.clone(),
        };
        if self.shared.book().get(me.id) == Some(&me) {
            return;
        }
        let data = encode_system(&SystemCommand::SetMemberInfo(me));
        if let Err(e) = core.propose(data) {
            tracing::debug!(error = %e, "could not announce this node's addresses");
        }
    }

    /// Publishes the core's state for services and metrics when it changed since the
    /// last round. Reads only the core's scalars: a busy leader publishes after nearly
    /// every round, and copying the configuration and progress map each time showed up
    /// in its profile. The configuration is copied only when it differs.
    fn publish(&mut self) {
        let lifecycle = self.shared.lifecycle();
        let brief = self.core.as_ref().map(RawNode::brief);
        if self.published == Some((lifecycle, brief)) {
            return;
        }
        self.published = Some((lifecycle, brief));
        if let Some(b) = brief {
            let m = &self.shared.metrics;
            m.term.set(b.term as i64);
            m.commit_index.set(b.commit as i64);
            m.applied_index.set(b.applied as i64);
            m.apply_lag.set(b.commit.saturating_sub(b.applied) as i64);
        }
        let membership = self.core.as_ref().map(RawNode::membership);
        self.shared.view.send_modify(|v| {
            v.lifecycle = lifecycle;
            v.brief = brief.unwrap_or_default();
            match membership {
                Some(m) if v.membership != *m => v.membership = m.clone(),
                Some(_) => {}
                None => v.membership = Membership::default(),
            }
        });
    }

    /// Once per tick, a leader's lag metric for each peer (it needs the progress map).
    fn publish_peer_lag(&self) {
        let Some(core) = &self.core else { return };
        if core.role() != Role::Leader {
            return;
        }
        let st = core.status();
        for (id, p) in &st.progress {
            let lag = st.last_index.saturating_sub(p.matched) as i64;
            self.shared
                .metrics
                .peer_lag
                .get_or_create(&vec![("peer".to_owned(), id.to_string())])
                .set(lag);
        }
    }

    fn on_event(&mut self, ev: Event) -> Result<(), String> {
        match &ev {
            Event::Fatal(e) => return Err(e.clone()),
            Event::SelfAdded => {
                let mut ident = self
                    .shared
                    .identity
                    .write()
                    .unwrap_or_else(|p| p.into_inner());
                if ident.lifecycle == Lifecycle::Joining {
                    ident
                        .set_lifecycle(Lifecycle::Member)
                        .map_err(|e| e.to_string())?;
                    tracing::info!("joined the cluster as a member");
                }
            }
            Event::SelfRemoved => self.become_removed()?,
            Event::RemovedByPeer(peer) => {
                tracing::warn!(peer, "a peer says this node was removed from the cluster");
                self.become_removed()?;
            }
            _ => {}
        }
        let Some(core) = &mut self.core else {
            return Ok(());
        };
        match ev {
            Event::Persisted(dones) => {
                for d in dones {
                    if let Some((i, t)) = d.snapshot {
                        core.on_persisted(i, t);
                    }
                    if let Some((i, t)) = d.last {
                        core.on_persisted(i, t);
                    }
                    for m in d.messages {
                        send(core, &mut self.transport, m);
                    }
                }
            }
            Event::Applied(index) => core.on_applied(index),
            Event::SnapshotTaken(meta) => match core.compact(meta.index, Vec::new()) {
                Ok(()) => {
                    let _ = self.storage.send(PersistMsg::Compact(meta));
                }
                Err(e) => tracing::debug!(error = %e, "not compacting"),
            },
            Event::MembershipApplied(applied) => {
                let current = core.membership().clone();
                self.transport
                    .retain(|id| current.contains(id) || applied.contains(id));
            }
            Event::Unreachable(id) => core.report_unreachable(id),
            Event::SnapshotSent { to, failed } => {
                core.report_snapshot(to, failed);
                if !failed {
                    self.shared.metrics.snapshot("sent");
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn send(core: &mut RawNode, transport: &mut Transport, m: Message) {
    let to = m.to;
    if !transport.send(m) {
        core.report_unreachable(to);
    }
}

/// Reads of one mode that go out in one ReadIndex.
type Group<T> = (ReadMode, Vec<(Vec<u8>, T)>);

/// Adds a read to the group of its mode (a new one at the end if there is none).
fn add_read<T>(groups: &mut Vec<Group<T>>, mode: ReadMode, query: Vec<u8>, reply: T) {
    match groups.iter_mut().find(|(m, _)| *m == mode) {
        Some((_, batch)) => batch.push((query, reply)),
        None => groups.push((mode, vec![(query, reply)])),
    }
}

fn fail_batch(batch: ReadBatch, e: RequestError) {
    for (_, reply) in batch {
        let _ = reply.send(Err(e.clone()));
    }
}

/// Starts a leadership transfer to `to`, or to the most caught-up other voter when 0.
fn transfer(core: &mut RawNode, to: NodeId) -> Result<NodeId, RequestError> {
    let st = core.status();
    let target = if to != 0 {
        to
    } else {
        most_caught_up_voter(&st)
            .ok_or_else(|| RequestError::Invalid("there is no other voter to transfer to".into()))?
    };
    core.transfer_leader(target)?;
    Ok(target)
}

pub fn most_caught_up_voter(st: &Status) -> Option<NodeId> {
    st.progress
        .iter()
        .filter(|(id, _)| **id != st.id && st.membership.voters.contains(id))
        .max_by_key(|(id, p)| (p.matched, p.recent_active, std::cmp::Reverse(**id)))
        .map(|(id, _)| *id)
}

#[cfg(test)]
mod tests;
