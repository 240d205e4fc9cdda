//! The nemesis: spec edits (scale, image, snapshot threshold, snapshot requests, pause)
//! and faults (container crashes, forced pod deletions, lost volumes, isolated nodes, pods
//! the operator cannot reach).
//!
//! A lost volume is a new empty data dir: the pod comes back as a new, uninitialized node.
//! Only a minority may be lost, or committed data could really be gone: a voter's volume
//! is lost only when every configuration that counts it as a voter (any running core's,
//! any volume's durable one) keeps all but at most `(n - 1) / 2` of its voters' volumes
//! afterwards, is not joint, and has at least three voters.

use std::collections::BTreeSet;

use kuberaft_raft::{Membership, NodeId};

use super::{IMAGES, World};

/// Ordinals the nemesis aims at (one beyond the largest spec).
const ORDINALS: u64 = 6;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Scale(u32),
    /// Switch to the other image: a rolling upgrade.
    Image,
    /// Another snapshot threshold: a template change too.
    Threshold(u64),
    Snapshot(u32),
    Pause(bool),
    /// SIGKILL the container; the kubelet restarts it after so many ticks.
    Kill {
        ordinal: u32,
        down: u64,
    },
    /// Delete the pod without grace; the StatefulSet recreates it.
    ForceDelete(u32),
    LoseVolume(u32),
    /// Cut the pod's node off the network for so many ticks.
    Isolate {
        ordinal: u32,
        ticks: u64,
    },
    /// The operator's Admin calls to the pod time out for so many ticks.
    Unreachable {
        ordinal: u32,
        ticks: u64,
    },
}

impl World {
    pub fn random_fault(&mut self) -> Fault {
        let r = &mut self.rng;
        let ordinal = r.range(0, ORDINALS) as u32;
        match r.range(0, 100) {
            0..12 => Fault::Scale(r.range(1, 6) as u32),
            12..17 => Fault::Image,
            17..20 => Fault::Threshold(if r.chance(500) { 25 } else { 40 }),
            20..26 => Fault::Snapshot(r.range(1, 4) as u32),
            26..30 => Fault::Pause(r.chance(250)),
            30..62 => {
                let down = match r.range(0, 100) {
                    0..70 => r.range(1, 8),
                    70..95 => r.range(15, 40),
                    _ => r.range(60, 150),
                };
                Fault::Kill { ordinal, down }
            }
            62..72 => Fault::ForceDelete(ordinal),
            72..86 => Fault::LoseVolume(ordinal),
            86..94 => Fault::Isolate {
                ordinal,
                ticks: r.range(5, 40),
            },
            _ => Fault::Unreachable {
                ordinal,
                ticks: r.range(3, 30),
            },
        }
    }

    pub fn inject(&mut self, f: Fault) {
        match f {
            Fault::Scale(n) => self.edit_spec(|s| s.replicas = n as i32),
            Fault::Image => self.edit_spec(|s| {
                s.image = if s.image == IMAGES[0] {
                    IMAGES[1]
                } else {
                    IMAGES[0]
                }
                .to_owned()
            }),
            Fault::Threshold(t) => self.edit_spec(|s| s.snapshot.entry_threshold = t as i64),
            Fault::Snapshot(r) => self.edit_spec(|s| s.snapshot.request_id = Some(format!("s{r}"))),
            Fault::Pause(p) => self.edit_spec(|s| s.paused = p),
            Fault::Kill { ordinal, down } => self.crash_container(ordinal, down),
            Fault::ForceDelete(k) => self.force_delete_pod(k),
            Fault::LoseVolume(k) => {
                if !self.may_lose(k) {
                    self.log(format!("nemesis: spares volume {k}"));
                    return;
                }
                self.force_delete_pod(k);
                self.destroy_claim(k, "lost");
            }
            Fault::Unreachable { ordinal, ticks } => {
                self.operator_cut.insert(ordinal, self.now + ticks);
            }
            Fault::Isolate { ordinal, ticks } => {
                if let Some(p) = self.process(ordinal) {
                    let id = p.node_id;
                    self.net.isolated.insert(id, self.now + ticks);
                }
            }
        }
        self.log(format!("nemesis: {f:?}"));
    }

    /// Whether losing the volume at `k` leaves every configuration that counts it with
    /// a surviving majority of volumes (see the module doc).
    fn may_lose(&self, k: u32) -> bool {
        let Some(id) = self.pvcs.get(&k).map(|c| c.volume.node_id) else {
            return false;
        };
        let exists = |v: &NodeId| self.pvcs.values().any(|c| c.volume.node_id == *v);
        let mut configs: Vec<Membership> = vec![self.truth().membership];
        configs.extend(self.pvcs.values().map(|c| c.volume.membership()));
        configs.extend(
            self.pods
                .values()
                .filter_map(|p| p.process.as_ref()?.core.as_ref())
                .map(|c| c.membership().clone()),
        );
        configs.iter().all(|m| {
            if !m.is_voter(id) {
                return true;
            }
            if m.is_joint() {
                return false;
            }
            let set: &BTreeSet<NodeId> = &m.voters;
            let n = set.len();
            let lost = set.iter().filter(|v| !exists(v)).count();
            n >= 3 && lost < (n - 1) / 2
        })
    }

    /// The faults stop: partitions heal, the spec is unpaused, crashed containers restart.
    pub fn heal(&mut self) {
        self.net.isolated.clear();
        self.operator_cut.clear();
        if self.spec.paused {
            self.edit_spec(|s| s.paused = false);
        }
        let now = self.now;
        for pod in self.pods.values_mut() {
            if pod.restart_at.is_some() {
                pod.restart_at = Some(now);
            }
        }
        self.log("heal: faults stop".to_owned());
    }
}
