//! The simulated network: every message is delayed, and may be dropped, duplicated or
//! blocked by a partition. Reordering follows from random delays.

use std::collections::HashSet;

use crate::rng::Rng;
use crate::types::{Message, NodeId};

/// Fault rates in per-mille, and the delay range in steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Weather {
    pub drop: u64,
    pub duplicate: u64,
    pub max_delay: u64,
}

impl Weather {
    pub const CALM: Weather = Weather {
        drop: 0,
        duplicate: 0,
        max_delay: 2,
    };
}

#[derive(Debug)]
pub struct Net {
    in_flight: Vec<(u64, Message)>,
    /// Directed links that lose everything: (from, to).
    blocked: HashSet<(NodeId, NodeId)>,
    pub weather: Weather,
}

impl Net {
    pub fn new() -> Self {
        Net {
            in_flight: Vec::new(),
            blocked: HashSet::new(),
            weather: Weather::CALM,
        }
    }

    pub fn is_blocked(&self, from: NodeId, to: NodeId) -> bool {
        self.blocked.contains(&(from, to))
    }

    /// Queues `m` for delivery after a random delay, or loses it.
    pub fn send(&mut self, rng: &mut Rng, now: u64, m: Message) {
        if self.is_blocked(m.from, m.to) || rng.chance(self.weather.drop) {
            return;
        }
        if rng.chance(self.weather.duplicate) {
            let at = now + rng.range(1, self.weather.max_delay + 2);
            self.in_flight.push((at, m.clone()));
        }
        let at = now + rng.range(1, self.weather.max_delay + 1);
        self.in_flight.push((at, m));
    }

    /// Messages due at `now`, in a random order, minus those a partition now blocks.
    pub fn due(&mut self, rng: &mut Rng, now: u64) -> Vec<Message> {
        let (mut due, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.in_flight)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.in_flight = rest;
        rng.shuffle(&mut due);
        due.into_iter()
            .map(|(_, m)| m)
            .filter(|m| !self.is_blocked(m.from, m.to))
            .collect()
    }

    /// Keeps `m` in the network for a later step (its receiver is paused; the socket
    /// buffers it).
    pub fn hold(&mut self, now: u64, m: Message) {
        self.in_flight.push((now + 1, m));
    }

    /// Cuts `a` from `b` in one direction (`symmetric` = both).
    pub fn cut(&mut self, a: &[NodeId], b: &[NodeId], symmetric: bool) {
        for &x in a {
            for &y in b {
                self.blocked.insert((x, y));
                if symmetric {
                    self.blocked.insert((y, x));
                }
            }
        }
    }

    pub fn heal(&mut self) {
        self.blocked.clear();
    }
}

impl Default for Net {
    fn default() -> Self {
        Net::new()
    }
}
