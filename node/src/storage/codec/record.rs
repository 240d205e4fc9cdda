//! WAL record framing and the segment header (layout in the module above).

use kuberaft_raft::{Entry, HardState, SnapshotMeta};

use super::types::{
    encode_entry, encode_hard_state, encode_snapshot_meta, read_entry, read_hard_state,
    read_snapshot_meta,
};
use super::{Dec, DecodeError, FORMAT_VERSION, put_uv};

/// `len u32 | crc u32 | type u8` before every payload.
pub const RECORD_HEADER_LEN: usize = 9;

/// Larger lengths are garbage, not records: bounding them stops a corrupt length from
/// making recovery read or allocate far past the segment.
pub const MAX_RECORD_LEN: u32 = 64 << 20;

/// Bytes of the fixed segment header.
pub const SEGMENT_HEADER_LEN: usize = 28;

const SEGMENT_MAGIC: &[u8; 4] = b"KRWL";

const TYPE_ENTRY: u8 = 1;
const TYPE_HARD_STATE: u8 = 2;
const TYPE_SNAPSHOT: u8 = 3;
const TYPE_TRUNCATE: u8 = 4;

/// One decoded WAL record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    Entry(Entry),
    HardState(HardState),
    /// A compaction point (`discard_log = false`) or an installed snapshot that replaces
    /// the whole log (`discard_log = true`).
    Snapshot {
        meta: SnapshotMeta,
        discard_log: bool,
    },
    /// Entries with index `>= from` are removed.
    Truncate {
        from: u64,
    },
}

/// What the decoder found at the start of a buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A valid record, `len` bytes long including its header.
    Record { record: Record, len: usize },
    /// The buffer ends inside the header or the payload: a torn write, if at the tail.
    Incomplete,
    /// The checksum, type or length is wrong: torn or corrupt.
    Invalid { reason: &'static str },
    /// The checksum matches but the payload does not decode: not a torn write but a
    /// writer/reader disagreement, never to be skipped silently.
    Undecodable(DecodeError),
}

fn frame(out: &mut Vec<u8>, ty: u8, payload: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; RECORD_HEADER_LEN]);
    out[start + 8] = ty;
    payload(out);
    let len = (out.len() - start - RECORD_HEADER_LEN) as u32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    let crc = record_crc(&out[start..start + 4], &out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

fn record_crc(len: &[u8], type_and_payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(len), type_and_payload)
}

pub fn encode_entry_record(entry: &Entry, out: &mut Vec<u8>) {
    frame(out, TYPE_ENTRY, |out| encode_entry(entry, out));
}

pub fn encode_hard_state_record(hs: &HardState, out: &mut Vec<u8>) {
    frame(out, TYPE_HARD_STATE, |out| encode_hard_state(hs, out));
}

pub fn encode_snapshot_record(meta: &SnapshotMeta, discard_log: bool, out: &mut Vec<u8>) {
    frame(out, TYPE_SNAPSHOT, |out| {
        out.push(u8::from(discard_log));
        encode_snapshot_meta(meta, out);
    });
}

pub fn encode_truncate_record(from: u64, out: &mut Vec<u8>) {
    frame(out, TYPE_TRUNCATE, |out| put_uv(out, from));
}

/// Decodes the record at the start of `buf`. Never panics, whatever the bytes.
pub fn decode_record(buf: &[u8]) -> Frame {
    if buf.len() < RECORD_HEADER_LEN {
        return Frame::Incomplete;
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let ty = buf[8];
    if !(TYPE_ENTRY..=TYPE_TRUNCATE).contains(&ty) {
        return Frame::Invalid {
            reason: "unknown record type",
        };
    }
    if len > MAX_RECORD_LEN {
        return Frame::Invalid {
            reason: "record length too large",
        };
    }
    let total = RECORD_HEADER_LEN + len as usize;
    if buf.len() < total {
        return Frame::Incomplete;
    }
    if record_crc(&buf[..4], &buf[8..total]) != crc {
        return Frame::Invalid {
            reason: "checksum mismatch",
        };
    }
    let mut dec = Dec::new(&buf[RECORD_HEADER_LEN..total]);
    let record = match ty {
        TYPE_ENTRY => read_entry(&mut dec).map(Record::Entry),
        TYPE_HARD_STATE => read_hard_state(&mut dec).map(Record::HardState),
        TYPE_SNAPSHOT => dec.bool("snapshot.discard_log").and_then(|discard_log| {
            Ok(Record::Snapshot {
                discard_log,
                meta: read_snapshot_meta(&mut dec)?,
            })
        }),
        _ => dec
            .uv("truncate.from")
            .map(|from| Record::Truncate { from }),
    };
    match record.and_then(|r| dec.finish("record").map(|()| r)) {
        Ok(record) => Frame::Record { record, len: total },
        Err(e) => Frame::Undecodable(e),
    }
}

/// The fixed header at the start of every segment file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    pub seq: u64,
    pub first_index: u64,
}

