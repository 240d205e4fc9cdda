//! Unit tests of the KV operations, revisions, encoding and sessions, driven through the
//! byte-level [`StateMachine`] API as the node drives it.

use bytes::Bytes;

use super::*;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn put(key: &str, value: &str) -> WriteOp {
    WriteOp::Put {
        key: b(key),
        value: b(value),
    }
}

fn cas(key: &str, expected: Expected, new_value: Option<&str>) -> WriteOp {
    WriteOp::CompareAndSwap {
        key: b(key),
        expected,
        new_value: new_value.map(b),
    }
}

fn kv(key: &str, value: &str, create: u64, modr: u64, version: u64) -> KeyValue {
    KeyValue {
        key: b(key),
        value: b(value),
        create_revision: create,
        mod_revision: modr,
        version,
    }
}

fn write(sm: &mut KvStateMachine, index: u64, op: WriteOp) -> Response {
    let cmd = Command::Write { session: None, op }.encode();
    Response::decode(&sm.apply(index, &cmd).unwrap()).unwrap()
}

fn session_write(
    sm: &mut KvStateMachine,
    index: u64,
    client_id: u64,
    seq: u64,
    op: WriteOp,
) -> Vec<u8> {
    let session = Some(SessionSeq { client_id, seq });
    sm.apply(index, &Command::Write { session, op }.encode())
        .unwrap()
}

fn get(sm: &KvStateMachine, key: &str) -> Option<KeyValue> {
    let q = Query::Get { key: b(key) }.encode();
    match Response::decode(&sm.query(&q).unwrap()).unwrap() {
        Response::Get { kv, .. } => kv,
        other => panic!("unexpected {other:?}"),
    }
}

fn range(
    sm: &KvStateMachine,
    prefix: &str,
    after: Option<&str>,
    limit: u32,
) -> (Vec<String>, bool) {
    let q = Query::Range {
        prefix: b(prefix),
        after: after.map(b),
        limit,
    };
    match Response::decode(&sm.query(&q.encode()).unwrap()).unwrap() {
        Response::Range { kvs, more, .. } => (
            kvs.iter()
                .map(|kv| String::from_utf8(kv.key.to_vec()).unwrap())
                .collect(),
            more,
        ),
        other => panic!("unexpected {other:?}"),
    }
}

fn open(sm: &mut KvStateMachine, index: u64) -> u64 {
    let r = sm.apply(index, &Command::OpenSession.encode()).unwrap();
    match Response::decode(&r).unwrap() {
        Response::SessionOpened { client_id } => client_id,
        other => panic!("unexpected {other:?}"),
    }
}

fn sm() -> KvStateMachine {
    KvStateMachine::new(KvConfig::default())
}

#[test]
fn put_creates_key_with_its_index_as_revisions() {
    let mut sm = sm();
    assert_eq!(
        write(&mut sm, 3, put("a", "1")),
        Response::Put { revision: 3 }
    );
    assert_eq!(get(&sm, "a"), Some(kv("a", "1", 3, 3, 1)));
    assert_eq!((sm.revision(), sm.applied_index(), sm.len()), (3, 3, 1));
}

#[test]
fn overwrite_bumps_version_and_mod_revision_but_keeps_create_revision() {
    let mut sm = sm();
    write(&mut sm, 1, put("a", "1"));
    write(&mut sm, 2, put("b", "x"));
    write(&mut sm, 4, put("a", "2"));
    assert_eq!(get(&sm, "a"), Some(kv("a", "2", 1, 4, 2)));
    assert_eq!(get(&sm, "b"), Some(kv("b", "x", 2, 2, 1)));
    assert_eq!(sm.revision(), 4);
}

#[test]
fn get_of_absent_key_reports_the_global_revision() {
    let mut sm = sm();
    write(&mut sm, 5, put("a", "1"));
    let r = sm.read(&Query::Get { key: b("zz") });
    assert_eq!(
        r,
        Response::Get {
            kv: None,
            revision: 5
        }
    );
}

