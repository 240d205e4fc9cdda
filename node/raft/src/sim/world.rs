//! The simulated world: nodes, network, clients, and the step loop that drives them.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::check::Checker;
use super::kv::Put;
use super::net::{Net, Weather};
use super::node::{Disk, PendingWrite, SimNode, Waiting};
use crate::config::Config;
#[cfg(feature = "mutations")]
use crate::config::Mutation;
use crate::error::Error;
use crate::linearizability::{HistoryRecorder, KvInput, KvOutput, OpId, check_kv};
use crate::raw_node::{InitialState, Ready};
use crate::rng::Rng;
use crate::types::*;

/// How long a run is and what it records.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// Steps of the fault phase.
    pub steps: u64,
    /// Steps the liveness phase may take, once every fault is healed.
    pub liveness_steps: u64,
    /// Keep a readable trace of every event.
    pub trace: bool,
    #[cfg(feature = "mutations")]
    pub mutation: Option<Mutation>,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            steps: 3000,
            liveness_steps: 3000,
            trace: false,
            #[cfg(feature = "mutations")]
            mutation: None,
        }
    }
}

/// The outcome of one seed.
#[derive(Clone, Debug, Default)]
pub struct SimReport {
    pub seed: u64,
    pub steps: u64,
    /// Client operations completed or abandoned.
    pub ops: u64,
    pub violations: Vec<String>,
    pub trace: Vec<String>,
}

const KEYS: [&str; 3] = ["a", "b", "c"];
const OP_TIMEOUT: u64 = 400;
const MAX_MEMBERS: usize = 7;

/// A client with at most one operation outstanding: its history id, the token the nodes
/// know it by, and the step it started.
#[derive(Debug, Default)]
struct Client {
    target: NodeId,
    op: Option<(OpId, u64, u64)>,
    next: u64,
}

struct World {
    seed: u64,
    opts: SimOptions,
    rng: Rng,
    now: u64,
    nodes: BTreeMap<NodeId, SimNode>,
    net: Net,
    clients: Vec<Client>,
    history: HistoryRecorder<KvInput, KvOutput>,
    ops: u64,
    checker: Checker,
    next_id: NodeId,
    /// Paused (SIGSTOPped) nodes and the ticks they missed: they neither tick nor handle
    /// messages, which wait for them, and on resume they first catch up on time, as a
    /// node whose timer fires its missed ticks would.
    paused: BTreeMap<NodeId, u64>,
    trace: Vec<String>,
}

/// Runs one seed. A panic inside the core counts as a violation.
pub fn run(seed: u64, opts: &SimOptions) -> SimReport {
    let mut world = World::new(seed, opts.clone());
    let outcome = catch_unwind(AssertUnwindSafe(|| world.run()));
    if let Err(p) = outcome {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        world
            .checker
            .violations
            .push(format!("step {}: panic: {msg}", world.now));
    }
    SimReport {
        seed,
        steps: world.now,
        ops: world.ops,
        violations: std::mem::take(&mut world.checker.violations),
        trace: std::mem::take(&mut world.trace),
    }
}

impl World {
    fn new(seed: u64, opts: SimOptions) -> Self {
        let mut rng = Rng::new(seed);
        let voters: Vec<NodeId> = (1..=if rng.chance(500) { 3 } else { 5 }).collect();
        let init = InitialState::bootstrap(&voters);
        let clients = (0..rng.range(2, 6)).map(|_| Client::default()).collect();
        let mut w = World {
            seed,
            opts,
            rng,
            now: 0,
            nodes: BTreeMap::new(),
            net: Net::new(),
            clients,
            history: HistoryRecorder::new(),
            ops: 0,
            checker: Checker::default(),
            next_id: voters.len() as u64 + 1,
            paused: BTreeMap::new(),
            trace: Vec::new(),
        };
        for &id in &voters {
            let disk = Disk {
                hard_state: init.hard_state,
                snapshot: Snapshot::default(),
                entries: init.entries.clone(),
            };
            w.add_node(id, disk);
        }
        w
    }

    fn log(&mut self, what: impl FnOnce() -> String) {
        if self.opts.trace {
            self.trace.push(format!("[{:>5}] {}", self.now, what()));
        }
    }

