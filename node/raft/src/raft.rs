//! The Raft state machine: one node's role, term, log and, on a leader, its view of every
//! follower. Inputs are ticks, messages and requests; outputs are queued messages, read
//! answers and log changes that [`crate::RawNode::ready`] hands to the application.
//!
//! Kept in one piece on purpose: the protocol's rules interlock and read best together.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::config::{Config, Mutation};
use crate::error::{Error, Result};
use crate::log::RaftLog;
use crate::membership::VoteResult;
use crate::progress::{Progress, ProgressState};
use crate::rng::Rng;
use crate::types::*;

/// A read waiting for a heartbeat round to be acknowledged by a quorum.
#[derive(Clone, Debug)]
struct PendingRead {
    round: u64,
    index: u64,
    from: NodeId,
    request: Vec<u8>,
}

/// A read that arrived before the leader committed an entry of its own term.
#[derive(Clone, Debug)]
struct QueuedRead {
    from: NodeId,
    request: Vec<u8>,
    mode: ReadMode,
}

#[derive(Debug)]
pub(crate) struct Raft {
    pub(crate) id: NodeId,
    pub(crate) cfg: Config,
    pub(crate) term: u64,
    pub(crate) vote: NodeId,
    pub(crate) role: Role,
    pub(crate) leader: NodeId,
    pub(crate) log: RaftLog,
    pub(crate) applied: u64,
    pub(crate) progress: BTreeMap<NodeId, Progress>,
    votes: HashMap<NodeId, bool>,
    election_elapsed: u32,
    heartbeat_elapsed: u32,
    randomized_timeout: u32,
    rng: Rng,
    pub(crate) transferee: NodeId,
    /// Ticks since this node started; the unit of leases.
    now: u64,
    /// The last heartbeat round a leader issued, with each unconfirmed round's tick.
    round: u64,
    round_ticks: VecDeque<(u64, u64)>,
    /// The newest round a quorum acknowledged.
    confirmed_round: u64,
    /// A TimeoutNow went out in this term: lease reads are off until the next term.
    lease_void: bool,
    /// Started with a term past the bootstrap term, so it may have heard from a leader
    /// before it went down.
    restarted: bool,
    /// The tick at which the newest quorum-confirmed round was sent (lease start).
    lease_start: Option<u64>,
    pending_reads: VecDeque<PendingRead>,
    queued_reads: Vec<QueuedRead>,
    pub(crate) msgs: Vec<Message>,
    pub(crate) persisted_msgs: Vec<Message>,
    pub(crate) read_states: Vec<ReadState>,
    pub(crate) rejected_reads: Vec<Vec<u8>>,
}

impl Raft {
    pub(crate) fn new(cfg: Config, hs: HardState, log: RaftLog) -> Self {
        let mut r = Raft {
            id: cfg.id,
            term: hs.term,
            vote: hs.vote,
            role: Role::Follower,
            leader: NO_NODE,
            applied: log.applying,
            log,
            progress: BTreeMap::new(),
            votes: HashMap::new(),
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            randomized_timeout: 0,
            rng: Rng::new(cfg.seed),
            transferee: NO_NODE,
            now: 0,
            round: 0,
            round_ticks: VecDeque::new(),
            confirmed_round: 0,
            lease_void: false,
            restarted: hs.term > 1,
            lease_start: None,
            pending_reads: VecDeque::new(),
            queued_reads: Vec::new(),
            msgs: Vec::new(),
            persisted_msgs: Vec::new(),
            read_states: Vec::new(),
            rejected_reads: Vec::new(),
            cfg,
        };
        r.reset_election_timer();
        r
    }

