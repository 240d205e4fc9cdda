//! Planner properties over random specs and plausible-but-damaged observations: dead,
//! unreachable, missing and terminating pods, lost and removed volumes, learners, joint and
//! uncommitted configurations, outdated templates, stale operations in status.
//!
//! Health is recomputed here independently of the planner: a node is healthy when a
//! running, non-terminating pod answers with its id and it is not removed.

mod planner_support;

/// Named `planner` so `cargo test -p kuberaft-operator planner` selects these tests.
mod planner {
    use std::collections::BTreeSet;

    use crate::planner_support::{IMAGE, NEW_IMAGE, id, info, pod, template};
    use kuberaft_operator::planner::{
        BlockedCode, Desired, NodeId, NodeReport, NodeState, Observed, ObservedStatefulSet,
        Operation, Plan, RaftView, ReclaimPolicy, Step, plan,
    };
    use proptest::prelude::*;

    #[derive(Clone, Copy, Debug)]
    enum Fate {
        Healthy,
        Down,
        Unreachable,
        Lost,
        Removed,
        Missing,
        Terminating,
    }

    fn fate() -> impl Strategy<Value = Fate> {
        prop_oneof![
            24 => Just(Fate::Healthy),
            1 => Just(Fate::Down),
            1 => Just(Fate::Unreachable),
            1 => Just(Fate::Lost),
            1 => Just(Fate::Removed),
            1 => Just(Fate::Missing),
            1 => Just(Fate::Terminating),
        ]
    }

    fn operation() -> impl Strategy<Value = Option<Operation>> {
        prop::option::weighted(
            0.4,
            prop_oneof![
                Just(Operation::Bootstrap),
                (0u32..7).prop_map(|ordinal| Operation::ScaleUp { ordinal }),
                (0u32..7).prop_map(|k| Operation::ScaleDown {
                    ordinal: Some(k),
                    node_id: id(k)
                }),
                (0u32..7).prop_map(|k| Operation::Replace {
                    ordinal: k,
                    old: id(k)
                }),
                (0u32..7).prop_map(|k| Operation::Upgrade {
                    ordinal: k,
                    node_id: id(k)
                }),
            ],
        )
    }

    fn desired() -> impl Strategy<Value = Desired> {
        let replicas = prop_oneof![1 => Just(0u32), 20 => 1u32..7];
        let snapshot = prop_oneof![6 => Just(0u8), 1 => 1u8..3];
        (
            replicas,
            any::<bool>(),
            0u32..3,
            prop::bool::weighted(0.1),
            snapshot,
            any::<bool>(),
        )
            .prop_map(|(replicas, new_image, min_ft, paused, snap, retain)| {
                let mut d = Desired::new(replicas, if new_image { NEW_IMAGE } else { IMAGE });
                d.min_failure_tolerance = min_ft;
                d.paused = paused;
                d.snapshot_request_id = (snap > 0).then(|| format!("r{snap}"));
                if retain {
                    d.reclaim_policy = ReclaimPolicy::Retain;
                }
                d
            })
    }

    /// Shape of the configuration: voters on ordinals 0..voters, maybe a learner (joining or
    /// replacing a voter), maybe joint.
    #[derive(Clone, Debug)]
    struct Shape {
        voters: u32,
        learner: Option<u32>,
        joint: bool,
        pending: bool,
        leader: Option<u32>,
        phantom: bool,
        lags: Vec<u64>,
    }

    fn shape() -> impl Strategy<Value = Shape> {
        (
            1u32..6,
            prop::option::weighted(0.3, 0u32..8),
            prop::bool::weighted(0.1),
            prop::bool::weighted(0.1),
            prop::option::weighted(0.9, 0u32..5),
            prop::bool::weighted(0.1),
            prop::collection::vec(prop_oneof![3 => 0u64..50, 1 => 50u64..400], 8),
        )
            .prop_map(
                |(voters, learner, joint, pending, leader, phantom, lags)| Shape {
                    voters,
                    // On an ordinal of its own, or on a voter's (which then lost its volume).
                    learner: learner.map(|x| x % (voters + 3)),
                    joint,
                    pending,
                    leader,
                    phantom,
                    lags,
                },
            )
    }

