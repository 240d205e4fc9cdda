//! Stage 5, Events: the planner's, published with kube-runtime's Recorder once the step is
//! applied and status written. The planner already limits them to transitions (a step
//! applied, a block that started or ended). A failed publish is logged, never retried:
//! repeating the step to repeat its Event would be worse than a missing Event.

use kube::Resource;
use kube::runtime::events::{Event as KubeEvent, EventType as KubeEventType};

use super::admin::MemberAdmin;
use super::context::Context;
use crate::crd::RaftCluster;
use crate::planner::{Event, EventType};

/// Publishes `events` about `cluster`; `action` is what the operator did (the step name).
pub async fn publish<A: MemberAdmin>(
    ctx: &Context<A>,
    cluster: &RaftCluster,
    action: &str,
    events: &[Event],
) {
    let reference = cluster.object_ref(&());
    for e in events {
        let event = to_kube(e, action);
        if let Err(err) = ctx.recorder.publish(&event, &reference).await {
            tracing::warn!(reason = e.reason.as_str(), error = %err, "publishing an Event failed");
        }
    }
}

/// The planner's Event as kube-runtime's; the message becomes the note.
pub fn to_kube(e: &Event, action: &str) -> KubeEvent {
    KubeEvent {
        type_: match e.kind {
            EventType::Normal => KubeEventType::Normal,
            EventType::Warning => KubeEventType::Warning,
        },
        reason: e.reason.as_str().to_owned(),
        note: Some(e.message.clone()),
        action: action.to_owned(),
        secondary: None,
    }
}
