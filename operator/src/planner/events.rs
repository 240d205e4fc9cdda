//! Events, only on transitions: one per applied step that changes the cluster, and one when
//! the blocked code changes or quorum comes back (status remembers the last code, so a
//! block that lasts many reconciles is announced once).

use super::output::{Blocked, Event, EventType, Reason, Step};
use super::types::{BlockedCode, NodeId};
use super::view::View;

/// The Event announcing `step`, for the reconciler to emit once it is applied.
pub(super) fn for_step(v: &View, step: &Step) -> Option<Event> {
    let (reason, message) = match step {
        Step::Bootstrap { pod } => (
            Reason::Bootstrapped,
            format!("bootstrapped {pod} as a one-voter cluster"),
        ),
        Step::AddLearner { pod, node_id } => (
            Reason::LearnerAdded,
            format!("added {pod} (node {node_id:x}) as a learner"),
        ),
        Step::Promote { node_id } => (
            Reason::LearnerPromoted,
            format!("promoted {} to voter", who(v, *node_id)),
        ),
        Step::TransferLeadership { from, to } => (
            Reason::LeadershipTransferred,
            format!(
                "leadership handed from {} to {}",
                who(v, *from),
                who(v, *to)
            ),
        ),
        Step::RemoveMember { node_id } if v.learners().contains(node_id) => (
            Reason::LearnerRemoved,
            format!(
                "removed learner {} that will not be promoted",
                who(v, *node_id)
            ),
        ),
        Step::RemoveMember { node_id } => (
            Reason::MemberRemoved,
            format!("removed {} from the configuration", who(v, *node_id)),
        ),
        Step::ReplaceMember { old, new } => (
            Reason::MemberReplaced,
            format!("replaced lost node {old:x} by {}", who(v, *new)),
        ),
        Step::RestartPod { pod } => (
            Reason::PodRestarted,
            format!("deleted pod {pod} to restart it on the current template or volume"),
        ),
        Step::DeletePvc { ordinal } => (
            Reason::VolumeDeleted,
            format!("deleted the volume claim of ordinal {ordinal} (reclaimPolicy Delete)"),
        ),
        Step::Snapshot { request_id } => (
            Reason::SnapshotTaken,
            format!("snapshot request {request_id} sent to every member"),
        ),
        _ => return None,
    };
    Some(Event {
        kind: EventType::Normal,
        reason,
        message,
    })
}

/// Block and quorum Events, against the code status held before this reconcile.
pub(super) fn transitions(v: &View, blocked: Option<&Blocked>) -> Vec<Event> {
    let before = v.o.blocked;
    let now = blocked.map(|b| b.code);
    let mut events = Vec::new();
    if before == Some(BlockedCode::QuorumLost) && now != before && v.quorum_ok() {
        events.push(Event {
            kind: EventType::Normal,
            reason: Reason::QuorumRestored,
            message: format!(
                "{} of {} voters healthy again",
                v.healthy_in(v.voters()),
                v.voters().len()
            ),
        });
    }
    if let Some(blocked) = blocked.filter(|b| Some(b.code) != before) {
        events.push(Event {
            kind: EventType::Warning,
            reason: reason_for(blocked.code),
            message: blocked.message.clone(),
        });
    }
    events
}

fn reason_for(code: BlockedCode) -> Reason {
    match code {
        BlockedCode::InvalidSpec | BlockedCode::StorageSizeChanged => Reason::InvalidSpec,
        BlockedCode::QuorumLost => Reason::QuorumLost,
        BlockedCode::WouldLoseQuorum
        | BlockedCode::BelowMinFailureTolerance
        | BlockedCode::RemovedMemberVolume => Reason::ScaleBlocked,
    }
}

/// "node 2a (demo-1)" when the pod is known.
fn who(v: &View, id: NodeId) -> String {
    match v.owner(id) {
        Some(k) => format!("node {id:x} ({})", v.pod_name(k)),
        None => format!("node {id:x}"),
    }
}
