//! Hand-written KV histories, one per anomaly a broken store shows (stale read, lost
//! write, a compare-and-swap that succeeded twice, ...) and per rule of the checker
//! (timeouts, concurrency, ties, keys).

use super::{
    CheckResult, KvInput, KvModel, KvOperation, KvOutput, Model, NO_RETURN, Operation, Violation,
    check_kv,
};

const BUDGET: u64 = 100_000;

fn op(client: u64, call: u64, ret: u64, input: KvInput, output: KvOutput) -> KvOperation {
    Operation {
        client,
        call,
        ret,
        input,
        output,
    }
}

fn put(client: u64, call: u64, ret: u64, key: &str, value: &str) -> KvOperation {
    op(client, call, ret, KvInput::put(key, value), KvOutput::Ok)
}

fn get(client: u64, call: u64, ret: u64, key: &str, seen: Option<&str>) -> KvOperation {
    op(
        client,
        call,
        ret,
        KvInput::get(key),
        KvOutput::Value(seen.map(Into::into)),
    )
}

fn cas(client: u64, call: u64, ret: u64, from: Option<&str>, to: &str, ok: bool) -> KvOperation {
    op(
        client,
        call,
        ret,
        KvInput::cas("x", from, to),
        KvOutput::Cas { succeeded: ok },
    )
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
    let h = [
        put(1, 0, 1, "x", "1"),
        put(1, 2, 3, "x", "2"),
        get(2, 4, 5, "x", Some("1")),
    ];
    let v = violation(&h);
    assert_eq!(v.partition, r#"key "x""#);
    assert_eq!((v.prefix.as_slice(), v.blocked), ([0, 1].as_slice(), 2));
    assert!(
        v.explanation
            .contains(r#"#2 (client 2, called 4, returned 5) get "x" -> "1""#)
    );
    assert!(
        v.explanation.contains(r#"the state is then "2""#),
        "{}",
        v.explanation
    );
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
    let h = [
        put(1, 0, 10, "x", "1"),
        get(2, 1, 4, "x", Some("1")),
        get(3, 1, 4, "x", None),
    ];
    assert_eq!(check_kv(&h, BUDGET), CheckResult::Ok);
}

#[test]
fn lost_write_is_illegal() {
    let h = [
        put(1, 0, 1, "x", "1"),
        put(2, 0, 2, "x", "2"),
        get(3, 3, 4, "x", None),
    ];
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
    let ok = [
        cas(1, 0, 1, None, "a", true),
        cas(1, 2, 3, None, "b", false),
    ];
    assert_eq!(check_kv(&ok, BUDGET), CheckResult::Ok);
    let wrong = [
        cas(1, 0, 1, None, "a", true),
        cas(1, 2, 3, Some("a"), "b", false),
    ];
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
    let never = [
        unknown(1, 0, KvInput::put("x", "1")),
        get(2, 1, 2, "x", None),
    ];
    assert_eq!(check_kv(&never, BUDGET), CheckResult::Ok);
    // But once seen it cannot be undone.
    let undone = [
        unknown(1, 0, KvInput::put("x", "1")),
        get(2, 1, 2, "x", Some("1")),
        get(2, 3, 4, "x", None),
    ];
    assert_eq!(violation(&undone).blocked, 2);
    // Nor can it take effect before it was called.
    let early = [
        get(2, 0, 1, "x", Some("1")),
        unknown(1, 2, KvInput::put("x", "1")),
    ];
    assert_eq!(violation(&early).blocked, 0);
}

#[test]
fn a_pending_operation_may_be_left_out_whatever_its_output() {
    // A read that never returned constrains nothing, even with an impossible value.
    let h = [
        put(1, 0, 1, "x", "1"),
        op(
            2,
            2,
            NO_RETURN,
            KvInput::get("x"),
            KvOutput::Value(Some(b"9".to_vec())),
        ),
        get(3, 3, 4, "x", Some("1")),
    ];
    assert_eq!(check_kv(&h, BUDGET), CheckResult::Ok);
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
    let h = [
        op(1, 0, 1, KvInput::put("x", "1"), KvOutput::Unknown),
        get(2, 2, 3, "x", None),
    ];
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
fn output_of_the_wrong_kind_is_illegal() {
    let h = [op(1, 0, 1, KvInput::put("x", "1"), KvOutput::Value(None))];
    violation(&h);
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
    assert!(
        v.explanation.contains("get 0x00ff -> absent"),
        "{}",
        v.explanation
    );
    assert!(
        v.explanation.contains("the state is then 0x01"),
        "{}",
        v.explanation
    );
}
