//! KV snapshot format: round trips, and every kind of damage (truncation, bit flips,
//! reordered, duplicated or missing records, trailing bytes, read errors) is refused with
//! the old state left in place.

mod sm_snapshot {
    use std::io::{self, Read};

    use bytes::Bytes;
    use kuberaft_node::sm::kv::{
        Command, Expected, KvConfig, KvStateMachine, SNAPSHOT_VERSION, SessionSeq, SnapshotError,
        Wire, WriteOp,
    };
    use kuberaft_node::sm::{Error, StateMachine};

    fn put(key: &str, value: &str) -> WriteOp {
        WriteOp::Put {
            key: Bytes::copy_from_slice(key.as_bytes()),
            value: Bytes::copy_from_slice(value.as_bytes()),
        }
    }

    fn apply(sm: &mut KvStateMachine, index: u64, cmd: Command) -> Vec<u8> {
        sm.apply(index, &cmd.encode()).unwrap()
    }

    fn write(session: Option<(u64, u64)>, op: WriteOp) -> Command {
        let session = session.map(|(client_id, seq)| SessionSeq { client_id, seq });
        Command::Write { session, op }
    }

    /// Keys with several versions, a deleted key, one session with a cached response and
    /// one without.
    fn populated() -> KvStateMachine {
        let mut sm = KvStateMachine::new(KvConfig { session_ttl: 50 });
        apply(&mut sm, 1, write(None, put("a", "1")));
        apply(&mut sm, 2, Command::OpenSession);
        apply(&mut sm, 3, write(Some((2, 1)), put("b/1", "x")));
        apply(&mut sm, 4, write(None, put("a", "2")));
        apply(&mut sm, 5, Command::OpenSession);
        apply(&mut sm, 6, write(None, put("c", "gone")));
        apply(&mut sm, 7, write(None, WriteOp::Delete { key: "c".into() }));
        let cas = WriteOp::CompareAndSwap {
            key: "b/2".into(),
            expected: Expected::Absent,
            new_value: Some("y".into()),
        };
        apply(&mut sm, 9, write(Some((2, 2)), cas));
        sm
    }

    fn snapshot_bytes(sm: &KvStateMachine) -> Vec<u8> {
        let mut out = Vec::new();
        sm.snapshot().write_to(&mut out).unwrap();
        out
    }

    /// A machine in a different, non-empty state, to restore over.
    fn other() -> KvStateMachine {
        let mut sm = KvStateMachine::new(KvConfig { session_ttl: 50 });
        apply(&mut sm, 100, Command::OpenSession);
        apply(&mut sm, 101, write(None, put("zzz", "old")));
        sm
    }

    /// Splits a snapshot into its header and its framed records.
    fn frames(bytes: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
        let (header, mut rest) = bytes.split_at(32);
        let mut out = Vec::new();
        while !rest.is_empty() {
            let len = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
            let (frame, tail) = rest.split_at(8 + len);
            out.push(frame.to_vec());
            rest = tail;
        }
        (header.to_vec(), out)
    }

    fn restore_fails(input: &[u8]) -> Error {
        let mut sm = other();
        let before = sm.clone();
        let err = sm.restore(&mut &input[..]).unwrap_err();
        assert_eq!(sm, before, "failed restore changed the state");
        err
    }

    fn snapshot_error(input: &[u8]) -> SnapshotError {
        match restore_fails(input) {
            Error::Snapshot(e) => e,
            other => panic!("expected a snapshot error, got {other:?}"),
        }
    }

    #[test]
    fn round_trip_restores_an_equal_state_over_a_different_one() {
        let original = populated();
        let bytes = snapshot_bytes(&original);
        let mut restored = other();
        restored.restore(&mut bytes.as_slice()).unwrap();
        assert_eq!(restored, original);
        assert_eq!(restored.applied_index(), 9);
        assert_eq!(restored.session_count(), 2);
        // The encoding is deterministic: same state, same bytes.
        assert_eq!(snapshot_bytes(&restored), bytes);
    }

    #[test]
    fn empty_state_round_trips() {
        let empty = KvStateMachine::new(KvConfig { session_ttl: 50 });
        let bytes = snapshot_bytes(&empty);
        let mut restored = other();
        restored.restore(&mut bytes.as_slice()).unwrap();
        assert_eq!(restored, empty);
    }

