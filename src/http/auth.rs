//! Bearer authentication and the request context, as middleware so that no route under
//! `/scim/v2` can be reached without a valid token.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::refused::Refusal;
use super::state::AppState;
use crate::net::{self, IpNet};
use crate::provisioning::Ctx;
use crate::provisioning::service::{RejectedRequest, ResourceType, new_request_id};
use crate::token::{AuthError, Principal};

/// The error detail of a failed response, for the sync log.
#[derive(Debug, Clone)]
pub struct ErrorDetail(pub String);

/// The client's address: the TCP peer, or, when the peer is one of `trusted_proxies`, the
/// client named by its `X-Forwarded-For` (`net::client_addr` says how). Rate limiting, the
/// request context (`user_log.remoteAddr`) and the logs all use this one address.
///
/// RFC 7239 `Forwarded` is not read: proxies that maintain `X-Forwarded-For` (nginx, Apache)
/// pass a client's `Forwarded` through untouched, so reading it would let clients choose their
/// address.
fn client_addr(req: &Request, trusted: &[IpNet]) -> IpAddr {
    let Some(peer) = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
    else {
        return net::UNKNOWN_CLIENT;
    };
    let forwarded_for = req
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        // A value that is not visible ASCII is an entry the walk cannot read.
        .map(|v| v.to_str().unwrap_or("\u{fffd}"));
    net::client_addr(peer, forwarded_for, trusted)
}

/// Whether a client's `X-Request-Id` may be used as the request's id: 1 to 64 characters
/// (`scim_event.requestID` holds 64) of letters, digits and `-_.:`, which covers UUIDs and the
/// ids identity providers send. Anything else would reach the logs, the sync log and the
/// Phabricator pages as the client wrote it, so the service makes its own id instead.
fn is_safe_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Outermost SCIM middleware: assigns the request id and writes a sync-log row for every
/// rejected request of a client that presented a valid token (successful writes log
/// themselves, inside their transaction). Requests refused before that are counted instead
/// (`require_token`, `http::refused`): a client without a token gets no row of its own.
pub async fn audit(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_safe_request_id(v))
        .map(str::to_owned)
        .unwrap_or_else(new_request_id);
    let method = req.method().as_str().to_owned();
    // Nested routers see a stripped path; the sync log shows the one the client called.
    let path = req
        .extensions()
        .get::<axum::extract::OriginalUri>()
        .map(|u| u.0.path().to_owned())
        .unwrap_or_else(|| req.uri().path().to_owned());
    let ctx = Ctx {
        request_id: request_id.clone(),
        token_id: None,
        actor_phid: Default::default(),
        method: method.clone(),
        path: path.clone(),
        remote_addr: client_addr(&req, &state.prov.cfg.trusted_proxies).to_string(),
        stage: None,
    };
    req.extensions_mut().insert(ctx);
    let mut resp = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    let status = resp.status().as_u16();
    let is_read = method == "GET" || method == "HEAD";
    // Only a request whose token verified gets a row: any other (refused, timed out before
    // its token was checked, a database failure while checking it, an unknown route) was
    // made by someone the service does not know, and must cost the service nothing it keeps.
    let authenticated = resp.extensions().get::<Principal>().is_some();
    let refused = resp.extensions().get::<Refusal>().is_some();
    if status >= 400 && !(is_read && status == 404) && !refused && authenticated {
        let detail = resp
            .extensions()
            .get::<ErrorDetail>()
            .map(|d| d.0.clone())
            .unwrap_or_default();
        let token_id = resp.extensions().get::<Principal>().map(|p| p.token_id);
        let resource_type = if path.contains("/Users") {
            Some(ResourceType::User)
        } else if path.contains("/Groups") {
            Some(ResourceType::Group)
        } else {
            None
        };
        let rejected = RejectedRequest {
            request_id,
            token_id,
            method,
            path,
            resource_type,
            status,
            summary: detail,
            details: serde_json::json!({}),
        };
        let prov = state.prov.clone();
        // Off the response path; a failure to log must not turn into a second error.
        tokio::spawn(async move {
            if let Err(e) = prov.write_rejected(std::slice::from_ref(&rejected)).await {
                tracing::warn!(error = %e, "could not write the sync log");
            }
        });
    }
    resp
}

/// Requires `Authorization: Bearer <token>` and fills the context's token and actor. A request
/// without one counts as a failed attempt of its address, like a wrong token; every refusal is
/// tallied (`state.refused`) and marked on the response so that `audit` writes no row for it.
pub async fn require_token(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let client = client_addr(&req, &state.prov.cfg.trusted_proxies);
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| rest.trim().to_owned())
        });
    let verified = match token {
        Some(token) => state.auth.verify(&token, client).await,
        None => Err(state.auth.missing_token(client)),
    };
    let principal = match verified {
        Ok(p) => p,
        Err(e) => {
            let (refusal, error) = match e {
                AuthError::Db(_) => return ApiError::from(e).into_response(),
                AuthError::RateLimited(_) => (Refusal::RateLimited, ApiError::from(e)),
                AuthError::Missing => (
                    Refusal::MissingToken,
                    ApiError::Unauthorized("a bearer token is required".into()),
                ),
                AuthError::Malformed | AuthError::Invalid => {
                    (Refusal::InvalidToken, ApiError::from(e))
                }
            };
            // Per request at debug only: the tally's write logs each address once a minute.
            // Over the limit, the request was refused for its address, whatever its token:
            // saying "authentication failed" there blamed tokens that were never checked.
            match refusal {
                Refusal::RateLimited => tracing::debug!(
                    %client,
                    reason = refusal.as_str(),
                    "request refused: too many failed authentications from this address"
                ),
                _ => tracing::debug!(%client, reason = refusal.as_str(), "authentication failed"),
            }
            state.refused.record(client, refusal);
            let mut resp = error.into_response();
            resp.extensions_mut().insert(refusal);
            return resp;
        }
    };
    if let Some(ctx) = req.extensions_mut().get_mut::<Ctx>() {
        ctx.token_id = Some(principal.token_id);
        ctx.actor_phid = principal.bot_phid.clone();
    }
    req.extensions_mut().insert(principal.clone());
    let mut resp = next.run(req).await;
    resp.extensions_mut().insert(principal);
    resp
}

#[cfg(test)]
mod tests {
    use super::is_safe_request_id;

    #[test]
    fn request_ids_are_short_and_plain() {
        for ok in [
            "a",
            "Entra-7f3c_2a.9:1",
            "123e4567-e89b-12d3-a456-426614174000",
            &"r".repeat(64),
        ] {
            assert!(is_safe_request_id(ok), "{ok:?}");
        }
        for bad in [
            "",
            "a b",
            "<script>",
            "id'); --",
            "caf\u{e9}",
            "tab\there",
            &"r".repeat(65),
        ] {
            assert!(!is_safe_request_id(bad), "{bad:?}");
        }
    }
}
