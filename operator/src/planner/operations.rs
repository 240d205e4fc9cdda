//! Which multi-step operation to work on, and driving it: record it in status first, then
//! one step per reconcile until it is done or no longer wanted.
//!
//! Priority: a learner that will be promoted pins its operation (nothing else may change
//! membership meanwhile); then replacing a member that lost its volume (the recorded
//! operation may be waiting for that very voter); then the recorded operation; then a new
//! scale-up or scale-down; then housekeeping; then upgrades, including a recorded one that
//! has not restarted its pod yet.

use super::output::Step;
use super::types::{NodeState, Operation};
use super::view::View;
use super::{Decision, Outcome, repair, replace, scale_down, scale_up, upgrade};

pub(super) fn decide(v: &View) -> Decision {
    let recorded = v.o.operation.as_ref();
    // An upgrade that has not restarted its pod yet is elective: it waits behind the
    // membership work, which may be exactly what it waits for (a dead voter removed).
    let deferred = recorded.filter(|op| upgrade::not_started(v, op));
    let resumed = recorded.filter(|_| deferred.is_none()).cloned();
    let first = [
        pinned(v),
        replace::choose(v),
        resumed,
        scale_up::choose(v),
        scale_down::choose(v),
    ];
    if let Some(decision) = first
        .into_iter()
        .flatten()
        .find_map(|op| drive(v, op, recorded))
    {
        return decision;
    }
    if let Some(step) = repair::housekeeping(v) {
        return Decision::step(step, deferred.cloned());
    }
    let last = [deferred.cloned(), upgrade::choose(v)];
    if let Some(decision) = last
        .into_iter()
        .flatten()
        .find_map(|op| drive(v, op, recorded))
    {
        return decision;
    }
    Decision::step(Step::None, None)
}

/// The operation a learner that will be promoted belongs to: its pod answers with its id
/// at an ordinal the spec wants. If a lost voter owned that ordinal, it is a replacement.
fn pinned(v: &View) -> Option<Operation> {
    v.learners().iter().find_map(|&learner| {
        let k = v.reporter(learner)?;
        let removed = v.report(k).is_some_and(|(_, s)| s == NodeState::Removed);
        if k >= v.d.replicas || removed {
            return None;
        }
        let lost = v
            .voters()
            .iter()
            .copied()
            .find(|&old| !v.reported(old) && v.owner(old) == Some(k));
        Some(match lost {
            Some(old) => Operation::Replace { ordinal: k, old },
            None => Operation::ScaleUp { ordinal: k },
        })
    })
}

/// `None` when the operation is done or abandoned; otherwise its next step, preceded by
/// recording it when status does not hold it yet. A block before the first mutation
/// records nothing and leaves status as it was.
fn drive(v: &View, op: Operation, recorded: Option<&Operation>) -> Option<Decision> {
    let started = recorded == Some(&op);
    match advance(v, &op) {
        Outcome::Done | Outcome::Abandon => None,
        Outcome::Blocked(blocked) if started => Some(Decision::blocked(blocked, Some(op))),
        Outcome::Blocked(blocked) => Some(Decision::blocked(blocked, recorded.cloned())),
        _ if !started => Some(Decision::step(Step::RecordOperation(op.clone()), Some(op))),
        Outcome::Act(step) => Some(Decision::step(step, Some(op))),
        Outcome::Wait(reason) => Some(Decision::wait(reason, Some(op))),
    }
}

fn advance(v: &View, op: &Operation) -> Outcome {
    match *op {
        // Reaching here means bootstrap.rs found the cluster bootstrapped.
        Operation::Bootstrap => Outcome::Done,
        Operation::ScaleUp { ordinal } => scale_up::advance(v, ordinal),
        Operation::ScaleDown { ordinal, node_id } => scale_down::advance(v, ordinal, node_id),
        Operation::Replace { ordinal, old } => replace::advance(v, ordinal, old),
        Operation::Upgrade { ordinal, node_id } => upgrade::advance(v, ordinal, node_id),
    }
}
