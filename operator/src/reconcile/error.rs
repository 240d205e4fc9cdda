//! Reconcile errors. A failed reconcile is retried with backoff ([`super::controller`]);
//! nothing here is fatal to the operator. Variant names double as the `reason` label of the
//! error metric, so keep them stable.

use super::admin::AdminError;
use crate::build::IdentityError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The RaftCluster lacks name, namespace or uid (never stored by the apiserver).
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// Reading objects from the apiserver failed.
    #[error("observing {what}: {source}")]
    Observe {
        what: &'static str,
        #[source]
        source: kube::Error,
    },
    /// Writing an object (server-side apply, delete) failed.
    #[error("applying {what}: {source}")]
    Apply {
        what: String,
        #[source]
        source: kube::Error,
    },
    /// Patching status failed.
    #[error("writing status: {0}")]
    Status(#[source] kube::Error),
    /// A member's Admin API refused or did not answer a step's call.
    #[error("admin call {call}: {source}")]
    Admin {
        call: &'static str,
        #[source]
        source: AdminError,
    },
    /// The plan names a pod or member the observation cannot resolve (the world moved
    /// between observing and applying; the next reconcile plans again).
    #[error("cannot apply {step}: {reason}")]
    Stale { step: &'static str, reason: String },
    /// Adding or removing the finalizer failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    /// Stable metric label: the variant name, refined by the Admin error kind.
    pub fn label(&self) -> &'static str {
        match self {
            Error::Identity(_) => "Identity",
            Error::Observe { .. } => "Observe",
            Error::Apply { .. } => "Apply",
            Error::Status(_) => "Status",
            Error::Admin { source, .. } => match source {
                AdminError::Timeout { .. } => "AdminTimeout",
                AdminError::Unavailable { .. } => "AdminUnavailable",
                AdminError::NotLeader { .. } => "AdminNotLeader",
                AdminError::Refused { .. } => "AdminRefused",
                AdminError::Unauthenticated { .. } => "AdminUnauthenticated",
                AdminError::IdentityChanged { .. } => "AdminIdentityChanged",
                AdminError::Failed { .. } => "AdminFailed",
            },
            Error::Stale { .. } => "Stale",
            Error::Finalizer(_) => "Finalizer",
        }
    }

    pub(crate) fn admin(call: &'static str) -> impl FnOnce(AdminError) -> Error {
        move |source| Error::Admin { call, source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
