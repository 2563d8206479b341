//! The HTTP layer: every route in one place, and the middleware stack.

pub mod auth;
pub mod bulk;
pub mod discovery;
pub mod error;
pub mod extract;
pub mod groups;
pub mod health;
pub mod refused;
pub mod search;
pub mod serve;
pub mod state;
pub mod users;

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::header;
use axum::middleware;
use axum::routing::{get, post};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;

pub use state::AppState;

/// The SCIM base path.
pub const BASE: &str = "/scim/v2";

/// Routes under [`BASE`], all behind the bearer token (so a new route cannot skip auth).
pub fn scim_routes(state: AppState) -> Router<AppState> {
    // Every other method answers 405 with a SCIM error body (RFC 7644 §3.12), not axum's bare 405.
    let m = |r: axum::routing::MethodRouter<AppState>| r.fallback(discovery::method_not_allowed);
    let ro = || axum::routing::MethodRouter::new().fallback(discovery::method_not_allowed);
    Router::new()
        .route("/", m(get(search::list)))
        .route("/.search", m(post(search::search)))
        .route("/Users", m(get(users::list).post(users::create)))
        .route("/Users/.search", m(post(users::search)))
        .route(
            "/Users/{id}",
            m(get(users::get)
                .put(users::replace)
                .patch(users::patch)
                .delete(users::delete)),
        )
        .route("/Groups", m(get(groups::list).post(groups::create)))
        .route("/Groups/.search", m(post(groups::search)))
        .route(
            "/Groups/{id}",
            m(get(groups::get)
                .put(groups::replace)
                .patch(groups::patch)
                .delete(groups::delete)),
        )
        .route(
            "/ServiceProviderConfig",
            ro().get(discovery::service_provider_config),
        )
        .route("/ResourceTypes", ro().get(discovery::resource_types))
        .route(
            "/ResourceTypes/{name}",
            ro().get(discovery::resource_type_by_name),
        )
        .route("/Schemas", ro().get(discovery::schemas))
        .route("/Schemas/{id}", ro().get(discovery::schema_by_id))
        .route("/Me", axum::routing::any(discovery::me))
        .route("/Bulk", m(post(bulk::bulk)))
        .fallback(discovery::not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        // Inside `audit`: a request that runs out of time still gets its request id and its
        // sync-log row.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            request_timeout,
        ))
        .layer(middleware::from_fn_with_state(state, auth::audit))
}

/// Ends a request that takes longer than `request_timeout_secs` with the one 503 of the
/// service (`ApiError::Unavailable`: a SCIM error body and Retry-After), instead of holding
/// the client. Dropping the handler's future drops its transaction, which rolls back.
pub async fn request_timeout(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    let limit = Duration::from_secs(state.prov.cfg.request_timeout_secs);
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            tracing::warn!(
                limit_secs = limit.as_secs(),
                "request timed out (request_timeout_secs)"
            );
            axum::response::IntoResponse::into_response(error::ApiError::Unavailable)
        }
    }
}

/// The endpoint names under [`BASE`], in their canonical spelling.
const ENDPOINTS: [&str; 8] = [
    "Users",
    "Groups",
    "ServiceProviderConfig",
    "ResourceTypes",
    "Schemas",
    "Bulk",
    "Me",
    ".search",
];

/// The canonical spelling of a path whose endpoint name differs only in case, if any.
fn canonical_path(path: &str) -> Option<String> {
    let rest = path.strip_prefix(BASE)?.strip_prefix('/')?;
    // The base URL with a trailing slash is the root (the nested `/` route matches only the
    // bare base).
    if rest.is_empty() {
        return Some(BASE.to_owned());
    }
    let (first, tail) = match rest.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (rest, None),
    };
    let name = ENDPOINTS.iter().find(|n| n.eq_ignore_ascii_case(first))?;
    let tail = tail.map(|t| {
        if t.eq_ignore_ascii_case(".search") {
            ".search"
        } else {
            t
        }
    });
    let fixed = match tail {
        Some(t) => format!("{BASE}/{name}/{t}"),
        None => format!("{BASE}/{name}"),
    };
    (fixed != path).then_some(fixed)
}

/// Endpoint names are matched case-insensitively: GitHub's SCIM API is case-sensitive, and
/// clients written against others send `/users` (docs/scim-clients.md#other-clients).
/// Rewrites the path before routing, so it wraps the router (`app.rs`) instead of being one of
/// its layers; ids keep their case.
pub async fn canonical_endpoints(
    mut req: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    if let Some(fixed) = canonical_path(req.uri().path()) {
        let pq = match req.uri().query() {
            Some(q) => format!("{fixed}?{q}"),
            None => fixed,
        };
        let mut parts = req.uri().clone().into_parts();
        if let Ok(p) = pq.parse() {
            parts.path_and_query = Some(p);
            if let Ok(uri) = axum::http::Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
    }
    next.run(req).await
}

/// The whole application router.
pub fn router(state: AppState) -> Router {
    let max_body = state.prov.cfg.max_body_bytes;
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route(
            "/metrics",
            get(health::metrics).layer(middleware::from_fn_with_state(
                state.clone(),
                auth::require_token,
            )),
        )
        // The SCIM routes have their own, inside their request-id middleware.
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            request_timeout,
        ))
        .nest(BASE, scim_routes(state.clone()))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn(crate::telemetry::track_metrics))
        .layer(TraceLayer::new_for_http())
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
        ]))
        .layer(CatchPanicLayer::new())
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::canonical_path;

    #[test]
    fn endpoint_names_are_case_insensitive() {
        assert_eq!(
            canonical_path("/scim/v2/users").as_deref(),
            Some("/scim/v2/Users")
        );
        assert_eq!(
            canonical_path("/scim/v2/GROUPS/PHID-PROJ-Ab/").as_deref(),
            Some("/scim/v2/Groups/PHID-PROJ-Ab/")
        );
        assert_eq!(
            canonical_path("/scim/v2/users/.SEARCH").as_deref(),
            Some("/scim/v2/Users/.search")
        );
        assert_eq!(
            canonical_path("/scim/v2/serviceproviderconfig").as_deref(),
            Some("/scim/v2/ServiceProviderConfig")
        );
        assert_eq!(canonical_path("/scim/v2/Users/PHID-USER-x"), None);
        assert_eq!(canonical_path("/scim/v2/nope"), None);
        assert_eq!(canonical_path("/healthz"), None);
        assert_eq!(canonical_path("/scim/v2/").as_deref(), Some("/scim/v2"));
        assert_eq!(canonical_path("/scim/v2"), None);
    }

    /// The layering of `lib.rs`: nothing under `src/http/` names the database layer, and the
    /// resource handlers share `extract`'s types rather than each other's.
    #[test]
    fn http_reaches_the_database_only_through_provisioning() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
        // Built so that this test's own text does not match.
        let (db_path, db_field) = (["crate", "::db"].concat(), [".db", "."].concat());
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let src = std::fs::read_to_string(&path).unwrap();
            files += 1;
            assert!(!src.contains(&db_path), "{name} uses the db module");
            assert!(!src.contains(&db_field), "{name} reaches into a Db");
            if name == "users.rs" {
                assert!(!src.contains("super::groups"), "users.rs imports groups.rs");
            }
            if name == "groups.rs" {
                assert!(!src.contains("super::users"), "groups.rs imports users.rs");
            }
        }
        assert!(files > 10, "read {files} files of {}", dir.display());
    }
}
