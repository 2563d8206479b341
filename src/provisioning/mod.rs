//! Domain operations: one database transaction each, writing every row Phabricator's own
//! editors write for the same change (docs/write-paths.md), plus its sync-log row.

pub mod bot;
pub mod error;
pub mod groups;
pub mod search;
pub mod service;
pub mod username;
pub mod users;

use std::sync::Arc;

use crate::config::Config;
use crate::db::Db;

pub use error::{ProvisionError, Result};

/// Who asked, for transactions, logs and the sync log.
#[derive(Debug, Clone, Default)]
pub struct Ctx {
    /// `x-request-id`.
    pub request_id: String,
    /// The token that authenticated the request.
    pub token_id: Option<u32>,
    /// The token's bot: the actor of every transaction and log row.
    pub actor_phid: String,
    pub method: String,
    pub path: String,
    /// Client address, for `user_log.remoteAddr`.
    pub remote_addr: String,
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
pub(crate) fn log_change(ctx: &Ctx, resource: &'static str, id: &str, outcome: &str) {
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
pub(crate) fn log_refusal(ctx: &Ctx, resource: &'static str, id: Option<&str>, e: &ProvisionError) {
    let id = id.unwrap_or("-");
    match e {
        ProvisionError::Scim(s) => tracing::info!(
            request_id = %ctx.request_id,
            token_id = %TokenId(ctx.token_id),
            method = %ctx.method,
            resource,
            id,
            outcome = "refused",
            status = s.status,
            reason = %s.detail,
            "SCIM change"
        ),
        ProvisionError::Db(_) => tracing::info!(
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

/// Logs the end of one write: [`log_change`] with the id and outcome `done` reads from its
/// result, or [`log_refusal`].
pub(crate) fn log_write<'a, T>(
    ctx: &Ctx,
    resource: &'static str,
    id: Option<&str>,
    result: &'a Result<T>,
    done: impl FnOnce(&'a T) -> (&'a str, &'static str),
) {
    match result {
        Ok(v) => {
            let (id, outcome) = done(v);
            log_change(ctx, resource, id, outcome);
        }
        Err(e) => log_refusal(ctx, resource, id, e),
    }
}

/// The provisioning service: database and configuration.
#[derive(Clone, Debug)]
pub struct Provisioner {
    pub db: Db,
    pub cfg: Arc<Config>,
}

/// Deadlocks and lock-wait timeouts are retried this many times
/// (docs/design.md#transactions-and-locking).
pub const MAX_ATTEMPTS: u32 = 6;

/// Runs `$body` (an expression using `$tx: &mut Tx`) in a transaction, committing on `Ok`
/// and retrying the whole transaction on a deadlock or lock-wait timeout. The whole of it,
/// retries included, must end within `transaction_timeout_secs` (`Db::deadline`): a hung
/// database otherwise holds the request as long as the server is stopped. On time out the
/// connection is closed, never returned to the pool (`Db::give_up`), and the error is a 503.
#[macro_export]
macro_rules! in_transaction {
    ($db:expr, |$tx:ident| $body:expr) => {{
        let db: &$crate::db::Db = &$db;
        let deadline = db.deadline();
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let mut lease = db
                .acquire_until(deadline)
                .await
                .map_err($crate::provisioning::ProvisionError::from)?;
            let run = async {
                let mut $tx = match sqlx::Connection::begin(&mut *lease).await {
                    Ok(tx) => tx,
                    Err(e) => return Err($crate::provisioning::ProvisionError::from(e)),
                };
                let result: $crate::provisioning::Result<_> = $body;
                match result {
                    // Cut off during COMMIT, the outcome is unknown to us (the server may have
                    // committed the whole transaction), but never partial.
                    Ok(v) => $tx
                        .commit()
                        .await
                        .map(|_| v)
                        .map_err($crate::provisioning::ProvisionError::from),
                    Err(e) => {
                        let _ = $tx.rollback().await;
                        Err(e)
                    }
                }
            };
            let outcome = tokio::time::timeout_at(deadline, run).await;
            let result = match outcome {
                Ok(result) => result,
                Err(_) => Err(db.give_up(lease, "a transaction").into()),
            };
            match result {
                Err(e) if e.is_retryable() && attempt < $crate::provisioning::MAX_ATTEMPTS => {
                    tracing::debug!(attempt, "retrying after a deadlock or lock wait");
                    let jitter = u64::from(attempt) * 5 + u64::from(rand::random::<u8>() % 10);
                    tokio::time::sleep(std::time::Duration::from_millis(jitter)).await;
                    continue;
                }
                other => break other,
            }
        }
    }};
}
