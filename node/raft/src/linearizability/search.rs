//! The search over one partition: Wing & Gong's depth-first linearization, with Lowe's
//! memo and Porcupine's event list.
//!
//! The candidates to linearize next are the operations called before the first return
//! still in the timeline; reaching that return means its operation should already have
//! taken effect, so the search backtracks. Returned candidates are tried before pending
//! ones: a pending operation is optional, and trying without it first lets the memo's
//! dominance rule prune the branches that include it. Every pruning rule here is held to
//! a brute-force oracle by `oracle_tests`.

use std::collections::HashMap;
use std::hash::Hash;
use std::mem;

use super::events::{Events, NIL};
use super::memo::{Linearized, Memo};
use super::{Model, NO_RETURN, Operation, Violation};

/// How many operations of the prefix a report lists.
const REPORTED_TAIL: usize = 3;

pub(super) enum Outcome<S> {
    Linearizable,
    Illegal(Deepest<S>),
    /// Out of budget; where the search had got furthest, if it met any deadline.
    Exhausted(Option<Deepest<S>>),
}

/// The deepest point the search reached: most returned operations linearized.
pub(super) struct Deepest<S> {
    /// Positions within the partition, in linearization order.
    prefix: Vec<usize>,
    progress: usize,
    state: S,
    /// Position within the partition of the operation whose return stopped the search.
    blocked: usize,
}

/// Where the scan for the next candidate stands.
#[derive(Clone, Copy)]
enum Cursor {
    /// At a timeline node: a call (a candidate) or the first return (the deadline).
    Timeline(usize),
    /// At a class of pending operations, with the timeline node of the deadline and the
    /// index of the classes that would change the current state ([`Movers`]).
    Pending {
        class: usize,
        deadline: usize,
        movers: usize,
    },
}

/// A linearized operation, with what is needed to undo it.
struct Frame<S> {
    op: usize,
    before: S,
    /// Where the scan resumes once `op` is undone.
    resume: Cursor,
}

/// For each state met at a deadline, the classes of pending operations that would change
/// it. Most timed-out operations do nothing in most states (a compare-and-swap expecting
/// another value), and a pending operation that changes nothing is never worth placing:
/// the configuration it leads to is the current one with fewer options. Learning this once
/// per state instead of once per configuration keeps the scan of pending operations cheap.
struct Movers<S> {
    index: HashMap<S, usize>,
    sets: Vec<Vec<u64>>,
}

impl<S: Clone + Eq + Hash> Movers<S> {
    /// The index of the set for `state`, computing it if need be (one step per class), or
    /// `None` if the budget runs out.
    fn of<M: Model<State = S>>(
        &mut self,
        model: &M,
        history: &[Operation<M::Input, M::Output>],
        part: &[usize],
        events: &Events,
        state: &S,
        budget: &mut u64,
    ) -> Option<usize> {
        if let Some(&index) = self.index.get(state) {
            return Some(index);
        }
        let classes = events.classes();
        *budget = budget.checked_sub(classes as u64)?;
        let mut set = vec![0u64; (classes + 1).div_ceil(64)];
        for class in 1..=classes {
            let op = &history[part[events.class_representative(class)]];
            if model
                .step(state, &op.input, &op.output)
                .is_some_and(|after| after != *state)
            {
                set[class / 64] |= 1 << (class % 64);
            }
        }
        self.sets.push(set);
        self.index.insert(state.clone(), self.sets.len() - 1);
        Some(self.sets.len() - 1)
    }
}