    fn config(&self, id: NodeId) -> Config {
        let mut c = Config::new(id);
        c.seed = self.seed.wrapping_mul(0x100_0000_01B3) ^ id;
        // Small batches and windows exercise flow control and partial catch-up.
        c.max_entries_per_msg = 1 + self.seed % 4;
        c.max_inflight_msgs = 1 + (self.seed / 4 % 4) as usize;
        #[cfg(feature = "mutations")]
        {
            c.mutation = self.opts.mutation;
        }
        c
    }

    fn add_node(&mut self, id: NodeId, disk: Disk) {
        let mut n = SimNode::new(id, disk);
        n.start(self.config(id));
        self.nodes.insert(id, n);
    }

    /// Running and not paused.
    fn up_ids(&self) -> Vec<NodeId> {
        self.nodes
            .values()
            .filter(|n| n.is_up() && !self.paused.contains_key(&n.id))
            .map(|n| n.id)
            .collect()
    }

    fn resume(&mut self, id: NodeId) {
        if let Some(missed) = self.paused.remove(&id) {
            self.log(|| format!("resume {id} after {missed} ticks"));
            for _ in 0..missed {
                self.with_raw(id, |r| r.tick());
            }
        }
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        (!items.is_empty()).then(|| items[self.rng.range(0, items.len() as u64) as usize])
    }

    fn leader(&self) -> Option<NodeId> {
        self.nodes
            .values()
            .filter(|n| !self.paused.contains_key(&n.id))
            .filter_map(|n| n.raw.as_ref())
            .filter(|r| r.status().role == Role::Leader)
            .max_by_key(|r| r.status().term)
            .map(|r| r.id())
    }

    fn run(&mut self) {
        for _ in 0..self.opts.steps {
            self.step(true);
            if !self.checker.violations.is_empty() {
                return;
            }
        }
        self.finish_clients();
        let history = std::mem::take(&mut self.history).finish();
        let verdict = check_kv(&history, 20_000_000);
        if !verdict.is_ok() {
            self.checker
                .violations
                .push(format!("linearizability: {verdict}"));
            return;
        }
        self.liveness();
    }

    fn step(&mut self, faults: bool) {
        self.now += 1;
        if self.rng.chance(350) {
            for id in self.up_ids() {
                self.with_raw(id, |r| r.tick());
            }
            for missed in self.paused.values_mut() {
                *missed += 1;
            }
        }
        for m in self.net.due(&mut self.rng, self.now) {
            if self.paused.contains_key(&m.to) {
                self.net.hold(self.now, m);
            } else {
                self.deliver(m);
            }
        }
        for id in self.up_ids() {
            self.process_ready(id);
            if self.rng.chance(500) {
                self.fsync(id);
                self.process_ready(id);
            }
        }
        if faults {
            self.clients_act();
            if self.rng.chance(40) {
                self.random_event();
            }
        }
        self.checker.check(self.now, &self.nodes);
    }

    fn with_raw<T>(&mut self, id: NodeId, f: impl FnOnce(&mut crate::RawNode) -> T) -> Option<T> {
        self.nodes.get_mut(&id).and_then(|n| n.raw.as_mut()).map(f)
    }

    fn deliver(&mut self, m: Message) {
        let to = m.to;
        if self.opts.trace {
            let s = format!("deliver {}->{} t{} {:?}", m.from, m.to, m.term, m.body);
            self.log(|| s);
        }
        if let Some(Err(e)) = self.with_raw(to, |r| r.step(m)) {
            self.checker
                .violations
                .push(format!("step {}: step() refused a message: {e}", self.now));
        }
    }

    fn process_ready(&mut self, id: NodeId) {
        for _ in 0..16 {
            let Some(rd) = self
                .with_raw(id, |r| r.has_ready().then(|| r.ready()))
                .flatten()
            else {
                return;
            };
            self.handle_ready(id, rd);
        }
    }

