//! Queries at the service root (RFC 7644 §3.4.2.1 `GET /`, §3.4.3 `POST /.search`): Users and
//! Groups in one ListResponse.

use axum::extract::{Query, State};
use axum::http::StatusCode;

use super::error::ApiError;
use super::extract::ScimBody;
use super::extract::ScimResponse;
use super::groups::write_group;
use super::state::AppState;
use super::users::write_user;
use crate::scim::list::{ListParams, write_list_head};
use crate::scim::resource::Projection;
use crate::scim::schema::Resource;

/// POST /.search
pub async fn search(
    State(state): State<AppState>,
    ScimBody(body): ScimBody,
) -> Result<ScimResponse, ApiError> {
    root_query(&state, ListParams::from_search_body(&body)?).await
}

/// GET / (the base URL with query parameters).
pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<ScimResponse, ApiError> {
    root_query(&state, params).await
}

async fn root_query(state: &AppState, params: ListParams) -> Result<ScimResponse, ApiError> {
    let (attributes, excluded) = (
        params.attributes.as_deref(),
        params.excluded_attributes.as_deref(),
    );
    let user_p = Projection::parse(Resource::User, attributes, excluded)?;
    let group_p = Projection::parse(Resource::Group, attributes, excluded)?;
    let page = state
        .scim()
        .await
        .search_all(&params, user_p.wants("groups"))
        .await?;
    let items = page.users.len() + page.groups.len();
    // A ListResponse (RFC 7644 §3.4.2) with each group streamed in, as `/Groups` writes it.
    let mut buf = Vec::new();
    write_list_head(&mut buf, page.total, page.start_index, items)
        .map_err(|_| ApiError::Internal)?;
    let mut first = true;
    for u in page.users {
        if !first {
            buf.push(b',');
        }
        first = false;
        write_user(state, u, &user_p, &mut buf)?;
    }
    for g in &page.groups {
        if !first {
            buf.push(b',');
        }
        first = false;
        write_group(state, g, &group_p, &mut buf).await?;
    }
    buf.extend_from_slice(b"]}");
    Ok(ScimResponse::written(StatusCode::OK, buf))
}
