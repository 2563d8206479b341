//! The one place that maps errors to HTTP: RFC 7644 §3.12 error bodies, `application/scim+json`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::provisioning::service::ResourceType;
use crate::provisioning::{Ctx, ProvisionError, Provisioner, log_refusal};
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
    /// The service cannot take the write now (a staged rollout being applied); retry after
    /// this many seconds.
    #[error("busy: {detail}")]
    Busy { retry_after: u64, detail: String },
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
            ApiError::Busy { .. } | ApiError::Unavailable => 503,
            ApiError::Internal => 500,
        }
    }

    /// The detail sent to the client.
    pub fn detail(&self) -> String {
        match self {
            ApiError::Scim(e) => e.detail.clone(),
            ApiError::Unauthorized(d) => d.clone(),
            ApiError::RateLimited { detail, .. } | ApiError::Busy { detail, .. } => detail.clone(),
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

/// The table: the status and `scimType` (RFC 7644 §3.12) of each refusal the provisioning
/// layer decides; `None` for a database failure, which `ApiError::from` classifies.
pub fn refusal_answer(e: &ProvisionError) -> Option<(u16, Option<ScimType>)> {
    Some(match e {
        ProvisionError::Request(s) => (s.status, s.scim_type),
        ProvisionError::NotFound(_) => (404, None),
        // RFC 7644 §3.3: a POST that conflicts with an existing resource is 409 uniqueness,
        // which IdPs report as "already exists" and do not retry blindly.
        ProvisionError::Conflict(_) => (409, Some(ScimType::Uniqueness)),
        ProvisionError::Forbidden(_) => (403, None),
        ProvisionError::InvalidValue(_) => (400, Some(ScimType::InvalidValue)),
        // RFC 6585 §4; its `Retry-After` goes with `ApiError::RateLimited`.
        ProvisionError::GuardTripped { .. } => (429, None),
        // RFC 9110 §15.6.4; its `Retry-After` goes with `ApiError::Busy`.
        ProvisionError::RolloutApplying => (503, None),
        // The operator's to fix, so the client is told what is wrong.
        ProvisionError::Misconfigured(_) => (500, None),
        ProvisionError::Db(_) => return None,
    })
}

/// A provisioning write that was refused, as the client's answer: its INFO line first
/// (`provisioning::log_refusal`), carrying the status [`refusal_answer`] gives, so the log
/// says what the client got; in a staged rollout, also its plan entry
/// (`Provisioner::stage_refused`). Every write route and each Bulk operation answer a refused
/// write through here; `id` is the resource written to (`None` for a POST).
pub async fn refused_write(
    p: &Provisioner,
    ctx: &Ctx,
    resource: ResourceType,
    id: Option<&str>,
    e: ProvisionError,
) -> ApiError {
    let status = refusal_answer(&e).map(|(status, _)| status);
    log_refusal(ctx, resource, id, &e, status);
    if let (Some(status), Some(reason)) = (status, e.reason()) {
        p.stage_refused(ctx, resource, id, status, reason).await;
    }
    ApiError::from(e)
}

/// A write's result as the client's answer: the value, or the refusal through
/// [`refused_write`].
pub async fn answered<T>(
    p: &Provisioner,
    ctx: &Ctx,
    resource: ResourceType,
    id: Option<&str>,
    result: Result<T, ProvisionError>,
) -> Result<T, ApiError> {
    match result {
        Ok(v) => Ok(v),
        Err(e) => Err(refused_write(p, ctx, resource, id, e).await),
    }
}

/// Each provisioning error as the answer [`refusal_answer`] gives it, `Retry-After` included.
impl From<ProvisionError> for ApiError {
    fn from(e: ProvisionError) -> Self {
        let answer = refusal_answer(&e);
        match e {
            ProvisionError::Request(s) => ApiError::Scim(s),
            ProvisionError::GuardTripped {
                retry_after_secs,
                detail,
            } => ApiError::RateLimited {
                retry_after: retry_after_secs,
                detail,
            },
            ProvisionError::RolloutApplying => ApiError::Busy {
                retry_after: crate::provisioning::error::APPLYING_RETRY_AFTER_SECS,
                detail: "the staged rollout is being applied; retry shortly".into(),
            },
            ProvisionError::NotFound(detail)
            | ProvisionError::Conflict(detail)
            | ProvisionError::Forbidden(detail)
            | ProvisionError::InvalidValue(detail)
            | ProvisionError::Misconfigured(detail) => {
                let (status, scim_type) = answer.unwrap_or((500, None));
                ApiError::Scim(ScimError {
                    status,
                    scim_type,
                    detail,
                })
            }
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

/// A provisioning error as a SCIM error body's fields, by the same table (a `Retry-After`
/// has no place in a `ScimError` and is dropped).
impl From<ProvisionError> for ScimError {
    fn from(e: ProvisionError) -> Self {
        match ApiError::from(e) {
            ApiError::Scim(s) => s,
            other => ScimError::status(other.status(), other.detail()),
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
            ApiError::RateLimited { retry_after, .. } | ApiError::Busy { retry_after, .. } => {
                if let Ok(v) = HeaderValue::from_str(&retry_after.max(&1).to_string()) {
                    headers.insert(header::RETRY_AFTER, v);
                }
            }
            ApiError::Unavailable => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            _ => {}
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provisioning::error::GUARD_RETRY_AFTER_SECS;

    #[test]
    fn each_domain_error_has_its_status_scim_type_and_retry_after() {
        let cases = [
            (ProvisionError::NotFound("x".into()), 404, None, None),
            (
                ProvisionError::Conflict("x".into()),
                409,
                Some("uniqueness"),
                None,
            ),
            (ProvisionError::Forbidden("x".into()), 403, None, None),
            (
                ProvisionError::InvalidValue("x".into()),
                400,
                Some("invalidValue"),
                None,
            ),
            (
                ProvisionError::GuardTripped {
                    retry_after_secs: GUARD_RETRY_AFTER_SECS,
                    detail: "x".into(),
                },
                429,
                None,
                Some("60"),
            ),
            (ProvisionError::Misconfigured("x".into()), 500, None, None),
            (ProvisionError::RolloutApplying, 503, None, Some("10")),
            (
                ProvisionError::from(sqlx::Error::PoolTimedOut),
                503,
                None,
                Some("5"),
            ),
        ];
        for (e, status, scim_type, retry_after) in cases {
            let what = format!("{e:?}");
            // The refusal log line reads the table too: it must say what the client got.
            let logged = refusal_answer(&e);
            let api = ApiError::from(e);
            if let Some((logged_status, logged_type)) = logged {
                assert_eq!(logged_status, status, "{what}");
                assert_eq!(logged_type.map(ScimType::as_str), scim_type, "{what}");
            }
            assert_eq!(api.status(), status, "{what}");
            assert_eq!(api.scim_type().map(ScimType::as_str), scim_type, "{what}");
            let body = api.body();
            assert_eq!(body["status"], status.to_string(), "{what}");
            let resp = api.into_response();
            let header = resp
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok());
            assert_eq!(header, retry_after, "{what}");
        }
    }

    #[test]
    fn a_request_error_keeps_the_scim_layers_answer() {
        let e = ProvisionError::Request(ScimError::invalid_filter("bad"));
        let api = ApiError::from(e);
        assert_eq!(api.status(), 400);
        assert_eq!(api.scim_type(), Some(ScimType::InvalidFilter));
        assert_eq!(api.detail(), "bad");
    }
}
