//! Decides whether a client history is linearizable: the oracle of the deterministic
//! simulator and of the multi-process tests. A Wing–Gong search with Lowe's memo, as in
//! Porcupine, run per partition (per key for [`KvModel`]; use [`check_kv`] for KV).
//!
//! Time is a logical clock ([`HistoryRecorder`] hands it out). Operation `a`
//! happens-before `b` exactly when `a.ret < b.call`: equal timestamps count as concurrent,
//! so a tie never produces a violation. An operation whose client never learned its
//! outcome returns at [`NO_RETURN`] and is optional, as in Herlihy & Wing's definition: it
//! may take effect at any point after its call, or not at all.

mod events;
mod history;
mod kv;
mod kv_compact;
#[cfg(test)]
mod kv_tests;
mod memo;
#[cfg(test)]
mod oracle_tests;
#[cfg(test)]
mod prop_tests;
mod search;

use std::fmt::{self, Debug};
use std::hash::Hash;

pub use history::{HistoryRecorder, OpId, UnknownOutput};
pub use kv::{KvInput, KvModel, KvOperation, KvOutput, check_kv};

/// The `ret` of an operation that never returned (timed out, crashed client, ambiguous
/// error). It sets no deadline: the operation may take effect anywhere after its call, or
/// not at all, whatever its output says.
pub const NO_RETURN: u64 = u64::MAX;

/// A budget that decides typical test histories (thousands of operations per key, a few
/// percent of them timed out) with room to spare, yet stops a hopeless search in about
/// five seconds and 70 MB in a debug build: a step costs up to a microsecond there, a few
/// times less when optimised. Proving a violation costs far more than accepting a correct
/// history when many operations timed out, since every placement of them must be refuted.
pub const DEFAULT_BUDGET: u64 = 5_000_000;

/// One client operation as the client saw it: when it was called, when it returned, what
/// it asked and what it was told.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Operation<I, O> {
    /// Who issued it. The checker does not need it (timestamps carry the order); it is
    /// there for the explanation of a violation.
    pub client: u64,
    /// Logical time of the invocation.
    pub call: u64,
    /// Logical time of the response, `>= call`, or [`NO_RETURN`].
    pub ret: u64,
    pub input: I,
    pub output: O,
}

/// A sequential specification of the system under test.
///
/// The checker only ever asks "may `input` produce `output` in `state`, and what state
/// follows?", so a nondeterministic outcome (a timeout) is expressed by an output that
/// `step` accepts in every state.
pub trait Model {
    /// Must be cheap to clone and hash: the search clones it at every step and memoises
    /// (linearized set, state) pairs.
    type State: Clone + Eq + Hash + Debug;
    /// Equality lets the search treat identical pending operations as interchangeable
    /// and try one of them instead of every subset.
    type Input: Eq + Hash + Debug;
    type Output: Eq + Hash + Debug;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// The state after `input` took effect in `state` and answered `output`, or `None`
    /// when that answer is impossible in that state.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: &Self::Output,
    ) -> Option<Self::State>;

    /// Splits a history into independently checkable parts, as indices into `history`
    /// (P-compositionality: the whole is linearizable iff every part is). Splitting is
    /// what makes long histories tractable, since the search is exponential in the
    /// concurrency within one part only. An index left out of every part is not checked,
    /// which a model may use to drop operations that constrain nothing.
    fn partition(&self, history: &[Operation<Self::Input, Self::Output>]) -> Vec<Vec<usize>> {
        vec![(0..history.len()).collect()]
    }

    /// Names a part in a report, e.g. `key "x"`.
    fn describe_partition(
        &self,
        _history: &[Operation<Self::Input, Self::Output>],
        _partition: &[usize],
    ) -> String {
        "the whole history".to_owned()
    }

    /// Renders an operation in a report.
    fn describe_operation(&self, input: &Self::Input, output: &Self::Output) -> String {
        format!("{input:?} -> {output:?}")
    }

    /// Renders a state in a report.
    fn describe_state(&self, state: &Self::State) -> String {
        format!("{state:?}")
    }
}

/// The verdict on a history.
#[must_use]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckResult {
    /// Some order of the operations respects real time and the model.
    Ok,
    /// No order does; the report says where the search got stuck.
    Illegal(Violation),
    /// The search ran out of budget before it could decide. Not a pass: a test should
    /// treat it as a failure to check, and raise the budget or shorten the history.
    Unknown {
        /// The part being searched when the budget ran out.
        partition: String,
        /// The budget that was spent.
        steps: u64,
        /// Where the search had got furthest, reported like a violation; if the history
        /// is not linearizable, the culprit is usually there.
        furthest: Option<Violation>,
    },
}

impl CheckResult {
    pub fn is_ok(&self) -> bool {
        matches!(self, Self::Ok)
    }

    pub fn is_illegal(&self) -> bool {
        matches!(self, Self::Illegal(_))
    }
}

impl fmt::Display for CheckResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ok => f.write_str("linearizable"),
            Self::Illegal(violation) => write!(f, "not linearizable: {violation}"),
            Self::Unknown {
                partition,
                steps,
                furthest,
            } => {
                write!(
                    f,
                    "undecided: search budget of {steps} steps exhausted on {partition}"
                )?;
                match furthest {
                    Some(furthest) => write!(f, "; {}", furthest.explanation),
                    None => Ok(()),
                }
            }
        }
    }
}

