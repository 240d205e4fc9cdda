//! Exactly-once client sessions: remember each session's last sequence number and the
//! response it got, so a retried write returns that response instead of being applied
//! twice (Raft dissertation §6.3).
//!
//! The client contract and its reasons are in the [`kv`](super) module docs.

use std::collections::BTreeSet;

use bytes::Bytes;
use imbl::OrdMap;

use super::types::{ErrorCode, SessionSeq};

/// What the state machine remembers about one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SessionState {
    /// The highest sequence number applied; 0 right after the session was opened.
    pub(crate) last_seq: u64,
    /// The log index of the last request that named this session (its open, at first).
    pub(crate) last_used: u64,
    /// The encoded response to `last_seq`; `None` until the first write.
    pub(crate) response: Option<Bytes>,
}

/// What to do with a write that names a session.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// A new sequence number: apply the write, then [`Sessions::record`] its response.
    Apply,
    /// A retry of the last write: answer with its cached response.
    Duplicate(Bytes),
    /// Refuse with this error response.
    Reject(ErrorCode),
}

/// The session table. `by_id` is a persistent map so snapshots can hold an O(1) clone;
/// `by_last_used` orders sessions for expiry and is derived, never persisted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Sessions {
    by_id: OrdMap<u64, SessionState>,
    by_last_used: BTreeSet<(u64, u64)>,
}

impl Sessions {
    /// Rebuilds the table from snapshot records.
    pub(crate) fn from_states(by_id: OrdMap<u64, SessionState>) -> Self {
        let by_last_used = by_id.iter().map(|(id, s)| (s.last_used, *id)).collect();
        Self {
            by_id,
            by_last_used,
        }
    }

    /// The persistent part, for snapshots.
    pub(crate) fn states(&self) -> &OrdMap<u64, SessionState> {
        &self.by_id
    }

    /// Drops every session whose last use is more than `ttl` positions before `index`:
    /// a session last used at `L` still answers at `L + ttl` and is gone at `L + ttl + 1`.
    pub(crate) fn expire(&mut self, index: u64, ttl: u64) {
        while let Some(&(last_used, id)) = self.by_last_used.first() {
            if index.saturating_sub(last_used) <= ttl {
                break;
            }
            self.by_last_used.pop_first();
            self.by_id.remove(&id);
        }
    }

    /// Opens the session `client_id` (the index of the open command).
    pub(crate) fn open(&mut self, client_id: u64) {
        let state = SessionState {
            last_seq: 0,
            last_used: client_id,
            response: None,
        };
        if let Some(old) = self.by_id.insert(client_id, state) {
            // Ids are log indexes, so this cannot happen; keep the index consistent anyway.
            self.by_last_used.remove(&(old.last_used, client_id));
        }
        self.by_last_used.insert((client_id, client_id));
    }

    /// Classifies a write at `index` and marks its live session as used.
    pub(crate) fn check(&mut self, req: SessionSeq, index: u64) -> Verdict {
        let Some(state) = self.by_id.get_mut(&req.client_id) else {
            return Verdict::Reject(ErrorCode::SessionExpired {
                client_id: req.client_id,
            });
        };
        self.by_last_used.remove(&(state.last_used, req.client_id));
        state.last_used = index;
        self.by_last_used.insert((index, req.client_id));
        match (&state.response, req.seq.cmp(&state.last_seq)) {
            (_, std::cmp::Ordering::Greater) => Verdict::Apply,
            (Some(response), std::cmp::Ordering::Equal) => Verdict::Duplicate(response.clone()),
            _ => Verdict::Reject(ErrorCode::StaleSequence {
                last_seq: state.last_seq,
            }),
        }
    }

    /// Remembers the response of a write that [`Sessions::check`] said to apply.
    pub(crate) fn record(&mut self, req: SessionSeq, response: Bytes) {
        if let Some(state) = self.by_id.get_mut(&req.client_id) {
            state.last_seq = req.seq;
            state.response = Some(response);
        }
    }

    /// The number of live sessions.
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }
}
