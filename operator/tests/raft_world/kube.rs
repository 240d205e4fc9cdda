//! The Kubernetes side: the StatefulSet controller (`Parallel`, `OnDelete`, claim
//! retention per reclaim policy, as `build::statefulset` sets them), the kubelet that starts
//! containers and runs the preStop hand-off, and the claims that hold each member's volume.

use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kuberaft_operator::build::{self, pod_name};
use kuberaft_operator::crd::ReclaimPolicy;
use kuberaft_operator::planner::PodTemplate;
use kuberaft_operator::reconcile::convert::template_of;
use kuberaft_raft::Role;

use super::World;
use super::node::{Effects, Process, Volume};

/// A pod. It keeps the spec it was created from (`OnDelete`: a template change restarts
/// nothing by itself).
#[derive(Debug)]
pub struct SimPod {
    pub uid: u64,
    /// The template's metadata it was created with (labels, annotations).
    pub meta: ObjectMeta,
    pub spec: PodSpec,
    pub template: PodTemplate,
    /// Scheduled and started: it has an IP and phase Running.
    pub started: bool,
    start_at: u64,
    /// The raft-node container, when it runs.
    pub process: Option<Process>,
    /// The container died; the kubelet starts it again at this tick.
    pub restart_at: Option<u64>,
    /// Deleted (deletionTimestamp set): the grace period ends at this tick.
    pub terminating: Option<u64>,
}

/// A PersistentVolumeClaim and the volume bound to it.
#[derive(Debug)]
pub struct SimPvc {
    pub volume: Volume,
    /// Deleted while a pod still uses it: it goes with the pod.
    pub deleting: bool,
}

impl World {
    pub fn sts_replicas(&self) -> Option<u32> {
        let r = self.sts.as_ref()?.spec.replicas?;
        u32::try_from(r).ok()
    }

    /// The StatefulSet's pod template: its metadata (labels, annotations) and spec.
    fn sts_pod_template(&self) -> Option<(ObjectMeta, PodSpec)> {
        let t = &self.sts.as_ref()?.spec.template;
        Some((t.metadata.clone().unwrap_or_default(), t.spec.clone()?))
    }

    /// Server-side apply of the builder's StatefulSet with `replicas` pods and the current
    /// spec's template, as `objects::apply_statefulset` does.
    pub fn apply_statefulset(&mut self, replicas: u32) {
        let replicas = i32::try_from(replicas).expect("small");
        self.sts = Some(build::statefulset(&self.id, &self.spec, replicas));
        self.sts_controller();
    }

    /// The StatefulSet controller's pass: pods beyond the size go, missing pods below it
    /// are created (with a new claim when theirs is gone; not while it is being deleted).
    pub(super) fn sts_controller(&mut self) {
        let (Some(replicas), Some((meta, spec))) = (self.sts_replicas(), self.sts_pod_template())
        else {
            return;
        };
        let surplus: Vec<u32> = self
            .pods
            .iter()
            .filter(|(k, p)| **k >= replicas && p.terminating.is_none())
            .map(|(&k, _)| k)
            .collect();
        for k in surplus {
            self.delete_pod(k);
        }
        for k in 0..replicas {
            if self.pods.contains_key(&k) || self.pvcs.get(&k).is_some_and(|c| c.deleting) {
                continue;
            }
            if !self.pvcs.contains_key(&k) {
                let id = self.new_node_id();
                let volume = Volume::new(id);
                self.pvcs.insert(
                    k,
                    SimPvc {
                        volume,
                        deleting: false,
                    },
                );
                self.log(format!("pvc {k} created: new node {id:x}"));
            }
            let uid = self.new_uid();
            let start_at = self.now + self.rng.range(1, 4);
            let pod = SimPod {
                uid,
                template: template_of(Some(&meta), &spec),
                meta: meta.clone(),
                spec: spec.clone(),
                started: false,
                start_at,
                process: None,
                restart_at: None,
                terminating: None,
            };
            self.pods.insert(k, pod);
        }
    }

    /// The kubelet: pods start, crashed containers restart, deleted pods finish.
    pub(super) fn kubelet(&mut self) {
        let ordinals: Vec<u32> = self.pods.keys().copied().collect();
        for k in ordinals {
            let now = self.now;
            let pod = &self.pods[&k];
            if let Some(end) = pod.terminating {
                if now >= end {
                    self.finish_termination(k);
                }
                continue;
            }
            if !pod.started {
                if now >= pod.start_at {
                    self.pods.get_mut(&k).expect("listed").started = true;
                    self.start_process(k);
                }
                continue;
            }
            if pod.process.is_none() && pod.restart_at.is_some_and(|t| now >= t) {
                self.start_process(k);
            }
        }
    }

