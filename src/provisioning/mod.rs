//! Domain operations: one database transaction each, writing every row Phabricator's own
//! editors write for the same change (docs/write-paths.md), plus its sync-log row.

pub mod apply;
pub mod bot;
pub mod error;
pub mod groups;
pub mod rollout;
pub mod search;
pub mod service;
mod synclog;
pub mod username;
pub mod users;

use std::sync::Arc;

use crate::config::Config;
use crate::db::phabricator::Phid;
use crate::db::{Conns, Db, DbError, xa};

pub use error::{ProvisionError, Result};
pub use synclog::log_refusal;
use synclog::{log_change, log_update, log_write};

/// Who asked, for transactions, logs and the sync log.
#[derive(Debug, Clone, Default)]
pub struct Ctx {
    /// `x-request-id`.
    pub request_id: String,
    /// The token that authenticated the request.
    pub token_id: Option<u32>,
    /// The token's bot: the actor of every transaction and log row.
    pub actor_phid: Phid,
    pub method: String,
    pub path: String,
    /// Client address, for `user_log.remoteAddr`.
    pub remote_addr: String,
    /// In a staged rollout, or replayed by `apply`: the operation this write is
    /// (`rollout::StageOp`).
    pub stage: Option<Arc<rollout::StageOp>>,
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

/// Runs `body` in a transaction, committing on `Ok` and retrying the whole transaction on a
/// deadlock or lock-wait timeout (docs/design.md#transactions-and-locking). The whole of it,
/// retries included, must end within `transaction_timeout_secs` (`Db::deadline`): a hung
/// database otherwise holds the request as long as the server is stopped. On time out the
/// connection is closed, never returned to the pool (`Db::give_up`), and the error is a
/// timeout (`DbError::Timeout`). No connection by the deadline is that error
/// at once, without a retry.
///
/// Each attempt runs its own copy of `body` (a closure that borrows its inputs is `Clone`): an
/// `AsyncFnMut` would say the same, but its futures fail the `Send` check of axum's handlers
/// (the compiler cannot prove it for every lifetime of the borrowed connection).
pub async fn in_transaction<T>(
    db: &Db,
    body: impl AsyncFnOnce(&mut Conns<'_>) -> Result<T> + Clone,
) -> Result<T> {
    let deadline = db.deadline();
    let mut attempt: u32 = 0;
    loop {
        attempt += 1;
        let mut lease = db.acquire_until(deadline).await?;
        // With several masters, the XA id of this attempt's branches (`db::xa`).
        let xa = (!db.masters.is_single()).then(|| xa::new_xid(db));
        let run = async {
            let mut tx = sqlx::Connection::begin(&mut *lease).await?;
            let mut conns = Conns::new(db, &mut tx, xa.as_ref().map(|(_, xid)| xid.clone()));
            let held = if db.staged {
                rollout::hold_staged(&mut conns, db).await
            } else {
                Ok(())
            };
            let outcome = async {
                held?;
                body.clone()(&mut conns).await
            }
            .await;
            // Another master reached: its XA branch commits with the coordinator, or rolls
            // back with it (docs/design.md#partitioned-databases). None: a plain transaction.
            let others = conns.into_others();
            match (outcome, &xa) {
                // Cut off during COMMIT, the outcome is unknown to us (the server may have
                // committed the whole transaction), but never partial.
                (Ok(v), _) if others.is_empty() => Ok(tx.commit().await.map(|_| v)?),
                (Ok(v), Some((gtrid, _))) => {
                    xa::commit_parts(db, gtrid, tx, others, None).await?;
                    Ok(v)
                }
                (Err(e), Some((gtrid, _))) => {
                    xa::rollback_parts(db, gtrid, tx, others).await;
                    Err(e)
                }
                (Ok(_), None) => Err(DbError::Inconsistent(
                    "another master was reached without an XA branch".into(),
                )
                .into()),
                (Err(e), None) => {
                    let _ = tx.rollback().await;
                    Err(e)
                }
            }
        };
        let result = match tokio::time::timeout_at(deadline, run).await {
            Ok(result) => result,
            // Any other master's connection was dropped with `run`: closed, so its server
            // rolls back a branch not yet prepared, and `xa::recover` one that was.
            Err(_) => Err(db.give_up(lease, "a transaction").into()),
        };
        match result {
            Err(e) if e.is_retryable() && attempt < MAX_ATTEMPTS => {
                tracing::debug!(attempt, "retrying after a deadlock or lock wait");
                let jitter = u64::from(attempt) * 5 + u64::from(rand::random::<u8>() % 10);
                tokio::time::sleep(std::time::Duration::from_millis(jitter)).await;
            }
            other => return other,
        }
    }
}
