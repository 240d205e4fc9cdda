//! Payload encodings of the core's types (see the table in the module above).

use std::collections::BTreeSet;

use kuberaft_raft::{
    ConfChange, ConfChangeKind, ConfChangeSingle, Entry, EntryPayload, HardState, Membership,
    NodeId, SnapshotMeta,
};

use super::{Dec, DecodeError, put_bytes, put_uv};

const PAYLOAD_EMPTY: u8 = 0;
const PAYLOAD_NORMAL: u8 = 1;
const PAYLOAD_CONF_CHANGE: u8 = 2;

pub fn encode_entry(entry: &Entry, out: &mut Vec<u8>) {
    put_uv(out, entry.term);
    put_uv(out, entry.index);
    match &entry.payload {
        EntryPayload::Empty => out.push(PAYLOAD_EMPTY),
        EntryPayload::Normal(data) => {
            out.push(PAYLOAD_NORMAL);
            put_bytes(out, data);
        }
        EntryPayload::ConfChange(cc) => {
            out.push(PAYLOAD_CONF_CHANGE);
            out.push(u8::from(cc.leave_joint));
            put_uv(out, cc.changes.len() as u64);
            for change in &cc.changes {
                out.push(match change.kind {
                    ConfChangeKind::AddVoter => 0,
                    ConfChangeKind::AddLearner => 1,
                    ConfChangeKind::Remove => 2,
                });
                put_uv(out, change.node);
            }
        }
    }
}

pub(crate) fn read_entry(dec: &mut Dec<'_>) -> Result<Entry, DecodeError> {
    let term = dec.uv("entry.term")?;
    let index = dec.uv("entry.index")?;
    let payload = match dec.u8("entry.kind")? {
        PAYLOAD_EMPTY => EntryPayload::Empty,
        PAYLOAD_NORMAL => EntryPayload::Normal(dec.bytes("entry.data")?.to_vec()),
        PAYLOAD_CONF_CHANGE => {
            let leave_joint = dec.bool("conf_change.leave_joint")?;
            let n = dec.count("conf_change.changes")?;
            let mut changes = Vec::with_capacity(n);
            for _ in 0..n {
                let kind = match dec.u8("conf_change.kind")? {
                    0 => ConfChangeKind::AddVoter,
                    1 => ConfChangeKind::AddLearner,
                    2 => ConfChangeKind::Remove,
                    _ => return Err(dec.err("conf_change.kind", "unknown change kind")),
                };
                changes.push(ConfChangeSingle {
                    kind,
                    node: dec.uv("conf_change.node")?,
                });
            }
            EntryPayload::ConfChange(ConfChange {
                changes,
                leave_joint,
            })
        }
        _ => return Err(dec.err("entry.kind", "unknown payload kind")),
    };
    Ok(Entry {
        term,
        index,
        payload,
    })
}

/// Decodes exactly one entry occupying all of `buf`.
pub fn decode_entry(buf: &[u8]) -> Result<Entry, DecodeError> {
    let mut dec = Dec::new(buf);
    let entry = read_entry(&mut dec)?;
    dec.finish("entry")?;
    Ok(entry)
}

pub fn encode_hard_state(hs: &HardState, out: &mut Vec<u8>) {
    put_uv(out, hs.term);
    put_uv(out, hs.vote);
    put_uv(out, hs.commit);
}

pub(crate) fn read_hard_state(dec: &mut Dec<'_>) -> Result<HardState, DecodeError> {
    Ok(HardState {
        term: dec.uv("hard_state.term")?,
        vote: dec.uv("hard_state.vote")?,
        commit: dec.uv("hard_state.commit")?,
    })
}

pub fn decode_hard_state(buf: &[u8]) -> Result<HardState, DecodeError> {
    let mut dec = Dec::new(buf);
    let hs = read_hard_state(&mut dec)?;
    dec.finish("hard_state")?;
    Ok(hs)
}

fn put_set(out: &mut Vec<u8>, set: &BTreeSet<NodeId>) {
    put_uv(out, set.len() as u64);
    set.iter().for_each(|&id| put_uv(out, id));
}

fn read_set(dec: &mut Dec<'_>, field: &'static str) -> Result<BTreeSet<NodeId>, DecodeError> {
    let n = dec.count(field)?;
    let mut set = BTreeSet::new();
    let mut prev = None;
    for _ in 0..n {
        let id = dec.uv(field)?;
        // Strictly increasing keeps the encoding canonical and rejects duplicates.
        if prev.is_some_and(|p| p >= id) {
            return Err(dec.err(field, "member ids not strictly increasing"));
        }
        prev = Some(id);
        set.insert(id);
    }
    Ok(set)
}

pub fn encode_snapshot_meta(meta: &SnapshotMeta, out: &mut Vec<u8>) {
    put_uv(out, meta.index);
    put_uv(out, meta.term);
    put_set(out, &meta.membership.voters);
    put_set(out, &meta.membership.outgoing);
    put_set(out, &meta.membership.learners);
}

pub(crate) fn read_snapshot_meta(dec: &mut Dec<'_>) -> Result<SnapshotMeta, DecodeError> {
    Ok(SnapshotMeta {
        index: dec.uv("snapshot_meta.index")?,
        term: dec.uv("snapshot_meta.term")?,
        membership: Membership {
            voters: read_set(dec, "membership.voters")?,
            outgoing: read_set(dec, "membership.outgoing")?,
            learners: read_set(dec, "membership.learners")?,
        },
    })
}

pub fn decode_snapshot_meta(buf: &[u8]) -> Result<SnapshotMeta, DecodeError> {
    let mut dec = Dec::new(buf);
    let meta = read_snapshot_meta(&mut dec)?;
    dec.finish("snapshot_meta")?;
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_payload_kind_round_trips() {
        let entries = [
            Entry {
                term: 1,
                index: 1,
                payload: EntryPayload::Empty,
            },
            Entry {
                term: 7,
                index: 300,
                payload: EntryPayload::Normal(b"put k v".to_vec()),
            },
            Entry {
                term: u64::MAX,
                index: u64::MAX,
                payload: EntryPayload::ConfChange(ConfChange::single(
                    ConfChangeKind::AddLearner,
                    9,
                )),
            },
            Entry {
                term: 2,
                index: 5,
                payload: EntryPayload::ConfChange(ConfChange::leave_joint()),
            },
        ];
        for entry in entries {
            let mut buf = Vec::new();
            encode_entry(&entry, &mut buf);
            assert_eq!(decode_entry(&buf).unwrap(), entry);
            buf.push(0);
            assert_eq!(decode_entry(&buf).unwrap_err().reason, "trailing bytes");
        }
        let hs = HardState {
            term: 3,
            vote: 2,
            commit: 99,
        };
        let mut buf = Vec::new();
        encode_hard_state(&hs, &mut buf);
        assert_eq!(decode_hard_state(&buf).unwrap(), hs);
    }

    #[test]
    fn membership_sets_must_be_strictly_increasing() {
        let meta = SnapshotMeta {
            index: 10,
            term: 2,
            membership: Membership {
                voters: [1, 2, 3].into(),
                outgoing: [1].into(),
                learners: [4].into(),
            },
        };
        let mut buf = Vec::new();
        encode_snapshot_meta(&meta, &mut buf);
        assert_eq!(decode_snapshot_meta(&buf).unwrap(), meta);
        // voters = [1, 1]
        let bad = [10, 2, 2, 1, 1, 0, 0];
        let err = decode_snapshot_meta(&bad).unwrap_err();
        assert_eq!(
            (err.field, err.reason),
            ("membership.voters", "member ids not strictly increasing")
        );
    }
}