#[test]
fn delete_existing_key_bumps_revision_and_absent_key_changes_nothing() {
    let mut sm = sm();
    write(&mut sm, 1, put("a", "1"));
    let del = |key| WriteOp::Delete { key: b(key) };
    assert_eq!(
        write(&mut sm, 2, del("a")),
        Response::Delete {
            deleted: true,
            revision: 2
        }
    );
    assert_eq!(get(&sm, "a"), None);
    assert_eq!(
        write(&mut sm, 3, del("a")),
        Response::Delete {
            deleted: false,
            revision: 2
        }
    );
    assert_eq!((sm.revision(), sm.applied_index()), (2, 3));
}

#[test]
fn recreated_key_starts_a_new_life() {
    let mut sm = sm();
    write(&mut sm, 1, put("a", "1"));
    write(&mut sm, 2, put("a", "2"));
    write(&mut sm, 3, WriteOp::Delete { key: b("a") });
    write(&mut sm, 4, put("a", "3"));
    assert_eq!(get(&sm, "a"), Some(kv("a", "3", 4, 4, 1)));
}

#[test]
fn cas_on_value_succeeds_only_when_it_matches() {
    let mut sm = sm();
    write(&mut sm, 1, put("a", "1"));
    let fail = write(&mut sm, 2, cas("a", Expected::Value(b("0")), Some("2")));
    assert_eq!(
        fail,
        Response::CompareAndSwap {
            succeeded: false,
            revision: 1,
            current: Some(kv("a", "1", 1, 1, 1)),
        }
    );
    assert_eq!(get(&sm, "a"), Some(kv("a", "1", 1, 1, 1)));
    let ok = write(&mut sm, 3, cas("a", Expected::Value(b("1")), Some("2")));
    assert_eq!(
        ok,
        Response::CompareAndSwap {
            succeeded: true,
            revision: 3,
            current: None,
        }
    );
    assert_eq!(get(&sm, "a"), Some(kv("a", "2", 1, 3, 2)));
}

#[test]
fn cas_on_mod_revision_succeeds_only_when_it_matches() {
    let mut sm = sm();
    write(&mut sm, 7, put("a", "1"));
    let fail = write(&mut sm, 8, cas("a", Expected::ModRevision(6), Some("x")));
    assert!(matches!(
        fail,
        Response::CompareAndSwap {
            succeeded: false,
            revision: 7,
            ..
        }
    ));
    let ok = write(&mut sm, 9, cas("a", Expected::ModRevision(7), Some("x")));
    assert!(matches!(
        ok,
        Response::CompareAndSwap {
            succeeded: true,
            revision: 9,
            ..
        }
    ));
    assert_eq!(get(&sm, "a"), Some(kv("a", "x", 7, 9, 2)));
    // An absent key has no revision to match.
    let absent = write(&mut sm, 10, cas("b", Expected::ModRevision(0), Some("y")));
    assert!(matches!(
        absent,
        Response::CompareAndSwap {
            succeeded: false,
            current: None,
            ..
        }
    ));
}

#[test]
fn cas_expecting_absent_creates_once() {
    let mut sm = sm();
    let first = write(&mut sm, 1, cas("lock", Expected::Absent, Some("me")));
    assert!(matches!(
        first,
        Response::CompareAndSwap {
            succeeded: true,
            revision: 1,
            ..
        }
    ));
    let second = write(&mut sm, 2, cas("lock", Expected::Absent, Some("you")));
    assert_eq!(
        second,
        Response::CompareAndSwap {
            succeeded: false,
            revision: 1,
            current: Some(kv("lock", "me", 1, 1, 1)),
        }
    );
    // Expecting a value of an absent key fails too.
    let third = write(&mut sm, 3, cas("other", Expected::Value(b("")), Some("z")));
    assert!(matches!(
        third,
        Response::CompareAndSwap {
            succeeded: false,
            ..
        }
    ));
    assert_eq!(get(&sm, "other"), None);
}

#[test]
fn cas_with_no_new_value_deletes() {
    let mut sm = sm();
    write(&mut sm, 1, put("a", "1"));
    let r = write(&mut sm, 2, cas("a", Expected::Value(b("1")), None));
    assert!(matches!(
        r,
        Response::CompareAndSwap {
            succeeded: true,
            revision: 2,
            ..
        }
    ));
    assert_eq!(get(&sm, "a"), None);
}

