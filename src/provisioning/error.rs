//! Errors of the provisioning layer, mapped once to SCIM responses by `http::error`.

use crate::db::DbError;
use crate::scim::ScimError;

/// A provisioning failure.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// The client's request is wrong or conflicts (a SCIM error with its status).
    #[error(transparent)]
    Scim(#[from] ScimError),
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
}

/// Result of provisioning.
pub type Result<T> = std::result::Result<T, ProvisionError>;