    pub(crate) fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.log.committed,
        }
    }

    /// Whether this node may campaign: a voter of the newest configuration, or a voter
    /// of the committed one while a newer configuration that drops it is uncommitted
    /// (Raft thesis 4.2.2: a server outside C_new may lead until C_new commits). Without
    /// the second case a two-voter cluster whose leader appended its own removal and then
    /// lost leadership deadlocks: the leader no longer campaigns, and the other voter,
    /// lacking the removal, cannot win the leader's vote (script 30).
    fn promotable(&self) -> bool {
        self.log.membership().is_voter(self.id)
            || (self.log.last_conf_index() > self.log.committed
                && self.log.membership_at(self.log.committed).is_voter(self.id))
    }

    fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        let e = u64::from(self.cfg.election_tick);
        self.randomized_timeout = self.rng.range(e, 2 * e) as u32;
    }

    // ---------------------------------------------------------------- sending

    fn send(&mut self, to: NodeId, term: u64, body: MessageBody) {
        self.msgs.push(Message {
            from: self.id,
            to,
            term,
            body,
        });
    }

    /// Queues a message that may leave only once this Ready's writes are durable.
    fn send_persisted(&mut self, to: NodeId, term: u64, body: MessageBody) {
        self.persisted_msgs.push(Message {
            from: self.id,
            to,
            term,
            body,
        });
    }

    fn peers(&self) -> Vec<NodeId> {
        self.progress
            .keys()
            .copied()
            .filter(|&id| id != self.id)
            .collect()
    }

    /// Sends the next Append (or a snapshot) to `to` if its flow control allows. Returns
    /// whether a message carrying entries went out in the replicate state, so callers
    /// can keep filling the pipeline.
    fn send_append(&mut self, to: NodeId, send_empty: bool) -> bool {
        let last = self.log.last_index();
        let Some(pr) = self.progress.get_mut(&to) else {
            return false;
        };
        if pr.is_paused() {
            return false;
        }
        if pr.next > last + 1 {
            pr.next = last + 1;
        }
        let prev_index = pr.next - 1;
        let Some(prev_term) = self.log.term(prev_index) else {
            // Behind the first retained index: only a snapshot can help.
            let snapshot = self.log.snapshot();
            pr.become_snapshot(snapshot.meta.index);
            pr.stall_ticks = 0;
            self.send(to, self.term, MessageBody::Snapshot { snapshot });
            return false;
        };
        let entries = self.log.slice(
            pr.next,
            self.cfg.max_entries_per_msg,
            self.cfg.max_bytes_per_msg,
        );
        if entries.is_empty() && !send_empty {
            return false;
        }
        let pipelined = match (pr.state, entries.last()) {
            (ProgressState::Replicate, Some(e)) => {
                let bytes = entries.iter().map(Entry::size).sum();
                pr.next = e.index + 1;
                pr.inflights.add(e.index, bytes);
                true
            }
            (ProgressState::Probe, _) => {
                pr.probe_sent = true;
                false
            }
            _ => false,
        };
        let commit = self.log.committed;
        self.send(
            to,
            self.term,
            MessageBody::Append {
                prev_index,
                prev_term,
                entries,
                commit,
            },
        );
        pipelined
    }

    /// Tells `to` to campaign at once. Its forced election bypasses the followers' lease,
    /// so this leader's own lease is void for the rest of the term, even if the transfer
    /// is later abandoned.
    fn send_timeout_now(&mut self, to: NodeId) {
        self.lease_void = true;
        self.send(to, self.term, MessageBody::TimeoutNow);
    }

    fn fill_pipeline(&mut self, to: NodeId) {
        while self.send_append(to, false) {}
    }

    fn bcast_append(&mut self, send_empty: bool) {
        for id in self.peers() {
            if self.send_append(id, send_empty) {
                self.fill_pipeline(id);
            }
        }
    }

    fn bcast_heartbeat(&mut self) {
        self.round += 1;
        self.round_ticks.push_back((self.round, self.now));
        for id in self.peers() {
            let commit = self.progress[&id].matched.min(self.log.committed);
            let round = self.round;
            self.send(id, self.term, MessageBody::Heartbeat { commit, round });
        }
    }

    // ---------------------------------------------------------------- roles

    pub(crate) fn become_follower(&mut self, term: u64, leader: NodeId) {
        if term != self.term {
            self.term = term;
            self.vote = NO_NODE;
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.transferee = NO_NODE;
        self.progress.clear();
        self.votes.clear();
        self.fail_reads();
        self.reset_election_timer();
    }

    fn become_leader(&mut self) {
        self.role = Role::Leader;
        self.leader = self.id;
        self.transferee = NO_NODE;
        self.heartbeat_elapsed = 0;
        self.election_elapsed = 0;
        self.lease_start = None;
        self.round_ticks.clear();
        self.confirmed_round = 0;
        self.lease_void = false;
        self.progress.clear();
        self.sync_progress();
        let index = self.log.last_index() + 1;
        self.log.append(vec![Entry {
            term: self.term,
            index,
            payload: EntryPayload::Empty,
        }]);
        self.bcast_append(false);
    }

    /// Creates or drops follower progress to match the configuration in force.
    fn sync_progress(&mut self) {
        let members = self.log.membership().all();
        let next = self.log.last_index() + 1;
        self.progress.retain(|id, _| members.contains(id));
        for id in members {
            if id != self.id && !self.progress.contains_key(&id) {
                let (m, b) = (self.cfg.max_inflight_msgs, self.cfg.max_inflight_bytes);
                let mut pr = Progress::new(next, m, b);
                pr.recent_active = true;
                self.progress.insert(id, pr);
            }
        }
        if self.transferee != NO_NODE && !self.log.membership().voters.contains(&self.transferee) {
            self.transferee = NO_NODE;
        }
    }

    /// Starts an election, or a pre-election when `pre`. A leadership transfer sets
    /// `force`, which skips pre-vote and the receivers' leader lease.
    fn campaign(&mut self, pre: bool, force: bool) {
        if !self.promotable() {
            return;
        }
        self.votes.clear();
        self.leader = NO_NODE;
        self.reset_election_timer();
        let term = if pre {
            self.role = Role::PreCandidate;
            self.term + 1
        } else {
            self.role = Role::Candidate;
            self.term += 1;
            self.vote = self.id;
            self.term
        };
        self.votes.insert(self.id, true);
        match self.log.membership().vote_result(&self.votes) {
            VoteResult::Won if pre => return self.campaign(false, force),
            VoteResult::Won => return self.become_leader(),
            _ => {}
        }
        let (last_index, last_term) = (self.log.last_index(), self.log.last_term());
        let m = self.log.membership();
        let voters: Vec<NodeId> = m
            .voters
            .union(&m.outgoing)
            .copied()
            .filter(|&id| id != self.id)
            .collect();
        for id in voters {
            let body = MessageBody::Vote {
                pre,
                last_index,
                last_term,
                force,
            };
            if pre {
                self.send(id, term, body);
            } else {
                // Our own vote must be durable before anyone can count on this election.
                self.send_persisted(id, term, body);
            }
        }
    }

    // ---------------------------------------------------------------- ticks

    pub(crate) fn tick(&mut self) {
        self.now += 1;
        if self.role == Role::Leader {
            return self.tick_leader();
        }
        self.election_elapsed += 1;
        if self.promotable() && self.election_elapsed >= self.randomized_timeout {
            self.campaign(self.cfg.pre_vote, false);
        }
    }

    fn tick_leader(&mut self) {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        if self.election_elapsed >= self.cfg.election_tick {
            self.election_elapsed = 0;
            if self.cfg.check_quorum {
                let active = |id: NodeId| {
                    id == self.id || self.progress.get(&id).is_some_and(|p| p.recent_active)
                };
                if !self.log.membership().has_quorum(active) {
                    let term = self.term;
                    return self.become_follower(term, NO_NODE);
                }
                for pr in self.progress.values_mut() {
                    pr.recent_active = false;
                }
            }
            // A transfer that has not finished within an election timeout is abandoned.
            self.transferee = NO_NODE;
        }
        let stall_limit = self.cfg.election_tick;
        let mut stalled = Vec::new();
        for (&id, pr) in &mut self.progress {
            match pr.state {
                ProgressState::Replicate if !pr.inflights.is_empty() => pr.stall_ticks += 1,
                ProgressState::Snapshot { .. } => pr.stall_ticks += 1,
                _ => pr.stall_ticks = 0,
            }
            let limit = if matches!(pr.state, ProgressState::Snapshot { .. }) {
                2 * stall_limit
            } else {
                stall_limit
            };
            if pr.stall_ticks >= limit {
                // Nothing acknowledged for a long while: assume the messages were lost.
                pr.stall_ticks = 0;
                pr.state = ProgressState::Probe;
                pr.next = pr.matched + 1;
                pr.probe_sent = false;
                pr.inflights.reset();
                stalled.push(id);
            }
        }
        for id in stalled {
            self.send_append(id, true);
        }
        if self.heartbeat_elapsed >= self.cfg.heartbeat_tick {
            self.heartbeat_elapsed = 0;
            self.bcast_heartbeat();
        }
    }

    // ---------------------------------------------------------------- messages

    pub(crate) fn step(&mut self, m: Message) -> Result<()> {
        if m.to != self.id {
            return Err(Error::Misaddressed {
                from: m.from,
                to: m.to,
                id: self.id,
            });
        }
        if m.term > self.term {
            match &m.body {
                MessageBody::Vote { pre, force, .. } => {
                    // A node that just started may have heard from a leader before it
                    // went down and forgotten it; it waits out one election timeout too,
                    // or a leader's lease could be cut short by its vote.
                    let heard_recently = self.leader != NO_NODE
                        || (self.restarted && self.now < u64::from(self.cfg.election_tick));
                    let in_lease = self.cfg.check_quorum
                        && heard_recently
                        && self.election_elapsed < self.cfg.election_tick;
                    if in_lease && !force {
                        // We hear from a leader: a removed or partitioned node's
                        // election must not disrupt it.
                        return Ok(());
                    }
                    if !pre {
                        self.become_follower(m.term, NO_NODE);
                    }
                }
                // A granted pre-vote carries the term the candidate would use.
                MessageBody::VoteResp {
                    pre: true,
                    reject: false,
                } => {}
                MessageBody::Append { .. }
                | MessageBody::Heartbeat { .. }
                | MessageBody::Snapshot { .. } => self.become_follower(m.term, m.from),
                _ => self.become_follower(m.term, NO_NODE),
            }
        } else if m.term < self.term {
            match &m.body {
                MessageBody::Append { .. } | MessageBody::Heartbeat { .. } => {
                    // A stale leader learns our term and steps down.
                    let body = MessageBody::AppendResp {
                        index: 0,
                        reject: true,
                        hint_index: 0,
                        hint_term: 0,
                    };
                    self.send(m.from, self.term, body);
                }
                MessageBody::Vote { pre: true, .. } => {
                    let body = MessageBody::VoteResp {
                        pre: true,
                        reject: true,
                    };
                    self.send(m.from, self.term, body);
                }
                _ => {}
            }
            return Ok(());
        }

        match m.body {
            MessageBody::Vote {
                pre,
                last_index,
                last_term,
                ..
            } => {
                self.handle_vote(m.from, m.term, pre, last_index, last_term);
            }
            body => match self.role {
                Role::Leader => self.step_leader(m.from, body),
                Role::Candidate | Role::PreCandidate => self.step_candidate(m.from, m.term, body),
                Role::Follower => self.step_follower(m.from, body),
            },
        }
        Ok(())
    }

    fn handle_vote(&mut self, from: NodeId, term: u64, pre: bool, last_index: u64, last_term: u64) {
        let can_vote = self.vote == from
            || (self.vote == NO_NODE && self.leader == NO_NODE)
            || (pre && term > self.term);
        let up_to_date = self.cfg.mutated(Mutation::VoteWithoutUpToDateCheck)
            || self.log.is_up_to_date(last_index, last_term);
        if can_vote && up_to_date {
            if pre {
                // A granted pre-vote changes nothing here, not even the election timer:
                // otherwise a node that keeps pre-campaigning could starve elections.
                if self.cfg.mutated(Mutation::PreVoteResetsElectionTimer) {
                    self.election_elapsed = 0;
                }
                self.send(from, term, MessageBody::VoteResp { pre, reject: false });
                // Two nodes that timed out together would each win the other's pre-vote,
                // then each vote for itself and split the election, costing another
                // timeout. Of two such pre-candidates the one with the lower id steps
                // back (its election timer restarts), so the other wins at once.
                if self.role == Role::PreCandidate && term == self.term + 1 && from > self.id {
                    let term = self.term;
                    self.become_follower(term, NO_NODE);
                }
            } else {
                self.vote = from;
                self.election_elapsed = 0;
                self.send_persisted(from, term, MessageBody::VoteResp { pre, reject: false });
            }
        } else {
            let body = MessageBody::VoteResp { pre, reject: true };
            if pre {
                self.send(from, self.term, body);
            } else {
                self.send_persisted(from, self.term, body);
            }
        }
    }

    fn step_candidate(&mut self, from: NodeId, term: u64, body: MessageBody) {
        match body {
            MessageBody::Append { .. }
            | MessageBody::Heartbeat { .. }
            | MessageBody::Snapshot { .. } => {
                self.become_follower(self.term, from);
                self.step_follower(from, body);
            }
            MessageBody::VoteResp { pre, reject } => {
                if pre != (self.role == Role::PreCandidate) {
                    return;
                }
                // A granted pre-vote is for term + 1; anything else is for our term.
                if pre && !reject && term != self.term + 1 {
                    return;
                }
                self.votes.insert(from, !reject);
                match self.log.membership().vote_result(&self.votes) {
                    VoteResult::Won if pre => self.campaign(false, false),
                    VoteResult::Won => self.become_leader(),
                    VoteResult::Lost => {
                        let t = self.term;
                        self.become_follower(t, NO_NODE);
                    }
                    VoteResult::Pending => {}
                }
            }
            MessageBody::ReadIndex { request } => self.reject_read(from, request),
            _ => {}
        }
    }

    fn step_follower(&mut self, from: NodeId, body: MessageBody) {
        match body {
            MessageBody::Append {
                prev_index,
                prev_term,
                entries,
                commit,
            } => {
                self.election_elapsed = 0;
                self.leader = from;
                self.handle_append(from, prev_index, prev_term, entries, commit);
            }
            MessageBody::Heartbeat { commit, round } => {
                self.election_elapsed = 0;
                self.leader = from;
                self.log.commit_to(commit.min(self.log.last_index()));
                self.send(from, self.term, MessageBody::HeartbeatResp { round });
            }
            MessageBody::Snapshot { snapshot } => {
                self.election_elapsed = 0;
                self.leader = from;
                self.handle_snapshot(from, snapshot);
            }
            MessageBody::TimeoutNow if self.promotable() => self.campaign(false, true),
            MessageBody::ReadIndex { request } => self.reject_read(from, request),
            MessageBody::ReadIndexResp {
                request,
                index,
                reject,
            } => {
                if reject {
                    self.rejected_reads.push(request);
                } else {
                    self.read_states.push(ReadState { request, index });
                }
            }
            _ => {}
        }
    }

    fn handle_append(
        &mut self,
        from: NodeId,
        prev_index: u64,
        prev_term: u64,
        entries: Vec<Entry>,
        commit: u64,
    ) {
        let term = self.term;
        if prev_index < self.log.committed {
            let body = MessageBody::AppendResp {
                index: self.log.committed,
                reject: false,
                hint_index: 0,
                hint_term: 0,
            };
            return self.send_persisted(from, term, body);
        }
        let truncate_always = self.cfg.mutated(Mutation::TruncateOnStaleAppend);
        match self
            .log
            .maybe_append(prev_index, prev_term, entries, truncate_always)
        {
            Some(last_new) => {
                self.log.commit_to(commit.min(last_new));
                let body = MessageBody::AppendResp {
                    index: last_new,
                    reject: false,
                    hint_index: 0,
                    hint_term: 0,
                };
                self.send_persisted(from, term, body);
            }
            None => {
                let probe = prev_index.min(self.log.last_index());
                let (hint_index, hint_term) = self.log.find_conflict_by_term(probe, prev_term);
                let body = MessageBody::AppendResp {
                    index: prev_index,
                    reject: true,
                    hint_index,
                    hint_term,
                };
                self.send_persisted(from, term, body);
            }
        }
    }

    fn handle_snapshot(&mut self, from: NodeId, snapshot: Snapshot) {
        let (index, term) = (snapshot.meta.index, snapshot.meta.term);
        if index > self.log.committed {
            if self.log.term(index) == Some(term) {
                // We already hold that prefix: just learn that it is committed.
                self.log.commit_to(index);
            } else {
                self.log.restore(snapshot);
            }
        }
        let body = MessageBody::AppendResp {
            index: self.log.committed,
            reject: false,
            hint_index: 0,
            hint_term: 0,
        };
        self.send_persisted(from, self.term, body);
    }

    fn step_leader(&mut self, from: NodeId, body: MessageBody) {
        match body {
            MessageBody::AppendResp {
                index,
                reject,
                hint_index,
                hint_term,
            } => {
                self.handle_append_resp(from, index, reject, hint_index, hint_term);
            }
            MessageBody::HeartbeatResp { round } => {
                let last = self.log.last_index();
                let Some(pr) = self.progress.get_mut(&from) else {
                    return;
                };
                pr.recent_active = true;
                pr.acked_round = pr.acked_round.max(round);
                pr.probe_sent = false;
                // A follower still behind may have lost pipelined Appends: an Append at
                // the optimistic next index either fills the gap or is rejected, which
                // resets the pipeline at once instead of after the stall timeout.
                let behind = pr.matched < last;
                if behind {
                    self.send_append(from, true);
                }
                self.advance_reads();
            }
            MessageBody::ReadIndex { request } => {
                self.handle_read(from, request, ReadMode::Safe);
            }
            _ => {}
        }
    }

    fn handle_append_resp(
        &mut self,
        from: NodeId,
        index: u64,
        reject: bool,
        hint_index: u64,
        hint_term: u64,
    ) {
        let last = self.log.last_index();
        let next_hint = if reject && hint_term > 0 {
            self.log.find_conflict_by_term(hint_index, hint_term).0 + 1
        } else {
            hint_index + 1
        };
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.recent_active = true;
        if reject {
            if pr.maybe_decr_to(index, next_hint) {
                if pr.state == ProgressState::Replicate {
                    pr.become_probe();
                }
                self.send_append(from, false);
            }
            return;
        }
        let was_paused = pr.is_paused();
        if !pr.maybe_update(index) {
            return;
        }
        pr.stall_ticks = 0;
        match pr.state {
            ProgressState::Probe => pr.become_replicate(),
            ProgressState::Snapshot { pending } if pr.matched >= pending => pr.become_probe(),
            ProgressState::Replicate => pr.inflights.free_to(index),
            ProgressState::Snapshot { .. } => {}
        }
        let caught_up = pr.matched == last;
        if self.maybe_commit() {
            self.bcast_append(true);
        } else if was_paused {
            // Unpaused: tell it the commit index now rather than at the next heartbeat.
            self.send_append(from, true);
        }
        self.fill_pipeline(from);
        if from == self.transferee && caught_up {
            self.send_timeout_now(from);
        }
    }

    // ---------------------------------------------------------------- commit

    /// Advances the commit index to what a quorum holds, counting only entries of the
    /// current term (Raft paper, Figure 8); earlier entries commit along with them.
    pub(crate) fn maybe_commit(&mut self) -> bool {
        let stable = self.log.stable;
        let idx = self.log.membership().committed_index(|id| {
            if id == self.id {
                stable
            } else {
                self.progress.get(&id).map_or(0, |p| p.matched)
            }
        });
        let ok_term = self.log.term(idx) == Some(self.term)
            || (self.cfg.mutated(Mutation::CommitPreviousTerm) && idx <= self.log.last_index());
        if idx <= self.log.committed || !ok_term {
            return false;
        }
        let first_in_term = self.log.term(self.log.committed) != Some(self.term);
        self.log.commit_to(idx);
        if first_in_term {
            for q in std::mem::take(&mut self.queued_reads) {
                self.handle_read(q.from, q.request, q.mode);
            }
        }
        self.after_commit();
        true
    }

    fn after_commit(&mut self) {
        let conf_committed = self.log.last_conf_index() <= self.log.committed;
        if !conf_committed {
            return;
        }
        if self.log.membership().is_joint() {
            // Leave joint consensus automatically once the joint entry is committed.
            let index = self.log.last_index() + 1;
            let payload = EntryPayload::ConfChange(ConfChange::leave_joint());
            self.log.append(vec![Entry {
                term: self.term,
                index,
                payload,
            }]);
            self.sync_progress();
        } else if !self.promotable() {
            // Removed from the configuration and the removal is committed: hand over to the
            // most caught-up voter and step down.
            let last = self.log.last_index();
            let target = self
                .progress
                .iter()
                .filter(|(id, p)| self.log.membership().voters.contains(id) && p.matched == last)
                .map(|(&id, _)| id)
                .next();
            self.bcast_append(true);
            if let Some(to) = target {
                self.send_timeout_now(to);
            }
            let term = self.term;
            self.become_follower(term, NO_NODE);
        }
    }

    /// The application made the log durable through `index` (term `term`).
    pub(crate) fn on_persisted(&mut self, index: u64, term: u64) {
        if self.log.on_persisted(index, term) && self.role == Role::Leader && self.maybe_commit() {
            self.bcast_append(true);
        }
    }

    // ---------------------------------------------------------------- requests

    fn check_can_propose(&self) -> Result<()> {
        if self.role != Role::Leader {
            let leader = (self.leader != NO_NODE).then_some(self.leader);
            return Err(Error::NotLeader { leader });
        }
        if self.transferee != NO_NODE {
            return Err(Error::TransferInProgress {
                transferee: self.transferee,
            });
        }
        Ok(())
    }

    fn append_and_send(&mut self, payload: EntryPayload) -> (u64, u64) {
        let index = self.log.last_index() + 1;
        self.log.append(vec![Entry {
            term: self.term,
            index,
            payload,
        }]);
        self.bcast_append(false);
        (index, self.term)
    }

    pub(crate) fn propose(&mut self, data: Vec<u8>) -> Result<(u64, u64)> {
        self.check_can_propose()?;
        Ok(self.append_and_send(EntryPayload::Normal(data)))
    }

    pub(crate) fn propose_conf_change(&mut self, cc: ConfChange) -> Result<(u64, u64)> {
        self.check_can_propose()?;
        if self.log.term(self.log.committed) != Some(self.term) {
            return Err(Error::NotReadyInTerm);
        }
        let pending = self.log.last_conf_index();
        if pending > self.log.committed && !self.cfg.mutated(Mutation::TwoPendingConfChanges) {
            return Err(Error::ConfChangePending { index: pending });
        }
        self.log.membership().apply(&cc)?;
        let out = self.append_and_send(EntryPayload::ConfChange(cc));
        self.sync_progress();
        self.bcast_append(false);
        Ok(out)
    }

    pub(crate) fn transfer_leader(&mut self, to: NodeId) -> Result<()> {
        if self.role != Role::Leader {
            let leader = (self.leader != NO_NODE).then_some(self.leader);
            return Err(Error::NotLeader { leader });
        }
        if to == self.id {
            return Err(Error::InvalidTransfer {
                target: to,
                reason: "it is already the leader",
            });
        }
        if !self.log.membership().voters.contains(&to) {
            return Err(Error::InvalidTransfer {
                target: to,
                reason: "it is not a voter",
            });
        }
        if self.transferee == to {
            return Ok(());
        }
        self.transferee = to;
        self.election_elapsed = 0;
        if self
            .progress
            .get(&to)
            .is_some_and(|p| p.matched == self.log.last_index())
        {
            self.send_timeout_now(to);
        } else {
            self.send_append(to, true);
        }
        Ok(())
    }

    pub(crate) fn read_index(&mut self, request: Vec<u8>, mode: ReadMode) -> Result<()> {
        match self.role {
            Role::Leader => {
                self.handle_read(self.id, request, mode);
                Ok(())
            }
            _ if self.leader != NO_NODE => {
                let leader = self.leader;
                self.send(leader, self.term, MessageBody::ReadIndex { request });
                Ok(())
            }
            _ => Err(Error::NotLeader { leader: None }),
        }
    }

    fn lease_valid(&self) -> bool {
        let lease = u64::from(self.cfg.election_tick - self.cfg.lease_margin_ticks);
        self.cfg.check_quorum
            && !self.lease_void
            && self
                .lease_start
                .is_some_and(|start| self.now < start + lease)
    }

    fn handle_read(&mut self, from: NodeId, request: Vec<u8>, mode: ReadMode) {
        if self.log.term(self.log.committed) != Some(self.term) {
            // The commit index of an earlier term may be stale: wait for our own entry.
            self.queued_reads.push(QueuedRead {
                from,
                request,
                mode,
            });
            return;
        }
        let index = self.log.committed;
        let m = self.log.membership();
        let alone = !m.is_joint() && m.voters.len() == 1 && m.voters.contains(&self.id);
        if alone || (mode == ReadMode::Lease && self.lease_valid()) {
            return self.serve_read(from, request, index);
        }
        if self.cfg.mutated(Mutation::ReuseReadIndexContext) && self.confirmed_round > 0 {
            // The bug: reuse a context a quorum acknowledged long ago.
            let round = self.confirmed_round;
            self.pending_reads.push_back(PendingRead {
                round,
                index,
                from,
                request,
            });
            return self.advance_reads();
        }
        self.bcast_heartbeat();
        self.pending_reads.push_back(PendingRead {
            round: self.round,
            index,
            from,
            request,
        });
    }

    fn serve_read(&mut self, from: NodeId, request: Vec<u8>, index: u64) {
        if from == self.id {
            self.read_states.push(ReadState { request, index });
        } else {
            let body = MessageBody::ReadIndexResp {
                request,
                index,
                reject: false,
            };
            self.send(from, self.term, body);
        }
    }

    /// Serves every read whose heartbeat round a quorum has acknowledged, and moves the
    /// lease start to that round's send time.
    fn advance_reads(&mut self) {
        let round = self.round;
        let acked = self.log.membership().committed_index(|id| {
            if id == self.id {
                round
            } else {
                self.progress.get(&id).map_or(0, |p| p.acked_round)
            }
        });
        self.confirmed_round = self.confirmed_round.max(acked);
        while let Some(&(r, tick)) = self.round_ticks.front() {
            if r > acked {
                break;
            }
            self.lease_start = Some(self.lease_start.map_or(tick, |s| s.max(tick)));
            self.round_ticks.pop_front();
        }
        while self.pending_reads.front().is_some_and(|p| p.round <= acked) {
            let p = self.pending_reads.pop_front().expect("checked above");
            self.serve_read(p.from, p.request, p.index);
        }
    }

    /// Tells a follower its forwarded read cannot be served here; it retries elsewhere.
    fn reject_read(&mut self, from: NodeId, request: Vec<u8>) {
        let body = MessageBody::ReadIndexResp {
            request,
            index: 0,
            reject: true,
        };
        self.send(from, self.term, body);
    }

    fn fail_reads(&mut self) {
        let pending = std::mem::take(&mut self.pending_reads)
            .into_iter()
            .map(|p| (p.from, p.request));
        let queued = std::mem::take(&mut self.queued_reads)
            .into_iter()
            .map(|q| (q.from, q.request));
        let all: Vec<_> = pending.chain(queued).collect();
        for (from, request) in all {
            if from == self.id {
                self.rejected_reads.push(request);
            } else {
                self.reject_read(from, request);
            }
        }
        self.round_ticks.clear();
        self.lease_start = None;
    }

    /// The transport could not deliver a snapshot (`failed`) or delivered it.
    pub(crate) fn report_snapshot(&mut self, to: NodeId, failed: bool) {
        if let Some(pr) = self.progress.get_mut(&to)
            && matches!(pr.state, ProgressState::Snapshot { .. })
        {
            if failed {
                pr.state = ProgressState::Probe;
                pr.next = pr.matched + 1;
                pr.probe_sent = false;
            } else {
                // Wait for the follower's answer before sending more.
                pr.become_probe();
                pr.probe_sent = true;
            }
        }
    }

    /// The transport could not reach `to`: stop pipelining blindly.
    pub(crate) fn report_unreachable(&mut self, to: NodeId) {
        if let Some(pr) = self.progress.get_mut(&to)
            && pr.state == ProgressState::Replicate
        {
            pr.become_probe();
        }
    }

    /// Starts an election at once, with pre-vote if it is enabled.
    pub(crate) fn step_campaign(&mut self) {
        self.campaign(self.cfg.pre_vote, false);
    }
}
