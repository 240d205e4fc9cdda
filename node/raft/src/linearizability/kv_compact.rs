//! What [`super::check_kv`] actually searches: the history with every value interned as a
//! number, so a step neither allocates nor hashes bytes, and with every written value that
//! nobody reads merged into one. Such a value can only ever compare unequal, so merging
//! changes no verdict, and it turns the timed-out writes of them into interchangeable
//! twins that the search tries once instead of one by one.

use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};

use super::{CheckResult, KvInput, KvModel, KvOperation, KvOutput, Model, Operation, check};

/// An interned value. [`UNREAD`] stands for every value that no read returns and no
/// compare-and-swap expects.
type Id = u32;
const UNREAD: Id = 0;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Input {
    Put(Id),
    Get,
    Delete,
    Cas { expected: Option<Id>, new: Id },
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Output {
    Ok,
    Value(Option<Id>),
    Cas(bool),
    Unknown,
}

/// A compact input or output that compares and hashes as `compact` and prints as the
/// `original` the client saw, so reports speak of the real history.
struct Shown<'a, C, T> {
    compact: C,
    original: &'a T,
}

impl<C: PartialEq, T> PartialEq for Shown<'_, C, T> {
    fn eq(&self, other: &Self) -> bool {
        self.compact == other.compact
    }
}

impl<C: Eq, T> Eq for Shown<'_, C, T> {}

impl<C: Hash, T> Hash for Shown<'_, C, T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.compact.hash(state);
    }
}

impl<C, T: fmt::Debug> fmt::Debug for Shown<'_, C, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.original.fmt(f)
    }
}

/// The value of the key: compared and hashed by id, shown as the bytes last written (one
/// of the values behind [`UNREAD`], for a merged one).
#[derive(Clone, Copy)]
struct Value<'a> {
    id: Option<Id>,
    bytes: Option<&'a [u8]>,
}

impl PartialEq for Value<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for Value<'_> {}

impl Hash for Value<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

impl fmt::Debug for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.bytes.fmt(f)
    }
}

/// [`KvModel`] over interned values.
struct Compact<'a> {
    original: &'a [KvOperation],
}

impl<'a> Model for Compact<'a> {
    type State = Value<'a>;
    type Input = Shown<'a, Input, KvInput>;
    type Output = Shown<'a, Output, KvOutput>;

    fn init(&self) -> Value<'a> {
        Value {
            id: None,
            bytes: None,
        }
    }

    fn step(
        &self,
        state: &Value<'a>,
        input: &Self::Input,
        output: &Self::Output,
    ) -> Option<Value<'a>> {
        let written = |id| {
            let bytes = match input.original {
                KvInput::Put { value, .. } | KvInput::Cas { new: value, .. } => value.as_slice(),
                KvInput::Get { .. } | KvInput::Delete { .. } => unreachable!("writes nothing"),
            };
            Value {
                id: Some(id),
                bytes: Some(bytes),
            }
        };
        match (input.compact, output.compact) {
            (Input::Put(value), Output::Ok | Output::Unknown) => Some(written(value)),
            (Input::Delete, Output::Ok | Output::Unknown) => Some(Value {
                id: None,
                bytes: None,
            }),
            (Input::Get, Output::Value(seen)) => (seen == state.id).then_some(*state),
            (Input::Get, Output::Unknown) => Some(*state),
            (Input::Cas { expected, new }, Output::Cas(_) | Output::Unknown) => {
                let succeeds = state.id == expected;
                match output.compact {
                    Output::Cas(succeeded) if succeeded != succeeds => None,
                    _ => Some(if succeeds { written(new) } else { *state }),
                }
            }
            _ => None,
        }
    }

    fn partition(&self, _: &[Operation<Self::Input, Self::Output>]) -> Vec<Vec<usize>> {
        KvModel.partition(self.original)
    }

    fn describe_partition(
        &self,
        _: &[Operation<Self::Input, Self::Output>],
        part: &[usize],
    ) -> String {
        KvModel.describe_partition(self.original, part)
    }

    fn describe_operation(&self, input: &Self::Input, output: &Self::Output) -> String {
        KvModel.describe_operation(input.original, output.original)
    }

    fn describe_state(&self, state: &Value<'a>) -> String {
        KvModel.describe_state(&state.bytes.map(<[u8]>::to_vec))
    }
}

/// Interns the values that are read; every other value is [`UNREAD`].
#[derive(Default)]
struct Interner<'a> {
    ids: HashMap<&'a [u8], Id>,
}

