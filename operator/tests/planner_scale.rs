//! Planner tables: bootstrap, scale up and scale down, including operator restarts in the
//! middle of an operation. Each case is one hand-built observation and the exact plan.

mod planner_support;

/// Named `planner` so `cargo test -p kuberaft-operator planner` selects these tests.
mod planner {
    use crate::planner_support::{Cluster, id, pod, pod_name, removed, uninit};
    use kuberaft_operator::planner::{
        BlockedCode, EventType, Operation, Phase, Reason, ReclaimPolicy, Step, WaitReason,
    };

    fn reasons(c: &Cluster) -> Vec<Reason> {
        c.plan().events.iter().map(|e| e.reason).collect()
    }

    fn wait(reason: WaitReason) -> Step {
        Step::Wait { reason }
    }

    // ---- bootstrap ------------------------------------------------------------------------

    #[test]
    fn fresh_cluster_records_bootstrap_before_creating_anything() {
        let c = Cluster::empty(3);
        let p = c.plan();
        assert_eq!(p.step, Step::RecordOperation(Operation::Bootstrap));
        assert_eq!(p.operation, Some(Operation::Bootstrap));
        assert_eq!(p.phase, Phase::Pending);
        assert!(p.events.is_empty());
    }

    #[test]
    fn recorded_bootstrap_creates_a_one_pod_statefulset() {
        let c = Cluster::empty(3).recorded(Operation::Bootstrap);
        assert_eq!(c.step(), Step::CreateStatefulSet { replicas: 1 });
    }

    #[test]
    fn bootstrap_waits_for_pod_zero_then_bootstraps_it() {
        let mut c = Cluster::empty(3).recorded(Operation::Bootstrap);
        c.observed.statefulset = Cluster::healthy(1).observed.statefulset;
        assert_eq!(c.step(), wait(WaitReason::PodStarting { ordinal: 0 }));

        c.observed.pods.push(pod(0, uninit(id(0))));
        let p = c.plan();
        assert_eq!(p.step, Step::Bootstrap { pod: pod_name(0) });
        assert_eq!(p.phase, Phase::Bootstrapping);
        assert_eq!(reasons(&c), [Reason::Bootstrapped]);
    }

    #[test]
    fn restart_after_bootstrap_finishes_it_and_grows_by_one() {
        // Bootstrap applied, operator killed before clearing the operation.
        let c = Cluster::healthy(1)
            .replicas(3)
            .recorded(Operation::Bootstrap);
        let p = c.plan();
        assert_eq!(
            p.step,
            Step::RecordOperation(Operation::ScaleUp { ordinal: 1 })
        );
        assert_eq!(p.operation, Some(Operation::ScaleUp { ordinal: 1 }));
    }

    #[test]
    fn never_bootstraps_twice() {
        // Status says bootstrapped; every pod came back empty and nobody answers as a member.
        let mut c = Cluster::healthy(3);
        c.observed.raft = None;
        for k in 0..3 {
            c.set_pod(k, uninit(0xf0 + u64::from(k)));
        }
        let p = c.plan();
        assert_eq!(p.step, wait(WaitReason::Blocked(BlockedCode::QuorumLost)));
        assert_eq!(p.blocked.map(|b| b.code), Some(BlockedCode::QuorumLost));
    }

    #[test]
    fn deleted_statefulset_is_recreated_for_every_retained_volume() {
        let mut c = Cluster::healthy(3);
        c.observed.statefulset = None;
        c.observed.pods.clear();
        c.observed.raft = None;
        assert_eq!(c.step(), Step::CreateStatefulSet { replicas: 3 });
    }

    // ---- scale up ---------------------------------------------------------------------------

