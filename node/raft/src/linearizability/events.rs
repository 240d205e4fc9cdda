//! The event lists the search walks, as index arrays (dancing links): lifting an operation
//! out and putting it back are O(1), in strict LIFO order, with no unsafe code.

use super::{NO_RETURN, Operation};

/// "No node".
pub(super) const NIL: usize = usize::MAX;
/// The sentinel before the first node of every list.
const HEAD: usize = 0;

/// A doubly linked list over node indices `1..`; node 0 is the head sentinel.
struct List {
    next: Vec<usize>,
    prev: Vec<usize>,
}

impl List {
    /// The list `1, 2, ..., len` in that order.
    fn new(len: usize) -> Self {
        let nodes = len + 1;
        Self {
            next: (1..=nodes).map(|n| if n == nodes { NIL } else { n }).collect(),
            prev: (0..nodes).map(|n| if n == HEAD { NIL } else { n - 1 }).collect(),
        }
    }

    fn unlink(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = next;
        if next != NIL {
            self.prev[next] = prev;
        }
    }

    /// Undoes `unlink(node)`; valid only in reverse order of the unlinks.
    fn relink(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = node;
        if next != NIL {
            self.prev[next] = node;
        }
    }
}

/// Where an operation of the partition lives in the lists.
#[derive(Clone, Copy)]
enum Place {
    /// It returned: a call node and a return node in the timeline.
    Returned { call: usize, ret: usize },
    /// It never returned ([`NO_RETURN`]): one node in the pending list. Such an operation
    /// is optional (it may never have taken effect), so it sets no deadline and has no
    /// return node.
    Pending { node: usize },
}

/// The operations of one partition, identified by their position `j` in it.
///
/// The timeline holds the call and return events of the operations that returned, sorted
/// by time with calls before returns at equal times, so ties are concurrent. The pending
/// list holds the operations that never returned, sorted by call.
pub(super) struct Events {
    timeline: List,
    /// Per timeline node: operation, time, and whether it is a call.
    op: Vec<usize>,
    time: Vec<u64>,
    is_call: Vec<bool>,
    pending: List,
    /// Per pending node: operation and call time.
    pending_op: Vec<usize>,
    pending_call: Vec<u64>,
    place: Vec<Place>,
    /// Per operation: its bit in the set of returned or of pending operations.
    bit: Vec<usize>,
    returned: usize,
}

impl Events {
    pub(super) fn new<I, O>(history: &[Operation<I, O>], part: &[usize]) -> Self {
        let mut timeline: Vec<(u64, bool, usize)> = Vec::new();
        let mut pending: Vec<(u64, usize)> = Vec::new();
        let mut bit = vec![0; part.len()];
        for (j, &index) in part.iter().enumerate() {
            let op = &history[index];
            if op.ret == NO_RETURN {
                bit[j] = pending.len();
                pending.push((op.call, j));
            } else {
                bit[j] = timeline.len() / 2;
                timeline.push((op.call, false, j));
                timeline.push((op.ret, true, j));
            }
        }
        timeline.sort_unstable();
        pending.sort_unstable();

        let mut place = vec![Place::Pending { node: NIL }; part.len()];
        let (mut op, mut time, mut is_call) = (vec![NIL], vec![0], vec![false]);
        for (i, &(t, is_return, j)) in timeline.iter().enumerate() {
            let node = i + 1;
            op.push(j);
            time.push(t);
            is_call.push(!is_return);
            place[j] = match (place[j], is_return) {
                (_, false) => Place::Returned { call: node, ret: NIL },
                (Place::Returned { call, .. }, true) => Place::Returned { call, ret: node },
                (Place::Pending { .. }, true) => unreachable!("a call sorts before its return"),
            };
        }
        let (mut pending_op, mut pending_call) = (vec![NIL], vec![0]);
        for (i, &(call, j)) in pending.iter().enumerate() {
            pending_op.push(j);
            pending_call.push(call);
            place[j] = Place::Pending { node: i + 1 };
        }
        Self {
            timeline: List::new(timeline.len()),
            op,
            time,
            is_call,
            pending: List::new(pending.len()),
            pending_op,
            pending_call,
            place,
            bit,
            returned: timeline.len() / 2,
        }
    }

    /// How many operations returned (the rest are pending).
    pub(super) fn returned(&self) -> usize {
        self.returned
    }

    pub(super) fn pending(&self) -> usize {
        self.place.len() - self.returned
    }

    /// The first timeline node, or [`NIL`] once every returned operation is linearized.
    pub(super) fn first(&self) -> usize {
        self.timeline.next[HEAD]
    }

    pub(super) fn next(&self, node: usize) -> usize {
        self.timeline.next[node]
    }

    pub(super) fn op(&self, node: usize) -> usize {
        self.op[node]
    }

