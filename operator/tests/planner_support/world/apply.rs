//! The world's side of each step: apply it as the cluster would, and refuse (panic) any
//! step a real leader would reject or that is unsafe.

use kuberaft_operator::planner::{NodeState, ObservedStatefulSet, Step};

use super::{World, majority_of, ordinal_of};

impl World {
    pub(super) fn apply(&mut self, step: &Step) {
        let quorum_before = self.quorum();
        let voters_before = self.voters.clone();
        if step.is_membership_change() {
            assert!(
                quorum_before,
                "{step:?} without quorum\n{}",
                self.trace.join("\n")
            );
            assert!(
                self.outgoing.is_empty(),
                "{step:?} during a joint configuration"
            );
            let completes = match *step {
                Step::Promote { node_id } | Step::RemoveMember { node_id } => {
                    self.learners.contains(&node_id)
                }
                Step::ReplaceMember { new, .. } => self.learners.contains(&new),
                _ => false,
            };
            assert!(
                self.learners.is_empty() || completes,
                "{step:?} while a learner is pending"
            );
        }
        match step.clone() {
            Step::CreateStatefulSet { replicas } => {
                assert!(self.sts.is_none());
                let template = self.desired.template();
                self.sts = Some(ObservedStatefulSet {
                    replicas,
                    template,
                    storage_size: None,
                });
                self.sync_pods();
            }
            Step::UpdatePodTemplate => {
                self.sts.as_mut().expect("statefulset").template = self.desired.template();
            }
            Step::SetStatefulSetReplicas(n) => {
                let sts = self.sts.as_mut().expect("statefulset");
                if n < sts.replicas {
                    assert!(n >= self.desired.replicas, "shrank under the spec: {n}");
                    for k in n..sts.replicas {
                        let id = self.pvcs.get(&k).map(|p| p.volume.id);
                        let member = id.is_some_and(|id| self.in_config(id));
                        assert!(
                            !member || !self.pods.contains_key(&k),
                            "shrink drops a member"
                        );
                    }
                }
                self.sts.as_mut().expect("statefulset").replicas = n;
                self.sync_pods();
            }
            Step::Bootstrap { pod } => {
                assert!(
                    self.status.cluster_id.is_none() && self.voters.is_empty(),
                    "second bootstrap"
                );
                let k = ordinal_of(&pod);
                let v = self.running(k).expect("bootstrap a running pod");
                assert_eq!(v.state, NodeState::Uninitialized);
                self.set_state(v.id, NodeState::Member);
                self.voters.insert(v.id);
                self.lag.insert(v.id, 0);
                self.ordinals.insert(v.id, k);
                self.leader = Some(v.id);
            }
            Step::AddLearner { pod, node_id } => {
                let k = ordinal_of(&pod);
                let v = self.running(k).expect("PrepareJoin on a running pod");
                assert_eq!((v.id, v.state), (node_id, NodeState::Uninitialized));
                assert!(!self.in_config(node_id));
                self.set_state(node_id, NodeState::Member);
                self.learners.insert(node_id);
                self.lag.insert(node_id, 300);
                self.ordinals.insert(node_id, k);
            }
            Step::Promote { node_id } => {
                assert!(self.learners.remove(&node_id), "promote a non-learner");
                self.voters.insert(node_id);
            }
            Step::TransferLeadership { from, to } => {
                assert_eq!(self.leader, Some(from));
                assert!(self.voters.contains(&to) && self.healthy(to));
                self.leader = Some(to);
            }
            Step::RemoveMember { node_id } => {
                assert_ne!(self.leader, Some(node_id), "removes the leader");
                assert!(self.in_config(node_id));
                self.voters.remove(&node_id);
                self.learners.remove(&node_id);
                self.lag.remove(&node_id);
                // Half the removed nodes never hear of it and keep saying Member.
                if node_id % 2 == 0 {
                    self.set_state(node_id, NodeState::Removed);
                }
            }
            Step::ReplaceMember { old, new } => {
                assert!(self.learners.remove(&new) && self.voters.contains(&old));
                assert_ne!(self.leader, Some(old), "replaces the leader");
                self.outgoing = self.voters.clone();
                self.voters.remove(&old);
                self.voters.insert(new);
                self.lag.remove(&old);
                self.set_state(old, NodeState::Removed);
            }
            Step::RestartPod { pod } => {
                let k = ordinal_of(&pod);
                let hosted = self
                    .running(k)
                    .map(|v| v.id)
                    .filter(|&id| self.voters.contains(&id) && self.healthy(id));
                if hosted.is_some() {
                    let n = self.voters.len();
                    let all = self.healthy_count(&self.voters) == n;
                    let rest = self.healthy_count(&self.voters) - 1;
                    assert!(
                        majority_of(rest, n) || (n <= 2 && all),
                        "restart loses quorum"
                    );
                }
                self.delete_pod(k);
                self.sync_pods();
            }
            Step::DeletePvc { ordinal } => {
                let pvc = self.pvcs.get_mut(&ordinal).expect("pvc");
                let id = pvc.volume.id;
                pvc.deleting = true;
                assert!(
                    !(self.voters.contains(&id)
                        || self.outgoing.contains(&id)
                        || self.learners.contains(&id)),
                    "deletes the volume of member {id:x}"
                );
                if !self.pods.contains_key(&ordinal) {
                    self.pvcs.remove(&ordinal);
                }
            }
            Step::Snapshot { request_id } => self.status.last_snapshot = Some(request_id),
            Step::RecordOperation(op) => self.status.operation = Some(op),
            Step::Wait { .. } | Step::None => {}
        }
        let restart = matches!(step, Step::RestartPod { .. });
        let small = voters_before.len() <= 2;
        if quorum_before && !self.quorum() && !(restart && small) {
            panic!(
                "{step:?} lost the healthy majority\n{}",
                self.trace.join("\n")
            );
        }
    }
}
