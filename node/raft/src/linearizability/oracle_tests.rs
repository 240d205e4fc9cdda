//! The checker against a brute-force oracle on small arbitrary histories, linearizable or
//! not: every pruning rule of the search must keep its verdict exact.

use proptest::prelude::*;

use super::{
    CheckResult, KvInput, KvModel, KvOperation, KvOutput, Model, NO_RETURN, check, check_kv,
};

/// Tries every order that respects real time, with every subset of the pending
/// operations, with no memo and no pruning: slow, obviously right.
fn brute_force(h: &[KvOperation]) -> bool {
    fn go(h: &[KvOperation], placed: &mut Vec<bool>, state: &Option<Vec<u8>>) -> bool {
        let done = (0..h.len()).all(|i| placed[i] || h[i].ret == NO_RETURN);
        if done {
            return true;
        }
        for i in 0..h.len() {
            // i may go next unless some unplaced operation returned before i was called.
            if placed[i] || (0..h.len()).any(|k| !placed[k] && h[k].ret < h[i].call) {
                continue;
            }
            if let Some(next) = KvModel.step(state, &h[i].input, &h[i].output) {
                placed[i] = true;
                let found = go(h, placed, &next);
                placed[i] = false;
                if found {
                    return true;
                }
            }
        }
        false
    }
    go(h, &mut vec![false; h.len()], &None)
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![Just(b"a".to_vec()), Just(b"b".to_vec())]
}

/// An operation on key "x" with an arbitrary, often impossible, output.
fn operation() -> impl Strategy<Value = KvOperation> {
    let input = prop_oneof![
        3 => value().prop_map(|v| KvInput::put("x", v)),
        3 => Just(KvInput::get("x")),
        1 => Just(KvInput::delete("x")),
        2 => (prop::option::of(value()), value()).prop_map(|(e, n)| KvInput::cas("x", e, n)),
    ];
    let ret = prop_oneof![3 => (0..6u64).prop_map(Some), 1 => Just(None)];
    (
        input,
        0..12u64,
        ret,
        any::<bool>(),
        prop::option::of(value()),
        0..6u64,
    )
        .prop_map(|(input, call, ret, flag, seen, client)| {
            let output = match (&input, ret) {
                (_, None) => KvOutput::Unknown,
                _ if client == 0 => KvOutput::Unknown,
                (KvInput::Get { .. }, _) => KvOutput::Value(seen),
                (KvInput::Cas { .. }, _) => KvOutput::Cas { succeeded: flag },
                _ => KvOutput::Ok,
            };
            let ret = ret.map_or(NO_RETURN, |len| call + len);
            KvOperation {
                client,
                call,
                ret,
                input,
                output,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(5000))]

    #[test]
    fn verdict_matches_brute_force(h in prop::collection::vec(operation(), 1..10)) {
        let expected = brute_force(&h);
        // The plain model and the compact one behind check_kv must agree with it.
        prop_assert_eq!(check(&KvModel, &h, 1_000_000).is_ok(), expected);
        match check_kv(&h, 1_000_000) {
            CheckResult::Ok => prop_assert!(expected, "accepted a non-linearizable history"),
            CheckResult::Illegal(v) => prop_assert!(!expected, "rejected a linearizable one: {v}"),
            other @ CheckResult::Unknown { .. } => prop_assert!(false, "{other}"),
        }
    }
}

#[test]
fn oracle_sees_the_basic_cases() {
    let op = |call, ret, input, output| KvOperation {
        client: 1,
        call,
        ret,
        input,
        output,
    };
    let stale = [
        op(0, 1, KvInput::put("x", "a"), KvOutput::Ok),
        op(2, 3, KvInput::get("x"), KvOutput::Value(None)),
    ];
    assert!(!brute_force(&stale));
    let pending = [
        op(0, NO_RETURN, KvInput::put("x", "a"), KvOutput::Unknown),
        op(2, 3, KvInput::get("x"), KvOutput::Value(None)),
    ];
    assert!(brute_force(&pending));
}