#[test]
fn range_honours_prefix_limit_and_more() {
    let mut sm = sm();
    for (i, key) in ["a", "app/1", "app/2", "app/3", "apq", "b"]
        .iter()
        .enumerate()
    {
        write(&mut sm, i as u64 + 1, put(key, "v"));
    }
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        range(&sm, "app/", None, 0),
        (s(&["app/1", "app/2", "app/3"]), false)
    );
    assert_eq!(range(&sm, "app/", None, 2), (s(&["app/1", "app/2"]), true));
    assert_eq!(
        range(&sm, "app/", None, 3),
        (s(&["app/1", "app/2", "app/3"]), false)
    );
    assert_eq!(range(&sm, "app/", Some("app/2"), 2), (s(&["app/3"]), false));
    assert_eq!(range(&sm, "app/", Some("a"), 1), (s(&["app/1"]), true));
    assert_eq!(range(&sm, "zz", None, 5), (s(&[]), false));
    assert_eq!(range(&sm, "", None, 0).0.len(), 6);
    assert_eq!(range(&sm, "", Some("apq"), 0), (s(&["b"]), false));
}

#[test]
fn apply_refuses_an_index_not_after_the_applied_one() {
    let mut sm = sm();
    write(&mut sm, 5, put("a", "1"));
    let before = sm.clone();
    let cmd = Command::Write {
        session: None,
        op: put("a", "2"),
    }
    .encode();
    assert!(matches!(
        sm.apply(5, &cmd),
        Err(Error::IndexNotAfterApplied {
            index: 5,
            applied: 5
        })
    ));
    assert!(sm.apply(4, &cmd).is_err());
    assert!(KvStateMachine::default().apply(0, &cmd).is_err());
    assert_eq!(sm, before);
}

#[test]
fn undecodable_command_is_an_error_response_and_still_applied() {
    let mut sm = sm();
    let malformed = Response::Error(ErrorCode::Malformed).encode();
    assert_eq!(sm.apply(1, &[]).unwrap(), malformed);
    assert_eq!(sm.apply(2, &[WIRE_VERSION, 0xff]).unwrap(), malformed);
    // Trailing bytes after a valid command are refused too.
    let mut long = Command::OpenSession.encode();
    long.push(0);
    assert_eq!(sm.apply(3, &long).unwrap(), malformed);
    assert_eq!(
        sm.apply(4, &[9, 0]).unwrap(),
        Response::Error(ErrorCode::UnsupportedVersion { version: 9 }).encode()
    );
    assert_eq!(
        (sm.applied_index(), sm.revision(), sm.session_count()),
        (4, 0, 0)
    );
    assert_eq!(sm.query(&[1, 200]).unwrap(), malformed);
}

#[test]
fn wire_encoding_matches_the_documented_example() {
    let cmd = Command::Write {
        session: None,
        op: put("a", "b"),
    };
    assert_eq!(cmd.encode(), [1, 1, 0, 0, 1, b'a', 1, b'b']);
    assert_eq!(Command::decode(&cmd.encode()), Ok(cmd));
}

#[test]
fn session_open_returns_the_log_index_as_client_id() {
    let mut sm = sm();
    assert_eq!(open(&mut sm, 12), 12);
    assert_eq!(open(&mut sm, 13), 13);
    assert_eq!(sm.session_count(), 2);
}

#[test]
fn duplicate_write_returns_the_original_response_without_reapplying() {
    let mut sm = sm();
    let id = open(&mut sm, 1);
    let first = session_write(&mut sm, 2, id, 1, put("a", "mine"));
    assert_eq!(Response::decode(&first), Ok(Response::Put { revision: 2 }));
    // Someone else writes in between; the retry must not clobber it.
    write(&mut sm, 3, put("a", "theirs"));
    let retry = session_write(&mut sm, 4, id, 1, put("a", "mine"));
    assert_eq!(retry, first);
    assert_eq!(get(&sm, "a"), Some(kv("a", "theirs", 2, 3, 2)));
    assert_eq!(sm.revision(), 3);
    // A failed CAS is remembered as failed, even if it would now succeed.
    let c = cas("b", Expected::Value(b("1")), Some("2"));
    let failed = session_write(&mut sm, 5, id, 2, c.clone());
    write(&mut sm, 6, put("b", "1"));
    assert_eq!(session_write(&mut sm, 7, id, 2, c), failed);
    assert_eq!(get(&sm, "b").unwrap().value, b("1"));
}

