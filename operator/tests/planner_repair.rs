//! Planner tables: replacing a member that lost its volume, rolling upgrades, snapshots,
//! paused, quorum loss and restoration, and membership changes in flight.

mod planner_support;

/// Named `planner` so `cargo test -p kuberaft-operator planner` selects these tests.
mod planner {
    use crate::planner_support::{Cluster, NEW_IMAGE, id, member, pod_name, template, uninit};
    use kuberaft_operator::planner::{
        BlockedCode, EventType, Operation, Phase, Reason, Step, WaitReason,
    };

    fn reasons(c: &Cluster) -> Vec<Reason> {
        c.plan().events.iter().map(|e| e.reason).collect()
    }

    fn wait(reason: WaitReason) -> Step {
        Step::Wait { reason }
    }

    // ---- replace ----------------------------------------------------------------------------

    fn replace_1() -> Operation {
        Operation::Replace {
            ordinal: 1,
            old: id(1),
        }
    }

    #[test]
    fn lost_volume_is_replaced_by_learner_then_joint_change() {
        let mut c = Cluster::healthy(3);
        c.set_pod(1, uninit(0xb1));
        let p = c.plan();
        assert_eq!(p.step, Step::RecordOperation(replace_1()));
        assert_eq!(p.phase, Phase::Degraded);

        let mut c = c.recorded(replace_1());
        assert_eq!(
            c.step(),
            Step::AddLearner {
                pod: pod_name(1),
                node_id: 0xb1
            }
        );

        c.learner(0xb1, 1, 500);
        assert_eq!(
            c.step(),
            wait(WaitReason::LearnerCatchingUp { node_id: 0xb1 })
        );

        c.lag(0xb1, 0);
        assert_eq!(
            c.step(),
            Step::ReplaceMember {
                old: id(1),
                new: 0xb1
            }
        );
        assert_eq!(reasons(&c), [Reason::MemberReplaced]);

        // Joint consensus until the leader leaves it.
        let raft = c.raft();
        raft.config.outgoing_voters = raft.config.voters.clone();
        raft.config.voters.remove(&id(1));
        raft.config.voters.insert(0xb1);
        raft.config.learners.clear();
        assert_eq!(c.step(), wait(WaitReason::ConfigChangeCommitting));

        c.raft().config.outgoing_voters.clear();
        let p = c.plan();
        assert_eq!(
            (p.step, p.operation, p.phase),
            (Step::None, None, Phase::Running)
        );
    }

    #[test]
    fn restart_mid_replace_with_status_lost_resumes_the_replacement() {
        let mut c = Cluster::healthy(3);
        c.learner(0xb1, 1, 0);
        assert_eq!(c.step(), Step::RecordOperation(replace_1()));
        let c = c.recorded(replace_1());
        assert_eq!(
            c.step(),
            Step::ReplaceMember {
                old: id(1),
                new: 0xb1
            }
        );
    }

    #[test]
    fn replace_only_while_quorum_holds() {
        let mut c = Cluster::healthy(3);
        c.set_pod(1, uninit(0xb1));
        c.set_pod(2, uninit(0xb2));
        let p = c.plan();
        assert_eq!(p.blocked.map(|b| b.code), Some(BlockedCode::QuorumLost));
        assert!(!p.step.is_mutating());
    }

    #[test]
    fn lost_volume_beyond_the_spec_is_removed_not_replaced() {
        let mut c = Cluster::healthy(3).replicas(2);
        c.set_pod(2, uninit(0xb2));
        let op = Operation::ScaleDown {
            ordinal: Some(2),
            node_id: id(2),
        };
        assert_eq!(c.step(), Step::RecordOperation(op));
    }

    #[test]
    fn volume_lost_again_mid_replace_drops_the_stale_learner_then_retries() {
        let mut c = Cluster::healthy(3).recorded(replace_1());
        c.learner(0xb1, 1, 0);
        c.set_pod(1, uninit(0xc1));
        let p = c.plan();
        assert_eq!(p.step, Step::RemoveMember { node_id: 0xb1 });
        assert_eq!(p.events[0].reason, Reason::LearnerRemoved);

        c.drop_member(0xb1);
        assert_eq!(
            c.step(),
            Step::AddLearner {
                pod: pod_name(1),
                node_id: 0xc1
            }
        );
    }

    // ---- rolling upgrade --------------------------------------------------------------------

    fn upgrading(n: u32) -> Cluster {
        let mut c = Cluster::healthy(n);
        c.desired.image = NEW_IMAGE.to_owned();
        c.observed.statefulset.as_mut().unwrap().template = template(NEW_IMAGE);
        c
    }

    fn upgraded(c: &mut Cluster, k: u32) {
        c.pod_mut(k).template = template(NEW_IMAGE);
    }