    fn start_process(&mut self, k: u32) {
        let seed = self.seed;
        let pod = self.pods.get_mut(&k).expect("pod");
        let vol = &self.pvcs.get(&k).expect("a pod starts on its claim").volume;
        let p = Process::start(
            pod_name(&self.id.name, k),
            vol,
            pod.template.snapshot_entry_threshold,
            seed ^ pod.uid.wrapping_mul(0x9E37_79B9),
        );
        pod.process = Some(p);
        pod.restart_at = None;
        let lifecycle = vol.lifecycle;
        self.log(format!(
            "pod {k} runs node {:x} ({lifecycle:?})",
            vol.node_id
        ));
    }

    /// Deletes the pod gracefully: the preStop hook hands leadership off, the process stops
    /// after the grace period, then the claim may go.
    pub fn delete_pod(&mut self, k: u32) {
        let grace = self.rng.range(1, 4);
        let now = self.now;
        let Some(pod) = self.pods.get_mut(&k) else {
            return;
        };
        if pod.terminating.is_some() {
            return;
        }
        if !pod.started {
            self.pods.remove(&k);
            self.claim_released(k);
            return;
        }
        pod.terminating = Some(now + grace);
        if let Some(core) = pod.process.as_mut().and_then(|p| p.core.as_mut()) {
            let st = core.status();
            if st.role == Role::Leader
                && st.membership.voters.len() > 1
                && let Some(to) = most_caught_up_voter(&st)
            {
                let _ = core.transfer_leader(to);
            }
        }
        self.log(format!("pod {k} terminating"));
    }

    /// The end of a graceful stop: pending writes are flushed (a clean WAL close).
    fn finish_termination(&mut self, k: u32) {
        let mut pod = self.pods.remove(&k).expect("pod");
        if let Some(mut p) = pod.process.take() {
            let vol = &mut self.pvcs.get_mut(&k).expect("claim").volume;
            let mut fx = Effects::default();
            p.fsync(vol, &mut fx);
            fx.messages.clear();
            self.effects(fx);
        }
        self.log(format!("pod {k} gone"));
        self.claim_released(k);
    }

    /// The pod at `k` is gone: a claim being deleted goes now, and a claim beyond the
    /// StatefulSet goes per `persistentVolumeClaimRetentionPolicy.whenScaled`.
    fn claim_released(&mut self, k: u32) {
        let scaled_away = self.sts_replicas().is_some_and(|r| k >= r)
            && self.spec.storage.reclaim_policy == ReclaimPolicy::Delete;
        if self.pvcs.get(&k).is_some_and(|c| c.deleting) || scaled_away {
            self.destroy_claim(k, "deleted");
        }
    }

    /// The claim and its data are gone. Unless the nemesis did it, the operator caused
    /// it, and it must never hold a voter's data.
    pub fn destroy_claim(&mut self, k: u32, why: &str) {
        let Some(pvc) = self.pvcs.remove(&k) else {
            return;
        };
        let id = pvc.volume.node_id;
        self.log(format!("pvc {k} {why}: node {id:x}'s data is gone"));
        if why != "lost" && self.truth().voters().contains(&id) {
            let msg = format!("the operator destroyed the volume of voter {id:x} (pvc {k})");
            self.checker.fail(self.now, msg);
        }
    }

    /// Kills the container (SIGKILL): unsynced writes are lost; the kubelet restarts it
    /// after `down` ticks.
    pub fn crash_container(&mut self, k: u32, down: u64) {
        let now = self.now;
        if let Some(pod) = self.pods.get_mut(&k)
            && pod.started
            && pod.terminating.is_none()
        {
            pod.process = None;
            pod.restart_at = Some(now + down);
        }
    }

    /// Force-deletes the pod: no grace, no hand-off, unsynced writes lost.
    pub fn force_delete_pod(&mut self, k: u32) {
        if self.pods.remove(&k).is_some() {
            self.claim_released(k);
        }
    }
}

/// The real driver's choice for a hand-off: the voter with the highest match index.
pub fn most_caught_up_voter(st: &kuberaft_raft::Status) -> Option<u64> {
    st.progress
        .iter()
        .filter(|(id, _)| **id != st.id && st.membership.voters.contains(id))
        .max_by_key(|(id, p)| (p.matched, p.recent_active, std::cmp::Reverse(**id)))
        .map(|(id, _)| *id)
}

/// Ordinal of a pod name of this cluster.
pub fn ordinal(name: &str) -> Option<u32> {
    kuberaft_operator::reconcile::observe::ordinal_of(super::CLUSTER, name)
}
