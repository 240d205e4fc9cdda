//! One reconcile of one RaftCluster, stage by stage: validate → observe → plan → apply ONE
//! step → status → Events. Each stage is its own module; this file only orders them.
//!
//! Crash safety: the planner returns `RecordOperation` as the step before an operation's
//! first mutation, and the status stage writes it; only a later reconcile, which reads it
//! back from status, may mutate. Killed anywhere, the operator resumes from status.
//!
//! Besides the plan's one step, a reconcile may repair the two Services and recompute the
//! PodDisruptionBudget (only when they drifted). Neither touches the Raft cluster or a pod,
//! and the budget must follow health at once: a voter that just died lowers the evictions
//! a node drain may make, whatever step the plan is on.

use kube::runtime::controller::Action;

use super::admin::MemberAdmin;
use super::apply::{Applied, Target, apply_step};
use super::context::Context;
use super::error::Result;
use super::{convert, events, objects, observe, status};
use crate::build::ClusterIdentity;
use crate::crd::{BlockedOn, RaftCluster, validate, validate_name};
use crate::planner::{self, Event, EventType, Plan, Reason, Step};

/// What one reconcile did, for logs and metrics.
#[derive(Debug)]
pub struct Cycle {
    /// The step applied (`Wait` and `None` included).
    pub step: &'static str,
    pub action: Action,
}

pub async fn reconcile_cluster<A: MemberAdmin>(
    cluster: &RaftCluster,
    ctx: &Context<A>,
) -> Result<Cycle> {
    let id = ClusterIdentity::of(cluster)?;
    let previous = cluster.status.clone().unwrap_or_default();
    let generation = cluster.metadata.generation;

    // What the schema cannot express: refused before anything is observed or touched.
    if let Some(blocked) = invalid(cluster, &id) {
        let next = status::invalid_spec(&previous, &blocked, generation, ctx.now());
        status::write(&ctx.client, &id, &previous, &next).await?;
        // Announced when the refusal starts or its message changes (another field is
        // now wrong), not on every reconcile while it lasts.
        if previous.blocked_on.as_ref() != Some(&blocked) {
            let event = Event {
                kind: EventType::Warning,
                reason: Reason::InvalidSpec,
                message: blocked.message.clone(),
            };
            events::publish(ctx, cluster, "Validate", &[event]).await;
        }
        return Ok(Cycle {
            step: "Wait",
            action: Action::requeue(ctx.settings.requeue_blocked),
        });
    }

    let world = observe::observe(&id, ctx).await?;
    let observed = convert::observed(&id.name, &world, &previous);
    let desired = convert::desired(&cluster.spec);
    let plan = planner::plan(&desired, &observed);
    tracing::debug!(cluster = %id.name, step = ?plan.step, operation = ?plan.operation, "planned");

    // The Services and the budget exist from the StatefulSet's creation on. The budget
    // tracks health even while paused: it only ever protects.
    if world.statefulset.is_some() || matches!(plan.step, Step::CreateStatefulSet { .. }) {
        let written =
            objects::sync_owned(&ctx.client, &id, &world, &plan.health, !desired.paused).await?;
        for what in written {
            tracing::info!(cluster = %id.name, %what, "applied");
        }
    }

    let target = Target {
        id: &id,
        cluster,
        world: &world,
        observed: &observed,
    };
    let applied: Applied = apply_step(ctx, &target, &plan.step).await?;
    if plan.step.is_mutating() {
        tracing::info!(
            cluster = %id.name, namespace = %id.namespace, step = plan.step.name(),
            detail = ?plan.step, operation = ?plan.operation, "applied step"
        );
    }

    let next = status::compute(&status::StatusInput {
        id: &id,
        generation,
        paused: desired.paused,
        previous: &previous,
        world: &world,
        observed: &observed,
        plan: &plan,
        applied: &applied,
        now: ctx.now(),
    });
    status::write(&ctx.client, &id, &previous, &next).await?;
    events::publish(ctx, cluster, plan.step.name(), &plan.events).await;
    ctx.metrics.cluster(&id.namespace, &id.name, &plan.health);

    Ok(Cycle {
        step: plan.step.name(),
        action: Action::requeue(requeue(ctx, &plan)),
    })
}

/// Soon while something is moving (Admin status is polled, not watched), later when
/// blocked, rarely when idle: owned objects' watch events trigger reconciles anyway.
fn requeue<A>(ctx: &Context<A>, plan: &Plan) -> std::time::Duration {
    let s = &ctx.settings;
    if plan.blocked.is_some() {
        s.requeue_blocked
    } else if plan.operation.is_some() || !matches!(plan.step, Step::None) {
        s.requeue_busy
    } else {
        s.requeue_idle
    }
}

/// `status.blockedOn` for a spec or name the operator must not act on.
fn invalid(cluster: &RaftCluster, id: &ClusterIdentity) -> Option<BlockedOn> {
    let mut errors = validate(&cluster.spec).err().unwrap_or_default();
    if let Err(e) = validate_name(&id.name) {
        errors.insert(0, e);
    }
    (!errors.is_empty()).then(|| BlockedOn::invalid_spec(&errors))
}
