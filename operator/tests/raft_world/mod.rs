//! A simulated Kubernetes namespace running REAL `kuberaft-raft` cores, driven by the
//! operator's pure planner through the reconciler's own pure stages.
//!
//! ```text
//!  spec ─► convert::desired ─┐
//!  StatefulSet, Pods, PVCs ──┼─► convert::observed ─► plan ─► apply ONE step ─► status::compute
//!  Admin.Status of each core ┘   (real conversions)          (admin.rs, kube.rs)  (real, pure)
//! ```
//!
//! Each pod ordinal hosts a node whose identity and durable Raft state live on its PVC
//! (`node.rs`); the StatefulSet controller and kubelet (`kube.rs`) start, stop and recreate
//! pods; a message bus (`net.rs`) carries Raft messages with delay, reordering and loss; a
//! client proposes writes to the leader all the time. The nemesis (`faults.rs`) kills
//! pods, loses volumes, isolates nodes, edits the spec and crashes the operator; the
//! checks (`check.rs`, `operator.rs`) run after every round and every operator step. One
//! seed drives everything, so every run replays.

mod admin;
mod check;
mod converge;
mod faults;
mod kube;
mod net;
mod node;
mod observe;
mod operator;
mod sm;

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::StatefulSet;
use kuberaft_operator::build::ClusterIdentity;
use kuberaft_operator::crd::{RaftClusterSpec, RaftClusterStatus};
use kuberaft_operator::reconcile::admin::Lifecycle;
use kuberaft_raft::rng::Rng;
use kuberaft_raft::{Message, NodeId, Role};

pub use check::Checker;
pub use faults::Fault;
pub use operator::Crash;

use kube::{SimPod, SimPvc};
use net::Net;
use node::{Effects, Waiter};
use sm::Command;

pub const CLUSTER: &str = "demo";
pub const IMAGES: [&str; 2] = ["kuberaft/raft-node:1.0", "kuberaft/raft-node:1.1"];
/// Message rounds per tick: a message takes one to three rounds.
const ROUNDS_PER_TICK: u64 = 3;
/// Per-mille chance per tick that the client proposes a write.
const WRITE_RATE: u64 = 600;
/// Per-mille chance per tick of a burst of writes.
const BURST_RATE: u64 = 15;
/// `Config::new`'s election timeout, in ticks.
const ELECTION_TICKS: u64 = 10;

pub struct World {
    pub seed: u64,
    pub rng: Rng,
    /// Ticks since the start.
    pub now: u64,
    round: u64,
    pub id: ClusterIdentity,
    pub spec: RaftClusterSpec,
    generation: i64,
    /// The RaftCluster's status: the operator's only memory.
    pub status: RaftClusterStatus,
    pub sts: Option<StatefulSet>,
    pub pods: BTreeMap<u32, SimPod>,
    pub pvcs: BTreeMap<u32, SimPvc>,
    pub net: Net,
    /// Pods the operator cannot reach (Admin calls time out) until a tick; Raft traffic
    /// between members is not affected.
    pub operator_cut: BTreeMap<u32, u64>,
    pub checker: Checker,
    /// Node ids ever drawn: never reused.
    used_ids: BTreeSet<NodeId>,
    next_uid: u64,
    next_write: u64,
    next_token: u64,
    admin_done: BTreeMap<u64, bool>,
    /// Whether the client writes (stopped while the final state is compared).
    pub writing: bool,
    pub trace: Vec<String>,
    /// Every line to stderr as it happens (`RAFT_SIM_TRACE=1`).
    pub echo: bool,
}

impl World {
    pub fn new(seed: u64, replicas: u32) -> Self {
        let mut spec = RaftClusterSpec::with_image(IMAGES[0]);
        spec.replicas = i32::try_from(replicas).expect("small");
        spec.snapshot.entry_threshold = 40;
        World {
            seed,
            rng: Rng::new(seed),
            now: 0,
            round: 0,
            id: ClusterIdentity {
                name: CLUSTER.to_owned(),
                namespace: "sim".to_owned(),
                uid: format!("cluster-{seed}"),
            },
            spec,
            generation: 1,
            status: RaftClusterStatus::default(),
            sts: None,
            pods: BTreeMap::new(),
            pvcs: BTreeMap::new(),
            net: Net::default(),
            operator_cut: BTreeMap::new(),
            checker: Checker::default(),
            used_ids: BTreeSet::new(),
            next_uid: 0,
            next_write: 0,
            next_token: 0,
            admin_done: BTreeMap::new(),
            writing: true,
            trace: Vec::new(),
            echo: false,
        }
    }

