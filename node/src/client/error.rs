//! The client's errors and how a gRPC status is classified: follow a leader hint, try
//! another member, or give up. The variant names double as metric labels.

use std::time::Duration;

use tonic::{Code, Status};

use super::details;

/// Result of the client calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `connect` was given no endpoint.
    #[error("no endpoints given")]
    NoEndpoints,
    /// An endpoint is not a valid address.
    #[error("invalid endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint {
        /// The address as given.
        endpoint: String,
        /// Why it was refused.
        reason: String,
    },
    /// The admin token cannot be sent as a header value.
    #[error("the admin token is not a valid header value (printable ASCII only)")]
    InvalidToken,
    /// The retry budget ran out without an answer: every member tried was unreachable,
    /// timed out, or was not the leader and knew no leader. A write that fails this way
    /// is in doubt: it may still be applied.
    #[error("no member answered {op} within {budget:?} (tried {tried}): {last}", tried = .tried.join(", "))]
    Unavailable {
        /// The operation, e.g. `put`.
        op: &'static str,
        /// The members tried, in the order first tried.
        tried: Vec<String>,
        /// The last failure seen.
        last: String,
        /// The retry budget that ran out.
        budget: Duration,
    },
    /// The server refused the request for a reason a retry cannot fix (bad argument,
    /// missing admin token, ...).
    #[error("{op}: {code:?}: {message}")]
    Rpc {
        /// The operation, e.g. `put`.
        op: &'static str,
        /// The gRPC status code.
        code: Code,
        /// The server's message.
        message: String,
    },
    /// The cluster no longer knows the session a write named (it went unused for longer
    /// than the session TTL). [`Client`](super::Client) handles it by opening a new session.
    #[error("{op}: session expired")]
    SessionExpired {
        /// The operation, e.g. `put`.
        op: &'static str,
    },
    /// The session expired while a write was being retried, so whether the write was
    /// applied is unknown: read to find out.
    #[error(
        "{op}: session {client_id} expired while the write was retried; it may or may not be applied"
    )]
    WriteInDoubt {
        /// The operation, e.g. `put`.
        op: &'static str,
        /// The expired session.
        client_id: u64,
    },
    /// A membership change could not be completed as asked.
    #[error("{0}")]
    Membership(String),
    /// The server answered with something the protocol does not allow.
    #[error("{op}: unexpected response: {reason}")]
    Protocol {
        /// The operation, e.g. `put`.
        op: &'static str,
        /// What was wrong.
        reason: String,
    },
}

/// What to do after one attempt failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The member is not the leader; `Some` names the leader's client address.
    NotLeader(Option<String>),
    /// The member could not answer now (down, timed out, busy, electing): try another.
    Retry(String),
    /// The session named in the write is unknown to the cluster.
    SessionExpired,
    /// Retrying cannot help.
    Fatal(Status),
}

impl Failure {
    /// Classifies a status. `Aborted` and `ResourceExhausted` are retried because a
    /// server answers them when leadership changes under a proposal or it sheds load;
    /// retrying a write is safe since it carries the same session sequence number.
    pub(crate) fn classify(status: Status) -> Self {
        if is_session_expired(&status) {
            return Failure::SessionExpired;
        }
        match status.code() {
            Code::FailedPrecondition => match details::not_leader(&status) {
                Some(hint) => Failure::NotLeader(hint),
                None => Failure::Fatal(status),
            },
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Aborted
            | Code::ResourceExhausted
            | Code::Cancelled
            | Code::Unknown => Failure::Retry(describe(&status)),
            _ => Failure::Fatal(status),
        }
    }
}

/// The server signals an unknown session with this phrase in the status message (any
/// code): the proto has no dedicated detail for it.
fn is_session_expired(status: &Status) -> bool {
    let message = status.message().to_ascii_lowercase();
    message.contains("session expired") || message.contains("sessionexpired")
}

/// A one-line description of a status, with the root transport cause when tonic has
/// one (`connection refused` is more useful than `transport error`); the layers between
/// repeat each other and are left out.
pub(crate) fn describe(status: &Status) -> String {
    use std::error::Error as _;
    let mut text = format!("{:?}: {}", status.code(), status.message());
    let mut root = None;
    let mut source = status.source();
    while let Some(cause) = source {
        root = Some(cause);
        source = cause.source();
    }
    if let Some(root) = root.map(|r| r.to_string())
        && !text.contains(&root)
    {
        text.push_str(": ");
        text.push_str(&root);
    }
    text.replace('\n', " ")
}
