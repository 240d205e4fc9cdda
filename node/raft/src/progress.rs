//! The leader's view of one follower: how far it matches, what to send next, and how much
//! may be in flight (etcd-io/raft's tracker, in small).

use std::collections::VecDeque;

/// How the leader replicates to a follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressState {
    /// The follower's match point is unknown: send one Append at a time and wait.
    Probe,
    /// The follower is in step: send optimistically, bounded by the in-flight window.
    Replicate,
    /// The follower needs a snapshot at `pending`; nothing else is sent until it answers.
    Snapshot { pending: u64 },
}

/// Append messages sent but not yet acknowledged, by last index and size.
#[derive(Clone, Debug)]
pub struct Inflights {
    queue: VecDeque<(u64, u64)>,
    bytes: u64,
    max_msgs: usize,
    max_bytes: u64,
}

impl Inflights {
    pub fn new(max_msgs: usize, max_bytes: u64) -> Self {
        Inflights {
            queue: VecDeque::new(),
            bytes: 0,
            max_msgs,
            max_bytes,
        }
    }

    pub fn add(&mut self, last: u64, bytes: u64) {
        self.queue.push_back((last, bytes));
        self.bytes += bytes;
    }

    /// Frees every message whose last index is at most `index`.
    pub fn free_to(&mut self, index: u64) {
        while let Some(&(last, bytes)) = self.queue.front() {
            if last > index {
                break;
            }
            self.queue.pop_front();
            self.bytes -= bytes;
        }
    }

    pub fn full(&self) -> bool {
        self.queue.len() >= self.max_msgs || (self.max_bytes > 0 && self.bytes >= self.max_bytes)
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn reset(&mut self) {
        self.queue.clear();
        self.bytes = 0;
    }
}

/// The leader's bookkeeping for one peer.
#[derive(Clone, Debug)]
pub struct Progress {
    pub matched: u64,
    pub next: u64,
    pub state: ProgressState,
    /// In probe state: an Append is out and we wait for its answer or a heartbeat answer.
    pub probe_sent: bool,
    pub inflights: Inflights,
    /// Heard from since the last check-quorum round.
    pub recent_active: bool,
    /// The highest heartbeat round this peer acknowledged.
    pub acked_round: u64,
    /// Ticks since this peer last acknowledged an Append; detects lost messages.
    pub stall_ticks: u32,
}

impl Progress {
    pub fn new(next: u64, max_msgs: usize, max_bytes: u64) -> Self {
        Progress {
            matched: 0,
            next,
            state: ProgressState::Probe,
            probe_sent: false,
            inflights: Inflights::new(max_msgs, max_bytes),
            recent_active: false,
            acked_round: 0,
            stall_ticks: 0,
        }
    }

    pub fn become_probe(&mut self) {
        self.next = match self.state {
            // After a snapshot the follower has at least the snapshot.
            ProgressState::Snapshot { pending } => (self.matched + 1).max(pending + 1),
            _ => self.matched + 1,
        };
        self.state = ProgressState::Probe;
        self.probe_sent = false;
        self.inflights.reset();
    }

    pub fn become_replicate(&mut self) {
        self.state = ProgressState::Replicate;
        self.next = self.matched + 1;
        self.probe_sent = false;
        self.inflights.reset();
    }

    pub fn become_snapshot(&mut self, pending: u64) {
        self.state = ProgressState::Snapshot { pending };
        self.probe_sent = false;
        self.inflights.reset();
    }

    /// Records a successful append up to `index`. Returns false for a stale answer.
    pub fn maybe_update(&mut self, index: u64) -> bool {
        let updated = index > self.matched;
        if updated {
            self.matched = index;
            self.probe_sent = false;
        }
        self.next = self.next.max(index + 1);
        updated
    }

    /// Handles a rejection of `rejected` (the Append's prev index); `next_hint` is where
    /// the leader should try next. Returns false when the rejection is stale.
    pub fn maybe_decr_to(&mut self, rejected: u64, next_hint: u64) -> bool {
        if self.state == ProgressState::Replicate {
            // Only a rejection of something beyond the match point is news.
            if rejected <= self.matched {
                return false;
            }
            self.next = self.matched + 1;
            return true;
        }
        // In probe state only the answer to the probe we sent counts.
        if self.next != rejected + 1 {
            return false;
        }
        self.next = next_hint.min(rejected).max(self.matched + 1);
        self.probe_sent = false;
        true
    }

    /// Whether the leader must hold back Appends to this peer.
    pub fn is_paused(&self) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.inflights.full(),
            ProgressState::Snapshot { .. } => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inflights_bound_by_count_and_bytes() {
        let mut f = Inflights::new(3, 100);
        f.add(1, 10);
        f.add(2, 10);
        assert!(!f.full());
        f.add(3, 90);
        assert!(f.full());
        f.free_to(2);
        assert_eq!(f.len(), 1);
        assert!(!f.full() || f.bytes >= 100);
        f.free_to(3);
        assert!(f.is_empty());
    }

    #[test]
    fn stale_rejections_are_ignored() {
        let mut p = Progress::new(5, 8, 0);
        p.maybe_update(4);
        p.become_replicate();
        p.next = 10;
        assert!(!p.maybe_decr_to(3, 1), "rejection below match is stale");
        assert!(p.maybe_decr_to(7, 5));
        assert_eq!(p.next, 5);
        p.become_probe();
        p.next = 6;
        assert!(
            !p.maybe_decr_to(8, 3),
            "probe answer for another index is stale"
        );
        assert!(p.maybe_decr_to(5, 3));
        assert_eq!(p.next, 5, "never below match + 1");
    }
}
