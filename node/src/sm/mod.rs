//! State machines: the [`StateMachine`] trait the node applies committed entries to, and
//! the default key-value store ([`kv::KvStateMachine`]). Commands, queries and responses
//! cross this boundary as bytes, so the node and the Raft core stay generic over what is
//! replicated (the idea of akka-raft's `RaftActor.apply`).

pub mod kv;

use std::fmt;
use std::io::{Read, Write};

/// Result of the [`StateMachine`] methods.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A deterministic state machine replicated by Raft.
///
/// The node calls it from one thread: `apply` for every committed normal entry, `query`
/// for reads once `applied_index()` has reached the read's index (ReadIndex, lease or
/// stale), `snapshot` when the log should be compacted, `restore` when a snapshot from
/// the leader (or from disk at start-up) replaces the state.
///
/// # Correctness requirements
///
/// Every replica must end in the same state and return the same responses, so an
/// implementation must hold to these:
///
/// - **Deterministic.** The result of `apply` depends only on the state and the
///   `(index, command)` pair: no clock, no randomness, no environment, no iteration over
///   hash maps with a random seed. Time-based behaviour (such as expiring sessions) must
///   be driven by the log index or by a time the leader wrote into the command.
/// - **Exactly once, in index order.** `apply` sees each index at most once and in
///   increasing order. Indexes may have gaps (configuration changes and the leader's
///   empty entries are not handed to the state machine); an index at or below
///   `applied_index()` is refused with [`Error::IndexNotAfterApplied`] and changes
///   nothing. Exactly-once for *clients* (retries) is the state machine's own business:
///   see the sessions of [`kv`].
/// - **Bad input is a response, not an error.** A command that cannot be decoded still
///   counts as applied and yields a deterministic error *response* in `Ok`; it must never
///   panic (a panic on one replica is a panic on all of them). `Err` from `apply` means
///   the call was refused and the state is unchanged.
/// - **Snapshot = state at its index.** The source returned by `snapshot` writes the
///   state exactly as of `applied_index()` at the time of the call, even while `apply`
///   continues on the live state.
/// - **Restore replaces everything.** After a successful `restore` the state, including
///   `applied_index()`, is exactly the one the snapshot was taken from. A failed
///   `restore` leaves the previous state untouched.
pub trait StateMachine: Send {
    /// Applies the committed `command` at log `index` and returns the response for the
    /// client that proposed it.
    fn apply(&mut self, index: u64, command: &[u8]) -> Result<Vec<u8>>;

    /// The index of the last applied entry (or of the restored snapshot); 0 when empty.
    fn applied_index(&self) -> u64;

    /// Answers a read-only query against the current state. The node calls it only after
    /// `applied_index()` has reached the read's index, which is what makes it
    /// linearizable.
    fn query(&self, query: &[u8]) -> Result<Vec<u8>>;

    /// Captures the state as of `applied_index()`. Capturing must be cheap (an O(1)
    /// persistent clone, say), because writing it out is meant to run on another thread
    /// while `apply` continues.
    fn snapshot(&self) -> Box<dyn SnapshotSource>;

    /// Replaces the whole state with the snapshot read from `reader`. The input is
    /// validated completely before anything is replaced.
    fn restore(&mut self, reader: &mut dyn Read) -> Result<()>;
}

/// A captured state that streams itself out, record by record, without building the whole
/// snapshot in one buffer.
pub trait SnapshotSource: Send + fmt::Debug {
    /// The applied index the captured state corresponds to.
    fn index(&self) -> u64;

    /// Writes the snapshot to `out` and returns the number of bytes written.
    fn write_to(self: Box<Self>, out: &mut dyn Write) -> Result<u64>;
}

/// Why a [`StateMachine`] call was refused. The variant names double as metric labels.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller broke the "increasing index" rule; nothing was applied.
    #[error("apply at index {index}, but index {applied} is already applied")]
    IndexNotAfterApplied {
        /// The index the caller tried to apply.
        index: u64,
        /// The state machine's applied index.
        applied: u64,
    },
    /// Reading or writing snapshot bytes failed.
    #[error("snapshot i/o: {0}")]
    Io(#[from] std::io::Error),
    /// Snapshot input is not a valid snapshot; the previous state is still in place.
    #[error("invalid snapshot: {0}")]
    Snapshot(#[from] kv::SnapshotError),
}
