//! Discovery (RFC 7644 §4, RFC 7643 §5 to §7): what the service supports, generated from the
//! same attribute table that drives parsing, so it cannot drift from the behaviour.

use axum::extract::{Path, RawQuery, State};
use serde_json::{Value, json};

use super::error::ApiError;
use super::extract::ScimResponse;
use super::state::AppState;
use crate::scim::ScimError;
use crate::scim::list::list_response;
use crate::scim::schema::{self, Attr, Resource, urn};

/// RFC 7644 §4: a discovery request with a `filter` SHOULD be answered 403, so that a client
/// cannot assume the conditions of a filter the endpoint ignores were applied.
fn refuse_filter(query: Option<&str>) -> Result<(), ApiError> {
    let has_filter = query.is_some_and(|q| {
        q.split('&').any(|pair| {
            let key = pair.split('=').next().unwrap_or("");
            urlencoding::decode(key).is_ok_and(|k| k.eq_ignore_ascii_case("filter"))
        })
    });
    if has_filter {
        return Err(ScimError::forbidden(
            "discovery endpoints do not support filtering (RFC 7644 §4)",
        )
        .into());
    }
    Ok(())
}

/// GET /ServiceProviderConfig
pub async fn service_provider_config(
    State(state): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<ScimResponse, ApiError> {
    refuse_filter(q.as_deref())?;
    let max = state.prov.cfg.max_results;
    let bulk = crate::scim::bulk::Limits::of(&state.prov.cfg);
    Ok(ScimResponse::ok(json!({
        "schemas": [urn::SERVICE_PROVIDER_CONFIG],
        "documentationUri": "https://github.com/phab-scim/phab-scim#readme",
        "patch": {"supported": true},
        "bulk": {"supported": true, "maxOperations": bulk.max_operations, "maxPayloadSize": bulk.max_payload_bytes},
        "filter": {"supported": true, "maxResults": max},
        "changePassword": {"supported": false},
        "sort": {"supported": true},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": "A phab-scim token (phscim-<id>-<secret>) issued in Phabricator or by `phab-scim token create`.",
            "specUri": "https://www.rfc-editor.org/rfc/rfc6750",
            "primary": true,
        }],
        "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{}/ServiceProviderConfig", state.base_url)},
    })))
}

fn resource_type(base: &str, res: Resource) -> Value {
    let endpoint = match res {
        Resource::User => "/Users",
        Resource::Group => "/Groups",
    };
    let extensions: Vec<Value> = res
        .extensions()
        .iter()
        .map(|(u, _)| json!({"schema": u, "required": false}))
        .collect();
    json!({
        "schemas": [urn::RESOURCE_TYPE],
        "id": res.name(),
        "name": res.name(),
        "endpoint": endpoint,
        "description": match res { Resource::User => "Phabricator accounts", Resource::Group => "Phabricator projects" },
        "schema": res.core_urn(),
        "schemaExtensions": extensions,
        "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/{}", res.name())},
    })
}

/// GET /ResourceTypes
pub async fn resource_types(
    State(state): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<ScimResponse, ApiError> {
    refuse_filter(q.as_deref())?;
    let all = vec![
        resource_type(&state.base_url, Resource::User),
        resource_type(&state.base_url, Resource::Group),
    ];
    Ok(ScimResponse::ok(list_response(2, 1, all)))
}

/// GET /ResourceTypes/{name}
pub async fn resource_type_by_name(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<ScimResponse, ApiError> {
    refuse_filter(q.as_deref())?;
    let res = [Resource::User, Resource::Group]
        .into_iter()
        .find(|r| r.name().eq_ignore_ascii_case(&name))
        .ok_or_else(|| ScimError::not_found(format!("no resource type {name}")))?;
    Ok(ScimResponse::ok(resource_type(&state.base_url, res)))
}

fn attr_json(a: &Attr) -> Value {
    let mut v = json!({
        "name": a.name,
        "type": a.ty.as_str(),
        "multiValued": a.multi,
        "description": a.description,
        "required": a.required,
        "caseExact": a.case_exact,
        "mutability": a.mutability.as_str(),
        "returned": a.returned.as_str(),
        "uniqueness": a.uniqueness,
    });
    if !a.canonical.is_empty() {
        v["canonicalValues"] = json!(a.canonical);
    }
    if !a.reference_types.is_empty() {
        v["referenceTypes"] = json!(a.reference_types);
    }
    if !a.sub.is_empty() {
        v["subAttributes"] = Value::Array(a.sub.iter().map(attr_json).collect());
    }
    v
}

fn schema_json(base: &str, id: &str, name: &str, description: &str, attrs: &[Attr]) -> Value {
    json!({
        "schemas": [urn::SCHEMA],
        "id": id,
        "name": name,
        "description": description,
        "attributes": attrs.iter().map(attr_json).collect::<Vec<_>>(),
        "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{id}")},
    })
}

fn all_schemas(base: &str) -> Vec<Value> {
    vec![
        schema_json(base, urn::USER, "User", "Phabricator account", schema::USER),
        schema_json(
            base,
            urn::ENTERPRISE_USER,
            "EnterpriseUser",
            "Enterprise User",
            schema::ENTERPRISE_USER,
        ),
        schema_json(
            base,
            urn::GROUP,
            "Group",
            "Phabricator project",
            schema::GROUP,
        ),
    ]
}

/// GET /Schemas
pub async fn schemas(
    State(state): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<ScimResponse, ApiError> {
    refuse_filter(q.as_deref())?;
    let all = all_schemas(&state.base_url);
    Ok(ScimResponse::ok(list_response(all.len() as u64, 1, all)))
}

/// GET /Schemas/{urn}
pub async fn schema_by_id(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<ScimResponse, ApiError> {
    refuse_filter(q.as_deref())?;
    all_schemas(&state.base_url)
        .into_iter()
        .find(|s| {
            s["id"]
                .as_str()
                .is_some_and(|x| x.eq_ignore_ascii_case(&id))
        })
        .map(ScimResponse::ok)
        .ok_or_else(|| ScimError::not_found(format!("no schema {id}")).into())
}

/// Any other method on a discovery endpoint.
pub async fn method_not_allowed() -> ApiError {
    ScimError::status(405, "this endpoint is read-only").into()
}

/// `/Me`: the caller is a token's bot, not a person (RFC 7644 §3.11).
pub async fn me() -> ApiError {
    ScimError::status(
        501,
        "/Me is not supported: the caller is a provisioning token, not a person",
    )
    .into()
}

/// Unknown paths under the SCIM base.
pub async fn not_found() -> ApiError {
    ScimError::not_found("no such SCIM endpoint").into()
}
