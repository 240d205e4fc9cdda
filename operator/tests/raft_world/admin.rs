//! Carrying out a plan step as `reconcile::apply::apply_step` does: Kubernetes writes on
//! the simulated objects, and Admin calls on the node the real reconciler would reach (the
//! pod by name, the node by the pod that answered with its id, the leader the observation
//! named). The Admin calls behave like the real `AdminService`: idempotent, leader-only
//! where the real one is, and membership calls answer only once the change is applied and
//! any joint configuration left; the world keeps running meanwhile. A refusal is an error
//! the operator retries on a later reconcile.

use kuberaft_operator::crd::LastSnapshot;
use kuberaft_operator::planner::{NodeId, Observed, Step};
use kuberaft_operator::reconcile::admin::Lifecycle;
use kuberaft_operator::reconcile::apply::Applied;
use kuberaft_operator::reconcile::observe::World as KubeWorld;
use kuberaft_raft::{ConfChange, ConfChangeKind, ConfChangeSingle, Role};

use super::World;
use super::kube::{most_caught_up_voter, ordinal};
use super::node::Waiter;
use super::sm::Command;

/// How long a membership change may take (`CHANGE_DEADLINE`, 10 s of 100 ms ticks).
const CHANGE_DEADLINE: u64 = 100;
/// How long a hand-off may take (four election timeouts).
const HANDOFF_DEADLINE: u64 = 40;

type R<T> = Result<T, String>;

impl World {
    pub(super) fn apply_step(
        &mut self,
        step: &Step,
        kw: &KubeWorld,
        observed: &Observed,
        crash_mid: bool,
    ) -> R<Applied> {
        let mut applied = Applied::default();
        match step {
            Step::CreateStatefulSet { replicas } | Step::SetStatefulSetReplicas(replicas) => {
                self.apply_statefulset(*replicas);
            }
            Step::UpdatePodTemplate => {
                let replicas = observed.statefulset.as_ref().map_or(0, |s| s.replicas);
                self.apply_statefulset(replicas);
            }
            Step::Bootstrap { pod } => {
                let k = pod_endpoint(kw, pod)?;
                let uid = self.id.uid.clone();
                applied.cluster_id = Some(self.admin_bootstrap(k, &uid)?);
            }
            Step::AddLearner { pod, node_id } => {
                let k = pod_endpoint(kw, pod)?;
                let cluster_id = self.status.cluster_id.clone().or_else(|| {
                    kw.reports
                        .values()
                        .filter_map(|r| r.as_ref().ok())
                        .filter(|s| s.lifecycle == Lifecycle::Member)
                        .find_map(|s| s.cluster_id.clone())
                });
                let cluster_id = cluster_id.ok_or("stale: no cluster id known")?;
                let joining = self.admin_prepare_join(k, &cluster_id)?;
                if joining != *node_id {
                    return Err(format!(
                        "{pod} answers as node {joining:x}, the plan was made for {node_id:x}"
                    ));
                }
                if crash_mid && self.rng.chance(500) {
                    return Err("operator crashed between PrepareJoin and AddLearner".into());
                }
                let leader = leader_endpoint(kw, observed)?;
                self.admin_add_learner(leader, *node_id, pod, crash_mid)?;
            }
            Step::Promote { node_id } => {
                let k = leader_endpoint(kw, observed)?;
                let m = self.require_leader(k)?;
                if !m.voters.contains(node_id) {
                    if !m.learners.contains(node_id) {
                        return Err(format!("node {node_id:x} is not a learner"));
                    }
                    let cc = ConfChange::single(ConfChangeKind::AddVoter, *node_id);
                    self.admin_change(k, cc, crash_mid)?;
                }
            }
            Step::TransferLeadership { from, to } => {
                let k = node_endpoint(kw, *from)?;
                self.admin_transfer(k, *to)?;
            }
            Step::RemoveMember { node_id } => {
                let k = leader_endpoint(kw, observed)?;
                let m = self.require_leader(k)?;
                if m.contains(*node_id) {
                    let cc = ConfChange::single(ConfChangeKind::Remove, *node_id);
                    self.admin_change(k, cc, crash_mid)?;
                }
            }
            Step::ReplaceMember { old, new } => {
                let k = leader_endpoint(kw, observed)?;
                let m = self.require_leader(k)?;
                let mut changes = Vec::new();
                if !m.voters.contains(new) {
                    changes.push(ConfChangeSingle {
                        kind: ConfChangeKind::AddVoter,
                        node: *new,
                    });
                }
                if m.contains(*old) {
                    changes.push(ConfChangeSingle {
                        kind: ConfChangeKind::Remove,
                        node: *old,
                    });
                }
                if !changes.is_empty() {
                    let cc = ConfChange {
                        changes,
                        leave_joint: false,
                    };
                    self.admin_change(k, cc, crash_mid)?;
                }
            }
            Step::RestartPod { pod } => {
                let seen = kw
                    .pods
                    .values()
                    .find(|p| p.metadata.name.as_deref() == Some(pod.as_str()))
                    .ok_or_else(|| format!("stale: pod {pod} is gone"))?;
                let k = ordinal(pod).expect("a pod of this cluster");
                // Deleted with a uid precondition: a pod recreated meanwhile is left alone.
                let uid = self.pods.get(&k).map(|p| format!("pod-{}", p.uid));
                if uid.is_some() && uid == seen.metadata.uid {
                    self.delete_pod(k);
                }
            }
            Step::DeletePvc { ordinal } => {
                if let Some(c) = self.pvcs.get_mut(ordinal) {
                    c.deleting = true;
                    if !self.pods.contains_key(ordinal) {
                        self.destroy_claim(*ordinal, "deleted");
                    }
                }
            }
            Step::Snapshot { request_id } => {
                let members: Vec<u32> = kw
                    .reports
                    .iter()
                    .filter(|(_, r)| matches!(r, Ok(s) if s.lifecycle == Lifecycle::Member))
                    .filter(|(pod, _)| kw.endpoint(pod).is_some())
                    .filter_map(|(pod, _)| ordinal(pod))
                    .collect();
                if members.is_empty() {
                    return Err("stale: no member answered".into());
                }
                let mut index = u64::MAX;
                for k in members {
                    index = index.min(self.admin_snapshot(k)?);
                }
                applied.snapshot = Some(LastSnapshot {
                    request_id: Some(request_id.clone()),
                    index: i64::try_from(index).unwrap_or(i64::MAX),
                    time: self.time(),
                });
            }
            Step::RecordOperation(_) | Step::Wait { .. } | Step::None => {}
        }
        Ok(applied)
    }

