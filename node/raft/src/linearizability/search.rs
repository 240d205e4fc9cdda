//! The search over one partition: Wing & Gong's depth-first linearization, with Lowe's
//! memo and Porcupine's event list.
//!
//! The candidates to linearize next are the operations called before the first return
//! still in the timeline; reaching that return means its operation should already have
//! taken effect, so the search backtracks. Returned candidates are tried before pending
//! ones: a pending operation is optional, and trying without it first lets the memo's
//! dominance rule prune the branches that include it.

use std::mem;

use super::events::{Events, NIL};
use super::memo::{Linearized, Memo};
use super::{Model, NO_RETURN, Operation, Violation};

/// How many operations of the prefix a report lists.
const REPORTED_TAIL: usize = 3;

pub(super) enum Outcome<S> {
    Linearizable,
    Illegal(Deepest<S>),
    Exhausted,
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
    /// At a pending node, with the timeline node of the deadline.
    Pending { node: usize, deadline: usize },
}

/// A linearized operation, with what is needed to undo it.
struct Frame<S> {
    op: usize,
    before: S,
    /// The deadline when `op` was pending, to resume the scan after it.
    deadline: usize,
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
    let mut stack: Vec<Frame<M::State>> = Vec::new();
    let mut state = model.init();
    let mut deepest: Option<Deepest<M::State>> = None;

    let mut cursor = Cursor::Timeline(events.first());
    // Success once every returned operation is linearized; pending ones may be left out.
    while events.first() != NIL {
        if *budget == 0 {
            return Outcome::Exhausted;
        }
        *budget -= 1;

        let candidate = match cursor {
            Cursor::Timeline(node) if events.is_call(node) => events.op(node),
            Cursor::Timeline(deadline) => {
                cursor = Cursor::Pending { node: events.first_pending(), deadline };
                continue;
            }
            Cursor::Pending { node, deadline } => match events.pending_before(node, deadline) {
                Some(j) => j,
                None => {
                    // Nothing can take effect before the deadline's operation returns.
                    let progress = linearized.returned_count();
                    if deepest.as_ref().is_none_or(|d| progress > d.progress) {
                        deepest = Some(Deepest {
                            prefix: stack.iter().map(|frame| frame.op).collect(),
                            progress,
                            state: state.clone(),
                            blocked: events.op(deadline),
                        });
                    }
                    let Some(frame) = stack.pop() else {
                        return Outcome::Illegal(deepest.expect("recorded just above"));
                    };
                    memo.insert(&linearized, &state);
                    state = frame.before;
                    toggle(&mut linearized, &events, frame.op);
                    events.unlift(frame.op);
                    cursor = resume(&events, frame.op, frame.deadline);
                    continue;
                }
            },
        };

        let op = &history[part[candidate]];
        if let Some(after) = model.step(&state, &op.input, &op.output) {
            toggle(&mut linearized, &events, candidate);
            if !memo.dominated(&linearized, &after) {
                let deadline = match cursor {
                    Cursor::Pending { deadline, .. } => deadline,
                    Cursor::Timeline(_) => NIL,
                };
                let before = mem::replace(&mut state, after);
                stack.push(Frame { op: candidate, before, deadline });
                events.lift(candidate);
                cursor = Cursor::Timeline(events.first());
                continue;
            }
            toggle(&mut linearized, &events, candidate);
        }
        cursor = resume(&events, candidate, match cursor {
            Cursor::Pending { deadline, .. } => deadline,
            Cursor::Timeline(_) => NIL,
        });
    }
    Outcome::Linearizable
}

fn toggle(linearized: &mut Linearized, events: &Events, j: usize) {
    if events.is_pending(j) {
        linearized.toggle_pending(events.bit(j));
    } else {
        linearized.toggle_returned(events.bit(j));
    }
}

/// The cursor just after candidate `j` (which is in the lists).
fn resume(events: &Events, j: usize, deadline: usize) -> Cursor {
    if events.is_pending(j) {
        Cursor::Pending { node: events.after(j), deadline }
    } else {
        Cursor::Timeline(events.after(j))
    }
}

/// Turns the deepest point of a failed search into a report with history indices.
pub(super) fn explain<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    part: &[usize],
    deepest: Deepest<M::State>,
) -> Violation {
    let describe = |j: usize| {
        let op = &history[part[j]];
        let ret = if op.ret == NO_RETURN { "never".to_owned() } else { op.ret.to_string() };
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
    let tail: Vec<String> = deepest.prefix[tail_start..].iter().map(|&j| describe(j)).collect();
    let prefix = match (tail_start, tail.is_empty()) {
        (_, true) => "is empty".to_owned(),
        (0, false) => format!("is {}", tail.join(", ")),
        (_, false) => format!("ends {}", tail.join(", ")),
    };
    let explanation = format!(
        "the longest linearizable prefix found has {} of {} operations and {}; the state \
         is then {}, and {} cannot take effect next, nor after any operation concurrent \
         with it",
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
