//! The Available, Progressing and Degraded conditions. `lastTransitionTime` moves only when
//! a condition's status flips, so a status that says the same thing is written once.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::crd::{CONDITION_AVAILABLE, CONDITION_DEGRADED, CONDITION_PROGRESSING};
use crate::planner::{Health, Operation, Plan, Step};

/// What the conditions are computed from.
#[derive(Debug)]
pub struct ConditionInput<'a> {
    pub plan: &'a Plan,
    pub paused: bool,
    pub generation: Option<i64>,
    pub now: Time,
}

/// The three conditions, carrying each transition time over from `previous` when the
/// status did not flip.
pub fn conditions(input: &ConditionInput<'_>, previous: &[Condition]) -> Vec<Condition> {
    let ConditionInput {
        plan,
        paused,
        generation,
        ..
    } = input;
    let h = plan.health;
    let mut out = vec![
        available(&h),
        progressing(plan, *paused),
        degraded(plan, &h),
    ];
    for c in &mut out {
        c.observed_generation = *generation;
        c.last_transition_time = previous
            .iter()
            .find(|p| p.type_ == c.type_ && p.status == c.status)
            .map_or_else(|| input.now.clone(), |p| p.last_transition_time.clone());
    }
    out
}

fn condition(type_: &str, status: bool, reason: &str, message: String) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: if status { "True" } else { "False" }.to_owned(),
        reason: reason.to_owned(),
        message,
        last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
        observed_generation: None,
    }
}

fn available(h: &Health) -> Condition {
    let majority = h.voters / 2 + 1;
    let msg = format!(
        "{} of {} voters healthy, a majority needs {majority}",
        h.healthy_voters, h.voters
    );
    if h.voters == 0 {
        condition(
            CONDITION_AVAILABLE,
            false,
            "NotBootstrapped",
            "no Raft configuration observed yet".to_owned(),
        )
    } else if h.healthy_voters >= majority {
        condition(CONDITION_AVAILABLE, true, "QuorumHealthy", msg)
    } else {
        condition(CONDITION_AVAILABLE, false, "QuorumLost", msg)
    }
}

fn progressing(plan: &Plan, paused: bool) -> Condition {
    if let Some(b) = &plan.blocked {
        return condition(
            CONDITION_PROGRESSING,
            false,
            b.code.as_str(),
            b.message.clone(),
        );
    }
    if paused {
        return condition(
            CONDITION_PROGRESSING,
            false,
            "Paused",
            "spec.paused is set".to_owned(),
        );
    }
    let doing = match &plan.step {
        Step::Wait { reason } => reason.to_string(),
        step => step.name().to_owned(),
    };
    match &plan.operation {
        Some(op) => condition(CONDITION_PROGRESSING, true, operation_reason(op), doing),
        None if plan.step.is_mutating() => {
            condition(CONDITION_PROGRESSING, true, plan.step.name(), doing)
        }
        None => condition(
            CONDITION_PROGRESSING,
            false,
            "Idle",
            "the cluster matches its spec".to_owned(),
        ),
    }
}

fn degraded(plan: &Plan, h: &Health) -> Condition {
    if let Some(b) = &plan.blocked {
        return condition(CONDITION_DEGRADED, true, b.code.as_str(), b.message.clone());
    }
    if h.healthy_voters < h.voters {
        return condition(
            CONDITION_DEGRADED,
            true,
            "MemberUnhealthy",
            format!(
                "{} of {} voters unhealthy",
                h.voters - h.healthy_voters,
                h.voters
            ),
        );
    }
    if let Some(Operation::Replace { ordinal, .. }) = &plan.operation {
        return condition(
            CONDITION_DEGRADED,
            true,
            "MemberReplacing",
            format!("replacing the member at ordinal {ordinal}, which lost its volume"),
        );
    }
    condition(
        CONDITION_DEGRADED,
        false,
        "Healthy",
        "every voter is healthy".to_owned(),
    )
}