pub fn encode_segment_header(h: &SegmentHeader) -> [u8; SEGMENT_HEADER_LEN] {
    let mut out = [0u8; SEGMENT_HEADER_LEN];
    out[..4].copy_from_slice(SEGMENT_MAGIC);
    out[4] = FORMAT_VERSION;
    out[8..16].copy_from_slice(&h.seq.to_le_bytes());
    out[16..24].copy_from_slice(&h.first_index.to_le_bytes());
    let crc = crc32c::crc32c(&out[..24]);
    out[24..].copy_from_slice(&crc.to_le_bytes());
    out
}

pub fn decode_segment_header(buf: &[u8]) -> Result<SegmentHeader, DecodeError> {
    let mut dec = Dec::new(buf);
    if &dec.fixed::<4>("segment.magic")? != SEGMENT_MAGIC {
        return Err(DecodeError {
            field: "segment.magic",
            offset: 0,
            reason: "not a KubeRaft WAL segment",
        });
    }
    if dec.u8("segment.version")? != FORMAT_VERSION {
        return Err(DecodeError {
            field: "segment.version",
            offset: 4,
            reason: "unsupported format version",
        });
    }
    if dec.fixed::<3>("segment.reserved")? != [0; 3] {
        return Err(DecodeError {
            field: "segment.reserved",
            offset: 5,
            reason: "reserved bytes not zero",
        });
    }
    let seq = dec.u64("segment.seq")?;
    let first_index = dec.u64("segment.first_index")?;
    let crc = dec.u32("segment.crc")?;
    if crc32c::crc32c(&buf[..24]) != crc {
        return Err(DecodeError {
            field: "segment.crc",
            offset: 24,
            reason: "header checksum mismatch",
        });
    }
    Ok(SegmentHeader { seq, first_index })
}

#[cfg(test)]
mod tests {
    use kuberaft_raft::EntryPayload;

    use super::*;

    #[test]
    fn records_round_trip_and_detect_a_flipped_bit_anywhere() {
        let mut buf = Vec::new();
        let entry = Entry {
            term: 2,
            index: 9,
            payload: EntryPayload::Normal(vec![7; 40]),
        };
        encode_entry_record(&entry, &mut buf);
        let Frame::Record { record, len } = decode_record(&buf) else {
            panic!("no record")
        };
        assert_eq!((record, len), (Record::Entry(entry), buf.len()));
        for bit in 0..buf.len() * 8 {
            let mut bad = buf.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(
                !matches!(decode_record(&bad), Frame::Record { .. }),
                "bit {bit} flip undetected"
            );
        }
        assert_eq!(decode_record(&buf[..buf.len() - 1]), Frame::Incomplete);
    }

    #[test]
    fn segment_header_round_trips_and_rejects_damage() {
        let h = SegmentHeader {
            seq: 3,
            first_index: 1000,
        };
        let bytes = encode_segment_header(&h);
        assert_eq!(decode_segment_header(&bytes).unwrap(), h);
        let mut bad = bytes;
        bad[17] ^= 4;
        assert_eq!(
            decode_segment_header(&bad).unwrap_err().field,
            "segment.crc"
        );
        assert_eq!(
            decode_segment_header(&bytes[..10]).unwrap_err().reason,
            "unexpected end"
        );
    }
}