    // ---- the Admin service of one node -------------------------------------------------

    fn running(&self, k: u32) -> R<()> {
        if self.operator_cut_off(k) {
            return Err(format!("pod {k}: no answer within the deadline"));
        }
        self.process(k)
            .map(|_| ())
            .ok_or_else(|| format!("pod {k}: unavailable"))
    }

    fn admin_bootstrap(&mut self, k: u32, cluster_id: &str) -> R<String> {
        self.running(k)?;
        let vol = &mut self.pvcs.get_mut(&k).expect("claim").volume;
        match (vol.lifecycle, &vol.cluster_id) {
            (Lifecycle::Uninitialized, _) => {}
            (Lifecycle::Member, Some(c)) if c == cluster_id => return Ok(c.clone()),
            (l, c) => return Err(format!("cannot bootstrap: this node is {l:?} in {c:?}")),
        }
        let p = self.pods.get_mut(&k).and_then(|p| p.process.as_mut());
        p.expect("running").bootstrap(vol, cluster_id);
        let id = vol.node_id;
        self.log(format!("pod {k} bootstrapped node {id:x}"));
        Ok(cluster_id.to_owned())
    }

    fn admin_prepare_join(&mut self, k: u32, cluster_id: &str) -> R<NodeId> {
        self.running(k)?;
        let vol = &mut self.pvcs.get_mut(&k).expect("claim").volume;
        match (vol.lifecycle, &vol.cluster_id) {
            (Lifecycle::Uninitialized, _) => {
                let p = self.pods.get_mut(&k).and_then(|p| p.process.as_mut());
                p.expect("running").prepare_join(vol, cluster_id);
            }
            (Lifecycle::Joining | Lifecycle::Member, Some(c)) if c == cluster_id => {}
            (l, c) => return Err(format!("cannot join: this node is {l:?} in {c:?}")),
        }
        Ok(vol.node_id)
    }

    /// The node's configuration if it leads, else NotLeader.
    fn require_leader(&self, k: u32) -> R<kuberaft_raft::Membership> {
        self.running(k)?;
        let core = self.process(k).and_then(|p| p.core.as_ref());
        match core.map(|c| c.status()) {
            Some(st) if st.role == Role::Leader => Ok(st.membership),
            Some(st) => Err(format!("pod {k}: not the leader (leader {:x})", st.leader)),
            None => Err(format!("pod {k}: runs no core")),
        }
    }

    fn admin_add_learner(&mut self, k: u32, id: NodeId, name: &str, crash_mid: bool) -> R<()> {
        self.running(k)?;
        if self.process(k).expect("running").sm.removed.contains(&id) {
            return Err(format!("node {id:x} was removed from this cluster"));
        }
        self.require_leader(k)?;
        let p = self.process(k).expect("running");
        if p.sm.book.get(&id).map(String::as_str) != Some(name) {
            let cmd = Command::Member {
                id,
                name: name.to_owned(),
            };
            let token = self.propose_admin(k, |core| core.propose(cmd.encode()))?;
            self.wait_applied(k, token)?;
        }
        let m = self.require_leader(k)?;
        if m.contains(id) {
            return Ok(());
        }
        self.admin_change(
            k,
            ConfChange::single(ConfChangeKind::AddLearner, id),
            crash_mid,
        )
    }