    #[test]
    fn new_image_first_updates_the_statefulset_template() {
        let mut c = Cluster::healthy(3);
        c.desired.image = NEW_IMAGE.to_owned();
        assert_eq!(c.step(), Step::UpdatePodTemplate);

        let mut c = Cluster::healthy(3);
        c.desired.snapshot_entry_threshold = 42;
        assert_eq!(c.step(), Step::UpdatePodTemplate);
    }

    #[test]
    fn a_template_hash_change_rolls_the_pods_like_an_image_upgrade() {
        // Resources, timing or scheduling changed: same image, new hash.
        let mut c = Cluster::healthy(3);
        c.desired.template_hash = "h2".to_owned();
        assert_eq!(c.step(), Step::UpdatePodTemplate);

        c.observed.statefulset.as_mut().unwrap().template = c.desired.template();
        let first = Operation::Upgrade {
            ordinal: 2,
            node_id: id(2),
        };
        assert_eq!(c.step(), Step::RecordOperation(first.clone()));
        let mut c = c.recorded(first);
        assert_eq!(c.step(), Step::RestartPod { pod: pod_name(2) });
        for k in 0..3 {
            c.pod_mut(k).template = c.desired.template();
        }
        c.observed.operation = None;
        assert_eq!(c.step(), Step::None, "every pod runs the new hash");
    }

    #[test]
    fn a_storage_size_edit_blocks_until_it_is_set_back() {
        let mut c = Cluster::healthy(3);
        c.observed.statefulset.as_mut().unwrap().storage_size = Some("10Gi".to_owned());
        c.desired.storage_size = "10240Mi".to_owned();
        assert_eq!(c.step(), Step::None, "the same size spelled differently");

        c.desired.storage_size = "20Gi".to_owned();
        c.desired.replicas = 5;
        let p = c.plan();
        assert_eq!(
            p.step,
            wait(WaitReason::Blocked(BlockedCode::StorageSizeChanged))
        );
        assert_eq!(p.phase, Phase::Blocked);
        let blocked = p.blocked.unwrap();
        assert!(
            blocked.message.contains("spec.storage.size")
                && blocked.message.contains("20Gi")
                && blocked.message.contains("10Gi"),
            "{}",
            blocked.message
        );
        assert_eq!(reasons(&c), [Reason::InvalidSpec]);
        assert!(p.events.iter().all(|e| e.kind == EventType::Warning));

        c.desired.storage_size = "10Gi".to_owned();
        assert!(matches!(
            c.step(),
            Step::RecordOperation(Operation::ScaleUp { .. })
        ));
    }

    #[test]
    fn upgrade_waits_while_another_voter_lags_far_behind() {
        // Restarting demo-2 would leave the leader and a voter 5,000 entries behind: no
        // majority that can commit.
        let mut c = upgrading(3).recorded(Operation::Upgrade {
            ordinal: 2,
            node_id: id(2),
        });
        c.lag(id(1), 5_000);
        let p = c.plan();
        assert!(!p.step.is_mutating(), "{:?}", p.step);
        c.lag(id(1), 0);
        assert_eq!(c.step(), Step::RestartPod { pod: pod_name(2) });
    }

    #[test]
    fn upgrade_restarts_followers_one_at_a_time_each_after_catch_up() {
        let c = upgrading(3);
        let first = Operation::Upgrade {
            ordinal: 2,
            node_id: id(2),
        };
        let p = c.plan();
        assert_eq!(p.step, Step::RecordOperation(first.clone()));
        assert_eq!(p.phase, Phase::Upgrading);

        let mut c = c.recorded(first);
        assert_eq!(c.step(), Step::RestartPod { pod: pod_name(2) });
        assert_eq!(reasons(&c), [Reason::PodRestarted]);

        upgraded(&mut c, 2);
        c.lag(id(2), 500);
        assert_eq!(
            c.step(),
            wait(WaitReason::MemberRejoining { node_id: id(2) })
        );

        c.lag(id(2), 0);
        let second = Operation::Upgrade {
            ordinal: 1,
            node_id: id(1),
        };
        assert_eq!(c.step(), Step::RecordOperation(second));
    }

    #[test]
    fn upgrade_does_the_leader_last_after_a_transfer() {
        let mut c = upgrading(3);
        upgraded(&mut c, 1);
        upgraded(&mut c, 2);
        let op = Operation::Upgrade {
            ordinal: 0,
            node_id: id(0),
        };
        assert_eq!(c.step(), Step::RecordOperation(op.clone()));

        let mut c = c.recorded(op);
        assert_eq!(
            c.step(),
            Step::TransferLeadership {
                from: id(0),
                to: id(1)
            }
        );

        c.raft().leader = Some(id(1));
        assert_eq!(c.step(), Step::RestartPod { pod: pod_name(0) });
    }

