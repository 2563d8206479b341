//! `/Groups` handlers: parse, call one provisioning function, write the response.
//!
//! A group's members are written straight into the response body from the edge rows
//! (`Provisioner::write_group_members`): the body of a 50,000-member group exists once, as
//! bytes, not also as a JSON tree. With `excludedAttributes=members` (Entra) they are not
//! read at all.

use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};

use super::error::{ApiError, answered};
use super::extract::{ProjectionParams, ScimBody, ScimResponse, preconditions};
use super::state::AppState;
use crate::provisioning::Ctx;
use crate::provisioning::groups::StoredGroup;
use crate::provisioning::service::ResourceType;
use crate::scim::group::{GroupParts, MemberFields, render_group};
use crate::scim::list::{ListParams, write_list_head};
use crate::scim::resource::{Projection, ReadCheck, etag};
use crate::scim::schema::Resource;

/// Appends one group, projected, with its members streamed in when the projection wants them.
pub(crate) async fn write_group(
    state: &AppState,
    g: &StoredGroup,
    p: &Projection,
    buf: &mut Vec<u8>,
) -> Result<(), ApiError> {
    let doc = render_group(&GroupParts {
        id: &g.phid,
        display_name: &g.display_name,
        external_id: g.external_id.as_deref(),
        attributes: &g.attributes,
        base_url: &state.base_url,
        created: g.created,
        modified: g.modified,
        version: g.version,
    });
    let doc = p.apply(Resource::Group, doc);
    let start = buf.len();
    serde_json::to_writer(&mut *buf, &doc).map_err(|_| ApiError::Internal)?;
    if !p.wants("members") || g.no_members {
        return Ok(());
    }
    // Reopen the object: `{...}` becomes `{...,"members":[...]}`; an empty membership is
    // omitted (RFC 7643 §2.5: unassigned).
    buf.pop();
    let reopened = buf.len();
    if reopened > start + 1 {
        buf.push(b',');
    }
    buf.extend_from_slice(b"\"members\":[");
    let n = state
        .scim()
        .await
        .write_group_members(&g.phid, &state.base_url, MemberFields::of(p), buf)
        .await?;
    if n == 0 {
        buf.truncate(reopened);
    } else {
        buf.push(b']');
    }
    buf.push(b'}');
    Ok(())
}

async fn single(
    state: &AppState,
    g: &StoredGroup,
    p: &Projection,
    status: StatusCode,
) -> Result<ScimResponse, ApiError> {
    let mut buf = Vec::new();
    write_group(state, g, p, &mut buf).await?;
    let location =
        (status == StatusCode::CREATED).then(|| format!("{}/Groups/{}", state.base_url, g.phid));
    Ok(ScimResponse::written(status, buf)
        .with_etag(etag(g.version))
        .with_location(location))
}

/// GET /Groups
pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<ScimResponse, ApiError> {
    search_groups(&state, params).await
}

/// POST /Groups/.search
pub async fn search(
    State(state): State<AppState>,
    ScimBody(body): ScimBody,
) -> Result<ScimResponse, ApiError> {
    search_groups(&state, ListParams::from_search_body(&body)?).await
}

async fn search_groups(state: &AppState, params: ListParams) -> Result<ScimResponse, ApiError> {
    let p = Projection::parse(
        Resource::Group,
        params.attributes.as_deref(),
        params.excluded_attributes.as_deref(),
    )?;
    let (total, start, groups) = state.scim().await.list_groups(&params).await?;
    // A ListResponse (RFC 7644 §3.4.2) with each group streamed in.
    let mut buf = Vec::new();
    write_list_head(&mut buf, total, start, groups.len()).map_err(|_| ApiError::Internal)?;
    for (i, g) in groups.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        write_group(state, g, &p, &mut buf).await?;
    }
    buf.extend_from_slice(b"]}");
    Ok(ScimResponse::written(StatusCode::OK, buf))
}

/// GET /Groups/{id}
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(pp): Query<ProjectionParams>,
    headers: HeaderMap,
) -> Result<ScimResponse, ApiError> {
    let p = pp.projection(Resource::Group)?;
    let group = state.scim().await.get_group(&id).await?;
    if preconditions(&headers).check_read(group.version)? == ReadCheck::NotModified {
        return Ok(ScimResponse::empty(StatusCode::NOT_MODIFIED).with_etag(etag(group.version)));
    }
    single(&state, &group, &p, StatusCode::OK).await
}

/// POST /Groups
pub async fn create(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Query(pp): Query<ProjectionParams>,
    ScimBody(body): ScimBody,
) -> Result<ScimResponse, ApiError> {
    let p = pp.projection(Resource::Group)?;
    let scim = state.scim().await;
    let (_, group) = answered(
        scim,
        &ctx,
        ResourceType::Group,
        None,
        scim.create_group(&ctx, &body).await,
    )
    .await?;
    single(&state, &group, &p, StatusCode::CREATED).await
}

/// PUT /Groups/{id}
pub async fn replace(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    Query(pp): Query<ProjectionParams>,
    headers: HeaderMap,
    ScimBody(body): ScimBody,
) -> Result<ScimResponse, ApiError> {
    let p = pp.projection(Resource::Group)?;
    let scim = state.scim().await;
    let group = answered(
        scim,
        &ctx,
        ResourceType::Group,
        Some(&id),
        scim.replace_group(&ctx, &id, &body, preconditions(&headers))
            .await,
    )
    .await?;
    single(&state, &group, &p, StatusCode::OK).await
}

/// PATCH /Groups/{id}: 204 (Entra's preference, docs/scim-clients.md#entra-id-groups), or 200
/// with the resource when the request asks for attributes.
pub async fn patch(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    Query(pp): Query<ProjectionParams>,
    headers: HeaderMap,
    ScimBody(body): ScimBody,
) -> Result<ScimResponse, ApiError> {
    let p = pp.projection(Resource::Group)?;
    let no_content = !pp.given();
    let status = if no_content { 204 } else { 200 };
    let scim = state.scim().await;
    let group = answered(
        scim,
        &ctx,
        ResourceType::Group,
        Some(&id),
        scim.patch_group(&ctx, &id, &body, preconditions(&headers), status)
            .await,
    )
    .await?;
    if no_content {
        return Ok(ScimResponse::empty(StatusCode::NO_CONTENT).with_etag(etag(group.version)));
    }
    single(&state, &group, &p, StatusCode::OK).await
}

/// DELETE /Groups/{id}
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
        ResourceType::Group,
        Some(&id),
        scim.delete_group(&ctx, &id, preconditions(&headers)).await,
    )
    .await?;
    Ok(ScimResponse::empty(StatusCode::NO_CONTENT))
}
