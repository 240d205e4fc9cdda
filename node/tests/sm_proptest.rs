//! Property tests of the KV state machine: snapshot + restore at any point of any command
//! sequence is indistinguishable from having applied the sequence, and no input bytes
//! (command, query or snapshot) can make it panic.

mod sm_proptest {
    use bytes::Bytes;
    use kuberaft_node::sm::kv::{
        Command, ErrorCode, Expected, KvConfig, KvStateMachine, Query, Response, SessionSeq, Wire,
        WriteOp,
    };
    use kuberaft_node::sm::{SnapshotSource, StateMachine};
    use proptest::prelude::*;

    fn key() -> impl Strategy<Value = Bytes> {
        prop_oneof![
            (0u8..4).prop_map(|i| Bytes::from(format!("k{i}"))),
            (0u8..4).prop_map(|i| Bytes::from(format!("p/{i}"))),
        ]
    }

    fn value() -> impl Strategy<Value = Bytes> {
        prop::collection::vec(any::<u8>(), 0..4).prop_map(Bytes::from)
    }

    fn op() -> impl Strategy<Value = WriteOp> {
        let expected = prop_oneof![
            Just(Expected::Absent),
            value().prop_map(Expected::Value),
            (0u64..60).prop_map(Expected::ModRevision),
        ];
        prop_oneof![
            3 => (key(), value()).prop_map(|(key, value)| WriteOp::Put { key, value }),
            1 => key().prop_map(|key| WriteOp::Delete { key }),
            2 => (key(), expected, prop::option::of(value())).prop_map(
                |(key, expected, new_value)| WriteOp::CompareAndSwap { key, expected, new_value }
            ),
        ]
    }

    /// Encoded commands: mostly valid, with sessions whose ids and sequence numbers come
    /// from small ranges so duplicates, stale numbers and expired sessions all occur; some
    /// garbage too.
    fn command() -> impl Strategy<Value = Vec<u8>> {
        let session = prop::option::of((1u64..40, 0u64..5))
            .prop_map(|s| s.map(|(client_id, seq)| SessionSeq { client_id, seq }));
        prop_oneof![
            1 => Just(Command::OpenSession.encode()),
            6 => (session, op()).prop_map(|(session, op)| Command::Write { session, op }.encode()),
            1 => prop::collection::vec(any::<u8>(), 0..6),
        ]
    }

    fn query() -> impl Strategy<Value = Query> {
        prop_oneof![
            key().prop_map(|key| Query::Get { key }),
            (
                prop_oneof![Just(Bytes::new()), Just(Bytes::from("p/"))],
                prop::option::of(key()),
                0u32..4
            )
                .prop_map(|(prefix, after, limit)| Query::Range {
                    prefix,
                    after,
                    limit
                }),
        ]
    }

    /// Applies `cmds` with the given index gaps starting after `sm`'s applied index.
    fn run(sm: &mut KvStateMachine, cmds: &[(u64, Vec<u8>)]) -> Vec<Vec<u8>> {
        cmds.iter()
            .map(|(gap, cmd)| {
                let index = sm.applied_index() + gap;
                sm.apply(index, cmd).expect("increasing index")
            })
            .collect()
    }

