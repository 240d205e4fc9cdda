//! The snapshot file header (layout in the module above).

use kuberaft_raft::SnapshotMeta;

use super::types::{encode_snapshot_meta, read_snapshot_meta};
use super::{Dec, DecodeError, FORMAT_VERSION};

const SNAPSHOT_MAGIC: &[u8; 4] = b"KRSN";

/// `magic | version | reserved | meta_len`: enough to learn the whole header's length
/// from a stream before reading the rest.
pub const SNAPSHOT_PREFIX_LEN: usize = 12;

/// A membership this large is garbage; bounding it keeps a bad header from allocating.
pub const MAX_SNAPSHOT_META_LEN: u32 = 1 << 20;

/// Bytes after the metadata: `data_len u64 | data_crc u32 | header_crc u32`.
const SUFFIX_LEN: usize = 16;

/// What a snapshot file says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotHeader {
    pub meta: SnapshotMeta,
    pub data_len: u64,
    pub data_crc: u32,
}

pub fn encode_snapshot_header(h: &SnapshotHeader) -> Vec<u8> {
    let mut meta = Vec::new();
    encode_snapshot_meta(&h.meta, &mut meta);
    let mut out = Vec::with_capacity(SNAPSHOT_PREFIX_LEN + meta.len() + SUFFIX_LEN);
    out.extend_from_slice(SNAPSHOT_MAGIC);
    out.extend_from_slice(&[FORMAT_VERSION, 0, 0, 0]);
    out.extend_from_slice(&(meta.len() as u32).to_le_bytes());
    out.extend_from_slice(&meta);
    out.extend_from_slice(&h.data_len.to_le_bytes());
    out.extend_from_slice(&h.data_crc.to_le_bytes());
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// The total header length announced by its first [`SNAPSHOT_PREFIX_LEN`] bytes.
pub fn snapshot_header_len(prefix: &[u8]) -> Result<usize, DecodeError> {
    let mut dec = Dec::new(prefix);
    if &dec.fixed::<4>("snapshot.magic")? != SNAPSHOT_MAGIC {
        return Err(DecodeError {
            field: "snapshot.magic",
            offset: 0,
            reason: "not a KubeRaft snapshot",
        });
    }
    if dec.u8("snapshot.version")? != FORMAT_VERSION {
        return Err(DecodeError {
            field: "snapshot.version",
            offset: 4,
            reason: "unsupported format version",
        });
    }
    if dec.fixed::<3>("snapshot.reserved")? != [0; 3] {
        return Err(DecodeError {
            field: "snapshot.reserved",
            offset: 5,
            reason: "reserved bytes not zero",
        });
    }
    let meta_len = dec.u32("snapshot.meta_len")?;
    if meta_len > MAX_SNAPSHOT_META_LEN {
        return Err(DecodeError {
            field: "snapshot.meta_len",
            offset: 8,
            reason: "metadata too large",
        });
    }
    Ok(SNAPSHOT_PREFIX_LEN + meta_len as usize + SUFFIX_LEN)
}

/// Decodes a header from the start of `buf`; returns it and its length. Never panics.
pub fn decode_snapshot_header(buf: &[u8]) -> Result<(SnapshotHeader, usize), DecodeError> {
    let len = snapshot_header_len(buf)?;
    if buf.len() < len {
        return Err(DecodeError {
            field: "snapshot.header",
            offset: buf.len(),
            reason: "unexpected end",
        });
    }
    let crc_at = len - 4;
    let crc = u32::from_le_bytes([
        buf[crc_at],
        buf[crc_at + 1],
        buf[crc_at + 2],
        buf[crc_at + 3],
    ]);
    if crc32c::crc32c(&buf[..crc_at]) != crc {
        return Err(DecodeError {
            field: "snapshot.header_crc",
            offset: crc_at,
            reason: "header checksum mismatch",
        });
    }
    let meta_end = len - SUFFIX_LEN;
    let mut meta_dec = Dec::new(&buf[SNAPSHOT_PREFIX_LEN..meta_end]);
    let meta = read_snapshot_meta(&mut meta_dec).map_err(|e| DecodeError {
        offset: e.offset + SNAPSHOT_PREFIX_LEN,
        ..e
    })?;
    meta_dec.finish("snapshot.meta").map_err(|e| DecodeError {
        offset: e.offset + SNAPSHOT_PREFIX_LEN,
        ..e
    })?;
    let mut dec = Dec::new(&buf[meta_end..crc_at]);
    let data_len = dec.u64("snapshot.data_len")?;
    let data_crc = dec.u32("snapshot.data_crc")?;
    debug_assert_eq!(dec.pos(), 12);
    Ok((
        SnapshotHeader {
            meta,
            data_len,
            data_crc,
        },
        len,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_damage() {
        let h = SnapshotHeader {
            meta: SnapshotMeta {
                index: 5,
                term: 2,
                membership: Default::default(),
            },
            data_len: 1234,
            data_crc: 0xdead_beef,
        };
        let bytes = encode_snapshot_header(&h);
        assert_eq!(decode_snapshot_header(&bytes).unwrap(), (h, bytes.len()));
        let mut bad = bytes.clone();
        bad[SNAPSHOT_PREFIX_LEN] ^= 1;
        assert_eq!(
            decode_snapshot_header(&bad).unwrap_err().field,
            "snapshot.header_crc"
        );
        assert_eq!(
            decode_snapshot_header(&bytes[..bytes.len() - 1])
                .unwrap_err()
                .reason,
            "unexpected end"
        );
    }
}
