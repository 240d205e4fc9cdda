//! An abstract cluster for the planner simulation: a StatefulSet controller, pods with
//! volumes that carry a node identity, and a Raft configuration that behaves like the real
//! one where the planner can tell (learners catch up, joint configurations are left, a
//! healthy voter is elected). No Raft log: the lead drives the planner against real cores
//! elsewhere.
//!
//! `apply` refuses, by panicking, every command a real leader would reject or that would
//! be unsafe: a membership change without quorum or while another is in flight, removing
//! the leader, a step that leaves fewer healthy voters than a majority, deleting a
//! member's volume, bootstrapping twice.

mod apply;

use std::collections::{BTreeMap, BTreeSet};

use kuberaft_operator::planner::{
    BlockedCode, Desired, MemberInfo, NodeId, NodeReport, NodeState, Observed, ObservedPod,
    ObservedStatefulSet, Operation, Plan, PodTemplate, RaftView, Step, plan,
};

/// A data dir: the node identity lives on the volume, not in the pod.
#[derive(Clone, Copy, Debug)]
pub struct Volume {
    pub id: NodeId,
    pub state: NodeState,
}

#[derive(Clone, Debug)]
pub struct Pvc {
    pub volume: Volume,
    /// Deleted while its pod still runs: gone with the pod.
    pub deleting: bool,
}

#[derive(Clone, Debug)]
pub struct SimPod {
    /// Ticks until it runs and answers.
    pub starting: u8,
    pub template: PodTemplate,
}

/// What the reconciler keeps in status.
#[derive(Clone, Debug, Default)]
pub struct Status {
    pub operation: Option<Operation>,
    pub last_snapshot: Option<String>,
    pub cluster_id: Option<String>,
    pub blocked: Option<BlockedCode>,
}

#[derive(Clone, Debug)]
pub struct World {
    pub desired: Desired,
    pub sts: Option<ObservedStatefulSet>,
    pub pods: BTreeMap<u32, SimPod>,
    pub pvcs: BTreeMap<u32, Pvc>,
    pub voters: BTreeSet<NodeId>,
    pub outgoing: BTreeSet<NodeId>,
    pub learners: BTreeSet<NodeId>,
    pub lag: BTreeMap<NodeId, u64>,
    /// The ordinal each member was added for (its peer address).
    pub ordinals: BTreeMap<NodeId, u32>,
    pub leader: Option<NodeId>,
    pub status: Status,
    next_id: NodeId,
    /// Steps applied so far, for failure messages.
    pub trace: Vec<String>,
}

fn majority_of(healthy: usize, n: usize) -> bool {
    n > 0 && healthy > n / 2
}

fn ordinal_of(pod: &str) -> u32 {
    pod.rsplit('-')
        .next()
        .and_then(|k| k.parse().ok())
        .expect("pod name ends in its ordinal")
}

impl World {
    pub fn new(desired: Desired) -> Self {
        World {
            desired,
            sts: None,
            pods: BTreeMap::new(),
            pvcs: BTreeMap::new(),
            voters: BTreeSet::new(),
            outgoing: BTreeSet::new(),
            learners: BTreeSet::new(),
            lag: BTreeMap::new(),
            ordinals: BTreeMap::new(),
            leader: None,
            status: Status::default(),
            next_id: 0x100,
            trace: Vec::new(),
        }
    }

    // ---- what is true ----------------------------------------------------------------

    fn running(&self, k: u32) -> Option<Volume> {
        let pod = self.pods.get(&k)?;
        (pod.starting == 0).then(|| self.pvcs[&k].volume)
    }

    pub fn healthy(&self, id: NodeId) -> bool {
        self.pods.keys().any(|&k| {
            self.running(k)
                .is_some_and(|v| v.id == id && v.state != NodeState::Removed)
        })
    }

    fn healthy_count(&self, set: &BTreeSet<NodeId>) -> usize {
        set.iter().filter(|&&id| self.healthy(id)).count()
    }

