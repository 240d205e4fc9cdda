//! The KV snapshot format: written record by record from a captured persistent clone, and
//! read back with every byte checked before the live state is replaced.
//!
//! # Format (version 1)
//!
//! ```text
//! header (32 bytes): magic "KRKVSNAP" | version u32 LE | applied index u64 LE
//!                    | global revision u64 LE | crc32c of the previous 28 bytes, u32 LE
//! records:           len u32 LE | crc32c(len bytes ++ payload) u32 LE | payload
//! ```
//!
//! Each payload is one postcard-encoded `Record` (see [`super::types`] for postcard's
//! rules): first every key in strictly increasing byte order, then every session in
//! increasing id order, then exactly one `End` record with both counts, then end of input.
//! The checksum covers the length, so a flipped length bit is caught before it is trusted;
//! the `End` record and the end-of-input check catch truncation at a record boundary.
//! Payloads are at most [`MAX_RECORD_LEN`] bytes and are read without preallocating the
//! claimed length, so a corrupt length cannot make the reader allocate gigabytes.

use std::io::{self, Read, Write};

use bytes::Bytes;
use imbl::OrdMap;
use serde::{Deserialize, Serialize};

use super::session::{SessionState, Sessions};
use super::types::KeyValue;
use super::{State, Stored};
use crate::sm::{Error, Result, SnapshotSource};

/// The first eight bytes of every KV snapshot.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"KRKVSNAP";
/// The snapshot format version this code writes and reads.
pub const SNAPSHOT_VERSION: u32 = 1;
/// The largest record payload accepted; far above any key, value or cached response the
/// node lets into the log.
pub const MAX_RECORD_LEN: u32 = 256 << 20;

const HEADER_LEN: usize = 32;
const FRAME_LEN: usize = 8;

/// Why snapshot bytes were rejected. Offsets are byte positions in the snapshot stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// The input does not start with [`SNAPSHOT_MAGIC`].
    #[error("not a KV snapshot: bad magic")]
    BadMagic,
    /// The header names a format this code cannot read.
    #[error("unsupported KV snapshot format version {version}")]
    UnsupportedVersion {
        /// The version in the header.
        version: u32,
    },
    /// The input ended inside the header or a record, or before the end record.
    #[error("snapshot truncated at byte {offset}")]
    Truncated {
        /// Where the incomplete header or record starts.
        offset: u64,
    },
    /// The header or a record does not match its checksum.
    #[error("checksum mismatch in the record at byte {offset}")]
    Checksum {
        /// Where the corrupt header or record starts.
        offset: u64,
    },
    /// A record passed its checksum but breaks the format's rules.
    #[error("invalid snapshot record at byte {offset}: {reason}")]
    Invalid {
        /// Where the record starts.
        offset: u64,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// Bytes follow the end record.
    #[error("unexpected data after the end record, at byte {offset}")]
    TrailingData {
        /// Where the extra bytes start.
        offset: u64,
    },
}

/// One snapshot record; the variant order is part of the format.
#[derive(Debug, Serialize, Deserialize)]
enum Record {
    Key(KeyValue),
    Session(SessionRecord),
    End { keys: u64, sessions: u64 },
}

#[derive(Debug, Serialize, Deserialize)]
struct SessionRecord {
    client_id: u64,
    last_seq: u64,
    last_used: u64,
    response: Option<Bytes>,
}

/// A captured KV state: O(1) clones of the persistent maps, so capturing is instant and
/// writing can run on another thread while the live machine keeps applying.
#[derive(Debug, Clone)]
pub struct KvSnapshot {
    applied: u64,
    revision: u64,
    kvs: OrdMap<Bytes, Stored>,
    sessions: OrdMap<u64, SessionState>,
}

impl KvSnapshot {
    pub(crate) fn capture(state: &State) -> Self {
        Self {
            applied: state.applied,
            revision: state.revision,
            kvs: state.kvs.clone(),
            sessions: state.sessions.states().clone(),
        }
    }
}

impl SnapshotSource for KvSnapshot {
    fn index(&self) -> u64 {
        self.applied
    }

    fn write_to(self: Box<Self>, out: &mut dyn Write) -> Result<u64> {
        let mut header = Vec::with_capacity(HEADER_LEN);
        header.extend_from_slice(&SNAPSHOT_MAGIC);
        header.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
        header.extend_from_slice(&self.applied.to_le_bytes());
        header.extend_from_slice(&self.revision.to_le_bytes());
        header.extend_from_slice(&crc32c::crc32c(&header).to_le_bytes());
        out.write_all(&header)?;
        let mut w = RecordWriter {
            out,
            written: HEADER_LEN as u64,
            buf: Vec::new(),
        };
        for (key, stored) in &self.kvs {
            w.record(&Record::Key(stored.to_kv(key)))?;
        }
        for (&client_id, s) in &self.sessions {
            w.record(&Record::Session(SessionRecord {
                client_id,
                last_seq: s.last_seq,
                last_used: s.last_used,
                response: s.response.clone(),
            }))?;
        }
        w.record(&Record::End {
            keys: self.kvs.len() as u64,
            sessions: self.sessions.len() as u64,
        })?;
        Ok(w.written)
    }
}

struct RecordWriter<'a> {
    out: &'a mut dyn Write,
    written: u64,
    /// Reused for every record, so memory stays at one record whatever the state size.
    buf: Vec<u8>,
}

