//! The record of a write: what it changed ([`Diff`]) and its `scim_event` row, written
//! inside the write's transaction so that the row commits with the change or not at all
//! (docs/design.md#transactions-and-locking); and its INFO line in the service log, written
//! once the transaction has ended. A refused write's INFO line says the status the client
//! gets, which only `http::error` decides: the http layer writes it, with [`log_refusal`].

use serde_json::{Map, Value, json};

use super::{Ctx, ProvisionError, Provisioner, Result};
use crate::db::Conns;
use crate::db::sidecar::{self, Event, Outcome, ResourceType};

/// How many member ids the sync log lists per direction (the counts are always complete).
const LOGGED_IDS: usize = 50;

/// What one write changed: the `details` of its sync-log row.
#[derive(Debug, Default)]
pub(super) struct Diff(Map<String, Value>);

impl Diff {
    /// `key` went from `old` to `new`.
    pub(super) fn set(&mut self, key: &str, old: impl Into<Value>, new: impl Into<Value>) {
        self.0.insert(
            key.to_owned(),
            json!({"old": old.into(), "new": new.into()}),
        );
    }

    /// `key` is `value` (a fact of the write, not a before and after).
    pub(super) fn note(&mut self, key: &str, value: impl Into<Value>) {
        self.0.insert(key.to_owned(), value.into());
    }

    /// Members added and removed: both counts, and the first ids of each.
    pub(super) fn members(&mut self, added: &[String], removed: &[String]) {
        if added.is_empty() && removed.is_empty() {
            return;
        }
        let head = |ids: &[String]| ids.iter().take(LOGGED_IDS).cloned().collect::<Vec<_>>();
        self.0.insert(
            "members".into(),
            json!({"added": added.len(), "removed": removed.len(), "addedIds": head(added), "removedIds": head(removed)}),
        );
    }

    /// Whether `key` is recorded.
    pub(super) fn has(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }
}

/// A sync-log row of a write that was done: its resource, the status the client gets and a
/// one-line summary.
pub(super) struct Entry<'a> {
    pub resource: ResourceType,
    pub phid: Option<&'a str>,
    pub status: u16,
    pub summary: &'a str,
    /// The outcome word of its INFO line (`created`, `deactivated`...): a staged rollout's
    /// plan entry is of the kind it names (`rollout::PlanKind`).
    pub outcome: &'a str,
}

impl Provisioner {
    /// Writes the sync-log row of a write that was done, inside its transaction.
    pub(super) async fn log_done(
        &self,
        conn: &mut Conns<'_>,
        ctx: &Ctx,
        entry: Entry<'_>,
        diff: Diff,
    ) -> Result<()> {
        let details = Value::Object(diff.0);
        if let Some(op) = &ctx.stage {
            self.stage_done(conn, ctx, op, &entry, &details).await?;
        }
        let event = Event {
            request_id: ctx.request_id.clone(),
            token_id: ctx.token_id,
            method: ctx.method.clone(),
            path: ctx.path.clone(),
            resource_type: Some(entry.resource),
            object_phid: entry.phid.map(str::to_owned),
            status: entry.status,
            outcome: Outcome::Ok,
            summary: entry.summary.to_owned(),
            details,
        };
        sidecar::insert_event(conn, &self.db.t, &event).await?;
        Ok(())
    }
}

/// A token id for the log: the number, or `-` for none.
struct TokenId(Option<u32>);

impl std::fmt::Display for TokenId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(id) => write!(f, "{id}"),
            None => f.write_str("-"),
        }
    }
}

/// The one INFO line of a write whose transaction committed: the request, the resource and
/// what happened (`outcome`: a fixed word such as `updated` or `deactivated`). Written after
/// COMMIT, so a write rolled back or retried after a deadlock is never reported as done; it
/// carries ids only, never a request body or a secret.
pub(super) fn log_change(ctx: &Ctx, resource: ResourceType, id: &str, outcome: &str) {
    let resource = resource.as_str();
    tracing::info!(
        request_id = %ctx.request_id,
        token_id = %TokenId(ctx.token_id),
        method = %ctx.method,
        resource,
        id,
        outcome,
        "SCIM change"
    );
}

/// The one INFO line of a write that changed nothing because it was refused: its status and
/// the reason the client got. Database failures say only `failed`: `http::error` logs them.
/// `status` is the one the client is answered (`None` for a database failure): the http
/// layer passes it from `http::error`, the table that alone decides it.
pub fn log_refusal(
    ctx: &Ctx,
    resource: ResourceType,
    id: Option<&str>,
    e: &ProvisionError,
    status: Option<u16>,
) {
    let id = id.unwrap_or("-");
    let resource = resource.as_str();
    match (status, e.reason()) {
        (Some(status), Some(reason)) => tracing::info!(
            request_id = %ctx.request_id,
            token_id = %TokenId(ctx.token_id),
            method = %ctx.method,
            resource,
            id,
            outcome = "refused",
            status,
            reason = %reason,
            "SCIM change"
        ),
        _ => tracing::info!(
            request_id = %ctx.request_id,
            token_id = %TokenId(ctx.token_id),
            method = %ctx.method,
            resource,
            id,
            outcome = "failed",
            "SCIM change"
        ),
    }
}

/// Logs the end of one write that was done: [`log_change`] with the id and outcome `done`
/// reads from its result. A refusal is the caller's to log ([`log_refusal`]).
pub(super) fn log_write<'a, T>(
    ctx: &Ctx,
    resource: ResourceType,
    result: &'a Result<T>,
    done: impl FnOnce(&'a T) -> (&'a str, &'static str),
) {
    if let Ok(v) = result {
        let (id, outcome) = done(v);
        log_change(ctx, resource, id, outcome);
    }
}

/// Logs the end of a write to the existing resource `id` (PUT, PATCH) with [`log_write`] and
/// returns its result without the outcome word.
pub(super) fn log_update<T>(
    ctx: &Ctx,
    resource: ResourceType,
    id: &str,
    result: Result<(T, &'static str)>,
) -> Result<T> {
    log_write(ctx, resource, &result, |(_, outcome)| (id, *outcome));
    result.map(|(value, _)| value)
}
