//! Every protobuf ↔ domain conversion of the server, in one place, so protobuf stays at
//! the edge. Decoding never panics: a malformed message becomes a [`ConvertError`] that
//! names the offending field, and the service turns it into `INVALID_ARGUMENT`.

use std::collections::BTreeSet;

use bytes::Bytes;
use kuberaft_raft::{
    ConfChange, ConfChangeKind, ConfChangeSingle, Entry, EntryPayload, Membership, Message,
    MessageBody, NodeId, Snapshot, SnapshotMeta,
};

use crate::pb::kv as pbkv;
use crate::pb::raft as pb;
use crate::sm::kv::{Expected, KeyValue};

/// A protobuf message that does not describe a valid domain value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {message}: field `{field}` {reason}")]
pub struct ConvertError {
    /// The protobuf message type, e.g. `Entry`.
    pub message: &'static str,
    /// The field at fault, e.g. `payload`.
    pub field: &'static str,
    pub reason: String,
}

impl ConvertError {
    fn new(message: &'static str, field: &'static str, reason: impl Into<String>) -> Self {
        ConvertError {
            message,
            field,
            reason: reason.into(),
        }
    }

    fn missing(message: &'static str, field: &'static str) -> Self {
        Self::new(message, field, "is missing")
    }
}

type Result<T, E = ConvertError> = std::result::Result<T, E>;

// ------------------------------------------------------------------ raft: to protobuf

pub fn conf_change_to_pb(cc: &ConfChange) -> pb::ConfChange {
    pb::ConfChange {
        changes: cc
            .changes
            .iter()
            .map(|c| pb::ConfChangeSingle {
                kind: match c.kind {
                    ConfChangeKind::AddVoter => pb::conf_change_single::Kind::AddVoter,
                    ConfChangeKind::AddLearner => pb::conf_change_single::Kind::AddLearner,
                    ConfChangeKind::Remove => pb::conf_change_single::Kind::Remove,
                } as i32,
                node: c.node,
            })
            .collect(),
        leave_joint: cc.leave_joint,
    }
}

pub fn entry_to_pb(e: &Entry) -> pb::Entry {
    use pb::entry::Payload;
    let payload = match &e.payload {
        EntryPayload::Empty => Payload::Empty(pb::Empty {}),
        EntryPayload::Normal(data) => Payload::Normal(data.clone()),
        EntryPayload::ConfChange(cc) => Payload::ConfChange(conf_change_to_pb(cc)),
    };
    pb::Entry {
        term: e.term,
        index: e.index,
        payload: Some(payload),
    }
}

pub fn membership_to_pb(m: &Membership) -> pb::Membership {
    pb::Membership {
        voters: m.voters.iter().copied().collect(),
        outgoing: m.outgoing.iter().copied().collect(),
        learners: m.learners.iter().copied().collect(),
    }
}

pub fn snapshot_meta_to_pb(m: &SnapshotMeta) -> pb::SnapshotMeta {
    pb::SnapshotMeta {
        index: m.index,
        term: m.term,
        membership: Some(membership_to_pb(&m.membership)),
    }
}