    pub fn log(&mut self, line: impl Into<String>) {
        let line = format!("[{:>5}] {}", self.now, line.into());
        if self.echo {
            eprintln!("{line}");
        }
        self.trace.push(line);
    }

    /// The spec changed: a new generation, as the apiserver would count it.
    pub fn edit_spec(&mut self, edit: impl FnOnce(&mut RaftClusterSpec)) {
        edit(&mut self.spec);
        self.generation += 1;
    }

    fn new_node_id(&mut self) -> NodeId {
        loop {
            let id = self.rng.next_u64() >> 1;
            if id != 0 && self.used_ids.insert(id) {
                return id;
            }
        }
    }

    fn new_uid(&mut self) -> u64 {
        self.next_uid += 1;
        self.next_uid
    }

    // ---- time ---------------------------------------------------------------------------

    /// One tick: the kubelet and the StatefulSet controller act, every core ticks, the
    /// client writes, then messages flow for a few rounds.
    pub fn tick(&mut self) {
        self.now += 1;
        self.net.heal_expired(self.now);
        let now = self.now;
        self.operator_cut.retain(|_, until| *until > now);
        self.kubelet();
        self.sts_controller();
        for p in self.pods.values_mut() {
            if let Some(core) = p.process.as_mut().and_then(|p| p.core.as_mut()) {
                core.tick();
            }
        }
        self.announce();
        self.ping_if_excluded();
        if self.writing && self.rng.chance(WRITE_RATE) {
            self.client_write();
        }
        if self.writing && self.rng.chance(BURST_RATE) {
            // A burst leaves slow members behind by more than the catch-up lag.
            for _ in 0..self.rng.range(50, 200) {
                self.client_write();
            }
        }
        for _ in 0..ROUNDS_PER_TICK {
            self.round();
        }
    }

    pub fn ticks(&mut self, n: u64) {
        for _ in 0..n {
            self.tick();
        }
    }

    fn round(&mut self) {
        self.round += 1;
        for m in self.net.due(&mut self.rng, self.round) {
            self.deliver(m);
        }
        let ordinals: Vec<u32> = self.pods.keys().copied().collect();
        for k in ordinals {
            self.work(k, false);
            if self.rng.chance(700) {
                self.work(k, true);
            }
        }
        self.checker.check_leaders(self.now, &self.pods);
    }

    /// Handles the node's Ready and, with `fsync`, makes its writes durable.
    fn work(&mut self, k: u32, fsync: bool) {
        let Some(pod) = self.pods.get_mut(&k) else {
            return;
        };
        let Some(p) = pod.process.as_mut() else {
            return;
        };
        let vol = &mut self
            .pvcs
            .get_mut(&k)
            .expect("a running pod has its claim")
            .volume;
        let mut fx = Effects::default();
        p.handle_ready(vol, &mut fx);
        if fsync {
            p.fsync(vol, &mut fx);
            p.handle_ready(vol, &mut fx);
        }
        self.effects(fx);
    }

    fn effects(&mut self, fx: Effects) {
        for m in fx.messages {
            self.net.send(&mut self.rng, self.round, m);
        }
        for (index, term, hash) in fx.applied {
            self.checker.applied(self.now, index, term, hash);
        }
        for (index, key, value) in fx.committed {
            self.checker.committed(index, key, value);
        }
        for (token, ok) in fx.admin {
            self.admin_done.insert(token, ok);
        }
    }

    /// The ordinal whose running process is node `id`.
    pub fn ordinal_of_node(&self, id: NodeId) -> Option<u32> {
        self.pods
            .iter()
            .find(|(_, p)| p.process.as_ref().is_some_and(|p| p.node_id == id))
            .map(|(&k, _)| k)
    }

    /// The peer service's admission: uninitialized and removed nodes take no Raft traffic,
    /// and a message from a removed member is refused with a reply that makes the sender
    /// learn it was removed.
    fn deliver(&mut self, m: Message) {
        let Some(k) = self.ordinal_of_node(m.to) else {
            return;
        };
        if !self.pvcs[&k].volume.runs_core() {
            return;
        }
        let p = self.pods.get_mut(&k).and_then(|p| p.process.as_mut());
        let Some(p) = p else { return };
        if p.sm.removed.contains(&m.from) {
            if let Some(s) = self.ordinal_of_node(m.from) {
                let vol = &mut self.pvcs.get_mut(&s).expect("claim").volume;
                if vol.runs_core() {
                    self.pods
                        .get_mut(&s)
                        .and_then(|p| p.process.as_mut())
                        .expect("running")
                        .become_removed(vol);
                    self.log(format!(
                        "node {:x} learns from a peer it was removed",
                        m.from
                    ));
                }
            }
            return;
        }
        let Some(core) = p.core.as_mut() else { return };
        if let Err(e) = core.step(m) {
            self.checker
                .fail(self.now, format!("step() refused a message: {e}"));
        }
    }

