//! Planner simulation: an abstract cluster (StatefulSet, pods, volumes, a Raft
//! configuration) driven only by `plan` steps, under random scale requests, image changes,
//! snapshot requests, pausing, pod kills, lost volumes and operator crashes between any two
//! steps.
//! The world refuses every unsafe step as it happens (see `planner_support::world`); once
//! the faults stop, the cluster must converge to `spec.replicas` healthy voters.

mod planner_support;

/// Named `planner` so `cargo test -p kuberaft-operator planner` selects these tests.
mod planner {
    use crate::planner_support::world::World;
    use crate::planner_support::{IMAGE, NEW_IMAGE};
    use kuberaft_operator::planner::{Desired, Step};
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Action {
        Reconcile { crash: bool },
        Tick,
        Scale(u32),
        Image(bool),
        Snapshot(u8),
        Kill(u32),
        LoseVolume(u32),
        Pause(bool),
    }

    fn action() -> impl Strategy<Value = Action> {
        prop_oneof![
            12 => prop::bool::weighted(0.15).prop_map(|crash| Action::Reconcile { crash }),
            6 => Just(Action::Tick),
            1 => (1u32..=5).prop_map(Action::Scale),
            1 => any::<bool>().prop_map(Action::Image),
            1 => (1u8..4).prop_map(Action::Snapshot),
            1 => (0u32..5).prop_map(Action::Kill),
            1 => (0u32..5).prop_map(Action::LoseVolume),
            1 => prop::bool::weighted(0.3).prop_map(Action::Pause),
        ]
    }

    /// Reconciles (with time passing) until the plan is `None` on a converged cluster.
    fn settle(world: &mut World, budget: usize) -> Result<(), String> {
        for _ in 0..budget {
            world.tick();
            let p = world.reconcile(false);
            if p.step == Step::None && world.converged().is_ok() {
                // Stable: nothing more to do on the next reconciles either.
                for _ in 0..3 {
                    world.tick();
                    let again = world.reconcile(false);
                    if again.step != Step::None {
                        return Err(format!("not stable: {:?}", again.step));
                    }
                }
                return Ok(());
            }
        }
        world.converged().map_err(|why| {
            let tail = world
                .trace
                .iter()
                .rev()
                .take(30)
                .rev()
                .cloned()
                .collect::<Vec<_>>();
            format!(
                "did not converge ({why}); last steps:\n{}\nvoters {:x?} learners {:x?} leader {:x?}\n\
                 status {:?}\npods {:?}\npvcs {:?}\nobserved {:#?}",
                tail.join("\n"),
                world.voters,
                world.learners,
                world.leader,
                world.status,
                world.pods,
                world.pvcs,
                world.observe(),
            )
        })
    }

    fn run(initial: u32, actions: &[Action]) -> Result<World, String> {
        let mut world = World::new(Desired::new(initial, IMAGE));
        for action in actions {
            match *action {
                Action::Reconcile { crash } => {
                    world.reconcile(crash);
                }
                Action::Tick => world.tick(),
                Action::Scale(n) => world.desired.replicas = n,
                Action::Image(new) => {
                    world.desired.image = (if new { NEW_IMAGE } else { IMAGE }).into()
                }
                Action::Snapshot(r) => world.desired.snapshot_request_id = Some(format!("r{r}")),
                Action::Kill(k) => world.kill(k),
                Action::LoseVolume(k) => world.lose_volume(k),
                Action::Pause(paused) => world.desired.paused = paused,
            }
        }
        world.desired.paused = false;
        settle(&mut world, 600)?;
        Ok(world)
    }

    #[test]
    fn grows_from_nothing_to_five_and_back_to_one() {
        let mut world = World::new(Desired::new(5, IMAGE));
        settle(&mut world, 200).unwrap();
        world.desired.replicas = 1;
        settle(&mut world, 200).unwrap();
        world.desired.replicas = 3;
        world.desired.image = NEW_IMAGE.into();
        settle(&mut world, 300).unwrap();
    }

    #[test]
    fn replaces_a_lost_volume_and_upgrades_a_two_voter_cluster() {
        let mut world = World::new(Desired::new(3, IMAGE));
        settle(&mut world, 200).unwrap();
        world.lose_volume(1);
        settle(&mut world, 200).unwrap();
        assert!(world.trace.iter().any(|s| s.starts_with("ReplaceMember")));

        world.desired.replicas = 2;
        world.desired.image = NEW_IMAGE.into();
        settle(&mut world, 300).unwrap();
    }

    proptest! {
        #![proptest_config(crate::planner_support::cases(300))]

        #[test]
        fn converges_safely_under_faults(
            initial in 1u32..=5,
            actions in prop::collection::vec(action(), 0..200),
        ) {
            if let Err(why) = run(initial, &actions) {
                prop_assert!(false, "{}", why);
            }
        }
    }
}