    pub fn quorum(&self) -> bool {
        majority_of(self.healthy_count(&self.voters), self.voters.len())
            && (self.outgoing.is_empty()
                || majority_of(self.healthy_count(&self.outgoing), self.outgoing.len()))
    }

    fn in_config(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.outgoing.contains(&id) || self.learners.contains(&id)
    }

    fn volume_exists(&self, id: NodeId) -> bool {
        self.pvcs.values().any(|p| p.volume.id == id)
    }

    fn set_state(&mut self, id: NodeId, state: NodeState) {
        for pvc in self.pvcs.values_mut().filter(|p| p.volume.id == id) {
            pvc.volume.state = state;
        }
    }

    // ---- what the reconciler sees ----------------------------------------------------

    pub fn observe(&self) -> Observed {
        let pods = self
            .pods
            .iter()
            .map(|(&k, pod)| {
                let running = pod.starting == 0;
                let node = match self.running(k) {
                    Some(v) => NodeReport::Reachable {
                        node_id: v.id,
                        state: v.state,
                    },
                    None => NodeReport::Unreachable,
                };
                ObservedPod {
                    ordinal: k,
                    name: format!("sim-{k}"),
                    running,
                    ready: running,
                    terminating: false,
                    template: pod.template.clone(),
                    node,
                }
            })
            .collect();
        let members: BTreeSet<NodeId> = self
            .voters
            .iter()
            .chain(&self.outgoing)
            .chain(&self.learners)
            .copied()
            .collect();
        let answered = members.iter().any(|&id| self.healthy(id));
        let leader = self.leader.filter(|&l| self.healthy(l));
        let raft = answered.then(|| RaftView {
            leader,
            term: 1,
            commit_index: 100,
            config_index: 1,
            config: kuberaft_operator::planner::Configuration {
                voters: self.voters.clone(),
                outgoing_voters: self.outgoing.clone(),
                learners: self.learners.clone(),
            },
            members: members
                .iter()
                .map(|&id| {
                    let lag = leader.map(|_| self.lag.get(&id).copied().unwrap_or(0));
                    let info = MemberInfo {
                        ordinal: self.ordinals.get(&id).copied(),
                        match_index: lag.map(|l| 1000u64.saturating_sub(l)),
                        lag,
                    };
                    (id, info)
                })
                .collect(),
        });
        Observed {
            statefulset: self.sts.clone(),
            pods,
            pvcs: self
                .pvcs
                .iter()
                .filter(|(_, p)| !p.deleting)
                .map(|(&k, _)| k)
                .collect(),
            raft,
            operation: self.status.operation.clone(),
            last_snapshot_request_id: self.status.last_snapshot.clone(),
            cluster_id: self.status.cluster_id.clone(),
            blocked: self.status.blocked,
        }
    }

    // ---- time passing ----------------------------------------------------------------

    /// The StatefulSet controller: pods below the size exist, pods above go.
    fn sync_pods(&mut self) {
        let Some(sts) = self.sts.clone() else { return };
        let doomed: Vec<u32> = self
            .pods
            .keys()
            .copied()
            .filter(|&k| k >= sts.replicas)
            .collect();
        for k in doomed {
            self.delete_pod(k);
        }
        for k in 0..sts.replicas {
            if self.pods.contains_key(&k) {
                continue;
            }
            if !self.pvcs.contains_key(&k) {
                self.next_id += 1;
                let volume = Volume {
                    id: self.next_id,
                    state: NodeState::Uninitialized,
                };
                self.pvcs.insert(
                    k,
                    Pvc {
                        volume,
                        deleting: false,
                    },
                );
            }
            self.pods.insert(
                k,
                SimPod {
                    starting: 2,
                    template: sts.template.clone(),
                },
            );
        }
    }

    fn delete_pod(&mut self, k: u32) {
        self.pods.remove(&k);
        if self.pvcs.get(&k).is_some_and(|p| p.deleting) {
            self.pvcs.remove(&k);
        }
    }