impl RecordWriter<'_> {
    fn record(&mut self, record: &Record) -> Result<()> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        buf.resize(FRAME_LEN, 0);
        let mut buf = postcard::to_extend(record, buf).map_err(io::Error::other)?;
        let len = u32::try_from(buf.len() - FRAME_LEN)
            .ok()
            .filter(|&len| len <= MAX_RECORD_LEN)
            .ok_or_else(|| io::Error::other("snapshot record exceeds MAX_RECORD_LEN"))?;
        buf[..4].copy_from_slice(&len.to_le_bytes());
        let crc = crc32c::crc32c_append(crc32c::crc32c(&buf[..4]), &buf[FRAME_LEN..]);
        buf[4..FRAME_LEN].copy_from_slice(&crc.to_le_bytes());
        self.out.write_all(&buf)?;
        self.written += buf.len() as u64;
        self.buf = buf;
        Ok(())
    }
}

/// Reads and validates a whole snapshot into a fresh [`State`]; the caller swaps it in.
pub(crate) fn read_state(reader: &mut dyn Read) -> Result<State> {
    let mut r = RecordReader {
        inner: reader,
        offset: 0,
    };
    let mut header = [0u8; HEADER_LEN];
    if r.read_full(&mut header)? < HEADER_LEN {
        return Err(SnapshotError::Truncated { offset: 0 }.into());
    }
    let field = |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().expect("8 bytes"));
    if header[..8] != SNAPSHOT_MAGIC {
        return Err(SnapshotError::BadMagic.into());
    }
    let stored_crc = u32::from_le_bytes(header[28..32].try_into().expect("4 bytes"));
    if crc32c::crc32c(&header[..28]) != stored_crc {
        return Err(SnapshotError::Checksum { offset: 0 }.into());
    }
    let version = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
    if version != SNAPSHOT_VERSION {
        return Err(SnapshotError::UnsupportedVersion { version }.into());
    }
    let (applied, revision) = (field(12), field(20));
    if revision > applied {
        return Err(invalid(0, "global revision after the applied index"));
    }
    let mut kvs: OrdMap<Bytes, Stored> = OrdMap::new();
    let mut sessions: OrdMap<u64, SessionState> = OrdMap::new();
    loop {
        let offset = r.offset;
        let record = r.next_record()?;
        match record {
            Record::Key(kv) => {
                if !sessions.is_empty() {
                    return Err(invalid(offset, "key record after session records"));
                }
                if kvs.get_max().is_some_and(|(last, _)| *last >= kv.key) {
                    return Err(invalid(offset, "keys not in strictly increasing order"));
                }
                if kv.version == 0
                    || kv.create_revision == 0
                    || kv.create_revision > kv.mod_revision
                    || kv.mod_revision > revision
                {
                    return Err(invalid(offset, "inconsistent key revisions"));
                }
                let stored = Stored {
                    value: kv.value,
                    create_revision: kv.create_revision,
                    mod_revision: kv.mod_revision,
                    version: kv.version,
                };
                kvs.insert(kv.key, stored);
            }
            Record::Session(s) => {
                if sessions
                    .get_max()
                    .is_some_and(|(last, _)| *last >= s.client_id)
                {
                    return Err(invalid(offset, "sessions not in increasing id order"));
                }
                if s.client_id == 0 || s.client_id > s.last_used || s.last_used > applied {
                    return Err(invalid(offset, "inconsistent session positions"));
                }
                if (s.last_seq == 0) != s.response.is_none() {
                    return Err(invalid(offset, "session response without a sequence"));
                }
                let state = SessionState {
                    last_seq: s.last_seq,
                    last_used: s.last_used,
                    response: s.response,
                };
                sessions.insert(s.client_id, state);
            }
            Record::End {
                keys,
                sessions: session_count,
            } => {
                if keys != kvs.len() as u64 || session_count != sessions.len() as u64 {
                    return Err(invalid(offset, "end record counts do not match"));
                }
                let end = r.offset;
                if r.read_full(&mut [0u8; 1])? != 0 {
                    return Err(SnapshotError::TrailingData { offset: end }.into());
                }
                return Ok(State {
                    applied,
                    revision,
                    kvs,
                    sessions: Sessions::from_states(sessions),
                });
            }
        }
    }
}

fn invalid(offset: u64, reason: &'static str) -> Error {
    SnapshotError::Invalid { offset, reason }.into()
}

struct RecordReader<'a> {
    inner: &'a mut dyn Read,
    offset: u64,
}

impl RecordReader<'_> {
    /// Reads until `buf` is full or the input ends; returns how much was read.
    fn read_full(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.inner.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.offset += filled as u64;
        Ok(filled)
    }

    fn next_record(&mut self) -> Result<Record> {
        let offset = self.offset;
        let truncated = || -> Error { SnapshotError::Truncated { offset }.into() };
        let mut frame = [0u8; FRAME_LEN];
        if self.read_full(&mut frame)? < FRAME_LEN {
            return Err(truncated());
        }
        let len = u32::from_le_bytes(frame[..4].try_into().expect("4 bytes"));
        let stored_crc = u32::from_le_bytes(frame[4..].try_into().expect("4 bytes"));
        if len > MAX_RECORD_LEN {
            return Err(invalid(offset, "record length above MAX_RECORD_LEN"));
        }
        // `take` + `read_to_end` grows the buffer as bytes arrive instead of trusting the
        // length for an allocation up front.
        let mut payload = Vec::new();
        (&mut *self.inner)
            .take(u64::from(len))
            .read_to_end(&mut payload)?;
        self.offset += payload.len() as u64;
        if payload.len() < len as usize {
            return Err(truncated());
        }
        if crc32c::crc32c_append(crc32c::crc32c(&frame[..4]), &payload) != stored_crc {
            return Err(SnapshotError::Checksum { offset }.into());
        }
        match postcard::take_from_bytes::<Record>(&payload) {
            Ok((record, [])) => Ok(record),
            _ => Err(invalid(offset, "undecodable record payload")),
        }
    }
}