/// Converts a message for the wire. Snapshot messages never travel in an envelope (they
/// are streamed by InstallSnapshot), so they have no protobuf form here.
pub fn message_to_pb(m: &Message) -> Option<pb::Message> {
    use pb::message::Body;
    let body = match &m.body {
        MessageBody::Append {
            prev_index,
            prev_term,
            entries,
            commit,
        } => Body::Append(pb::Append {
            prev_index: *prev_index,
            prev_term: *prev_term,
            entries: entries.iter().map(entry_to_pb).collect(),
            commit: *commit,
        }),
        MessageBody::AppendResp {
            index,
            reject,
            hint_index,
            hint_term,
        } => Body::AppendResp(pb::AppendResp {
            index: *index,
            reject: *reject,
            hint_index: *hint_index,
            hint_term: *hint_term,
        }),
        MessageBody::Heartbeat { commit, round } => Body::Heartbeat(pb::Heartbeat {
            commit: *commit,
            round: *round,
        }),
        MessageBody::HeartbeatResp { round } => {
            Body::HeartbeatResp(pb::HeartbeatResp { round: *round })
        }
        MessageBody::Vote {
            pre,
            last_index,
            last_term,
            force,
        } => Body::Vote(pb::Vote {
            pre: *pre,
            last_index: *last_index,
            last_term: *last_term,
            force: *force,
        }),
        MessageBody::VoteResp { pre, reject } => Body::VoteResp(pb::VoteResp {
            pre: *pre,
            reject: *reject,
        }),
        MessageBody::TimeoutNow => Body::TimeoutNow(pb::Empty {}),
        MessageBody::ReadIndex { request } => Body::ReadIndex(pb::ReadIndex {
            request: request.clone(),
        }),
        MessageBody::ReadIndexResp {
            request,
            index,
            reject,
        } => Body::ReadIndexResp(pb::ReadIndexResp {
            request: request.clone(),
            index: *index,
            reject: *reject,
        }),
        MessageBody::Snapshot { .. } => return None,
    };
    Some(pb::Message {
        from: m.from,
        to: m.to,
        term: m.term,
        body: Some(body),
    })
}

// ------------------------------------------------------------------ raft: from protobuf

fn node_set(message: &'static str, field: &'static str, ids: &[u64]) -> Result<BTreeSet<NodeId>> {
    let set: BTreeSet<NodeId> = ids.iter().copied().collect();
    if set.contains(&0) {
        return Err(ConvertError::new(message, field, "contains node id 0"));
    }
    if set.len() != ids.len() {
        return Err(ConvertError::new(message, field, "repeats a node id"));
    }
    Ok(set)
}

pub fn conf_change_from_pb(cc: pb::ConfChange) -> Result<ConfChange> {
    let changes = cc
        .changes
        .into_iter()
        .map(|c| {
            let kind = match pb::conf_change_single::Kind::try_from(c.kind) {
                Ok(pb::conf_change_single::Kind::AddVoter) => ConfChangeKind::AddVoter,
                Ok(pb::conf_change_single::Kind::AddLearner) => ConfChangeKind::AddLearner,
                Ok(pb::conf_change_single::Kind::Remove) => ConfChangeKind::Remove,
                Err(_) => {
                    let why = format!("has unknown enum value {}", c.kind);
                    return Err(ConvertError::new("ConfChangeSingle", "kind", why));
                }
            };
            Ok(ConfChangeSingle { kind, node: c.node })
        })
        .collect::<Result<_>>()?;
    Ok(ConfChange {
        changes,
        leave_joint: cc.leave_joint,
    })
}

pub fn entry_from_pb(e: pb::Entry) -> Result<Entry> {
    use pb::entry::Payload;
    let payload = match e.payload {
        Some(Payload::Empty(_)) => EntryPayload::Empty,
        Some(Payload::Normal(data)) => EntryPayload::Normal(data),
        Some(Payload::ConfChange(cc)) => EntryPayload::ConfChange(conf_change_from_pb(cc)?),
        None => return Err(ConvertError::missing("Entry", "payload")),
    };
    Ok(Entry {
        term: e.term,
        index: e.index,
        payload,
    })
}

pub fn membership_from_pb(m: pb::Membership) -> Result<Membership> {
    Ok(Membership {
        voters: node_set("Membership", "voters", &m.voters)?,
        outgoing: node_set("Membership", "outgoing", &m.outgoing)?,
        learners: node_set("Membership", "learners", &m.learners)?,
    })
}

pub fn snapshot_meta_from_pb(m: pb::SnapshotMeta) -> Result<SnapshotMeta> {
    let membership = m
        .membership
        .ok_or_else(|| ConvertError::missing("SnapshotMeta", "membership"))?;
    Ok(SnapshotMeta {
        index: m.index,
        term: m.term,
        membership: membership_from_pb(membership)?,
    })
}

