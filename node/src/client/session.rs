//! The client's pool of exactly-once sessions.
//!
//! The KV state machine remembers one response per session, so a session may have only
//! one write in flight (see [`crate::sm::kv`]). A [`Client`](super::Client) shared by
//! many tasks therefore holds a small pool: a write borrows an idle session (or opens a
//! new one while fewer than `max_sessions` exist), numbers itself with the session's
//! next sequence number, and returns the session when it is answered. Sessions are opened
//! lazily, so a client that never writes costs the cluster nothing, and a client used by
//! one task at a time uses one session.

use std::sync::Mutex;

use tokio::sync::{Semaphore, SemaphorePermit};

/// One session as the client sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Session {
    /// The id the cluster gave the session.
    pub(crate) client_id: u64,
    /// The last sequence number used; the next write takes the one after it.
    pub(crate) last_seq: u64,
}

impl Session {
    pub(crate) fn opened(client_id: u64) -> Self {
        Self {
            client_id,
            last_seq: 0,
        }
    }

    /// Numbers a new write. A write that failed without an answer still used its
    /// number: a later write takes a higher one, which makes the old one stale on the
    /// server if it ever arrives.
    pub(crate) fn next(&mut self) -> u64 {
        self.last_seq += 1;
        self.last_seq
    }
}

/// Idle sessions plus a limit on writes in flight.
#[derive(Debug)]
pub(crate) struct SessionPool {
    idle: Mutex<Vec<Session>>,
    in_flight: Semaphore,
}

impl SessionPool {
    pub(crate) fn new(max_sessions: usize) -> Self {
        Self {
            idle: Mutex::default(),
            in_flight: Semaphore::new(max_sessions.max(1)),
        }
    }

    /// Waits until fewer than `max_sessions` writes are in flight.
    pub(crate) async fn permit(&self) -> SemaphorePermit<'_> {
        self.in_flight
            .acquire()
            .await
            .expect("the session semaphore is never closed")
    }

    /// An idle session, most recently used first (it is the least likely to expire).
    pub(crate) fn take(&self) -> Option<Session> {
        self.lock().pop()
    }

    pub(crate) fn give_back(&self, session: Session) {
        self.lock().push(session);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Session>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_session_numbers_increase_and_pool_reuses_the_latest() {
        let pool = SessionPool::new(2);
        let mut a = Session::opened(10);
        assert_eq!((a.next(), a.next()), (1, 2));
        pool.give_back(Session::opened(5));
        pool.give_back(a);
        assert_eq!(pool.take(), Some(a));
        assert_eq!(pool.take(), Some(Session::opened(5)));
        assert_eq!(pool.take(), None);
    }
}