/// Why a part of a history is not linearizable, as the deepest point the search reached:
/// the longest prefix it could linearize (most returned operations) and the operation
/// that could not follow it. The culprit is usually that operation or one of the last few
/// of the prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The part that failed, as [`Model::describe_partition`] names it.
    pub partition: String,
    /// The longest linearizable prefix found, as indices into the history, in order. It
    /// may include pending operations, placed where they took effect.
    pub prefix: Vec<usize>,
    /// Index into the history of the operation that had to take effect next (it returned
    /// before anything else could be placed) but that no state reachable there accepts.
    pub blocked: usize,
    /// A short human-readable account of the above.
    pub explanation: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.partition, self.explanation)
    }
}

/// Checks whether `history` is linearizable with respect to `model`, spending at most
/// `budget` search steps in total (about one per operation tried at some point of the
/// search; see [`DEFAULT_BUDGET`] for what that costs).
///
/// # Panics
///
/// If an operation returns before it is called (`ret < call`), or if
/// [`Model::partition`] yields an index outside `history`: both are bugs in the caller,
/// and a checker that guessed would hide them.
pub fn check<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    budget: u64,
) -> CheckResult {
    for (index, op) in history.iter().enumerate() {
        assert!(
            op.call <= op.ret,
            "operation {index} returns at {} before its call at {}",
            op.ret,
            op.call
        );
    }
    let mut remaining = budget;
    for part in model.partition(history) {
        match search::search(model, history, &part, &mut remaining) {
            search::Outcome::Linearizable => {}
            search::Outcome::Exhausted(furthest) => {
                return CheckResult::Unknown {
                    partition: model.describe_partition(history, &part),
                    steps: budget,
                    furthest: furthest.map(|f| search::explain(model, history, &part, f)),
                };
            }
            search::Outcome::Illegal(deepest) => {
                return CheckResult::Illegal(search::explain(model, history, &part, deepest));
            }
        }
    }
    CheckResult::Ok
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A register of one small number, to test the generic machinery without the KV model.
    struct Register;

    #[derive(Debug, PartialEq, Eq, Hash)]
    enum Reg {
        Write(u8),
        Read,
    }

    impl Model for Register {
        type State = u8;
        type Input = Reg;
        type Output = u8;

        fn init(&self) -> u8 {
            0
        }

        fn step(&self, state: &u8, input: &Reg, output: &u8) -> Option<u8> {
            match input {
                Reg::Write(v) => Some(*v),
                Reg::Read => (output == state).then_some(*state),
            }
        }
    }

    fn op(call: u64, ret: u64, input: Reg, output: u8) -> Operation<Reg, u8> {
        Operation {
            client: call,
            call,
            ret,
            input,
            output,
        }
    }

    #[test]
    fn empty_history_is_linearizable() {
        assert_eq!(check(&Register, &[], 10), CheckResult::Ok);
    }

    #[test]
    fn real_time_order_is_respected() {
        let ok = [op(0, 1, Reg::Write(1), 0), op(2, 3, Reg::Read, 1)];
        assert_eq!(check(&Register, &ok, 100), CheckResult::Ok);
        let stale = [op(0, 1, Reg::Write(1), 0), op(2, 3, Reg::Read, 0)];
        assert!(check(&Register, &stale, 100).is_illegal());
    }

    #[test]
    fn equal_timestamps_are_concurrent() {
        // The write returns at 5 and the read is called at 5: neither precedes the other,
        // so the read may still see the old value.
        let tie = [op(0, 5, Reg::Write(1), 0), op(5, 6, Reg::Read, 0)];
        assert_eq!(check(&Register, &tie, 100), CheckResult::Ok);
        let after = [op(0, 5, Reg::Write(1), 0), op(6, 7, Reg::Read, 0)];
        assert!(check(&Register, &after, 100).is_illegal());
    }

    #[test]
    fn instantaneous_operations_are_allowed() {
        let h = [op(3, 3, Reg::Write(7), 0), op(4, 4, Reg::Read, 7)];
        assert_eq!(check(&Register, &h, 100), CheckResult::Ok);
    }

    #[test]
    fn exhausted_budget_is_unknown_not_ok() {
        let h = [op(0, 1, Reg::Write(1), 0), op(2, 3, Reg::Read, 1)];
        let result = check(&Register, &h, 1);
        assert_eq!(
            result,
            CheckResult::Unknown {
                partition: "the whole history".to_owned(),
                steps: 1,
                furthest: None
            }
        );
        assert!(!result.is_ok());
        // Writing first fails at the read's return, the third step; the fourth is cut off.
        let h = [op(0, 10, Reg::Write(1), 0), op(1, 2, Reg::Read, 0)];
        assert_eq!(check(&Register, &h, 100), CheckResult::Ok);
        let CheckResult::Unknown {
            furthest: Some(furthest),
            ..
        } = check(&Register, &h, 3)
        else {
            panic!("out of budget after the first dead end")
        };
        assert_eq!((furthest.prefix, furthest.blocked), (vec![0], 1));
    }

    #[test]
    #[should_panic(expected = "returns at 1 before its call at 2")]
    fn return_before_call_is_rejected() {
        let _ = check(&Register, &[op(2, 1, Reg::Read, 0)], 10);
    }

    #[test]
    fn display_names_the_verdict() {
        assert_eq!(CheckResult::Ok.to_string(), "linearizable");
        let stale = [op(0, 1, Reg::Write(1), 0), op(2, 3, Reg::Read, 0)];
        let text = check(&Register, &stale, 100).to_string();
        assert!(
            text.starts_with("not linearizable: the whole history: "),
            "{text}"
        );
    }
}
