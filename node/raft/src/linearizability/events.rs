//! The event lists the search walks, as index arrays (dancing links): lifting an operation
//! out and putting it back are O(1), in strict LIFO order, with no unsafe code.

use std::collections::HashMap;
use std::hash::Hash;

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
            next: (1..=nodes)
                .map(|n| if n == nodes { NIL } else { n })
                .collect(),
            prev: (0..nodes)
                .map(|n| if n == HEAD { NIL } else { n - 1 })
                .collect(),
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
    /// It never returned ([`NO_RETURN`]): it belongs to a class of pending twins.
    Pending { class: usize },
}

/// Pending operations with the same input and output. They are interchangeable, so the
/// search takes them in call order only; otherwise it would try every subset of them.
struct Class {
    /// Positions in the partition, by call time.
    ops: Vec<usize>,
    calls: Vec<u64>,
    /// How many of `ops` are linearized: the next candidate is `ops[taken]`.
    taken: usize,
}

/// The operations of one partition, identified by their position `j` in it.
///
/// The timeline holds the call and return events of the operations that returned, sorted
/// by time with calls before returns at equal times, so ties are concurrent. Operations
/// that never returned are optional (they may never have taken effect), set no deadline
/// and have no return event: they sit in a list of twin classes, by first call.
pub(super) struct Events {
    timeline: List,
    /// Per timeline node: operation, time, and whether it is a call.
    op: Vec<usize>,
    time: Vec<u64>,
    is_call: Vec<bool>,
    /// Class nodes `1..`; `classes[node]` describes node `node` (index 0 is unused).
    class_list: List,
    classes: Vec<Class>,
    place: Vec<Place>,
    /// Per operation: its bit in the set of returned or of pending operations.
    bit: Vec<usize>,
    returned: usize,
}

