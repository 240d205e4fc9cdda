//! The sequential specification of KubeRaft's key-value API, checked one key at a time:
//! keys are independent registers, so a history is linearizable iff each key's is.

use std::collections::BTreeMap;

use super::{CheckResult, Model, Operation, UnknownOutput};

/// A client request to the KV store.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KvInput {
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Get {
        key: Vec<u8>,
    },
    Delete {
        key: Vec<u8>,
    },
    /// Sets `new` iff the current value is `expected` (`None`: the key is absent).
    Cas {
        key: Vec<u8>,
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
    },
}

impl KvInput {
    pub fn put(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        Self::Put {
            key: key.into(),
            value: value.into(),
        }
    }

    pub fn get(key: impl Into<Vec<u8>>) -> Self {
        Self::Get { key: key.into() }
    }

    pub fn delete(key: impl Into<Vec<u8>>) -> Self {
        Self::Delete { key: key.into() }
    }

    pub fn cas(
        key: impl Into<Vec<u8>>,
        expected: Option<impl Into<Vec<u8>>>,
        new: impl Into<Vec<u8>>,
    ) -> Self {
        Self::Cas {
            key: key.into(),
            expected: expected.map(Into::into),
            new: new.into(),
        }
    }

    pub fn key(&self) -> &[u8] {
        match self {
            Self::Put { key, .. }
            | Self::Get { key }
            | Self::Delete { key }
            | Self::Cas { key, .. } => key,
        }
    }
}

/// What the client was told. An output of the wrong kind for its input (a `Put`
/// answered by a `Value`) is accepted in no state, so it shows up as a violation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KvOutput {
    /// The answer to `Put` and `Delete`.
    Ok,
    /// The answer to `Get`: the value, or `None` if the key is absent.
    Value(Option<Vec<u8>>),
    /// The answer to `Cas`.
    Cas { succeeded: bool },
    /// The client timed out or got an ambiguous error: the operation may or may not have
    /// taken effect. Pair it with `ret = NO_RETURN` so that "not at all" is possible.
    Unknown,
}

impl UnknownOutput for KvOutput {
    fn unknown() -> Self {
        Self::Unknown
    }
}

/// One KV client operation.
pub type KvOperation = Operation<KvInput, KvOutput>;

/// The KV store as one register per key. Its state is the value of the single key of the
/// partition being checked, which is sound because [`Model::partition`] splits by key.
#[derive(Clone, Copy, Debug, Default)]
pub struct KvModel;

impl Model for KvModel {
    type State = Option<Vec<u8>>;
    type Input = KvInput;
    type Output = KvOutput;

    fn init(&self) -> Self::State {
        None
    }

    fn step(&self, state: &Self::State, input: &KvInput, output: &KvOutput) -> Option<Self::State> {
        match (input, output) {
            (KvInput::Put { value, .. }, KvOutput::Ok | KvOutput::Unknown) => {
                Some(Some(value.clone()))
            }
            (KvInput::Delete { .. }, KvOutput::Ok | KvOutput::Unknown) => Some(None),
            (KvInput::Get { .. }, KvOutput::Value(seen)) => (seen == state).then(|| state.clone()),
            (KvInput::Get { .. }, KvOutput::Unknown) => Some(state.clone()),
            (KvInput::Cas { expected, new, .. }, KvOutput::Cas { .. } | KvOutput::Unknown) => {
                let succeeds = state == expected;
                if let KvOutput::Cas { succeeded } = output
                    && *succeeded != succeeds
                {
                    return None;
                }
                Some(if succeeds {
                    Some(new.clone())
                } else {
                    state.clone()
                })
            }
            _ => None,
        }
    }

    /// One part per key, in key order. A `Get` with an unknown output changes nothing and
    /// constrains nothing, so it is left out: it would only widen the search.
    fn partition(&self, history: &[KvOperation]) -> Vec<Vec<usize>> {
        let mut by_key: BTreeMap<&[u8], Vec<usize>> = BTreeMap::new();
        for (index, op) in history.iter().enumerate() {
            if matches!(
                (&op.input, &op.output),
                (KvInput::Get { .. }, KvOutput::Unknown)
            ) {
                continue;
            }
            by_key.entry(op.input.key()).or_default().push(index);
        }
        by_key.into_values().collect()
    }

    fn describe_partition(&self, history: &[KvOperation], partition: &[usize]) -> String {
        match partition.first() {
            Some(&index) => format!("key {}", bytes(history[index].input.key())),
            None => "no operations".to_owned(),
        }
    }