    #[test]
    fn scale_up_walks_statefulset_learner_catch_up_promote() {
        let mut c = Cluster::healthy(3).replicas(4);
        assert_eq!(
            c.step(),
            Step::RecordOperation(Operation::ScaleUp { ordinal: 3 })
        );
        assert_eq!(c.plan().phase, Phase::Scaling);

        c = c.recorded(Operation::ScaleUp { ordinal: 3 });
        assert_eq!(c.step(), Step::SetStatefulSetReplicas(4));

        c.sts_replicas(4);
        assert_eq!(c.step(), wait(WaitReason::PodStarting { ordinal: 3 }));

        c.set_pod(3, uninit(id(3)));
        assert_eq!(
            c.step(),
            Step::AddLearner {
                pod: pod_name(3),
                node_id: id(3)
            }
        );
        assert_eq!(reasons(&c), [Reason::LearnerAdded]);

        c.learner(id(3), 3, 500);
        assert_eq!(
            c.step(),
            wait(WaitReason::LearnerCatchingUp { node_id: id(3) })
        );

        // A short log: lag alone would pass a learner the leader never reached.
        let info = c.raft().members.get_mut(&id(3)).unwrap();
        (info.match_index, info.lag) = (Some(0), Some(7));
        assert_eq!(
            c.step(),
            wait(WaitReason::LearnerCatchingUp { node_id: id(3) })
        );

        c.lag(id(3), 10);
        assert_eq!(c.step(), Step::Promote { node_id: id(3) });
        assert_eq!(reasons(&c), [Reason::LearnerPromoted]);

        c.promote(id(3));
        let p = c.plan();
        assert_eq!(p.step, Step::None);
        assert_eq!(p.operation, None);
        assert_eq!(p.phase, Phase::Running);
    }

    #[test]
    fn scale_up_grows_one_member_at_a_time() {
        let mut c = Cluster::healthy(3)
            .replicas(5)
            .recorded(Operation::ScaleUp { ordinal: 3 });
        c.sts_replicas(4);
        c.learner(id(3), 3, 500);
        assert_eq!(
            c.step(),
            wait(WaitReason::LearnerCatchingUp { node_id: id(3) })
        );
    }

    #[test]
    fn learner_never_counts_toward_quorum() {
        let mut c = Cluster::healthy(3).replicas(4);
        c.sts_replicas(4);
        c.learner(id(3), 3, 0);
        c.kill(1);
        c.kill(2);
        let p = c.plan();
        assert_eq!(p.blocked.map(|b| b.code), Some(BlockedCode::QuorumLost));
        assert_eq!(p.phase, Phase::Degraded);
        assert_eq!(p.events[0].reason, Reason::QuorumLost);
        assert_eq!(p.events[0].kind, EventType::Warning);
    }

    #[test]
    fn restart_with_learner_added_but_status_lost_resumes_without_adding_again() {
        let mut c = Cluster::healthy(3).replicas(4);
        c.sts_replicas(4);
        c.learner(id(3), 3, 10);
        assert_eq!(
            c.step(),
            Step::RecordOperation(Operation::ScaleUp { ordinal: 3 })
        );
        let c = c.recorded(Operation::ScaleUp { ordinal: 3 });
        assert_eq!(c.step(), Step::Promote { node_id: id(3) });
    }

    #[test]
    fn pod_with_a_removed_members_volume_is_wiped_before_joining() {
        let mut c = Cluster::healthy(2).replicas(3);
        c.sts_replicas(3);
        c.set_pod(2, removed(0xb2));
        c.observed.pvcs.insert(2);
        assert_eq!(
            c.step(),
            Step::RecordOperation(Operation::ScaleUp { ordinal: 2 })
        );

        let mut c = c.recorded(Operation::ScaleUp { ordinal: 2 });
        assert_eq!(c.step(), Step::DeletePvc { ordinal: 2 });
        assert_eq!(reasons(&c), [Reason::VolumeDeleted]);

        c.observed.pvcs.remove(&2);
        assert_eq!(c.step(), Step::RestartPod { pod: pod_name(2) });
    }

