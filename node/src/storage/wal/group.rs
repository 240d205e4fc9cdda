//! Group commit for many threads sharing one WAL.
//!
//! The first writer that finds no sync running becomes the syncer: it takes everything
//! appended so far, drops the lock for the write + fdatasync, then wakes every writer the
//! batch covered. Writers arriving meanwhile append to the next batch, so under load one
//! fsync carries as many proposals as arrived during the previous one. This is the
//! leader/follower scheme of database log managers.

use std::sync::{Condvar, Mutex, MutexGuard};

use super::{Durable, Wal};
use crate::storage::error::{Error, Result};

/// A [`Wal`] shared by threads, each of which waits until its own write is durable.
#[derive(Debug)]
pub struct GroupCommit {
    state: Mutex<State>,
    synced: Condvar,
}

#[derive(Debug)]
struct State {
    wal: Wal,
    /// Tickets: one per `write`, in append order.
    appended: u64,
    durable_ticket: u64,
    durable: Durable,
    syncing: bool,
    syncs: u64,
    failed: Option<String>,
}

impl GroupCommit {
    pub fn new(wal: Wal) -> Self {
        let durable = wal.durable();
        let state = State {
            wal,
            appended: 0,
            durable_ticket: 0,
            durable,
            syncing: false,
            syncs: 0,
            failed: None,
        };
        GroupCommit {
            state: Mutex::new(state),
            synced: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `write` against the WAL (e.g. an append), then blocks until a sync covering
    /// it has completed, and returns what that sync made durable.
    pub fn write<T>(&self, write: impl FnOnce(&mut Wal) -> Result<T>) -> Result<(T, Durable)> {
        let mut st = self.lock();
        if let Some(why) = &st.failed {
            return Err(Error::Poisoned(why.clone()));
        }
        let out = write(&mut st.wal)?;
        st.appended += 1;
        let ticket = st.appended;
        loop {
            if st.durable_ticket >= ticket {
                return Ok((out, st.durable));
            }
            if let Some(why) = &st.failed {
                return Err(Error::Poisoned(why.clone()));
            }
            if st.syncing {
                st = self
                    .synced
                    .wait(st)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                continue;
            }
            st.syncing = true;
            let target = st.appended;
            let result = match st.wal.begin_sync() {
                Ok(mut batch) => {
                    drop(st);
                    batch.run();
                    st = self.lock();
                    st.wal.finish_sync(batch)
                }
                Err(e) => Err(e),
            };
            st.syncing = false;
            self.synced.notify_all();
            match result {
                Ok(durable) => {
                    st.durable = durable;
                    st.durable_ticket = target;
                    st.syncs += 1;
                }
                Err(e) => {
                    st.failed = Some(e.to_string());
                    return Err(e);
                }
            }
        }
    }

    /// How many syncs have run: writes / syncs is the group commit factor.
    pub fn syncs(&self) -> u64 {
        self.lock().syncs
    }

    pub fn into_inner(self) -> Wal {
        self.state
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .wal
    }
}
