//! What a node's disk holds in a script, and the writes a Ready asks for: the durable
//! half of the Ready contract, which `crash` keeps and everything else loses.

use super::print;
use crate::raw_node::{InitialState, Ready};
use crate::types::*;

/// What one Ready asks to make durable, and the messages that wait for it.
#[derive(Clone, Debug)]
pub(crate) struct Write {
    pub(crate) hard_state: Option<HardState>,
    pub(crate) snapshot: Option<Snapshot>,
    pub(crate) entries: Vec<Entry>,
    pub(crate) persisted_messages: Vec<Message>,
}

impl Write {
    pub(crate) fn of(rd: &Ready) -> Write {
        Write {
            hard_state: rd.hard_state,
            snapshot: rd.snapshot.clone(),
            entries: rd.entries.clone(),
            persisted_messages: rd.persisted_messages.clone(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.hard_state.is_none()
            && self.snapshot.is_none()
            && self.entries.is_empty()
            && self.persisted_messages.is_empty()
    }

    pub(crate) fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(s) = &self.snapshot {
            parts.push(format!("Snapshot {}/{}", s.meta.term, s.meta.index));
        }
        if let (Some(a), Some(b)) = (self.entries.first(), self.entries.last()) {
            parts.push(format!(
                "Entries {}/{}..{}/{}",
                a.term, a.index, b.term, b.index
            ));
        }
        if let Some(hs) = &self.hard_state {
            parts.push(print::hard_state(hs));
        }
        if parts.is_empty() {
            parts.push("nothing new".to_string());
        }
        parts.join(", ")
    }
}

/// What survives a crash.
#[derive(Clone, Debug, Default)]
pub(crate) struct Storage {
    pub(crate) hard_state: HardState,
    pub(crate) snapshot: Snapshot,
    pub(crate) entries: Vec<Entry>,
}

impl Storage {
    pub(crate) fn from_state(st: &InitialState) -> Storage {
        Storage {
            hard_state: st.hard_state,
            snapshot: st.snapshot.clone(),
            entries: st.entries.clone(),
        }
    }

    /// One ordered write: snapshot, then entries (truncating a replaced suffix), then the
    /// hard state.
    pub(crate) fn write(&mut self, w: &Write) {
        if let Some(s) = &w.snapshot {
            self.snapshot = s.clone();
            self.entries.clear();
        }
        if let Some(first) = w.entries.first() {
            let keep = first.index.saturating_sub(self.snapshot.meta.index + 1) as usize;
            self.entries.truncate(keep);
            self.entries.extend(w.entries.iter().cloned());
        }
        if let Some(hs) = w.hard_state {
            self.hard_state = hs;
        }
    }

    pub(crate) fn initial_state(&self) -> InitialState {
        InitialState {
            hard_state: self.hard_state,
            snapshot: self.snapshot.clone(),
            entries: self.entries.clone(),
            applied: 0,
        }
    }

    /// The configuration as of `index`, replayed from the stored snapshot and entries.
    pub(crate) fn membership_at(&self, index: u64) -> Membership {
        let mut m = self.snapshot.meta.membership.clone();
        for e in self.entries.iter().take_while(|e| e.index <= index) {
            if let EntryPayload::ConfChange(cc) = &e.payload
                && let Ok(next) = m.apply(cc)
            {
                m = next;
            }
        }
        m
    }
}

/// Replaces the state machine with a snapshot's: its commands, joined by commas.
pub(crate) fn install(sm: &mut Vec<(u64, String)>, s: &Snapshot) {
    let data = String::from_utf8_lossy(&s.data).into_owned();
    *sm = data
        .split(',')
        .filter(|d| !d.is_empty())
        .map(|d| (s.meta.index, d.to_string()))
        .collect();
}

pub(crate) fn apply(sm: &mut Vec<(u64, String)>, entries: &[Entry]) {
    for e in entries {
        if let EntryPayload::Normal(d) = &e.payload {
            sm.push((e.index, String::from_utf8_lossy(d).into_owned()));
        }
    }
}