impl<'a> Interner<'a> {
    fn read(&mut self, value: &'a [u8]) {
        let next = Id::try_from(self.ids.len() + 1).expect("fewer than 2^32 distinct values");
        self.ids.entry(value).or_insert(next);
    }

    fn written(&self, value: &[u8]) -> Id {
        self.ids.get(value).copied().unwrap_or(UNREAD)
    }
}

/// [`super::check_kv`]: checks the compact history, whose indices are the original's.
pub(super) fn check_kv(history: &[KvOperation], budget: u64) -> CheckResult {
    let mut interner = Interner::default();
    for op in history {
        if let KvOutput::Value(Some(value)) = &op.output {
            interner.read(value);
        }
        if let KvInput::Cas {
            expected: Some(value),
            ..
        } = &op.input
        {
            interner.read(value);
        }
    }
    let compact: Vec<_> = history
        .iter()
        .map(|op| {
            let input = match &op.input {
                KvInput::Put { value, .. } => Input::Put(interner.written(value)),
                KvInput::Get { .. } => Input::Get,
                KvInput::Delete { .. } => Input::Delete,
                KvInput::Cas { expected, new, .. } => Input::Cas {
                    expected: expected.as_deref().map(|e| interner.written(e)),
                    new: interner.written(new),
                },
            };
            let output = match &op.output {
                KvOutput::Ok => Output::Ok,
                KvOutput::Value(seen) => {
                    Output::Value(seen.as_deref().map(|v| interner.written(v)))
                }
                KvOutput::Cas { succeeded } => Output::Cas(*succeeded),
                KvOutput::Unknown => Output::Unknown,
            };
            Operation {
                client: op.client,
                call: op.call,
                ret: op.ret,
                input: Shown {
                    compact: input,
                    original: &op.input,
                },
                output: Shown {
                    compact: output,
                    original: &op.output,
                },
            }
        })
        .collect();
    check(&Compact { original: history }, &compact, budget)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linearizability::NO_RETURN;

    fn op(call: u64, ret: u64, input: KvInput, output: KvOutput) -> KvOperation {
        Operation {
            client: 1,
            call,
            ret,
            input,
            output,
        }
    }

    #[test]
    fn reports_name_the_original_values() {
        let h = [
            op(
                0,
                NO_RETURN,
                KvInput::put("x", "never read"),
                KvOutput::Unknown,
            ),
            op(2, 3, KvInput::put("x", "read"), KvOutput::Ok),
            op(
                4,
                5,
                KvInput::get("x"),
                KvOutput::Value(Some(b"read".to_vec())),
            ),
            op(6, 7, KvInput::get("x"), KvOutput::Value(None)),
        ];
        let CheckResult::Illegal(v) = check_kv(&h, 1000) else {
            panic!("the last read is stale")
        };
        assert_eq!(v.blocked, 3);
        assert!(
            v.explanation.contains(r#"get "x" -> "read""#),
            "{}",
            v.explanation
        );
        assert!(
            v.explanation.contains(r#"state is then "read""#),
            "{}",
            v.explanation
        );
    }

    #[test]
    fn a_value_expected_by_a_failed_cas_stays_distinct() {
        // Were "w" merged with the unread "z", the CAS could fail without the pending put.
        let h = [
            op(0, 1, KvInput::put("x", "w"), KvOutput::Ok),
            op(2, NO_RETURN, KvInput::put("x", "z"), KvOutput::Unknown),
            op(
                3,
                4,
                KvInput::cas("x", Some("w"), "v"),
                KvOutput::Cas { succeeded: false },
            ),
        ];
        assert!(
            check_kv(&h, 1000).is_ok(),
            "the pending put may explain the failure"
        );
        assert!(check_kv(&[h[0].clone(), h[2].clone()], 1000).is_illegal());
    }

    #[test]
    fn unread_values_are_told_apart_from_absence_and_from_read_values() {
        let h = [
            op(0, 1, KvInput::put("x", "a"), KvOutput::Ok),
            op(2, 3, KvInput::get("x"), KvOutput::Value(None)),
        ];
        let CheckResult::Illegal(v) = check_kv(&h, 1000) else {
            panic!("absent after a put")
        };
        assert!(v.explanation.contains(r#"state is then "a""#), "{v}");
        let h = [
            op(0, 1, KvInput::put("x", "a"), KvOutput::Ok),
            op(
                2,
                3,
                KvInput::get("x"),
                KvOutput::Value(Some(b"b".to_vec())),
            ),
        ];
        assert!(check_kv(&h, 1000).is_illegal());
    }
}