/// Searches the operations `part` (indices into `history`) for a linearization, spending
/// at most `budget` steps and deducting what it spends.
pub(super) fn search<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    part: &[usize],
    budget: &mut u64,
) -> Outcome<M::State> {
    let mut events = Events::new(history, part);
    let mut linearized = Linearized::new(events.returned(), events.pending());
    let mut memo = Memo::new();
    let mut movers = Movers {
        index: HashMap::new(),
        sets: Vec::new(),
    };
    let mut stack: Vec<Frame<M::State>> = Vec::new();
    let mut state = model.init();
    let mut deepest: Option<Deepest<M::State>> = None;

    let mut cursor = Cursor::Timeline(events.first());
    // Success once every returned operation is linearized; pending ones may be left out.
    while events.first() != NIL {
        if *budget == 0 {
            return Outcome::Exhausted(deepest);
        }
        *budget -= 1;

        let candidate = match cursor {
            Cursor::Timeline(node) if events.is_call(node) => events.op(node),
            Cursor::Timeline(deadline) => {
                // The first return: record how far the returned operations got, before
                // pending ones clutter the prefix.
                let progress = linearized.returned_count();
                if deepest.as_ref().is_none_or(|d| progress > d.progress) {
                    deepest = Some(Deepest {
                        prefix: stack.iter().map(|frame| frame.op).collect(),
                        progress,
                        state: state.clone(),
                        blocked: events.op(deadline),
                    });
                }
                let Some(index) = movers.of(model, history, part, &events, &state, budget) else {
                    return Outcome::Exhausted(deepest);
                };
                cursor = Cursor::Pending {
                    class: events.first_class(),
                    deadline,
                    movers: index,
                };
                continue;
            }
            Cursor::Pending {
                class,
                deadline,
                movers: index,
            } => {
                let limit = events.time(deadline);
                match events.pending_before(class, limit, &movers.sets[index]) {
                    Some(j) => j,
                    None => {
                        // Nothing more can take effect before the deadline: a dead end.
                        let Some(frame) = stack.pop() else {
                            return Outcome::Illegal(deepest.expect("recorded at the deadline"));
                        };
                        memo.insert(&linearized, &state);
                        state = frame.before;
                        toggle(&mut linearized, &events, frame.op);
                        events.unlift(frame.op);
                        cursor = frame.resume;
                        continue;
                    }
                }
            }
        };

        let resume = match cursor {
            Cursor::Timeline(_) => Cursor::Timeline(events.after(candidate)),
            Cursor::Pending {
                deadline, movers, ..
            } => Cursor::Pending {
                class: events.after(candidate),
                deadline,
                movers,
            },
        };
        toggle(&mut linearized, &events, candidate);
        let op = &history[part[candidate]];
        match admit(model, &events, &stack, &state, &linearized, &memo, op) {
            Some(after) => {
                let before = mem::replace(&mut state, after);
                stack.push(Frame {
                    op: candidate,
                    before,
                    resume,
                });
                events.lift(candidate);
                cursor = Cursor::Timeline(events.first());
            }
            None => {
                toggle(&mut linearized, &events, candidate);
                cursor = resume;
            }
        }
    }
    Outcome::Linearizable
}

/// The state after a candidate operation if the search should go there, given
/// `linearized` that already includes it. Besides the model's verdict and the memo, one
/// rule skips configurations that another branch covers with fewer pending operations
/// (they are optional, so fewer is never worse): right after a pending operation `p`, an
/// operation that would reach the same state without `p` is taken there instead (`p` was
/// overwritten before anyone saw it).
fn admit<M: Model>(
    model: &M,
    events: &Events,
    stack: &[Frame<M::State>],
    state: &M::State,
    linearized: &Linearized,
    memo: &Memo<M::State>,
    op: &Operation<M::Input, M::Output>,
) -> Option<M::State> {
    let after = model.step(state, &op.input, &op.output)?;
    if let Some(top) = stack.last()
        && events.is_pending(top.op)
        && model.step(&top.before, &op.input, &op.output).as_ref() == Some(&after)
    {
        return None;
    }
    if memo.dominated(linearized, &after) {
        return None;
    }
    Some(after)
}

fn toggle(linearized: &mut Linearized, events: &Events, j: usize) {
    if events.is_pending(j) {
        linearized.toggle_pending(events.bit(j));
    } else {
        linearized.toggle_returned(events.bit(j));
    }
}

/// Turns the deepest point of a search into a report with history indices.
pub(super) fn explain<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    part: &[usize],
    deepest: Deepest<M::State>,
) -> Violation {
    let describe = |j: usize| {
        let op = &history[part[j]];
        let ret = if op.ret == NO_RETURN {
            "never".to_owned()
        } else {
            op.ret.to_string()
        };
        format!(
            "#{} (client {}, called {}, returned {}) {}",
            part[j],
            op.client,
            op.call,
            ret,
            model.describe_operation(&op.input, &op.output)
        )
    };
    let tail_start = deepest.prefix.len().saturating_sub(REPORTED_TAIL);
    let tail: Vec<String> = deepest.prefix[tail_start..]
        .iter()
        .map(|&j| describe(j))
        .collect();
    let prefix = match (tail_start, tail.is_empty()) {
        (_, true) => "is empty".to_owned(),
        (0, false) => format!("is {}", tail.join(", ")),
        (_, false) => format!("ends {}", tail.join(", ")),
    };
    let explanation = format!(
        "the longest linearizable prefix found has {} of {} operations and {}; the state \
         is then {}, and no order of what remains lets {} take effect before it returns",
        deepest.prefix.len(),
        part.len(),
        prefix,
        model.describe_state(&deepest.state),
        describe(deepest.blocked),
    );
    Violation {
        partition: model.describe_partition(history, part),
        prefix: deepest.prefix.iter().map(|&j| part[j]).collect(),
        blocked: part[deepest.blocked],
        explanation,
    }
}