    // ---- the client ---------------------------------------------------------------------

    /// The running leader of the highest term, if any.
    pub fn leader(&self) -> Option<u32> {
        self.pods
            .iter()
            .filter_map(|(&k, p)| {
                let st = p.process.as_ref()?.core.as_ref()?.status();
                (st.role == Role::Leader).then_some((st.term, k))
            })
            .max()
            .map(|(_, k)| k)
    }

    fn client_write(&mut self) {
        let Some(k) = self.leader() else { return };
        self.next_write += 1;
        let (key, value) = (
            format!("k{}", self.next_write),
            format!("v{}.{}", self.next_write, self.now),
        );
        let data = Command::Put {
            key: key.clone(),
            value: value.clone(),
        }
        .encode();
        let p = self.process_mut(k).expect("the leader runs");
        let core = p.core.as_mut().expect("the leader runs a core");
        if let Ok((index, term)) = core.propose(data) {
            p.waiters
                .insert(index, (term, Waiter::Client { key, value }));
        }
    }

    /// A leader makes sure the replicated address book has its name (the real driver's
    /// `maybe_announce_self`).
    fn announce(&mut self) {
        for pod in self.pods.values_mut() {
            let Some(p) = pod.process.as_mut() else {
                continue;
            };
            let Some(core) = p.core.as_mut() else {
                continue;
            };
            let st = core.status();
            if st.role != Role::Leader || p.announced_term == st.term {
                continue;
            }
            p.announced_term = st.term;
            if p.sm.book.get(&p.node_id) != Some(&p.name) {
                let cmd = Command::Member {
                    id: p.node_id,
                    name: p.name.clone(),
                };
                let _ = core.propose(cmd.encode());
            }
        }
    }

    pub fn operator_cut_off(&self, k: u32) -> bool {
        self.operator_cut.contains_key(&k)
    }

    /// The real driver's `ping_if_excluded`: a member whose newest configuration leaves
    /// it out asks the members in its address book, once per election timeout, and becomes
    /// Removed when one refuses it as a removed member.
    fn ping_if_excluded(&mut self) {
        let mut asks = Vec::new();
        for (&k, pod) in &mut self.pods {
            let Some(p) = pod.process.as_mut() else {
                continue;
            };
            let excluded = p
                .core
                .as_ref()
                .is_some_and(|c| !c.membership().contains(p.node_id));
            if !excluded || self.pvcs[&k].volume.lifecycle != Lifecycle::Member {
                p.excluded_ticks = 0;
                continue;
            }
            p.excluded_ticks += 1;
            if p.excluded_ticks % ELECTION_TICKS == 0 {
                let peers: Vec<NodeId> =
                    p.sm.book
                        .keys()
                        .copied()
                        .filter(|&id| id != p.node_id)
                        .collect();
                asks.push((k, p.node_id, peers));
            }
        }
        for (k, me, peers) in asks {
            let refused = !self.net.isolated.contains_key(&me)
                && peers.iter().any(|&peer| {
                    self.ordinal_of_node(peer).is_some_and(|j| {
                        !self.net.isolated.contains_key(&peer)
                            && self.pvcs[&j].volume.runs_core()
                            && self.process(j).is_some_and(|q| q.sm.removed.contains(&me))
                    })
                });
            if refused {
                let vol = &mut self.pvcs.get_mut(&k).expect("claim").volume;
                self.pods
                    .get_mut(&k)
                    .and_then(|p| p.process.as_mut())
                    .expect("asked")
                    .become_removed(vol);
                self.log(format!(
                    "node {me:x} asks its peers and learns it was removed"
                ));
            }
        }
    }

    pub fn process_mut(&mut self, k: u32) -> Option<&mut node::Process> {
        self.pods.get_mut(&k)?.process.as_mut()
    }

    pub fn process(&self, k: u32) -> Option<&node::Process> {
        self.pods.get(&k)?.process.as_ref()
    }

    /// Trace lines, the last `n`.
    pub fn tail(&self, n: usize) -> String {
        let start = self.trace.len().saturating_sub(n);
        self.trace[start..].join("\n")
    }
}
