//! Liveness, readiness and metrics.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::state::AppState;
use crate::provisioning::service::Readiness;

/// GET /healthz: the process answers.
pub async fn healthz() -> Response {
    (StatusCode::OK, axum::Json(json!({"status": "ok"}))).into_response()
}

/// GET /readyz: the database answers and the namespace has what the service needs. Needs no
/// token, so it answers from a check shared by all callers of the same second
/// (`Provisioner::readiness`) and names no table or namespace: the log and
/// `phab-scim check` do.
pub async fn readyz(State(state): State<AppState>) -> Response {
    match state.prov.readiness().await {
        Readiness::Ready => (StatusCode::OK, axum::Json(json!({"status": "ready"}))).into_response(),
        Readiness::Incomplete => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({
                "status": "not ready",
                "reason": "the database schema is incomplete; `phab-scim check` lists what is missing",
            })),
        )
            .into_response(),
        Readiness::Unreachable => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(axum::http::header::RETRY_AFTER, "5")],
            axum::Json(json!({"status": "not ready", "reason": "database unreachable"})),
        )
            .into_response(),
    }
}

/// GET /metrics: Prometheus text.
pub async fn metrics(State(state): State<AppState>) -> Response {
    match &state.metrics {
        Some(h) => (
            StatusCode::OK,
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4",
            )],
            h.render(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "metrics are disabled").into_response(),
    }
}