    #[test]
    fn restored_sessions_keep_deduplicating() {
        let mut original = populated();
        let mut restored = other();
        restored
            .restore(&mut snapshot_bytes(&original).as_slice())
            .unwrap();
        let retry = write(Some((2, 2)), put("ignored", "ignored"));
        let a = apply(&mut original, 10, retry.clone());
        let b = apply(&mut restored, 10, retry);
        assert_eq!(a, b);
        assert_eq!(restored, original);
    }

    #[test]
    fn every_truncation_is_refused() {
        let bytes = snapshot_bytes(&populated());
        for len in 0..bytes.len() {
            let err = snapshot_error(&bytes[..len]);
            assert!(
                matches!(err, SnapshotError::Truncated { .. }),
                "len {len}: {err}"
            );
        }
    }

    #[test]
    fn every_single_bit_flip_is_refused() {
        let bytes = snapshot_bytes(&populated());
        for bit in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            restore_fails(&bad);
        }
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = snapshot_bytes(&populated());
        let end = bytes.len() as u64;
        bytes.push(0);
        assert_eq!(
            snapshot_error(&bytes),
            SnapshotError::TrailingData { offset: end }
        );
    }

    #[test]
    fn foreign_or_future_headers_are_refused() {
        let bytes = snapshot_bytes(&populated());
        let mut foreign = bytes.clone();
        foreign[..8].copy_from_slice(b"NOTASNAP");
        assert_eq!(snapshot_error(&foreign), SnapshotError::BadMagic);
        // A well-formed header of a future version (checksum fixed up).
        let mut future = bytes.clone();
        future[8..12].copy_from_slice(&(SNAPSHOT_VERSION + 1).to_le_bytes());
        let crc = crc32c::crc32c(&future[..28]);
        future[28..32].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            snapshot_error(&future),
            SnapshotError::UnsupportedVersion {
                version: SNAPSHOT_VERSION + 1
            }
        );
    }

    /// Records carry their own checksums, so only the rules about their order and count
    /// catch records that are each intact but wrongly assembled.
    #[test]
    fn intact_records_in_a_wrong_arrangement_are_refused() {
        let bytes = snapshot_bytes(&populated());
        let (header, records) = frames(&bytes);
        // 3 keys, 2 sessions, end.
        assert_eq!(records.len(), 6);
        let join = |order: &[usize]| {
            let mut out = header.clone();
            for &i in order {
                out.extend_from_slice(&records[i]);
            }
            out
        };
        let invalid = |order: &[usize]| match snapshot_error(&join(order)) {
            SnapshotError::Invalid { reason, .. } => reason,
            other => panic!("{order:?}: expected Invalid, got {other}"),
        };
        assert_eq!(
            invalid(&[1, 0, 2, 3, 4, 5]),
            "keys not in strictly increasing order"
        );
        assert_eq!(
            invalid(&[0, 0, 1, 2, 3, 4, 5]),
            "keys not in strictly increasing order"
        );
        assert_eq!(
            invalid(&[0, 1, 3, 2, 4, 5]),
            "key record after session records"
        );
        assert_eq!(
            invalid(&[0, 1, 2, 4, 3, 5]),
            "sessions not in increasing id order"
        );
        assert_eq!(invalid(&[0, 1, 2, 3, 5]), "end record counts do not match");
        assert!(matches!(
            snapshot_error(&join(&[0, 1, 2, 3, 4])),
            SnapshotError::Truncated { .. }
        ));
        assert!(matches!(
            snapshot_error(&join(&[0, 1, 2, 3, 4, 5, 5])),
            SnapshotError::TrailingData { .. }
        ));
        // The right arrangement still restores.
        let mut sm = other();
        sm.restore(&mut join(&[0, 1, 2, 3, 4, 5]).as_slice())
            .unwrap();
        assert_eq!(sm, populated());
    }

    struct FailingReader {
        good: Vec<u8>,
    }

    impl Read for FailingReader {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.good.is_empty() {
                return Err(io::Error::other("disk on fire"));
            }
            let n = buf.len().min(self.good.len());
            buf[..n].copy_from_slice(&self.good[..n]);
            self.good.drain(..n);
            Ok(n)
        }
    }

    #[test]
    fn read_errors_are_reported_and_leave_the_state_alone() {
        let bytes = snapshot_bytes(&populated());
        let mut sm = other();
        let before = sm.clone();
        let mut reader = FailingReader {
            good: bytes[..bytes.len() / 2].to_vec(),
        };
        assert!(matches!(sm.restore(&mut reader), Err(Error::Io(_))));
        assert_eq!(sm, before);
    }
}