impl Events {
    pub(super) fn new<I: Eq + Hash, O: Eq + Hash>(
        history: &[Operation<I, O>],
        part: &[usize],
    ) -> Self {
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

        let mut place = vec![Place::Pending { class: NIL }; part.len()];
        let (mut op, mut time, mut is_call) = (vec![NIL], vec![0], vec![false]);
        for (i, &(t, is_return, j)) in timeline.iter().enumerate() {
            let node = i + 1;
            op.push(j);
            time.push(t);
            is_call.push(!is_return);
            place[j] = match (place[j], is_return) {
                (_, false) => Place::Returned {
                    call: node,
                    ret: NIL,
                },
                (Place::Returned { call, .. }, true) => Place::Returned { call, ret: node },
                (Place::Pending { .. }, true) => unreachable!("a call sorts before its return"),
            };
        }

        let mut classes = vec![Class {
            ops: Vec::new(),
            calls: Vec::new(),
            taken: 0,
        }];
        let mut class_of: HashMap<(&I, &O), usize> = HashMap::new();
        for &(call, j) in &pending {
            let op = &history[part[j]];
            let class = *class_of.entry((&op.input, &op.output)).or_insert_with(|| {
                classes.push(Class {
                    ops: Vec::new(),
                    calls: Vec::new(),
                    taken: 0,
                });
                classes.len() - 1
            });
            classes[class].ops.push(j);
            classes[class].calls.push(call);
            place[j] = Place::Pending { class };
        }
        Self {
            timeline: List::new(timeline.len()),
            op,
            time,
            is_call,
            class_list: List::new(classes.len() - 1),
            classes,
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

    pub(super) fn op(&self, node: usize) -> usize {
        self.op[node]
    }

    pub(super) fn is_call(&self, node: usize) -> bool {
        self.is_call[node]
    }

    /// The first class of pending operations with one left.
    pub(super) fn first_class(&self) -> usize {
        self.class_list.next[HEAD]
    }

    /// The time of timeline node `node`.
    pub(super) fn time(&self, node: usize) -> u64 {
        self.time[node]
    }

    /// The next pending operation called no later than `limit` (the time of the first
    /// return), looking from class node `class` on: its class and the operation, or
    /// `None` when no class from there on has one.
    /// Only classes in `allowed` (a bitset by class node) count.
    pub(super) fn pending_before(
        &self,
        mut class: usize,
        limit: u64,
        allowed: &[u64],
    ) -> Option<usize> {
        while class != NIL {
            let c = &self.classes[class];
            if c.calls[0] > limit {
                // Classes are ordered by first call: none further on qualifies.
                return None;
            }
            if c.calls[c.taken] <= limit && allowed[class / 64] & (1 << (class % 64)) != 0 {
                return Some(c.ops[c.taken]);
            }
            class = self.class_list.next[class];
        }
        None
    }

    /// How many classes of pending twins there are; their nodes are `1..=classes()`.
    pub(super) fn classes(&self) -> usize {
        self.classes.len() - 1
    }

    /// An operation of class node `class`; all of them have the same input and output.
    pub(super) fn class_representative(&self, class: usize) -> usize {
        self.classes[class].ops[0]
    }

    pub(super) fn is_pending(&self, j: usize) -> bool {
        matches!(self.place[j], Place::Pending { .. })
    }

    pub(super) fn bit(&self, j: usize) -> usize {
        self.bit[j]
    }

    /// Where the scan of candidates resumes after `j`: a timeline node if `j` returned,
    /// else a class node.
    pub(super) fn after(&self, j: usize) -> usize {
        match self.place[j] {
            Place::Returned { call, .. } => self.timeline.next[call],
            Place::Pending { class } => self.class_list.next[class],
        }
    }

    /// Takes `j` out of the lists once it is linearized.
    pub(super) fn lift(&mut self, j: usize) {
        match self.place[j] {
            Place::Returned { call, ret } => {
                self.timeline.unlink(call);
                self.timeline.unlink(ret);
            }
            Place::Pending { class } => {
                let c = &mut self.classes[class];
                debug_assert_eq!(c.ops[c.taken], j, "twins are taken in call order");
                c.taken += 1;
                if c.taken == c.ops.len() {
                    self.class_list.unlink(class);
                }
            }
        }
    }

    /// Undoes the latest `lift`, which must have been of `j`.
    pub(super) fn unlift(&mut self, j: usize) {
        match self.place[j] {
            Place::Returned { call, ret } => {
                self.timeline.relink(ret);
                self.timeline.relink(call);
            }
            Place::Pending { class } => {
                let c = &mut self.classes[class];
                if c.taken == c.ops.len() {
                    self.class_list.relink(class);
                }
                c.taken -= 1;
                debug_assert_eq!(c.ops[c.taken], j, "unlifts mirror lifts");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(call: u64, ret: u64) -> Operation<u64, ()> {
        Operation {
            client: 0,
            call,
            ret,
            input: call,
            output: (),
        }
    }

    fn timeline(events: &Events) -> Vec<(usize, bool)> {
        let mut out = Vec::new();
        let mut node = events.first();
        while node != NIL {
            out.push((events.op(node), events.is_call(node)));
            node = events.timeline.next[node];
        }
        out
    }

    /// The pending candidates called by `limit`, one per class.
    fn candidates(events: &Events, limit: u64) -> Vec<usize> {
        let all = vec![u64::MAX; events.classes() / 64 + 1];
        let mut out = Vec::new();
        let mut class = events.first_class();
        while let Some(j) = events.pending_before(class, limit, &all) {
            out.push(j);
            class = events.after(j);
        }
        out
    }

    #[test]
    fn calls_sort_before_returns_at_equal_times() {
        let history = [op(0, 5), op(5, 6), op(1, 2)];
        let events = Events::new(&history, &[0, 1, 2]);
        assert_eq!(
            timeline(&events),
            [
                (0, true),
                (2, true),
                (2, false),
                (1, true),
                (0, false),
                (1, false)
            ]
        );
    }

    #[test]
    fn positions_follow_the_partition_not_the_history() {
        let history = [op(0, 1), op(10, 11), op(2, 3)];
        let events = Events::new(&history, &[2, 1]);
        assert_eq!(
            timeline(&events),
            [(0, true), (0, false), (1, true), (1, false)]
        );
    }

    #[test]
    fn pending_operations_have_no_return_and_form_twin_classes() {
        let mut history = vec![
            op(4, NO_RETURN),
            op(0, 3),
            op(1, NO_RETURN),
            op(2, NO_RETURN),
        ];
        history[3].input = 4; // a twin of operation 0, called earlier
        let events = Events::new(&history, &[0, 1, 2, 3]);
        assert_eq!((events.returned(), events.pending()), (1, 3));
        assert_eq!(timeline(&events), [(1, true), (1, false)]);
        assert_eq!(
            (events.bit(1), events.bit(2), events.bit(3), events.bit(0)),
            (0, 1, 2, 0)
        );
        assert!(events.is_pending(0) && !events.is_pending(1));
        // Only what was called by the deadline qualifies, and of twins the earliest.
        assert_eq!(candidates(&events, 0), Vec::<usize>::new());
        assert_eq!(candidates(&events, 1), [2]);
        assert_eq!(candidates(&events, 9), [2, 3]);
    }

    #[test]
    fn twins_are_taken_in_call_order_and_given_back_in_reverse() {
        let mut history = vec![op(1, NO_RETURN), op(2, NO_RETURN), op(3, NO_RETURN)];
        for h in &mut history {
            h.input = 7;
        }
        let mut events = Events::new(&history, &[2, 0, 1]);
        assert_eq!(candidates(&events, 9), [1]);
        events.lift(1);
        assert_eq!(candidates(&events, 9), [2]);
        assert_eq!(
            candidates(&events, 1),
            Vec::<usize>::new(),
            "the next twin came later"
        );
        events.lift(2);
        events.lift(0);
        assert_eq!(events.first_class(), NIL);
        events.unlift(0);
        events.unlift(2);
        assert_eq!(candidates(&events, 9), [2]);
        events.unlift(1);
        assert_eq!(candidates(&events, 9), [1]);
    }

    #[test]
    fn lift_and_unlift_restore_the_timeline() {
        let history = [op(0, 4), op(1, 2), op(3, 5)];
        let mut events = Events::new(&history, &[0, 1, 2]);
        let original = timeline(&events);
        events.lift(1);
        assert_eq!(
            timeline(&events),
            [(0, true), (2, true), (0, false), (2, false)]
        );
        events.lift(0);
        assert_eq!(timeline(&events), [(2, true), (2, false)]);
        events.lift(2);
        assert_eq!(events.first(), NIL);
        for j in [2, 0, 1] {
            events.unlift(j);
        }
        assert_eq!(timeline(&events), original);
    }
}