    fn snapshot(source: Box<dyn SnapshotSource>) -> Vec<u8> {
        let mut out = Vec::new();
        source.write_to(&mut out).unwrap();
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Apply a prefix to A, capture a snapshot, keep applying to A, write the captured
        /// snapshot afterwards and restore it into B (which held other state); then B
        /// equals A as it was at the capture, and applying the rest gives B the same
        /// responses and the same final state as A.
        #[test]
        fn snapshot_then_restore_is_indistinguishable(
            ttl in 2u64..25,
            cmds in prop::collection::vec((1u64..3, command()), 0..80),
            split in any::<prop::sample::Index>(),
            junk in prop::collection::vec((1u64..50, command()), 0..10),
            queries in prop::collection::vec(query(), 1..6),
        ) {
            let config = KvConfig { session_ttl: ttl };
            let split = split.index(cmds.len() + 1);
            let mut a = KvStateMachine::new(config);
            run(&mut a, &cmds[..split]);
            let at_capture = a.clone();
            let source = a.snapshot();
            prop_assert_eq!(source.index(), a.applied_index());
            let rest_a = run(&mut a, &cmds[split..]);
            let bytes = snapshot(source);

            let mut b = KvStateMachine::new(config);
            run(&mut b, &junk);
            b.restore(&mut bytes.as_slice()).unwrap();
            prop_assert_eq!(&b, &at_capture);
            let rest_b = run(&mut b, &cmds[split..]);
            prop_assert_eq!(rest_a, rest_b);
            prop_assert_eq!(&b, &a);
            for q in &queries {
                prop_assert_eq!(a.query(&q.encode()).unwrap(), b.query(&q.encode()).unwrap());
            }
        }

        /// Any bytes as a command: no panic, a decodable response, and the index counts as
        /// applied.
        #[test]
        fn arbitrary_command_bytes_never_panic(
            prefix in prop::collection::vec(command(), 0..5),
            bytes in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut sm = KvStateMachine::new(KvConfig { session_ttl: 3 });
            let prefix: Vec<_> = prefix.into_iter().map(|c| (1, c)).collect();
            run(&mut sm, &prefix);
            let index = sm.applied_index() + 1;
            let response = sm.apply(index, &bytes).unwrap();
            prop_assert!(Response::decode(&response).is_ok());
            prop_assert_eq!(sm.applied_index(), index);
        }

        /// A version-1 byte followed by noise reaches the postcard decoder itself.
        #[test]
        fn arbitrary_v1_bodies_never_panic(body in prop::collection::vec(any::<u8>(), 0..64)) {
            let mut bytes = vec![1u8];
            bytes.extend_from_slice(&body);
            let mut sm = KvStateMachine::default();
            let response = Response::decode(&sm.apply(1, &bytes).unwrap()).unwrap();
            if Command::decode(&bytes).is_err() {
                prop_assert_eq!(response, Response::Error(ErrorCode::Malformed));
            }
            let answer = Response::decode(&sm.query(&bytes).unwrap());
            prop_assert!(answer.is_ok());
        }

        /// Any bytes as a snapshot: no panic, and a failed restore changes nothing.
        #[test]
        fn arbitrary_snapshot_bytes_never_panic(
            with_header in any::<bool>(),
            payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..4),
            noise in prop::collection::vec(any::<u8>(), 0..200),
        ) {
            // Either pure noise, or a valid header followed by correctly framed records
            // with random payloads, so the record decoder and validation see the noise.
            let input = if with_header {
                let mut out = valid_header();
                for p in &payloads {
                    let len = (p.len() as u32).to_le_bytes();
                    out.extend_from_slice(&len);
                    let crc = crc32c::crc32c_append(crc32c::crc32c(&len), p);
                    out.extend_from_slice(&crc.to_le_bytes());
                    out.extend_from_slice(p);
                }
                out.extend_from_slice(&noise[..noise.len() % 9]);
                out
            } else {
                noise
            };
            let mut sm = KvStateMachine::default();
            sm.apply(1, &Command::OpenSession.encode()).unwrap();
            let before = sm.clone();
            if sm.restore(&mut input.as_slice()).is_err() {
                prop_assert_eq!(sm, before);
            }
        }

        /// Random damage to a real snapshot is refused and leaves the state alone.
        #[test]
        fn damaged_snapshots_are_refused(
            cmds in prop::collection::vec((1u64..3, command()), 1..30),
            flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
            cut in prop::option::of(any::<prop::sample::Index>()),
        ) {
            let mut a = KvStateMachine::new(KvConfig { session_ttl: 10 });
            run(&mut a, &cmds);
            let original = snapshot(a.snapshot());
            let mut bytes = original.clone();
            for (at, mask) in flips {
                let i = at.index(bytes.len());
                bytes[i] ^= mask;
            }
            if let Some(cut) = cut {
                bytes.truncate(cut.index(bytes.len()));
            }
            // Flips at one position can cancel out.
            prop_assume!(bytes != original);
            let mut b = KvStateMachine::default();
            b.apply(1, &Command::OpenSession.encode()).unwrap();
            let before = b.clone();
            prop_assert!(b.restore(&mut bytes.as_slice()).is_err());
            prop_assert_eq!(b, before);
        }
    }

    /// A valid header with a high applied index and revision, so that random records
    /// with plausible revisions can pass validation.
    fn valid_header() -> Vec<u8> {
        let mut out = b"KRKVSNAP".to_vec();
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&1_000u64.to_le_bytes());
        out.extend_from_slice(&900u64.to_le_bytes());
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }
}
