//! PURE planner: `plan(desired, observed) -> Plan`, one safe step at a time.
//!
//! The reconciler observes (Kubernetes objects and every member's Admin.Status), converts
//! them into [`Observed`], calls [`plan`], applies `plan.step`, writes status from the plan
//! and emits `plan.events`. The planner keeps no memory between calls: what must survive an
//! operator restart, the operation in flight, travels through status. No kube types, no IO,
//! no clock: the same input always yields the same plan.
//!
//! ```text
//!  Desired ──┐              ┌─► step       at most one mutation, idempotent
//!            ├─► plan() ────┼─► operation  status.operation (written before it mutates)
//!  Observed ─┘   (pure)     ├─► phase, blocked, health      status
//!                           └─► events     emitted once the step is applied
//! ```
//!
//! Decision order, first match wins:
//! 1. invalid spec → blocked `InvalidSpec`; a storage size other than the volumes' →
//!    blocked `StorageSizeChanged`;
//! 2. `paused` → `None`;
//! 3. no StatefulSet → record `Bootstrap`, create it (with every retained PVC's ordinal
//!    when the cluster was bootstrapped before);
//! 4. StatefulSet template (image, snapshot threshold, template hash) differs from the spec
//!    → `UpdatePodTemplate` (`OnDelete`: no restart);
//! 5. not bootstrapped → record `Bootstrap`, wait for pod 0, `Bootstrap` it;
//! 6. repairs that cannot cost a vote: grow the StatefulSet until it hosts every voter's
//!    ordinal; restart outdated pods that serve no vote (not running, or not a voter);
//! 7. quorum lost → blocked `QuorumLost`, phase Degraded; no leader → wait;
//! 8. new snapshot request id → `Snapshot`;
//! 9. joint or uncommitted configuration → wait;
//! 10. a learner that will never be promoted → `RemoveMember` it;
//! 11. a learner that will be promoted pins its operation (`ScaleUp` or `Replace`);
//! 12. a member's pod came back with a new node id (lost volume) → `Replace`, preempting
//!     the recorded operation (which may be waiting for that very voter);
//! 13. else resume the recorded operation until done or no longer wanted (an upgrade that
//!     has not restarted its pod yet waits until step 16);
//! 14. else start one, recording it first: `ScaleUp` (lowest ordinal without a voter),
//!     then `ScaleDown` (highest ordinal, dead voters first; may block);
//! 15. housekeeping: shrink the StatefulSet past pods that run no member, delete orphan PVCs;
//! 16. else the deferred upgrade, or start one (followers first, highest ordinal first, the
//!     leader last);
//! 17. `None`.

mod bootstrap;
mod events;
mod operations;
mod output;
mod repair;
mod replace;
mod scale_down;
mod scale_up;
mod types;
mod upgrade;
mod view;

pub use output::{Blocked, Event, EventType, Health, Phase, Plan, Reason, Step, WaitReason};
pub use types::{
    BlockedCode, Configuration, DEFAULT_MAX_CATCH_UP_LAG, Desired, MemberInfo, NodeId, NodeReport,
    NodeState, Observed, ObservedPod, ObservedStatefulSet, Operation, PodTemplate, RaftView,
    ReclaimPolicy,
};

use crate::crd::quantity::parse_quantity;
use view::{View, majority};

/// The next step toward `desired`, and what status and Events should say about it.
pub fn plan(desired: &Desired, observed: &Observed) -> Plan {
    let v = View::new(desired, observed);
    let decision = decide(&v);
    let phase = phase(&v, &decision);
    let mut events = if desired.paused {
        Vec::new()
    } else {
        events::transitions(&v, decision.blocked.as_ref())
    };
    events.extend(events::for_step(&v, &decision.step));
    Plan {
        step: decision.step,
        phase,
        blocked: decision.blocked,
        operation: decision.operation,
        events,
        health: v.health(),
    }
}

/// Where one rule leaves an operation.
#[derive(Debug)]
pub(crate) enum Outcome {
    Act(Step),
    Wait(WaitReason),
    Blocked(Blocked),
    /// The operation reached its goal.
    Done,
    /// The spec or the cluster no longer calls for the operation.
    Abandon,
}

/// A plan before its phase and events are derived.
#[derive(Debug)]
pub(crate) struct Decision {
    step: Step,
    operation: Option<Operation>,
    blocked: Option<Blocked>,
}

impl Decision {
    fn step(step: Step, operation: Option<Operation>) -> Self {
        Decision {
            step,
            operation,
            blocked: None,
        }
    }

    fn wait(reason: WaitReason, operation: Option<Operation>) -> Self {
        Decision::step(Step::Wait { reason }, operation)
    }

