//! What the HTTP layer and the server's housekeeping ask of the database outside a SCIM
//! operation: the sync-log rows of rejected requests, readiness, a request id. With the
//! operations, this is the only way from `http/` to `db/` (the layering in `lib.rs`).

use serde_json::Value;

use super::{Provisioner, Result};
use crate::db::phabricator::random_chars;
pub use crate::db::sidecar::ResourceType;
use crate::db::sidecar::{self, Event, Outcome};

/// A request that was rejected, as its sync-log row records it (outcome `error`, no object).
#[derive(Debug, Clone, Default)]
pub struct RejectedRequest {
    pub request_id: String,
    /// The token that authenticated it, if one did.
    pub token_id: Option<u32>,
    pub method: String,
    pub path: String,
    /// `User` or `Group`, when the path names one.
    pub resource_type: Option<ResourceType>,
    pub status: u16,
    pub summary: String,
    pub details: Value,
}

/// Whether the service can serve, as `/readyz` answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// The database answers and has every table.
    Ready,
    /// The database answers but lacks tables (the log and `phab-scim check` name them).
    Incomplete,
    /// The database failed or did not answer in time.
    Unreachable,
}

impl RejectedRequest {
    /// Its sync-log row: outcome `error`, no object.
    fn event(&self) -> Event {
        Event {
            request_id: self.request_id.clone(),
            token_id: self.token_id,
            method: self.method.clone(),
            path: self.path.clone(),
            resource_type: self.resource_type,
            object_phid: None,
            status: self.status,
            outcome: Outcome::Error,
            summary: self.summary.clone(),
            details: self.details.clone(),
        }
    }
}

impl Provisioner {
    /// Writes the sync-log rows of rejected requests, outside any operation's transaction,
    /// within the database's time limits like every other operation: a hung database must not
    /// hold pool connections for rows nobody waits for. Returns how many were written.
    pub async fn write_rejected(&self, rows: &[RejectedRequest]) -> Result<usize> {
        let db = &self.db;
        db.within(
            db.deadline(),
            "the sync log",
            async |conn: &mut crate::db::Conns<'_>| {
                for r in rows {
                    sidecar::insert_event(conn, &db.t, &r.event()).await?;
                }
                Ok(rows.len())
            },
        )
        .await
    }

    /// The database's readiness, from the check shared by every caller of the same second
    /// (`db::check::ReadinessCache`).
    pub async fn readiness(&self) -> Readiness {
        match self.db.readiness.get(&self.db).await {
            crate::db::check::Readiness::Ready => Readiness::Ready,
            crate::db::check::Readiness::Incomplete(_) => Readiness::Incomplete,
            crate::db::check::Readiness::Unreachable => Readiness::Unreachable,
        }
    }
}

/// The clock of every row's `dateCreated`: what a count of requests kept for the sync log
/// records its times with, so they compare with the rows'.
pub use crate::db::now;

/// A new request id: 20 random characters of the alphabet Phabricator's ids use.
pub fn new_request_id() -> String {
    random_chars(20)
}
