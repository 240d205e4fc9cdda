//! The operation in flight between the planner and `status.operation`. Node ids are decimal
//! strings in status (random 64-bit ids exceed what JSON numbers carry exactly).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::build::pod_name;
use crate::crd::{Operation as StatusOperation, OperationKind};
use crate::planner::Operation;

/// Reads `status.operation` back. `None` (the operation is forgotten and the planner
/// chooses afresh) when a field the kind needs is missing or malformed, which only a hand
/// edit of status produces.
pub fn operation_from_status(op: &StatusOperation) -> Option<Operation> {
    let ordinal = op.ordinal.and_then(|o| u32::try_from(o).ok());
    let node_id = op.node_id.as_deref().and_then(|n| n.parse::<u64>().ok());
    let parsed = match op.kind {
        OperationKind::Bootstrap => Some(Operation::Bootstrap),
        OperationKind::ScaleUp => ordinal.map(|ordinal| Operation::ScaleUp { ordinal }),
        OperationKind::ScaleDown => {
            node_id.map(|node_id| Operation::ScaleDown { ordinal, node_id })
        }
        OperationKind::Replace => ordinal
            .zip(node_id)
            .map(|(ordinal, old)| Operation::Replace { ordinal, old }),
        OperationKind::Upgrade => ordinal
            .zip(node_id)
            .map(|(ordinal, node_id)| Operation::Upgrade { ordinal, node_id }),
    };
    if parsed.is_none() {
        tracing::warn!(operation = ?op, "status.operation is malformed; choosing afresh");
    }
    parsed
}

/// `status.operation` for `op`. `started` carries over from `previous` when it records the
/// same operation, so status stays unchanged (and unwritten) while an operation waits.
pub fn operation_to_status(
    cluster: &str,
    op: &Operation,
    previous: Option<&StatusOperation>,
    step: &str,
    now: Time,
) -> StatusOperation {
    let (kind, ordinal, node_id) = match *op {
        Operation::Bootstrap => (OperationKind::Bootstrap, Some(0), None),
        Operation::ScaleUp { ordinal } => (OperationKind::ScaleUp, Some(ordinal), None),
        Operation::ScaleDown { ordinal, node_id } => {
            (OperationKind::ScaleDown, ordinal, Some(node_id))
        }
        Operation::Replace { ordinal, old } => (OperationKind::Replace, Some(ordinal), Some(old)),
        Operation::Upgrade { ordinal, node_id } => {
            (OperationKind::Upgrade, Some(ordinal), Some(node_id))
        }
    };
    let same = previous.filter(|p| operation_from_status(p).as_ref() == Some(op));
    StatusOperation {
        kind,
        target: ordinal.map(|k| pod_name(cluster, k)),
        ordinal: ordinal.map(|k| i32::try_from(k).unwrap_or(i32::MAX)),
        node_id: node_id.map(|n| n.to_string()),
        started: same.map_or(now, |p| p.started.clone()),
        step: step.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn every_operation_round_trips_through_status() {
        let ops = [
            Operation::Bootstrap,
            Operation::ScaleUp { ordinal: 3 },
            Operation::ScaleDown {
                ordinal: Some(4),
                node_id: u64::MAX,
            },
            Operation::ScaleDown {
                ordinal: None,
                node_id: 0xa2,
            },
            Operation::Replace {
                ordinal: 1,
                old: 0xa1,
            },
            Operation::Upgrade {
                ordinal: 2,
                node_id: 0xa2,
            },
        ];
        for op in ops {
            let s = operation_to_status("demo", &op, None, "Wait", t(10));
            assert_eq!(operation_from_status(&s), Some(op.clone()), "{s:?}");
        }
    }

    #[test]
    fn status_names_the_target_pod_and_keeps_big_ids_exact() {
        let op = Operation::ScaleDown {
            ordinal: Some(4),
            node_id: u64::MAX,
        };
        let s = operation_to_status("demo", &op, None, "RemoveMember", t(10));
        assert_eq!(s.kind, OperationKind::ScaleDown);
        assert_eq!(s.target.as_deref(), Some("demo-4"));
        assert_eq!(s.ordinal, Some(4));
        assert_eq!(s.node_id.as_deref(), Some("18446744073709551615"));
        assert_eq!(s.step, "RemoveMember");
    }

    #[test]
    fn started_survives_while_the_same_operation_goes_on() {
        let op = Operation::ScaleUp { ordinal: 3 };
        let first = operation_to_status("demo", &op, None, "RecordOperation", t(10));
        let later = operation_to_status("demo", &op, Some(&first), "AddLearner", t(99));
        assert_eq!(later.started, t(10));
        let other = Operation::ScaleUp { ordinal: 4 };
        let next = operation_to_status("demo", &other, Some(&first), "Wait", t(99));
        assert_eq!(next.started, t(99));
    }

    #[test]
    fn malformed_status_is_forgotten() {
        let mut s = operation_to_status(
            "demo",
            &Operation::Replace { ordinal: 1, old: 7 },
            None,
            "Wait",
            t(1),
        );
        s.node_id = Some("not-a-number".into());
        assert_eq!(operation_from_status(&s), None);
        s.kind = OperationKind::ScaleUp;
        s.ordinal = Some(-1);
        assert_eq!(operation_from_status(&s), None);
    }
}