    /// Proposes on the node's core and registers a waiter for the entry.
    fn propose_admin(
        &mut self,
        k: u32,
        propose: impl FnOnce(&mut kuberaft_raft::RawNode) -> kuberaft_raft::Result<(u64, u64)>,
    ) -> R<u64> {
        self.next_token += 1;
        let token = self.next_token;
        let p = self.process_mut(k).ok_or("unavailable")?;
        let core = p.core.as_mut().ok_or("runs no core")?;
        let (index, term) = propose(core).map_err(|e| format!("pod {k}: {e}"))?;
        p.waiters.insert(index, (term, Waiter::Admin(token)));
        Ok(token)
    }

    /// Runs the world until the proposal is applied on the node (or lost).
    fn wait_applied(&mut self, k: u32, token: u64) -> R<()> {
        for _ in 0..CHANGE_DEADLINE {
            self.tick();
            if let Some(ok) = self.admin_done.remove(&token) {
                return if ok {
                    Ok(())
                } else {
                    Err(format!("pod {k}: the proposal was lost"))
                };
            }
            if self.process(k).and_then(|p| p.core.as_ref()).is_none() {
                return Err(format!("pod {k}: stopped"));
            }
        }
        Err(format!(
            "pod {k}: not applied within {CHANGE_DEADLINE} ticks"
        ))
    }

    /// `AdminService::change`: propose, wait until applied and out of joint consensus.
    fn admin_change(&mut self, k: u32, cc: ConfChange, crash_mid: bool) -> R<()> {
        let token = self.propose_admin(k, |core| core.propose_conf_change(cc.clone()))?;
        self.log(format!("pod {k} proposed {cc:?}"));
        if crash_mid {
            return Err("operator crashed while the change was in flight".into());
        }
        let index = {
            let p = self.process(k).expect("proposed");
            *p.waiters
                .iter()
                .find(|(_, (_, w))| matches!(w, Waiter::Admin(t) if *t == token))
                .expect("registered")
                .0
        };
        self.wait_applied(k, token)?;
        for _ in 0..CHANGE_DEADLINE {
            if self
                .pvcs
                .get(&k)
                .is_some_and(|c| c.volume.lifecycle == Lifecycle::Removed)
            {
                return Ok(());
            }
            let st = self
                .process(k)
                .and_then(|p| p.core.as_ref())
                .map(|c| c.status());
            let Some(st) = st else {
                return Err(format!("pod {k}: stopped"));
            };
            if !st.membership.is_joint() && st.applied >= index.max(st.config_index) {
                return Ok(());
            }
            self.tick();
        }
        Err(format!("pod {k}: the change at {index} did not complete"))
    }

    /// `AdminService::transfer_leadership` and `handoff_wait`.
    fn admin_transfer(&mut self, k: u32, to: NodeId) -> R<()> {
        self.running(k)?;
        let me = self.process(k).expect("running").node_id;
        let status = |w: &World| {
            w.process(k)
                .and_then(|p| p.core.as_ref())
                .map(|c| c.status())
        };
        let st = status(self).ok_or("runs no core")?;
        if st.role != Role::Leader && st.leader != 0 && (to == 0 || to == st.leader) {
            return Ok(());
        }
        self.require_leader(k)?;
        let target = if to != 0 {
            to
        } else {
            most_caught_up_voter(&st).ok_or("no other voter")?
        };
        let core = self
            .process_mut(k)
            .and_then(|p| p.core.as_mut())
            .expect("leads");
        core.transfer_leader(target)
            .map_err(|e| format!("pod {k}: {e}"))?;
        for _ in 0..HANDOFF_DEADLINE {
            self.tick();
            let Some(st) = status(self) else {
                return Err(format!("pod {k}: stopped"));
            };
            if st.leader != 0 && st.leader != me && (st.leader == target || st.role != Role::Leader)
            {
                return Ok(());
            }
        }
        Err(format!("leadership did not move to {target:x} in time"))
    }

    fn admin_snapshot(&mut self, k: u32) -> R<u64> {
        self.running(k)?;
        let vol = &mut self.pvcs.get_mut(&k).expect("claim").volume;
        let p = self.pods.get_mut(&k).and_then(|p| p.process.as_mut());
        let p = p.expect("running");
        if p.core.is_none() {
            return Err(format!("pod {k}: runs no core"));
        }
        if p.sm.applied == 0 {
            return Err(format!("pod {k}: nothing is applied yet"));
        }
        let (index, _) = p.maybe_snapshot(vol, true).expect("runs a core");
        Ok(index)
    }
}

fn pod_endpoint(kw: &KubeWorld, pod: &str) -> R<u32> {
    kw.endpoint(pod)
        .and_then(|e| ordinal(&e.pod))
        .ok_or_else(|| format!("stale: pod {pod} has no IP"))
}

fn node_endpoint(kw: &KubeWorld, node: NodeId) -> R<u32> {
    kw.endpoint_of_node(node)
        .and_then(|e| ordinal(&e.pod))
        .ok_or_else(|| format!("stale: no pod answers as node {node:x}"))
}

fn leader_endpoint(kw: &KubeWorld, observed: &Observed) -> R<u32> {
    let leader = observed
        .raft
        .as_ref()
        .and_then(|r| r.leader)
        .ok_or("stale: no leader answered")?;
    node_endpoint(kw, leader)
}
