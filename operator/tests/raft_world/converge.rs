//! Liveness: once the faults stop, the operator must bring the cluster to the spec, and
//! every committed write must be readable on every voter.

use kuberaft_operator::planner::Step;
use kuberaft_operator::reconcile::admin::Lifecycle;
use kuberaft_operator::reconcile::convert::{self, statefulset_template};

use super::{Crash, World};

impl World {
    /// `Ok` when the cluster matches the spec: `replicas` healthy voters on pods
    /// `0..replicas` running the current template, nothing in flight, no orphan claim.
    pub fn converged(&self) -> Result<(), String> {
        let n = u32::try_from(self.spec.replicas).expect("positive");
        let template = convert::desired(&self.spec).template();
        let check = |ok: bool, what: &str| if ok { Ok(()) } else { Err(what.to_owned()) };
        let sts = self.sts.as_ref().ok_or("no statefulset")?;
        check(self.sts_replicas() == Some(n), "statefulset size")?;
        check(
            statefulset_template(sts) == template,
            "statefulset template",
        )?;
        check(self.leader().is_some(), "no leader")?;
        let truth = self.truth();
        let m = &truth.membership;
        check(m.voters.len() == n as usize, "voter count")?;
        check(
            m.learners.is_empty() && m.outgoing.is_empty(),
            "change in flight",
        )?;
        check(
            self.pods.keys().copied().eq(0..n),
            "pods are not exactly 0..replicas",
        )?;
        for (&k, pod) in &self.pods {
            let p = pod.process.as_ref().ok_or(format!("pod {k} not running"))?;
            check(pod.terminating.is_none(), "a pod is terminating")?;
            check(pod.template == template, "a pod runs an old template")?;
            check(m.voters.contains(&p.node_id), "a pod runs no voter")?;
            check(
                self.pvcs[&k].volume.lifecycle == Lifecycle::Member,
                "a pod is not a member",
            )?;
        }
        check(truth.healthy_voters() == n as usize, "unhealthy voter")?;
        check(self.status.operation.is_none(), "operation left in status")?;
        let snap = self.status.last_snapshot.as_ref();
        check(
            self.spec.snapshot.request_id.is_none()
                || snap.and_then(|s| s.request_id.as_ref())
                    == self.spec.snapshot.request_id.as_ref(),
            "snapshot request not handled",
        )?;
        check(self.pvcs.keys().all(|&k| k < n), "orphan claim")
    }

    /// Reconciles (time passing) until the plan is `None` on a converged cluster, stays
    /// so, and every voter has applied every committed write.
    pub fn settle(&mut self, budget: usize) -> Result<(), String> {
        let mut last = Step::None;
        for _ in 0..budget {
            self.ticks(2);
            let p = self.reconcile(Crash::No);
            if !self.checker.violations.is_empty() {
                return Err("safety violation".into());
            }
            last = p.step.clone();
            if p.step == Step::None && self.converged().is_ok() {
                for _ in 0..3 {
                    self.ticks(2);
                    let again = self.reconcile(Crash::No);
                    if again.step != Step::None {
                        return Err(format!("not stable: {:?}", again.step));
                    }
                }
                return self.drain();
            }
        }
        let why = self.converged().err().unwrap_or_default();
        Err(format!(
            "did not converge within {budget} reconciles ({why}); last step {last:?}\n{}",
            self.dump()
        ))
    }

    /// Stops the client, lets every voter catch up, then compares.
    fn drain(&mut self) -> Result<(), String> {
        self.writing = false;
        for _ in 0..300 {
            let last = self.checker.writes.keys().next_back().copied().unwrap_or(0);
            let voters = self.truth().voters();
            let behind = voters.iter().any(|&id| {
                self.ordinal_of_node(id)
                    .and_then(|k| self.process(k))
                    .is_none_or(|p| p.sm.applied < last)
            });
            if !behind {
                break;
            }
            self.tick();
        }
        self.check_writes(true);
        self.writing = true;
        if self.checker.violations.is_empty() {
            Ok(())
        } else {
            Err("committed writes are missing".into())
        }
    }

    /// The state, for failure messages.
    pub fn dump(&self) -> String {
        let mut out = format!(
            "spec replicas {} image {} threshold {} snapshot {:?} paused {}\nstatefulset {:?}\n",
            self.spec.replicas,
            self.spec.image,
            self.spec.snapshot.entry_threshold,
            self.spec.snapshot.request_id,
            self.spec.paused,
            self.sts_replicas(),
        );
        for (&k, pod) in &self.pods {
            let node = pod.process.as_ref().map(|p| {
                let core = p.core.as_ref().map(|c| {
                    let st = c.status();
                    format!(
                        "{:?} t{} commit {} applied {} last {} {:x?}",
                        st.role, st.term, st.commit, st.applied, st.last_index, st.membership
                    )
                });
                format!("node {:x} {}", p.node_id, core.unwrap_or_default())
            });
            out.push_str(&format!(
                "pod {k}: started {} terminating {:?} image {} {}\n",
                pod.started,
                pod.terminating,
                pod.template.image,
                node.unwrap_or_else(|| "down".into())
            ));
        }
        for (&k, c) in &self.pvcs {
            out.push_str(&format!(
                "pvc {k}: node {:x} {:?} deleting {}\n",
                c.volume.node_id, c.volume.lifecycle, c.deleting
            ));
        }
        out.push_str(&format!(
            "status operation {:?} blocked {:?}\n",
            self.status.operation, self.status.blocked_on
        ));
        out
    }
}
