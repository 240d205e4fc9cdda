//! The message bus between the cores: every message is delayed by a few rounds (so
//! messages reorder), a few are lost, and an isolated node neither sends nor receives.

use std::collections::BTreeMap;

use kuberaft_raft::rng::Rng;
use kuberaft_raft::{Message, NodeId};

/// Per-mille chance that a message is lost.
const DROP: u64 = 10;
/// Delivery delay in rounds, `1..=MAX_DELAY`.
const MAX_DELAY: u64 = 3;

#[derive(Debug, Default)]
pub struct Net {
    in_flight: Vec<(u64, Message)>,
    /// Nodes cut off from everyone (a partition injected by the nemesis), until a tick.
    pub isolated: BTreeMap<NodeId, u64>,
}

impl Net {
    fn cut(&self, m: &Message) -> bool {
        self.isolated.contains_key(&m.from) || self.isolated.contains_key(&m.to)
    }

    /// Ends the partitions that are over.
    pub fn heal_expired(&mut self, now: u64) {
        self.isolated.retain(|_, until| *until > now);
    }

    pub fn send(&mut self, rng: &mut Rng, round: u64, m: Message) {
        if self.cut(&m) || rng.chance(DROP) {
            return;
        }
        let at = round + rng.range(1, MAX_DELAY + 1);
        self.in_flight.push((at, m));
    }

    /// Messages due by `round`, in a random order.
    pub fn due(&mut self, rng: &mut Rng, round: u64) -> Vec<Message> {
        let (mut due, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.in_flight)
            .into_iter()
            .partition(|(at, _)| *at <= round);
        self.in_flight = rest;
        rng.shuffle(&mut due);
        due.into_iter()
            .map(|(_, m)| m)
            .filter(|m| !self.cut(m))
            .collect()
    }
}