    fn blocked(blocked: Blocked, operation: Option<Operation>) -> Self {
        Decision {
            step: Step::Wait {
                reason: WaitReason::Blocked(blocked.code),
            },
            operation,
            blocked: Some(blocked),
        }
    }
}

fn decide(v: &View) -> Decision {
    let recorded = v.o.operation.clone();
    if let Some(blocked) = validate(v.d).or_else(|| storage_changed(v)) {
        return Decision::blocked(blocked, recorded);
    }
    if v.d.paused {
        return Decision::step(Step::None, recorded);
    }
    if let Some(decision) = bootstrap::create(v) {
        return decision;
    }
    if let Some(step) = repair::template(v) {
        return Decision::step(step, recorded);
    }
    if let Some(decision) = bootstrap::bootstrap(v) {
        return decision;
    }
    if let Some(step) = repair::host_members(v).or_else(|| repair::restart_idle(v)) {
        return Decision::step(step, recorded);
    }
    if !v.quorum_ok() {
        return Decision::blocked(quorum_lost(v), recorded);
    }
    if v.leader().is_none() {
        return Decision::wait(WaitReason::LeaderElection, recorded);
    }
    if let Some(step) = snapshot(v) {
        return Decision::step(step, recorded);
    }
    if v.config_pending() {
        return Decision::wait(WaitReason::ConfigChangeCommitting, recorded);
    }
    if let Some(step) = repair::stale_learner(v) {
        return Decision::step(step, recorded);
    }
    operations::decide(v)
}

/// What the CRD schema should already refuse; checked again so a bad spec never reaches
/// the cluster.
fn validate(d: &Desired) -> Option<Blocked> {
    let mut errors = Vec::new();
    if d.replicas == 0 {
        errors.push("spec.replicas must be at least 1");
    }
    if d.image.trim().is_empty() {
        errors.push("spec.image must not be empty");
    }
    (!errors.is_empty()).then(|| Blocked {
        code: BlockedCode::InvalidSpec,
        message: errors.join("; "),
    })
}

/// The StatefulSet's volume claims ask for another size than the spec. Its claim template
/// is immutable and the operator does not resize volumes, so nothing happens until the
/// spec is set back (the CRD's CEL rule refuses the edit; this catches objects stored
/// before the rule, or an apiserver that does not run CEL). Equal quantities spelled
/// differently (`1Gi`, `1024Mi`) are the same size.
fn storage_changed(v: &View) -> Option<Blocked> {
    let have = v.o.statefulset.as_ref()?.storage_size.as_deref()?;
    let want = v.d.storage_size.as_str();
    if want.is_empty() {
        return None;
    }
    let same = match (parse_quantity(have), parse_quantity(want)) {
        (Some(a), Some(b)) => a == b,
        _ => have == want,
    };
    (!same).then(|| Blocked {
        code: BlockedCode::StorageSizeChanged,
        message: format!(
            "spec.storage.size is {want} but the volumes were created with {have}; volumes \
             are not resized, set spec.storage.size back to {have}"
        ),
    })
}

fn quorum_lost(v: &View) -> Blocked {
    let message = if v.raft().is_none() {
        "no member answered Admin.Status; no membership change until a majority is back".to_owned()
    } else {
        let voters = v.voters().len();
        format!(
            "{} of {voters} voters healthy, a majority needs {}; no membership change until \
             a majority is back",
            v.healthy_in(v.voters()),
            majority(voters),
        )
    };
    Blocked {
        code: BlockedCode::QuorumLost,
        message,
    }
}

/// A request id that differs from the last one handled. Snapshots are single-step and
/// idempotent, so they are not recorded as an operation: `lastSnapshot` is their record.
fn snapshot(v: &View) -> Option<Step> {
    let id =
        v.d.snapshot_request_id
            .as_ref()
            .filter(|id| !id.is_empty())?;
    (v.o.last_snapshot_request_id.as_ref() != Some(id)).then(|| Step::Snapshot {
        request_id: id.clone(),
    })
}

fn phase(v: &View, d: &Decision) -> Phase {
    if let Some(blocked) = &d.blocked {
        return match blocked.code {
            BlockedCode::QuorumLost => Phase::Degraded,
            _ => Phase::Blocked,
        };
    }
    if v.d.paused {
        return Phase::Paused;
    }
    match &d.operation {
        Some(Operation::Bootstrap) if v.sts().is_none() => Phase::Pending,
        Some(Operation::Bootstrap) => Phase::Bootstrapping,
        Some(Operation::ScaleUp { .. } | Operation::ScaleDown { .. }) => Phase::Scaling,
        Some(Operation::Replace { .. }) => Phase::Degraded,
        Some(Operation::Upgrade { .. }) => Phase::Upgrading,
        None => {
            let health = v.health();
            if health.voters > 0 && health.healthy_voters == health.voters {
                Phase::Running
            } else {
                Phase::Degraded
            }
        }
    }
}