    fn describe_operation(&self, input: &KvInput, output: &KvOutput) -> String {
        let input = match input {
            KvInput::Put { key, value } => format!("put {} = {}", bytes(key), bytes(value)),
            KvInput::Get { key } => format!("get {}", bytes(key)),
            KvInput::Delete { key } => format!("delete {}", bytes(key)),
            KvInput::Cas { key, expected, new } => {
                format!(
                    "cas {} from {} to {}",
                    bytes(key),
                    value(expected.as_deref()),
                    bytes(new)
                )
            }
        };
        let output = match output {
            KvOutput::Ok => "ok".to_owned(),
            KvOutput::Value(seen) => value(seen.as_deref()),
            KvOutput::Cas { succeeded: true } => "succeeded".to_owned(),
            KvOutput::Cas { succeeded: false } => "failed".to_owned(),
            KvOutput::Unknown => "unknown".to_owned(),
        };
        format!("{input} -> {output}")
    }

    fn describe_state(&self, state: &Self::State) -> String {
        value(state.as_deref())
    }
}

/// Checks a KV history key by key. The verdict is that of
/// `check(&KvModel, history, budget)`, but the search runs on interned values with every
/// value that nobody reads merged into one, which is several times faster, and far faster
/// when many writes timed out.
pub fn check_kv(history: &[KvOperation], budget: u64) -> CheckResult {
    super::kv_compact::check_kv(history, budget)
}

/// Keys and values as text when they are printable, else as hex.
fn bytes(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(text) if text.chars().all(|c| !c.is_control()) => format!("{text:?}"),
        _ => b
            .iter()
            .fold("0x".to_owned(), |acc, byte| acc + &format!("{byte:02x}")),
    }
}

fn value(v: Option<&[u8]>) -> String {
    v.map_or_else(|| "absent".to_owned(), bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Option<Vec<u8>> {
        Some(text.as_bytes().to_vec())
    }

    #[test]
    fn step_follows_the_kv_api() {
        let cas = |from: Option<&str>| KvInput::cas("k", from, "new");
        let cases = [
            (None, KvInput::put("k", "a"), KvOutput::Ok, Some(v("a"))),
            (
                v("a"),
                KvInput::put("k", "b"),
                KvOutput::Unknown,
                Some(v("b")),
            ),
            (
                v("a"),
                KvInput::get("k"),
                KvOutput::Value(v("a")),
                Some(v("a")),
            ),
            (v("a"), KvInput::get("k"), KvOutput::Value(None), None),
            (None, KvInput::get("k"), KvOutput::Value(None), Some(None)),
            (v("a"), KvInput::get("k"), KvOutput::Unknown, Some(v("a"))),
            (v("a"), KvInput::delete("k"), KvOutput::Ok, Some(None)),
            (None, KvInput::delete("k"), KvOutput::Unknown, Some(None)),
            (
                v("a"),
                cas(Some("a")),
                KvOutput::Cas { succeeded: true },
                Some(v("new")),
            ),
            (
                v("a"),
                cas(Some("a")),
                KvOutput::Cas { succeeded: false },
                None,
            ),
            (
                v("b"),
                cas(Some("a")),
                KvOutput::Cas { succeeded: false },
                Some(v("b")),
            ),
            (
                v("b"),
                cas(Some("a")),
                KvOutput::Cas { succeeded: true },
                None,
            ),
            (
                None,
                cas(None),
                KvOutput::Cas { succeeded: true },
                Some(v("new")),
            ),
            (v("a"), cas(None), KvOutput::Unknown, Some(v("a"))),
            (None, cas(None), KvOutput::Unknown, Some(v("new"))),
            // An answer of the wrong kind fits no state.
            (None, KvInput::put("k", "a"), KvOutput::Value(None), None),
            (None, KvInput::get("k"), KvOutput::Ok, None),
        ];
        for (state, input, output, expected) in cases {
            assert_eq!(
                KvModel.step(&state, &input, &output),
                expected,
                "{input:?} -> {output:?}"
            );
        }
    }

    #[test]
    fn bytes_are_text_when_printable_else_hex() {
        assert_eq!(bytes(b"key 1"), r#""key 1""#);
        assert_eq!(bytes(&[0, 255]), "0x00ff");
        assert_eq!(bytes(b"a\n"), "0x610a");
        assert_eq!(value(None), "absent");
    }
}