    fn case() -> impl Strategy<Value = (Desired, Observed)> {
        (
            desired(),
            shape(),
            prop::collection::vec(fate(), 8),
            prop::collection::vec(prop::bool::weighted(0.15), 8),
            prop::option::weighted(
                0.97,
                (
                    prop_oneof![8 => Just(0i32), 1 => -2i32..=2],
                    prop::bool::weighted(0.1),
                ),
            ),
            (operation(), prop::collection::btree_set(0u32..8, 0..8)),
            (
                prop::bool::weighted(0.95),
                prop::bool::weighted(0.95),
                0u8..3,
                0u8..2,
            ),
            any::<bool>(),
        )
            .prop_map(
                |(d, shape, fates, outdated, sts, (op, pvcs), seen, adopt)| {
                    let (d, mut o) = build(d, &shape, &fates, &outdated, sts, op, pvcs, seen);
                    // Half the time, status already holds the operation the planner would start,
                    // so the cases reach its later steps rather than stopping at RecordOperation.
                    if let (true, Step::RecordOperation(op)) = (adopt, plan(&d, &o).step) {
                        o.operation = Some(op);
                    }
                    (d, o)
                },
            )
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        desired: Desired,
        shape: &Shape,
        fates: &[Fate],
        outdated: &[bool],
        sts: Option<(i32, bool)>,
        operation: Option<Operation>,
        pvcs: BTreeSet<u32>,
        (raft_seen, cluster_id, last, blocked): (bool, bool, u8, u8),
    ) -> (Desired, Observed) {
        let learner = shape.learner.map(|k| (0xc0 + u64::from(k), k));
        let mut raft = RaftView {
            leader: shape.leader.map(|i| id(i % shape.voters)),
            term: 5,
            commit_index: 1000,
            config_index: if shape.pending { 1001 } else { 900 },
            ..RaftView::default()
        };
        for k in 0..shape.voters {
            raft.config.voters.insert(id(k));
            let lag = shape.lags[k as usize];
            raft.members.insert(id(k), info(k, 1000 - lag, lag));
        }
        if shape.phantom {
            raft.config.voters.insert(0xff);
        }
        if let Some((node, k)) = learner {
            raft.config.learners.insert(node);
            raft.members.insert(node, info(k, 1000, shape.lags[7]));
        }
        if shape.joint && shape.voters > 1 {
            raft.config.outgoing_voters = raft.config.voters.clone();
            raft.config.voters.remove(&id(shape.voters - 1));
        }
        let top = learner
            .map_or(shape.voters, |(_, k)| k + 1)
            .max(shape.voters + 1);
        let mut pods = Vec::new();
        for k in 0..top.min(8) {
            let base = match learner {
                Some((node, lk)) if lk == k => node,
                _ if k < shape.voters => id(k),
                _ => 0xd0 + u64::from(k),
            };
            let initial = if k < shape.voters || learner.is_some_and(|(_, lk)| lk == k) {
                NodeState::Member
            } else {
                NodeState::Uninitialized
            };
            let mut p = pod(
                k,
                NodeReport::Reachable {
                    node_id: base,
                    state: initial,
                },
            );
            if outdated[k as usize] {
                p.template = template(if desired.image == IMAGE {
                    NEW_IMAGE
                } else {
                    IMAGE
                });
            } else {
                p.template = desired.template();
            }
            match fates[k as usize] {
                Fate::Healthy => {}
                Fate::Down => (p.running, p.node) = (false, NodeReport::Unreachable),
                Fate::Unreachable => p.node = NodeReport::Unreachable,
                Fate::Lost => {
                    p.node = NodeReport::Reachable {
                        node_id: 0xe0 + u64::from(k),
                        state: NodeState::Uninitialized,
                    }
                }
                Fate::Removed => {
                    p.node = NodeReport::Reachable {
                        node_id: base,
                        state: NodeState::Removed,
                    }
                }
                Fate::Missing => continue,
                Fate::Terminating => p.terminating = true,
            }
            pods.push(p);
        }
        // Mostly the size that hosts every generated pod, sometimes off by one or two.
        let statefulset = sts.map(|(offset, stale)| ObservedStatefulSet {
            replicas: top.min(8).saturating_add_signed(offset),
            template: if stale {
                template("old")
            } else {
                desired.template()
            },
            storage_size: None,
        });
        let observed = Observed {
            statefulset,
            pods,
            pvcs,
            raft: raft_seen.then_some(raft),
            operation,
            last_snapshot_request_id: (last > 0).then(|| format!("r{last}")),
            cluster_id: cluster_id.then(|| "c-1".to_owned()),
            blocked: (blocked > 0).then_some(BlockedCode::QuorumLost),
        };
        (desired, observed)
    }

