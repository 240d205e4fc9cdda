//! The sequential specification of KubeRaft's key-value API, checked one key at a time:
//! keys are independent registers, so a history is linearizable iff each key's is.

use std::collections::BTreeMap;

use super::{CheckResult, Model, Operation, UnknownOutput, check};

/// A client request to the KV store.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KvInput {
    Put { key: Vec<u8>, value: Vec<u8> },
    Get { key: Vec<u8> },
    Delete { key: Vec<u8> },
    /// Sets `new` iff the current value is `expected` (`None`: the key is absent).
    Cas { key: Vec<u8>, expected: Option<Vec<u8>>, new: Vec<u8> },
}

impl KvInput {
    pub fn put(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        Self::Put { key: key.into(), value: value.into() }
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
        Self::Cas { key: key.into(), expected: expected.map(Into::into), new: new.into() }
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
                Some(if succeeds { Some(new.clone()) } else { state.clone() })
            }
            _ => None,
        }
    }

    /// One part per key, in key order. A `Get` with an unknown output changes nothing and
    /// constrains nothing, so it is left out: it would only widen the search.
    fn partition(&self, history: &[KvOperation]) -> Vec<Vec<usize>> {
        let mut by_key: BTreeMap<&[u8], Vec<usize>> = BTreeMap::new();
        for (index, op) in history.iter().enumerate() {
            if matches!((&op.input, &op.output), (KvInput::Get { .. }, KvOutput::Unknown)) {
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
                format!("cas {} from {} to {}", bytes(key), value(expected.as_deref()), bytes(new))
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

/// Checks a KV history key by key; see [`check`].
pub fn check_kv(history: &[KvOperation], budget: u64) -> CheckResult {
    check(&KvModel, history, budget)
}

/// Keys and values as text when they are printable, else as hex.
fn bytes(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(text) if text.chars().all(|c| !c.is_control()) => format!("{text:?}"),
        _ => b.iter().fold("0x".to_owned(), |acc, byte| acc + &format!("{byte:02x}")),
    }
}

fn value(v: Option<&[u8]>) -> String {
    v.map_or_else(|| "absent".to_owned(), bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linearizability::{NO_RETURN, Violation};

    const BUDGET: u64 = 100_000;

    fn op(client: u64, call: u64, ret: u64, input: KvInput, output: KvOutput) -> KvOperation {
        Operation { client, call, ret, input, output }
    }

    fn put(client: u64, call: u64, ret: u64, key: &str, value: &str) -> KvOperation {
        op(client, call, ret, KvInput::put(key, value), KvOutput::Ok)
    }

    fn get(client: u64, call: u64, ret: u64, key: &str, seen: Option<&str>) -> KvOperation {
        op(client, call, ret, KvInput::get(key), KvOutput::Value(seen.map(Into::into)))
    }

    fn cas(client: u64, call: u64, ret: u64, from: Option<&str>, to: &str, ok: bool) -> KvOperation {
        op(client, call, ret, KvInput::cas("x", from, to), KvOutput::Cas { succeeded: ok })
    }

    fn unknown(client: u64, call: u64, input: KvInput) -> KvOperation {
        op(client, call, NO_RETURN, input, KvOutput::Unknown)
    }

    fn violation(history: &[KvOperation]) -> Violation {
        match check_kv(history, BUDGET) {
            CheckResult::Illegal(v) => v,
            other => panic!("expected a violation, got {other}"),
        }
    }

    #[test]
    fn sequential_history_is_linearizable() {
        let h = [
            get(1, 0, 1, "x", None),
            put(1, 2, 3, "x", "1"),
            get(2, 4, 5, "x", Some("1")),
            op(2, 6, 7, KvInput::delete("x"), KvOutput::Ok),
            get(1, 8, 9, "x", None),
        ];
        assert_eq!(check_kv(&h, BUDGET), CheckResult::Ok);
    }

    #[test]
    fn stale_read_after_completed_write_is_illegal() {
        let h = [put(1, 0, 1, "x", "1"), put(1, 2, 3, "x", "2"), get(2, 4, 5, "x", Some("1"))];
        let v = violation(&h);
        assert_eq!(v.partition, r#"key "x""#);
        assert_eq!((v.prefix.as_slice(), v.blocked), ([0, 1].as_slice(), 2));
        assert!(v.explanation.contains(r#"#2 (client 2, called 4, returned 5) get "x" -> "1""#));
        assert!(v.explanation.contains(r#"state then "2""#), "{}", v.explanation);
    }

    #[test]
    fn reads_disagreeing_on_the_order_of_concurrent_writes_are_illegal() {
        // Both writes span the reads. Client 3 sees 1 then 2, client 4 sees 2 then 1: no
        // single order of the writes explains both.
        let h = [
            put(1, 0, 20, "x", "1"),
            put(2, 0, 20, "x", "2"),
            get(3, 1, 2, "x", Some("1")),
            get(4, 1, 2, "x", Some("2")),
            get(3, 3, 4, "x", Some("2")),
            get(4, 3, 4, "x", Some("1")),
        ];
        violation(&h);
        // Either order alone is fine.
        assert_eq!(check_kv(&h[..5], BUDGET), CheckResult::Ok);
    }

    #[test]
    fn read_of_new_value_then_old_value_is_illegal() {
        let h = [
            put(1, 0, 10, "x", "1"),
            get(2, 1, 2, "x", Some("1")),
            get(3, 3, 4, "x", None),
        ];
        assert_eq!(violation(&h).blocked, 2);
        // Concurrent reads may disagree: the write can fall between them.
        let h = [put(1, 0, 10, "x", "1"), get(2, 1, 4, "x", Some("1")), get(3, 1, 4, "x", None)];
        assert_eq!(check_kv(&h, BUDGET), CheckResult::Ok);
    }

    #[test]
    fn lost_write_is_illegal() {
        let h = [put(1, 0, 1, "x", "1"), put(2, 0, 2, "x", "2"), get(3, 3, 4, "x", None)];
        assert_eq!(violation(&h).blocked, 2);
    }

    #[test]
    fn cas_cannot_succeed_twice_from_the_same_value() {
        let h = [
            put(1, 0, 1, "x", "a"),
            cas(2, 2, 5, Some("a"), "b", true),
            cas(3, 3, 6, Some("a"), "c", true),
        ];
        violation(&h);
        // ... unless something concurrent wrote the expected value back in between.
        let mut h = h.to_vec();
        h.push(put(4, 2, 6, "x", "a"));
        assert_eq!(check_kv(&h, BUDGET), CheckResult::Ok);
    }

    #[test]
    fn cas_outcome_must_match_the_state() {
        let ok = [cas(1, 0, 1, None, "a", true), cas(1, 2, 3, None, "b", false)];
        assert_eq!(check_kv(&ok, BUDGET), CheckResult::Ok);
        let wrong = [cas(1, 0, 1, None, "a", true), cas(1, 2, 3, Some("a"), "b", false)];
        violation(&wrong);
    }

    #[test]
    fn unknown_write_may_take_effect_late_or_never() {
        let late = [
            unknown(1, 0, KvInput::put("x", "1")),
            get(2, 1, 2, "x", None),
            get(2, 3, 4, "x", Some("1")),
        ];
        assert_eq!(check_kv(&late, BUDGET), CheckResult::Ok);
        let never = [unknown(1, 0, KvInput::put("x", "1")), get(2, 1, 2, "x", None)];
        assert_eq!(check_kv(&never, BUDGET), CheckResult::Ok);
        // But once seen it cannot be undone.
        let undone = [
            unknown(1, 0, KvInput::put("x", "1")),
            get(2, 1, 2, "x", Some("1")),
            get(2, 3, 4, "x", None),
        ];
        assert_eq!(violation(&undone).blocked, 2);
        // Nor can it take effect before it was called.
        let early = [get(2, 0, 1, "x", Some("1")), unknown(1, 2, KvInput::put("x", "1"))];
        assert_eq!(violation(&early).blocked, 0);
    }

    #[test]
    fn unknown_cas_applies_only_where_it_would_succeed() {
        let h = [
            put(1, 0, 1, "x", "a"),
            unknown(2, 2, KvInput::cas("x", Some("a"), "b")),
            put(1, 3, 4, "x", "c"),
            get(3, 5, 6, "x", Some("b")),
        ];
        // The CAS can only succeed before the put of "c", so "b" cannot be read after it.
        violation(&h);
        let h = [
            put(1, 0, 1, "x", "a"),
            unknown(2, 2, KvInput::cas("x", Some("a"), "b")),
            get(3, 3, 4, "x", Some("b")),
        ];
        assert_eq!(check_kv(&h, BUDGET), CheckResult::Ok);
    }

    #[test]
    fn unknown_operation_with_a_finite_return_must_take_effect() {
        let h = [op(1, 0, 1, KvInput::put("x", "1"), KvOutput::Unknown), get(2, 2, 3, "x", None)];
        violation(&h);
    }

    #[test]
    fn concurrent_operations_may_take_effect_in_any_order() {
        let h = [
            put(1, 0, 10, "x", "1"),
            put(2, 1, 11, "x", "2"),
            get(3, 2, 3, "x", Some("2")),
            get(3, 4, 5, "x", Some("1")),
            op(4, 0, 12, KvInput::delete("x"), KvOutput::Ok),
            get(3, 13, 14, "x", None),
        ];
        assert_eq!(check_kv(&h, BUDGET), CheckResult::Ok);
        // Put 2 took effect before the read at 2..3 and put 1 after it: 2 is gone for good.
        let mut h = h.to_vec();
        h[5] = get(3, 13, 14, "x", Some("2"));
        violation(&h);
    }

    #[test]
    fn output_of_the_wrong_kind_is_illegal() {
        let h = [op(1, 0, 1, KvInput::put("x", "1"), KvOutput::Value(None))];
        violation(&h);
    }

    #[test]
    fn keys_are_checked_independently() {
        // Interleaved in time, each key linearizable on its own; a single register would
        // reject the reads.
        let h = [
            put(1, 0, 1, "a", "1"),
            put(2, 2, 3, "b", "2"),
            get(3, 4, 5, "a", Some("1")),
            get(3, 6, 7, "b", Some("2")),
        ];
        assert_eq!(check_kv(&h, BUDGET), CheckResult::Ok);
        let mut h = h.to_vec();
        h.push(get(4, 8, 9, "b", None));
        let v = violation(&h);
        assert_eq!(v.partition, r#"key "b""#);
        assert_eq!((v.prefix.as_slice(), v.blocked), ([1, 3].as_slice(), 4));
    }

    #[test]
    fn partition_groups_by_key_and_drops_unknown_reads() {
        let h = [
            put(1, 0, 1, "b", "1"),
            get(2, 0, 1, "a", None),
            unknown(3, 0, KvInput::get("b")),
            unknown(3, 2, KvInput::delete("b")),
        ];
        assert_eq!(KvModel.partition(&h), [vec![1], vec![0, 3]]);
    }

    #[test]
    fn binary_keys_and_values_are_shown_in_hex() {
        let h = [
            op(1, 0, 1, KvInput::put(vec![0, 255], vec![1]), KvOutput::Ok),
            op(1, 2, 3, KvInput::get(vec![0, 255]), KvOutput::Value(None)),
        ];
        let v = violation(&h);
        assert_eq!(v.partition, "key 0x00ff");
        assert!(v.explanation.contains("get 0x00ff -> absent"), "{}", v.explanation);
        assert!(v.explanation.contains("state then 0x01"), "{}", v.explanation);
    }
}
