//! The sync log of a write: what it changed ([`Diff`]) and its `scim_event` row, written
//! inside the write's transaction so that the row commits with the change or not at all
//! (docs/design.md#transactions-and-locking).

use serde_json::{Map, Value, json};

use super::{Ctx, Provisioner, Result};
use crate::db::Conn;
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
}

impl Provisioner {
    /// Writes the sync-log row of a write that was done, inside its transaction.
    pub(super) async fn log_done(
        &self,
        conn: &mut Conn,
        ctx: &Ctx,
        entry: Entry<'_>,
        diff: Diff,
    ) -> Result<()> {
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
            details: Value::Object(diff.0),
        };
        sidecar::insert_event(conn, &self.db.t, &event).await?;
        Ok(())
    }
}
