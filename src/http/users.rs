//! `/Users` handlers: parse, call one provisioning function, map the result.

use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;

use super::error::{ApiError, answered};
use super::extract::{ProjectionParams, ScimBody, ScimResponse, preconditions};
use super::state::AppState;
use crate::provisioning::Ctx;
use crate::provisioning::service::ResourceType;
use crate::provisioning::users::{ReadUser, StoredUser};
use crate::scim::list::{ListParams, write_list_head};
use crate::scim::resource::{Projection, ReadCheck, etag};
use crate::scim::schema::Resource;
use crate::scim::user::{self, RawUserParts, UserParts, render_user};

pub(crate) fn render(state: &AppState, u: StoredUser) -> Value {
    render_user(UserParts {
        id: &u.phid,
        user_name: &u.user_name,
        external_id: u.external_id.as_deref(),
        active: u.active,
        attributes: u.attributes,
        groups: &u.groups,
        base_url: &state.base_url,
        created: u.created,
        modified: u.modified,
        version: u.version,
    })
}

/// Writes one user into `out` as `p` asks: straight from the stored text with the default
/// projection (`scim::user::write_user`), else rendered to `Value`s and projected.
pub(crate) fn write_user(
    state: &AppState,
    u: ReadUser,
    p: &Projection,
    out: &mut Vec<u8>,
) -> Result<(), ApiError> {
    if p.is_default()
        && user::write_user(
            out,
            &RawUserParts {
                id: &u.phid,
                user_name: &u.user_name,
                external_id: u.external_id.as_deref(),
                active: u.active,
                attributes: &u.attributes_json,
                groups: &u.groups,
                base_url: &state.base_url,
                created: u.created,
                modified: u.modified,
                version: u.version,
            },
        )
        .is_ok()
    {
        return Ok(());
    }
    let rendered = p.apply(Resource::User, render(state, u.into_stored()?));
    serde_json::to_writer(out, &rendered).map_err(|_| ApiError::Internal)
}

fn single(state: &AppState, u: StoredUser, p: &Projection, status: StatusCode) -> ScimResponse {
    let location = format!("{}/Users/{}", state.base_url, u.phid);
    let etag = etag(u.version);
    ScimResponse::json(status, p.apply(Resource::User, render(state, u)))
        .with_etag(etag)
        .with_location((status == StatusCode::CREATED).then_some(location))
}

/// GET /Users
pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<ScimResponse, ApiError> {
    search_users(&state, params).await
}

/// POST /Users/.search
pub async fn search(
    State(state): State<AppState>,
    ScimBody(body): ScimBody,
) -> Result<ScimResponse, ApiError> {
    search_users(&state, ListParams::from_search_body(&body)?).await
}

async fn search_users(state: &AppState, params: ListParams) -> Result<ScimResponse, ApiError> {
    let p = Projection::parse(
        Resource::User,
        params.attributes.as_deref(),
        params.excluded_attributes.as_deref(),
    )?;
    let (total, start, users) = state
        .scim()
        .await
        .list_users(&params, p.wants("groups"))
        .await?;
    // About 700 bytes a user: one allocation, not a dozen doublings.
    let mut buf = Vec::with_capacity(256 + 768 * users.len());
    write_list_head(&mut buf, total, start, users.len()).map_err(|_| ApiError::Internal)?;
    for (i, u) in users.into_iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        write_user(state, u, &p, &mut buf)?;
    }
    buf.extend_from_slice(b"]}");
    Ok(ScimResponse::written(StatusCode::OK, buf))
}

/// GET /Users/{id}
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(pp): Query<ProjectionParams>,
    headers: HeaderMap,
) -> Result<ScimResponse, ApiError> {
    let p = pp.projection(Resource::User)?;
    let user = state.scim().await.get_user(&id).await?;
    let tag = etag(user.version);
    if preconditions(&headers).check_read(user.version)? == ReadCheck::NotModified {
        return Ok(ScimResponse::empty(StatusCode::NOT_MODIFIED).with_etag(tag));
    }
    let mut buf = Vec::with_capacity(1024);
    write_user(&state, user, &p, &mut buf)?;
    Ok(ScimResponse::written(StatusCode::OK, buf).with_etag(tag))
}

/// POST /Users
pub async fn create(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Query(pp): Query<ProjectionParams>,
    ScimBody(body): ScimBody,
) -> Result<ScimResponse, ApiError> {
    let p = pp.projection(Resource::User)?;
    let scim = state.scim().await;
    let (_, user) = answered(
        scim,
        &ctx,
        ResourceType::User,
        None,
        scim.create_user(&ctx, &body).await,
    )
    .await?;
    Ok(single(&state, user, &p, StatusCode::CREATED))
}

/// PUT /Users/{id}
pub async fn replace(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    Query(pp): Query<ProjectionParams>,
    headers: HeaderMap,
    ScimBody(body): ScimBody,
) -> Result<ScimResponse, ApiError> {
    let p = pp.projection(Resource::User)?;
    let scim = state.scim().await;
    let user = answered(
        scim,
        &ctx,
        ResourceType::User,
        Some(&id),
        scim.replace_user(&ctx, &id, &body, preconditions(&headers))
            .await,
    )
    .await?;
    Ok(single(&state, user, &p, StatusCode::OK))
}

/// PATCH /Users/{id}
pub async fn patch(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    Query(pp): Query<ProjectionParams>,
    headers: HeaderMap,
    ScimBody(body): ScimBody,
) -> Result<ScimResponse, ApiError> {
    let p = pp.projection(Resource::User)?;
    let scim = state.scim().await;
    let user = answered(
        scim,
        &ctx,
        ResourceType::User,
        Some(&id),
        scim.patch_user(&ctx, &id, &body, preconditions(&headers))
            .await,
    )
    .await?;
    Ok(single(&state, user, &p, StatusCode::OK))
}

/// DELETE /Users/{id}
pub async fn delete(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<ScimResponse, ApiError> {
    let scim = state.scim().await;
    answered(
        scim,
        &ctx,
        ResourceType::User,
        Some(&id),
        scim.delete_user(&ctx, &id, preconditions(&headers)).await,
    )
    .await?;
    Ok(ScimResponse::empty(StatusCode::NO_CONTENT))
}