    #[test]
    fn upgrade_waits_rather_than_lose_quorum() {
        let mut c = upgrading(3);
        upgraded(&mut c, 1);
        c.kill(1);
        let op = Operation::Upgrade {
            ordinal: 2,
            node_id: id(2),
        };
        let c = c.recorded(op);
        assert_eq!(c.step(), wait(WaitReason::HealthyVoters { node_id: id(2) }));
    }

    #[test]
    fn single_voter_upgrade_restarts_in_place() {
        let c = upgrading(1).recorded(Operation::Upgrade {
            ordinal: 0,
            node_id: id(0),
        });
        assert_eq!(c.step(), Step::RestartPod { pod: pod_name(0) });
    }

    #[test]
    fn crash_looping_outdated_pods_are_restarted_even_without_quorum() {
        let mut c = upgrading(3);
        c.kill(1);
        c.kill(2);
        assert_eq!(c.step(), Step::RestartPod { pod: pod_name(1) });
    }

    // ---- snapshot, paused, quorum, in flight ------------------------------------------------

    #[test]
    fn new_snapshot_request_takes_a_snapshot_once() {
        let mut c = Cluster::healthy(3);
        c.desired.snapshot_request_id = Some("r1".to_owned());
        assert_eq!(
            c.step(),
            Step::Snapshot {
                request_id: "r1".to_owned()
            }
        );
        assert_eq!(reasons(&c), [Reason::SnapshotTaken]);

        c.observed.last_snapshot_request_id = Some("r1".to_owned());
        assert_eq!(c.step(), Step::None);
    }

    #[test]
    fn paused_never_mutates() {
        let mut c = Cluster::healthy(3)
            .replicas(5)
            .recorded(Operation::ScaleUp { ordinal: 3 });
        c.desired.paused = true;
        c.desired.snapshot_request_id = Some("r1".to_owned());
        let p = c.plan();
        assert_eq!(p.step, Step::None);
        assert_eq!(p.phase, Phase::Paused);
        assert_eq!(p.operation, Some(Operation::ScaleUp { ordinal: 3 }));
        assert!(p.events.is_empty());
    }

    #[test]
    fn quorum_lost_is_announced_once_and_restored_once() {
        let mut c = Cluster::healthy(3);
        c.kill(1);
        c.kill(2);
        let p = c.plan();
        assert_eq!(p.step, wait(WaitReason::Blocked(BlockedCode::QuorumLost)));
        assert_eq!(p.phase, Phase::Degraded);
        assert_eq!(p.health.failure_tolerance, 0);
        assert_eq!(reasons(&c), [Reason::QuorumLost]);

        c.observed.blocked = Some(BlockedCode::QuorumLost);
        assert!(c.plan().events.is_empty());

        c.set_pod(1, member(id(1)));
        let p = c.plan();
        assert_eq!(p.blocked, None);
        assert_eq!(p.events.len(), 1);
        assert_eq!(
            (p.events[0].kind, p.events[0].reason),
            (EventType::Normal, Reason::QuorumRestored)
        );
    }

    #[test]
    fn no_leader_waits_for_the_election() {
        let mut c = Cluster::healthy(3).replicas(4);
        c.raft().leader = None;
        assert_eq!(c.step(), wait(WaitReason::LeaderElection));
    }

    #[test]
    fn joint_configuration_in_flight_blocks_any_other_change() {
        let mut c = Cluster::healthy(3).replicas(2);
        c.raft().config.outgoing_voters = c.raft().config.voters.clone();
        assert_eq!(c.step(), wait(WaitReason::ConfigChangeCommitting));

        let mut c = Cluster::healthy(3).replicas(4);
        c.raft().config_index = 101;
        assert_eq!(c.step(), wait(WaitReason::ConfigChangeCommitting));
    }

    #[test]
    fn pending_learner_blocks_a_second_change() {
        // A learner at ordinal 3 catches up; the spec now also wants ordinal 1 replaced.
        let mut c = Cluster::healthy(3)
            .replicas(4)
            .recorded(Operation::ScaleUp { ordinal: 3 });
        c.sts_replicas(4);
        c.learner(id(3), 3, 500);
        c.set_pod(1, uninit(0xb1));
        assert_eq!(
            c.step(),
            wait(WaitReason::LearnerCatchingUp { node_id: id(3) })
        );
    }

    #[test]
    fn invalid_spec_is_blocked_with_a_message() {
        let c = Cluster::healthy(3).replicas(0);
        let p = c.plan();
        assert_eq!(
            p.blocked.as_ref().map(|b| b.code),
            Some(BlockedCode::InvalidSpec)
        );
        assert!(p.blocked.unwrap().message.contains("spec.replicas"));
        assert_eq!(reasons(&c), [Reason::InvalidSpec]);
    }
}
