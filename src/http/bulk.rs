//! `POST /Bulk` (RFC 7644 §3.7): runs the operations of a BulkRequest, each as its own
//! provisioning call and so in its own transaction (docs/design.md#transactions-and-locking),
//! in an order that lets every `bulkId:` reference resolve.
//!
//! Operations run in request order, except that one referring to a bulkId whose POST comes
//! later waits for it. Operations still waiting when nothing else can run refer to each other
//! in a cycle: they are answered 409, which RFC 7644 §3.7.1 allows instead of a
//! create-then-update resolution (a Group cannot hold Groups here, so only enterprise
//! `manager` references between new Users can form one). The whole request is refused before
//! anything runs when it is too large (413, by the body limit and by `maxOperations`).

use std::collections::{HashMap, HashSet};

use axum::extract::{Extension, State};
use serde_json::Value;
use tracing::instrument;

use super::error::{ApiError, answered};
use super::extract::{ScimBody, ScimResponse};
use super::state::AppState;
use crate::provisioning::Ctx;
use crate::provisioning::service::ResourceType;
use crate::scim::ScimError;
use crate::scim::bulk::{self, Limits, Method, Operation, Outcome, Readiness, Target};
use crate::scim::resource::{Preconditions, etag};
use crate::scim::schema::Resource;

/// What a successful operation produced.
struct Done {
    id: String,
    version: Option<u32>,
    status: u16,
}

/// POST /Bulk
#[instrument(skip_all, fields(request_id = %ctx.request_id))]
pub async fn bulk(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    ScimBody(body): ScimBody,
) -> Result<ScimResponse, ApiError> {
    let request = bulk::parse_request(&body, Limits::of(&state.prov.cfg))?;
    drop(body);
    let mut errors: u64 = 0;
    let limit = request.fail_on_errors.unwrap_or(u64::MAX);
    let mut outcomes: Vec<Outcome> =
        Vec::with_capacity(request.operations.len() + request.rejected.len());
    for r in request.rejected {
        let e = ApiError::from(r.error);
        outcomes.push(Outcome {
            index: r.index,
            method: r.method.unwrap_or_default(),
            bulk_id: r.bulk_id,
            location: None,
            version: None,
            status: e.status(),
            error: Some(e.body()),
        });
        errors += 1;
    }
    let defined: HashSet<String> = request
        .operations
        .iter()
        .filter_map(|o| o.bulk_id.clone())
        .collect();
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut failed: HashSet<String> = HashSet::new();
    let mut pending: Vec<Operation> = request.operations;
    // §3.7.3: once failOnErrors errors happened, the remaining operations do not run.
    while errors < limit && !pending.is_empty() {
        let Some(pos) = pending
            .iter()
            .position(|op| bulk::readiness(op, &ids, &failed, &defined) != Readiness::Waiting)
        else {
            // Nothing can run: every pending operation waits on another one, so they form
            // cycles. The first one fails 409; the operations that refer to it then fail as
            // referring to a failed operation, and any others can run.
            let op = pending.remove(0);
            let e = ApiError::from(ScimError::status(
                409,
                "circular bulkId references: resolve them in separate requests",
            ));
            if let Some(b) = &op.bulk_id {
                failed.insert(b.clone());
            }
            outcomes.push(failure(&op, &e));
            errors += 1;
            continue;
        };
        let mut op = pending.remove(pos);
        let outcome = match bulk::readiness(&op, &ids, &failed, &defined) {
            Readiness::Unknown => Err(ApiError::from(ScimError::invalid_value(
                "the operation refers to a bulkId no operation of this request defines",
            ))),
            Readiness::Failed => Err(ApiError::from(ScimError::status(
                409,
                "the operation refers to a bulkId whose operation failed",
            ))),
            Readiness::Ready | Readiness::Waiting => run(&state, &ctx, &mut op, &ids).await,
        };
        match outcome {
            Ok(done) => {
                let location = format!("{}/{}/{}", state.base_url, collection(&op.target), done.id);
                if let Some(b) = &op.bulk_id {
                    ids.insert(b.clone(), done.id.clone());
                }
                outcomes.push(Outcome {
                    index: op.index,
                    method: op.method.as_str().to_owned(),
                    bulk_id: op.bulk_id.clone(),
                    location: Some(location),
                    version: done.version.map(etag),
                    status: done.status,
                    error: None,
                });
            }
            Err(e) => {
                if let Some(b) = &op.bulk_id {
                    failed.insert(b.clone());
                }
                outcomes.push(failure(&op, &e));
                errors += 1;
            }
        }
    }
    Ok(ScimResponse::ok(bulk::response(outcomes)))
}