    #[test]
    fn removed_members_volume_under_retain_blocks() {
        let mut c = Cluster::healthy(2).replicas(3);
        c.desired.reclaim_policy = ReclaimPolicy::Retain;
        c.sts_replicas(3);
        c.set_pod(2, removed(0xb2));
        c.observed.pvcs.insert(2);
        let p = c.plan();
        assert_eq!(
            p.blocked.map(|b| b.code),
            Some(BlockedCode::RemovedMemberVolume)
        );
        assert_eq!(p.phase, Phase::Blocked);
        assert_eq!(p.operation, None);
        assert_eq!(reasons(&c), [Reason::ScaleBlocked]);
    }

    // ---- scale down -------------------------------------------------------------------------

    fn scale_down_4() -> Operation {
        Operation::ScaleDown {
            ordinal: Some(4),
            node_id: id(4),
        }
    }

    #[test]
    fn scale_down_records_then_removes_the_highest_ordinal() {
        let c = Cluster::healthy(5).replicas(3);
        assert_eq!(c.step(), Step::RecordOperation(scale_down_4()));
        let c = c.recorded(scale_down_4());
        assert_eq!(c.step(), Step::RemoveMember { node_id: id(4) });
        assert_eq!(reasons(&c), [Reason::MemberRemoved]);
        assert_eq!(c.plan().phase, Phase::Scaling);
    }

    #[test]
    fn leader_victim_hands_leadership_to_the_most_caught_up_voter() {
        let mut c = Cluster::healthy(5).replicas(3).recorded(scale_down_4());
        c.raft().leader = Some(id(4));
        for k in [0, 1, 3] {
            c.lag(id(k), 10);
        }
        let p = c.plan();
        assert_eq!(
            p.step,
            Step::TransferLeadership {
                from: id(4),
                to: id(2)
            }
        );
        assert_eq!(p.events[0].reason, Reason::LeadershipTransferred);
    }

    #[test]
    fn after_removal_commits_statefulset_shrinks_then_pvc_goes() {
        let mut c = Cluster::healthy(5).replicas(3).recorded(scale_down_4());
        c.drop_member(id(4));
        c.set_pod(4, removed(id(4)));
        assert_eq!(c.step(), Step::SetStatefulSetReplicas(4));

        c.sts_replicas(4);
        assert_eq!(c.step(), wait(WaitReason::PodTerminating { ordinal: 4 }));

        c.remove_pod(4);
        assert_eq!(c.step(), Step::DeletePvc { ordinal: 4 });

        c.observed.pvcs.remove(&4);
        let next = Operation::ScaleDown {
            ordinal: Some(3),
            node_id: id(3),
        };
        assert_eq!(c.step(), Step::RecordOperation(next));
    }

    #[test]
    fn retain_keeps_the_pvc_and_moves_on() {
        let mut c = Cluster::healthy(5).replicas(3).recorded(scale_down_4());
        c.desired.reclaim_policy = ReclaimPolicy::Retain;
        c.drop_member(id(4));
        c.sts_replicas(4);
        c.remove_pod(4);
        let next = Operation::ScaleDown {
            ordinal: Some(3),
            node_id: id(3),
        };
        assert_eq!(c.step(), Step::RecordOperation(next));
    }

    #[test]
    fn restart_mid_removal_waits_for_the_commit() {
        let mut c = Cluster::healthy(5).replicas(3).recorded(scale_down_4());
        c.drop_member(id(4));
        c.raft().config_index = 120;
        assert_eq!(c.step(), wait(WaitReason::ConfigChangeCommitting));
    }

    #[test]
    fn scale_down_refused_when_the_rest_would_need_a_lagging_voter() {
        // demo-1 runs but is far behind: {demo-0, demo-1} could commit nothing until it
        // caught up, so demo-2 may not go yet.
        let mut c = Cluster::healthy(3).replicas(2);
        c.lag(id(1), 5_000);
        let p = c.plan();
        assert_eq!(
            p.step,
            wait(WaitReason::Blocked(BlockedCode::WouldLoseQuorum))
        );
        assert!(p.blocked.unwrap().message.contains("caught-up"));
        c.lag(id(1), 0);
        assert!(matches!(
            c.step(),
            Step::RecordOperation(Operation::ScaleDown { .. })
        ));
    }