fn operation_reason(op: &Operation) -> &'static str {
    match op {
        Operation::Bootstrap => "Bootstrap",
        Operation::ScaleUp { .. } => "ScaleUp",
        Operation::ScaleDown { .. } => "ScaleDown",
        Operation::Replace { .. } => "Replace",
        Operation::Upgrade { .. } => "Upgrade",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planner::{Blocked, BlockedCode, Phase, WaitReason};

    fn t(s: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(s).unwrap())
    }

    fn plan(step: Step, op: Option<Operation>, health: Health) -> Plan {
        Plan {
            step,
            phase: Phase::Running,
            blocked: None,
            operation: op,
            events: vec![],
            health,
        }
    }

    fn healthy(voters: u32, ok: u32) -> Health {
        Health {
            voters,
            healthy_voters: ok,
            learners: 0,
            failure_tolerance: ok.saturating_sub(voters / 2 + 1),
        }
    }

    fn get<'a>(cs: &'a [Condition], t: &str) -> &'a Condition {
        cs.iter().find(|c| c.type_ == t).unwrap()
    }

    #[test]
    fn steady_cluster_is_available_idle_and_healthy() {
        let p = plan(Step::None, None, healthy(3, 3));
        let input = ConditionInput {
            plan: &p,
            paused: false,
            generation: Some(4),
            now: t(100),
        };
        let cs = conditions(&input, &[]);
        let a = get(&cs, CONDITION_AVAILABLE);
        assert_eq!(
            (a.status.as_str(), a.reason.as_str()),
            ("True", "QuorumHealthy")
        );
        assert_eq!(a.observed_generation, Some(4));
        assert_eq!(get(&cs, CONDITION_PROGRESSING).reason, "Idle");
        assert_eq!(get(&cs, CONDITION_DEGRADED).status, "False");
    }

    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let p = plan(Step::None, None, healthy(3, 3));
        let first = conditions(
            &ConditionInput {
                plan: &p,
                paused: false,
                generation: None,
                now: t(100),
            },
            &[],
        );
        let p2 = plan(
            Step::Wait {
                reason: WaitReason::LearnerCatchingUp { node_id: 9 },
            },
            Some(Operation::ScaleUp { ordinal: 3 }),
            healthy(3, 2),
        );
        let second = conditions(
            &ConditionInput {
                plan: &p2,
                paused: false,
                generation: None,
                now: t(200),
            },
            &first,
        );
        // Still available (2 of 3): time kept. Progressing and Degraded flipped: time moved.
        assert_eq!(
            get(&second, CONDITION_AVAILABLE).last_transition_time,
            t(100)
        );
        let prog = get(&second, CONDITION_PROGRESSING);
        assert_eq!(
            (prog.status.as_str(), prog.reason.as_str()),
            ("True", "ScaleUp")
        );
        assert_eq!(prog.message, "waiting for learner 9 to catch up");
        assert_eq!(prog.last_transition_time, t(200));
        let deg = get(&second, CONDITION_DEGRADED);
        assert_eq!(
            (deg.reason.as_str(), deg.last_transition_time.clone()),
            ("MemberUnhealthy", t(200))
        );
    }

    #[test]
    fn blocked_stops_progress_and_degrades() {
        let mut p = plan(
            Step::Wait {
                reason: WaitReason::Blocked(BlockedCode::WouldLoseQuorum),
            },
            None,
            healthy(3, 2),
        );
        p.blocked = Some(Blocked {
            code: BlockedCode::WouldLoseQuorum,
            message: "no".into(),
        });
        let cs = conditions(
            &ConditionInput {
                plan: &p,
                paused: false,
                generation: None,
                now: t(1),
            },
            &[],
        );
        let prog = get(&cs, CONDITION_PROGRESSING);
        assert_eq!(
            (prog.status.as_str(), prog.reason.as_str()),
            ("False", "WouldLoseQuorum")
        );
        assert_eq!(get(&cs, CONDITION_DEGRADED).reason, "WouldLoseQuorum");
        let quorum_lost = conditions(
            &ConditionInput {
                plan: &plan(Step::None, None, healthy(3, 1)),
                paused: false,
                generation: None,
                now: t(1),
            },
            &[],
        );
        assert_eq!(get(&quorum_lost, CONDITION_AVAILABLE).reason, "QuorumLost");
    }
}
