//! One reconcile, staged like `reconcile::cycle`: observe, convert, plan, apply ONE step,
//! compute status with the real `status::compute` and write it. The operator may crash
//! mid-call or after the step, before the status write; a failed step writes no status
//! either (the real reconcile returns the error). Status is the operator's only memory.
//!
//! Every step is judged against the ground truth before and after it: a membership change
//! needs a running majority, no joint configuration and no other learner in flight, and no
//! step may take away the majority of running voters, nor of running and caught-up ones
//! (a restart in a cluster of one or two voters, which the planner allows on purpose,
//! excepted).

use kuberaft_operator::planner::{self, Observed, Plan, Step};
use kuberaft_operator::reconcile::convert;
use kuberaft_operator::reconcile::status::{self, StatusInput};

use super::World;
use super::check::{Truth, short};

/// Where the operator process dies during a reconcile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Crash {
    No,
    /// A membership call was sent but the operator died before its answer.
    MidCall,
    /// The step was applied; status was not written.
    AfterStep,
}

impl World {
    /// What the planner would do now, without doing it.
    pub fn plan(&self) -> (Observed, Plan) {
        let observed = self.observed(&self.kube_world());
        let plan = planner::plan(&convert::desired(&self.spec), &observed);
        (observed, plan)
    }

    pub fn reconcile(&mut self, crash: Crash) -> Plan {
        let kw = self.kube_world();
        let observed = self.observed(&kw);
        let desired = convert::desired(&self.spec);
        let plan = planner::plan(&desired, &observed);
        if desired.paused && plan.step.is_mutating() {
            let msg = format!("{:?} while paused", plan.step);
            self.checker.fail(self.now, msg);
        }
        let before = self.truth();
        let result = self.apply_step(&plan.step, &kw, &observed, crash == Crash::MidCall);
        let after = self.truth();
        if plan.step.is_mutating() {
            let outcome = match (&result, crash) {
                (Err(e), _) => format!(" -> error: {e}"),
                (Ok(_), Crash::No) => String::new(),
                (Ok(_), c) => format!(" -> operator crash {c:?}"),
            };
            let op = plan
                .operation
                .as_ref()
                .map_or(String::new(), |o| format!(" [{o:?}]"));
            // The lags the planner saw (from the leader's progress), and the real ones.
            let seen: Vec<String> = observed
                .raft
                .iter()
                .flat_map(|r| &r.members)
                .map(|(&id, m)| {
                    format!(
                        "{}:{}",
                        short(id),
                        m.lag.map_or("?".into(), |l| l.to_string())
                    )
                })
                .collect();
            self.log(format!(
                "reconcile: {:?}{op}{outcome} | seen lag [{}] | after: {}",
                plan.step,
                seen.join(" "),
                after.summary()
            ));
        }
        self.judge(&plan.step, &before, &after);
        if let (Ok(applied), Crash::No) = (result, crash) {
            self.status = status::compute(&StatusInput {
                id: &self.id,
                generation: Some(self.generation),
                paused: desired.paused,
                previous: &self.status,
                world: &kw,
                observed: &observed,
                plan: &plan,
                applied: &applied,
                now: self.time(),
            });
        }
        plan
    }

    fn judge(&mut self, step: &Step, before: &Truth, after: &Truth) {
        let fail = |w: &mut World, what: String| {
            let msg = format!(
                "{step:?} {what} (before: {}; after: {})",
                before.summary(),
                after.summary()
            );
            w.checker.fail(w.now, msg);
        };
        if step.is_membership_change() {
            if !before.running_quorum() {
                fail(self, "without a running majority".into());
            }
            if before.membership.is_joint() {
                fail(self, "during a joint configuration".into());
            }
            let learners = &before.membership.learners;
            let about = match *step {
                Step::Promote { node_id }
                | Step::RemoveMember { node_id }
                | Step::AddLearner { node_id, .. } => learners.contains(&node_id),
                Step::ReplaceMember { new, .. } => learners.contains(&new),
                _ => false,
            };
            if !learners.is_empty() && !about {
                fail(self, "while another learner is in flight".into());
            }
        }
        let small_restart = matches!(step, Step::RestartPod { .. }) && before.voters().len() <= 2;
        if small_restart {
            return;
        }
        if before.running_quorum() && !after.running_quorum() {
            fail(self, "took away the running majority".into());
        } else if before.quorum() && !after.quorum() {
            fail(self, "took away the caught-up majority".into());
        }
    }
}