    // ---- an independent model of health ------------------------------------------------

    fn healthy(o: &Observed, node: NodeId) -> bool {
        o.pods.iter().any(|p| {
            p.running
                && !p.terminating
                && matches!(p.node, NodeReport::Reachable { node_id, state }
                    if node_id == node && state != NodeState::Removed)
        })
    }

    fn healthy_majority(o: &Observed, voters: &BTreeSet<NodeId>) -> bool {
        !voters.is_empty() && voters.iter().filter(|&&v| healthy(o, v)).count() > voters.len() / 2
    }

    fn quorum(o: &Observed) -> bool {
        let Some(r) = &o.raft else { return false };
        healthy_majority(o, &r.config.voters)
            && (r.config.outgoing_voters.is_empty()
                || healthy_majority(o, &r.config.outgoing_voters))
    }

    fn pod_node(o: &Observed, name: &str) -> Option<NodeId> {
        o.pods
            .iter()
            .find(|p| p.name == name)
            .and_then(|p| match p.node {
                NodeReport::Reachable { node_id, .. } => Some(node_id),
                NodeReport::Unreachable => None,
            })
    }

    /// The voters after `step`, if it changes them.
    fn voters_after(r: &RaftView, step: &Step) -> Option<BTreeSet<NodeId>> {
        let mut v = r.config.voters.clone();
        match *step {
            Step::Promote { node_id } => v.insert(node_id),
            Step::RemoveMember { node_id } => v.remove(&node_id),
            Step::ReplaceMember { old, new } => v.remove(&old) && v.insert(new),
            _ => return None,
        };
        Some(v)
    }

    fn config_members(r: &RaftView) -> BTreeSet<NodeId> {
        let c = &r.config;
        c.voters
            .iter()
            .chain(&c.outgoing_voters)
            .chain(&c.learners)
            .copied()
            .collect()
    }