    /// Pods start, members catch up or fall behind, the leader leaves a joint
    /// configuration, and a healthy voter is elected when there is no leader.
    pub fn tick(&mut self) {
        for pod in self.pods.values_mut() {
            pod.starting = pod.starting.saturating_sub(1);
        }
        self.sync_pods();
        let members: Vec<NodeId> = self.lag.keys().copied().collect();
        for id in members {
            let healthy = self.healthy(id);
            let lag = self.lag.get_mut(&id).expect("member");
            *lag = if healthy {
                lag.saturating_sub(120)
            } else {
                (*lag + 40).min(1000)
            };
        }
        if !self.outgoing.is_empty() && self.quorum() {
            self.outgoing.clear();
        }
        if self
            .leader
            .is_none_or(|l| !self.voters.contains(&l) || !self.healthy(l))
        {
            self.leader = None;
            if self.quorum() {
                self.leader = self.voters.iter().copied().find(|&id| self.healthy(id));
            }
        }
    }

    // ---- faults ----------------------------------------------------------------------

    pub fn kill(&mut self, k: u32) {
        self.delete_pod(k);
        self.sync_pods();
    }

    /// The pod comes back on an empty volume. Refused when it could make quorum
    /// unrecoverable: more lost voters than the configuration's size tolerates.
    pub fn lose_volume(&mut self, k: u32) {
        let Some(pvc) = self.pvcs.get(&k) else { return };
        let id = pvc.volume.id;
        if self.voters.contains(&id) || self.outgoing.contains(&id) {
            let n = self.voters.len();
            let lost = self
                .voters
                .iter()
                .filter(|&&v| !self.volume_exists(v))
                .count();
            if !self.outgoing.is_empty() || n < 3 || lost + 1 > (n - 1) / 2 {
                return;
            }
        }
        self.pods.remove(&k);
        self.pvcs.remove(&k);
        self.lag.remove(&id);
        self.sync_pods();
    }

    // ---- the operator ----------------------------------------------------------------

    /// One reconcile: observe, plan, apply the step, write status (unless the operator
    /// "crashes" after the step, or before the status write that is the step).
    pub fn reconcile(&mut self, crash: bool) -> Plan {
        let observed = self.observe();
        let p = plan(&self.desired, &observed);
        self.trace.push(format!("{:?}", p.step));
        assert!(
            !(self.desired.paused && p.step.is_mutating()),
            "{:?} while paused",
            p.step
        );
        if crash && matches!(p.step, Step::RecordOperation(_)) {
            return p;
        }
        self.apply(&p.step);
        if !crash {
            self.status.operation = p.operation.clone();
            self.status.blocked = p.blocked.as_ref().map(|b| b.code);
            if !self.voters.is_empty() && self.status.cluster_id.is_none() {
                self.status.cluster_id = Some("sim".to_owned());
            }
        }
        p
    }

    /// `Ok` when the cluster matches the spec: `replicas` healthy voters on pods
    /// 0..replicas, on the current template, nothing in flight.
    pub fn converged(&self) -> Result<(), String> {
        let n = self.desired.replicas;
        let template = self.desired.template();
        let sts = self.sts.as_ref().ok_or("no statefulset")?;
        let check = |ok: bool, what: &str| if ok { Ok(()) } else { Err(what.to_owned()) };
        check(sts.replicas == n && sts.template == template, "statefulset")?;
        check(self.voters.len() == n as usize, "voter count")?;
        check(
            self.learners.is_empty() && self.outgoing.is_empty(),
            "change in flight",
        )?;
        check(self.pods.len() == n as usize, "pod count")?;
        for k in 0..n {
            let v = self.running(k).ok_or(format!("pod {k} not running"))?;
            check(
                self.voters.contains(&v.id) && self.healthy(v.id),
                "pod runs no voter",
            )?;
            check(self.pods[&k].template == template, "pod template")?;
        }
        check(self.status.operation.is_none(), "operation left in status")?;
        check(
            self.status.last_snapshot == self.desired.snapshot_request_id,
            "snapshot",
        )?;
        check(self.pvcs.keys().all(|&k| k < n), "orphan pvc")
    }
}