    #[test]
    fn scale_down_refused_when_the_smaller_configuration_loses_its_majority() {
        let mut c = Cluster::healthy(3).replicas(2);
        c.kill(1);
        let p = c.plan();
        assert_eq!(
            p.step,
            wait(WaitReason::Blocked(BlockedCode::WouldLoseQuorum))
        );
        assert_eq!(p.phase, Phase::Blocked);
        assert_eq!(p.operation, None);
        assert_eq!(p.events.len(), 1);
        assert_eq!(
            (p.events[0].kind, p.events[0].reason),
            (EventType::Warning, Reason::ScaleBlocked)
        );

        // Still blocked on the next reconcile: no second Event.
        c.observed.blocked = Some(BlockedCode::WouldLoseQuorum);
        assert!(c.plan().events.is_empty());
    }

    #[test]
    fn scale_down_refused_below_min_failure_tolerance() {
        let mut c = Cluster::healthy(5).replicas(3);
        c.desired.min_failure_tolerance = 2;
        let p = c.plan();
        assert_eq!(
            p.blocked.map(|b| b.code),
            Some(BlockedCode::BelowMinFailureTolerance)
        );
    }

    #[test]
    fn removing_a_dead_victim_is_allowed_even_under_min_failure_tolerance() {
        let mut c = Cluster::healthy(5).replicas(4);
        c.desired.min_failure_tolerance = 2;
        c.kill(4);
        assert_eq!(c.step(), Step::RecordOperation(scale_down_4()));
    }

    #[test]
    fn spec_growing_back_abandons_a_scale_down_not_yet_applied() {
        let c = Cluster::healthy(5).recorded(scale_down_4());
        let p = c.plan();
        assert_eq!(p.step, Step::None);
        assert_eq!(p.operation, None);
    }

    #[test]
    fn spec_growing_back_after_removal_rejoins_the_ordinal_on_a_fresh_volume() {
        let mut c = Cluster::healthy(5).recorded(scale_down_4());
        c.drop_member(id(4));
        c.set_pod(4, removed(id(4)));
        assert_eq!(
            c.step(),
            Step::RecordOperation(Operation::ScaleUp { ordinal: 4 })
        );
        let c = c.recorded(Operation::ScaleUp { ordinal: 4 });
        assert_eq!(c.step(), Step::DeletePvc { ordinal: 4 });
    }

    #[test]
    fn voter_without_a_known_pod_is_removed_first() {
        let mut c = Cluster::healthy(3);
        c.raft().config.voters.insert(0xff);
        let op = Operation::ScaleDown {
            ordinal: None,
            node_id: 0xff,
        };
        assert_eq!(c.step(), Step::RecordOperation(op.clone()));
        let c = c.recorded(op);
        assert_eq!(c.step(), Step::RemoveMember { node_id: 0xff });
    }

    #[test]
    fn never_shrinks_to_what_is_observed() {
        // Someone shrank the StatefulSet under the members: grow it back.
        let mut c = Cluster::healthy(3);
        c.sts_replicas(2);
        assert_eq!(c.step(), Step::SetStatefulSetReplicas(3));

        // Someone grew it: drop only the pods that run no member, never below the spec.
        let mut c = Cluster::healthy(3);
        c.sts_replicas(5);
        c.set_pod(3, uninit(0xc3));
        c.set_pod(4, uninit(0xc4));
        assert_eq!(c.step(), Step::SetStatefulSetReplicas(3));

        // Fewer voters than the spec: grow, never settle.
        let c = Cluster::healthy(3).replicas(5);
        assert_eq!(
            c.step(),
            Step::RecordOperation(Operation::ScaleUp { ordinal: 3 })
        );
    }

    #[test]
    fn learner_beyond_the_spec_is_removed() {
        let mut c = Cluster::healthy(3);
        c.sts_replicas(4);
        c.learner(id(3), 3, 0);
        let p = c.plan();
        assert_eq!(p.step, Step::RemoveMember { node_id: id(3) });
        assert_eq!(p.events[0].reason, Reason::LearnerRemoved);
    }
}