#[test]
fn lower_sequence_is_stale_and_gaps_are_allowed() {
    let mut sm = sm();
    let id = open(&mut sm, 1);
    let stale = |last_seq| Response::Error(ErrorCode::StaleSequence { last_seq }).encode();
    // seq 0 was never a request.
    assert_eq!(session_write(&mut sm, 2, id, 0, put("a", "0")), stale(0));
    session_write(&mut sm, 3, id, 5, put("a", "5"));
    assert_eq!(session_write(&mut sm, 4, id, 4, put("a", "4")), stale(5));
    session_write(&mut sm, 5, id, 9, put("a", "9"));
    assert_eq!(get(&sm, "a"), Some(kv("a", "9", 3, 5, 2)));
}

#[test]
fn unknown_session_is_expired() {
    let mut sm = sm();
    assert_eq!(
        session_write(&mut sm, 1, 77, 1, put("a", "1")),
        Response::Error(ErrorCode::SessionExpired { client_id: 77 }).encode()
    );
    assert_eq!(get(&sm, "a"), None);
}

#[test]
fn session_expires_at_exactly_ttl_positions_after_last_use() {
    let ttl = 10;
    let mut sm = KvStateMachine::new(KvConfig { session_ttl: ttl });
    let a = open(&mut sm, 1);
    let b_ = open(&mut sm, 2);
    let first = session_write(&mut sm, 5, a, 1, put("k", "v"));
    // `b_` was last used at 2: still alive at 2 + ttl (a retry of nothing is stale).
    let stale0 = Response::Error(ErrorCode::StaleSequence { last_seq: 0 }).encode();
    assert_eq!(
        session_write(&mut sm, 2 + ttl, b_, 0, put("x", "x")),
        stale0
    );
    // `a` was last used at 5: a retry at 5 + ttl is still deduplicated ...
    assert_eq!(session_write(&mut sm, 5 + ttl, a, 1, put("k", "v")), first);
    // ... which counts as a use, so at 5 + 2 * ttl it still is ...
    assert_eq!(
        session_write(&mut sm, 5 + 2 * ttl, a, 1, put("k", "v")),
        first
    );
    // ... and one position later than that it is gone, even for an unrelated command.
    sm.apply(6 + 3 * ttl, &[0xde, 0xad]).unwrap();
    assert_eq!(sm.session_count(), 0);
    let expired = Response::Error(ErrorCode::SessionExpired { client_id: a }).encode();
    assert_eq!(
        session_write(&mut sm, 7 + 3 * ttl, a, 1, put("k", "v")),
        expired
    );
    assert_eq!(get(&sm, "k").unwrap().version, 1);
}

#[test]
fn session_expiry_boundary_is_exact() {
    for gap in [9, 10, 11] {
        let mut sm = KvStateMachine::new(KvConfig { session_ttl: 10 });
        let id = open(&mut sm, 1);
        let first = session_write(&mut sm, 2, id, 1, put("k", "v"));
        let retry = session_write(&mut sm, 2 + gap, id, 1, put("k", "v"));
        let expected_same = gap <= 10;
        assert_eq!(retry == first, expected_same, "gap {gap}");
    }
}

#[test]
fn snapshot_captures_the_state_at_its_index_while_apply_continues() {
    let mut sm = sm();
    write(&mut sm, 1, put("a", "1"));
    let id = open(&mut sm, 2);
    session_write(&mut sm, 3, id, 1, put("b", "2"));
    let at_capture = sm.clone();
    let source = sm.snapshot();
    assert_eq!(source.index(), 3);
    write(&mut sm, 4, put("a", "changed"));
    write(&mut sm, 5, WriteOp::Delete { key: b("b") });
    let mut bytes = Vec::new();
    let written = source.write_to(&mut bytes).unwrap();
    assert_eq!(written, bytes.len() as u64);
    assert_eq!(&bytes[..8], b"KRKVSNAP");
    assert_eq!(bytes[8..12], SNAPSHOT_VERSION.to_le_bytes());
    assert_eq!(bytes[12..20], 3u64.to_le_bytes());
    let mut restored = sm.clone();
    restored.restore(&mut bytes.as_slice()).unwrap();
    assert_eq!(restored, at_capture);
}
