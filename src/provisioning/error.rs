//! Errors of the provisioning layer: what went wrong, in the domain's words. Never an HTTP
//! status: `http::error` is the one table that turns each into a status, a `scimType` and a
//! `Retry-After`.

use crate::db::DbError;
use crate::scim::ScimError;

/// How long a client refused by the deprovision guard should wait before retrying. The
/// refusal holds until the window moves or an operator raises the share; a minute paces
/// retries (docs/design.md#deprovision-guard).
pub const GUARD_RETRY_AFTER_SECS: u64 = 60;

/// How long a client should wait while a staged rollout is applied: `apply` takes seconds to
/// minutes, and the IdP's retry then goes to Phabricator directly.
pub const APPLYING_RETRY_AFTER_SECS: u64 = 10;

/// A provisioning failure.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// The request breaks the protocol, as the `scim` layer found while reading it (syntax,
    /// filter, path, precondition): that layer's error, passed on as it is.
    #[error(transparent)]
    Request(#[from] ScimError),
    /// No such resource (or one SCIM does not manage, or deprovisioned).
    #[error("not found: {0}")]
    NotFound(String),
    /// The value conflicts with an existing resource: a name, an address, a login identity.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The resource exists; this service's rules refuse the change (a protected account).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// A value the request sent that Phabricator cannot take.
    #[error("invalid value: {0}")]
    InvalidValue(String),
    /// The deprovision guard refused a burst of deprovisions; retry after this many seconds.
    #[error("deprovision guard: {detail}")]
    GuardTripped {
        retry_after_secs: u64,
        detail: String,
    },
    /// A staged rollout's plan is being applied (or was, a moment ago): the write is to be
    /// retried shortly, when the service writes Phabricator itself.
    #[error("the staged rollout is being applied; retry shortly")]
    RolloutApplying,
    /// The service's configuration does not match the Phabricator it writes to.
    #[error("misconfigured: {0}")]
    Misconfigured(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for ProvisionError {
    fn from(e: sqlx::Error) -> Self {
        ProvisionError::Db(DbError::Sqlx(e))
    }
}

impl ProvisionError {
    /// A deadlock or lock wait: the transaction may be retried whole.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ProvisionError::Db(e) if e.is_retryable())
    }

    /// What the client is told of a refusal; `None` for a database failure, whose details
    /// are logged and never sent.
    pub fn reason(&self) -> Option<&str> {
        match self {
            ProvisionError::Request(s) => Some(&s.detail),
            ProvisionError::NotFound(d)
            | ProvisionError::Conflict(d)
            | ProvisionError::Forbidden(d)
            | ProvisionError::InvalidValue(d)
            | ProvisionError::Misconfigured(d) => Some(d),
            ProvisionError::GuardTripped { detail, .. } => Some(detail),
            ProvisionError::RolloutApplying => {
                Some("the staged rollout is being applied; retry shortly")
            }
            ProvisionError::Db(_) => None,
        }
    }
}

/// Result of provisioning.
pub type Result<T> = std::result::Result<T, ProvisionError>;