pub fn message_from_pb(m: pb::Message) -> Result<Message> {
    use pb::message::Body;
    let body = match m.body {
        None => return Err(ConvertError::missing("Message", "body")),
        Some(Body::Append(a)) => MessageBody::Append {
            prev_index: a.prev_index,
            prev_term: a.prev_term,
            entries: a
                .entries
                .into_iter()
                .map(entry_from_pb)
                .collect::<Result<_>>()?,
            commit: a.commit,
        },
        Some(Body::AppendResp(r)) => MessageBody::AppendResp {
            index: r.index,
            reject: r.reject,
            hint_index: r.hint_index,
            hint_term: r.hint_term,
        },
        Some(Body::Heartbeat(h)) => MessageBody::Heartbeat {
            commit: h.commit,
            round: h.round,
        },
        Some(Body::HeartbeatResp(h)) => MessageBody::HeartbeatResp { round: h.round },
        Some(Body::Vote(v)) => MessageBody::Vote {
            pre: v.pre,
            last_index: v.last_index,
            last_term: v.last_term,
            force: v.force,
        },
        Some(Body::VoteResp(v)) => MessageBody::VoteResp {
            pre: v.pre,
            reject: v.reject,
        },
        Some(Body::TimeoutNow(_)) => MessageBody::TimeoutNow,
        Some(Body::ReadIndex(r)) => MessageBody::ReadIndex { request: r.request },
        Some(Body::ReadIndexResp(r)) => MessageBody::ReadIndexResp {
            request: r.request,
            index: r.index,
            reject: r.reject,
        },
    };
    if m.from == 0 {
        return Err(ConvertError::new("Message", "from", "is node id 0"));
    }
    Ok(Message {
        from: m.from,
        to: m.to,
        term: m.term,
        body,
    })
}

/// The Snapshot message the receiver steps into its core once the stream is stored: the
/// core only needs the metadata, the bytes stay in the snapshot store.
pub fn snapshot_message(from: NodeId, to: NodeId, term: u64, meta: SnapshotMeta) -> Message {
    Message {
        from,
        to,
        term,
        body: MessageBody::Snapshot {
            snapshot: Snapshot {
                meta,
                data: Vec::new(),
            },
        },
    }
}

// ------------------------------------------------------------------ kv

pub fn kv_to_pb(kv: KeyValue) -> pbkv::KeyValue {
    pbkv::KeyValue {
        key: kv.key.to_vec(),
        value: kv.value.to_vec(),
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
    }
}

pub fn expected_from_pb(e: Option<pbkv::compare_and_swap_request::Expected>) -> Result<Expected> {
    use pbkv::compare_and_swap_request::Expected as P;
    match e {
        None => Err(ConvertError::missing("CompareAndSwapRequest", "expected")),
        Some(P::ExpectAbsent(true)) => Ok(Expected::Absent),
        Some(P::ExpectAbsent(false)) => Err(ConvertError::new(
            "CompareAndSwapRequest",
            "expect_absent",
            "must be true when set",
        )),
        Some(P::ExpectValue(v)) => Ok(Expected::Value(Bytes::from(v))),
        Some(P::ExpectModRevision(r)) => Ok(Expected::ModRevision(r)),
    }
}