    fn handle_ready(&mut self, id: NodeId, rd: Ready) {
        if let Some(ss) = rd.soft_state {
            self.log(|| format!("node {id} is {:?} (leader {})", ss.role, ss.leader));
        }
        let now = self.now;
        let n = self.nodes.get_mut(&id).expect("node exists");
        let raw = n.raw.as_ref().expect("node is up");
        let mut prev_term = rd.entries.first().and_then(|e| raw.log_term(e.index - 1));
        for e in &rd.entries {
            self.checker.observe_entry(now, id, e, prev_term);
            prev_term = Some(e.term);
        }
        for m in rd.messages {
            self.net.send(&mut self.rng, now, m);
        }
        let n = self.nodes.get_mut(&id).expect("node exists");
        if let Some(s) = &rd.snapshot {
            n.kv = super::kv::Kv::restore(&s.data);
            n.kv.applied = s.meta.index;
        }
        n.pending.push_back(PendingWrite {
            hard_state: rd.hard_state,
            snapshot: rd.snapshot,
            entries: rd.entries,
            messages: rd.persisted_messages,
        });
        let mut done = Vec::new();
        for e in &rd.committed_entries {
            self.checker.observe_apply(now, id, e);
            let n = self.nodes.get_mut(&id).expect("node exists");
            match &e.payload {
                EntryPayload::Normal(data) => n.kv.apply(e.index, data),
                _ => n.kv.applied = e.index,
            }
            if let Some((term, w)) = n.proposals.remove(&e.index) {
                done.push((w, (term == e.term).then_some(KvOutput::Ok)));
            }
        }
        let n = self.nodes.get_mut(&id).expect("node exists");
        if let Some(e) = rd.committed_entries.last() {
            n.raw.as_mut().expect("up").on_applied(e.index);
        }
        // Proposals overtaken by a snapshot or a different entry have an unknown fate.
        let applied = n.kv.applied;
        let stale: Vec<u64> = n.proposals.range(..=applied).map(|(&i, _)| i).collect();
        for i in stale {
            let (_, w) = n.proposals.remove(&i).expect("listed");
            done.push((w, None));
        }
        for rs in rd.read_states {
            if let Some(w) = n.reads.remove(&rs.request) {
                n.confirmed.push((rs.index, w));
            }
        }
        for req in rd.rejected_reads {
            if let Some(w) = n.reads.remove(&req) {
                done.push((w, None));
            }
        }
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut n.confirmed)
            .into_iter()
            .partition(|(i, _)| *i <= applied);
        n.confirmed = waiting;
        for (_, w) in ready {
            let v = n.kv.map.get(&w.key).map(|v| v.clone().into_bytes());
            done.push((w, Some(KvOutput::Value(v))));
        }
        for (w, out) in done {
            self.complete(w, out);
        }
    }

    fn complete(&mut self, w: Waiting, out: Option<KvOutput>) {
        let c = &mut self.clients[w.client];
        if c.op.as_ref().is_none_or(|(_, token, _)| *token != w.token) {
            return; // already timed out
        }
        let (op, _, _) = c.op.take().expect("checked above");
        self.ops += 1;
        match out {
            Some(o) => self.history.complete(op, o),
            None => self.history.fail_unknown(op),
        }
    }

    fn fsync(&mut self, id: NodeId) {
        let n = self.nodes.get_mut(&id).expect("node exists");
        let writes: Vec<PendingWrite> = n.pending.drain(..).collect();
        for w in writes {
            let n = self.nodes.get_mut(&id).expect("node exists");
            n.disk.write(&w);
            let raw = n.raw.as_mut().expect("up");
            if let Some(s) = &w.snapshot {
                raw.on_persisted(s.meta.index, s.meta.term);
            }
            if let Some(e) = w.entries.last() {
                raw.on_persisted(e.index, e.term);
            }
            for m in w.messages {
                self.net.send(&mut self.rng, self.now, m);
            }
        }
    }

    // ------------------------------------------------------------------ clients

    fn clients_act(&mut self) {
        for c in 0..self.clients.len() {
            match &self.clients[c].op {
                Some((_, _, started)) if self.now - started > OP_TIMEOUT => {
                    let (op, _, _) = self.clients[c].op.take().expect("matched");
                    self.ops += 1;
                    self.history.fail_unknown(op);
                }
                None if self.rng.chance(150) => self.start_op(c),
                _ => {}
            }
        }
    }

    fn start_op(&mut self, c: usize) {
        let up = self.up_ids();
        let mut target = self.clients[c].target;
        // A paused process handles no request until it resumes (and catches up on time).
        if !up.contains(&target) {
            let Some(t) = self.pick(&up) else { return };
            target = t;
        }
        let key = KEYS[self.rng.range(0, KEYS.len() as u64) as usize].to_string();
        let seq = self.clients[c].next;
        self.clients[c].next += 1;
        let result = if self.rng.chance(600) {
            let value = format!("c{c}-{seq}");
            let put = Put {
                client: c as u64,
                op: seq,
                key: key.clone(),
                value: value.clone(),
            };
            self.with_raw(target, |r| r.propose(put.encode()))
                .expect("target is up")
                .map(|(index, term)| {
                    let op = self
                        .history
                        .invoke(c as u64, KvInput::put(key.clone(), value));
                    let n = self.nodes.get_mut(&target).expect("exists");
                    // An older proposal at this index was truncated away: its fate is unknown.
                    let w = Waiting {
                        client: c,
                        token: seq,
                        key,
                    };
                    let replaced = n.proposals.insert(index, (term, w));
                    (op, replaced.map(|(_, w)| w))
                })
        } else {
            let mode = if self.rng.chance(500) {
                ReadMode::Lease
            } else {
                ReadMode::Safe
            };
            let request = format!("r{c}-{seq}").into_bytes();
            self.with_raw(target, |r| r.read_index(request.clone(), mode))
                .expect("target is up")
                .map(|()| {
                    let op = self.history.invoke(c as u64, KvInput::get(key.clone()));
                    let n = self.nodes.get_mut(&target).expect("exists");
                    n.reads.insert(
                        request,
                        Waiting {
                            client: c,
                            token: seq,
                            key,
                        },
                    );
                    (op, None)
                })
        };
        match result {
            Ok((op, replaced)) => {
                if let Some(w) = replaced {
                    self.complete(w, None);
                }
                self.clients[c].target = target;
                self.clients[c].op = Some((op, seq, self.now));
            }
            Err(Error::NotLeader { leader: Some(l) }) => self.clients[c].target = l,
            Err(_) => self.clients[c].target = self.pick(&up).unwrap_or(target),
        }
    }

    fn finish_clients(&mut self) {
        for c in &mut self.clients {
            if let Some((op, _, _)) = c.op.take() {
                self.history.fail_unknown(op);
                self.ops += 1;
            }
        }
    }

    // ------------------------------------------------------------------ faults

    fn random_event(&mut self) {
        let up = self.up_ids();
        let down: Vec<NodeId> = self
            .nodes
            .values()
            .filter(|n| !n.is_up())
            .map(|n| n.id)
            .collect();
        match self.rng.range(0, 100) {
            0..10 if up.len() > 1 => {
                let id = self.pick(&up).expect("non-empty");
                self.log(|| format!("crash {id}"));
                let lost = self.nodes.get_mut(&id).expect("exists").crash();
                for w in lost {
                    self.complete(w, None);
                }
            }
            10..25 => {
                if let Some(id) = self.pick(&down) {
                    self.log(|| format!("restart {id}"));
                    let cfg = self.config(id);
                    self.nodes.get_mut(&id).expect("exists").start(cfg);
                }
            }
            25..35 => {
                let mut ids: Vec<NodeId> = self.nodes.keys().copied().collect();
                self.rng.shuffle(&mut ids);
                let cut = self.rng.range(1, ids.len().max(2) as u64) as usize;
                let symmetric = self.rng.chance(700);
                let (a, b) = ids.split_at(cut.min(ids.len()));
                self.log(|| format!("partition {a:?} | {b:?} symmetric={symmetric}"));
                self.net.cut(a, b, symmetric);
            }
            35..48 => {
                self.log(|| "heal".to_string());
                self.net.heal();
            }
            48..56 => {
                let w = Weather {
                    drop: self.rng.range(0, 200),
                    duplicate: self.rng.range(0, 100),
                    max_delay: self.rng.range(1, 9),
                };
                self.log(|| format!("weather {w:?}"));
                self.net.weather = w;
            }
            56..72 => self.change_membership(),
            72..80 => {
                if let Some(l) = self.leader() {
                    let voters: Vec<NodeId> = self.nodes[&l]
                        .raw
                        .as_ref()
                        .expect("up")
                        .membership()
                        .voters
                        .iter()
                        .copied()
                        .collect();
                    if let Some(to) = self.pick(&voters) {
                        let r = self.with_raw(l, |r| r.transfer_leader(to));
                        self.log(|| format!("transfer {l} -> {to}: {r:?}"));
                    }
                }
            }
            80..90 => {
                if let Some(id) = self.pick(&up) {
                    self.compact(id);
                }
            }
            90..95 if up.len() > 1 => {
                // Pausing the leader is the interesting case: it resumes believing it
                // still leads.
                let id = match self.leader() {
                    Some(l) if self.rng.chance(700) => l,
                    _ => self.pick(&up).expect("non-empty"),
                };
                self.log(|| format!("pause {id}"));
                self.paused.insert(id, 0);
            }
            95..100 => {
                let ids: Vec<NodeId> = self.paused.keys().copied().collect();
                if let Some(id) = self.pick(&ids) {
                    self.resume(id);
                }
            }
            _ => {}
        }
    }

    fn compact(&mut self, id: NodeId) {
        let n = self.nodes.get_mut(&id).expect("exists");
        let raw = n.raw.as_mut().expect("up");
        let index = n.kv.applied;
        if index < raw.snapshot_meta().index + 8 {
            return;
        }
        let data = n.kv.snapshot();
        if raw.compact(index, data.clone()).is_ok() {
            let meta = raw.snapshot_meta().clone();
            n.disk.compact(Snapshot { meta, data });
            self.log(|| format!("compact {id} at {index}"));
        }
    }

    fn change_membership(&mut self) {
        let Some(l) = self.leader() else { return };
        let m = self.nodes[&l]
            .raw
            .as_ref()
            .expect("up")
            .membership()
            .clone();
        let learners: Vec<NodeId> = m.learners.iter().copied().collect();
        let voters: Vec<NodeId> = m.voters.iter().copied().collect();
        let single = |kind, node| ConfChangeSingle { kind, node };
        let changes = match self.rng.range(0, 5) {
            0 if m.all().len() < MAX_MEMBERS => {
                let id = self.next_id;
                self.next_id += 1;
                self.add_node(id, Disk::default());
                vec![single(ConfChangeKind::AddLearner, id)]
            }
            1 => match self.pick(&learners) {
                Some(id) => vec![single(ConfChangeKind::AddVoter, id)],
                None => return,
            },
            2 if voters.len() > 3 => vec![single(
                ConfChangeKind::Remove,
                self.pick(&voters).expect("non-empty"),
            )],
            3 => match (self.pick(&learners), self.pick(&voters)) {
                (Some(a), Some(r)) => vec![
                    single(ConfChangeKind::AddVoter, a),
                    single(ConfChangeKind::Remove, r),
                ],
                _ => return,
            },
            4 => match self.pick(&learners) {
                Some(id) => vec![single(ConfChangeKind::Remove, id)],
                None => return,
            },
            _ => return,
        };
        let cc = ConfChange {
            changes,
            leave_joint: false,
        };
        let r = self.with_raw(l, |r| r.propose_conf_change(cc.clone()));
        self.log(|| format!("conf change on {l}: {cc:?} -> {r:?}"));
    }

    // ------------------------------------------------------------------ liveness

    /// Heals every fault and requires a new write to commit and reach every voter
    /// within `liveness_steps`.
    fn liveness(&mut self) {
        self.log(|| "liveness phase: heal everything".to_string());
        self.net.heal();
        self.net.weather = Weather::CALM;
        let paused: Vec<NodeId> = self.paused.keys().copied().collect();
        for id in paused {
            self.resume(id);
        }
        let down: Vec<NodeId> = self
            .nodes
            .values()
            .filter(|n| !n.is_up())
            .map(|n| n.id)
            .collect();
        for id in down {
            let cfg = self.config(id);
            self.nodes.get_mut(&id).expect("exists").start(cfg);
        }
        let mut probe: Option<(NodeId, u64, u64)> = None;
        for _ in 0..self.opts.liveness_steps {
            self.step(false);
            if !self.checker.violations.is_empty() {
                return;
            }
            let Some(l) = self.leader() else { continue };
            if probe.is_none_or(|(pl, _, _)| pl != l) {
                probe = self
                    .with_raw(l, |r| r.propose(b"probe".to_vec()).ok())
                    .flatten()
                    .map(|(i, t)| (l, i, t));
                continue;
            }
            let (_, index, term) = probe.expect("set above");
            let raw = self.nodes[&l].raw.as_ref().expect("up");
            if raw.log_term(index).is_some_and(|t| t != term) {
                probe = None;
                continue;
            }
            let voters = raw.membership().voters.clone();
            let everywhere = voters
                .iter()
                .all(|v| self.nodes.get(v).is_some_and(|n| n.kv.applied >= index));
            if everywhere {
                return;
            }
        }
        let leader = self.leader();
        self.checker.violations.push(format!(
            "liveness: no write reached every voter within {} steps after healing (leader {leader:?}, probe {probe:?})",
            self.opts.liveness_steps
        ));
    }
}
