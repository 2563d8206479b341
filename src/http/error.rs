//! The one place that maps errors to HTTP: RFC 7644 §3.12 error bodies, `application/scim+json`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::provisioning::ProvisionError;
use crate::scim::schema::urn;
use crate::scim::{ScimError, ScimType};
use crate::token::AuthError;

/// SCIM's media type.
pub const SCIM_JSON: &str = "application/scim+json";

/// An error answer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A SCIM protocol error.
    #[error(transparent)]
    Scim(#[from] ScimError),
    /// No valid bearer token (RFC 7235 §4.1: 401 with `WWW-Authenticate`).
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// Too many requests; retry after this many seconds.
    #[error("rate limited: {detail}")]
    RateLimited { retry_after: u64, detail: String },
    /// The database cannot be reached: retry later.
    #[error("database unavailable")]
    Unavailable,
    /// A bug or an unexpected database state; details are logged, never sent.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::Scim(e) => e.status,
            ApiError::Unauthorized(_) => 401,
            ApiError::RateLimited { .. } => 429,
            ApiError::Unavailable => 503,
            ApiError::Internal => 500,
        }
    }

    /// The detail sent to the client.
    pub fn detail(&self) -> String {
        match self {
            ApiError::Scim(e) => e.detail.clone(),
            ApiError::Unauthorized(d) => d.clone(),
            ApiError::RateLimited { detail, .. } => detail.clone(),
            ApiError::Unavailable => "the Phabricator database is unavailable; retry later".into(),
            ApiError::Internal => "internal error; the service log has the details".into(),
        }
    }

    fn scim_type(&self) -> Option<ScimType> {
        match self {
            ApiError::Scim(e) => e.scim_type,
            _ => None,
        }
    }
}

impl From<ProvisionError> for ApiError {
    fn from(e: ProvisionError) -> Self {
        match e {
            ProvisionError::Scim(s) => ApiError::Scim(s),
            ProvisionError::Db(db) if db.is_unavailable() => {
                tracing::warn!(error = %db, "database unavailable");
                ApiError::Unavailable
            }
            ProvisionError::Db(db) if db.is_retryable() => {
                tracing::warn!(error = %db, "gave up after repeated deadlocks");
                ApiError::Unavailable
            }
            ProvisionError::Db(db) if db.is_unique_violation() => ApiError::Scim(
                ScimError::uniqueness("the value conflicts with an existing resource"),
            ),
            ProvisionError::Db(db) => {
                tracing::error!(error = ?db, "database error [DB0001]");
                ApiError::Internal
            }
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::RateLimited(secs) => ApiError::RateLimited {
                retry_after: secs,
                detail: e.to_string(),
            },
            AuthError::Db(db) => ProvisionError::Db(db).into(),
            other => ApiError::Unauthorized(other.to_string()),
        }
    }
}

impl ApiError {
    /// The RFC 7644 §3.12 error body: `status` as a string, `scimType` when one applies. Also
    /// the `response` of a failed Bulk operation (§3.7.3).
    pub fn body(&self) -> serde_json::Value {
        let mut body = json!({
            "schemas": [urn::ERROR],
            "status": self.status().to_string(),
            "detail": self.detail(),
        });
        if let Some(t) = self.scim_type() {
            body["scimType"] = json!(t.as_str());
        }
        body
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = self.body();
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (code, body.to_string()).into_response();
        resp.extensions_mut()
            .insert(super::auth::ErrorDetail(self.detail()));
        let headers = resp.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
        match &self {
            ApiError::Unauthorized(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"phab-scim\""),
                );
            }
            ApiError::RateLimited { retry_after, .. } => {
                if let Ok(v) = HeaderValue::from_str(&retry_after.max(&1).to_string()) {
                    headers.insert(header::RETRY_AFTER, v);
                }
            }
            ApiError::Unavailable => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            // RFC 6585 §4: a 429 says when to come back. The deprovision guard's refusal holds
            // until the window moves or an operator raises the share; a minute paces retries.
            ApiError::Scim(e) if e.status == 429 => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
            }
            _ => {}
        }
        resp
    }
}