pub fn consistency_from_pb(
    field: &'static str,
    message: &'static str,
    v: i32,
) -> Result<pbkv::ReadConsistency> {
    pbkv::ReadConsistency::try_from(v)
        .map_err(|_| ConvertError::new(message, field, format!("has unknown enum value {v}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_messages() -> Vec<Message> {
        let entries = vec![
            Entry {
                term: 2,
                index: 5,
                payload: EntryPayload::Empty,
            },
            Entry {
                term: 2,
                index: 6,
                payload: EntryPayload::Normal(b"cmd".to_vec()),
            },
            Entry {
                term: 3,
                index: 7,
                payload: EntryPayload::ConfChange(ConfChange {
                    changes: vec![
                        ConfChangeSingle {
                            kind: ConfChangeKind::AddVoter,
                            node: 4,
                        },
                        ConfChangeSingle {
                            kind: ConfChangeKind::Remove,
                            node: 2,
                        },
                    ],
                    leave_joint: false,
                }),
            },
            Entry {
                term: 3,
                index: 8,
                payload: EntryPayload::ConfChange(ConfChange::leave_joint()),
            },
        ];
        let bodies = vec![
            MessageBody::Append {
                prev_index: 4,
                prev_term: 2,
                entries,
                commit: 3,
            },
            MessageBody::AppendResp {
                index: 9,
                reject: true,
                hint_index: 3,
                hint_term: 1,
            },
            MessageBody::Heartbeat {
                commit: 8,
                round: 77,
            },
            MessageBody::HeartbeatResp { round: 77 },
            MessageBody::Vote {
                pre: true,
                last_index: 9,
                last_term: 3,
                force: true,
            },
            MessageBody::VoteResp {
                pre: false,
                reject: true,
            },
            MessageBody::TimeoutNow,
            MessageBody::ReadIndex {
                request: vec![1, 2],
            },
            MessageBody::ReadIndexResp {
                request: vec![3],
                index: 12,
                reject: false,
            },
        ];
        bodies
            .into_iter()
            .map(|body| Message {
                from: 1,
                to: 2,
                term: 3,
                body,
            })
            .collect()
    }

    #[test]
    fn every_message_kind_round_trips() {
        for m in sample_messages() {
            let back = message_from_pb(message_to_pb(&m).unwrap()).unwrap();
            assert_eq!(back, m);
        }
    }

    #[test]
    fn snapshot_meta_round_trips() {
        let meta = SnapshotMeta {
            index: 10,
            term: 2,
            membership: Membership {
                voters: [1, 2].into(),
                outgoing: [1, 3].into(),
                learners: [9].into(),
            },
        };
        assert_eq!(
            snapshot_meta_from_pb(snapshot_meta_to_pb(&meta)).unwrap(),
            meta
        );
    }

    #[test]
    fn snapshot_messages_do_not_travel_in_envelopes() {
        let m = snapshot_message(1, 2, 3, SnapshotMeta::default());
        assert!(message_to_pb(&m).is_none());
    }

    #[test]
    fn errors_name_the_field() {
        let m = pb::Message {
            from: 1,
            to: 2,
            term: 1,
            body: None,
        };
        let e = message_from_pb(m).unwrap_err();
        assert_eq!(e.to_string(), "malformed Message: field `body` is missing");

        let e = entry_from_pb(pb::Entry {
            term: 1,
            index: 1,
            payload: None,
        })
        .unwrap_err();
        assert_eq!(e.field, "payload");

        let bad_kind = pb::ConfChange {
            changes: vec![pb::ConfChangeSingle { kind: 42, node: 3 }],
            leave_joint: false,
        };
        let e = conf_change_from_pb(bad_kind).unwrap_err();
        assert_eq!(
            e.to_string(),
            "malformed ConfChangeSingle: field `kind` has unknown enum value 42"
        );

        let e = membership_from_pb(pb::Membership {
            voters: vec![1, 1],
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(e.field, "voters");

        let e = snapshot_meta_from_pb(pb::SnapshotMeta {
            index: 1,
            term: 1,
            membership: None,
        })
        .unwrap_err();
        assert_eq!(e.field, "membership");

        let e = expected_from_pb(None).unwrap_err();
        assert_eq!(e.field, "expected");
        assert!(consistency_from_pb("consistency", "GetRequest", 9).is_err());
    }

    #[test]
    fn message_from_node_zero_is_refused() {
        let mut m = message_to_pb(&sample_messages()[3]).unwrap();
        m.from = 0;
        assert_eq!(message_from_pb(m).unwrap_err().field, "from");
    }
}