fn failure(op: &Operation, e: &ApiError) -> Outcome {
    Outcome {
        index: op.index,
        method: op.method.as_str().to_owned(),
        bulk_id: op.bulk_id.clone(),
        location: None,
        version: None,
        status: e.status(),
        error: Some(e.body()),
    }
}

fn collection(t: &Target) -> &'static str {
    let res = match t {
        Target::Collection(r) | Target::Item(r, _) => *r,
    };
    match res {
        Resource::User => "Users",
        Resource::Group => "Groups",
    }
}

/// Runs one operation through the same provisioning call as its HTTP route.
async fn run(
    state: &AppState,
    ctx: &Ctx,
    op: &mut Operation,
    ids: &HashMap<String, String>,
) -> Result<Done, ApiError> {
    let mut data = op.data.take().unwrap_or(Value::Null);
    bulk::substitute(&mut data, ids);
    // The sync log names the operation, not `/Bulk`.
    let base = ctx.path.strip_suffix("/Bulk").unwrap_or(&ctx.path);
    let ctx = Ctx {
        method: op.method.as_str().to_owned(),
        path: format!("{base}{}", op.path),
        ..ctx.clone()
    };
    let if_match = Preconditions::if_match(op.version.as_deref());
    let p = state.scim().await;
    match &op.target {
        Target::Collection(Resource::User) => {
            let (_, u) = answered(
                p,
                &ctx,
                ResourceType::User,
                None,
                p.create_user(&ctx, &data).await,
            )
            .await?;
            Ok(Done {
                id: u.phid,
                version: Some(u.version),
                status: 201,
            })
        }
        Target::Collection(Resource::Group) => {
            let (_, g) = answered(
                p,
                &ctx,
                ResourceType::Group,
                None,
                p.create_group(&ctx, &data).await,
            )
            .await?;
            Ok(Done {
                id: g.phid,
                version: Some(g.version),
                status: 201,
            })
        }
        Target::Item(res, raw) => {
            let id = bulk::target_id(raw, ids)
                .ok_or_else(|| ScimError::not_found(format!("no resource {raw}")))?;
            // The new version, none after a DELETE.
            let written = match (res, op.method) {
                (Resource::User, Method::Put) => p
                    .replace_user(&ctx, &id, &data, if_match)
                    .await
                    .map(|u| Some(u.version)),
                (Resource::User, Method::Patch) => p
                    .patch_user(&ctx, &id, &data, if_match)
                    .await
                    .map(|u| Some(u.version)),
                (Resource::User, Method::Delete) => {
                    p.delete_user(&ctx, &id, if_match).await.map(|()| None)
                }
                (Resource::Group, Method::Put) => p
                    .replace_group(&ctx, &id, &data, if_match)
                    .await
                    .map(|g| Some(g.version)),
                (Resource::Group, Method::Patch) => p
                    .patch_group(&ctx, &id, &data, if_match, 200)
                    .await
                    .map(|g| Some(g.version)),
                (Resource::Group, Method::Delete) => {
                    p.delete_group(&ctx, &id, if_match).await.map(|()| None)
                }
                (_, Method::Post) => {
                    return Err(ScimError::invalid_value("POST goes to a collection").into());
                }
            };
            let version = answered(p, &ctx, ResourceType::from(*res), Some(&id), written).await?;
            let status = if op.method == Method::Delete {
                204
            } else {
                200
            };
            Ok(Done {
                id,
                version,
                status,
            })
        }
    }
}