    pub(super) fn is_call(&self, node: usize) -> bool {
        self.is_call[node]
    }

    /// The first pending node.
    pub(super) fn first_pending(&self) -> usize {
        self.pending.next[HEAD]
    }

    pub(super) fn next_pending(&self, node: usize) -> usize {
        self.pending.next[node]
    }

    /// The operation at pending node `node`, if it was called no later than timeline
    /// node `deadline` (a return): only then may it take effect before that return.
    pub(super) fn pending_before(&self, node: usize, deadline: usize) -> Option<usize> {
        (node != NIL && self.pending_call[node] <= self.time[deadline])
            .then(|| self.pending_op[node])
    }

    pub(super) fn is_pending(&self, j: usize) -> bool {
        matches!(self.place[j], Place::Pending { .. })
    }

    pub(super) fn bit(&self, j: usize) -> usize {
        self.bit[j]
    }

    /// Where the scan of candidates resumes after `j`.
    pub(super) fn after(&self, j: usize) -> usize {
        match self.place[j] {
            Place::Returned { call, .. } => self.timeline.next[call],
            Place::Pending { node } => self.pending.next[node],
        }
    }

    /// Takes `j` out of the lists once it is linearized.
    pub(super) fn lift(&mut self, j: usize) {
        match self.place[j] {
            Place::Returned { call, ret } => {
                self.timeline.unlink(call);
                self.timeline.unlink(ret);
            }
            Place::Pending { node } => self.pending.unlink(node),
        }
    }

    /// Undoes the latest `lift`, which must have been of `j`.
    pub(super) fn unlift(&mut self, j: usize) {
        match self.place[j] {
            Place::Returned { call, ret } => {
                self.timeline.relink(ret);
                self.timeline.relink(call);
            }
            Place::Pending { node } => self.pending.relink(node),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(call: u64, ret: u64) -> Operation<(), ()> {
        Operation { client: 0, call, ret, input: (), output: () }
    }

    fn timeline(events: &Events) -> Vec<(usize, bool)> {
        let mut out = Vec::new();
        let mut node = events.first();
        while node != NIL {
            out.push((events.op(node), events.is_call(node)));
            node = events.next(node);
        }
        out
    }

    fn pending(events: &Events) -> Vec<usize> {
        let mut out = Vec::new();
        let mut node = events.first_pending();
        while node != NIL {
            out.push(events.pending_op[node]);
            node = events.next_pending(node);
        }
        out
    }

    #[test]
    fn calls_sort_before_returns_at_equal_times() {
        let history = [op(0, 5), op(5, 6), op(1, 2)];
        let events = Events::new(&history, &[0, 1, 2]);
        assert_eq!(
            timeline(&events),
            [(0, true), (2, true), (2, false), (1, true), (0, false), (1, false)]
        );
    }

    #[test]
    fn positions_follow_the_partition_not_the_history() {
        let history = [op(0, 1), op(10, 11), op(2, 3)];
        let events = Events::new(&history, &[2, 1]);
        assert_eq!(timeline(&events), [(0, true), (0, false), (1, true), (1, false)]);
    }

    #[test]
    fn pending_operations_have_no_return_and_sort_by_call() {
        let history = [op(4, NO_RETURN), op(0, 3), op(1, NO_RETURN)];
        let events = Events::new(&history, &[0, 1, 2]);
        assert_eq!((events.returned(), events.pending()), (1, 2));
        assert_eq!(timeline(&events), [(1, true), (1, false)]);
        assert_eq!(pending(&events), [2, 0]);
        assert_eq!((events.bit(0), events.bit(1), events.bit(2)), (0, 0, 1));
        assert!(events.is_pending(0) && !events.is_pending(1));
        // Only the pending operation called by time 3 may precede the return at 3.
        let deadline = events.next(events.first());
        let first = events.first_pending();
        assert_eq!(events.pending_before(first, deadline), Some(2));
        assert_eq!(events.pending_before(events.next_pending(first), deadline), None);
    }

    #[test]
    fn lift_and_unlift_restore_the_lists() {
        let history = [op(0, 4), op(1, 2), op(3, 5), op(2, NO_RETURN)];
        let mut events = Events::new(&history, &[0, 1, 2, 3]);
        let (original, original_pending) = (timeline(&events), pending(&events));
        events.lift(1);
        assert_eq!(timeline(&events), [(0, true), (2, true), (0, false), (2, false)]);
        events.lift(3);
        assert!(pending(&events).is_empty());
        events.lift(0);
        assert_eq!(timeline(&events), [(2, true), (2, false)]);
        events.lift(2);
        assert_eq!(events.first(), NIL);
        for j in [2, 0, 3, 1] {
            events.unlift(j);
        }
        assert_eq!((timeline(&events), pending(&events)), (original, original_pending));
    }
}