    proptest! {
        #![proptest_config(crate::planner_support::cases(2000))]

        #[test]
        fn no_step_leaves_fewer_healthy_voters_than_a_majority((d, o) in case()) {
            let p = plan(&d, &o);
            if p.step.is_membership_change() {
                let r = o.raft.as_ref().expect("membership change without a Raft view");
                prop_assert!(quorum(&o), "membership change without quorum: {:?}", p.step);
                if let Some(after) = voters_after(r, &p.step) {
                    prop_assert!(healthy_majority(&o, &after), "{:?} leaves {after:?}", p.step);
                }
            }
            if let Step::RestartPod { pod } = &p.step {
                let r = o.raft.as_ref();
                let voter = pod_node(&o, pod)
                    .filter(|&n| healthy(&o, n) && r.is_some_and(|r| r.config.voters.contains(&n)));
                if let (Some(node), Some(r)) = (voter, r) {
                    let voters = &r.config.voters;
                    let rest: BTreeSet<_> = voters.iter().copied().filter(|&v| v != node).collect();
                    let all_healthy = voters.iter().all(|&v| healthy(&o, v));
                    let survives = rest.iter().filter(|&&v| healthy(&o, v)).count() > voters.len() / 2;
                    prop_assert!(survives || (voters.len() <= 2 && all_healthy), "{:?}", p.step);
                }
            }
            if let Step::TransferLeadership { from, to } = p.step {
                let r = o.raft.as_ref().expect("transfer without a Raft view");
                prop_assert_eq!(r.leader, Some(from));
                prop_assert!(r.config.voters.contains(&to) && healthy(&o, to));
            }
        }

        #[test]
        fn never_starts_a_membership_change_while_one_is_in_flight((d, o) in case()) {
            let p = plan(&d, &o);
            let Some(r) = &o.raft else { return Ok(()) };
            let joint = !r.config.outgoing_voters.is_empty() || r.config_index > r.commit_index;
            if joint {
                prop_assert!(!p.step.is_membership_change(), "{:?} during joint/pending", p.step);
            }
            if !r.config.learners.is_empty() {
                let learners = &r.config.learners;
                let completes = match p.step {
                    Step::Promote { node_id } | Step::RemoveMember { node_id } => learners.contains(&node_id),
                    Step::ReplaceMember { new, .. } => learners.contains(&new),
                    _ => !p.step.is_membership_change(),
                };
                prop_assert!(completes, "{:?} while a learner is pending", p.step);
            }
        }

        #[test]
        fn never_removes_the_leader((d, o) in case()) {
            let p = plan(&d, &o);
            let leader = o.raft.as_ref().and_then(|r| r.leader);
            match p.step {
                Step::RemoveMember { node_id } => prop_assert_ne!(Some(node_id), leader),
                Step::ReplaceMember { old, .. } => prop_assert_ne!(Some(old), leader),
                _ => {}
            }
        }

        #[test]
        fn paused_never_mutates((mut d, o) in case()) {
            d.paused = true;
            let p = plan(&d, &o);
            prop_assert!(!p.step.is_mutating(), "{:?}", p.step);
            prop_assert!(p.events.is_empty());
        }

        #[test]
        fn plan_is_deterministic((d, o) in case()) {
            let first = plan(&d, &o);
            prop_assert_eq!(&first, &plan(&d.clone(), &o.clone()));
            let mut shuffled = o.clone();
            shuffled.pods.reverse();
            prop_assert_eq!(&first, &plan(&d, &shuffled));
        }

        #[test]
        fn never_destroys_a_members_pod_or_volume((d, o) in case()) {
            let p = plan(&d, &o);
            let members = o.raft.as_ref().map(config_members).unwrap_or_default();
            match p.step {
                Step::SetStatefulSetReplicas(n) => {
                    let current = o.statefulset.as_ref().map_or(0, |s| s.replicas);
                    if n < current {
                        prop_assert!(n >= d.replicas, "shrank to {n} under spec {}", d.replicas);
                        for pod in o.pods.iter().filter(|p| p.ordinal >= n) {
                            let runs_member = matches!(pod.node,
                                NodeReport::Reachable { node_id, .. } if members.contains(&node_id));
                            prop_assert!(!runs_member, "shrink drops {}", pod.name);
                        }
                    }
                }
                Step::DeletePvc { ordinal } => {
                    prop_assert_eq!(d.reclaim_policy, ReclaimPolicy::Delete);
                    let pod = o.pods.iter().find(|p| p.ordinal == ordinal);
                    let runs_member = pod.is_some_and(|p| matches!(p.node,
                        NodeReport::Reachable { node_id, .. } if members.contains(&node_id)));
                    prop_assert!(!runs_member, "deletes the volume of a member on {ordinal}");
                }
                Step::Bootstrap { .. } => {
                    prop_assert!(o.cluster_id.is_none() && o.raft.is_none());
                }
                _ => {}
            }
        }

        #[test]
        fn plan_is_consistent_with_itself((d, o) in case()) {
            let p: Plan = plan(&d, &o);
            if let Step::RecordOperation(op) = &p.step {
                prop_assert_eq!(Some(op), p.operation.as_ref());
                prop_assert_ne!(Some(op), o.operation.as_ref());
            }
            if let Some(blocked) = &p.blocked {
                prop_assert!(!p.step.is_mutating());
                prop_assert!(!blocked.message.is_empty());
            }
            if d.replicas > 0 && p.step.is_mutating() && !matches!(p.step, Step::RecordOperation(_)) {
                prop_assert!(p.blocked.is_none());
            }
        }
    }
}
