//! The on-disk formats, defined here and nowhere else.
//!
//! Everything is little-endian; `uv` is an unsigned LEB128 varint in its shortest form
//! (decoders reject longer forms so every value has exactly one encoding, which is what
//! lets the fuzz tests demand `encode(decode(bytes)) == bytes`).
//!
//! # WAL segment, format version 1
//!
//! File name `{seq:016x}-{first_index:016x}.wal`; `seq` orders segments, `first_index`
//! is the first index the segment was opened for (informational: a truncation record
//! in it may go lower).
//!
//! ```text
//! header   "KRWL" | version u8 = 1 | 0u8 x3 | seq u64 | first_index u64 | crc32c(previous 24 bytes) u32
//! record*  len u32 | crc u32 | type u8 | payload (len bytes)
//!          crc = crc32c(len as 4 bytes ‖ type ‖ payload)
//! ```
//!
//! | type | record | payload |
//! | --- | --- | --- |
//! | 1 | entry | uv term, uv index, u8 kind: 0 empty; 1 normal + uv len + bytes; 2 conf change + u8 leave_joint + uv n + n × (u8 kind 0 AddVoter/1 AddLearner/2 Remove, uv node) |
//! | 2 | hard state | uv term, uv vote, uv commit |
//! | 3 | snapshot marker | u8 discard_log, meta |
//! | 4 | truncation | uv from_index: entries `>= from_index` are gone |
//!
//! `meta` (a [`SnapshotMeta`](kuberaft_raft::SnapshotMeta)) is `uv index, uv term` then
//! voters, outgoing and learners, each `uv count` + that many `uv id` strictly increasing.
//! A snapshot marker records a compaction point: entries `<= meta.index` are gone and,
//! with `discard_log = 1` (an installed snapshot that conflicts with the log), every
//! entry is. Each new segment starts with the current hard state and snapshot marker so
//! older segments can be deleted without losing either.
//!
//! # Snapshot file, format version 1
//!
//! ```text
//! "KRSN" | version u8 = 1 | 0u8 x3 | meta_len u32 | meta | data_len u64 | data_crc u32 | header_crc u32
//! data (data_len bytes), data_crc = crc32c(data), header_crc = crc32c(all header bytes before it)
//! ```

mod record;
mod snapshot;
mod types;

pub use record::{
    Frame, MAX_RECORD_LEN, RECORD_HEADER_LEN, Record, SEGMENT_HEADER_LEN, SegmentHeader,
    decode_record, decode_segment_header, encode_entry_record, encode_hard_state_record,
    encode_segment_header, encode_snapshot_record, encode_truncate_record,
};
pub use snapshot::{
    MAX_SNAPSHOT_META_LEN, SNAPSHOT_PREFIX_LEN, SnapshotHeader, decode_snapshot_header,
    encode_snapshot_header, snapshot_header_len,
};
pub use types::{
    decode_entry, decode_hard_state, decode_snapshot_meta, encode_entry, encode_hard_state,
    encode_snapshot_meta,
};

/// The format version written in every segment and snapshot header.
pub const FORMAT_VERSION: u8 = 1;

/// Why some bytes are not a valid encoding. `offset` is relative to the start of the
/// buffer handed to the decoder; callers add the file offset.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}` at offset {offset}: {reason}")]
pub struct DecodeError {
    pub field: &'static str,
    pub offset: usize,
    pub reason: &'static str,
}

pub(crate) fn put_uv(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_uv(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A bounds-checked reader over a payload: every failure names the field it was reading.
#[derive(Debug)]
pub(crate) struct Dec<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Dec<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Dec { buf, pos: 0 }
    }

    pub(crate) fn err(&self, field: &'static str, reason: &'static str) -> DecodeError {
        DecodeError {
            field,
            offset: self.pos,
            reason,
        }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| self.err(field, "unexpected end"))?;
        self.pos += 1;
        Ok(b)
    }

    pub(crate) fn bool(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError {
                field,
                offset: self.pos - 1,
                reason: "boolean not 0 or 1",
            }),
        }
    }

    pub(crate) fn uv(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        let start = self.pos;
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self
                .u8(field)
                .map_err(|e| DecodeError { offset: start, ..e })?;
            if shift == 63 && b > 1 {
                return Err(DecodeError {
                    field,
                    offset: start,
                    reason: "varint overflows u64",
                });
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                if b == 0 && shift > 0 {
                    return Err(DecodeError {
                        field,
                        offset: start,
                        reason: "non-canonical varint",
                    });
                }
                return Ok(v);
            }
        }
        Err(DecodeError {
            field,
            offset: start,
            reason: "varint longer than 10 bytes",
        })
    }

    /// A count of items that each take at least one byte: bounding it by the bytes left
    /// keeps garbage from asking for a huge allocation.
    pub(crate) fn count(&mut self, field: &'static str) -> Result<usize, DecodeError> {
        let start = self.pos;
        let n = self.uv(field)?;
        if n > self.remaining() as u64 {
            return Err(DecodeError {
                field,
                offset: start,
                reason: "count exceeds remaining bytes",
            });
        }
        Ok(n as usize)
    }

    pub(crate) fn bytes(&mut self, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let n = self.count(field)?;
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub(crate) fn fixed<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], DecodeError> {
        if self.remaining() < N {
            return Err(self.err(field, "unexpected end"));
        }
        let mut out = [0u8; N];
        out.copy_from_slice(&self.buf[self.pos..self.pos + N]);
        self.pos += N;
        Ok(out)
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        self.fixed::<4>(field).map(u32::from_le_bytes)
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        self.fixed::<8>(field).map(u64::from_le_bytes)
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Payloads are exact: trailing bytes mean the writer and reader disagree.
    pub(crate) fn finish(self, what: &'static str) -> Result<(), DecodeError> {
        if self.remaining() != 0 {
            return Err(self.err(what, "trailing bytes"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_reject_overlong_forms() {
        for v in [0, 1, 127, 128, 300, u32::MAX as u64, u64::MAX - 1, u64::MAX] {
            let mut buf = Vec::new();
            put_uv(&mut buf, v);
            let mut dec = Dec::new(&buf);
            assert_eq!(dec.uv("v").unwrap(), v);
            dec.finish("v").unwrap();
        }
        assert_eq!(
            Dec::new(&[0x80, 0x00]).uv("v").unwrap_err().reason,
            "non-canonical varint"
        );
        let overflow = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert_eq!(
            Dec::new(&overflow).uv("v").unwrap_err().reason,
            "varint overflows u64"
        );
        assert_eq!(
            Dec::new(&[0x80]).uv("v").unwrap_err().reason,
            "unexpected end"
        );
    }
}
